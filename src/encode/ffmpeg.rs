//! FFmpeg's codec libraries (cargo feature `ffmpeg`, over the system FFmpeg):
//! libx264 (H.264), libx265 (H.265) and libvpx-vp9 (VP9) encoders (JPEG is
//! the built-in encoder's job), and FFmpeg's decoders for all four codecs.
//!
//! Encoders are set up for a live server: no B-frames (so `dts == pts`),
//! no lookahead (`zerolatency`, `lag-in-frames=0`), the fastest presets, and
//! parameter sets repeated in band before every keyframe (no global header),
//! which is where [`Packetizer`] reads them. A forced keyframe is an IDR
//! (`forced-idr`). A change other than a forced keyframe reopens the encoder
//! with the new settings; its next picture is a keyframe.
//!
//! Frames are copied into FFmpeg's own frame (counted in the bytes-copied
//! stats); decoded pictures are copied out of FFmpeg's into Eyrie's.

use std::collections::HashMap;
use std::sync::Once;
use std::time::Instant;

use bytes::Bytes;
use ff::codec::Id;
use ff::format::Pixel;
use ff::software::scaling;
use ff::util::frame::video::Video as AvFrame;
use ffmpeg_next as ff;

use super::convert::ToI420;
use super::packetize::Stamp;
use super::{Change, EncodeError, Encoder, EncoderSettings, Packetizer, Profile, RateControl, StageTimes, check_input};
use crate::media::{Buffer, Codec, Frame, Packet, PixelFormat, VideoInfo};
use crate::mux::to_units;

const NAME: &str = "ffmpeg";

/// Time base of the packets handed to FFmpeg's decoders: nanoseconds.
const TIME_BASE: ff::Rational = ff::Rational(1, 1_000_000_000);
/// Time base of the frames handed to its encoders (libvpx keeps 1/1e9 only roughly).
const ENCODE_TIMESCALE: u32 = 90_000;

fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Initialising only registers nothing in FFmpeg ≥ 4; it cannot fail in a way we could act on.
        let _ = ff::init();
        ff::util::log::set_level(ff::util::log::Level::Error);
    });
}

fn fail(e: impl std::fmt::Display) -> EncodeError {
    EncodeError::failed(NAME, e)
}

/// The FFmpeg encoder for `codec`.
fn encoder_name(codec: Codec) -> Result<&'static str, EncodeError> {
    match codec {
        Codec::H264 => Ok("libx264"),
        Codec::H265 => Ok("libx265"),
        Codec::Vp9 => Ok("libvpx-vp9"),
        other => Err(EncodeError::Unsupported {
            backend: NAME,
            what: format!("encode {other}"),
            supported: "h264 (libx264), h265 (libx265) and vp9 (libvpx-vp9); mjpeg is the jpeg encoder's".into(),
        }),
    }
}

/// An encoder through FFmpeg.
pub struct FfmpegEncoder {
    settings: EncoderSettings,
    info: VideoInfo,
    inner: ff::encoder::Video,
    convert: ToI420,
    frame: AvFrame,
    packetizer: Packetizer,
    /// Frames sent and not yet out, by pts.
    pending: HashMap<i64, Stamp>,
    force_key: bool,
    times: StageTimes,
}

fn open(settings: &EncoderSettings, info: &VideoInfo) -> Result<ff::encoder::Video, EncodeError> {
    init();
    let name = encoder_name(settings.codec)?;
    let codec = ff::encoder::find_by_name(name).ok_or_else(|| EncodeError::Unsupported {
        backend: NAME,
        what: format!("encode {} (this FFmpeg has no {name})", settings.codec),
        supported: "the encoders the system FFmpeg was built with (`ffmpeg -encoders`)".into(),
    })?;
    let mut enc = ff::codec::context::Context::new_with_codec(codec)
        .encoder()
        .video()
        .map_err(fail)?;
    enc.set_width(info.width);
    enc.set_height(info.height);
    enc.set_format(if settings.codec == Codec::Mjpeg {
        Pixel::YUVJ420P
    } else {
        Pixel::YUV420P
    });
    enc.set_time_base(TIME_BASE);
    enc.set_frame_rate(Some(ff::Rational(info.fps.num as i32, info.fps.den as i32)));
    enc.set_gop(settings.keyint);
    enc.set_max_b_frames(0);
    let mut opts = ff::Dictionary::new();
    let bitrate = settings.bitrate as usize;
    match settings.rate_control {
        RateControl::Cbr => {
            enc.set_bit_rate(bitrate);
            enc.set_max_bit_rate(bitrate);
            // One second of buffer.
            // SAFETY: a plain field of the context this encoder owns, before it is opened.
            unsafe { (*enc.as_mut_ptr()).rc_buffer_size = settings.bitrate as i32 };
        }
        RateControl::Vbr => enc.set_bit_rate(bitrate),
        RateControl::Cqp => {
            enc.set_qmin(settings.qp as i32);
            enc.set_qmax(settings.qp as i32);
        }
    }
    match settings.codec {
        Codec::H264 | Codec::H265 => {
            opts.set("preset", "ultrafast");
            opts.set("tune", "zerolatency");
            opts.set("forced-idr", "1");
            if settings.rate_control == RateControl::Cqp {
                opts.set("qp", &settings.qp.to_string());
            }
            if let Some(p) = settings.profile {
                opts.set(
                    "profile",
                    match p {
                        Profile::Baseline => "baseline",
                        Profile::Main => "main",
                        Profile::High => "high",
                    },
                );
            }
            if let Some(l) = settings.level {
                opts.set("level", &String::from(l));
            }
            if settings.codec == Codec::H265 {
                opts.set("x265-params", "log-level=error:repeat-headers=1");
            }
        }
        Codec::Vp9 => {
            opts.set("deadline", "realtime");
            opts.set("cpu-used", "8");
            opts.set("lag-in-frames", "0");
            opts.set("row-mt", "1");
            if settings.rate_control == RateControl::Cqp {
                // VP9 quantizers run 0–63.
                let q = (settings.qp as u32 * 63 / 51).to_string();
                opts.set("crf", &q);
            }
        }
        _ => unreachable!("encoder_name refused it"),
    }
    enc.open_as_with(codec, opts)
        .map_err(|e| fail(format!("cannot open {name}: {e}")))
}

impl FfmpegEncoder {
    /// An encoder for frames like `info`.
    pub fn new(settings: &EncoderSettings, info: &VideoInfo) -> Result<Self, EncodeError> {
        check_input(NAME, info, ToI420::FORMATS, (16384, 16384))?;
        Ok(FfmpegEncoder {
            settings: settings.clone(),
            info: *info,
            inner: open(settings, info)?,
            convert: ToI420::default(),
            frame: AvFrame::new(Pixel::YUV420P, info.width, info.height),
            packetizer: Packetizer::new(NAME, settings.codec, info.width, info.height),
            pending: HashMap::new(),
            force_key: false,
            times: StageTimes::default(),
        })
    }

    fn receive(&mut self, out: &mut Vec<Packet>) -> Result<(), EncodeError> {
        let mut pkt = ff::Packet::empty();
        while self.inner.receive_packet(&mut pkt).is_ok() {
            let t = Instant::now();
            let pts = pkt.pts().unwrap_or_default();
            let stamp = self
                .pending
                .remove(&pts)
                .ok_or_else(|| fail(format!("a packet for no frame sent (pts {pts})")))?;
            let data = Bytes::copy_from_slice(pkt.data().unwrap_or_default());
            out.push(self.packetizer.packet(data, &stamp, stamp.pts, pkt.is_key())?);
            self.times.packetize += t.elapsed();
        }
        Ok(())
    }
}

impl Encoder for FfmpegEncoder {
    fn name(&self) -> &'static str {
        NAME
    }

    fn codec(&self) -> Codec {
        self.settings.codec
    }

    fn accepts(&self) -> &[PixelFormat] {
        ToI420::FORMATS
    }

    fn latency_frames(&self) -> u32 {
        // No B-frames and no lookahead.
        0
    }

    fn encode(&mut self, frame: &Frame, out: &mut Vec<Packet>) -> Result<(), EncodeError> {
        super::check_same_layout(NAME, &self.info, frame)?;
        let t0 = Instant::now();
        let picture = self.convert.convert(frame);
        for (p, (src, stride)) in [picture.y, picture.u, picture.v].into_iter().enumerate() {
            let (w, h) = if p == 0 {
                (picture.width, picture.height)
            } else {
                (picture.width / 2, picture.height / 2)
            };
            let dst_stride = self.frame.stride(p);
            super::copy_rows(self.frame.data_mut(p), dst_stride, src, stride, w, h);
        }
        let pts = to_units(frame.pts, ENCODE_TIMESCALE);
        self.frame.set_pts(Some(pts));
        let forced = std::mem::take(&mut self.force_key);
        self.frame.set_kind(if forced {
            ff::picture::Type::I
        } else {
            ff::picture::Type::None
        });
        self.pending.insert(pts, Stamp::of(frame));
        let t1 = Instant::now();
        self.inner.send_frame(&self.frame).map_err(fail)?;
        let t2 = Instant::now();
        self.times.convert += t1 - t0;
        self.times.codec += t2 - t1;
        let before = self.times.packetize;
        self.receive(out)?;
        // Receiving is codec time too, less the packetizing inside it.
        self.times.codec += t2.elapsed() - (self.times.packetize - before);
        Ok(())
    }

    fn flush(&mut self, out: &mut Vec<Packet>) -> Result<(), EncodeError> {
        self.inner.send_eof().map_err(fail)?;
        self.receive(out)
    }

    fn apply(&mut self, change: Change) -> Result<(), EncodeError> {
        if change == Change::ForceKeyframe {
            self.force_key = true;
            return Ok(());
        }
        if matches!(change, Change::Quality(_)) != (self.settings.codec == Codec::Mjpeg) {
            return Err(EncodeError::Unsupported {
                backend: NAME,
                what: format!("apply {change:?} to {}", self.settings.codec),
                supported: "quality for mjpeg; bitrate, rate control, qp, keyint, profile and level for the others"
                    .into(),
            });
        }
        let mut next = self.settings.clone();
        next.apply(change);
        next.validate().map_err(fail)?;
        self.inner = open(&next, &self.info)?;
        self.pending.clear();
        self.settings = next;
        Ok(())
    }

    fn times(&self) -> StageTimes {
        self.times
    }
}

/// A decoder through FFmpeg: I420 (or NV12, or gray) frames out as the codec
/// gives them; other layouts are converted to I420 by swscale.
pub struct FfmpegDecoder {
    inner: ff::decoder::Video,
    stamps: HashMap<i64, Stamp>,
    scaler: Option<(Pixel, u32, u32, Scaler)>,
}

/// A swscale context: it has no thread affinity and only the decoder that
/// owns it uses it, one call at a time.
struct Scaler(scaling::Context);

// SAFETY: see `Scaler`: moved between threads with its decoder, never shared.
unsafe impl Send for Scaler {}

impl FfmpegDecoder {
    /// A decoder for `codec`.
    pub fn new(codec: Codec) -> Result<Self, EncodeError> {
        init();
        let id = match codec {
            Codec::H264 => Id::H264,
            Codec::H265 => Id::HEVC,
            Codec::Vp9 => Id::VP9,
            _ => Id::MJPEG,
        };
        let found = ff::decoder::find(id).ok_or_else(|| EncodeError::Unsupported {
            backend: NAME,
            what: format!("decode {codec} (this FFmpeg has no decoder for it)"),
            supported: "the decoders the system FFmpeg was built with (`ffmpeg -decoders`)".into(),
        })?;
        let mut ctx = ff::codec::context::Context::new_with_codec(found);
        // SAFETY: a plain field of the context this decoder owns, before it is opened.
        unsafe { (*ctx.as_mut_ptr()).pkt_timebase = TIME_BASE.into() };
        let inner = ctx.decoder().video().map_err(fail)?;
        Ok(FfmpegDecoder {
            inner,
            stamps: HashMap::new(),
            scaler: None,
        })
    }

    fn receive(&mut self, out: &mut Vec<Frame>) -> Result<(), EncodeError> {
        let mut decoded = AvFrame::empty();
        while self.inner.receive_frame(&mut decoded).is_ok() {
            let pts = decoded.timestamp().or(decoded.pts()).unwrap_or_default();
            let Some(stamp) = self.stamps.remove(&pts) else {
                return Err(fail(format!("a picture for no packet sent (pts {pts})")));
            };
            out.push(self.frame(&decoded, stamp)?);
        }
        Ok(())
    }

    fn frame(&mut self, decoded: &AvFrame, stamp: Stamp) -> Result<Frame, EncodeError> {
        let (w, h) = (decoded.width(), decoded.height());
        let (format, pixels) = match decoded.format() {
            Pixel::YUV420P => (PixelFormat::I420, None),
            Pixel::NV12 => (PixelFormat::Nv12, None),
            Pixel::GRAY8 => (PixelFormat::Gray8, None),
            other => {
                let fresh = self.scaler.as_ref().is_none_or(|s| (s.0, s.1, s.2) != (other, w, h));
                if fresh {
                    let ctx = scaling::Context::get(other, w, h, Pixel::YUV420P, w, h, scaling::Flags::BILINEAR)
                        .map_err(fail)?;
                    self.scaler = Some((other, w, h, Scaler(ctx)));
                }
                let mut to = AvFrame::empty();
                let scaler = &mut self.scaler.as_mut().expect("set above").3.0;
                scaler.run(decoded, &mut to).map_err(fail)?;
                (PixelFormat::I420, Some(to))
            }
        };
        let src = pixels.as_ref().unwrap_or(decoded);
        let info = VideoInfo::new(format, w, h, super::rate_of(stamp.duration)).map_err(fail)?;
        let mut data = vec![0u8; info.size()];
        super::fill_planes(&info, &mut data, |p| (src.data(p), src.stride(p)));
        Ok(stamp.frame(info, Buffer::from_bytes(data.into())))
    }
}

impl super::Decoder for FfmpegDecoder {
    fn name(&self) -> &'static str {
        NAME
    }

    fn decode(&mut self, packet: &Packet, out: &mut Vec<Frame>) -> Result<(), EncodeError> {
        let mut pkt = ff::Packet::copy(&packet.data);
        pkt.set_pts(Some(packet.pts));
        pkt.set_dts(Some(packet.dts));
        self.stamps.insert(packet.pts, Stamp::of_packet(packet));
        self.inner
            .send_packet(&pkt)
            .map_err(|e| fail(format!("packet {}: {e}", packet.seq)))?;
        self.receive(out)
    }

    fn flush(&mut self, out: &mut Vec<Frame>) -> Result<(), EncodeError> {
        self.inner.send_eof().map_err(fail)?;
        self.receive(out)
    }
}

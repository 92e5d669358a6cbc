//! H.264 in software through Cisco's OpenH264 (built from its bundled source,
//! with its assembly when `nasm` is present at build time).
//!
//! The encoder takes I420 frames as they are (no copy) and converts the other
//! formats once ([`ToI420`]); it emits one Annex-B access unit per frame, no
//! B-frames (so `dts == pts` and no latency), with SPS and PPS in front of
//! every IDR picture. Bitrate and keyframe interval change in place;
//! profile, level and rate control rebuild the encoder, whose next picture is
//! an IDR. The decoder returns I420 frames from a small pool.

use std::os::raw::c_void;
use std::time::Instant;

use bytes::Bytes;
use openh264::decoder::{Decoder as RawDecoder, DecoderConfig};
use openh264::encoder::{
    BitRate, Encoder as RawEncoder, EncoderConfig, FrameRate, FrameType, IntraFramePeriod, Level as OhLevel,
    Profile as OhProfile, QpRange, RateControlMode, UsageType,
};
use openh264::formats::YUVSource;
use openh264::{OpenH264API, Timestamp};

use super::convert::{I420, ToI420};
use super::packetize::Stamp;
use super::{
    Change, EncodeError, Encoder, EncoderSettings, Level, Packetizer, Profile, RateControl, StageTimes, check_input,
    rate_of,
};
use crate::media::{Buffer, BufferPool, Codec, Frame, Packet, PixelFormat, VideoInfo};

const NAME: &str = "openh264";

/// OpenH264's limit (level 5.2).
const MAX_SIZE: (u32, u32) = (3840, 2160);

impl YUVSource for I420<'_> {
    fn dimensions(&self) -> (usize, usize) {
        (self.width, self.height)
    }
    fn strides(&self) -> (usize, usize, usize) {
        (self.y.1, self.u.1, self.v.1)
    }
    fn y(&self) -> &[u8] {
        self.y.0
    }
    fn u(&self) -> &[u8] {
        self.u.0
    }
    fn v(&self) -> &[u8] {
        self.v.0
    }
}

/// The OpenH264 encoder.
pub struct H264Encoder {
    settings: EncoderSettings,
    info: VideoInfo,
    raw: RawEncoder,
    convert: ToI420,
    packetizer: Packetizer,
    times: StageTimes,
}

fn level(l: Level) -> Result<OhLevel, EncodeError> {
    Ok(match l.0 {
        10 => OhLevel::Level_1_0,
        11 => OhLevel::Level_1_1,
        12 => OhLevel::Level_1_2,
        13 => OhLevel::Level_1_3,
        20 => OhLevel::Level_2_0,
        21 => OhLevel::Level_2_1,
        22 => OhLevel::Level_2_2,
        30 => OhLevel::Level_3_0,
        31 => OhLevel::Level_3_1,
        32 => OhLevel::Level_3_2,
        40 => OhLevel::Level_4_0,
        41 => OhLevel::Level_4_1,
        42 => OhLevel::Level_4_2,
        50 => OhLevel::Level_5_0,
        51 => OhLevel::Level_5_1,
        52 => OhLevel::Level_5_2,
        _ => {
            return Err(EncodeError::Unsupported {
                backend: NAME,
                what: format!("encode at level {}", String::from(l)),
                supported: "levels 1 to 5.2 (1, 1.1, 1.2, 1.3, 2, 2.1, 2.2, 3, 3.1, 3.2, 4, 4.1, 4.2, 5, 5.1, 5.2)"
                    .into(),
            });
        }
    })
}

fn raw_encoder(settings: &EncoderSettings, info: &VideoInfo) -> Result<RawEncoder, EncodeError> {
    let mut config = EncoderConfig::new()
        .usage_type(UsageType::CameraVideoRealTime)
        .max_frame_rate(FrameRate::from_hz(info.fps.as_f64() as f32))
        .bitrate(BitRate::from_bps(settings.bitrate))
        // Every frame in gives a picture out: a skipped frame would be a lost one.
        .skip_frames(false)
        .intra_frame_period(IntraFramePeriod::from_num_frames(settings.keyint))
        // One thread per encoder: a server runs many, and OpenH264 encodes one slice.
        .num_threads(1)
        .rate_control_mode(match settings.rate_control {
            RateControl::Cbr => RateControlMode::Bitrate,
            RateControl::Vbr => RateControlMode::Quality,
            RateControl::Cqp => RateControlMode::Off,
        });
    if settings.rate_control == RateControl::Cqp {
        config = config.qp(QpRange::new(settings.qp, settings.qp));
    }
    if let Some(p) = settings.profile {
        config = config.profile(match p {
            Profile::Baseline => OhProfile::Baseline,
            Profile::Main => OhProfile::Main,
            Profile::High => OhProfile::High,
        });
    }
    if let Some(l) = settings.level {
        config = config.level(level(l)?);
    }
    RawEncoder::with_api_config(OpenH264API::from_source(), config).map_err(|e| EncodeError::failed(NAME, e))
}

/// OpenH264 was built with its x86 assembly (build.rs: `nasm` was found).
pub const ASSEMBLY: bool = matches!(env!("EYRIE_OPENH264_ASM").as_bytes(), b"1");

/// Says once per process that this build's OpenH264 lacks its assembly.
fn warn_without_assembly() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    if !ASSEMBLY {
        ONCE.call_once(|| {
            tracing::warn!(
                "this eyrie was built without nasm: OpenH264 runs without its assembly, about 2.7x slower \
                 (install nasm and rebuild)"
            );
        });
    }
}

impl H264Encoder {
    /// An encoder for frames like `info`.
    pub fn new(settings: &EncoderSettings, info: &VideoInfo) -> Result<Self, EncodeError> {
        warn_without_assembly();
        if settings.codec != Codec::H264 {
            return Err(EncodeError::Unsupported {
                backend: NAME,
                what: format!("encode {}", settings.codec),
                supported: "h264".into(),
            });
        }
        check_input(NAME, info, ToI420::FORMATS, MAX_SIZE)?;
        Ok(H264Encoder {
            settings: settings.clone(),
            info: *info,
            raw: raw_encoder(settings, info)?,
            convert: ToI420::default(),
            packetizer: Packetizer::new(NAME, Codec::H264, info.width, info.height),
            times: StageTimes::default(),
        })
    }

    /// Sets one of OpenH264's run-time options.
    fn set_option<T>(&mut self, option: openh264_sys2::ENCODER_OPTION, value: &mut T) -> Result<(), EncodeError> {
        // SAFETY: `value` is the type OpenH264 documents for `option` (see the
        // callers) and lives across the call; the encoder is initialized.
        let rc = unsafe {
            self.raw
                .raw_api()
                .set_option(option, (value as *mut T).cast::<c_void>())
        };
        if rc != 0 {
            return Err(EncodeError::failed(
                NAME,
                format!("SetOption({option}) failed with {rc}"),
            ));
        }
        Ok(())
    }
}

impl Encoder for H264Encoder {
    fn name(&self) -> &'static str {
        NAME
    }

    fn codec(&self) -> Codec {
        Codec::H264
    }

    fn accepts(&self) -> &[PixelFormat] {
        ToI420::FORMATS
    }

    fn latency_frames(&self) -> u32 {
        0
    }

    fn encode(&mut self, frame: &Frame, out: &mut Vec<Packet>) -> Result<(), EncodeError> {
        super::check_same_layout(NAME, &self.info, frame)?;
        let t0 = Instant::now();
        let picture = self.convert.convert(frame);
        let t1 = Instant::now();
        let at = Timestamp::from_millis(frame.pts.max(0) as u64 / 1_000_000);
        let stream = self
            .raw
            .encode_at(&picture, at)
            .map_err(|e| EncodeError::failed(NAME, e))?;
        let skipped = matches!(stream.frame_type(), FrameType::Skip | FrameType::Invalid);
        let data = (!skipped).then(|| stream.to_vec());
        let t2 = Instant::now();
        if let Some(data) = data {
            out.push(
                self.packetizer
                    .packet(Bytes::from(data), &Stamp::of(frame), frame.pts, false)?,
            );
        }
        let t3 = Instant::now();
        self.times.convert += t1 - t0;
        self.times.codec += t2 - t1;
        self.times.packetize += t3 - t2;
        Ok(())
    }

    fn flush(&mut self, _out: &mut Vec<Packet>) -> Result<(), EncodeError> {
        // No lookahead: every packet left with its frame.
        Ok(())
    }

    fn apply(&mut self, change: Change) -> Result<(), EncodeError> {
        if let Change::Quality(_) = change {
            return Err(EncodeError::Unsupported {
                backend: NAME,
                what: "set a JPEG quality".into(),
                supported: "bitrate, rate control, qp, keyint, profile, level and forced keyframes".into(),
            });
        }
        let mut next = self.settings.clone();
        next.apply(change);
        next.validate().map_err(|m| EncodeError::failed(NAME, m))?;
        match change {
            Change::ForceKeyframe => self.raw.force_intra_frame(),
            Change::Bitrate(bps) => {
                let bps = i32::try_from(bps).map_err(|_| EncodeError::failed(NAME, "bitrate above 2^31 bit/s"))?;
                // The layer's ceiling first (a target above it is refused), then the target.
                for (option, layer) in [
                    (
                        openh264_sys2::ENCODER_OPTION_MAX_BITRATE,
                        openh264_sys2::SPATIAL_LAYER_0,
                    ),
                    (openh264_sys2::ENCODER_OPTION_BITRATE, openh264_sys2::SPATIAL_LAYER_ALL),
                ] {
                    let mut info = openh264_sys2::SBitrateInfo {
                        iLayer: layer,
                        iBitrate: bps,
                    };
                    self.set_option(option, &mut info)?;
                }
            }
            Change::Keyint(frames) => {
                let mut frames = frames as i32;
                self.set_option(openh264_sys2::ENCODER_OPTION_IDR_INTERVAL, &mut frames)?;
            }
            // Rate control, qp, profile, level: a new encoder, starting on an IDR picture.
            _ => self.raw = raw_encoder(&next, &self.info)?,
        }
        self.settings = next;
        Ok(())
    }

    fn times(&self) -> StageTimes {
        self.times
    }
}

/// The OpenH264 decoder: Annex-B access units in, I420 frames out.
pub struct H264Decoder {
    raw: RawDecoder,
    pool: Option<(VideoInfo, BufferPool)>,
    /// The last packet's stamp, for pictures a flush releases.
    last: Option<Stamp>,
}

/// Decoded frames the decoder can have downstream at once.
const DECODE_POOL: usize = 4;

impl H264Decoder {
    /// A decoder.
    pub fn new() -> Result<Self, EncodeError> {
        let raw = RawDecoder::with_api_config(OpenH264API::from_source(), DecoderConfig::new())
            .map_err(|e| EncodeError::failed(NAME, e))?;
        Ok(H264Decoder {
            raw,
            pool: None,
            last: None,
        })
    }
}

/// Copies a decoded picture into a frame of the pool (the decoder reuses
/// its picture buffers, so the frame must own its pixels).
fn emit(
    pool: &mut Option<(VideoInfo, BufferPool)>,
    yuv: &openh264::decoder::DecodedYUV<'_>,
    stamp: Stamp,
) -> Result<Frame, EncodeError> {
    let (w, h) = yuv.dimensions();
    let info = VideoInfo::new(PixelFormat::I420, w as u32, h as u32, rate_of(stamp.duration))
        .map_err(|e| EncodeError::failed(NAME, e))?;
    if pool.as_ref().is_none_or(|(i, _)| !i.same_layout(&info)) {
        *pool = Some((info, BufferPool::new(info.size(), DECODE_POOL)));
    }
    let (info, pool) = pool.as_ref().expect("set above");
    let (ys, us, _) = yuv.strides();
    let planes = [(yuv.y(), ys), (yuv.u(), us), (yuv.v(), us)];
    let fill = |dst: &mut [u8]| super::fill_planes(info, dst, |p| planes[p]);
    // A pool buffer when one is free; when the caller holds them all, memory of the frame's own.
    let buffer = match pool.acquire() {
        Some(mut b) => {
            fill(&mut b);
            b.freeze()
        }
        None => {
            let mut v = vec![0u8; info.size()];
            fill(&mut v);
            Buffer::from_bytes(v.into())
        }
    };
    Ok(stamp.frame(*info, buffer))
}

impl super::Decoder for H264Decoder {
    fn name(&self) -> &'static str {
        NAME
    }

    fn decode(&mut self, packet: &Packet, out: &mut Vec<Frame>) -> Result<(), EncodeError> {
        let stamp = Stamp::of_packet(packet);
        let decoded = self
            .raw
            .decode(&packet.data)
            .map_err(|e| EncodeError::failed(NAME, format!("packet {}: {e}", packet.seq)))?;
        if let Some(yuv) = decoded {
            out.push(emit(&mut self.pool, &yuv, stamp.clone())?);
        }
        self.last = Some(stamp);
        Ok(())
    }

    fn flush(&mut self, out: &mut Vec<Frame>) -> Result<(), EncodeError> {
        let Some(mut stamp) = self.last.take() else {
            return Ok(());
        };
        let left = self.raw.flush_remaining().map_err(|e| EncodeError::failed(NAME, e))?;
        for yuv in &left {
            stamp.pts += stamp.duration;
            stamp.seq += 1;
            out.push(emit(&mut self.pool, yuv, stamp.clone())?);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_map_or_say_which_exist() {
        assert!(level(Level(41)).is_ok());
        let e = level(Level(60)).unwrap_err().to_string();
        assert!(e.contains("level 6.0") && e.contains("5.2"), "{e}");
    }
}

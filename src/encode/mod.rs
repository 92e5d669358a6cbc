//! Encoders and decoders: raw [`Frame`]s in, [`Packet`]s out, and back
//! (DESIGN.md, layer `encode`).
//!
//! Every backend sits behind [`Encoder`] / [`Decoder`]:
//! - [`openh264`]: H.264 in software (bundled Cisco OpenH264, the default);
//! - [`jpeg`]: JPEG encode for snapshots and MJPEG, JPEG decode for MJPEG cameras;
//! - [`v4l2m2m`]: the kernel's stateful memory-to-memory codec interface
//!   (Jetson NVENC/NVDEC, Raspberry Pi, most SoCs; tested against `vicodec`);
//! - `ffmpeg` (cargo feature `ffmpeg`): libx264, libx265, libvpx-vp9 and
//!   FFmpeg's decoders.
//!
//! Settings ([`EncoderSettings`]) are config keys; [`Change`]s apply while
//! running (bitrate, rate control, keyframe interval, profile/level, quality, a
//! keyframe now). An encoder accepts the formats [`Encoder::accepts`] lists and
//! says exactly what it supports when handed anything else.

pub mod convert;
#[cfg(feature = "ffmpeg")]
pub mod ffmpeg;
pub mod jpeg;
pub mod openh264;
mod packetize;
pub mod v4l2m2m;

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::media::{Codec, Fps, Frame, Packet, PixelFormat, VideoInfo, copy_frame_bytes};
pub use packetize::Packetizer;

/// Errors of encoders and decoders. Each names the backend.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The backend cannot do this (a format, a size, a codec, a setting).
    #[error("{backend} cannot {what}; it supports {supported}")]
    Unsupported {
        /// The backend (`openh264`, `jpeg`, ...).
        backend: &'static str,
        /// What was asked, e.g. `encode yuyv` or `encode 1281x720`.
        what: String,
        /// What it can do instead.
        supported: String,
    },
    /// The codec library or device failed.
    #[error("{backend}: {message}")]
    Failed {
        /// The backend.
        backend: &'static str,
        /// What went wrong.
        message: String,
    },
}

impl EncodeError {
    pub(crate) fn failed(backend: &'static str, message: impl fmt::Display) -> Self {
        EncodeError::Failed {
            backend,
            message: message.to_string(),
        }
    }
}

/// How the encoder spends bits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RateControl {
    /// Constant bitrate: `bitrate` every second, quality varies.
    #[default]
    Cbr,
    /// Variable bitrate: `bitrate` on average, more on hard scenes.
    Vbr,
    /// Constant quantizer `qp`: quality fixed, bitrate varies.
    Cqp,
}

/// H.264/H.265 profile.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// Constrained baseline (H.264): no B-frames, no CABAC.
    Baseline,
    /// Main.
    Main,
    /// High (H.264).
    High,
}

/// Which implementation encodes or decodes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Backend {
    /// The default for the codec: OpenH264 for H.264, the JPEG codec for
    /// MJPEG, FFmpeg for H.265 and VP9 (when built with it).
    #[default]
    Auto,
    /// Cisco OpenH264 (H.264 only).
    OpenH264,
    /// The built-in JPEG codec (MJPEG only).
    Jpeg,
    /// FFmpeg's libraries (feature `ffmpeg`).
    Ffmpeg,
    /// A V4L2 memory-to-memory codec device: `v4l2m2m:/dev/videoN`.
    V4l2M2m(PathBuf),
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Backend::Auto => f.write_str("auto"),
            Backend::OpenH264 => f.write_str("openh264"),
            Backend::Jpeg => f.write_str("jpeg"),
            Backend::Ffmpeg => f.write_str("ffmpeg"),
            Backend::V4l2M2m(p) => write!(f, "v4l2m2m:{}", p.display()),
        }
    }
}

impl FromStr for Backend {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "auto" => Backend::Auto,
            "openh264" => Backend::OpenH264,
            "jpeg" => Backend::Jpeg,
            "ffmpeg" => Backend::Ffmpeg,
            _ => match s.strip_prefix("v4l2m2m:") {
                Some(dev) if !dev.is_empty() => Backend::V4l2M2m(dev.into()),
                _ => {
                    return Err(format!(
                        "unknown encoder `{s}`: expected auto, openh264, jpeg, ffmpeg or v4l2m2m:/dev/videoN"
                    ));
                }
            },
        })
    }
}

impl TryFrom<String> for Backend {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<Backend> for String {
    fn from(b: Backend) -> String {
        b.to_string()
    }
}

/// An encoder's settings: the keys of an `encode` node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EncoderSettings {
    /// `h264`, `h265`, `vp9` or `mjpeg`.
    pub codec: Codec,
    /// `auto`, `openh264`, `jpeg`, `ffmpeg` or `v4l2m2m:/dev/videoN`.
    pub encoder: Backend,
    /// Target bits per second (`cbr`, `vbr`).
    pub bitrate: u32,
    /// `cbr`, `vbr` or `cqp`.
    pub rate_control: RateControl,
    /// Quantizer for `cqp` (0–51; lower is better).
    pub qp: u8,
    /// Frames from one keyframe to the next.
    pub keyint: u32,
    /// `baseline`, `main` or `high`; the backend's default when absent.
    pub profile: Option<Profile>,
    /// Level as `"4.1"`; the backend picks one from size and rate when absent.
    pub level: Option<Level>,
    /// JPEG quality, 1–100.
    pub quality: u8,
}

impl Default for EncoderSettings {
    fn default() -> Self {
        EncoderSettings {
            codec: Codec::H264,
            encoder: Backend::Auto,
            bitrate: 4_000_000,
            rate_control: RateControl::Cbr,
            qp: 26,
            keyint: 60,
            profile: None,
            level: None,
            quality: 85,
        }
    }
}

/// An H.264/H.265 level, ten times its number (`41` is level 4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Level(pub u8);

impl FromStr for Level {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("bad level `{s}`: expected a number such as 3.1, 4 or 5.2");
        let (major, minor) = s.split_once('.').unwrap_or((s, "0"));
        let major: u8 = major.parse().map_err(|_| bad())?;
        let minor: u8 = minor.parse().map_err(|_| bad())?;
        if !(1..=6).contains(&major) || minor > 9 {
            return Err(bad());
        }
        Ok(Level(major * 10 + minor))
    }
}

impl TryFrom<String> for Level {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<Level> for String {
    fn from(l: Level) -> String {
        format!("{}.{}", l.0 / 10, l.0 % 10)
    }
}

impl EncoderSettings {
    /// Checks the values that do not depend on a backend.
    pub fn validate(&self) -> Result<(), String> {
        self.check().map_err(|(_, message)| message)
    }

    /// As [`EncoderSettings::validate`], naming the key at fault.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if self.quality == 0 || self.quality > 100 {
            return Err(("quality", format!("quality {} is out of range 1..=100", self.quality)));
        }
        if self.qp > 51 {
            return Err(("qp", format!("qp {} is out of range 0..=51", self.qp)));
        }
        if self.keyint == 0 {
            return Err(("keyint", "keyint must be at least 1 frame".into()));
        }
        if self.bitrate < 1000 && self.rate_control != RateControl::Cqp {
            return Err((
                "bitrate",
                format!("bitrate {} bit/s is too low (at least 1000)", self.bitrate),
            ));
        }
        Ok(())
    }

    /// The changes that turn these settings into `next` on a running
    /// encoder, or `None` when `next` differs in what only a new encoder
    /// takes (codec, backend, or an explicit profile or level dropped).
    pub fn live_changes(&self, next: &EncoderSettings) -> Option<Vec<Change>> {
        if self.codec != next.codec
            || self.encoder != next.encoder
            || (self.profile.is_some() && next.profile.is_none())
            || (self.level.is_some() && next.level.is_none())
        {
            return None;
        }
        let changes = [
            (self.bitrate != next.bitrate).then_some(Change::Bitrate(next.bitrate)),
            (self.rate_control != next.rate_control).then_some(Change::RateControl(next.rate_control)),
            (self.qp != next.qp).then_some(Change::Qp(next.qp)),
            (self.keyint != next.keyint).then_some(Change::Keyint(next.keyint)),
            next.profile.filter(|p| self.profile != Some(*p)).map(Change::Profile),
            next.level.filter(|l| self.level != Some(*l)).map(Change::Level),
            (self.quality != next.quality).then_some(Change::Quality(next.quality)),
        ];
        Some(changes.into_iter().flatten().collect())
    }

    /// Records `change` in the settings (what a backend was asked to apply).
    pub fn apply(&mut self, change: Change) {
        match change {
            Change::Bitrate(b) => self.bitrate = b,
            Change::RateControl(r) => self.rate_control = r,
            Change::Qp(q) => self.qp = q,
            Change::Keyint(k) => self.keyint = k,
            Change::Profile(p) => self.profile = Some(p),
            Change::Level(l) => self.level = Some(l),
            Change::Quality(q) => self.quality = q,
            Change::ForceKeyframe => {}
        }
    }
}

/// A run-time change to a running encoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// New target bitrate, bits per second.
    Bitrate(u32),
    /// New rate control mode.
    RateControl(RateControl),
    /// New quantizer (for `cqp`).
    Qp(u8),
    /// New keyframe interval, frames.
    Keyint(u32),
    /// New profile (takes effect at the next keyframe, which comes at once).
    Profile(Profile),
    /// New level (as for the profile).
    Level(Level),
    /// New JPEG quality.
    Quality(u8),
    /// Make the next frame a keyframe (snapshots, smart record, a new viewer).
    ForceKeyframe,
}

/// Time an encoder spent, split between the codec itself and Eyrie's work
/// around it (pixel-format conversion, packetizing).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StageTimes {
    /// Converting frames into what the codec accepts.
    pub convert: Duration,
    /// Inside the codec library or device.
    pub codec: Duration,
    /// Turning its output into [`Packet`]s (parameter sets, keyframe flags).
    pub packetize: Duration,
}

/// Raw frames in, packets out.
pub trait Encoder: Send {
    /// The backend's name, as in config (`openh264`, `jpeg`, ...).
    fn name(&self) -> &'static str;
    /// The codec it produces.
    fn codec(&self) -> Codec;
    /// The pixel formats it takes (others are an [`EncodeError::Unsupported`]).
    fn accepts(&self) -> &[PixelFormat];
    /// Frames it holds before their packets come out (0: each frame's packet
    /// comes out of its own `encode` call).
    fn latency_frames(&self) -> u32;
    /// Encodes one frame; pushes the packets that are ready onto `out`.
    fn encode(&mut self, frame: &Frame, out: &mut Vec<Packet>) -> Result<(), EncodeError>;
    /// Pushes every packet still held (end of stream).
    fn flush(&mut self, out: &mut Vec<Packet>) -> Result<(), EncodeError>;
    /// Applies a change while running.
    fn apply(&mut self, change: Change) -> Result<(), EncodeError>;
    /// Time spent so far, by stage.
    fn times(&self) -> StageTimes;
}

/// Packets in, raw frames out.
pub trait Decoder: Send {
    /// The backend's name.
    fn name(&self) -> &'static str;
    /// Decodes one packet; pushes the frames that are ready onto `out`.
    fn decode(&mut self, packet: &Packet, out: &mut Vec<Frame>) -> Result<(), EncodeError>;
    /// Pushes every frame still held (end of stream).
    fn flush(&mut self, out: &mut Vec<Frame>) -> Result<(), EncodeError>;
    /// Packets dropped so far rather than decoded: a decoder whose pictures
    /// are leases on its own buffers drops (to the next keyframe) when the
    /// consumer holds every one of them.
    fn dropped(&self) -> u64 {
        0
    }
}

/// The frame rate a frame duration (ns) implies; 30 fps when unknown.
pub(crate) fn rate_of(duration_ns: i64) -> Fps {
    let us = duration_ns / 1000;
    if us > 0 {
        Fps::new(1_000_000, us as u32).unwrap_or(Fps { num: 30, den: 1 })
    } else {
        Fps { num: 30, den: 1 }
    }
}

/// Refuses a frame whose layout differs from the one the encoder was opened for.
pub(crate) fn check_same_layout(backend: &'static str, opened: &VideoInfo, frame: &Frame) -> Result<(), EncodeError> {
    if frame.info.same_layout(opened) {
        return Ok(());
    }
    Err(EncodeError::Unsupported {
        backend,
        what: format!(
            "change from {} {}x{} to {} {}x{} mid-stream",
            opened.format, opened.width, opened.height, frame.info.format, frame.info.width, frame.info.height
        ),
        supported: "one format and size per encoder (an encode node opens a new one)".into(),
    })
}

/// Copies `rows` lines of `row_bytes` from `src` (lines `src_pitch` apart) to
/// `dst` (lines `dst_pitch` apart), counting the bytes as copied.
pub(crate) fn copy_rows(dst: &mut [u8], dst_pitch: usize, src: &[u8], src_pitch: usize, row_bytes: usize, rows: usize) {
    for row in 0..rows {
        copy_frame_bytes(
            &mut dst[row * dst_pitch..][..row_bytes],
            &src[row * src_pitch..][..row_bytes],
        );
    }
}

/// A new frame buffer of `info` filled from a decoder's planes: `plane(p)`
/// is plane `p` and its line pitch.
pub(crate) fn fill_planes<'a>(info: &VideoInfo, dst: &mut [u8], plane: impl Fn(usize) -> (&'a [u8], usize)) {
    for (p, layout) in info.planes().iter().enumerate() {
        let (src, pitch) = plane(p);
        copy_rows(
            &mut dst[layout.offset..],
            layout.stride,
            src,
            pitch,
            layout.row_bytes,
            layout.rows,
        );
    }
}

/// Checks that `info` is a format in `accepts` with even dimensions (what
/// 4:2:0 codecs need) within `max`.
pub(crate) fn check_input(
    backend: &'static str,
    info: &VideoInfo,
    accepts: &[PixelFormat],
    max: (u32, u32),
) -> Result<(), EncodeError> {
    if !accepts.contains(&info.format) {
        let names: Vec<&str> = accepts.iter().map(|f| f.name()).collect();
        return Err(EncodeError::Unsupported {
            backend,
            what: format!("encode {}", info.format),
            supported: names.join(", "),
        });
    }
    if !info.width.is_multiple_of(2) || !info.height.is_multiple_of(2) || info.width > max.0 || info.height > max.1 {
        return Err(EncodeError::Unsupported {
            backend,
            what: format!("encode {}x{}", info.width, info.height),
            supported: format!("even widths and heights up to {}x{}", max.0, max.1),
        });
    }
    Ok(())
}

/// Opens the encoder `settings` ask for, for frames like `info`.
pub fn open_encoder(settings: &EncoderSettings, info: &VideoInfo) -> Result<Box<dyn Encoder>, EncodeError> {
    settings.validate().map_err(|m| EncodeError::failed("encoder", m))?;
    ENCODERS_OPENED.fetch_add(1, Ordering::Relaxed);
    let backend = match (&settings.encoder, settings.codec) {
        (Backend::Auto, Codec::H264) => &Backend::OpenH264,
        (Backend::Auto, Codec::Mjpeg) => &Backend::Jpeg,
        (Backend::Auto, _) => &Backend::Ffmpeg,
        (b, _) => b,
    };
    match backend {
        Backend::OpenH264 => Ok(Box::new(openh264::H264Encoder::new(settings, info)?)),
        Backend::Jpeg => Ok(Box::new(jpeg::JpegEncoder::new(settings, info)?)),
        #[cfg(feature = "ffmpeg")]
        Backend::Ffmpeg => Ok(Box::new(ffmpeg::FfmpegEncoder::new(settings, info)?)),
        #[cfg(not(feature = "ffmpeg"))]
        Backend::Ffmpeg => Err(EncodeError::Unsupported {
            backend: "ffmpeg",
            what: format!("encode {} (this build has no FFmpeg)", settings.codec),
            supported: "nothing: rebuild with `--features ffmpeg`; h264 works with openh264, mjpeg with jpeg".into(),
        }),
        Backend::V4l2M2m(path) => Ok(Box::new(v4l2m2m::M2mEncoder::new(path, settings, info)?)),
        Backend::Auto => unreachable!("resolved above"),
    }
}

static ENCODERS_OPENED: AtomicU64 = AtomicU64::new(0);
static DECODERS_OPENED: AtomicU64 = AtomicU64::new(0);

/// Encoders the process has asked for (opened or tried): 0 proves a
/// passthrough path encoded nothing.
pub fn encoders_opened() -> u64 {
    ENCODERS_OPENED.load(Ordering::Relaxed)
}

/// Decoders the process has asked for (opened or tried): 0 proves a
/// passthrough path decoded nothing.
pub fn decoders_opened() -> u64 {
    DECODERS_OPENED.load(Ordering::Relaxed)
}

/// Opens a decoder for `codec` on `backend`.
pub fn open_decoder(codec: Codec, backend: &Backend) -> Result<Box<dyn Decoder>, EncodeError> {
    DECODERS_OPENED.fetch_add(1, Ordering::Relaxed);
    match (backend, codec) {
        (Backend::Auto | Backend::OpenH264, Codec::H264) => Ok(Box::new(openh264::H264Decoder::new()?)),
        (Backend::Auto | Backend::Jpeg, Codec::Mjpeg) => Ok(Box::new(jpeg::JpegDecoder::new())),
        // The device learns the size from the stream (a source-change event).
        (Backend::V4l2M2m(path), _) => Ok(Box::new(v4l2m2m::M2mDecoder::new(path, codec, 0, 0)?)),
        #[cfg(feature = "ffmpeg")]
        (Backend::Auto | Backend::Ffmpeg, _) => Ok(Box::new(ffmpeg::FfmpegDecoder::new(codec)?)),
        (b, c) => Err(EncodeError::Unsupported {
            backend: "decoder",
            what: format!("decode {c} with {b}"),
            supported: if cfg!(feature = "ffmpeg") {
                "h264 (openh264, ffmpeg), mjpeg (jpeg, ffmpeg), h265 and vp9 (ffmpeg), and what a v4l2m2m device decodes".into()
            } else {
                "h264 (openh264), mjpeg (jpeg), what a v4l2m2m device decodes; h265 and vp9 need `--features ffmpeg`"
                    .into()
            },
        }),
    }
}

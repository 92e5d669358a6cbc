//! V4L2 capture (the kernel's Video for Linux API, Documentation/userspace-api/media/v4l/):
//! device capabilities (`VIDIOC_QUERYCAP`, "Querying Capabilities"), format,
//! frame-size and frame-interval enumeration ("Image Formats",
//! `VIDIOC_ENUM_FMT`/`ENUM_FRAMESIZES`/`ENUM_FRAMEINTERVALS`), negotiation
//! (`VIDIOC_S_FMT`, `VIDIOC_S_PARM`) and streaming I/O with memory mapping
//! ("Streaming I/O (Memory Mapping)") through the single- and the
//! multi-planar API, with DMABUF export (`VIDIOC_EXPBUF`).
//!
//! Each dequeued buffer leaves as a lease ([`Buffer`] of kind
//! [`MemoryKind::Mmap`]) on the driver's own memory: nothing is copied, and the
//! buffer is queued back (`VIDIOC_QBUF`) when its last holder drops it. When
//! every buffer is held downstream the driver has nowhere to write and skips
//! frames; the gap shows in the sequence numbers, which is how drops are counted.

use std::fmt;
use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use eyrie_sys::v4l2 as sys;

use crate::media::{Buffer, Fps, Memory, MemoryKind};

/// An error of a V4L2 device, naming it.
#[derive(Debug, thiserror::Error)]
pub enum V4l2Error {
    /// A system call failed.
    #[error("{device}: {op}: {error}")]
    Io {
        /// The device path.
        device: String,
        /// What was being done (`VIDIOC_S_FMT`, `open`).
        op: &'static str,
        /// The system's error.
        error: io::Error,
    },
    /// The device cannot do what was asked; the message says what it can do.
    #[error("{device}: {message}")]
    Unsupported {
        /// The device path.
        device: String,
        /// What it cannot do, and what it offers instead.
        message: String,
    },
}

impl V4l2Error {
    /// True when the device is gone (unplugged, driver unbound) or not there yet:
    /// worth retrying, unlike a format it will never support.
    pub fn is_gone(&self) -> bool {
        match self {
            V4l2Error::Io { error, .. } => matches!(
                error.raw_os_error(),
                Some(libc::ENODEV | libc::ENOENT | libc::ENXIO | libc::EIO | libc::ESHUTDOWN)
            ),
            V4l2Error::Unsupported { .. } => false,
        }
    }
}

/// Runs an ioctl, retrying on EINTR.
pub(crate) fn ioctl<T>(fd: RawFd, request: u32, arg: &mut T) -> io::Result<()> {
    loop {
        // SAFETY: `arg` is a live, exclusively borrowed value of the type the
        // request encodes (the layouts are checked against videodev2.h).
        let r = unsafe { libc::ioctl(fd, request as _, arg as *mut T) };
        if r != -1 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// An open device node and its path, which every error names.
struct Node {
    fd: OwnedFd,
    path: String,
}

impl Node {
    fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    fn io(&self, op: &'static str, error: io::Error) -> V4l2Error {
        V4l2Error::Io {
            device: self.path.clone(),
            op,
            error,
        }
    }

    fn ioctl<T>(&self, op: &'static str, request: u32, arg: &mut T) -> Result<(), V4l2Error> {
        ioctl(self.raw(), request, arg).map_err(|error| self.io(op, error))
    }
}

/// An all-zero value of a uapi struct (every one of them is valid zeroed).
pub(crate) fn zeroed<T: Copy>() -> T {
    // SAFETY: only instantiated with the plain-data uapi structs of `eyrie_sys::v4l2`.
    unsafe { std::mem::zeroed() }
}

/// A FourCC as text (`YUYV`, `NV12`).
pub fn fourcc_name(code: u32) -> String {
    code.to_le_bytes()
        .iter()
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '?'
            }
        })
        .collect::<String>()
        .trim_end()
        .to_string()
}

/// Parses a FourCC (`"YUYV"`, `"H264"`; shorter codes are space-padded).
pub fn fourcc(name: &str) -> Option<u32> {
    let b = name.trim_end().as_bytes();
    if b.is_empty() || b.len() > 4 || !b.iter().all(|c| c.is_ascii_graphic()) {
        return None;
    }
    let mut code = [b' '; 4];
    code[..b.len()].copy_from_slice(b);
    Some(u32::from_le_bytes(code))
}

fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// What `VIDIOC_QUERYCAP` says about a device.
#[derive(Clone, Debug)]
pub struct DeviceInfo {
    /// Driver name (`vivid`, `uvcvideo`, `tegra-video`).
    pub driver: String,
    /// Device name.
    pub card: String,
    /// Where it is attached.
    pub bus: String,
    /// The device node's capabilities (`V4L2_CAP_*`).
    pub caps: u32,
}

impl DeviceInfo {
    /// The buffer type capture uses: single-planar when offered, else multi-planar.
    pub fn capture_type(&self) -> Option<u32> {
        if self.caps & sys::cap::VIDEO_CAPTURE != 0 {
            Some(sys::buf_type::VIDEO_CAPTURE)
        } else if self.caps & sys::cap::VIDEO_CAPTURE_MPLANE != 0 {
            Some(sys::buf_type::VIDEO_CAPTURE_MPLANE)
        } else {
            None
        }
    }

    /// The kinds of device this is, in words.
    pub fn roles(&self) -> Vec<&'static str> {
        let c = self.caps;
        [
            (sys::cap::VIDEO_CAPTURE, "capture"),
            (sys::cap::VIDEO_CAPTURE_MPLANE, "capture (multi-planar)"),
            (sys::cap::VIDEO_OUTPUT, "output"),
            (sys::cap::VIDEO_OUTPUT_MPLANE, "output (multi-planar)"),
            (sys::cap::VIDEO_M2M, "memory-to-memory"),
            (sys::cap::VIDEO_M2M_MPLANE, "memory-to-memory (multi-planar)"),
            (sys::cap::META_CAPTURE, "metadata"),
            (sys::cap::STREAMING, "streaming"),
        ]
        .iter()
        .filter(|(bit, _)| c & bit != 0)
        .map(|(_, name)| *name)
        .collect()
    }
}

/// A frame size a format offers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrameSizes {
    /// One size, with the frame rates it offers.
    Discrete {
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
        /// Frame rates (frames per second as a fraction), highest first as the driver lists them.
        rates: Vec<Fps>,
    },
    /// Any size in a range, in steps.
    Range {
        /// Smallest (width, height).
        min: (u32, u32),
        /// Largest (width, height).
        max: (u32, u32),
        /// Step (width, height).
        step: (u32, u32),
    },
}

impl FrameSizes {
    /// True when `width`×`height` is one of these sizes.
    pub fn contains(&self, width: u32, height: u32) -> bool {
        match self {
            FrameSizes::Discrete {
                width: w, height: h, ..
            } => (*w, *h) == (width, height),
            FrameSizes::Range { min, max, step } => {
                let fits =
                    |v: u32, lo: u32, hi: u32, s: u32| (lo..=hi).contains(&v) && (v - lo).is_multiple_of(s.max(1));
                fits(width, min.0, max.0, step.0) && fits(height, min.1, max.1, step.1)
            }
        }
    }
}

impl fmt::Display for FrameSizes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameSizes::Discrete { width, height, rates } => {
                write!(f, "{width}x{height}")?;
                if !rates.is_empty() {
                    let rates: Vec<String> = rates.iter().map(|r| r.to_string()).collect();
                    write!(f, " @ {} fps", rates.join(", "))?;
                }
                Ok(())
            }
            FrameSizes::Range { min, max, step } => {
                write!(
                    f,
                    "{}x{} to {}x{} in steps of {}x{}",
                    min.0, min.1, max.0, max.1, step.0, step.1
                )
            }
        }
    }
}

/// A format a device offers, with its sizes.
#[derive(Clone, Debug)]
pub struct FormatDesc {
    /// The FourCC.
    pub fourcc: u32,
    /// The driver's description.
    pub description: String,
    /// A compressed format (MJPEG, H.264).
    pub compressed: bool,
    /// Frame sizes (empty when the driver does not enumerate them).
    pub sizes: Vec<FrameSizes>,
}

impl fmt::Display for FormatDesc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:<4} {}", fourcc_name(self.fourcc), self.description)?;
        if self.compressed {
            write!(f, " (compressed)")?;
        }
        for s in &self.sizes {
            write!(f, "\n       {s}")?;
        }
        Ok(())
    }
}

/// What to capture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Want {
    /// FourCC of the pixel or compressed format.
    pub fourcc: u32,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Frame rate; `None` keeps the device's.
    pub fps: Option<Fps>,
}

/// What the device agreed to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Negotiated {
    /// FourCC.
    pub fourcc: u32,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Bytes per line of the first plane (0 for compressed formats).
    pub bytes_per_line: u32,
    /// Bytes of a whole image (the most, for compressed formats).
    pub size_image: u32,
    /// The frame rate in effect (as the device reports it; the asked one if it reports none).
    pub fps: Option<Fps>,
}

/// The keys of a `v4l2` node.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct V4l2Options {
    /// The device node.
    pub device: std::path::PathBuf,
    /// FourCC of what to capture: a raw format (`YUYV`, `NV12`, `UYVY`, `YU12`,
    /// `RGB3`, `GREY`, …) gives frames; `MJPG`, `JPEG`, `H264` or `HEVC` gives
    /// packets, passed on without decoding.
    pub format: String,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Frame rate, e.g. `30` or `"30000/1001"`. Default: the device's.
    pub fps: Option<Fps>,
    /// Driver buffers. Frames and packets hold them downstream without
    /// copying; when readers hold all but one, the `v4l2` node copies each
    /// new one (counted as bytes copied) and hands the driver's back at once,
    /// so capture keeps its rate whatever readers hold.
    pub buffers: u32,
    /// Longest wait, in seconds, between attempts to reopen a device that is
    /// gone (unplugged, not there yet); waits double from 0.5 s up to this.
    pub retry_max_secs: f64,
}

impl Default for V4l2Options {
    fn default() -> Self {
        V4l2Options {
            device: "/dev/video0".into(),
            format: "YUYV".into(),
            width: 640,
            height: 480,
            fps: None,
            buffers: 4,
            retry_max_secs: 30.0,
        }
    }
}

impl V4l2Options {
    /// What these options ask the device for.
    pub fn want(&self) -> Result<Want, (&'static str, String)> {
        let fourcc = fourcc(&self.format).ok_or(("format", format!("`{}` is not a FourCC", self.format)))?;
        if Output::of(fourcc).is_none() {
            return Err((
                "format",
                format!(
                    "{} is neither a pixel format Eyrie handles ({}) nor MJPG, JPEG, H264 or HEVC",
                    self.format,
                    crate::media::PixelFormat::ALL
                        .map(|f| fourcc_name(f.fourcc()))
                        .join(", ")
                ),
            ));
        }
        if self.width == 0 || self.height == 0 {
            return Err(("width", "width and height must be at least 1".into()));
        }
        if self.buffers < 2 {
            return Err(("buffers", "must be at least 2".into()));
        }
        if !(self.retry_max_secs > 0.0 && self.retry_max_secs.is_finite()) {
            return Err(("retry_max_secs", "must be a positive number of seconds".into()));
        }
        Ok(Want {
            fourcc,
            width: self.width,
            height: self.height,
            fps: self.fps,
        })
    }
}

/// What a V4L2 format becomes downstream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// Raw frames.
    Frames(crate::media::PixelFormat),
    /// Encoded packets.
    Packets(crate::media::Codec),
}

impl Output {
    /// What `fourcc` becomes, if Eyrie handles it.
    pub fn of(fourcc: u32) -> Option<Output> {
        use crate::media::Codec;
        use eyrie_sys::pix_fmt;
        Some(match fourcc {
            pix_fmt::MJPEG | pix_fmt::JPEG => Output::Packets(Codec::Mjpeg),
            pix_fmt::H264 => Output::Packets(Codec::H264),
            pix_fmt::HEVC => Output::Packets(Codec::H265),
            f => Output::Frames(crate::media::PixelFormat::from_fourcc(f)?),
        })
    }
}

/// An open V4L2 device.
pub struct Device {
    node: Node,
    info: DeviceInfo,
}

impl fmt::Debug for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Device")
            .field("path", &self.node.path)
            .field("info", &self.info)
            .finish()
    }
}

impl Device {
    /// Opens a device node and queries its capabilities.
    pub fn open(path: &Path) -> Result<Device, V4l2Error> {
        let name = path.display().to_string();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(path)
            .map_err(|error| V4l2Error::Io {
                device: name.clone(),
                op: "open",
                error,
            })?;
        let node = Node {
            fd: file.into(),
            path: name,
        };
        let mut cap: sys::v4l2_capability = zeroed();
        node.ioctl("VIDIOC_QUERYCAP", sys::VIDIOC_QUERYCAP, &mut cap)?;
        let caps = if cap.capabilities & sys::cap::DEVICE_CAPS != 0 {
            cap.device_caps
        } else {
            cap.capabilities
        };
        Ok(Device {
            node,
            info: DeviceInfo {
                driver: c_string(&cap.driver),
                card: c_string(&cap.card),
                bus: c_string(&cap.bus_info),
                caps,
            },
        })
    }

    /// The device path.
    pub fn path(&self) -> &str {
        &self.node.path
    }

    /// What the device is.
    pub fn info(&self) -> &DeviceInfo {
        &self.info
    }

    pub(crate) fn ioctl<T>(&self, op: &'static str, request: u32, arg: &mut T) -> Result<(), V4l2Error> {
        self.node.ioctl(op, request, arg)
    }

    /// The open file descriptor (for mmap and poll).
    pub(crate) fn raw_fd(&self) -> RawFd {
        self.node.raw()
    }

    /// An I/O error of operation `op` on this device.
    pub(crate) fn io_error(&self, op: &'static str, error: io::Error) -> V4l2Error {
        self.node.io(op, error)
    }

    pub(crate) fn unsupported(&self, message: String) -> V4l2Error {
        V4l2Error::Unsupported {
            device: self.node.path.clone(),
            message,
        }
    }

    fn capture_type(&self) -> Result<u32, V4l2Error> {
        self.info.capture_type().ok_or_else(|| {
            self.unsupported(format!(
                "{} is not a capture device ({})",
                self.info.card,
                self.info.roles().join(", ")
            ))
        })
    }

    /// Calls an enumerating ioctl with index 0, 1, … until the driver says EINVAL.
    fn enumerate<T: Copy>(
        &self,
        op: &'static str,
        request: u32,
        mut make: impl FnMut(u32) -> T,
    ) -> Result<Vec<T>, V4l2Error> {
        let mut out = Vec::new();
        for index in 0.. {
            let mut v = make(index);
            match ioctl(self.node.raw(), request, &mut v) {
                Ok(()) => out.push(v),
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => break,
                Err(e) => return Err(self.node.io(op, e)),
            }
        }
        Ok(out)
    }

    /// The capture formats, each with its frame sizes and, for discrete sizes, rates.
    pub fn formats(&self) -> Result<Vec<FormatDesc>, V4l2Error> {
        let type_ = self.capture_type()?;
        let descs = self.enumerate("VIDIOC_ENUM_FMT", sys::VIDIOC_ENUM_FMT, |index| sys::v4l2_fmtdesc {
            index,
            type_,
            ..zeroed()
        })?;
        descs
            .iter()
            .map(|d| {
                Ok(FormatDesc {
                    fourcc: d.pixelformat,
                    description: c_string(&d.description),
                    compressed: d.flags & sys::fmt_flag::COMPRESSED != 0,
                    sizes: self.sizes(d.pixelformat)?,
                })
            })
            .collect()
    }

    fn sizes(&self, fourcc: u32) -> Result<Vec<FrameSizes>, V4l2Error> {
        let raw = self.enumerate("VIDIOC_ENUM_FRAMESIZES", sys::VIDIOC_ENUM_FRAMESIZES, |index| {
            sys::v4l2_frmsizeenum {
                index,
                pixel_format: fourcc,
                ..zeroed()
            }
        })?;
        let mut out = Vec::new();
        for s in raw {
            if s.type_ == sys::frm_type::DISCRETE {
                // SAFETY: the driver filled the union member its type names.
                let d = unsafe { s.u.discrete };
                out.push(FrameSizes::Discrete {
                    width: d.width,
                    height: d.height,
                    rates: self.rates(fourcc, d.width, d.height)?,
                });
            } else {
                // SAFETY: as above; continuous sizes are stepwise with steps of 1.
                let w = unsafe { s.u.stepwise };
                out.push(FrameSizes::Range {
                    min: (w.min_width, w.min_height),
                    max: (w.max_width, w.max_height),
                    step: (w.step_width.max(1), w.step_height.max(1)),
                });
                break; // a stepwise size is the only entry
            }
        }
        Ok(out)
    }

    fn rates(&self, fourcc: u32, width: u32, height: u32) -> Result<Vec<Fps>, V4l2Error> {
        let raw = self.enumerate("VIDIOC_ENUM_FRAMEINTERVALS", sys::VIDIOC_ENUM_FRAMEINTERVALS, |index| {
            sys::v4l2_frmivalenum {
                index,
                pixel_format: fourcc,
                width,
                height,
                ..zeroed()
            }
        })?;
        Ok(raw
            .iter()
            .filter(|i| i.type_ == sys::frm_type::DISCRETE)
            // SAFETY: the driver filled the member its type names. An interval
            // of n/d seconds is a rate of d/n frames per second.
            .filter_map(|i| {
                let d = unsafe { i.u.discrete };
                Fps::new(d.denominator, d.numerator).ok()
            })
            .collect())
    }

    /// Sets the format, size and rate; when the device cannot, the error lists
    /// what it can do.
    pub fn configure(&self, want: &Want) -> Result<Negotiated, V4l2Error> {
        let type_ = self.capture_type()?;
        let mplane = type_ == sys::buf_type::VIDEO_CAPTURE_MPLANE;
        let mut f = sys::v4l2_format { type_, ..zeroed() };
        if mplane {
            f.fmt.pix_mp = sys::v4l2_pix_format_mplane {
                width: want.width,
                height: want.height,
                pixelformat: want.fourcc,
                field: sys::field::NONE,
                ..Default::default()
            };
        } else {
            f.fmt.pix = sys::v4l2_pix_format {
                width: want.width,
                height: want.height,
                pixelformat: want.fourcc,
                field: sys::field::NONE,
                ..Default::default()
            };
        }
        self.ioctl("VIDIOC_S_FMT", sys::VIDIOC_S_FMT, &mut f)?;
        // SAFETY: the driver filled the member of the type we set.
        let (fourcc, width, height, bpl, size, planes) = unsafe {
            if mplane {
                let p = f.fmt.pix_mp;
                let plane = p.plane_fmt[0];
                (
                    p.pixelformat,
                    p.width,
                    p.height,
                    plane.bytesperline,
                    plane.sizeimage,
                    p.num_planes,
                )
            } else {
                let p = f.fmt.pix;
                (p.pixelformat, p.width, p.height, p.bytesperline, p.sizeimage, 1)
            }
        };
        if (fourcc, width, height) != (want.fourcc, want.width, want.height) {
            return Err(self.cannot(
                format!(
                    "cannot capture {} {}x{} (the driver offered {} {width}x{height})",
                    fourcc_name(want.fourcc),
                    want.width,
                    want.height,
                    fourcc_name(fourcc)
                ),
                want.fourcc,
            ));
        }
        if planes != 1 {
            return Err(self.unsupported(format!(
                "{} keeps its image in {planes} memory planes; only single-plane layouts are supported \
                 (ask for the contiguous variant, e.g. NV12 rather than NM12)",
                fourcc_name(fourcc)
            )));
        }
        let fps = match want.fps {
            Some(fps) => Some(self.set_rate(type_, fps, want)?),
            None => self.rate(type_)?,
        };
        Ok(Negotiated {
            fourcc,
            width,
            height,
            bytes_per_line: bpl,
            size_image: size,
            fps,
        })
    }

    /// An error saying `what` cannot be done for `fourcc`, with what the device
    /// offers: every size and rate of that format, and the other formats' names.
    fn cannot(&self, what: String, fourcc: u32) -> V4l2Error {
        let offers = match self.formats() {
            Ok(formats) => {
                let mut text = String::from("; it can capture ");
                let names: Vec<String> = formats.iter().map(|f| fourcc_name(f.fourcc)).collect();
                text += &names.join(", ");
                if let Some(f) = formats.iter().find(|f| f.fourcc == fourcc) {
                    text += &format!("; {f}");
                }
                text
            }
            Err(e) => format!("; its formats could not be listed: {e}"),
        };
        self.unsupported(format!("{what}{offers}"))
    }

    fn parm(&self, type_: u32) -> Result<sys::v4l2_captureparm, V4l2Error> {
        let mut p = sys::v4l2_streamparm { type_, ..zeroed() };
        self.ioctl("VIDIOC_G_PARM", sys::VIDIOC_G_PARM, &mut p)?;
        // SAFETY: a capture type fills the capture member.
        Ok(unsafe { p.parm.capture })
    }

    /// The rate in effect, when the device reports one.
    fn rate(&self, type_: u32) -> Result<Option<Fps>, V4l2Error> {
        let c = match self.parm(type_) {
            Ok(c) => c,
            Err(V4l2Error::Io { error, .. }) if error.raw_os_error() == Some(libc::ENOTTY) => return Ok(None),
            Err(e) => return Err(e),
        };
        let t = c.timeperframe;
        Ok(Fps::new(t.denominator, t.numerator).ok())
    }

    fn set_rate(&self, type_: u32, fps: Fps, want: &Want) -> Result<Fps, V4l2Error> {
        let c = self.parm(type_)?;
        if c.capability & sys::cap::TIMEPERFRAME == 0 {
            return Err(self.cannot(format!("cannot set a frame rate ({fps} fps asked)"), want.fourcc));
        }
        let mut p = sys::v4l2_streamparm { type_, ..zeroed() };
        p.parm.capture = sys::v4l2_captureparm {
            timeperframe: sys::v4l2_fract {
                numerator: fps.den,
                denominator: fps.num,
            },
            ..c
        };
        self.ioctl("VIDIOC_S_PARM", sys::VIDIOC_S_PARM, &mut p)?;
        let got = self.rate(type_)?;
        if got.is_some_and(|g| g.as_f64() != fps.as_f64()) {
            let got = got.map_or_else(String::new, |g| g.to_string());
            return Err(self.cannot(
                format!(
                    "cannot capture {} {}x{} at {fps} fps (the driver offered {got} fps)",
                    fourcc_name(want.fourcc),
                    want.width,
                    want.height
                ),
                want.fourcc,
            ));
        }
        Ok(fps)
    }

    /// Allocates `count` driver buffers, maps them, queues them and starts streaming.
    pub fn stream(self, count: u32) -> Result<Stream, V4l2Error> {
        let type_ = self.capture_type()?;
        let mplane = type_ == sys::buf_type::VIDEO_CAPTURE_MPLANE;
        let mut req = sys::v4l2_requestbuffers {
            count,
            type_,
            memory: sys::memory::MMAP,
            ..Default::default()
        };
        self.ioctl("VIDIOC_REQBUFS", sys::VIDIOC_REQBUFS, &mut req)?;
        if req.count == 0 {
            return Err(self.unsupported("the driver granted no MMAP buffers".into()));
        }
        let mut shared = Shared {
            node: self.node,
            type_,
            mplane,
            buffers: Vec::with_capacity(req.count as usize),
            streaming: AtomicBool::new(false),
            requeue_failures: AtomicU64::new(0),
            queued: AtomicUsize::new(0),
        };
        for index in 0..req.count {
            let mut plane: sys::v4l2_plane = zeroed();
            let mut b = shared.buffer(index, &mut plane);
            shared.node.ioctl("VIDIOC_QUERYBUF", sys::VIDIOC_QUERYBUF, &mut b)?;
            // SAFETY: the driver filled the members of the memory type we asked for.
            let (offset, len) = unsafe {
                if mplane {
                    (plane.m.mem_offset, plane.length)
                } else {
                    (b.m.offset, b.length)
                }
            };
            // SAFETY: maps the driver buffer at the offset the driver gave; the
            // mapping is released in `Shared::drop`.
            let ptr = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    len as usize,
                    libc::PROT_READ,
                    libc::MAP_SHARED,
                    shared.node.raw(),
                    offset as libc::off_t,
                )
            };
            if ptr == libc::MAP_FAILED {
                return Err(shared.node.io("mmap", io::Error::last_os_error()));
            }
            let mut exp = sys::v4l2_exportbuffer {
                type_,
                index,
                flags: (libc::O_CLOEXEC | libc::O_RDONLY) as u32,
                ..Default::default()
            };
            // SAFETY: on success the kernel gave us this new descriptor.
            let dmabuf = ioctl(shared.node.raw(), sys::VIDIOC_EXPBUF, &mut exp)
                .ok()
                .map(|()| unsafe { OwnedFd::from_raw_fd(exp.fd) });
            shared.buffers.push(Mapping {
                ptr: ptr.cast(),
                len: len as usize,
                dmabuf,
            });
        }
        for index in 0..req.count {
            shared.queue(index).map_err(|e| shared.node.io("VIDIOC_QBUF", e))?;
        }
        let mut t = type_ as i32;
        shared.node.ioctl("VIDIOC_STREAMON", sys::VIDIOC_STREAMON, &mut t)?;
        shared.streaming.store(true, Ordering::Release);
        Ok(Stream {
            shared: Arc::new(shared),
        })
    }
}

/// A driver buffer mapped into this process.
struct Mapping {
    ptr: *const u8,
    len: usize,
    /// Its DMABUF export, when the driver offers one.
    dmabuf: Option<OwnedFd>,
}

/// A streaming device, shared by the stream and every lease on its buffers.
struct Shared {
    node: Node,
    type_: u32,
    mplane: bool,
    buffers: Vec<Mapping>,
    streaming: AtomicBool,
    requeue_failures: AtomicU64,
    /// Buffers with the driver now (queued, not yet dequeued).
    queued: AtomicUsize,
}

// SAFETY: the mappings are read-only views that stay valid until `Shared` is
// dropped (after every lease); the driver writes a buffer only while it is
// queued, and a queued buffer has no lease.
unsafe impl Send for Shared {}
// SAFETY: as above; the rest is atomics and immutable data.
unsafe impl Sync for Shared {}

impl Shared {
    /// A `v4l2_buffer` for MMAP buffer `index`; multi-planar ones point at `plane`.
    fn buffer(&self, index: u32, plane: &mut sys::v4l2_plane) -> sys::v4l2_buffer {
        let mut b = sys::v4l2_buffer {
            index,
            type_: self.type_,
            memory: sys::memory::MMAP,
            ..zeroed()
        };
        if self.mplane {
            b.m.planes = plane;
            b.length = 1;
        }
        b
    }

    fn queue(&self, index: u32) -> io::Result<()> {
        let mut plane: sys::v4l2_plane = zeroed();
        let mut b = self.buffer(index, &mut plane);
        ioctl(self.node.raw(), sys::VIDIOC_QBUF, &mut b)?;
        self.queued.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // The stream has stopped the device (`Stream::drop`); the fd closes with `node`.
        for m in &self.buffers {
            // SAFETY: unmaps what `Device::stream` mapped; no lease is left.
            unsafe { libc::munmap(m.ptr as *mut libc::c_void, m.len) };
        }
    }
}

/// A lease on one dequeued driver buffer; queues it back when dropped.
struct Lease {
    shared: Arc<Shared>,
    index: u32,
    len: usize,
}

impl Memory for Lease {
    fn bytes(&self) -> &[u8] {
        let m = &self.shared.buffers[self.index as usize];
        // SAFETY: the mapping is valid while `shared` lives, and the driver does
        // not write a dequeued buffer; `len` ≤ the mapping's length.
        unsafe { std::slice::from_raw_parts(m.ptr, self.len.min(m.len)) }
    }

    fn bytes_mut(&mut self) -> Option<&mut [u8]> {
        None
    }

    fn kind(&self) -> MemoryKind {
        MemoryKind::Mmap
    }

    fn dmabuf_fd(&self) -> Option<BorrowedFd<'_>> {
        self.shared.buffers[self.index as usize]
            .dmabuf
            .as_ref()
            .map(|fd| fd.as_fd())
    }
}

impl AsRef<[u8]> for Lease {
    fn as_ref(&self) -> &[u8] {
        self.bytes()
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if self.shared.streaming.load(Ordering::Acquire) && self.shared.queue(self.index).is_err() {
            self.shared.requeue_failures.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// One dequeued buffer.
pub struct Captured {
    lease: Lease,
    /// The driver's frame counter (gaps are frames it dropped).
    pub sequence: u32,
    /// When the driver captured it, on `CLOCK_MONOTONIC` (ns), if it says so.
    pub timestamp_ns: Option<i64>,
    /// The driver flagged the data as corrupted.
    pub corrupted: bool,
}

impl Captured {
    /// The buffer as a frame lease (queued back when the last holder drops it).
    pub fn into_buffer(self) -> Buffer {
        Buffer::new(self.lease)
    }

    /// The buffer as packet bytes (queued back when the last holder drops them).
    pub fn into_bytes(self) -> bytes::Bytes {
        bytes::Bytes::from_owner(self.lease)
    }

    /// The captured bytes.
    pub fn bytes(&self) -> &[u8] {
        self.lease.bytes()
    }
}

/// A device that is streaming.
pub struct Stream {
    shared: Arc<Shared>,
}

impl Stream {
    /// The next captured buffer; `None` when none came within `timeout` (all
    /// buffers may be held downstream). Errors when the device fails or is gone.
    pub fn next(&mut self, timeout: Duration) -> Result<Option<Captured>, V4l2Error> {
        let mut pfd = libc::pollfd {
            fd: self.shared.node.raw(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut pfd, 1, ms) };
        if r < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted {
                Ok(None)
            } else {
                Err(self.shared.node.io("poll", e))
            };
        }
        if r == 0 {
            return Ok(None);
        }
        let mut plane: sys::v4l2_plane = zeroed();
        let mut b = self.shared.buffer(0, &mut plane);
        match ioctl(self.shared.node.raw(), sys::VIDIOC_DQBUF, &mut b) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => {
                if pfd.revents & libc::POLLERR != 0 {
                    // Nothing to dequeue and an error condition: don't spin.
                    std::thread::sleep(timeout.min(Duration::from_millis(10)));
                }
                return Ok(None);
            }
            Err(e) => return Err(self.shared.node.io("VIDIOC_DQBUF", e)),
        }
        self.shared.queued.fetch_sub(1, Ordering::AcqRel);
        let len = if self.shared.mplane {
            plane.bytesused
        } else {
            b.bytesused
        } as usize;
        let monotonic = b.flags & sys::buf_flag::TIMESTAMP_MASK == sys::buf_flag::TIMESTAMP_MONOTONIC;
        let ts = b.timestamp.tv_sec * 1_000_000_000 + b.timestamp.tv_usec * 1000;
        Ok(Some(Captured {
            lease: Lease {
                shared: Arc::clone(&self.shared),
                index: b.index,
                len,
            },
            sequence: b.sequence,
            timestamp_ns: (monotonic && ts > 0).then_some(ts),
            corrupted: b.flags & sys::buf_flag::ERROR != 0,
        }))
    }

    /// The device path.
    pub fn device(&self) -> &str {
        &self.shared.node.path
    }

    /// Driver buffers in this stream.
    pub fn buffer_count(&self) -> usize {
        self.shared.buffers.len()
    }

    /// Driver buffers the driver has to fill now: the others are dequeued
    /// and held (by leases). At 0 capture stops until a holder lets one go.
    pub fn queued(&self) -> usize {
        self.shared.queued.load(Ordering::Acquire)
    }

    /// Leases that failed to queue their buffer back (the device went away).
    pub fn requeue_failures(&self) -> u64 {
        self.shared.requeue_failures.load(Ordering::Relaxed)
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        // Leases outliving the stream keep their memory but no longer queue it.
        self.shared.streaming.store(false, Ordering::Release);
        // Stop the device now, not when the last lease goes, and give up the
        // buffer queue so that a reopen can configure it (vb2 keeps buffers
        // still mapped alive until they are unmapped). Errors are moot: the
        // device may be gone.
        let fd = self.shared.node.raw();
        let mut t = self.shared.type_ as i32;
        let _ = ioctl(fd, sys::VIDIOC_STREAMOFF, &mut t);
        let mut release = sys::v4l2_requestbuffers {
            count: 0,
            type_: self.shared.type_,
            memory: sys::memory::MMAP,
            ..Default::default()
        };
        let _ = ioctl(fd, sys::VIDIOC_REQBUFS, &mut release);
    }
}

/// `CLOCK_MONOTONIC` now, in ns: the clock V4L2 timestamps use.
pub fn monotonic_ns() -> i64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a valid timespec to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

/// The V4L2 video device nodes (`/dev/videoN`), in number order.
pub fn device_paths() -> Vec<std::path::PathBuf> {
    let mut found: Vec<(u32, std::path::PathBuf)> = std::fs::read_dir("/dev")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            let n = name.strip_prefix("video")?.parse().ok()?;
            Some((n, e.path()))
        })
        .collect();
    found.sort();
    found.into_iter().map(|(_, p)| p).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fourcc_names_round_trip() {
        assert_eq!(fourcc("YUYV"), Some(eyrie_sys::pix_fmt::YUYV));
        assert_eq!(fourcc_name(eyrie_sys::pix_fmt::NV12), "NV12");
        assert_eq!(fourcc("Y8"), fourcc("Y8  "));
        assert_eq!(fourcc_name(fourcc("Y8").unwrap()), "Y8");
        assert_eq!(fourcc(""), None);
        assert_eq!(fourcc("TOOLONG"), None);
    }

    #[test]
    fn frame_size_ranges_respect_their_steps() {
        let r = FrameSizes::Range {
            min: (16, 16),
            max: (1920, 1080),
            step: (16, 8),
        };
        assert!(r.contains(640, 480));
        assert!(!r.contains(642, 480));
        assert!(!r.contains(1936, 480));
        assert_eq!(r.to_string(), "16x16 to 1920x1080 in steps of 16x8");
    }

    #[test]
    fn a_missing_device_is_gone_and_named() {
        let e = Device::open(Path::new("/dev/video-eyrie-none")).unwrap_err();
        assert!(e.is_gone());
        assert!(e.to_string().starts_with("/dev/video-eyrie-none: open:"), "{e}");
    }
}

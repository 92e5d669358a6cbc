//! V4L2 memory-to-memory codecs, the stateful interface of Jetson's
//! NVENC/NVDEC, Raspberry Pi's and most SoCs' codecs (Linux media uapi,
//! "Memory-to-Memory Stateful Video Encoder Interface" and "... Decoder
//! Interface"), tested against the kernel's `vicodec`.
//!
//! Both queues are multi-planar with one memory plane (YUV420, NV12 and the
//! coded formats are single-buffer layouts). The encoder: format on the
//! coded (CAPTURE) queue first, then the raw (OUTPUT) queue; MMAP buffers on
//! both; STREAMON; each frame is written into a free OUTPUT buffer (its
//! sequence number as the buffer timestamp, which the driver copies to the
//! coded buffer) and its packet dequeued from CAPTURE; the end is drained
//! with `V4L2_ENC_CMD_STOP` until a buffer carries `V4L2_BUF_FLAG_LAST`.
//! Rate, GOP, quantizers, profile/level and forced keyframes are the
//! standard codec controls; a driver without `FORCE_KEY_FRAME` (vicodec)
//! gets its keyframe by a restart of the CAPTURE queue, which the interface
//! defines as a new sequence. The decoder queues coded packets, waits for
//! the `SOURCE_CHANGE` event to learn the decoded format, then sets up
//! CAPTURE; its drain is `V4L2_DEC_CMD_STOP`.
//!
//! Zero copy where the memory allows: a frame that leases a DMABUF (a V4L2
//! capture buffer, exported with `VIDIOC_EXPBUF`) laid out as the encoder
//! reads it is imported into the OUTPUT queue (`V4L2_MEMORY_DMABUF`) and its
//! lease is held until the device returns the buffer; other frames are
//! copied into MMAP buffers (counted as copies). The OUTPUT queue's memory
//! follows the frames: set up at the first frame, switched when a frame of
//! the other kind comes (a relink). Decoded pictures are leases on the
//! decoder's CAPTURE buffers, queued back when the last holder drops them; a
//! consumer that holds every one of them makes the decoder drop packets (up
//! to the next keyframe, counted) rather than stall.

use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use eyrie_sys::pix_fmt;
use eyrie_sys::v4l2 as sys;

use super::packetize::Stamp;
use super::{Change, EncodeError, Encoder, EncoderSettings, Packetizer, Profile, RateControl, StageTimes};
use crate::capture::v4l2::{Device, V4l2Error, fourcc_name, zeroed};
use crate::media::{Buffer, Codec, Frame, Memory, MemoryKind, Packet, PixelFormat, VideoInfo};

const NAME: &str = "v4l2m2m";
/// Buffers asked for on each queue.
const BUFFERS: u32 = 4;
/// How long a device may take to return a buffer before it counts as hung.
const TIMEOUT_MS: i32 = 2000;

fn fail(e: impl std::fmt::Display) -> EncodeError {
    EncodeError::failed(NAME, e)
}

fn v4l2(e: V4l2Error) -> EncodeError {
    fail(e)
}

fn coded_fourcc(codec: Codec) -> u32 {
    match codec {
        Codec::H264 => pix_fmt::H264,
        Codec::H265 => pix_fmt::HEVC,
        Codec::Vp9 => pix_fmt::VP9,
        Codec::Mjpeg => pix_fmt::MJPEG,
        Codec::Fwht => pix_fmt::FWHT,
    }
}

/// One queue's MMAP buffers, mapped read-write.
struct Mapped {
    type_: u32,
    buffers: Vec<(*mut u8, usize)>,
}

// SAFETY: the mappings belong to the encoder/decoder that owns this value and
// are used from one thread at a time.
unsafe impl Send for Mapped {}

impl Mapped {
    fn none(type_: u32) -> Self {
        Mapped {
            type_,
            buffers: Vec::new(),
        }
    }

    /// Requests `count` MMAP buffers on `type_` and maps them.
    fn request(dev: &Device, type_: u32, count: u32) -> Result<Mapped, V4l2Error> {
        let mut req = sys::v4l2_requestbuffers {
            count,
            type_,
            memory: sys::memory::MMAP,
            ..Default::default()
        };
        dev.ioctl("VIDIOC_REQBUFS", sys::VIDIOC_REQBUFS, &mut req)?;
        if req.count == 0 {
            return Err(dev.unsupported(format!("no MMAP buffers granted on queue type {type_}")));
        }
        let mut mapped = Mapped::none(type_);
        for index in 0..req.count {
            let mut plane: sys::v4l2_plane = zeroed();
            let mut b = buffer(type_, sys::memory::MMAP, index, &mut plane);
            dev.ioctl("VIDIOC_QUERYBUF", sys::VIDIOC_QUERYBUF, &mut b)?;
            // SAFETY: QUERYBUF filled the MMAP member of the plane.
            let (offset, len) = unsafe { (plane.m.mem_offset, plane.length as usize) };
            // SAFETY: maps the driver buffer at the offset it gave; unmapped in `release`.
            let ptr = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED,
                    dev.raw_fd(),
                    offset as libc::off_t,
                )
            };
            if ptr == libc::MAP_FAILED {
                let e = io::Error::last_os_error();
                mapped.release(dev);
                return Err(dev.io_error("mmap", e));
            }
            mapped.buffers.push((ptr.cast(), len));
        }
        Ok(mapped)
    }

    fn slice(&mut self, index: u32) -> &mut [u8] {
        let (ptr, len) = self.buffers[index as usize];
        // SAFETY: a live mapping of `len` bytes, not queued to the driver while we touch it.
        unsafe { std::slice::from_raw_parts_mut(ptr, len) }
    }

    /// Unmaps the buffers and frees them in the driver (the queue must be stopped).
    fn release(&mut self, dev: &Device) {
        for (ptr, len) in self.buffers.drain(..) {
            // SAFETY: unmaps what `request` mapped.
            unsafe { libc::munmap(ptr.cast(), len) };
        }
        let mut req = sys::v4l2_requestbuffers {
            count: 0,
            type_: self.type_,
            memory: sys::memory::MMAP,
            ..Default::default()
        };
        // Best effort at teardown: the fd closes right after.
        let _ = dev.ioctl("VIDIOC_REQBUFS", sys::VIDIOC_REQBUFS, &mut req);
    }
}

/// A multi-planar `v4l2_buffer` of `memory` for `index`, pointing at `plane`.
fn buffer(type_: u32, memory: u32, index: u32, plane: &mut sys::v4l2_plane) -> sys::v4l2_buffer {
    let mut b = sys::v4l2_buffer {
        index,
        type_,
        memory,
        ..zeroed()
    };
    b.m.planes = plane;
    b.length = 1;
    b
}

/// Queues MMAP buffer `index` of `type_` holding `bytesused` bytes, stamped `seq`.
fn queue(dev: &Device, type_: u32, index: u32, bytesused: u32, seq: u64) -> Result<(), V4l2Error> {
    let mut plane: sys::v4l2_plane = zeroed();
    plane.bytesused = bytesused;
    queue_plane(dev, type_, sys::memory::MMAP, index, plane, seq).map_err(|e| dev.io_error("VIDIOC_QBUF", e))
}

/// Queues buffer `index` described by `plane`, stamped `seq` (the driver
/// copies the stamp to the buffer that comes out for it).
fn queue_plane(
    dev: &Device,
    type_: u32,
    memory: u32,
    index: u32,
    mut plane: sys::v4l2_plane,
    seq: u64,
) -> io::Result<()> {
    let mut b = buffer(type_, memory, index, &mut plane);
    b.timestamp = sys::timeval {
        tv_sec: (seq / 1_000_000) as i64,
        tv_usec: (seq % 1_000_000) as i64,
    };
    crate::capture::v4l2::ioctl(dev.raw_fd(), sys::VIDIOC_QBUF, &mut b)
}

/// A dequeued buffer: index, bytes used, flags, and the stamp it carries.
struct Done {
    index: u32,
    bytes: usize,
    flags: u32,
    seq: u64,
}

enum Dequeued {
    Buffer(Done),
    /// Nothing ready yet.
    Empty,
    /// The queue is drained (EPIPE after the last buffer).
    Ended,
}

fn dequeue(dev: &Device, type_: u32, memory: u32) -> Result<Dequeued, V4l2Error> {
    let mut plane: sys::v4l2_plane = zeroed();
    let mut b = buffer(type_, memory, 0, &mut plane);
    match crate::capture::v4l2::ioctl(dev.raw_fd(), sys::VIDIOC_DQBUF, &mut b) {
        Ok(()) => Ok(Dequeued::Buffer(Done {
            index: b.index,
            bytes: plane.bytesused.saturating_sub(plane.data_offset) as usize,
            flags: b.flags,
            seq: b.timestamp.tv_sec as u64 * 1_000_000 + b.timestamp.tv_usec as u64,
        })),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(Dequeued::Empty),
        Err(e) if e.raw_os_error() == Some(libc::EPIPE) => Ok(Dequeued::Ended),
        Err(e) => Err(dev.io_error("VIDIOC_DQBUF", e)),
    }
}

/// Waits for `events` on the device; false on timeout.
fn wait(dev: &Device, events: i16) -> Result<bool, V4l2Error> {
    let mut fd = libc::pollfd {
        fd: dev.raw_fd(),
        events,
        revents: 0,
    };
    loop {
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut fd, 1, TIMEOUT_MS) };
        if r >= 0 {
            return Ok(r > 0);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(dev.io_error("poll", e));
        }
    }
}

fn stream(dev: &Device, type_: u32, on: bool) -> Result<(), V4l2Error> {
    let mut t = type_ as i32;
    if on {
        dev.ioctl("VIDIOC_STREAMON", sys::VIDIOC_STREAMON, &mut t)
    } else {
        dev.ioctl("VIDIOC_STREAMOFF", sys::VIDIOC_STREAMOFF, &mut t)
    }
}

/// Sets a control and returns the value the driver kept (drivers clamp to
/// their range); `None` when the driver has no such control.
fn set_control(dev: &Device, id: u32, value: i32) -> Result<Option<i32>, V4l2Error> {
    let mut c = sys::v4l2_control { id, value };
    match crate::capture::v4l2::ioctl(dev.raw_fd(), sys::VIDIOC_S_CTRL, &mut c) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => return Ok(None),
        Err(e) => return Err(dev.io_error("VIDIOC_S_CTRL", e)),
    }
    // Button controls (a forced keyframe) read back as nothing: keep what was set.
    Ok(Some(
        match crate::capture::v4l2::ioctl(dev.raw_fd(), sys::VIDIOC_G_CTRL, &mut c) {
            Ok(()) => c.value,
            Err(_) => value,
        },
    ))
}

/// Sets the multi-planar format of `type_`; returns what the driver chose.
fn set_format(
    dev: &Device,
    type_: u32,
    fourcc: u32,
    width: u32,
    height: u32,
) -> Result<sys::v4l2_pix_format_mplane, V4l2Error> {
    let mut f = sys::v4l2_format { type_, ..zeroed() };
    f.fmt.pix_mp = sys::v4l2_pix_format_mplane {
        width,
        height,
        pixelformat: fourcc,
        num_planes: 1,
        ..Default::default()
    };
    dev.ioctl("VIDIOC_S_FMT", sys::VIDIOC_S_FMT, &mut f)?;
    // SAFETY: the driver filled the member of the type we asked for.
    Ok(unsafe { f.fmt.pix_mp })
}

fn get_format(dev: &Device, type_: u32) -> Result<sys::v4l2_pix_format_mplane, V4l2Error> {
    let mut f = sys::v4l2_format { type_, ..zeroed() };
    dev.ioctl("VIDIOC_G_FMT", sys::VIDIOC_G_FMT, &mut f)?;
    // SAFETY: as in `set_format`.
    Ok(unsafe { f.fmt.pix_mp })
}

/// Opens `path` and checks it is a multi-planar M2M device.
fn open_m2m(path: &Path) -> Result<Device, EncodeError> {
    let dev = Device::open(path).map_err(v4l2)?;
    let caps = dev.info().caps;
    if caps & sys::cap::VIDEO_M2M_MPLANE == 0 {
        return Err(EncodeError::Unsupported {
            backend: NAME,
            what: format!(
                "use {} ({}): it is not a multi-planar memory-to-memory device",
                path.display(),
                dev.info().card
            ),
            supported: "V4L2 M2M multi-planar codec devices (`eyrie probe` lists each device's role)".into(),
        });
    }
    Ok(dev)
}

/// Raw formats the M2M path writes (single-buffer layouts).
const RAW: &[PixelFormat] = &[
    PixelFormat::I420,
    PixelFormat::Nv12,
    PixelFormat::Yuyv,
    PixelFormat::Gray8,
];

/// How frames reach the encoder's OUTPUT queue.
enum Input {
    /// No frame yet: the first one decides.
    Unset,
    /// Copied into the device's own (MMAP) buffers.
    Copied(Mapped),
    /// Imported by DMABUF: the frame queued in each buffer, held (its
    /// capture buffer with it) until the device returns the buffer.
    Imported(Vec<Option<Frame>>),
}

impl Input {
    fn memory(&self) -> u32 {
        match self {
            Input::Imported(_) => sys::memory::DMABUF,
            _ => sys::memory::MMAP,
        }
    }
}

/// A V4L2 M2M stateful encoder.
pub struct M2mEncoder {
    dev: Device,
    path: String,
    settings: EncoderSettings,
    info: VideoInfo,
    /// Where each plane of a frame goes in an OUTPUT buffer (`device_planes`).
    layout: Vec<(usize, usize, usize)>,
    input: Input,
    capture: Mapped,
    /// OUTPUT buffers the device has given back.
    free: Vec<u32>,
    stamps: HashMap<u64, Stamp>,
    packetizer: Packetizer,
    times: StageTimes,
    formats: Vec<PixelFormat>,
}

impl M2mEncoder {
    /// Opens the encoder at `path` for frames like `info`.
    pub fn new(path: &Path, settings: &EncoderSettings, info: &VideoInfo) -> Result<Self, EncodeError> {
        let dev = open_m2m(path)?;
        let name = path.display().to_string();
        let coded = coded_fourcc(settings.codec);
        let capture_type = sys::buf_type::VIDEO_CAPTURE_MPLANE;
        let output_type = sys::buf_type::VIDEO_OUTPUT_MPLANE;
        // The coded format first: it decides which raw formats the OUTPUT queue offers.
        let got = set_format(&dev, capture_type, coded, info.width, info.height).map_err(v4l2)?;
        if got.pixelformat != coded {
            return Err(EncodeError::Unsupported {
                backend: NAME,
                what: format!("encode {} on {name}", settings.codec),
                supported: format!("what the device produces: {}", fourcc_name(got.pixelformat)),
            });
        }
        let formats: Vec<PixelFormat> = enum_formats(&dev, output_type)
            .into_iter()
            .filter_map(PixelFormat::from_fourcc)
            .filter(|f| RAW.contains(f))
            .collect();
        super::check_input(NAME, info, &formats, (16384, 16384))?;
        let raw = set_format(&dev, output_type, info.format.fourcc(), info.width, info.height).map_err(v4l2)?;
        if raw.pixelformat != info.format.fourcc() || raw.width != info.width || raw.height != info.height {
            return Err(EncodeError::Unsupported {
                backend: NAME,
                what: format!("encode {} {}x{} on {name}", info.format, info.width, info.height),
                supported: format!("{}x{} {}", { raw.width }, { raw.height }, fourcc_name(raw.pixelformat)),
            });
        }
        let layout = device_planes(info, raw.plane_fmt[0].bytesperline as usize);
        let mut enc = M2mEncoder {
            input: Input::Unset,
            capture: Mapped::request(&dev, capture_type, BUFFERS).map_err(v4l2)?,
            dev,
            path: name,
            settings: settings.clone(),
            info: *info,
            layout,
            free: Vec::new(),
            stamps: HashMap::new(),
            packetizer: Packetizer::new(NAME, settings.codec, info.width, info.height),
            times: StageTimes::default(),
            formats,
        };
        enc.configure()?;
        enc.start_capture()?;
        Ok(enc)
    }

    /// Whether `frame` can be imported as it is: a DMABUF laid out as the
    /// device reads its OUTPUT buffers.
    fn importable(&self, frame: &Frame) -> bool {
        frame.buffer.dmabuf_fd().is_some()
            && frame.info.planes().len() == self.layout.len()
            && frame
                .info
                .planes()
                .iter()
                .zip(&self.layout)
                .all(|(p, &(at, pitch, rows))| p.offset == at && p.stride == pitch && p.rows == rows)
    }

    /// Sets the OUTPUT queue up for copied or imported frames (stopping it
    /// first if it ran with the other kind: the device gives every buffer back).
    fn set_input(&mut self, import: bool) -> Result<(), EncodeError> {
        let output_type = sys::buf_type::VIDEO_OUTPUT_MPLANE;
        match std::mem::replace(&mut self.input, Input::Unset) {
            Input::Unset => {}
            old => {
                stream(&self.dev, output_type, false).map_err(v4l2)?;
                if let Input::Copied(mut mapped) = old {
                    mapped.release(&self.dev);
                } else {
                    request(&self.dev, output_type, sys::memory::DMABUF, 0).map_err(v4l2)?;
                }
            }
        }
        self.input = if import {
            let n = request(&self.dev, output_type, sys::memory::DMABUF, BUFFERS).map_err(v4l2)?;
            Input::Imported((0..n).map(|_| None).collect())
        } else {
            Input::Copied(Mapped::request(&self.dev, output_type, BUFFERS).map_err(v4l2)?)
        };
        let n = match &self.input {
            Input::Imported(held) => held.len(),
            Input::Copied(mapped) => mapped.buffers.len(),
            Input::Unset => 0,
        };
        self.free = (0..n as u32).collect();
        tracing::debug!(device = %self.path, import, "input queue set up");
        stream(&self.dev, output_type, true).map_err(v4l2)
    }

    /// Applies the settings through the standard controls.
    fn configure(&mut self) -> Result<(), EncodeError> {
        let s = self.settings.clone();
        self.control("GOP size", sys::cid::GOP_SIZE, s.keyint as i32, true)?;
        match s.codec {
            // vicodec's codec has quantizers only (1..31).
            Codec::Fwht => self.set_qp(s.qp)?,
            _ => match s.rate_control {
                RateControl::Cqp => self.set_qp(s.qp)?,
                rc => {
                    let mode = if rc == RateControl::Cbr {
                        sys::cid::BITRATE_MODE_CBR
                    } else {
                        sys::cid::BITRATE_MODE_VBR
                    };
                    self.control("bitrate mode", sys::cid::BITRATE_MODE, mode, true)?;
                    self.control("bitrate", sys::cid::BITRATE, s.bitrate as i32, true)?;
                }
            },
        }
        if s.codec == Codec::H264 {
            if let Some(p) = s.profile {
                // V4L2_MPEG_VIDEO_H264_PROFILE_{CONSTRAINED_BASELINE=1, MAIN=2, HIGH=4}.
                let v = match p {
                    Profile::Baseline => 1,
                    Profile::Main => 2,
                    Profile::High => 4,
                };
                self.control("H.264 profile", sys::cid::H264_PROFILE, v, true)?;
            }
            if let Some(l) = s.level {
                self.control("H.264 level", sys::cid::H264_LEVEL, h264_level(l.0)?, true)?;
            }
        }
        Ok(())
    }

    /// Sets the quantizers: FWHT's (1..31) or H.264's (0..51) from `qp` (0..51).
    fn set_qp(&mut self, qp: u8) -> Result<(), EncodeError> {
        let (i, p, v) = if self.settings.codec == Codec::Fwht {
            let v = (qp as i32 * 31 / 51).clamp(1, 31);
            (sys::cid::FWHT_I_FRAME_QP, sys::cid::FWHT_P_FRAME_QP, v)
        } else {
            (sys::cid::H264_I_FRAME_QP, sys::cid::H264_P_FRAME_QP, qp as i32)
        };
        self.control("I-frame QP", i, v, true)?;
        self.control("P-frame QP", p, v, true)?;
        Ok(())
    }

    /// Sets a control; a missing one is an error when `required`.
    fn control(&self, what: &str, id: u32, value: i32, required: bool) -> Result<bool, EncodeError> {
        match set_control(&self.dev, id, value).map_err(v4l2)? {
            Some(kept) => {
                if kept != value && id != sys::cid::FORCE_KEY_FRAME {
                    tracing::warn!(device = %self.path, "{what}: asked for {value}, the device keeps {kept} (its limit)");
                }
                Ok(true)
            }
            None if required => Err(EncodeError::Unsupported {
                backend: NAME,
                what: format!("set the {what} to {value} on {}", self.path),
                supported: "the controls the device lists (`v4l2-ctl -l`)".into(),
            }),
            None => Ok(false),
        }
    }

    /// Queues every coded buffer and starts the CAPTURE queue.
    fn start_capture(&mut self) -> Result<(), EncodeError> {
        for index in 0..self.capture.buffers.len() as u32 {
            queue(&self.dev, self.capture.type_, index, 0, 0).map_err(v4l2)?;
        }
        stream(&self.dev, self.capture.type_, true).map_err(v4l2)
    }

    /// Takes back the OUTPUT buffers the device is done with (an imported
    /// frame's lease goes with its buffer); waits for one when `wait` and none is free.
    fn reap_output(&mut self, wait_for_one: bool) -> Result<(), EncodeError> {
        let output_type = sys::buf_type::VIDEO_OUTPUT_MPLANE;
        loop {
            match dequeue(&self.dev, output_type, self.input.memory()).map_err(v4l2)? {
                Dequeued::Buffer(d) => {
                    if let Input::Imported(held) = &mut self.input {
                        held[d.index as usize] = None;
                    }
                    self.free.push(d.index);
                }
                Dequeued::Empty if wait_for_one && self.free.is_empty() => {
                    if !wait(&self.dev, libc::POLLOUT).map_err(v4l2)? {
                        return Err(fail(format!(
                            "{} returned no input buffer in {TIMEOUT_MS} ms",
                            self.path
                        )));
                    }
                }
                Dequeued::Empty => return Ok(()),
                Dequeued::Ended => return Err(fail(format!("{}: the input queue has ended", self.path))),
            }
        }
    }

    /// Dequeues one coded buffer (waiting for it) into `out`; false once drained.
    fn receive(&mut self, out: &mut Vec<Packet>) -> Result<bool, EncodeError> {
        loop {
            match dequeue(&self.dev, self.capture.type_, sys::memory::MMAP).map_err(v4l2)? {
                Dequeued::Buffer(d) => {
                    let t = Instant::now();
                    let last = d.flags & sys::buf_flag::LAST != 0;
                    if d.bytes > 0 {
                        let stamp = self.stamps.remove(&d.seq).ok_or_else(|| {
                            fail(format!("{}: a coded buffer for no frame sent ({})", self.path, d.seq))
                        })?;
                        let data = Bytes::copy_from_slice(&self.capture.slice(d.index)[..d.bytes]);
                        let key = d.flags & sys::buf_flag::KEYFRAME != 0;
                        out.push(self.packetizer.packet(data, &stamp, stamp.pts, key)?);
                    }
                    if !last {
                        queue(&self.dev, self.capture.type_, d.index, 0, 0).map_err(v4l2)?;
                    }
                    self.times.packetize += t.elapsed();
                    return Ok(!last);
                }
                Dequeued::Empty => {
                    if !wait(&self.dev, libc::POLLIN).map_err(v4l2)? {
                        return Err(fail(format!(
                            "{} returned no coded buffer in {TIMEOUT_MS} ms",
                            self.path
                        )));
                    }
                }
                Dequeued::Ended => return Ok(false),
            }
        }
    }

    /// Restarts the CAPTURE queue: a new sequence, starting with a keyframe.
    fn restart_sequence(&mut self) -> Result<(), EncodeError> {
        stream(&self.dev, self.capture.type_, false).map_err(v4l2)?;
        self.start_capture()
    }
}

/// Asks for `count` buffers of `memory` on `type_` (0 frees them); returns how many the driver gave.
fn request(dev: &Device, type_: u32, memory: u32, count: u32) -> Result<u32, V4l2Error> {
    let mut req = sys::v4l2_requestbuffers {
        count,
        type_,
        memory,
        ..Default::default()
    };
    dev.ioctl("VIDIOC_REQBUFS", sys::VIDIOC_REQBUFS, &mut req)?;
    if count > 0 && req.count == 0 {
        return Err(dev.unsupported(format!("no buffers granted on queue type {type_}")));
    }
    Ok(req.count)
}

fn h264_level(level: u8) -> Result<i32, EncodeError> {
    // enum v4l2_mpeg_video_h264_level, in order.
    const LEVELS: [u8; 17] = [10, 9, 11, 12, 13, 20, 21, 22, 30, 31, 32, 40, 41, 42, 50, 51, 52];
    LEVELS
        .iter()
        .position(|&l| l == level)
        .map(|i| i as i32)
        .ok_or_else(|| EncodeError::Unsupported {
            backend: NAME,
            what: format!("set H.264 level {}.{}", level / 10, level % 10),
            supported: "levels 1 to 5.2".into(),
        })
}

/// The pixel formats a queue enumerates.
fn enum_formats(dev: &Device, type_: u32) -> Vec<u32> {
    (0..)
        .map_while(|index| {
            let mut d = sys::v4l2_fmtdesc {
                index,
                type_,
                ..zeroed()
            };
            dev.ioctl("VIDIOC_ENUM_FMT", sys::VIDIOC_ENUM_FMT, &mut d)
                .ok()
                .map(|()| d.pixelformat)
        })
        .collect()
}

impl Encoder for M2mEncoder {
    fn name(&self) -> &'static str {
        NAME
    }

    fn codec(&self) -> Codec {
        self.settings.codec
    }

    fn accepts(&self) -> &[PixelFormat] {
        &self.formats
    }

    fn latency_frames(&self) -> u32 {
        // Each frame's packet is awaited before the next frame goes in.
        0
    }

    fn encode(&mut self, frame: &Frame, out: &mut Vec<Packet>) -> Result<(), EncodeError> {
        super::check_same_layout(NAME, &self.info, frame)?;
        let t0 = Instant::now();
        let import = self.importable(frame);
        if matches!(self.input, Input::Unset) || import != matches!(self.input, Input::Imported(_)) {
            self.set_input(import)?;
        }
        self.reap_output(true)?;
        let index = self.free.pop().expect("reap_output waits for a free buffer");
        let used = self.layout.last().map_or(0, |&(at, pitch, rows)| at + pitch * rows);
        let output_type = sys::buf_type::VIDEO_OUTPUT_MPLANE;
        let queued = match &mut self.input {
            Input::Copied(mapped) => {
                let dst = mapped.slice(index);
                for (p, (plane, &(at, pitch, rows))) in frame.info.planes().iter().zip(&self.layout).enumerate() {
                    super::copy_rows(
                        &mut dst[at..],
                        pitch,
                        frame.plane(p),
                        plane.stride,
                        plane.row_bytes,
                        rows,
                    );
                }
                queue(&self.dev, output_type, index, used as u32, frame.seq)
            }
            Input::Imported(held) => {
                let fd = std::os::fd::AsRawFd::as_raw_fd(
                    &frame.buffer.dmabuf_fd().expect("an importable frame has a DMABUF"),
                );
                // The DMABUF's size (a DMABUF answers SEEK_END with it): vb2
                // checks it holds what is used and a whole picture of its format.
                // SAFETY: lseek on a descriptor the frame's lease keeps open.
                let size = unsafe { libc::lseek(fd, 0, libc::SEEK_END) };
                let mut plane: sys::v4l2_plane = zeroed();
                plane.bytesused = used as u32;
                plane.length = u32::try_from(size).unwrap_or(0);
                plane.m.fd = fd;
                let queued = queue_plane(&self.dev, output_type, sys::memory::DMABUF, index, plane, frame.seq)
                    .map_err(|e| self.dev.io_error("VIDIOC_QBUF (DMABUF import)", e));
                // The frame's buffer stays leased while the device reads it.
                held[index as usize] = Some(frame.clone());
                queued
            }
            Input::Unset => unreachable!("set up above"),
        };
        queued.map_err(v4l2)?;
        self.stamps.insert(frame.seq, Stamp::of(frame));
        let t1 = Instant::now();
        let before = self.times.packetize;
        self.receive(out)?;
        // The frame's buffer back to its owner as soon as the device is done with it.
        self.reap_output(false)?;
        self.times.convert += t1 - t0;
        self.times.codec += t1.elapsed() - (self.times.packetize - before);
        Ok(())
    }

    fn flush(&mut self, out: &mut Vec<Packet>) -> Result<(), EncodeError> {
        let mut c = sys::v4l2_encoder_cmd {
            cmd: sys::cmd::ENC_STOP,
            flags: 0,
            data: [0; 8],
        };
        self.dev
            .ioctl("VIDIOC_ENCODER_CMD", sys::VIDIOC_ENCODER_CMD, &mut c)
            .map_err(v4l2)?;
        while self.receive(out)? {}
        Ok(())
    }

    fn apply(&mut self, change: Change) -> Result<(), EncodeError> {
        match change {
            Change::ForceKeyframe => {
                if !self.control("forced keyframe", sys::cid::FORCE_KEY_FRAME, 1, false)? {
                    self.restart_sequence()?;
                }
            }
            Change::Bitrate(b) if self.settings.codec != Codec::Fwht => {
                self.control("bitrate", sys::cid::BITRATE, b as i32, true)?;
            }
            Change::Qp(q) => self.set_qp(q)?,
            Change::Keyint(k) => {
                self.control("GOP size", sys::cid::GOP_SIZE, k as i32, true)?;
            }
            other => {
                return Err(EncodeError::Unsupported {
                    backend: NAME,
                    what: format!("apply {other:?} while running on {}", self.path),
                    supported: "bitrate (not fwht), qp, keyint and forced keyframes; others need a new encoder".into(),
                });
            }
        }
        self.settings.apply(change);
        Ok(())
    }

    fn times(&self) -> StageTimes {
        self.times
    }
}

impl Drop for M2mEncoder {
    fn drop(&mut self) {
        // Best effort: the device forgets everything when the fd closes anyway.
        let _ = stream(&self.dev, sys::buf_type::VIDEO_OUTPUT_MPLANE, false);
        let _ = stream(&self.dev, self.capture.type_, false);
        if let Input::Copied(mapped) = &mut self.input {
            mapped.release(&self.dev);
        }
        self.capture.release(&self.dev);
    }
}

/// A decoder's CAPTURE queue as set up for one decoded format: its mapped
/// buffers, shared by the decoder and the leases on the pictures out of it.
struct Pictures {
    dev: Arc<Device>,
    buffers: Vec<(*mut u8, usize)>,
    info: VideoInfo,
    /// True while the queue runs: a lease dropped then queues its buffer
    /// back. Held while queueing, so a lease never queues into a queue set up anew.
    live: Mutex<bool>,
    /// Buffers the driver holds (queued).
    queued: AtomicUsize,
}

// SAFETY: the mappings stay valid until `Pictures` is dropped (after every
// lease); the driver writes a buffer only while it is queued, and a queued
// buffer has no lease.
unsafe impl Send for Pictures {}
// SAFETY: as above; the rest is a mutex, an atomic and immutable data.
unsafe impl Sync for Pictures {}

impl Pictures {
    /// Queues buffer `index` back to the driver, unless the queue has stopped.
    fn give_back(&self, index: u32) -> io::Result<()> {
        let live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        if *live {
            let capture_type = sys::buf_type::VIDEO_CAPTURE_MPLANE;
            queue_plane(&self.dev, capture_type, sys::memory::MMAP, index, zeroed(), 0)?;
            self.queued.fetch_add(1, Ordering::AcqRel);
        }
        Ok(())
    }

    /// Stops the queue: leases left only unmap their buffer when dropped.
    fn stop(&self) {
        *self.live.lock().unwrap_or_else(|e| e.into_inner()) = false;
    }
}

impl Drop for Pictures {
    fn drop(&mut self) {
        for &(ptr, len) in &self.buffers {
            // SAFETY: unmaps what `Mapped::request` mapped; no lease is left.
            unsafe { libc::munmap(ptr.cast(), len) };
        }
    }
}

/// A decoded picture: a lease on one CAPTURE buffer, queued back when dropped.
struct Picture {
    pictures: Arc<Pictures>,
    index: u32,
}

impl Memory for Picture {
    fn bytes(&self) -> &[u8] {
        let (ptr, len) = self.pictures.buffers[self.index as usize];
        // SAFETY: the mapping lives as long as `pictures`; the driver does not
        // write a dequeued buffer.
        unsafe { std::slice::from_raw_parts(ptr, self.pictures.info.size().min(len)) }
    }

    fn bytes_mut(&mut self) -> Option<&mut [u8]> {
        None
    }

    fn kind(&self) -> MemoryKind {
        MemoryKind::Mmap
    }
}

impl Drop for Picture {
    fn drop(&mut self) {
        if let Err(e) = self.pictures.give_back(self.index) {
            tracing::warn!("a decoded picture's buffer could not be queued back: {e}");
        }
    }
}

/// A V4L2 M2M stateful decoder.
pub struct M2mDecoder {
    dev: Arc<Device>,
    path: String,
    output: Mapped,
    free: Vec<u32>,
    /// The decoded pictures' queue, once the device has announced their format.
    capture: Option<Arc<Pictures>>,
    stamps: HashMap<u64, Stamp>,
    /// Packets dropped because every decoded picture was held downstream.
    dropped: u64,
    /// After a drop, packets are dropped up to the next keyframe.
    skipping: bool,
}

impl M2mDecoder {
    /// Opens the decoder at `path` for `codec` pictures of about `width`×`height`.
    pub fn new(path: &Path, codec: Codec, width: u32, height: u32) -> Result<Self, EncodeError> {
        let dev = open_m2m(path)?;
        let name = path.display().to_string();
        let output_type = sys::buf_type::VIDEO_OUTPUT_MPLANE;
        let got = set_format(&dev, output_type, coded_fourcc(codec), width, height).map_err(v4l2)?;
        if got.pixelformat != coded_fourcc(codec) {
            return Err(EncodeError::Unsupported {
                backend: NAME,
                what: format!("decode {codec} on {name}"),
                supported: format!("what the device reads: {}", fourcc_name(got.pixelformat)),
            });
        }
        let mut sub = sys::v4l2_event_subscription {
            type_: sys::event::SOURCE_CHANGE,
            ..zeroed()
        };
        dev.ioctl("VIDIOC_SUBSCRIBE_EVENT", sys::VIDIOC_SUBSCRIBE_EVENT, &mut sub)
            .map_err(v4l2)?;
        let output = Mapped::request(&dev, output_type, BUFFERS).map_err(v4l2)?;
        stream(&dev, output_type, true).map_err(v4l2)?;
        Ok(M2mDecoder {
            free: (0..output.buffers.len() as u32).collect(),
            dev: Arc::new(dev),
            path: name,
            output,
            capture: None,
            stamps: HashMap::new(),
            dropped: 0,
            skipping: false,
        })
    }

    /// Stops the CAPTURE queue and gives its buffers up (pictures still
    /// leased keep their memory until dropped).
    fn stop_capture(&mut self) -> Result<(), EncodeError> {
        if let Some(old) = self.capture.take() {
            old.stop();
            stream(&self.dev, sys::buf_type::VIDEO_CAPTURE_MPLANE, false).map_err(v4l2)?;
            request(&self.dev, sys::buf_type::VIDEO_CAPTURE_MPLANE, sys::memory::MMAP, 0).map_err(v4l2)?;
        }
        Ok(())
    }

    /// Sets up the CAPTURE queue for the format the device announced.
    fn source_changed(&mut self) -> Result<(), EncodeError> {
        let capture_type = sys::buf_type::VIDEO_CAPTURE_MPLANE;
        self.stop_capture()?;
        let f = get_format(&self.dev, capture_type).map_err(v4l2)?;
        let format = PixelFormat::from_fourcc(f.pixelformat)
            .filter(|p| RAW.contains(p))
            .ok_or_else(|| EncodeError::Unsupported {
                backend: NAME,
                what: format!("read {} pictures from {}", fourcc_name(f.pixelformat), self.path),
                supported: "yuv420, nv12, yuyv and grey".into(),
            })?;
        let plane = f.plane_fmt[0];
        let info = VideoInfo::with_line_stride(
            format,
            f.width,
            f.height,
            crate::media::Fps { num: 30, den: 1 },
            plane.bytesperline as usize,
            plane.sizeimage as usize,
        )
        .map_err(fail)?;
        let mut mapped = Mapped::request(&self.dev, capture_type, BUFFERS).map_err(v4l2)?;
        if mapped.buffers.iter().any(|&(_, len)| len < info.size()) {
            mapped.release(&self.dev);
            return Err(fail(format!("{}: capture buffers smaller than a picture", self.path)));
        }
        let pictures = Arc::new(Pictures {
            dev: Arc::clone(&self.dev),
            buffers: std::mem::take(&mut mapped.buffers),
            info,
            live: Mutex::new(true),
            queued: AtomicUsize::new(0),
        });
        for index in 0..pictures.buffers.len() as u32 {
            pictures
                .give_back(index)
                .map_err(|e| fail(self.dev.io_error("VIDIOC_QBUF", e)))?;
        }
        stream(&self.dev, capture_type, true).map_err(v4l2)?;
        self.capture = Some(pictures);
        Ok(())
    }

    /// Takes pending events and decoded pictures; waits up to the timeout for
    /// one picture when `wait_for_one`. Returns false once drained.
    fn service(&mut self, out: &mut Vec<Frame>, wait_for_one: bool) -> Result<bool, EncodeError> {
        loop {
            let mut ev: sys::v4l2_event = zeroed();
            if crate::capture::v4l2::ioctl(self.dev.raw_fd(), sys::VIDIOC_DQEVENT, &mut ev).is_ok() {
                if ev.type_ == sys::event::SOURCE_CHANGE {
                    self.source_changed()?;
                }
                continue;
            }
            // Input buffers the device is done with.
            while let Dequeued::Buffer(d) = dequeue(&self.dev, self.output.type_, sys::memory::MMAP).map_err(v4l2)? {
                self.free.push(d.index);
            }
            if let Some(pictures) = &self.capture {
                let capture_type = sys::buf_type::VIDEO_CAPTURE_MPLANE;
                match dequeue(&self.dev, capture_type, sys::memory::MMAP).map_err(v4l2)? {
                    Dequeued::Buffer(d) => {
                        pictures.queued.fetch_sub(1, Ordering::AcqRel);
                        let last = d.flags & sys::buf_flag::LAST != 0;
                        let lease = Picture {
                            pictures: Arc::clone(pictures),
                            index: d.index,
                        };
                        if d.bytes > 0 {
                            let stamp = self.stamps.remove(&d.seq).ok_or_else(|| {
                                fail(format!("{}: a picture for no packet sent ({})", self.path, d.seq))
                            })?;
                            out.push(stamp.frame(pictures.info, Buffer::new(lease)));
                        }
                        // An empty buffer (the drain's last) goes back at once, with its lease.
                        return Ok(!last);
                    }
                    Dequeued::Ended => return Ok(false),
                    Dequeued::Empty => {}
                }
            }
            if !wait_for_one {
                return Ok(true);
            }
            if !wait(&self.dev, libc::POLLIN | libc::POLLPRI).map_err(v4l2)? {
                return Err(fail(format!("{} returned no picture in {TIMEOUT_MS} ms", self.path)));
            }
        }
    }

    /// True when every decoded picture is held downstream: the device has no
    /// buffer to decode into.
    fn all_held(&self) -> bool {
        self.capture
            .as_ref()
            .is_some_and(|p| p.queued.load(Ordering::Acquire) == 0)
    }
}

/// Where the planes of a frame like `info` lie in a device buffer whose
/// luma lines are `stride` bytes apart: `(offset, pitch, rows)` each, one
/// plane after the other, chroma pitch in proportion (the V4L2
/// single-buffer layouts).
fn device_planes(info: &VideoInfo, stride: usize) -> Vec<(usize, usize, usize)> {
    let luma = info.planes()[0].row_bytes.max(1);
    let mut at = 0;
    info.planes()
        .iter()
        .map(|p| {
            let pitch = stride * p.row_bytes / luma;
            let plane = (at, pitch, p.rows);
            at += pitch * p.rows;
            plane
        })
        .collect()
}

impl super::Decoder for M2mDecoder {
    fn name(&self) -> &'static str {
        NAME
    }

    fn decode(&mut self, packet: &Packet, out: &mut Vec<Frame>) -> Result<(), EncodeError> {
        if self.skipping && !packet.keyframe {
            self.dropped += 1;
            return Ok(());
        }
        if self.all_held() {
            // Every picture is held downstream: drop rather than stall, up
            // to the next keyframe (what follows refers to what was dropped).
            self.service(out, false)?;
            if self.all_held() {
                if self.dropped == 0 {
                    tracing::warn!(device = %self.path, "every decoded picture is held downstream: dropping packets to the next keyframe");
                }
                self.dropped += 1;
                self.skipping = true;
                return Ok(());
            }
        }
        self.skipping = false;
        let index = loop {
            if let Some(i) = self.free.pop() {
                break i;
            }
            self.service(out, true)?;
        };
        let dst = self.output.slice(index);
        if packet.data.len() > dst.len() {
            return Err(fail(format!(
                "packet {} ({} bytes) does not fit the device's {}-byte buffers",
                packet.seq,
                packet.data.len(),
                dst.len()
            )));
        }
        dst[..packet.data.len()].copy_from_slice(&packet.data);
        self.stamps.insert(packet.seq, Stamp::of_packet(packet));
        queue(
            &self.dev,
            self.output.type_,
            index,
            packet.data.len() as u32,
            packet.seq,
        )
        .map_err(v4l2)?;
        // One picture per packet comes out as soon as it is decoded.
        self.service(out, true)?;
        Ok(())
    }

    fn flush(&mut self, out: &mut Vec<Frame>) -> Result<(), EncodeError> {
        let mut c = sys::v4l2_decoder_cmd {
            cmd: sys::cmd::DEC_STOP,
            flags: 0,
            data: [0; 16],
        };
        self.dev
            .ioctl("VIDIOC_DECODER_CMD", sys::VIDIOC_DECODER_CMD, &mut c)
            .map_err(v4l2)?;
        while self.capture.is_some() && self.service(out, true)? {}
        Ok(())
    }

    fn dropped(&self) -> u64 {
        self.dropped
    }
}

impl Drop for M2mDecoder {
    fn drop(&mut self) {
        // Best effort; pictures still leased keep their memory until dropped.
        let _ = stream(&self.dev, self.output.type_, false);
        self.output.release(&self.dev);
        let _ = self.stop_capture();
    }
}

//! The subset of the V4L2 uapi (`<linux/videodev2.h>`) that Eyrie uses:
//! capability query, format/size/interval enumeration, format negotiation,
//! MMAP streaming (single- and multi-planar) and DMABUF export.
//!
//! Layouts are those of LP64 Linux (x86_64, aarch64). `tests/layout.rs`
//! compiles a C program against the system header and checks every size,
//! offset and ioctl number here against it.

#![allow(non_camel_case_types)]

use core::mem::size_of;

/// `VIDEO_MAX_PLANES`.
pub const VIDEO_MAX_PLANES: usize = 8;

/// `struct v4l2_capability`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct v4l2_capability {
    pub driver: [u8; 16],
    pub card: [u8; 32],
    pub bus_info: [u8; 32],
    pub version: u32,
    pub capabilities: u32,
    pub device_caps: u32,
    pub reserved: [u32; 3],
}

/// `struct v4l2_fmtdesc`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct v4l2_fmtdesc {
    pub index: u32,
    pub type_: u32,
    pub flags: u32,
    pub description: [u8; 32],
    pub pixelformat: u32,
    pub mbus_code: u32,
    pub reserved: [u32; 3],
}

/// `struct v4l2_frmsize_discrete`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct v4l2_frmsize_discrete {
    pub width: u32,
    pub height: u32,
}

/// `struct v4l2_frmsize_stepwise`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct v4l2_frmsize_stepwise {
    pub min_width: u32,
    pub max_width: u32,
    pub step_width: u32,
    pub min_height: u32,
    pub max_height: u32,
    pub step_height: u32,
}

/// The anonymous union of `struct v4l2_frmsizeenum`.
#[repr(C)]
#[derive(Clone, Copy)]
pub union v4l2_frmsizeenum_u {
    pub discrete: v4l2_frmsize_discrete,
    pub stepwise: v4l2_frmsize_stepwise,
}

/// `struct v4l2_frmsizeenum`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct v4l2_frmsizeenum {
    pub index: u32,
    pub pixel_format: u32,
    pub type_: u32,
    pub u: v4l2_frmsizeenum_u,
    pub reserved: [u32; 2],
}

/// `struct v4l2_fract`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct v4l2_fract {
    pub numerator: u32,
    pub denominator: u32,
}

/// `struct v4l2_frmival_stepwise`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct v4l2_frmival_stepwise {
    pub min: v4l2_fract,
    pub max: v4l2_fract,
    pub step: v4l2_fract,
}

/// The anonymous union of `struct v4l2_frmivalenum`.
#[repr(C)]
#[derive(Clone, Copy)]
pub union v4l2_frmivalenum_u {
    pub discrete: v4l2_fract,
    pub stepwise: v4l2_frmival_stepwise,
}

/// `struct v4l2_frmivalenum`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct v4l2_frmivalenum {
    pub index: u32,
    pub pixel_format: u32,
    pub width: u32,
    pub height: u32,
    pub type_: u32,
    pub u: v4l2_frmivalenum_u,
    pub reserved: [u32; 2],
}

/// `struct v4l2_pix_format` (single-planar API).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct v4l2_pix_format {
    pub width: u32,
    pub height: u32,
    pub pixelformat: u32,
    pub field: u32,
    pub bytesperline: u32,
    pub sizeimage: u32,
    pub colorspace: u32,
    pub priv_: u32,
    pub flags: u32,
    pub ycbcr_enc: u32,
    pub quantization: u32,
    pub xfer_func: u32,
}

/// `struct v4l2_plane_pix_format` (packed).
#[repr(C, packed)]
#[derive(Clone, Copy, Debug, Default)]
pub struct v4l2_plane_pix_format {
    pub sizeimage: u32,
    pub bytesperline: u32,
    pub reserved: [u16; 6],
}

/// `struct v4l2_pix_format_mplane` (packed; multi-planar API).
#[repr(C, packed)]
#[derive(Clone, Copy, Debug, Default)]
pub struct v4l2_pix_format_mplane {
    pub width: u32,
    pub height: u32,
    pub pixelformat: u32,
    pub field: u32,
    pub colorspace: u32,
    pub plane_fmt: [v4l2_plane_pix_format; VIDEO_MAX_PLANES],
    pub num_planes: u8,
    pub flags: u8,
    pub ycbcr_enc: u8,
    pub quantization: u8,
    pub xfer_func: u8,
    pub reserved: [u8; 7],
}

/// The `fmt` union of `struct v4l2_format`. The kernel's union also holds
/// `struct v4l2_window`, whose pointers give it 8-byte alignment.
#[repr(C)]
#[derive(Clone, Copy)]
pub union v4l2_format_u {
    pub pix: v4l2_pix_format,
    pub pix_mp: v4l2_pix_format_mplane,
    pub raw_data: [u8; 200],
    pub align: [u64; 25],
}

/// `struct v4l2_format`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct v4l2_format {
    pub type_: u32,
    pub fmt: v4l2_format_u,
}

/// `struct v4l2_requestbuffers`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct v4l2_requestbuffers {
    pub count: u32,
    pub type_: u32,
    pub memory: u32,
    pub capabilities: u32,
    /// `flags` and `reserved[3]` on 6.x headers, `reserved[1]` before: the same bytes.
    pub reserved: [u32; 1],
}

/// `struct timeval` as the V4L2 uapi uses it (64-bit `long`s).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct timeval {
    pub tv_sec: i64,
    pub tv_usec: i64,
}

/// `struct v4l2_timecode`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct v4l2_timecode {
    pub type_: u32,
    pub flags: u32,
    pub frames: u8,
    pub seconds: u8,
    pub minutes: u8,
    pub hours: u8,
    pub userbits: [u8; 4],
}

/// The `m` union of `struct v4l2_plane`.
#[repr(C)]
#[derive(Clone, Copy)]
pub union v4l2_plane_m {
    pub mem_offset: u32,
    pub userptr: u64,
    pub fd: i32,
}

/// `struct v4l2_plane`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct v4l2_plane {
    pub bytesused: u32,
    pub length: u32,
    pub m: v4l2_plane_m,
    pub data_offset: u32,
    pub reserved: [u32; 11],
}

/// The `m` union of `struct v4l2_buffer`.
#[repr(C)]
#[derive(Clone, Copy)]
pub union v4l2_buffer_m {
    pub offset: u32,
    pub userptr: u64,
    pub planes: *mut v4l2_plane,
    pub fd: i32,
}

/// `struct v4l2_buffer`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct v4l2_buffer {
    pub index: u32,
    pub type_: u32,
    pub bytesused: u32,
    pub flags: u32,
    pub field: u32,
    pub timestamp: timeval,
    pub timecode: v4l2_timecode,
    pub sequence: u32,
    pub memory: u32,
    pub m: v4l2_buffer_m,
    pub length: u32,
    pub reserved2: u32,
    /// `request_fd` / `reserved`.
    pub request_fd: i32,
}

/// `struct v4l2_exportbuffer`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct v4l2_exportbuffer {
    pub type_: u32,
    pub index: u32,
    pub plane: u32,
    pub flags: u32,
    pub fd: i32,
    pub reserved: [u32; 11],
}

/// `struct v4l2_captureparm`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct v4l2_captureparm {
    pub capability: u32,
    pub capturemode: u32,
    pub timeperframe: v4l2_fract,
    pub extendedmode: u32,
    pub readbuffers: u32,
    pub reserved: [u32; 4],
}

/// The `parm` union of `struct v4l2_streamparm`.
#[repr(C)]
#[derive(Clone, Copy)]
pub union v4l2_streamparm_u {
    pub capture: v4l2_captureparm,
    pub raw_data: [u8; 200],
}

/// `struct v4l2_streamparm`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct v4l2_streamparm {
    pub type_: u32,
    pub parm: v4l2_streamparm_u,
}

/// `struct v4l2_control`: one control's value (`VIDIOC_S_CTRL`).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct v4l2_control {
    pub id: u32,
    pub value: i32,
}

/// `struct v4l2_encoder_cmd`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct v4l2_encoder_cmd {
    pub cmd: u32,
    pub flags: u32,
    pub data: [u32; 8],
}

/// `struct v4l2_decoder_cmd` (the union as its raw words; 8-byte aligned by its `stop.pts`).
#[repr(C, align(8))]
#[derive(Clone, Copy)]
pub struct v4l2_decoder_cmd {
    pub cmd: u32,
    pub flags: u32,
    pub data: [u32; 16],
}

/// `struct v4l2_event_subscription`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct v4l2_event_subscription {
    pub type_: u32,
    pub id: u32,
    pub flags: u32,
    pub reserved: [u32; 5],
}

/// `struct timespec` as the kernel fills it on 64-bit Linux.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct timespec {
    pub tv_sec: i64,
    pub tv_nsec: i64,
}

/// `struct v4l2_event` (the payload union as raw bytes, 8-byte aligned).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct v4l2_event {
    pub type_: u32,
    pub u: [u64; 8],
    pub pending: u32,
    pub sequence: u32,
    pub timestamp: timespec,
    pub id: u32,
    pub reserved: [u32; 8],
}

/// Encoder and decoder commands (`V4L2_ENC_CMD_*`, `V4L2_DEC_CMD_*`).
pub mod cmd {
    pub const ENC_STOP: u32 = 1;
    pub const DEC_STOP: u32 = 1;
}

/// Event types (`V4L2_EVENT_*`).
pub mod event {
    pub const EOS: u32 = 2;
    pub const SOURCE_CHANGE: u32 = 5;
}

/// Codec controls (`V4L2_CID_*` of the codec class).
pub mod cid {
    const CODEC_BASE: u32 = 0x0099_0900;
    pub const GOP_SIZE: u32 = CODEC_BASE + 203;
    pub const BITRATE_MODE: u32 = CODEC_BASE + 206;
    pub const BITRATE: u32 = CODEC_BASE + 207;
    pub const FORCE_KEY_FRAME: u32 = CODEC_BASE + 229;
    pub const FWHT_I_FRAME_QP: u32 = CODEC_BASE + 290;
    pub const FWHT_P_FRAME_QP: u32 = CODEC_BASE + 291;
    pub const H264_I_FRAME_QP: u32 = CODEC_BASE + 350;
    pub const H264_P_FRAME_QP: u32 = CODEC_BASE + 351;
    pub const H264_LEVEL: u32 = CODEC_BASE + 359;
    pub const H264_PROFILE: u32 = CODEC_BASE + 363;
    /// `V4L2_MPEG_VIDEO_BITRATE_MODE_*`.
    pub const BITRATE_MODE_VBR: i32 = 0;
    pub const BITRATE_MODE_CBR: i32 = 1;
}

/// Device capabilities (`V4L2_CAP_*`).
pub mod cap {
    pub const VIDEO_CAPTURE: u32 = 0x0000_0001;
    pub const VIDEO_OUTPUT: u32 = 0x0000_0002;
    pub const VIDEO_CAPTURE_MPLANE: u32 = 0x0000_1000;
    pub const VIDEO_OUTPUT_MPLANE: u32 = 0x0000_2000;
    pub const VIDEO_M2M_MPLANE: u32 = 0x0000_4000;
    pub const VIDEO_M2M: u32 = 0x0000_8000;
    pub const META_CAPTURE: u32 = 0x0080_0000;
    pub const READWRITE: u32 = 0x0100_0000;
    pub const STREAMING: u32 = 0x0400_0000;
    pub const DEVICE_CAPS: u32 = 0x8000_0000;
    /// `V4L2_CAP_TIMEPERFRAME` (in `v4l2_captureparm.capability`).
    pub const TIMEPERFRAME: u32 = 0x1000;
}

/// `enum v4l2_buf_type`.
pub mod buf_type {
    pub const VIDEO_CAPTURE: u32 = 1;
    pub const VIDEO_OUTPUT: u32 = 2;
    pub const VIDEO_CAPTURE_MPLANE: u32 = 9;
    pub const VIDEO_OUTPUT_MPLANE: u32 = 10;
}

/// `enum v4l2_memory`.
pub mod memory {
    pub const MMAP: u32 = 1;
    pub const USERPTR: u32 = 2;
    pub const DMABUF: u32 = 4;
}

/// `enum v4l2_field`.
pub mod field {
    pub const ANY: u32 = 0;
    pub const NONE: u32 = 1;
}

/// `enum v4l2_frmsizetypes` and `enum v4l2_frmivaltypes` (same values).
pub mod frm_type {
    pub const DISCRETE: u32 = 1;
    pub const CONTINUOUS: u32 = 2;
    pub const STEPWISE: u32 = 3;
}

/// `V4L2_FMT_FLAG_*`.
pub mod fmt_flag {
    pub const COMPRESSED: u32 = 0x0001;
    pub const EMULATED: u32 = 0x0002;
}

/// `V4L2_BUF_FLAG_*`.
pub mod buf_flag {
    pub const MAPPED: u32 = 0x0000_0001;
    pub const QUEUED: u32 = 0x0000_0002;
    pub const DONE: u32 = 0x0000_0004;
    pub const KEYFRAME: u32 = 0x0000_0008;
    pub const ERROR: u32 = 0x0000_0040;
    pub const TIMESTAMP_MASK: u32 = 0x0000_e000;
    pub const TIMESTAMP_MONOTONIC: u32 = 0x0000_2000;
    pub const LAST: u32 = 0x0010_0000;
}

const IOC_WRITE: u32 = 1;
const IOC_READ: u32 = 2;

/// `_IOC(dir, 'V', nr, size)` of the generic ioctl encoding (x86, arm).
const fn ioc(dir: u32, nr: u32, size: usize) -> u32 {
    (dir << 30) | ((size as u32) << 16) | ((b'V' as u32) << 8) | nr
}

const fn ior<T>(nr: u32) -> u32 {
    ioc(IOC_READ, nr, size_of::<T>())
}

const fn iow<T>(nr: u32) -> u32 {
    ioc(IOC_WRITE, nr, size_of::<T>())
}

const fn iowr<T>(nr: u32) -> u32 {
    ioc(IOC_READ | IOC_WRITE, nr, size_of::<T>())
}

pub const VIDIOC_QUERYCAP: u32 = ior::<v4l2_capability>(0);
pub const VIDIOC_ENUM_FMT: u32 = iowr::<v4l2_fmtdesc>(2);
pub const VIDIOC_G_FMT: u32 = iowr::<v4l2_format>(4);
pub const VIDIOC_S_FMT: u32 = iowr::<v4l2_format>(5);
pub const VIDIOC_REQBUFS: u32 = iowr::<v4l2_requestbuffers>(8);
pub const VIDIOC_QUERYBUF: u32 = iowr::<v4l2_buffer>(9);
pub const VIDIOC_QBUF: u32 = iowr::<v4l2_buffer>(15);
pub const VIDIOC_EXPBUF: u32 = iowr::<v4l2_exportbuffer>(16);
pub const VIDIOC_DQBUF: u32 = iowr::<v4l2_buffer>(17);
pub const VIDIOC_STREAMON: u32 = iow::<i32>(18);
pub const VIDIOC_STREAMOFF: u32 = iow::<i32>(19);
pub const VIDIOC_G_PARM: u32 = iowr::<v4l2_streamparm>(21);
pub const VIDIOC_S_PARM: u32 = iowr::<v4l2_streamparm>(22);
pub const VIDIOC_TRY_FMT: u32 = iowr::<v4l2_format>(64);
pub const VIDIOC_ENUM_FRAMESIZES: u32 = iowr::<v4l2_frmsizeenum>(74);
pub const VIDIOC_ENUM_FRAMEINTERVALS: u32 = iowr::<v4l2_frmivalenum>(75);
pub const VIDIOC_G_CTRL: u32 = iowr::<v4l2_control>(27);
pub const VIDIOC_S_CTRL: u32 = iowr::<v4l2_control>(28);
pub const VIDIOC_ENCODER_CMD: u32 = iowr::<v4l2_encoder_cmd>(77);
pub const VIDIOC_DQEVENT: u32 = ior::<v4l2_event>(89);
pub const VIDIOC_SUBSCRIBE_EVENT: u32 = iow::<v4l2_event_subscription>(90);
pub const VIDIOC_DECODER_CMD: u32 = iowr::<v4l2_decoder_cmd>(96);

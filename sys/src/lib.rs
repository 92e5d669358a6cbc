//! `eyrie-sys`: raw FFI for Eyrie, and nothing else.
//!
//! This crate holds `#[repr(C)]` definitions and constants mirrored from C headers:
//! the V4L2 uapi (`<linux/videodev2.h>`, including the Jetson L4T extensions),
//! NvBufSurface, and the C shims over libargus and TensorRT. It contains no logic;
//! safe wrappers live in the `eyrie` crate (`capture`, `encode`, `infer`).
//!
//! Definitions are added with the feature that needs them, each checked against
//! the system header by a layout test.
#![no_std]

pub mod v4l2;

/// Builds a V4L2 FourCC code, as `v4l2_fourcc(a, b, c, d)` in `<linux/videodev2.h>`.
pub const fn v4l2_fourcc(a: u8, b: u8, c: u8, d: u8) -> u32 {
    (a as u32) | ((b as u32) << 8) | ((c as u32) << 16) | ((d as u32) << 24)
}

/// V4L2 pixel format codes (`V4L2_PIX_FMT_*` in `<linux/videodev2.h>`) for the raw
/// formats Eyrie handles.
pub mod pix_fmt {
    use super::v4l2_fourcc;

    /// `V4L2_PIX_FMT_NV12`: Y plane, then interleaved CbCr at half resolution.
    pub const NV12: u32 = v4l2_fourcc(b'N', b'V', b'1', b'2');
    /// `V4L2_PIX_FMT_YUV420`: planar Y, Cb, Cr (I420).
    pub const YUV420: u32 = v4l2_fourcc(b'Y', b'U', b'1', b'2');
    /// `V4L2_PIX_FMT_YUYV`: packed Y0 Cb Y1 Cr.
    pub const YUYV: u32 = v4l2_fourcc(b'Y', b'U', b'Y', b'V');
    /// `V4L2_PIX_FMT_UYVY`: packed Cb Y0 Cr Y1.
    pub const UYVY: u32 = v4l2_fourcc(b'U', b'Y', b'V', b'Y');
    /// `V4L2_PIX_FMT_RGB24`: packed R G B.
    pub const RGB24: u32 = v4l2_fourcc(b'R', b'G', b'B', b'3');
    /// `V4L2_PIX_FMT_RGBA32`: packed R G B A.
    pub const RGBA32: u32 = v4l2_fourcc(b'A', b'B', b'2', b'4');
    /// `V4L2_PIX_FMT_XBGR32`: packed B G R X in memory (BGRx).
    pub const XBGR32: u32 = v4l2_fourcc(b'X', b'R', b'2', b'4');
    /// `V4L2_PIX_FMT_GREY`: 8-bit luma only.
    pub const GREY: u32 = v4l2_fourcc(b'G', b'R', b'E', b'Y');
    /// `V4L2_PIX_FMT_NV12M`: NV12 with its two planes in separate memory planes.
    pub const NV12M: u32 = v4l2_fourcc(b'N', b'M', b'1', b'2');
    /// `V4L2_PIX_FMT_MJPEG`: Motion-JPEG.
    pub const MJPEG: u32 = v4l2_fourcc(b'M', b'J', b'P', b'G');
    /// `V4L2_PIX_FMT_JPEG`: JFIF JPEG.
    pub const JPEG: u32 = v4l2_fourcc(b'J', b'P', b'E', b'G');
    /// `V4L2_PIX_FMT_H264`: H.264 with start codes.
    pub const H264: u32 = v4l2_fourcc(b'H', b'2', b'6', b'4');
    /// `V4L2_PIX_FMT_HEVC`: H.265 with start codes.
    pub const HEVC: u32 = v4l2_fourcc(b'H', b'E', b'V', b'C');
    /// `V4L2_PIX_FMT_VP9`: VP9 frames.
    pub const VP9: u32 = v4l2_fourcc(b'V', b'P', b'9', b'0');
    /// `V4L2_PIX_FMT_FWHT`: vicodec's Fast Walsh Hadamard Transform codec.
    pub const FWHT: u32 = v4l2_fourcc(b'F', b'W', b'H', b'T');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fourcc_matches_the_kernel_values() {
        // Values of the macros as printed by a C program including videodev2.h.
        assert_eq!(pix_fmt::NV12, 0x3231_564e);
        assert_eq!(pix_fmt::YUYV, 0x5659_5559);
        assert_eq!(pix_fmt::GREY, 0x5945_5247);
    }
}

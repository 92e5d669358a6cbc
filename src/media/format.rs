//! Raw pixel formats, plane layout and size math.
//!
//! Layouts follow the V4L2 definitions of the same formats (Linux media uapi,
//! "Image Formats": `V4L2_PIX_FMT_NV12`, `YUV420`, `YUYV`, `UYVY`, `RGB24`,
//! `RGBA32`, `XBGR32`, `GREY`). YUV formats are 8-bit BT.601 limited range.

use std::fmt;
use std::str::FromStr;

use eyrie_sys::pix_fmt;
use serde::{Deserialize, Serialize};

/// An uncompressed pixel format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum PixelFormat {
    /// 4:2:0, a Y plane then one interleaved Cb/Cr plane (the Jetson and encoder format).
    Nv12,
    /// 4:2:0, three planes Y, Cb, Cr.
    I420,
    /// 4:2:2 packed Y0 Cb Y1 Cr (most USB cameras).
    Yuyv,
    /// 4:2:2 packed Cb Y0 Cr Y1.
    Uyvy,
    /// Packed R, G, B.
    Rgb24,
    /// Packed R, G, B, A.
    Rgba,
    /// Packed B, G, R, unused.
    Bgrx,
    /// Luma only.
    Gray8,
}

impl PixelFormat {
    /// Every format, in declaration order.
    pub const ALL: [PixelFormat; 8] = [
        PixelFormat::Nv12,
        PixelFormat::I420,
        PixelFormat::Yuyv,
        PixelFormat::Uyvy,
        PixelFormat::Rgb24,
        PixelFormat::Rgba,
        PixelFormat::Bgrx,
        PixelFormat::Gray8,
    ];

    /// The name used in config files and logs.
    pub fn name(self) -> &'static str {
        match self {
            PixelFormat::Nv12 => "nv12",
            PixelFormat::I420 => "i420",
            PixelFormat::Yuyv => "yuyv",
            PixelFormat::Uyvy => "uyvy",
            PixelFormat::Rgb24 => "rgb24",
            PixelFormat::Rgba => "rgba",
            PixelFormat::Bgrx => "bgrx",
            PixelFormat::Gray8 => "gray8",
        }
    }

    /// The V4L2 FourCC of this format.
    pub fn fourcc(self) -> u32 {
        match self {
            PixelFormat::Nv12 => pix_fmt::NV12,
            PixelFormat::I420 => pix_fmt::YUV420,
            PixelFormat::Yuyv => pix_fmt::YUYV,
            PixelFormat::Uyvy => pix_fmt::UYVY,
            PixelFormat::Rgb24 => pix_fmt::RGB24,
            PixelFormat::Rgba => pix_fmt::RGBA32,
            PixelFormat::Bgrx => pix_fmt::XBGR32,
            PixelFormat::Gray8 => pix_fmt::GREY,
        }
    }

    /// The format with this V4L2 FourCC, if Eyrie handles it.
    pub fn from_fourcc(fourcc: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.fourcc() == fourcc)
    }

    /// Number of memory planes.
    pub fn plane_count(self) -> usize {
        match self {
            PixelFormat::Nv12 => 2,
            PixelFormat::I420 => 3,
            _ => 1,
        }
    }

    /// True for the YUV (and luma-only) formats.
    pub fn is_yuv(self) -> bool {
        !matches!(self, PixelFormat::Rgb24 | PixelFormat::Rgba | PixelFormat::Bgrx)
    }

    /// Bytes per pixel in a packed format, or per sample in plane `plane` of a
    /// planar one (NV12's chroma plane holds 2 bytes per chroma position).
    pub fn bytes_per_pixel(self, plane: usize) -> usize {
        match (self, plane) {
            (PixelFormat::Nv12, 1) => 2,
            (PixelFormat::Yuyv | PixelFormat::Uyvy, _) => 2,
            (PixelFormat::Rgb24, _) => 3,
            (PixelFormat::Rgba | PixelFormat::Bgrx, _) => 4,
            _ => 1,
        }
    }

    /// Horizontal and vertical subsampling shift of plane `plane`.
    pub fn subsampling(self, plane: usize) -> (u32, u32) {
        match (self, plane) {
            (PixelFormat::Nv12 | PixelFormat::I420, 1 | 2) => (1, 1),
            _ => (0, 0),
        }
    }

    /// Width and height must be multiples of these.
    pub fn alignment(self) -> (u32, u32) {
        match self {
            PixelFormat::Nv12 | PixelFormat::I420 => (2, 2),
            PixelFormat::Yuyv | PixelFormat::Uyvy => (2, 1),
            _ => (1, 1),
        }
    }
}

impl fmt::Display for PixelFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for PixelFormat {
    type Err = FormatError;

    fn from_str(s: &str) -> Result<Self, FormatError> {
        let lower = s.to_ascii_lowercase();
        let found = match lower.as_str() {
            "yuy2" => Some(PixelFormat::Yuyv),
            "yu12" => Some(PixelFormat::I420),
            "gray" | "grey" => Some(PixelFormat::Gray8),
            "rgb" => Some(PixelFormat::Rgb24),
            name => Self::ALL.into_iter().find(|f| f.name() == name),
        };
        found.ok_or_else(|| FormatError::UnknownFormat(s.to_owned()))
    }
}

/// A frame rate as a fraction (`30000/1001`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Fps {
    /// Frames...
    pub num: u32,
    /// ...per this many seconds.
    pub den: u32,
}

impl Fps {
    /// `num/den` frames per second; both must be non-zero.
    pub fn new(num: u32, den: u32) -> Result<Self, FormatError> {
        if num == 0 || den == 0 {
            return Err(FormatError::BadFps(format!("{num}/{den}")));
        }
        Ok(Fps { num, den })
    }

    /// The duration of one frame in nanoseconds (rounded down).
    pub fn frame_duration_ns(self) -> u64 {
        self.den as u64 * 1_000_000_000 / self.num as u64
    }

    /// The time of frame `n` from the start of a stream, in nanoseconds (exact, no drift).
    pub fn frame_time_ns(self, n: u64) -> u64 {
        (n as u128 * self.den as u128 * 1_000_000_000 / self.num as u128) as u64
    }

    /// The rate as a float.
    pub fn as_f64(self) -> f64 {
        self.num as f64 / self.den as f64
    }
}

impl fmt::Display for Fps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.den == 1 {
            write!(f, "{}", self.num)
        } else {
            write!(f, "{}/{}", self.num, self.den)
        }
    }
}

impl FromStr for Fps {
    type Err = FormatError;

    /// Accepts `30` or `30000/1001`.
    fn from_str(s: &str) -> Result<Self, FormatError> {
        let bad = || FormatError::BadFps(s.to_owned());
        let (num, den) = match s.split_once('/') {
            Some((n, d)) => (
                n.trim().parse().map_err(|_| bad())?,
                d.trim().parse().map_err(|_| bad())?,
            ),
            None => (s.trim().parse().map_err(|_| bad())?, 1),
        };
        Fps::new(num, den).map_err(|_| bad())
    }
}

impl Serialize for Fps {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.den == 1 {
            s.serialize_u32(self.num)
        } else {
            s.collect_str(self)
        }
    }
}

impl<'de> Deserialize<'de> for Fps {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Fps;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a frame rate: a positive integer or \"num/den\"")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Fps, E> {
                let num = u32::try_from(v).map_err(|_| E::custom(format!("frame rate {v} is too large")))?;
                Fps::new(num, 1).map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Fps, E> {
                let v = u64::try_from(v).map_err(|_| E::custom(format!("frame rate {v} is negative")))?;
                self.visit_u64(v)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Fps, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// Where one plane lies in a buffer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Plane {
    /// Byte offset of the plane's first row.
    pub offset: usize,
    /// Bytes from one row to the next.
    pub stride: usize,
    /// Bytes of pixel data in a row (≤ stride).
    pub row_bytes: usize,
    /// Number of rows.
    pub rows: usize,
}

impl Plane {
    /// The bytes this plane spans in a buffer, padding after the last row excluded.
    pub fn span(&self) -> std::ops::Range<usize> {
        if self.rows == 0 {
            return self.offset..self.offset;
        }
        self.offset..self.offset + self.stride * (self.rows - 1) + self.row_bytes
    }
}

/// Format, size, rate and memory layout of raw video.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct VideoInfo {
    /// Pixel format.
    pub format: PixelFormat,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Nominal frame rate.
    pub fps: Fps,
    planes: [Plane; 3],
    size: usize,
}

/// Largest accepted width or height.
pub const MAX_DIMENSION: u32 = 16384;

impl VideoInfo {
    /// Tightly packed layout: each row is exactly the pixels' bytes, planes back to back.
    pub fn new(format: PixelFormat, width: u32, height: u32, fps: Fps) -> Result<Self, FormatError> {
        Self::with_stride_align(format, width, height, fps, 1)
    }

    /// Layout with every stride rounded up to a multiple of `align` bytes (a power of
    /// two), as hardware often wants (e.g. 256 on Jetson pitch-linear surfaces).
    pub fn with_stride_align(
        format: PixelFormat,
        width: u32,
        height: u32,
        fps: Fps,
        align: usize,
    ) -> Result<Self, FormatError> {
        if !align.is_power_of_two() {
            return Err(FormatError::BadLayout(format!(
                "stride alignment {align} is not a power of two"
            )));
        }
        check_size(format, width, height)?;
        let mut layout = [(0usize, 0usize); 3];
        let mut offset = 0;
        for (p, slot) in layout.iter_mut().enumerate().take(format.plane_count()) {
            let (row_bytes, rows) = plane_dims(format, width, height, p);
            let stride = row_bytes.div_ceil(align) * align;
            *slot = (offset, stride);
            offset += stride * rows;
        }
        Self::with_layout(format, width, height, fps, &layout[..format.plane_count()], offset)
    }

    /// The layout of a V4L2 single-buffer image: plane 0's rows are
    /// `bytes_per_line` apart and the other planes follow it, their strides
    /// scaled from plane 0's as V4L2 defines for planar formats in one buffer.
    pub fn with_line_stride(
        format: PixelFormat,
        width: u32,
        height: u32,
        fps: Fps,
        bytes_per_line: usize,
        size: usize,
    ) -> Result<Self, FormatError> {
        check_size(format, width, height)?;
        let (row0, _) = plane_dims(format, width, height, 0);
        let mut layout = [(0usize, 0usize); 3];
        let mut offset = 0;
        for (p, slot) in layout.iter_mut().enumerate().take(format.plane_count()) {
            let (row_bytes, rows) = plane_dims(format, width, height, p);
            let stride = bytes_per_line * row_bytes / row0.max(1);
            *slot = (offset, stride);
            offset += stride * rows;
        }
        Self::with_layout(format, width, height, fps, &layout[..format.plane_count()], size)
    }

    /// A layout given plane by plane as `(offset, stride)`, as a V4L2 driver or a
    /// hardware allocator reports it, in a buffer of `size` bytes. Every plane must
    /// fit in the buffer and strides must hold a row.
    pub fn with_layout(
        format: PixelFormat,
        width: u32,
        height: u32,
        fps: Fps,
        layout: &[(usize, usize)],
        size: usize,
    ) -> Result<Self, FormatError> {
        check_size(format, width, height)?;
        if layout.len() != format.plane_count() {
            return Err(FormatError::BadLayout(format!(
                "{format} has {} planes, layout gives {}",
                format.plane_count(),
                layout.len()
            )));
        }
        let mut planes = [Plane::default(); 3];
        for (p, &(offset, stride)) in layout.iter().enumerate() {
            let (row_bytes, rows) = plane_dims(format, width, height, p);
            if stride < row_bytes {
                return Err(FormatError::BadLayout(format!(
                    "plane {p}: stride {stride} is shorter than a row of {row_bytes} bytes"
                )));
            }
            planes[p] = Plane {
                offset,
                stride,
                row_bytes,
                rows,
            };
            if planes[p].span().end > size {
                return Err(FormatError::BadLayout(format!(
                    "plane {p} ends at byte {}, past the buffer size {size}",
                    planes[p].span().end
                )));
            }
        }
        Ok(VideoInfo {
            format,
            width,
            height,
            fps,
            planes,
            size,
        })
    }

    /// The planes, in order.
    pub fn planes(&self) -> &[Plane] {
        &self.planes[..self.format.plane_count()]
    }

    /// Bytes a buffer needs to hold one frame.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The bytes of plane `p` within a frame buffer.
    pub fn plane_bytes<'a>(&self, data: &'a [u8], p: usize) -> &'a [u8] {
        &data[self.planes[p].span()]
    }

    /// True when `other` differs only in frame rate (same memory layout).
    pub fn same_layout(&self, other: &VideoInfo) -> bool {
        self.format == other.format
            && self.width == other.width
            && self.height == other.height
            && self.planes == other.planes
            && self.size == other.size
    }
}

impl fmt::Display for VideoInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}x{} @ {} fps", self.format, self.width, self.height, self.fps)
    }
}

fn check_size(format: PixelFormat, width: u32, height: u32) -> Result<(), FormatError> {
    let bad = |dimension: &'static str, why: &'static str| {
        Err(FormatError::BadSize {
            format,
            width,
            height,
            dimension,
            why,
        })
    };
    let (aw, ah) = format.alignment();
    if width == 0 || width > MAX_DIMENSION {
        bad("width", "out of range 1..=16384")
    } else if height == 0 || height > MAX_DIMENSION {
        bad("height", "out of range 1..=16384")
    } else if !width.is_multiple_of(aw) {
        bad("width", "must be even")
    } else if !height.is_multiple_of(ah) {
        bad("height", "must be even")
    } else {
        Ok(())
    }
}

/// Row bytes and row count of plane `p` (without stride padding).
fn plane_dims(format: PixelFormat, width: u32, height: u32, p: usize) -> (usize, usize) {
    let (sx, sy) = format.subsampling(p);
    let w = (width >> sx) as usize;
    let h = (height >> sy) as usize;
    (w * format.bytes_per_pixel(p), h)
}

/// Errors about formats and layouts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// A name that is no known pixel format.
    #[error("unknown pixel format `{0}` (expected one of nv12, i420, yuyv, uyvy, rgb24, rgba, bgrx, gray8)")]
    UnknownFormat(String),
    /// A size the format cannot have.
    #[error("{format} cannot be {width}x{height}: {dimension} {why}")]
    BadSize {
        /// The format.
        format: PixelFormat,
        /// Asked width.
        width: u32,
        /// Asked height.
        height: u32,
        /// The dimension at fault: `width` or `height`.
        dimension: &'static str,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A frame rate that is not a positive fraction.
    #[error("bad frame rate `{0}` (expected a positive integer or num/den)")]
    BadFps(String),
    /// A plane layout that does not fit.
    #[error("bad plane layout: {0}")]
    BadLayout(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fps30() -> Fps {
        Fps::new(30, 1).unwrap()
    }

    #[test]
    fn v4l2_line_strides_scale_to_the_chroma_planes() {
        // As a driver pads 640-pixel rows to 704 bytes.
        let i420 = VideoInfo::with_line_stride(PixelFormat::I420, 640, 480, fps30(), 704, 704 * 720).unwrap();
        let strides: Vec<(usize, usize)> = i420.planes().iter().map(|p| (p.offset, p.stride)).collect();
        assert_eq!(strides, [(0, 704), (704 * 480, 352), (704 * 480 + 352 * 240, 352)]);
        let nv12 = VideoInfo::with_line_stride(PixelFormat::Nv12, 640, 480, fps30(), 640, 460_800).unwrap();
        assert_eq!(nv12, VideoInfo::new(PixelFormat::Nv12, 640, 480, fps30()).unwrap());
        assert!(VideoInfo::with_line_stride(PixelFormat::Yuyv, 640, 480, fps30(), 1280, 1000).is_err());
    }

    #[test]
    fn sizes_of_every_format_at_640x480() {
        let expect = [
            (PixelFormat::Nv12, 460_800),
            (PixelFormat::I420, 460_800),
            (PixelFormat::Yuyv, 614_400),
            (PixelFormat::Uyvy, 614_400),
            (PixelFormat::Rgb24, 921_600),
            (PixelFormat::Rgba, 1_228_800),
            (PixelFormat::Bgrx, 1_228_800),
            (PixelFormat::Gray8, 307_200),
        ];
        for (format, size) in expect {
            let info = VideoInfo::new(format, 640, 480, fps30()).unwrap();
            assert_eq!(info.size(), size, "{format}");
            assert_eq!(info.planes().len(), format.plane_count());
        }
    }

    #[test]
    fn i420_plane_offsets() {
        let info = VideoInfo::new(PixelFormat::I420, 1366, 768, fps30()).unwrap();
        let p = info.planes();
        assert_eq!((p[0].offset, p[0].stride), (0, 1366));
        assert_eq!((p[1].offset, p[1].stride, p[1].rows), (1366 * 768, 683, 384));
        assert_eq!(p[2].offset, 1366 * 768 + 683 * 384);
        assert_eq!(info.size(), 1366 * 768 * 3 / 2);
    }

    #[test]
    fn aligned_strides() {
        let info = VideoInfo::with_stride_align(PixelFormat::Nv12, 1366, 768, fps30(), 256).unwrap();
        assert_eq!(info.planes()[0].stride, 1536);
        assert_eq!(info.planes()[1].offset, 1536 * 768);
        assert_eq!(info.size(), 1536 * 768 + 1536 * 384);
    }

    #[test]
    fn odd_sizes_are_refused_where_chroma_is_subsampled() {
        assert!(VideoInfo::new(PixelFormat::Nv12, 641, 480, fps30()).is_err());
        assert!(VideoInfo::new(PixelFormat::Yuyv, 640, 481, fps30()).is_ok());
        assert!(VideoInfo::new(PixelFormat::Rgb24, 641, 481, fps30()).is_ok());
        assert!(VideoInfo::new(PixelFormat::Gray8, 0, 480, fps30()).is_err());
    }

    #[test]
    fn driver_layout_is_checked_against_the_buffer() {
        let ok = VideoInfo::with_layout(
            PixelFormat::Nv12,
            64,
            64,
            fps30(),
            &[(0, 128), (128 * 64, 128)],
            128 * 96,
        );
        assert!(ok.is_ok());
        let short = VideoInfo::with_layout(
            PixelFormat::Nv12,
            64,
            64,
            fps30(),
            &[(0, 128), (128 * 64, 128)],
            128 * 95,
        );
        assert!(matches!(short, Err(FormatError::BadLayout(_))));
        let narrow = VideoInfo::with_layout(PixelFormat::Yuyv, 64, 64, fps30(), &[(0, 100)], 100 * 64);
        assert!(matches!(narrow, Err(FormatError::BadLayout(_))));
    }

    #[test]
    fn names_fourccs_and_rates_round_trip() {
        for f in PixelFormat::ALL {
            assert_eq!(f.name().parse::<PixelFormat>().unwrap(), f);
            assert_eq!(PixelFormat::from_fourcc(f.fourcc()), Some(f));
        }
        assert_eq!("YUY2".parse::<PixelFormat>().unwrap(), PixelFormat::Yuyv);
        assert!("h264".parse::<PixelFormat>().is_err());
        let ntsc: Fps = "30000/1001".parse().unwrap();
        assert_eq!(ntsc.frame_duration_ns(), 33_366_666);
        assert_eq!(ntsc.frame_time_ns(30000), 1001 * 1_000_000_000);
        assert!("0".parse::<Fps>().is_err());
        assert!("30/0".parse::<Fps>().is_err());
    }
}

//! Frames into the planar 4:2:0 (I420) layout most codecs take, touching only
//! what differs: an I420 frame is lent as it is, an NV12 frame lends its luma
//! and only its chroma is de-interleaved, packed 4:2:2 and RGB are converted
//! once into a reused scratch buffer. BT.601 limited range throughout, as
//! everywhere in Eyrie (`media::format`).

use crate::media::paint::{Rgb, rgb_to_yuv};
use crate::media::{Frame, PixelFormat};

/// Borrowed I420 planes: `(data, stride)` for Y, U and V.
#[derive(Clone, Copy, Debug)]
pub struct I420<'a> {
    /// Width in pixels (even).
    pub width: usize,
    /// Height in pixels (even).
    pub height: usize,
    /// Luma and its stride.
    pub y: (&'a [u8], usize),
    /// Cb and its stride.
    pub u: (&'a [u8], usize),
    /// Cr and its stride.
    pub v: (&'a [u8], usize),
}

/// Reused scratch memory for conversions into I420.
#[derive(Default)]
pub struct ToI420 {
    scratch: Vec<u8>,
}

impl ToI420 {
    /// Formats this converter takes.
    pub const FORMATS: &'static [PixelFormat] = &[
        PixelFormat::I420,
        PixelFormat::Nv12,
        PixelFormat::Yuyv,
        PixelFormat::Uyvy,
        PixelFormat::Gray8,
        PixelFormat::Rgb24,
        PixelFormat::Rgba,
        PixelFormat::Bgrx,
    ];

    /// `frame` as I420 planes. Width and height must be even (checked by the
    /// encoders before the first frame).
    pub fn convert<'a>(&'a mut self, frame: &'a Frame) -> I420<'a> {
        let (w, h) = (frame.info.width as usize, frame.info.height as usize);
        let (cw, ch) = (w / 2, h / 2);
        let planes = frame.info.planes();
        let data = frame.buffer.bytes();
        let plane = |p: usize| (&data[planes[p].offset..], planes[p].stride);
        match frame.info.format {
            PixelFormat::I420 => {
                return I420 {
                    width: w,
                    height: h,
                    y: plane(0),
                    u: plane(1),
                    v: plane(2),
                };
            }
            PixelFormat::Nv12 => {
                self.scratch.resize(2 * cw * ch, 0);
                let (u, v) = self.scratch.split_at_mut(cw * ch);
                let (src, stride) = plane(1);
                for row in 0..ch {
                    let line = &src[row * stride..row * stride + 2 * cw];
                    let (ur, vr) = (&mut u[row * cw..][..cw], &mut v[row * cw..][..cw]);
                    for ((pair, a), b) in line.chunks_exact(2).zip(ur).zip(vr) {
                        *a = pair[0];
                        *b = pair[1];
                    }
                }
                let (u, v) = self.scratch.split_at(cw * ch);
                return I420 {
                    width: w,
                    height: h,
                    y: plane(0),
                    u: (u, cw),
                    v: (v, cw),
                };
            }
            PixelFormat::Gray8 => {
                // Neutral chroma, written once: an encoder's frames all have one layout.
                if self.scratch.len() != cw * ch {
                    self.scratch.clear();
                    self.scratch.resize(cw * ch, 128);
                }
                return I420 {
                    width: w,
                    height: h,
                    y: plane(0),
                    u: (&self.scratch, cw),
                    v: (&self.scratch, cw),
                };
            }
            _ => {}
        }
        // Packed formats: everything into scratch.
        self.scratch.resize(w * h + 2 * cw * ch, 0);
        let (y, chroma) = self.scratch.split_at_mut(w * h);
        let (u, v) = chroma.split_at_mut(cw * ch);
        let (src, stride) = plane(0);
        let format = frame.info.format;
        for row in (0..h).step_by(2) {
            let lines = [&src[row * stride..], &src[(row + 1) * stride..]];
            let (y0, y1) = y[row * w..(row + 2) * w].split_at_mut(w);
            let (ur, vr) = (&mut u[row / 2 * cw..][..cw], &mut v[row / 2 * cw..][..cw]);
            match format {
                PixelFormat::Yuyv | PixelFormat::Uyvy => {
                    // Y0 Cb Y1 Cr (YUYV) or Cb Y0 Cr Y1 (UYVY); chroma averaged over the two rows.
                    let (yo, co) = if format == PixelFormat::Yuyv { (0, 1) } else { (1, 0) };
                    for x in 0..cw {
                        let (a, b) = (&lines[0][4 * x..4 * x + 4], &lines[1][4 * x..4 * x + 4]);
                        y0[2 * x] = a[yo];
                        y0[2 * x + 1] = a[yo + 2];
                        y1[2 * x] = b[yo];
                        y1[2 * x + 1] = b[yo + 2];
                        ur[x] = ((a[co] as u16 + b[co] as u16 + 1) >> 1) as u8;
                        vr[x] = ((a[co + 2] as u16 + b[co + 2] as u16 + 1) >> 1) as u8;
                    }
                }
                _ => {
                    let (bpp, order) = match format {
                        PixelFormat::Rgb24 => (3, [0, 1, 2]),
                        PixelFormat::Rgba => (4, [0, 1, 2]),
                        _ => (4, [2, 1, 0]), // Bgrx
                    };
                    for x in 0..cw {
                        let (mut su, mut sv) = (0u16, 0u16);
                        for (line, out) in lines.iter().zip([&mut *y0, &mut *y1]) {
                            for dx in 0..2 {
                                let p = &line[(2 * x + dx) * bpp..];
                                let (yy, uu, vv) = rgb_to_yuv(Rgb(p[order[0]], p[order[1]], p[order[2]]));
                                out[2 * x + dx] = yy;
                                su += uu as u16;
                                sv += vv as u16;
                            }
                        }
                        ur[x] = ((su + 2) >> 2) as u8;
                        vr[x] = ((sv + 2) >> 2) as u8;
                    }
                }
            }
        }
        let (y, chroma) = self.scratch.split_at(w * h);
        let (u, v) = chroma.split_at(cw * ch);
        I420 {
            width: w,
            height: h,
            y: (y, w),
            u: (u, cw),
            v: (v, cw),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::paint::write_rgb_image;
    use crate::media::{Buffer, Fps, FrameMeta, VideoInfo};
    use std::sync::Arc;

    fn frame(format: PixelFormat, w: u32, h: u32, data: Vec<u8>) -> Frame {
        let info = VideoInfo::new(format, w, h, Fps { num: 30, den: 1 }).unwrap();
        Frame {
            info,
            pts: 0,
            duration: 0,
            capture_utc: std::time::SystemTime::UNIX_EPOCH,
            seq: 0,
            source: Arc::from("t"),
            meta: Arc::new(FrameMeta::default()),
            buffer: Buffer::from_bytes(data.into()),
        }
    }

    /// The same picture written in every format converts to nearly the same
    /// I420 (chroma rounding aside).
    #[test]
    fn every_format_converts_to_the_i420_of_the_same_picture() {
        let (w, h) = (8u32, 4u32);
        let rgb: Vec<u8> = (0..w * h * 3).map(|i| (i * 37 % 251) as u8).collect();
        let reference = {
            let info = VideoInfo::new(PixelFormat::I420, w, h, Fps { num: 30, den: 1 }).unwrap();
            let mut data = vec![0; info.size()];
            write_rgb_image(&info, &rgb, &mut data);
            data
        };
        for format in ToI420::FORMATS.iter().copied().filter(|f| *f != PixelFormat::Gray8) {
            let info = VideoInfo::new(format, w, h, Fps { num: 30, den: 1 }).unwrap();
            let mut data = vec![0; info.size()];
            write_rgb_image(&info, &rgb, &mut data);
            let f = frame(format, w, h, data);
            let mut conv = ToI420::default();
            let out = conv.convert(&f);
            let mut got = Vec::new();
            for (plane, width, height) in [(out.y, 8, 4), (out.u, 4, 2), (out.v, 4, 2)] {
                for row in 0..height {
                    got.extend_from_slice(&plane.0[row * plane.1..][..width]);
                }
            }
            // 4:2:2 sources average two chroma rows that the 4:2:0 reference
            // subsampled differently; RGB is exact up to rounding.
            let tolerance = if matches!(format, PixelFormat::Yuyv | PixelFormat::Uyvy) {
                40
            } else {
                2
            };
            for (i, (a, b)) in got.iter().zip(&reference).enumerate() {
                let limit = if i < 32 { 2 } else { tolerance };
                assert!(a.abs_diff(*b) <= limit, "{format}: byte {i}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn i420_is_lent_without_conversion() {
        let info = VideoInfo::new(PixelFormat::I420, 4, 2, Fps { num: 30, den: 1 }).unwrap();
        let f = frame(PixelFormat::I420, 4, 2, (0..info.size() as u8).collect());
        let mut conv = ToI420::default();
        let out = conv.convert(&f);
        assert_eq!(out.y.0.as_ptr(), f.buffer.bytes().as_ptr());
        assert_eq!(&out.u.0[..2], &[8, 9]);
        assert_eq!(&out.v.0[..2], &[10, 11]);
    }
}

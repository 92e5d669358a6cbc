//! Frames into a model's input tensor in one pass: bilinear resampling straight
//! from the frame's planes (NV12, I420, YUYV, UYVY, RGB24, RGBA, BGRx, GRAY8),
//! YUV → RGB (BT.601 limited range, as [`crate::media::paint`]), normalisation
//! and the NCHW planar layout, written into the batch tensor's slot. No
//! full-size RGB frame is ever made: the only frame data written is the tensor.
//!
//! The sampling tables (source byte offsets and weights of every output column
//! and row, per channel) are computed once per frame layout.

use serde::{Deserialize, Serialize};

use crate::media::{PixelFormat, VideoInfo};
use crate::process::letterbox::{Fit, Resize};

/// Grey of the letterbox padding (the YOLO convention), before normalisation.
pub const PAD: f32 = 114.0;

/// How 0..=255 channel values become tensor values: `(v * scale - mean) / std`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Normalize {
    /// Multiplies each 0..=255 value first (`1/255` maps to 0..=1).
    pub scale: f32,
    /// Subtracted per channel, in tensor channel order.
    pub mean: [f32; 3],
    /// Divides per channel, in tensor channel order.
    pub std: [f32; 3],
    /// Channel order of the tensor: `rgb` or `bgr`.
    pub order: ChannelOrder,
}

impl Default for Normalize {
    fn default() -> Self {
        Normalize {
            scale: 1.0 / 255.0,
            mean: [0.0; 3],
            std: [1.0; 3],
            order: ChannelOrder::Rgb,
        }
    }
}

impl Normalize {
    /// No change: tensor values are the 0..=255 channel values.
    pub fn identity() -> Self {
        Normalize {
            scale: 1.0,
            ..Normalize::default()
        }
    }

    /// Checks the values, naming the key at fault.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if !self.scale.is_finite() || self.scale == 0.0 {
            return Err(("scale", format!("{} is not a usable scale", self.scale)));
        }
        if self.std.iter().any(|s| !s.is_finite() || *s == 0.0) {
            return Err(("std", format!("{:?}: every value must be non-zero", self.std)));
        }
        Ok(())
    }
}

/// Channel order of a model's input.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelOrder {
    /// Red, green, blue (Ultralytics exports).
    #[default]
    Rgb,
    /// Blue, green, red (Caffe-era models).
    Bgr,
}

/// A tensor element type the preprocessor can write.
pub trait Element: Copy + Send + Sync + 'static {
    /// The element nearest to `v`.
    fn from_f32(v: f32) -> Self;
}

impl Element for f32 {
    fn from_f32(v: f32) -> Self {
        v
    }
}

impl Element for half::f16 {
    fn from_f32(v: f32) -> Self {
        half::f16::from_f32(v)
    }
}

impl Element for u8 {
    fn from_f32(v: f32) -> Self {
        v.round().clamp(0.0, 255.0) as u8
    }
}

/// One sample position along an axis: two byte offsets and the second's weight.
#[derive(Clone, Copy, Debug)]
struct Tap {
    a: usize,
    b: usize,
    w: f32,
}

/// Where one channel's samples live.
#[derive(Clone, Copy, Debug)]
struct Channel {
    plane: usize,
    /// Bytes between horizontally adjacent samples.
    step: usize,
    /// Byte of this channel within its pixel (or macropixel).
    offset: usize,
    /// Subsampling (1 or 2) horizontally and vertically.
    sub: (u32, u32),
}

/// Whether the channels are Y, Cb, Cr (converted), R, G, B, or luma alone
/// (limited range, as [`crate::media::paint`] writes it).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Space {
    Yuv,
    Rgb,
    Gray,
}

fn channels(format: PixelFormat) -> (Space, [Channel; 3]) {
    let ch = |plane, step, offset, sub| Channel {
        plane,
        step,
        offset,
        sub,
    };
    match format {
        PixelFormat::Nv12 => (
            Space::Yuv,
            [ch(0, 1, 0, (1, 1)), ch(1, 2, 0, (2, 2)), ch(1, 2, 1, (2, 2))],
        ),
        PixelFormat::I420 => (
            Space::Yuv,
            [ch(0, 1, 0, (1, 1)), ch(1, 1, 0, (2, 2)), ch(2, 1, 0, (2, 2))],
        ),
        PixelFormat::Yuyv => (
            Space::Yuv,
            [ch(0, 2, 0, (1, 1)), ch(0, 4, 1, (2, 1)), ch(0, 4, 3, (2, 1))],
        ),
        PixelFormat::Uyvy => (
            Space::Yuv,
            [ch(0, 2, 1, (1, 1)), ch(0, 4, 0, (2, 1)), ch(0, 4, 2, (2, 1))],
        ),
        PixelFormat::Rgb24 => (
            Space::Rgb,
            [ch(0, 3, 0, (1, 1)), ch(0, 3, 1, (1, 1)), ch(0, 3, 2, (1, 1))],
        ),
        PixelFormat::Rgba => (
            Space::Rgb,
            [ch(0, 4, 0, (1, 1)), ch(0, 4, 1, (1, 1)), ch(0, 4, 2, (1, 1))],
        ),
        PixelFormat::Bgrx => (
            Space::Rgb,
            [ch(0, 4, 2, (1, 1)), ch(0, 4, 1, (1, 1)), ch(0, 4, 0, (1, 1))],
        ),
        PixelFormat::Gray8 => (Space::Gray, [ch(0, 1, 0, (1, 1)); 3]),
    }
}

/// Bilinear taps of `n` output samples over `len` source samples, output
/// sample `i` at source coordinate `(i + 0.5) / scale - 0.5` (pixel centres
/// aligned), with source samples `sub` apart in the full-resolution grid.
fn taps(n: u32, scale: f32, sub: u32, len: u32, unit: usize, base: usize) -> Vec<Tap> {
    let last = (len.div_ceil(sub) - 1) as f32;
    (0..n)
        .map(|i| {
            let full = (i as f32 + 0.5) / scale - 0.5;
            let s = ((full + 0.5) / sub as f32 - 0.5).clamp(0.0, last);
            let i0 = s.floor();
            let i1 = (i0 + 1.0).min(last);
            Tap {
                a: base + i0 as usize * unit,
                b: base + i1 as usize * unit,
                w: s - i0,
            }
        })
        .collect()
}

/// A frame layout's way into a model input of a given size.
#[derive(Clone, Debug)]
pub struct Preprocess {
    info: VideoInfo,
    fit: Fit,
    norm: Normalize,
    space: Space,
    /// Per channel: column taps (byte offsets within a row).
    cols: [Vec<Tap>; 3],
    /// Per channel: row taps (byte offsets of rows within the buffer).
    rows: [Vec<Tap>; 3],
}

impl Preprocess {
    /// The preprocessing of `info` frames into a `width`×`height` input.
    pub fn new(info: &VideoInfo, input: (u32, u32), resize: Resize, norm: Normalize) -> Self {
        let fit = Fit::new(resize, (info.width, info.height), input);
        let (space, chans) = channels(info.format);
        let planes = info.planes();
        let cols = chans.map(|c| {
            let len = info.width;
            taps(fit.size.0, fit.scale.0, c.sub.0, len, c.step, c.offset)
        });
        let rows = chans.map(|c| {
            let p = &planes[c.plane];
            taps(fit.size.1, fit.scale.1, c.sub.1, info.height, p.stride, p.offset)
        });
        Preprocess {
            info: *info,
            fit,
            norm,
            space,
            cols,
            rows,
        }
    }

    /// The frame layout this was built for.
    pub fn info(&self) -> &VideoInfo {
        &self.info
    }

    /// Where the frame lands in the input.
    pub fn fit(&self) -> &Fit {
        &self.fit
    }

    /// The parameters of `kernels/preprocess.cu` for this layout: the same
    /// geometry, channels and normalisation as [`Preprocess::run`].
    #[cfg(feature = "cuda")]
    pub(crate) fn kernel_params(&self) -> (Vec<i32>, Vec<f32>) {
        let (space, chans) = channels(self.info.format);
        let f = &self.fit;
        let mut ip = vec![
            f.dst.0 as i32,
            f.dst.1 as i32,
            f.offset.0 as i32,
            f.offset.1 as i32,
            f.size.0 as i32,
            f.size.1 as i32,
            match space {
                Space::Yuv => 0,
                Space::Rgb => 1,
                Space::Gray => 2,
            },
            (self.norm.order == ChannelOrder::Bgr) as i32,
        ];
        let planes = self.info.planes();
        for c in chans {
            let p = &planes[c.plane];
            ip.extend([
                p.offset as i32,
                p.stride as i32,
                c.step as i32,
                c.offset as i32,
                c.sub.0 as i32,
                c.sub.1 as i32,
                (self.info.width.div_ceil(c.sub.0) - 1) as i32,
                (self.info.height.div_ceil(c.sub.1) - 1) as i32,
            ]);
        }
        let n = &self.norm;
        let mut fp = vec![f.scale.0, f.scale.1];
        fp.extend((0..3).map(|s| n.scale / n.std[s]));
        fp.extend((0..3).map(|s| -n.mean[s] / n.std[s]));
        (ip, fp)
    }

    /// Writes one frame (`data`, laid out as [`Preprocess::info`]) into `out`,
    /// a `3 × height × width` planar slot of the batch tensor.
    pub fn run<T: Element>(&self, data: &[u8], out: &mut [T]) {
        let (w, h) = (self.fit.dst.0 as usize, self.fit.dst.1 as usize);
        let area = w * h;
        assert!(
            out.len() >= 3 * area,
            "tensor slot of {} elements is too small",
            out.len()
        );
        assert!(
            data.len() >= self.info.size(),
            "frame of {} bytes is too small",
            data.len()
        );
        let order = match self.norm.order {
            ChannelOrder::Rgb => [0, 1, 2],
            ChannelOrder::Bgr => [2, 1, 0],
        };
        // (v * scale - mean) / std as one multiply-add per value.
        let k: [f32; 3] = std::array::from_fn(|s| self.norm.scale / self.norm.std[s]);
        let b: [f32; 3] = std::array::from_fn(|s| -self.norm.mean[s] / self.norm.std[s]);
        let (p0, rest) = out[..3 * area].split_at_mut(area);
        let (p1, p2) = rest.split_at_mut(area);
        // Padding first (only where the picture does not cover the input).
        if self.fit.size != self.fit.dst {
            for (slot, plane) in [&mut *p0, &mut *p1, &mut *p2].into_iter().enumerate() {
                plane.fill(T::from_f32(PAD * k[slot] + b[slot]));
            }
        }
        let (x0, y0) = (self.fit.offset.0 as usize, self.fit.offset.1 as usize);
        let (pw, ph) = (self.fit.size.0 as usize, self.fit.size.1 as usize);
        let [cols0, cols1, cols2] = &self.cols;
        for oy in 0..ph {
            let rows = [self.rows[0][oy], self.rows[1][oy], self.rows[2][oy]];
            let sample = |r: &Tap, t: &Tap| {
                let p00 = data[r.a + t.a] as f32;
                let p01 = data[r.a + t.b] as f32;
                let p10 = data[r.b + t.a] as f32;
                let p11 = data[r.b + t.b] as f32;
                let top = p00 + (p01 - p00) * t.w;
                let bottom = p10 + (p11 - p10) * t.w;
                top + (bottom - top) * r.w
            };
            let at = (y0 + oy) * w + x0;
            let (o0, o1, o2) = (&mut p0[at..at + pw], &mut p1[at..at + pw], &mut p2[at..at + pw]);
            for (ox, ((t0, t1), t2)) in cols0[..pw].iter().zip(&cols1[..pw]).zip(&cols2[..pw]).enumerate() {
                let rgb = match self.space {
                    Space::Rgb => [sample(&rows[0], t0), sample(&rows[1], t1), sample(&rows[2], t2)],
                    Space::Gray => yuv_to_rgb(sample(&rows[0], t0), 128.0, 128.0),
                    Space::Yuv => yuv_to_rgb(sample(&rows[0], t0), sample(&rows[1], t1), sample(&rows[2], t2)),
                };
                o0[ox] = T::from_f32(rgb[order[0]] * k[0] + b[0]);
                o1[ox] = T::from_f32(rgb[order[1]] * k[1] + b[1]);
                o2[ox] = T::from_f32(rgb[order[2]] * k[2] + b[2]);
            }
        }
    }
}

/// BT.601 limited-range Y, Cb, Cr to R, G, B (0..=255, clamped), in floats.
pub fn yuv_to_rgb(y: f32, u: f32, v: f32) -> [f32; 3] {
    let c = 1.164_383_6 * (y - 16.0);
    let (d, e) = (u - 128.0, v - 128.0);
    [
        (c + 1.596_026_8 * e).clamp(0.0, 255.0),
        (c - 0.391_762_3 * d - 0.812_967_6 * e).clamp(0.0, 255.0),
        (c + 2.017_232_1 * d).clamp(0.0, 255.0),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::Fps;
    use crate::media::paint::{pixel_at, write_rgb_image};

    /// A smooth picture (gradients), so converting before or after resampling agrees.
    fn gradient(w: u32, h: u32) -> Vec<u8> {
        let mut rgb = Vec::with_capacity((w * h * 3) as usize);
        for y in 0..h {
            for x in 0..w {
                rgb.push((40 + x * 170 / w) as u8);
                rgb.push((30 + y * 190 / h) as u8);
                rgb.push((200 - (x + y) * 150 / (w + h)) as u8);
            }
        }
        rgb
    }

    /// The straightforward way: the whole frame to RGB, then bilinear, then normalise.
    fn reference(info: &VideoInfo, data: &[u8], input: (u32, u32), norm: &Normalize) -> Vec<f32> {
        let fit = Fit::new(Resize::Letterbox, (info.width, info.height), input);
        let (w, h) = (input.0 as usize, input.1 as usize);
        let rgb: Vec<[f32; 3]> = (0..info.height)
            .flat_map(|y| (0..info.width).map(move |x| (x, y)))
            .map(|(x, y)| {
                let p = pixel_at(info, data, x, y);
                [p.0 as f32, p.1 as f32, p.2 as f32]
            })
            .collect();
        let at = |x: usize, y: usize| rgb[y * info.width as usize + x];
        let mut out = vec![0.0; 3 * w * h];
        for oy in 0..h {
            for ox in 0..w {
                let inside = ox >= fit.offset.0 as usize
                    && oy >= fit.offset.1 as usize
                    && ox < (fit.offset.0 + fit.size.0) as usize
                    && oy < (fit.offset.1 + fit.size.1) as usize;
                let v = if inside {
                    let sx = ((ox - fit.offset.0 as usize) as f32 + 0.5) / fit.scale.0 - 0.5;
                    let sy = ((oy - fit.offset.1 as usize) as f32 + 0.5) / fit.scale.1 - 0.5;
                    let sx = sx.clamp(0.0, (info.width - 1) as f32);
                    let sy = sy.clamp(0.0, (info.height - 1) as f32);
                    let (x0, y0) = (sx.floor() as usize, sy.floor() as usize);
                    let (x1, y1) = (
                        (x0 + 1).min(info.width as usize - 1),
                        (y0 + 1).min(info.height as usize - 1),
                    );
                    let (fx, fy) = (sx - x0 as f32, sy - y0 as f32);
                    let mut v = [0.0; 3];
                    for (c, v) in v.iter_mut().enumerate() {
                        let top = at(x0, y0)[c] * (1.0 - fx) + at(x1, y0)[c] * fx;
                        let bottom = at(x0, y1)[c] * (1.0 - fx) + at(x1, y1)[c] * fx;
                        *v = top * (1.0 - fy) + bottom * fy;
                    }
                    v
                } else {
                    [PAD; 3]
                };
                for c in 0..3 {
                    out[c * w * h + oy * w + ox] = (v[c] * norm.scale - norm.mean[c]) / norm.std[c];
                }
            }
        }
        out
    }

    #[test]
    fn every_format_matches_the_straightforward_reference() {
        let norm = Normalize::default();
        for format in PixelFormat::ALL {
            for (sw, sh, input) in [(320, 180, (64, 36)), (200, 150, (96, 64)), (64, 48, (128, 128))] {
                let info = VideoInfo::new(format, sw, sh, Fps::new(30, 1).unwrap()).unwrap();
                let mut data = vec![0u8; info.size()];
                write_rgb_image(&info, &gradient(sw, sh), &mut data);
                let pre = Preprocess::new(&info, input, Resize::Letterbox, norm.clone());
                let mut out = vec![0f32; 3 * (input.0 * input.1) as usize];
                pre.run(&data, &mut out);
                let want = reference(&info, &data, input, &norm);
                let worst = out.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
                // YUV is converted after resampling here, before it in the reference
                // (which also takes chroma at the nearest sample): within 3/255.
                let tolerance = if format.is_yuv() { 3.0 } else { 1.0 } / 255.0;
                assert!(worst <= tolerance, "{format} {sw}x{sh} -> {input:?}: off by {worst}");
            }
        }
    }

    #[test]
    fn normalisation_order_and_element_types() {
        let info = VideoInfo::new(PixelFormat::Rgb24, 4, 2, Fps::new(30, 1).unwrap()).unwrap();
        let data: Vec<u8> = [[255u8, 0, 10]; 8].concat();
        let norm = Normalize {
            scale: 1.0,
            mean: [10.0, 0.0, 5.0],
            std: [2.0, 1.0, 5.0],
            order: ChannelOrder::Bgr,
        };
        let pre = Preprocess::new(&info, (4, 2), Resize::Stretch, norm);
        let mut out = [0f32; 24];
        pre.run(&data, &mut out);
        // B first: (10 - 10) / 2, then G: 0, then R: (255 - 5) / 5.
        assert!(out[..8].iter().all(|&v| v == 0.0));
        assert!(out[16..].iter().all(|&v| v == 50.0));
        let mut halves = [half::f16::ZERO; 24];
        pre.run(&data, &mut halves);
        assert_eq!(halves[20].to_f32(), 50.0);
        let mut bytes = [0u8; 24];
        Preprocess::new(&info, (4, 2), Resize::Stretch, Normalize::identity()).run(&data, &mut bytes);
        assert_eq!(&bytes[..8], &[255; 8]);
        assert_eq!(&bytes[16..], &[10; 8]);
    }
}

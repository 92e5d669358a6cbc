//! Painting into frames of any [`PixelFormat`]: colour conversion (BT.601,
//! limited range for YUV), filled rectangles and bitmap text. The synthetic
//! cameras draw with it, and on-screen display builds on it.
//!
//! Rectangles snap outwards to the format's chroma grid (even coordinates for
//! 4:2:0 and 4:2:2), so a filled box never leaves a half-coloured chroma sample.

use super::font;
use super::format::{PixelFormat, VideoInfo};

/// An sRGB colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rgb(pub u8, pub u8, pub u8);

/// BT.601 limited-range Y, Cb, Cr of an RGB colour.
pub fn rgb_to_yuv(c: Rgb) -> (u8, u8, u8) {
    let (r, g, b) = (c.0 as i32, c.1 as i32, c.2 as i32);
    let y = ((66 * r + 129 * g + 25 * b + 128) >> 8) + 16;
    let u = ((-38 * r - 74 * g + 112 * b + 128) >> 8) + 128;
    let v = ((112 * r - 94 * g - 18 * b + 128) >> 8) + 128;
    (y as u8, u as u8, v as u8)
}

/// RGB of a BT.601 limited-range Y, Cb, Cr.
pub fn yuv_to_rgb(y: u8, u: u8, v: u8) -> Rgb {
    let c = 298 * (y as i32 - 16);
    let d = u as i32 - 128;
    let e = v as i32 - 128;
    let clamp = |x: i32| ((x + 128) >> 8).clamp(0, 255) as u8;
    Rgb(clamp(c + 409 * e), clamp(c - 100 * d - 208 * e), clamp(c + 516 * d))
}

/// A frame buffer being drawn on.
pub struct Canvas<'a> {
    info: VideoInfo,
    data: &'a mut [u8],
}

impl<'a> Canvas<'a> {
    /// Wraps `data`, which must hold a frame of `info`.
    pub fn new(info: VideoInfo, data: &'a mut [u8]) -> Self {
        assert!(
            data.len() >= info.size(),
            "buffer of {} bytes is smaller than a {info} frame",
            data.len()
        );
        Canvas { info, data }
    }

    /// The frame's format and layout.
    pub fn info(&self) -> &VideoInfo {
        &self.info
    }

    /// Fills the rectangle at (`x`, `y`) of size `w`×`h`, clipped to the frame.
    pub fn fill_rect(&mut self, x: i32, y: i32, w: i32, h: i32, color: Rgb) {
        let (aw, ah) = self.info.format.alignment();
        let (aw, ah) = (aw as i32, ah as i32);
        let x0 = (x.max(0) / aw) * aw;
        let y0 = (y.max(0) / ah) * ah;
        let x1 = (x.saturating_add(w)).min(self.info.width as i32);
        let y1 = (y.saturating_add(h)).min(self.info.height as i32);
        if x1 <= x0 || y1 <= y0 {
            return;
        }
        // Round the far edges up to the chroma grid (the frame size is a multiple of it).
        let x1 = (x1 + aw - 1) / aw * aw;
        let y1 = (y1 + ah - 1) / ah * ah;
        let (x0, y0, x1, y1) = (x0 as usize, y0 as usize, x1 as usize, y1 as usize);
        let (yy, u, v) = rgb_to_yuv(color);
        let p = self.info.planes();
        let (luma_cols, rows) = (x0..x1, y0..y1);
        // Chroma of 4:2:0 at half resolution both ways; macropixels of 4:2:2 per two columns.
        let (half_cols, half_rows) = (x0 / 2..x1 / 2, y0 / 2..y1 / 2);
        let data = &mut *self.data;
        match self.info.format {
            PixelFormat::Gray8 => fill_plane(data, &p[0], luma_cols, rows, &[yy]),
            PixelFormat::Nv12 => {
                fill_plane(data, &p[0], luma_cols, rows, &[yy]);
                fill_plane(data, &p[1], half_cols, half_rows, &[u, v]);
            }
            PixelFormat::I420 => {
                fill_plane(data, &p[0], luma_cols, rows, &[yy]);
                fill_plane(data, &p[1], half_cols.clone(), half_rows.clone(), &[u]);
                fill_plane(data, &p[2], half_cols, half_rows, &[v]);
            }
            PixelFormat::Yuyv => fill_plane(data, &p[0], half_cols, rows, &[yy, u, yy, v]),
            PixelFormat::Uyvy => fill_plane(data, &p[0], half_cols, rows, &[u, yy, v, yy]),
            PixelFormat::Rgb24 => fill_plane(data, &p[0], luma_cols, rows, &[color.0, color.1, color.2]),
            PixelFormat::Rgba => fill_plane(data, &p[0], luma_cols, rows, &[color.0, color.1, color.2, 255]),
            PixelFormat::Bgrx => fill_plane(data, &p[0], luma_cols, rows, &[color.2, color.1, color.0, 255]),
        }
    }

    /// Draws `text` with its top-left at (`x`, `y`), each font pixel `scale`×`scale`.
    /// With `background`, the text's box is filled first (one font pixel of margin).
    pub fn text(&mut self, x: i32, y: i32, scale: u32, text: &str, fg: Rgb, background: Option<Rgb>) {
        let s = scale.max(1) as i32;
        if let Some(bg) = background {
            let (w, h) = text_size(text, scale);
            self.fill_rect(x - s, y - s, w as i32 + 2 * s, h as i32 + 2 * s, bg);
        }
        for (i, c) in text.chars().enumerate() {
            let gx = x + i as i32 * font::ADVANCE as i32 * s;
            for (row, bits) in font::glyph(c).iter().enumerate() {
                let mut col = 0;
                while col < font::GLYPH_WIDTH as i32 {
                    // Fill each horizontal run of set bits at once.
                    if bits & (1 << (4 - col)) == 0 {
                        col += 1;
                        continue;
                    }
                    let start = col;
                    while col < font::GLYPH_WIDTH as i32 && bits & (1 << (4 - col)) != 0 {
                        col += 1;
                    }
                    self.fill_rect(gx + start * s, y + row as i32 * s, (col - start) * s, s, fg);
                }
            }
        }
    }
}

/// Width and height in pixels of `text` drawn at `scale`.
pub fn text_size(text: &str, scale: u32) -> (u32, u32) {
    let n = text.chars().count() as u32;
    let w = if n == 0 { 0 } else { (n * font::ADVANCE - 1) * scale };
    (w, font::GLYPH_HEIGHT * scale)
}

/// Writes `pattern` repeatedly over columns `cols` (in units of the pattern) of rows `rows`.
fn fill_plane(
    data: &mut [u8],
    plane: &super::format::Plane,
    cols: std::ops::Range<usize>,
    rows: std::ops::Range<usize>,
    pattern: &[u8],
) {
    let n = pattern.len();
    for r in rows {
        let start = plane.offset + r * plane.stride + cols.start * n;
        let end = plane.offset + r * plane.stride + cols.end * n;
        if n == 1 {
            data[start..end].fill(pattern[0]);
        } else {
            for px in data[start..end].chunks_exact_mut(n) {
                px.copy_from_slice(pattern);
            }
        }
    }
}

/// Converts a packed RGB24 image of `info`'s size into `dst` in `info`'s format.
/// Chroma of subsampled formats is the average of each 2×2 (or 2×1) block.
pub fn write_rgb_image(info: &VideoInfo, rgb: &[u8], dst: &mut [u8]) {
    let (w, h) = (info.width as usize, info.height as usize);
    assert_eq!(rgb.len(), w * h * 3, "rgb image must be {w}x{h}");
    let px = |x: usize, y: usize| {
        let i = (y * w + x) * 3;
        Rgb(rgb[i], rgb[i + 1], rgb[i + 2])
    };
    let p = info.planes();
    match info.format {
        PixelFormat::Rgb24 | PixelFormat::Rgba | PixelFormat::Bgrx => {
            let bpp = info.format.bytes_per_pixel(0);
            for y in 0..h {
                let row = &mut dst[p[0].offset + y * p[0].stride..][..w * bpp];
                for (x, out) in row.chunks_exact_mut(bpp).enumerate() {
                    let c = px(x, y);
                    let bytes = match info.format {
                        PixelFormat::Rgb24 => [c.0, c.1, c.2, 0],
                        PixelFormat::Rgba => [c.0, c.1, c.2, 255],
                        _ => [c.2, c.1, c.0, 255],
                    };
                    out.copy_from_slice(&bytes[..bpp]);
                }
            }
        }
        format => {
            let (sx, sy) = format.alignment();
            let (sx, sy) = (sx as usize, sy as usize);
            // Luma for every pixel, chroma averaged over each sx×sy block.
            for by in (0..h).step_by(sy) {
                for bx in (0..w).step_by(sx) {
                    let (mut su, mut sv) = (0u32, 0u32);
                    for dy in 0..sy {
                        for dx in 0..sx {
                            let (y, u, v) = rgb_to_yuv(px(bx + dx, by + dy));
                            su += u as u32;
                            sv += v as u32;
                            let (x, yrow) = (bx + dx, by + dy);
                            match format {
                                PixelFormat::Yuyv => dst[p[0].offset + yrow * p[0].stride + x * 2] = y,
                                PixelFormat::Uyvy => dst[p[0].offset + yrow * p[0].stride + x * 2 + 1] = y,
                                _ => dst[p[0].offset + yrow * p[0].stride + x] = y,
                            }
                        }
                    }
                    let n = (sx * sy) as u32;
                    let (u, v) = (((su + n / 2) / n) as u8, ((sv + n / 2) / n) as u8);
                    match format {
                        PixelFormat::Nv12 => {
                            let i = p[1].offset + (by / 2) * p[1].stride + bx;
                            dst[i] = u;
                            dst[i + 1] = v;
                        }
                        PixelFormat::I420 => {
                            dst[p[1].offset + (by / 2) * p[1].stride + bx / 2] = u;
                            dst[p[2].offset + (by / 2) * p[2].stride + bx / 2] = v;
                        }
                        PixelFormat::Yuyv => {
                            let i = p[0].offset + by * p[0].stride + bx * 2;
                            dst[i + 1] = u;
                            dst[i + 3] = v;
                        }
                        PixelFormat::Uyvy => {
                            let i = p[0].offset + by * p[0].stride + bx * 2;
                            dst[i] = u;
                            dst[i + 2] = v;
                        }
                        _ => {}
                    }
                }
            }
        }
    }
}

/// The colour of pixel (`x`, `y`) of a frame in any format.
pub fn pixel_at(info: &VideoInfo, data: &[u8], x: u32, y: u32) -> Rgb {
    let (x, y) = (x as usize, y as usize);
    let p = info.planes();
    let row = |plane: usize, r: usize| p[plane].offset + r * p[plane].stride;
    match info.format {
        PixelFormat::Rgb24 | PixelFormat::Rgba => {
            let i = row(0, y) + x * info.format.bytes_per_pixel(0);
            Rgb(data[i], data[i + 1], data[i + 2])
        }
        PixelFormat::Bgrx => {
            let i = row(0, y) + x * 4;
            Rgb(data[i + 2], data[i + 1], data[i])
        }
        PixelFormat::Gray8 => {
            let l = data[row(0, y) + x];
            yuv_to_rgb(l, 128, 128)
        }
        PixelFormat::Nv12 => {
            let c = row(1, y / 2) + (x / 2) * 2;
            yuv_to_rgb(data[row(0, y) + x], data[c], data[c + 1])
        }
        PixelFormat::I420 => yuv_to_rgb(
            data[row(0, y) + x],
            data[row(1, y / 2) + x / 2],
            data[row(2, y / 2) + x / 2],
        ),
        PixelFormat::Yuyv | PixelFormat::Uyvy => {
            let m = row(0, y) + (x / 2) * 4;
            let (l, u, v) = if info.format == PixelFormat::Yuyv {
                (data[m + (x % 2) * 2], data[m + 1], data[m + 3])
            } else {
                (data[m + 1 + (x % 2) * 2], data[m], data[m + 2])
            };
            yuv_to_rgb(l, u, v)
        }
    }
}

/// BT.601 limited-range luma of pixel (`x`, `y`), whatever the format.
pub fn luma_at(info: &VideoInfo, data: &[u8], x: u32, y: u32) -> u8 {
    if info.format.is_yuv() {
        let p = info.planes()[0];
        let (x, y) = (x as usize, y as usize);
        return match info.format {
            PixelFormat::Yuyv => data[p.offset + y * p.stride + x * 2],
            PixelFormat::Uyvy => data[p.offset + y * p.stride + x * 2 + 1],
            _ => data[p.offset + y * p.stride + x],
        };
    }
    rgb_to_yuv(pixel_at(info, data, x, y)).0
}

#[cfg(test)]
mod tests {
    use super::super::format::Fps;
    use super::*;

    fn close(a: Rgb, b: Rgb, tol: i32) -> bool {
        (a.0 as i32 - b.0 as i32).abs() <= tol
            && (a.1 as i32 - b.1 as i32).abs() <= tol
            && (a.2 as i32 - b.2 as i32).abs() <= tol
    }

    #[test]
    fn yuv_round_trip_is_close() {
        for c in [
            Rgb(0, 0, 0),
            Rgb(255, 255, 255),
            Rgb(200, 30, 40),
            Rgb(20, 160, 90),
            Rgb(60, 60, 220),
        ] {
            let (y, u, v) = rgb_to_yuv(c);
            assert!(close(yuv_to_rgb(y, u, v), c, 3), "{c:?}");
        }
        assert_eq!(rgb_to_yuv(Rgb(0, 0, 0)), (16, 128, 128));
        assert_eq!(rgb_to_yuv(Rgb(255, 255, 255)), (235, 128, 128));
    }

    #[test]
    fn a_filled_rect_reads_back_in_every_format() {
        let red = Rgb(220, 40, 30);
        for format in PixelFormat::ALL {
            let info = VideoInfo::new(format, 64, 48, Fps::new(30, 1).unwrap()).unwrap();
            let mut buf = vec![0u8; info.size()];
            let mut canvas = Canvas::new(info, &mut buf);
            canvas.fill_rect(0, 0, 64, 48, Rgb(0, 0, 0));
            canvas.fill_rect(10, 12, 20, 10, red);
            let inside = pixel_at(&info, &buf, 15, 15);
            let outside = pixel_at(&info, &buf, 40, 30);
            if format == PixelFormat::Gray8 {
                assert_eq!(luma_at(&info, &buf, 15, 15), rgb_to_yuv(red).0);
            } else {
                assert!(close(inside, red, 4), "{format}: {inside:?}");
            }
            assert!(close(outside, Rgb(0, 0, 0), 2), "{format}: {outside:?}");
            // Clipping: a rect hanging off every edge must not panic.
            canvas_clip(info, &mut buf);
        }
    }

    fn canvas_clip(info: VideoInfo, buf: &mut [u8]) {
        let mut c = Canvas::new(info, buf);
        c.fill_rect(-10, -10, 200, 200, Rgb(1, 2, 3));
        c.fill_rect(63, 47, 5, 5, Rgb(1, 2, 3));
        c.fill_rect(100, 100, 5, 5, Rgb(1, 2, 3));
        c.text(-3, 40, 2, "CLIP 09", Rgb(255, 255, 255), Some(Rgb(0, 0, 0)));
    }

    #[test]
    fn text_sets_glyph_pixels() {
        let info = VideoInfo::new(PixelFormat::Gray8, 40, 20, Fps::new(30, 1).unwrap()).unwrap();
        let mut buf = vec![16u8; info.size()];
        Canvas::new(info, &mut buf).text(1, 1, 2, "1", Rgb(255, 255, 255), None);
        // '1' row 0 is 00100: column 2 set, columns 0 and 4 clear.
        assert_eq!(luma_at(&info, &buf, 1 + 2 * 2, 1), 235);
        assert_eq!(luma_at(&info, &buf, 1, 1), 16);
        assert_eq!(text_size("12", 2), (22, 14));
    }

    #[test]
    fn rgb_images_convert_into_every_format() {
        let (w, h) = (8usize, 4usize);
        // Uniform 2×2 blocks, so subsampled chroma is exact.
        let rgb: Vec<u8> = (0..w * h)
            .flat_map(|i| {
                let block = (i / w / 2) * (w / 2) + (i % w) / 2;
                [(block * 30) as u8, 100, 200 - block as u8 * 10]
            })
            .collect();
        for format in PixelFormat::ALL {
            let info = VideoInfo::new(format, w as u32, h as u32, Fps::new(30, 1).unwrap()).unwrap();
            let mut buf = vec![0u8; info.size()];
            write_rgb_image(&info, &rgb, &mut buf);
            let i = (3 * w + 5) * 3;
            let want = Rgb(rgb[i], rgb[i + 1], rgb[i + 2]);
            let got = pixel_at(&info, &buf, 5, 3);
            if format == PixelFormat::Gray8 {
                assert_eq!(luma_at(&info, &buf, 5, 3), rgb_to_yuv(want).0);
            } else {
                assert!(close(got, want, 12), "{format}: {got:?} vs {want:?}");
            }
        }
    }
}

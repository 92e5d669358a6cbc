//! The mosaic (DeepStream's nvmultistreamtiler): N streams scaled into the
//! cells of a rows × columns grid of one output frame, each keeping its
//! aspect ratio (black bars), with their detections mapped into the mosaic.
//!
//! Scaling is bilinear from the source planes straight into the output planes
//! (NV12 or I420), with per-cell sampling tables built once per source layout.
//! 4:2:0 sources (NV12, I420) are read directly; other formats through their
//! RGB value at the nearest pixel.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::media::paint::{pixel_at, rgb_to_yuv};
use crate::media::{Detection, Fps, Frame, FrameMeta, PixelFormat, Rect, TruthObject, VideoInfo};
use crate::process::letterbox::{Fit, Resize};

/// Tiler settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TileOptions {
    /// Grid rows.
    pub rows: u32,
    /// Grid columns.
    pub columns: u32,
    /// Mosaic width in pixels.
    pub width: u32,
    /// Mosaic height in pixels.
    pub height: u32,
    /// Mosaic pixel format: `nv12` or `i420`.
    pub format: PixelFormat,
    /// Mosaic frame rate (also how long a missing input is waited for: one frame).
    pub fps: Fps,
    /// Buffers in the mosaic's pool.
    pub pool: usize,
}

impl Default for TileOptions {
    fn default() -> Self {
        TileOptions {
            rows: 2,
            columns: 2,
            width: 1280,
            height: 720,
            format: PixelFormat::Nv12,
            fps: Fps { num: 30, den: 1 },
            pool: 6,
        }
    }
}

impl TileOptions {
    /// Checks the values, naming the key at fault.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if self.rows == 0 || self.columns == 0 || self.rows * self.columns > 64 {
            return Err((
                "rows",
                format!("{}x{} cells: expected 1 to 64", self.rows, self.columns),
            ));
        }
        if !matches!(self.format, PixelFormat::Nv12 | PixelFormat::I420) {
            return Err(("format", format!("{}: the mosaic is nv12 or i420", self.format)));
        }
        if self.width / self.columns < 2 || self.height / self.rows < 2 {
            return Err((
                "width",
                format!("{}x{} is too small for the grid", self.width, self.height),
            ));
        }
        if self.pool == 0 {
            return Err(("pool", "must be at least 1".into()));
        }
        self.info().map(|_| ()).map_err(|e| ("width", e.to_string()))
    }

    /// The mosaic's video info.
    pub fn info(&self) -> Result<VideoInfo, crate::media::FormatError> {
        VideoInfo::new(self.format, self.width & !1, self.height & !1, self.fps)
    }

    /// Number of cells.
    pub fn cells(&self) -> usize {
        (self.rows * self.columns) as usize
    }
}

/// Bilinear taps in 8-bit fixed point.
#[derive(Clone, Copy, Debug)]
struct Tap {
    a: u32,
    b: u32,
    w: u32,
}

fn taps(n: u32, scale: f32, len: u32) -> Vec<Tap> {
    (0..n)
        .map(|i| {
            let s = ((i as f32 + 0.5) / scale - 0.5).clamp(0.0, (len - 1) as f32);
            let a = s.floor() as u32;
            Tap {
                a,
                b: (a + 1).min(len - 1),
                w: ((s - a as f32) * 256.0) as u32,
            }
        })
        .collect()
}

/// How one source layout lands in one cell.
#[derive(Debug)]
struct CellMap {
    fit: Fit,
    /// The cell's picture origin in the mosaic (even).
    origin: (u32, u32),
    luma: (Vec<Tap>, Vec<Tap>),
    chroma: (Vec<Tap>, Vec<Tap>),
    /// The luma taps halve the source exactly both ways (a 1280×720 camera
    /// in a 640×360 cell): each output pixel is the mean of a 2×2 block,
    /// which the bilinear taps give too, bit for bit, at a fraction of the work.
    halves: bool,
}

/// Taps that take output `i` from source `2i` and `2i + 1` at equal weights.
fn halving(taps: &[Tap]) -> bool {
    taps.iter()
        .enumerate()
        .all(|(i, t)| t.a as usize == 2 * i && t.b == t.a + 1 && t.w == 128)
}

/// Composes mosaics.
#[derive(Debug)]
pub struct Tiler {
    options: TileOptions,
    info: VideoInfo,
    cell: (u32, u32),
    maps: HashMap<(usize, VideoInfo), CellMap>,
}

impl Tiler {
    /// A tiler for `options` (checked).
    pub fn new(options: TileOptions) -> Result<Self, String> {
        options.check().map_err(|(k, m)| format!("{k}: {m}"))?;
        let info = options.info().map_err(|e| e.to_string())?;
        let cell = ((info.width / options.columns) & !1, (info.height / options.rows) & !1);
        Ok(Tiler {
            options,
            info,
            cell,
            maps: HashMap::new(),
        })
    }

    /// The mosaic's layout.
    pub fn info(&self) -> &VideoInfo {
        &self.info
    }

    fn map(&mut self, slot: usize, src: &VideoInfo) -> &CellMap {
        let (cell, columns) = (self.cell, self.options.columns);
        self.maps.entry((slot, *src)).or_insert_with(|| {
            let mut fit = Fit::new(Resize::Letterbox, (src.width, src.height), cell);
            // Even sizes and offsets, so the picture covers whole chroma samples.
            fit.size = ((fit.size.0 & !1).max(2), (fit.size.1 & !1).max(2));
            fit.offset = (((cell.0 - fit.size.0) / 2) & !1, ((cell.1 - fit.size.1) / 2) & !1);
            fit.scale = (
                fit.size.0 as f32 / src.width as f32,
                fit.size.1 as f32 / src.height as f32,
            );
            let col = slot as u32 % columns;
            let row = slot as u32 / columns;
            let origin = (col * cell.0 + fit.offset.0, row * cell.1 + fit.offset.1);
            let (cw, ch) = (src.width.div_ceil(2), src.height.div_ceil(2));
            let luma = (
                taps(fit.size.0, fit.scale.0, src.width),
                taps(fit.size.1, fit.scale.1, src.height),
            );
            CellMap {
                fit,
                origin,
                halves: halving(&luma.0) && halving(&luma.1),
                luma,
                chroma: (
                    taps(fit.size.0 / 2, fit.scale.0, cw),
                    taps(fit.size.1 / 2, fit.scale.1, ch),
                ),
            }
        })
    }

    /// Composes `tiles` (by cell; `None` leaves a cell black) into `out` (a
    /// buffer of [`Tiler::info`]'s size); returns the metadata of every tile
    /// (detections and ground truth) mapped into the mosaic.
    pub fn compose(&mut self, tiles: &[Option<&Frame>], out: &mut [u8]) -> FrameMeta {
        let info = self.info;
        let planes = *info.planes().first().expect("a luma plane");
        let luma_size = planes.stride * planes.rows;
        // Black: Y 16, chroma 128.
        out[..luma_size].fill(16);
        out[luma_size..info.size()].fill(128);
        let mut meta = FrameMeta::default();
        for (slot, tile) in tiles.iter().enumerate().take(self.options.cells()) {
            let Some(frame) = tile else { continue };
            let map = self.map(slot, &frame.info);
            draw_cell(&info, out, frame, map);
            let place = |bbox: &Rect| {
                let r = map.fit.to_input(bbox);
                Rect {
                    x: r.x + (map.origin.0 - map.fit.offset.0) as f32,
                    y: r.y + (map.origin.1 - map.fit.offset.1) as f32,
                    ..r
                }
            };
            meta.detections.extend(frame.meta.detections.iter().map(|d| Detection {
                bbox: place(&d.bbox),
                ..d.clone()
            }));
            meta.ground_truth
                .extend(frame.meta.ground_truth.iter().map(|t| TruthObject {
                    bbox: place(&t.bbox),
                    ..*t
                }));
        }
        meta
    }
}

fn lerp(p00: u32, p01: u32, p10: u32, p11: u32, wx: u32, wy: u32) -> u8 {
    let top = p00 * (256 - wx) + p01 * wx;
    let bottom = p10 * (256 - wx) + p11 * wx;
    ((top * (256 - wy) + bottom * wy + (1 << 15)) >> 16) as u8
}

fn draw_cell(info: &VideoInfo, out: &mut [u8], frame: &Frame, map: &CellMap) {
    let dst = info.planes();
    let src = frame.info.planes();
    let data = frame.data();
    let (ox, oy) = (map.origin.0 as usize, map.origin.1 as usize);
    let (cols, rows) = (&map.luma.0, &map.luma.1);
    if !matches!(frame.info.format, PixelFormat::Nv12 | PixelFormat::I420) {
        draw_cell_any(info, out, frame, map);
        return;
    }
    // Luma: whole rows at a time, so the inner loop only gathers and blends.
    let row_of = |p: usize, r: u32| &data[src[p].offset + r as usize * src[p].stride..][..src[p].row_bytes];
    for (y, ty) in rows.iter().enumerate() {
        let (a, b) = (row_of(0, ty.a), row_of(0, ty.b));
        let at = dst[0].offset + (oy + y) * dst[0].stride + ox;
        let cell = &mut out[at..at + cols.len()];
        if map.halves {
            for ((o, p), q) in cell.iter_mut().zip(a.chunks_exact(2)).zip(b.chunks_exact(2)) {
                *o = ((p[0] as u16 + p[1] as u16 + q[0] as u16 + q[1] as u16 + 2) >> 2) as u8;
            }
            continue;
        }
        for (o, tx) in cell.iter_mut().zip(cols) {
            let (i, j) = (tx.a as usize, tx.b as usize);
            *o = lerp(a[i] as u32, a[j] as u32, b[i] as u32, b[j] as u32, tx.w, ty.w);
        }
    }
    // Chroma, at half resolution both ways: (plane, step, byte) of Cb and Cr in the source.
    let (cb, cr) = match frame.info.format {
        PixelFormat::Nv12 => ((1, 2, 0), (1, 2, 1)),
        _ => ((1, 1, 0), (2, 1, 0)),
    };
    let (ccols, crows) = (&map.chroma.0, &map.chroma.1);
    for (y, ty) in crows.iter().enumerate() {
        let (ua, ub, va, vb) = (
            row_of(cb.0, ty.a),
            row_of(cb.0, ty.b),
            row_of(cr.0, ty.a),
            row_of(cr.0, ty.b),
        );
        let blend = |ra: &[u8], rb: &[u8], (_, step, byte): (usize, usize, usize), tx: &Tap| {
            let (i, j) = (tx.a as usize * step + byte, tx.b as usize * step + byte);
            lerp(ra[i] as u32, ra[j] as u32, rb[i] as u32, rb[j] as u32, tx.w, ty.w)
        };
        for (x, tx) in ccols.iter().enumerate() {
            let (u, v) = (blend(ua, ub, cb, tx), blend(va, vb, cr, tx));
            put_chroma(info, out, ox / 2 + x, oy / 2 + y, u, v);
        }
    }
}

/// Stores one chroma sample pair of the mosaic (NV12 or I420).
fn put_chroma(info: &VideoInfo, out: &mut [u8], cx: usize, cy: usize, u: u8, v: u8) {
    let p = info.planes();
    match info.format {
        PixelFormat::Nv12 => {
            let at = p[1].offset + cy * p[1].stride + cx * 2;
            out[at] = u;
            out[at + 1] = v;
        }
        _ => {
            out[p[1].offset + cy * p[1].stride + cx] = u;
            out[p[2].offset + cy * p[2].stride + cx] = v;
        }
    }
}

/// A cell from a source that is not 4:2:0: each output pixel takes the RGB
/// value of its nearest source pixel.
fn draw_cell_any(info: &VideoInfo, out: &mut [u8], frame: &Frame, map: &CellMap) {
    let dst = info.planes();
    let data = frame.data();
    let (ox, oy) = (map.origin.0 as usize, map.origin.1 as usize);
    let nearest = |t: &Tap| if t.w >= 128 { t.b } else { t.a };
    for (y, ty) in map.luma.1.iter().enumerate() {
        let at = dst[0].offset + (oy + y) * dst[0].stride + ox;
        for (x, tx) in map.luma.0.iter().enumerate() {
            out[at + x] = rgb_to_yuv(pixel_at(&frame.info, data, nearest(tx), nearest(ty))).0;
        }
    }
    for (y, ty) in map.chroma.1.iter().enumerate() {
        for (x, tx) in map.chroma.0.iter().enumerate() {
            let sx = (tx.a * 2).min(frame.info.width - 1);
            let sy = (ty.a * 2).min(frame.info.height - 1);
            let (_, u, v) = rgb_to_yuv(pixel_at(&frame.info, data, sx, sy));
            put_chroma(info, out, ox / 2 + x, oy / 2 + y, u, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::Buffer;
    use crate::media::paint::{Canvas, Rgb};
    use std::sync::Arc;

    fn solid(format: PixelFormat, w: u32, h: u32, colour: Rgb, detections: Vec<Detection>) -> Frame {
        let info = VideoInfo::new(format, w, h, Fps::new(30, 1).unwrap()).unwrap();
        let mut data = vec![0u8; info.size()];
        Canvas::new(info, &mut data).fill_rect(0, 0, w as i32, h as i32, colour);
        let meta = FrameMeta {
            detections,
            ..FrameMeta::default()
        };
        Frame {
            info,
            pts: 0,
            duration: 0,
            capture_utc: std::time::SystemTime::UNIX_EPOCH,
            seq: 0,
            source: Arc::from("cam"),
            meta: Arc::new(meta),
            buffer: Buffer::from_bytes(data.into()),
        }
    }

    #[test]
    fn four_streams_fill_their_cells_and_their_boxes_follow() {
        for out_format in [PixelFormat::Nv12, PixelFormat::I420] {
            let mut tiler = Tiler::new(TileOptions {
                width: 640,
                height: 360,
                format: out_format,
                ..TileOptions::default()
            })
            .unwrap();
            let det = Detection {
                class_id: 0,
                label: "person".into(),
                confidence: 0.9,
                bbox: Rect {
                    x: 640.0,
                    y: 360.0,
                    w: 128.0,
                    h: 72.0,
                },
                track_id: Some(1),
            };
            let red = solid(PixelFormat::Nv12, 1280, 720, Rgb(220, 30, 30), vec![]);
            let green = solid(PixelFormat::I420, 1280, 720, Rgb(30, 200, 30), vec![]);
            let blue = solid(PixelFormat::Rgb24, 640, 480, Rgb(30, 30, 220), vec![]);
            let white = solid(PixelFormat::Nv12, 1280, 720, Rgb(240, 240, 240), vec![det]);
            let mut out = vec![0u8; tiler.info().size()];
            let dets = tiler
                .compose(&[Some(&red), Some(&green), Some(&blue), Some(&white)], &mut out)
                .detections;
            let info = *tiler.info();
            let close = |p: Rgb, c: Rgb| {
                (p.0 as i32 - c.0 as i32).abs() < 20
                    && (p.1 as i32 - c.1 as i32).abs() < 20
                    && (p.2 as i32 - c.2 as i32).abs() < 20
            };
            assert!(close(pixel_at(&info, &out, 160, 90), Rgb(220, 30, 30)));
            assert!(close(pixel_at(&info, &out, 480, 90), Rgb(30, 200, 30)));
            assert!(close(pixel_at(&info, &out, 160, 270), Rgb(30, 30, 220)));
            // The 4:3 tile keeps its aspect: black bars left and right of it.
            assert!(close(pixel_at(&info, &out, 4, 270), Rgb(0, 0, 0)));
            assert!(close(pixel_at(&info, &out, 480, 270), Rgb(240, 240, 240)));
            // The box at the centre of the fourth stream, at the centre of its cell, at a quarter size.
            assert_eq!(dets.len(), 1);
            assert_eq!(
                dets[0].bbox,
                Rect {
                    x: 480.0,
                    y: 270.0,
                    w: 32.0,
                    h: 18.0
                }
            );
        }
    }

    #[test]
    fn halving_a_camera_gives_the_bilinear_result_bit_for_bit() {
        use crate::capture::testsrc::{TestSrc, TestSrcOptions};
        // A textured 1280×720 picture in each 640×360 cell of the default mosaic.
        let cam = TestSrc::new("cam", &TestSrcOptions::default()).unwrap();
        let frame = cam.frame(100);
        let tiles = [Some(&frame), None, None, Some(&frame)];
        let mut tiler = Tiler::new(TileOptions::default()).unwrap();
        let mut fast = vec![0u8; tiler.info().size()];
        tiler.compose(&tiles, &mut fast);
        assert!(tiler.maps.values().all(|m| m.halves));
        for m in tiler.maps.values_mut() {
            m.halves = false;
        }
        let mut bilinear = vec![0u8; tiler.info().size()];
        tiler.compose(&tiles, &mut bilinear);
        assert!(fast == bilinear, "the 2×2 means differ from the bilinear taps");
        // A cell that is not an exact half takes the bilinear path.
        let mut odd = Tiler::new(TileOptions {
            width: 1000,
            ..TileOptions::default()
        })
        .unwrap();
        odd.compose(&tiles, &mut vec![0u8; odd.info().size()]);
        assert!(odd.maps.values().all(|m| !m.halves));
    }

    #[test]
    fn bad_grids_are_refused() {
        let bad = TileOptions {
            rows: 0,
            ..TileOptions::default()
        };
        assert_eq!(bad.check().unwrap_err().0, "rows");
        let bad = TileOptions {
            format: PixelFormat::Rgb24,
            ..TileOptions::default()
        };
        assert_eq!(bad.check().unwrap_err().0, "format");
    }
}

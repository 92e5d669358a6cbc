//! `testsrc`: deterministic synthetic cameras.
//!
//! Every frame is a pure function of (seed, size, format, frame number): a
//! textured background with mild per-frame noise (so encoders see realistic
//! content), people, cars and bicycles moving on known trajectories
//! ([`scene`]), a machine-readable [`stamp`] of frame number and camera id, and
//! a human-readable line with camera name, frame number and stream time. The
//! objects' boxes are returned as ground truth for the AI, tracker and
//! analytics tests.
//!
//! This module renders; the node that paces frames, fills buffer pools and
//! publishes to the hub lives in `server`.

pub mod scene;
pub mod stamp;

use serde::{Deserialize, Serialize};

use crate::media::paint::{Canvas, Rgb, text_size, write_rgb_image};
use crate::media::{
    Buffer, FormatError, Fps, Frame, FrameMeta, ObjectClass, PixelFormat, Rect, TruthObject, VideoInfo,
};
use scene::{HORIZON, Placed, Scene, SplitMix};
pub use stamp::Stamp;

/// The keys of a `testsrc` node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TestSrcOptions {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Frame rate: `30` or `"30000/1001"`.
    pub fps: Fps,
    /// Pixel format.
    pub format: PixelFormat,
    /// Scene seed; the same seed gives the same frames. Default: derived from the node name.
    pub seed: Option<u64>,
    /// Pace frames on the wall clock (`true`) or produce them as fast as possible.
    pub live: bool,
    /// Noise amplitude added to every byte (±, 0 for none).
    pub noise: u8,
    /// Buffers in the node's pool. When all are held downstream, a live source
    /// drops the frame (counted); one running as fast as possible waits up to
    /// 1 s for a buffer to come back, then drops.
    pub pool: usize,
    /// Stop (end of stream) after this many frames. Default: run until stopped.
    pub num_frames: Option<u64>,
}

impl Default for TestSrcOptions {
    fn default() -> Self {
        TestSrcOptions {
            width: 1280,
            height: 720,
            fps: Fps { num: 30, den: 1 },
            format: PixelFormat::Nv12,
            seed: None,
            live: true,
            noise: 2,
            pool: 8,
            num_frames: None,
        }
    }
}

impl TestSrcOptions {
    /// The video info these options describe.
    pub fn video_info(&self) -> Result<VideoInfo, FormatError> {
        VideoInfo::new(self.format, self.width, self.height, self.fps)
    }

    /// The seed in effect for a node called `name`.
    pub fn seed_for(&self, name: &str) -> u64 {
        self.seed.unwrap_or_else(|| fnv1a(name.as_bytes()))
    }
}

/// FNV-1a, for stable seeds from names.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Renders the frames of one synthetic camera.
pub struct TestSrc {
    label: String,
    seed: u64,
    info: VideoInfo,
    scene: Scene,
    background: Vec<u8>,
    /// Noise added to the background; each frame reads it from a different offset.
    noise: Vec<i8>,
}

/// Extra noise samples beyond one frame, so offsets can move.
const NOISE_SLACK: usize = 1 << 16;

impl TestSrc {
    /// A camera called `label` (drawn into its frames) with `options`.
    pub fn new(label: &str, options: &TestSrcOptions) -> Result<Self, FormatError> {
        let info = options.video_info()?;
        let seed = options.seed_for(label);
        let mut background = vec![0u8; info.size()];
        write_rgb_image(&info, &background_rgb(seed, info.width, info.height), &mut background);
        let mut rng = SplitMix::new(seed ^ 0x6E6F_6973_6500);
        let amp = options.noise as i64;
        let noise = (0..info.size() + NOISE_SLACK)
            .map(|_| if amp == 0 { 0 } else { (rng.next_u64() % (2 * amp as u64 + 1)) as i64 - amp } as i8)
            .collect();
        Ok(TestSrc {
            label: label.to_owned(),
            seed,
            info,
            scene: Scene::new(seed, info.width, info.height),
            background,
            noise,
        })
    }

    /// Format and layout of the frames.
    pub fn info(&self) -> &VideoInfo {
        &self.info
    }

    /// The camera id written into the stamp (the low 16 bits of the seed).
    pub fn camera_id(&self) -> u16 {
        self.seed as u16
    }

    /// Frame `n` in a buffer of its own, its ground truth in its metadata and
    /// its time on the camera's clock (for tests, benches and `eyrie eval`;
    /// the node renders into pool buffers instead).
    pub fn frame(&self, n: u64) -> Frame {
        let mut data = vec![0u8; self.info.size()];
        let truth = self.render(n, &mut data);
        Frame {
            info: self.info,
            pts: self.info.fps.frame_time_ns(n) as i64,
            duration: self.info.fps.frame_duration_ns() as i64,
            capture_utc: std::time::SystemTime::UNIX_EPOCH
                + std::time::Duration::from_nanos(self.info.fps.frame_time_ns(n)),
            seq: n,
            source: self.label.as_str().into(),
            meta: std::sync::Arc::new(FrameMeta::with_ground_truth(truth)),
            buffer: Buffer::from_bytes(data.into()),
        }
    }

    /// Renders frame `n` into `dst` (at least `info().size()` bytes) and returns
    /// its ground truth: every object at least partly in view, nearest last.
    pub fn render(&self, n: u64, dst: &mut [u8]) -> Vec<TruthObject> {
        let size = self.info.size();
        let dst = &mut dst[..size];
        let offset = (SplitMix::new(self.seed ^ n).next_u64() % NOISE_SLACK as u64) as usize;
        for ((d, &b), &z) in dst
            .iter_mut()
            .zip(&self.background)
            .zip(&self.noise[offset..offset + size])
        {
            *d = b.saturating_add_signed(z);
        }
        let t_ns = self.info.fps.frame_time_ns(n);
        let objects = self.scene.objects_at(t_ns as f64 / 1e9);
        let mut canvas = Canvas::new(self.info, dst);
        for o in &objects {
            draw_object(&mut canvas, o);
        }
        stamp::draw(
            &mut canvas,
            Stamp {
                frame: n as u32,
                camera: self.camera_id(),
            },
        );
        let ms = t_ns / 1_000_000;
        let line = format!(
            "{} #{n:06} {:02}:{:02}:{:02}.{:03}",
            self.label,
            ms / 3_600_000,
            ms / 60_000 % 60,
            ms / 1000 % 60,
            ms % 1000
        );
        let cell = stamp::cell_size(self.info.width) as i32;
        let scale = (self.info.height / 180).max(1);
        let (_, th) = text_size(&line, scale);
        if cell + th as i32 + 2 * scale as i32 <= self.info.height as i32 {
            canvas.text(
                scale as i32,
                cell + scale as i32 * 2,
                scale,
                &line,
                Rgb(255, 255, 255),
                Some(Rgb(0, 0, 0)),
            );
        }
        truth(&objects, self.info.width as f32, self.info.height as f32)
    }
}

/// Ground truth: boxes clipped to the frame, and the share of each box not
/// covered by the boxes of nearer objects (sampled on a 10×10 grid).
fn truth(objects: &[Placed], width: f32, height: f32) -> Vec<TruthObject> {
    let clip = |o: &Placed| {
        Rect {
            x: o.x,
            y: o.y,
            w: o.w,
            h: o.h,
        }
        .intersect(&Rect {
            x: 0.0,
            y: 0.0,
            w: width,
            h: height,
        })
    };
    let boxes: Vec<Rect> = objects.iter().map(clip).collect();
    objects
        .iter()
        .zip(&boxes)
        .enumerate()
        .filter(|(_, (_, b))| b.area() > 0.0)
        .map(|(i, (o, b))| {
            let nearer = &boxes[i + 1..];
            let mut visible = 0;
            for sy in 0..10 {
                for sx in 0..10 {
                    let (px, py) = (
                        b.x + b.w * (sx as f32 + 0.5) / 10.0,
                        b.y + b.h * (sy as f32 + 0.5) / 10.0,
                    );
                    let hidden = nearer
                        .iter()
                        .any(|n| px >= n.x && px < n.x + n.w && py >= n.y && py < n.y + n.h);
                    visible += !hidden as u32;
                }
            }
            TruthObject {
                id: o.id,
                class: o.class,
                bbox: *b,
                visible: visible as f32 / 100.0,
                in_frame: b.area() / (o.w * o.h),
            }
        })
        .collect()
}

/// Picks one colour of `choices` with bits of `palette` starting at `shift`.
fn pick(palette: u64, shift: u32, choices: &[Rgb]) -> Rgb {
    choices[(palette >> shift) as usize % choices.len()]
}

const SHIRTS: [Rgb; 6] = [
    Rgb(200, 40, 40),
    Rgb(40, 90, 200),
    Rgb(230, 200, 40),
    Rgb(40, 160, 70),
    Rgb(240, 240, 240),
    Rgb(150, 60, 170),
];
const PANTS: [Rgb; 4] = [Rgb(30, 30, 60), Rgb(60, 60, 60), Rgb(110, 80, 50), Rgb(20, 20, 20)];
const SKIN: [Rgb; 4] = [
    Rgb(240, 200, 170),
    Rgb(200, 150, 110),
    Rgb(150, 100, 70),
    Rgb(90, 60, 40),
];
const PAINT: [Rgb; 6] = [
    Rgb(180, 20, 20),
    Rgb(20, 50, 150),
    Rgb(220, 220, 225),
    Rgb(30, 30, 30),
    Rgb(200, 120, 20),
    Rgb(90, 140, 160),
];
const GLASS: Rgb = Rgb(50, 70, 90);
const TYRE: Rgb = Rgb(15, 15, 15);

/// Draws one object from rectangles, inside its box.
fn draw_object(c: &mut Canvas<'_>, o: &Placed) {
    let (x, y, w, h) = (o.x, o.y, o.w, o.h);
    // A rectangle given as fractions of the object's box.
    let mut part = |fx: f32, fy: f32, fw: f32, fh: f32, color: Rgb| {
        let x0 = (x + fx * w).round() as i32;
        let y0 = (y + fy * h).round() as i32;
        let x1 = (x + (fx + fw) * w).round() as i32;
        let y1 = (y + (fy + fh) * h).round() as i32;
        c.fill_rect(x0, y0, x1 - x0, y1 - y0, color);
    };
    match o.class {
        ObjectClass::Person => {
            // Legs swing apart and together about twice a second.
            let stride = 0.1 + 0.1 * (o.age * 12.0).sin().abs();
            part(0.3, 0.0, 0.4, 0.18, pick(o.palette, 0, &SKIN));
            part(0.0, 0.18, 1.0, 0.4, pick(o.palette, 8, &SHIRTS));
            let pants = pick(o.palette, 16, &PANTS);
            part(0.5 - stride - 0.3, 0.58, 0.3, 0.42, pants);
            part(0.5 + stride, 0.58, 0.3, 0.42, pants);
        }
        ObjectClass::Car => {
            let body = pick(o.palette, 0, &PAINT);
            part(0.2, 0.0, 0.6, 0.4, body);
            part(0.26, 0.06, 0.22, 0.3, GLASS);
            part(0.52, 0.06, 0.22, 0.3, GLASS);
            part(0.0, 0.35, 1.0, 0.45, body);
            part(0.1, 0.7, 0.2, 0.3, TYRE);
            part(0.7, 0.7, 0.2, 0.3, TYRE);
        }
        _ => {
            part(0.0, 0.62, 0.36, 0.38, TYRE);
            part(0.64, 0.62, 0.36, 0.38, TYRE);
            part(0.18, 0.7, 0.64, 0.06, pick(o.palette, 24, &PAINT));
            part(0.38, 0.0, 0.24, 0.16, pick(o.palette, 0, &SKIN));
            part(0.3, 0.16, 0.4, 0.4, pick(o.palette, 8, &SHIRTS));
            part(0.4, 0.56, 0.2, 0.16, pick(o.palette, 16, &PANTS));
        }
    }
}

/// The static background of a camera: sky, a skyline, a pavement and a road
/// with lane marks, textured with seeded noise.
fn background_rgb(seed: u64, width: u32, height: u32) -> Vec<u8> {
    let (w, h) = (width as usize, height as usize);
    let mut rgb = vec![0u8; w * h * 3];
    let horizon = (HORIZON * h as f32) as usize;
    let mut rng = SplitMix::new(seed ^ 0x6267);
    // Skyline: buildings of seeded widths and heights along the horizon.
    let mut skyline = vec![horizon; w];
    let mut tint = vec![0u8; w];
    let mut x = 0;
    while x < w {
        let bw = (rng.range(0.04, 0.12) * w as f64) as usize + 1;
        let top = horizon.saturating_sub((rng.range(0.05, 0.25) * h as f64) as usize);
        let shade = (rng.range(70.0, 150.0)) as u8;
        for i in x..(x + bw).min(w) {
            skyline[i] = top;
            tint[i] = shade;
        }
        x += bw;
    }
    let road_top = (0.6 * h as f32) as usize;
    let road_bottom = (0.92 * h as f32) as usize;
    let lane = ((road_top + road_bottom) / 2, (h / 120).max(1));
    let dash = (w / 16).max(4);
    let mut noise = SplitMix::new(seed ^ 0x7465_7874);
    for y in 0..h {
        for x in 0..w {
            let grain = (noise.next_u64() % 17) as i32 - 8;
            let (r, g, b) = if y < skyline[x] {
                let f = y as f32 / horizon.max(1) as f32;
                (110 + (100.0 * f) as i32, 160 + (70.0 * f) as i32, 230)
            } else if y < horizon {
                let t = tint[x] as i32;
                // Windows: a lit grid on the facades.
                let lit = (x / 6 + y / 8) % 3 == 0 && x % 6 < 3 && y % 8 < 4;
                if lit { (230, 220, 150) } else { (t, t - 10, t - 20) }
            } else if y < road_top || y >= road_bottom {
                (150, 145, 135)
            } else if y.abs_diff(lane.0) <= lane.1 && (x / dash) % 2 == 0 {
                (235, 235, 235)
            } else {
                (70, 72, 75)
            };
            let i = (y * w + x) * 3;
            rgb[i] = (r + grain).clamp(0, 255) as u8;
            rgb[i + 1] = (g + grain).clamp(0, 255) as u8;
            rgb[i + 2] = (b + grain).clamp(0, 255) as u8;
        }
    }
    rgb
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(format: PixelFormat, w: u32, h: u32) -> TestSrcOptions {
        TestSrcOptions {
            width: w,
            height: h,
            format,
            ..TestSrcOptions::default()
        }
    }

    #[test]
    fn the_stamp_reads_back_in_every_format() {
        for format in PixelFormat::ALL {
            let src = TestSrc::new("cam0", &options(format, 320, 240)).unwrap();
            let mut buf = vec![0; src.info().size()];
            for n in [0u64, 1, 77, 123_456] {
                src.render(n, &mut buf);
                let stamp = stamp::read(src.info(), &buf);
                assert_eq!(
                    stamp,
                    Some(Stamp {
                        frame: n as u32,
                        camera: src.camera_id()
                    }),
                    "{format} frame {n}"
                );
            }
        }
    }

    #[test]
    fn a_corrupt_stamp_is_refused() {
        let src = TestSrc::new("cam0", &options(PixelFormat::Gray8, 320, 240)).unwrap();
        let mut buf = vec![0; src.info().size()];
        src.render(5, &mut buf);
        let cell = stamp::cell_size(320) as usize;
        // Flip one data cell: the checksum must catch it.
        let i = 10 * cell + cell / 2 + (cell / 2) * 320;
        buf[i] = if buf[i] > 125 { 16 } else { 235 };
        assert_eq!(stamp::read(src.info(), &buf), None);
    }

    #[test]
    fn ground_truth_boxes_lie_in_the_frame_and_objects_get_occluded() {
        let src = TestSrc::new("cam1", &options(PixelFormat::Nv12, 640, 360)).unwrap();
        let mut buf = vec![0; src.info().size()];
        let mut occluded = 0;
        let mut partial = 0;
        for n in (0..30 * 60).step_by(5) {
            for t in src.render(n, &mut buf) {
                assert!(t.bbox.x >= 0.0 && t.bbox.y >= 0.0 && t.bbox.w > 0.0 && t.bbox.h > 0.0);
                assert!(t.bbox.x + t.bbox.w <= 640.0 && t.bbox.y + t.bbox.h <= 360.0);
                occluded += (t.visible < 0.9) as u32;
                partial += (t.bbox.x == 0.0 || t.bbox.x + t.bbox.w == 640.0) as u32;
            }
        }
        assert!(occluded > 10, "objects were occluded in only {occluded} samples");
        assert!(
            partial > 10,
            "objects were cut by the frame edge in only {partial} samples"
        );
    }
}

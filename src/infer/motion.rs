//! A cheap motion detector: luma averaged over a coarse grid (a downscaled
//! picture, sampled rather than read whole), compared with a slowly updated
//! background; cells that changed by more than a threshold are kept only when
//! a neighbour changed too (an erosion that removes sensor noise and single
//! flickering cells), and the frame moves when enough cells remain.

use serde::{Deserialize, Serialize};

use crate::media::Frame;
use crate::media::paint::luma_at;

/// Motion detector settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MotionOptions {
    /// Grid columns (rows follow the aspect ratio).
    pub columns: u32,
    /// Luma change (0..=255) that marks a cell changed.
    pub threshold: u8,
    /// Fraction of cells that must change (after erosion) for motion.
    pub min_area: f32,
    /// How fast the background follows the picture (0..=1 per frame).
    pub adapt: f32,
    /// Regions never counted (a clock overlay, a tree): `[x, y, w, h]` in fractions of the frame.
    pub exclude: Vec<[f32; 4]>,
}

impl Default for MotionOptions {
    fn default() -> Self {
        MotionOptions {
            columns: 64,
            threshold: 12,
            min_area: 0.002,
            adapt: 0.05,
            exclude: Vec::new(),
        }
    }
}

impl MotionOptions {
    /// Checks the values, naming the key at fault.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if !(4..=1024).contains(&self.columns) {
            return Err(("columns", format!("{} is outside 4..=1024", self.columns)));
        }
        if !(0.0..=1.0).contains(&self.min_area) {
            return Err(("min_area", format!("{} is outside 0..=1", self.min_area)));
        }
        if !(0.0..=1.0).contains(&self.adapt) {
            return Err(("adapt", format!("{} is outside 0..=1", self.adapt)));
        }
        if let Some(r) = self.exclude.iter().find(|r| r.iter().any(|v| !(0.0..=1.0).contains(v))) {
            return Err((
                "exclude",
                format!("{r:?}: every value is a fraction of the frame (0..=1)"),
            ));
        }
        Ok(())
    }
}

/// The motion state of one camera.
#[derive(Debug)]
pub struct Motion {
    options: MotionOptions,
    grid: (u32, u32),
    background: Vec<f32>,
    cells: Vec<f32>,
    changed: Vec<bool>,
}

/// Samples per cell along each axis.
const SAMPLES: u32 = 3;

impl Motion {
    /// A detector with no background yet.
    pub fn new(options: MotionOptions) -> Self {
        Motion {
            options,
            grid: (0, 0),
            background: Vec::new(),
            cells: Vec::new(),
            changed: Vec::new(),
        }
    }

    /// Measures `frame`; true when it moved against the background. The first
    /// frame (or the first after a size change) only sets the background.
    pub fn update(&mut self, frame: &Frame) -> bool {
        let (w, h) = (frame.info.width, frame.info.height);
        let cols = self.options.columns.min(w);
        let rows = (cols * h / w).clamp(1, h);
        let data = frame.data();
        self.cells.clear();
        for gy in 0..rows {
            for gx in 0..cols {
                let mut sum = 0u32;
                for sy in 0..SAMPLES {
                    for sx in 0..SAMPLES {
                        let x = ((gx * SAMPLES + sx) * 2 + 1) * w / (cols * SAMPLES * 2);
                        let y = ((gy * SAMPLES + sy) * 2 + 1) * h / (rows * SAMPLES * 2);
                        sum += luma_at(&frame.info, data, x, y) as u32;
                    }
                }
                self.cells.push(sum as f32 / (SAMPLES * SAMPLES) as f32);
            }
        }
        if self.grid != (cols, rows) {
            self.grid = (cols, rows);
            self.background = self.cells.clone();
            return false;
        }
        let t = self.options.threshold as f32;
        let excluded = |i: usize| {
            let (fx, fy) = (
                ((i as u32 % cols) as f32 + 0.5) / cols as f32,
                ((i as u32 / cols) as f32 + 0.5) / rows as f32,
            );
            self.options
                .exclude
                .iter()
                .any(|r| fx >= r[0] && fx < r[0] + r[2] && fy >= r[1] && fy < r[1] + r[3])
        };
        self.changed.clear();
        self.changed.extend(
            self.cells
                .iter()
                .zip(&self.background)
                .enumerate()
                .map(|(i, (c, b))| (c - b).abs() > t && !excluded(i)),
        );
        let (c, r) = (cols as usize, rows as usize);
        let at = |x: usize, y: usize| self.changed[y * c + x];
        let mut kept = 0;
        for y in 0..r {
            for x in 0..c {
                let neighbour = (x > 0 && at(x - 1, y))
                    || (x + 1 < c && at(x + 1, y))
                    || (y > 0 && at(x, y - 1))
                    || (y + 1 < r && at(x, y + 1));
                kept += (at(x, y) && neighbour) as usize;
            }
        }
        let a = self.options.adapt;
        for (b, c) in self.background.iter_mut().zip(&self.cells) {
            *b += (c - *b) * a;
        }
        kept as f32 >= self.options.min_area * (c * r) as f32 && kept > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::testsrc::{TestSrc, TestSrcOptions};

    #[test]
    fn noise_is_still_moving_objects_are_motion() {
        let options = TestSrcOptions {
            width: 320,
            height: 180,
            noise: 6,
            seed: Some(3),
            ..TestSrcOptions::default()
        };
        let src = TestSrc::new("cam", &options).unwrap();
        // The frame number and clock at the top change every frame: excluded, as an NVR masks its overlay.
        let mut motion = Motion::new(MotionOptions {
            exclude: vec![[0.0, 0.0, 1.0, 0.2]],
            ..MotionOptions::default()
        });
        // Until the first object enters, only noise changes.
        let mut n = 0;
        while src.render(n, &mut vec![0u8; src.info().size()]).is_empty() {
            assert!(!motion.update(&src.frame(n)), "motion in empty frame {n}");
            n += 1;
        }
        assert!(n >= 5, "the scene starts empty for a few frames");
        // Later, objects cross the frame.
        let moving = (300..320).filter(|&n| motion.update(&src.frame(n))).count();
        assert!(moving >= 15, "{moving} of 20 frames moved");
    }
}

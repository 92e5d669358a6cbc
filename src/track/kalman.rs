//! A constant-velocity Kalman filter over a box's centre and size. With
//! diagonal noise the four coordinates are independent, so the filter is four
//! two-state (position, velocity) filters; the noise scales with the box's
//! height, as in SORT and ByteTrack, so small far objects and big near ones
//! are treated alike.

use crate::media::Rect;

/// Process noise: position and velocity standard deviations, per frame, as fractions of the height.
const STD_POSITION: f32 = 1.0 / 20.0;
const STD_VELOCITY: f32 = 1.0 / 160.0;

/// One coordinate: position, velocity and their 2×2 covariance.
#[derive(Clone, Copy, Debug)]
struct Axis {
    x: f32,
    v: f32,
    /// Covariance [[pp, pv], [pv, vv]].
    p: [f32; 3],
}

impl Axis {
    fn new(x: f32, sp: f32, sv: f32) -> Self {
        Axis {
            x,
            v: 0.0,
            p: [4.0 * sp * sp, 0.0, 100.0 * sv * sv],
        }
    }

    fn predict(&mut self, sp: f32, sv: f32) {
        self.x += self.v;
        let [pp, pv, vv] = self.p;
        // P = F P Fᵀ + Q with F = [[1, 1], [0, 1]].
        self.p = [pp + 2.0 * pv + vv + sp * sp, pv + vv, vv + sv * sv];
    }

    fn update(&mut self, z: f32, sr: f32) {
        let [pp, pv, vv] = self.p;
        let s = pp + sr * sr;
        let (kx, kv) = (pp / s, pv / s);
        let y = z - self.x;
        self.x += kx * y;
        self.v += kv * y;
        self.p = [(1.0 - kx) * pp, (1.0 - kx) * pv, vv - kv * pv];
    }
}

/// The filter of one track: centre x, centre y, width, height.
#[derive(Clone, Debug)]
pub struct BoxFilter {
    axes: [Axis; 4],
}

fn measure(r: &Rect) -> [f32; 4] {
    [r.x + r.w / 2.0, r.y + r.h / 2.0, r.w, r.h]
}

impl BoxFilter {
    /// A filter at `r`, not moving.
    pub fn new(r: &Rect) -> Self {
        let h = r.h.max(1.0);
        let (sp, sv) = (STD_POSITION * h, STD_VELOCITY * h);
        BoxFilter {
            axes: measure(r).map(|z| Axis::new(z, sp, sv)),
        }
    }

    fn scale(&self) -> f32 {
        self.axes[3].x.max(1.0)
    }

    /// Moves one frame ahead.
    pub fn predict(&mut self) {
        let h = self.scale();
        for a in &mut self.axes {
            a.predict(STD_POSITION * h, STD_VELOCITY * h);
        }
        // A box never shrinks below a pixel.
        self.axes[2].x = self.axes[2].x.max(1.0);
        self.axes[3].x = self.axes[3].x.max(1.0);
    }

    /// Corrects with a measured box.
    pub fn update(&mut self, r: &Rect) {
        let sr = STD_POSITION * self.scale();
        for (a, z) in self.axes.iter_mut().zip(measure(r)) {
            a.update(z, sr);
        }
    }

    /// The current estimate.
    pub fn rect(&self) -> Rect {
        let [cx, cy, w, h] = self.axes.map(|a| a.x);
        Rect {
            x: cx - w / 2.0,
            y: cy - h / 2.0,
            w,
            h,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_a_constant_velocity_and_coasts_on_it() {
        let mut f = BoxFilter::new(&Rect {
            x: 0.0,
            y: 50.0,
            w: 20.0,
            h: 40.0,
        });
        for i in 1..30 {
            f.predict();
            f.update(&Rect {
                x: 4.0 * i as f32,
                y: 50.0,
                w: 20.0,
                h: 40.0,
            });
        }
        // Ten frames without measurements: it keeps moving at about 4 px a frame.
        for _ in 0..10 {
            f.predict();
        }
        let r = f.rect();
        assert!((r.x - 4.0 * 39.0).abs() < 4.0, "{r:?}");
        assert!((r.y - 50.0).abs() < 1.0 && (r.w - 20.0).abs() < 1.0, "{r:?}");
    }
}

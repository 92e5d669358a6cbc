//! The synthetic scene: objects of three classes on known straight-line
//! trajectories, a pure function of (seed, time). Any frame can be computed
//! without the ones before it, so the ground truth of frame `n` is always the
//! same for a given seed and size.
//!
//! Objects are spawned about every 1.5 s, enter from the left or right edge,
//! cross the frame and leave. Their lanes lie on a ground plane: the lower an
//! object stands, the nearer and bigger it is, and nearer objects are drawn over
//! farther ones, so crossing objects occlude each other.

use crate::media::ObjectClass;

/// Seconds between spawns, on average.
const SPAWN_INTERVAL: f64 = 1.5;
/// Random extra delay of a spawn, at most.
const SPAWN_JITTER: f64 = 1.2;
/// The slowest speed of any class, in frame widths per second.
const MIN_SPEED: f64 = 0.07;
/// The widest object (a car at the bottom edge), as a fraction of the height.
const MAX_WIDTH: f64 = 0.42;
/// Horizon, as a fraction of the height: the ground lies below it.
pub(super) const HORIZON: f32 = 0.38;

/// The splitmix64 generator: tiny, fast, and good enough for scene layout.
#[derive(Clone, Debug)]
pub(super) struct SplitMix(u64);

impl SplitMix {
    pub(super) fn new(seed: u64) -> Self {
        SplitMix(seed)
    }

    pub(super) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub(super) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [lo, hi).
    pub(super) fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }
}

/// Fixed properties of one object, drawn from the seed.
#[derive(Clone, Debug)]
struct Actor {
    id: u32,
    class: ObjectClass,
    spawn: f64,
    /// +1 left to right, -1 right to left.
    dir: f64,
    /// Fraction of the frame width per second.
    speed: f64,
    /// Ground position of the feet / wheels, as a fraction of the height.
    ground: f64,
    /// Vertical drift of the ground position per second (people cross diagonally).
    drift: f64,
    /// Colour choices.
    palette: u64,
}

/// An object as it stands in one frame, in pixels (not clipped).
#[derive(Clone, Debug, PartialEq)]
pub struct Placed {
    /// Stable id.
    pub id: u32,
    /// Class.
    pub class: ObjectClass,
    /// Left edge.
    pub x: f32,
    /// Top edge.
    pub y: f32,
    /// Width.
    pub w: f32,
    /// Height.
    pub h: f32,
    /// Colour choices.
    pub palette: u64,
    /// Seconds since it appeared (drives animation).
    pub age: f32,
}

/// A scene for one seed and frame size.
#[derive(Clone, Debug)]
pub struct Scene {
    seed: u64,
    width: f32,
    height: f32,
    /// No object stays longer than this: the widest path at the slowest speed.
    max_lifetime: f64,
}

impl Scene {
    /// The scene of `seed` on a `width`×`height` frame.
    pub fn new(seed: u64, width: u32, height: u32) -> Self {
        let path = 1.0 + MAX_WIDTH * height as f64 / width as f64;
        Scene {
            seed,
            width: width as f32,
            height: height as f32,
            max_lifetime: path / MIN_SPEED + 1.0,
        }
    }

    fn actor(&self, k: u64) -> Actor {
        let mut rng = SplitMix::new(self.seed ^ k.wrapping_mul(0xD1B5_4A32_D192_ED03));
        let spawn = k as f64 * SPAWN_INTERVAL + rng.range(0.0, SPAWN_JITTER);
        let pick = rng.unit();
        let class = if pick < 0.4 {
            ObjectClass::Person
        } else if pick < 0.75 {
            ObjectClass::Car
        } else {
            ObjectClass::Bicycle
        };
        let dir = if rng.unit() < 0.5 { 1.0 } else { -1.0 };
        let (speed, ground, drift) = match class {
            ObjectClass::Person => (
                rng.range(MIN_SPEED, 0.13),
                rng.range(0.55, 0.98),
                rng.range(-0.02, 0.02),
            ),
            ObjectClass::Car => (rng.range(0.22, 0.38), rng.range(0.62, 0.9), 0.0),
            _ => (rng.range(0.14, 0.22), rng.range(0.6, 0.95), 0.0),
        };
        Actor {
            id: k as u32 + 1,
            class,
            spawn,
            dir,
            speed,
            ground,
            drift,
            palette: rng.next_u64(),
        }
    }

    /// Size in pixels of an actor whose feet are at `ground` (fraction of height).
    fn size(&self, class: ObjectClass, ground: f64) -> (f32, f32) {
        // Perspective: objects at the horizon are 40% of their size at the bottom edge.
        let depth = ((ground as f32 - HORIZON) / (1.0 - HORIZON)).clamp(0.0, 1.0);
        let scale = 0.4 + 0.6 * depth;
        let h = self.height;
        match class {
            ObjectClass::Person => (0.11 * h * scale, 0.30 * h * scale),
            ObjectClass::Car => (0.42 * h * scale, 0.18 * h * scale),
            _ => (0.22 * h * scale, 0.24 * h * scale),
        }
    }

    fn place(&self, a: &Actor, t: f64) -> Option<Placed> {
        let age = t - a.spawn;
        if age < 0.0 {
            return None;
        }
        let ground = (a.ground + a.drift * age).clamp(HORIZON as f64 + 0.1, 1.0);
        let (w, h) = self.size(a.class, ground);
        let travelled = (a.speed * age) as f32 * self.width;
        let x = if a.dir > 0.0 {
            -w + travelled
        } else {
            self.width - travelled
        };
        if x >= self.width || x + w <= 0.0 {
            // Not yet in (impossible: it starts at the edge) or gone.
            return None;
        }
        Some(Placed {
            id: a.id,
            class: a.class,
            x,
            y: ground as f32 * self.height - h,
            w,
            h,
            palette: a.palette,
            age: age as f32,
        })
    }

    /// The objects in view at `t` seconds, farthest first (the drawing order).
    pub fn objects_at(&self, t: f64) -> Vec<Placed> {
        let first = ((t - self.max_lifetime - SPAWN_JITTER) / SPAWN_INTERVAL)
            .floor()
            .max(0.0) as u64;
        let last = (t / SPAWN_INTERVAL).floor().max(0.0) as u64;
        let mut out: Vec<Placed> = (first..=last).filter_map(|k| self.place(&self.actor(k), t)).collect();
        out.sort_by(|a, b| (a.y + a.h).total_cmp(&(b.y + b.h)).then(a.id.cmp(&b.id)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_enter_cross_and_leave() {
        let scene = Scene::new(7, 1280, 720);
        let mut seen = std::collections::HashMap::new();
        for step in 0..(60 * 10) {
            let t = step as f64 / 10.0;
            for o in scene.objects_at(t) {
                let e = seen.entry(o.id).or_insert((t, t, o.class));
                e.1 = t;
            }
        }
        // About one object per 1.5 s over a minute, of every class.
        assert!(seen.len() >= 30, "{} objects", seen.len());
        for class in ObjectClass::ALL {
            assert!(seen.values().any(|v| v.2 == class), "no {class:?}");
        }
        // Objects that appeared in the first half left again before the end.
        let left = seen.values().filter(|v| v.0 < 30.0 && v.1 < 59.0).count();
        assert!(left >= 10);
    }

    #[test]
    fn objects_never_outlive_the_window_searched() {
        for (w, h) in [(640, 480), (1280, 720), (120, 1000)] {
            let scene = Scene::new(99, w, h);
            for k in 0..500 {
                let a = scene.actor(k);
                let after = a.spawn + scene.max_lifetime;
                assert!(
                    scene.place(&a, after).is_none(),
                    "{w}x{h}: actor {k} still in view at its end"
                );
            }
        }
    }
}

//! A track's look: the mean colour of the top, middle and bottom thirds of
//! the central part of its box (head, torso, legs of a person; roof, body,
//! wheels of a car), sampled from the frame. It tells apart objects of one
//! class that cross or walk together, where boxes alone cannot (the cheap
//! cousin of the appearance features of DeepSORT and NvDCF).

use crate::media::paint::pixel_at;
use crate::media::{Frame, Rect};

/// Mean R, G, B of three horizontal bands.
pub type Look = [f32; 9];

/// Samples per band, across and down.
const ACROSS: u32 = 5;
const DOWN: u32 = 3;

/// The look of `r` in `frame` (`None` for a box too small or outside the frame).
pub fn describe(frame: &Frame, r: &Rect) -> Option<Look> {
    let (w, h) = (frame.info.width as f32, frame.info.height as f32);
    if r.w < 4.0 || r.h < 6.0 || r.x >= w || r.y >= h || r.x + r.w <= 0.0 || r.y + r.h <= 0.0 {
        return None;
    }
    let data = frame.data();
    let mut look = [0f32; 9];
    for band in 0..3 {
        for j in 0..DOWN {
            for i in 0..ACROSS {
                // The central 60 % of the width: the edges are mostly background.
                let fx = 0.2 + 0.6 * (i as f32 + 0.5) / ACROSS as f32;
                let fy = (band as f32 + (j as f32 + 0.5) / DOWN as f32) / 3.0;
                let x = (r.x + fx * r.w).clamp(0.0, w - 1.0) as u32;
                let y = (r.y + fy * r.h).clamp(0.0, h - 1.0) as u32;
                let p = pixel_at(&frame.info, data, x, y);
                look[band * 3] += p.0 as f32;
                look[band * 3 + 1] += p.1 as f32;
                look[band * 3 + 2] += p.2 as f32;
            }
        }
    }
    let n = (ACROSS * DOWN) as f32;
    Some(look.map(|v| v / n))
}

/// Mean absolute difference of two looks, 0..=255.
pub fn distance(a: &Look, b: &Look) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f32>() / 9.0
}

/// `a` moved toward `b` by `rate`.
pub fn blend(a: &Look, b: &Look, rate: f32) -> Look {
    std::array::from_fn(|i| a[i] + (b[i] - a[i]) * rate)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::testsrc::{TestSrc, TestSrcOptions};

    #[test]
    fn objects_look_like_themselves_and_unlike_each_other() {
        let options = TestSrcOptions {
            seed: Some(5),
            ..TestSrcOptions::default()
        };
        let src = TestSrc::new("cam", &options).unwrap();
        let (a, b) = (src.frame(200), src.frame(203));
        let looks = |f: &Frame| -> Vec<(u32, Look)> {
            f.meta
                .ground_truth
                .iter()
                .filter(|t| t.visible > 0.9 && t.in_frame > 0.9)
                .filter_map(|t| Some((t.id, describe(f, &t.bbox)?)))
                .collect()
        };
        let (la, lb) = (looks(&a), looks(&b));
        assert!(la.len() >= 2, "{la:?}");
        for (id, look) in &la {
            let same = lb.iter().find(|(i, _)| i == id).expect("still in view");
            for (other, l) in &lb {
                if other != id {
                    assert!(distance(look, &same.1) < distance(look, l), "{id} vs {other}");
                }
            }
        }
        assert!(
            describe(
                &a,
                &Rect {
                    x: 2000.0,
                    y: 0.0,
                    w: 50.0,
                    h: 50.0
                }
            )
            .is_none()
        );
    }
}

//! Mapping between a source frame and a model's input: letterbox (scale kept,
//! the rest padded, centred as Ultralytics does) or stretch (each axis scaled
//! on its own). Boxes found in the model's input map back to the frame through
//! [`Fit::to_source`].

use serde::{Deserialize, Serialize};

use crate::media::Rect;

/// How a frame is fitted into the model's input.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Resize {
    /// Keep the aspect ratio; pad the rest (the YOLO convention).
    #[default]
    Letterbox,
    /// Scale each axis to fill the input.
    Stretch,
}

/// Where a `src_w`×`src_h` frame lands in a `dst_w`×`dst_h` input.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Fit {
    /// Source size.
    pub src: (u32, u32),
    /// Model input size.
    pub dst: (u32, u32),
    /// Input pixels per source pixel, horizontally and vertically.
    pub scale: (f32, f32),
    /// The picture's top-left corner in the input.
    pub offset: (u32, u32),
    /// The picture's size in the input (the rest is padding).
    pub size: (u32, u32),
}

impl Fit {
    /// The fit of a `src` frame into a `dst` input by `mode`.
    pub fn new(mode: Resize, src: (u32, u32), dst: (u32, u32)) -> Fit {
        let (sx, sy) = (dst.0 as f32 / src.0 as f32, dst.1 as f32 / src.1 as f32);
        let (scale, size) = match mode {
            Resize::Stretch => ((sx, sy), dst),
            Resize::Letterbox => {
                let s = sx.min(sy);
                let w = ((src.0 as f32 * s).round() as u32).clamp(1, dst.0);
                let h = ((src.1 as f32 * s).round() as u32).clamp(1, dst.1);
                // The scale actually applied to each axis after rounding the size.
                ((w as f32 / src.0 as f32, h as f32 / src.1 as f32), (w, h))
            }
        };
        let offset = ((dst.0 - size.0) / 2, (dst.1 - size.1) / 2);
        Fit {
            src,
            dst,
            scale,
            offset,
            size,
        }
    }

    /// A box in input pixels, in source pixels (clipped to the frame).
    pub fn to_source(&self, r: &Rect) -> Rect {
        let x0 = ((r.x - self.offset.0 as f32) / self.scale.0).clamp(0.0, self.src.0 as f32);
        let y0 = ((r.y - self.offset.1 as f32) / self.scale.1).clamp(0.0, self.src.1 as f32);
        let x1 = ((r.x + r.w - self.offset.0 as f32) / self.scale.0).clamp(0.0, self.src.0 as f32);
        let y1 = ((r.y + r.h - self.offset.1 as f32) / self.scale.1).clamp(0.0, self.src.1 as f32);
        Rect {
            x: x0,
            y: y0,
            w: x1 - x0,
            h: y1 - y0,
        }
    }

    /// A box in source pixels, in input pixels.
    pub fn to_input(&self, r: &Rect) -> Rect {
        Rect {
            x: r.x * self.scale.0 + self.offset.0 as f32,
            y: r.y * self.scale.1 + self.offset.1 as f32,
            w: r.w * self.scale.0,
            h: r.h * self.scale.1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &Rect, b: &Rect) -> bool {
        (a.x - b.x).abs() < 1e-3 && (a.y - b.y).abs() < 1e-3 && (a.w - b.w).abs() < 1e-3 && (a.h - b.h).abs() < 1e-3
    }

    #[test]
    fn letterbox_pads_the_short_side_and_maps_both_ways() {
        // 640x480 into 256x144: scale 0.3, picture 192x144 centred with 32 columns each side.
        let fit = Fit::new(Resize::Letterbox, (640, 480), (256, 144));
        assert_eq!(fit.size, (192, 144));
        assert_eq!(fit.offset, (32, 0));
        let src = Rect {
            x: 100.0,
            y: 50.0,
            w: 200.0,
            h: 100.0,
        };
        let input = fit.to_input(&src);
        assert!(close(
            &input,
            &Rect {
                x: 62.0,
                y: 15.0,
                w: 60.0,
                h: 30.0
            }
        ));
        assert!(close(&fit.to_source(&input), &src));
        // A box in the padding maps to an empty box on the frame's edge.
        let pad = fit.to_source(&Rect {
            x: 0.0,
            y: 0.0,
            w: 20.0,
            h: 20.0,
        });
        assert_eq!(pad.w, 0.0);
    }

    #[test]
    fn letterbox_of_a_tall_frame_pads_rows() {
        let fit = Fit::new(Resize::Letterbox, (720, 1280), (256, 144));
        assert_eq!(fit.size, (81, 144));
        assert_eq!(fit.offset, (87, 0));
        let fit = Fit::new(Resize::Letterbox, (1280, 1280), (256, 144));
        assert_eq!((fit.size, fit.offset), ((144, 144), (56, 0)));
        let fit = Fit::new(Resize::Letterbox, (1920, 480), (256, 144));
        assert_eq!((fit.size, fit.offset), ((256, 64), (0, 40)));
    }

    #[test]
    fn stretch_fills_the_input_and_maps_back() {
        let fit = Fit::new(Resize::Stretch, (640, 480), (320, 320));
        assert_eq!((fit.size, fit.offset), ((320, 320), (0, 0)));
        let src = Rect {
            x: 64.0,
            y: 48.0,
            w: 64.0,
            h: 96.0,
        };
        let input = fit.to_input(&src);
        assert!(close(
            &input,
            &Rect {
                x: 32.0,
                y: 32.0,
                w: 32.0,
                h: 64.0
            }
        ));
        assert!(close(&fit.to_source(&input), &src));
    }
}

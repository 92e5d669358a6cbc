//! On-screen display: each detection's box outline and a label (class,
//! confidence, track id) in the built-in bitmap font, drawn into a frame of any
//! pixel format through [`Canvas`].

use serde::{Deserialize, Serialize};

use crate::media::Detection;
use crate::media::paint::{Canvas, Rgb, text_size};

/// OSD settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OsdOptions {
    /// Box outline thickness in pixels (0: no boxes).
    pub thickness: u32,
    /// Font scale (each font pixel this many pixels; 0: from the frame height).
    pub text_scale: u32,
    /// Show the confidence in the label.
    pub confidence: bool,
    /// Show the track id in the label.
    pub track_id: bool,
}

impl Default for OsdOptions {
    fn default() -> Self {
        OsdOptions {
            thickness: 2,
            text_scale: 0,
            confidence: true,
            track_id: true,
        }
    }
}

/// Colours by class index.
const COLOURS: [Rgb; 6] = [
    Rgb(0, 220, 90),
    Rgb(255, 180, 0),
    Rgb(0, 160, 255),
    Rgb(255, 60, 160),
    Rgb(180, 255, 60),
    Rgb(150, 90, 255),
];

/// The label text of a detection.
pub fn label(d: &Detection, options: &OsdOptions) -> String {
    let mut text = d.label.clone();
    if options.track_id
        && let Some(id) = d.track_id
    {
        text = format!("#{id} {text}");
    }
    if options.confidence {
        text = format!("{text} {:.0}%", d.confidence * 100.0);
    }
    text
}

/// Draws `detections` onto `canvas`.
pub fn draw(canvas: &mut Canvas<'_>, detections: &[Detection], options: &OsdOptions) {
    let scale = match options.text_scale {
        0 => (canvas.info().height / 360).max(1),
        s => s,
    };
    let t = options.thickness as i32;
    for d in detections {
        let colour = COLOURS[d.class_id as usize % COLOURS.len()];
        let (x, y) = (d.bbox.x.round() as i32, d.bbox.y.round() as i32);
        let (w, h) = (d.bbox.w.round() as i32, d.bbox.h.round() as i32);
        if t > 0 {
            canvas.fill_rect(x, y, w, t, colour);
            canvas.fill_rect(x, y + h - t, w, t, colour);
            canvas.fill_rect(x, y, t, h, colour);
            canvas.fill_rect(x + w - t, y, t, h, colour);
        }
        let text = label(d, options);
        let (_, th) = text_size(&text, scale);
        // Above the box when there is room, else inside its top edge.
        let ty = if y - th as i32 - 2 * scale as i32 >= 0 {
            y - th as i32 - scale as i32
        } else {
            y + t + scale as i32
        };
        canvas.text(x + scale as i32, ty, scale, &text, Rgb(0, 0, 0), Some(colour));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::paint::pixel_at;
    use crate::media::{Fps, PixelFormat, Rect, VideoInfo};

    #[test]
    fn boxes_and_labels_land_where_the_detection_is() {
        let info = VideoInfo::new(PixelFormat::Nv12, 320, 240, Fps::new(30, 1).unwrap()).unwrap();
        let mut data = vec![0u8; info.size()];
        let grey = crate::media::paint::rgb_to_yuv(Rgb(128, 128, 128));
        data[..320 * 240].fill(grey.0);
        data[320 * 240..].fill(128);
        let d = Detection {
            class_id: 2,
            label: "car".into(),
            confidence: 0.87,
            bbox: Rect {
                x: 100.0,
                y: 100.0,
                w: 80.0,
                h: 60.0,
            },
            track_id: Some(7),
        };
        assert_eq!(label(&d, &OsdOptions::default()), "#7 car 87%");
        draw(&mut Canvas::new(info, &mut data), &[d], &OsdOptions::default());
        let near = |p: Rgb, c: Rgb| (p.0 as i32 - c.0 as i32).abs() < 24 && (p.2 as i32 - c.2 as i32).abs() < 24;
        // The outline has the class colour; the inside and the far corner of the frame are untouched.
        assert!(near(pixel_at(&info, &data, 100, 130), COLOURS[2]));
        assert!(near(pixel_at(&info, &data, 178, 130), COLOURS[2]));
        assert!(near(pixel_at(&info, &data, 140, 130), Rgb(128, 128, 128)));
        assert!(near(pixel_at(&info, &data, 300, 230), Rgb(128, 128, 128)));
        // The label sits above the box, on the class colour.
        assert!(near(pixel_at(&info, &data, 101, 92), COLOURS[2]));
    }
}

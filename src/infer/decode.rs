//! Detector outputs into detections: the YOLOv8/YOLO11 layout (`[batch, 4 +
//! classes, anchors]`, scores after the sigmoid, no objectness) and the YOLOv5
//! layout (`[batch, anchors, 5 + classes]`, objectness times class score), a
//! confidence threshold, class-aware non-maximum suppression, and label files.
//! Boxes stay in model-input pixels here; [`crate::process::letterbox::Fit`] maps them
//! to the frame.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::media::Rect;

/// How a detector lays out its output.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// `[batch, 4 + classes, anchors]`: cx, cy, w, h, then class scores (YOLOv8, YOLO11).
    #[default]
    Yolov8,
    /// `[batch, anchors, 5 + classes]`: cx, cy, w, h, objectness, class scores (YOLOv5, YOLOv7).
    Yolov5,
}

impl Layout {
    /// The number of values per anchor beyond the class scores.
    fn extra(self) -> usize {
        match self {
            Layout::Yolov8 => 4,
            Layout::Yolov5 => 5,
        }
    }

    /// Checks an output shape (batch first) against `classes` labels; returns
    /// the number of anchors, or a message saying what does not fit.
    pub fn anchors(self, shape: &[usize], classes: usize) -> Result<usize, String> {
        let rows = self.extra() + classes;
        if shape.len() != 3 {
            return Err(format!(
                "output shape {shape:?} has {} dimensions; the {self:?} decoder reads 3",
                shape.len()
            ));
        }
        let (per_anchor, anchors, other) = match self {
            Layout::Yolov8 => (shape[1], shape[2], shape[2]),
            Layout::Yolov5 => (shape[2], shape[1], shape[1]),
        };
        if per_anchor == rows {
            return Ok(anchors);
        }
        let hint = if other == rows {
            " (the dimensions are the other way round: is this the other layout?)".to_owned()
        } else if per_anchor > self.extra() {
            format!(" (it would fit {} labels)", per_anchor - self.extra())
        } else {
            String::new()
        };
        Err(format!(
            "output shape {shape:?} does not fit the {self:?} layout with {classes} labels: expected {rows} values per anchor{hint}"
        ))
    }
}

/// One box before suppression, in model-input pixels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Candidate {
    /// Class index.
    pub class_id: u32,
    /// Confidence, 0..=1.
    pub confidence: f32,
    /// Box in input pixels.
    pub bbox: Rect,
}

/// The boxes of one image's output (`data`: the image's slice, laid out as
/// `layout` with `anchors` anchors and `classes` classes) above `threshold`.
pub fn decode(layout: Layout, data: &[f32], anchors: usize, classes: usize, threshold: f32) -> Vec<Candidate> {
    let rows = layout.extra() + classes;
    assert!(data.len() >= rows * anchors, "output slice is too short");
    let mut out = Vec::new();
    for a in 0..anchors {
        let at = |row: usize| match layout {
            Layout::Yolov8 => data[row * anchors + a],
            Layout::Yolov5 => data[a * rows + row],
        };
        let objectness = match layout {
            Layout::Yolov8 => 1.0,
            Layout::Yolov5 => at(4),
        };
        if objectness < threshold {
            continue;
        }
        let (mut best, mut class) = (f32::MIN, 0);
        for c in 0..classes {
            let s = at(layout.extra() + c);
            if s > best {
                (best, class) = (s, c);
            }
        }
        let confidence = best * objectness;
        if confidence < threshold || confidence.is_nan() {
            continue;
        }
        let (cx, cy, w, h) = (at(0), at(1), at(2), at(3));
        out.push(Candidate {
            class_id: class as u32,
            confidence,
            bbox: Rect {
                x: cx - w / 2.0,
                y: cy - h / 2.0,
                w,
                h,
            },
        });
    }
    out
}

/// Class-aware non-maximum suppression: best first, a box is dropped when it
/// overlaps a kept box of its class by more than `iou`; at most `max` kept.
pub fn nms(mut candidates: Vec<Candidate>, iou: f32, max: usize) -> Vec<Candidate> {
    candidates.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
    let mut kept: Vec<Candidate> = Vec::new();
    for c in candidates {
        if kept.len() >= max {
            break;
        }
        if !kept
            .iter()
            .any(|k| k.class_id == c.class_id && k.bbox.iou(&c.bbox) > iou)
        {
            kept.push(c);
        }
    }
    kept
}

/// Reads a label file: one class name per line, in class-index order
/// (blank lines at the end ignored).
pub fn load_labels(path: &Path) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("label file {}: {e}", path.display()))?;
    parse_labels(&text).map_err(|e| format!("label file {}: {e}", path.display()))
}

/// Parses the text of a label file.
pub fn parse_labels(text: &str) -> Result<Vec<String>, String> {
    let labels: Vec<String> = text.trim_end().lines().map(|l| l.trim().to_owned()).collect();
    if labels.is_empty() || labels.iter().all(String::is_empty) {
        return Err("no labels".into());
    }
    if let Some(i) = labels.iter().position(String::is_empty) {
        return Err(format!("line {} is empty", i + 1));
    }
    Ok(labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A YOLOv8 output of `anchors` anchors from (cx, cy, w, h, scores) rows.
    fn yolov8(anchors: &[[f32; 7]]) -> Vec<f32> {
        let n = anchors.len();
        let mut out = vec![0.0; 7 * n];
        for (a, v) in anchors.iter().enumerate() {
            for (row, x) in v.iter().enumerate() {
                out[row * n + a] = *x;
            }
        }
        out
    }

    #[test]
    fn yolov8_boxes_above_the_threshold_with_their_best_class() {
        let data = yolov8(&[
            [50.0, 40.0, 20.0, 10.0, 0.1, 0.9, 0.2],
            [10.0, 10.0, 4.0, 4.0, 0.2, 0.1, 0.3],
            [100.0, 80.0, 30.0, 60.0, 0.7, 0.0, 0.0],
        ]);
        assert_eq!(Layout::Yolov8.anchors(&[1, 7, 3], 3), Ok(3));
        let got = decode(Layout::Yolov8, &data, 3, 3, 0.5);
        assert_eq!(
            got,
            vec![
                Candidate {
                    class_id: 1,
                    confidence: 0.9,
                    bbox: Rect {
                        x: 40.0,
                        y: 35.0,
                        w: 20.0,
                        h: 10.0
                    }
                },
                Candidate {
                    class_id: 0,
                    confidence: 0.7,
                    bbox: Rect {
                        x: 85.0,
                        y: 50.0,
                        w: 30.0,
                        h: 60.0
                    }
                },
            ]
        );
    }

    #[test]
    fn yolov5_multiplies_objectness_and_class_score() {
        // Two anchors, rows of cx, cy, w, h, objectness, 2 classes.
        let data = [
            10.0, 20.0, 4.0, 8.0, 0.9, 0.2, 0.8, //
            50.0, 50.0, 10.0, 10.0, 0.3, 0.9, 0.1,
        ];
        assert_eq!(Layout::Yolov5.anchors(&[1, 2, 7], 2), Ok(2));
        let got = decode(Layout::Yolov5, &data, 2, 2, 0.5);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].class_id, 1);
        assert!((got[0].confidence - 0.72).abs() < 1e-6);
        assert_eq!(
            got[0].bbox,
            Rect {
                x: 8.0,
                y: 16.0,
                w: 4.0,
                h: 8.0
            }
        );
    }

    #[test]
    fn shapes_that_do_not_fit_say_why() {
        let e = Layout::Yolov8.anchors(&[1, 84, 8400], 3).unwrap_err();
        assert!(e.contains("fit 80 labels"), "{e}");
        let e = Layout::Yolov8.anchors(&[1, 8400, 7], 3).unwrap_err();
        assert!(e.contains("other way round"), "{e}");
        let e = Layout::Yolov5.anchors(&[1, 7, 576], 2).unwrap_err();
        assert!(e.contains("other way round"), "{e}");
        assert!(
            Layout::Yolov8
                .anchors(&[7, 576], 3)
                .unwrap_err()
                .contains("2 dimensions")
        );
    }

    #[test]
    fn nms_is_class_aware_and_keeps_the_best() {
        let c = |class_id, confidence, x| Candidate {
            class_id,
            confidence,
            bbox: Rect {
                x,
                y: 0.0,
                w: 10.0,
                h: 10.0,
            },
        };
        let kept = nms(
            vec![
                c(0, 0.6, 1.0),
                c(0, 0.9, 0.0),
                c(1, 0.8, 0.0),
                c(0, 0.7, 30.0),
                c(0, 0.5, 5.0),
            ],
            0.5,
            10,
        );
        // 0.6 at x=1 overlaps 0.9 (IoU 0.82): dropped; x=5 overlaps it by 0.33: kept;
        // the class-1 box on top of the best class-0 box is kept.
        let got: Vec<(u32, f32)> = kept.iter().map(|k| (k.class_id, k.confidence)).collect();
        assert_eq!(got, vec![(0, 0.9), (1, 0.8), (0, 0.7), (0, 0.5)]);
        assert_eq!(nms(vec![c(0, 0.9, 0.0), c(0, 0.8, 50.0)], 0.5, 1).len(), 1);
    }

    #[test]
    fn label_files() {
        assert_eq!(
            parse_labels("person\nbicycle\ncar\n\n").unwrap(),
            ["person", "bicycle", "car"]
        );
        assert!(parse_labels("person\n\ncar").unwrap_err().contains("line 2"));
        assert!(parse_labels("\n\n").is_err());
        let e = load_labels(Path::new("/nonexistent/coco.names")).unwrap_err();
        assert!(e.contains("/nonexistent/coco.names"), "{e}");
    }
}

//! Raw video frames and their metadata.

use std::sync::Arc;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::buffer::Buffer;
use super::format::VideoInfo;

/// One raw video frame: a lease on its pixels plus timing and metadata.
/// Cloning shares the pixels (a new lease), never copies them.
#[derive(Clone, Debug)]
pub struct Frame {
    /// Format, size and plane layout of `buffer`.
    pub info: VideoInfo,
    /// Presentation time on the pipeline clock, in ns.
    pub pts: i64,
    /// Nominal duration, in ns.
    pub duration: i64,
    /// Wall-clock time of capture.
    pub capture_utc: SystemTime,
    /// The source's frame counter (gaps mean frames were lost before this point).
    pub seq: u64,
    /// Name of the node that produced the frame (the camera).
    pub source: Arc<str>,
    /// Detections, tracks and ground truth.
    pub meta: Arc<FrameMeta>,
    /// The pixels.
    pub buffer: Buffer,
}

impl Frame {
    /// All of the frame's bytes.
    pub fn data(&self) -> &[u8] {
        &self.buffer.bytes()[..self.info.size()]
    }

    /// The bytes of plane `p`.
    pub fn plane(&self, p: usize) -> &[u8] {
        self.info.plane_bytes(self.buffer.bytes(), p)
    }

    /// The metadata, writable; copies the metadata (not the pixels) if it is shared.
    pub fn meta_mut(&mut self) -> &mut FrameMeta {
        Arc::make_mut(&mut self.meta)
    }
}

/// What is known about a frame's content. Later stages fill in detections and tracks.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct FrameMeta {
    /// The true objects of a synthetic frame (empty for real cameras).
    pub ground_truth: Vec<TruthObject>,
    /// What a detector (or a product publishing its own) found in the frame.
    pub detections: Vec<Detection>,
    /// The input (batch slot) a multi-input node such as `infer` took the
    /// frame from; trackers and tilers keep the inputs of one stream apart by it.
    pub input: Option<u32>,
    /// An `infer` policy let this frame pass without running the detector:
    /// its detections, if any, were carried over from earlier frames by a
    /// tracker, not found in it.
    pub skipped: bool,
}

impl FrameMeta {
    /// Metadata holding only the ground truth of a synthetic frame.
    pub fn with_ground_truth(ground_truth: Vec<TruthObject>) -> Self {
        FrameMeta {
            ground_truth,
            ..FrameMeta::default()
        }
    }
}

/// One detected object.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    /// Class index in the detector's label file.
    pub class_id: u32,
    /// Class label (`person`, `car`, ...).
    pub label: String,
    /// Confidence, 0..=1.
    pub confidence: f32,
    /// Its box in the frame's pixels.
    pub bbox: Rect,
    /// Tracker id, stable across frames, once tracked.
    pub track_id: Option<u64>,
}

/// An object class. The numbering follows COCO (person 0, bicycle 1, car 2), so
/// detectors trained on COCO-style label files agree with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ObjectClass {
    /// A pedestrian.
    Person,
    /// A bicycle with its rider.
    Bicycle,
    /// A car.
    Car,
}

impl ObjectClass {
    /// Every class, in COCO order.
    pub const ALL: [ObjectClass; 3] = [ObjectClass::Person, ObjectClass::Bicycle, ObjectClass::Car];

    /// COCO class index.
    pub fn index(self) -> usize {
        match self {
            ObjectClass::Person => 0,
            ObjectClass::Bicycle => 1,
            ObjectClass::Car => 2,
        }
    }

    /// Label text.
    pub fn label(self) -> &'static str {
        match self {
            ObjectClass::Person => "person",
            ObjectClass::Bicycle => "bicycle",
            ObjectClass::Car => "car",
        }
    }
}

/// An axis-aligned box in pixels (top-left corner, size).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Rect {
    /// Left edge.
    pub x: f32,
    /// Top edge.
    pub y: f32,
    /// Width.
    pub w: f32,
    /// Height.
    pub h: f32,
}

impl Rect {
    /// Area in square pixels.
    pub fn area(&self) -> f32 {
        self.w.max(0.0) * self.h.max(0.0)
    }

    /// The overlap of two boxes (zero-sized when they do not meet).
    pub fn intersect(&self, o: &Rect) -> Rect {
        let x0 = self.x.max(o.x);
        let y0 = self.y.max(o.y);
        let x1 = (self.x + self.w).min(o.x + o.w);
        let y1 = (self.y + self.h).min(o.y + o.h);
        Rect {
            x: x0,
            y: y0,
            w: (x1 - x0).max(0.0),
            h: (y1 - y0).max(0.0),
        }
    }

    /// Intersection over union.
    pub fn iou(&self, o: &Rect) -> f32 {
        let inter = self.intersect(o).area();
        let union = self.area() + o.area() - inter;
        if union > 0.0 { inter / union } else { 0.0 }
    }
}

/// One object of a synthetic scene, as drawn in a frame.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct TruthObject {
    /// Stable id of the object across frames.
    pub id: u32,
    /// Its class.
    pub class: ObjectClass,
    /// Its box, clipped to the frame.
    pub bbox: Rect,
    /// Fraction of the box not hidden by objects drawn in front of it (0..=1).
    pub visible: f32,
    /// Fraction of the whole object inside the frame (0..=1): less while it
    /// enters or leaves.
    pub in_frame: f32,
}

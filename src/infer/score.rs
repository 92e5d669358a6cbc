//! Accuracy against ground truth, as `eyrie eval` reports it: detection
//! precision and recall at IoU 0.5 (class-aware, greedy by IoU), and how many
//! objects keep one track id across their visible life.
//!
//! Objects mostly hidden (`visible` < 0.5) or mostly outside the frame
//! (`in_frame` < 0.5) are *ignored*, as KITTI's and MOT's "don't care"
//! regions are: a detection of one is neither right nor wrong, and missing one
//! is no error.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::media::{Detection, TruthObject};

/// IoU at which a detection matches an object.
pub const MATCH_IOU: f32 = 0.5;
/// Objects need this many scored frames to count for id persistence.
const MIN_LIFE: u32 = 5;

/// Whether an object is scored (else ignored).
pub fn scored(t: &TruthObject) -> bool {
    t.visible >= 0.5 && t.in_frame >= 0.5
}

/// Running totals.
#[derive(Debug, Default)]
pub struct Score {
    tp: u64,
    fp: u64,
    fn_: u64,
    /// Per (sequence, object): track ids seen and scored frames.
    objects: BTreeMap<(u32, u32), (BTreeSet<u64>, u32)>,
}

/// The totals, summarised.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Summary {
    /// Detections that matched a scored object.
    pub true_positives: u64,
    /// Detections that matched nothing.
    pub false_positives: u64,
    /// Scored objects no detection matched.
    pub false_negatives: u64,
    /// tp / (tp + fp).
    pub precision: f64,
    /// tp / (tp + fn).
    pub recall: f64,
    /// Objects (with at least 5 scored frames) that were tracked.
    pub tracked_objects: u64,
    /// Of those, the share that kept a single track id.
    pub id_persistence: f64,
    /// Extra ids over all objects (a switch each).
    pub id_switches: u64,
}

impl Score {
    /// Scores one frame of sequence `sequence`: `detections` at or above
    /// `threshold` count for precision and recall; every detection's track
    /// id counts for persistence.
    pub fn add(&mut self, sequence: u32, truth: &[TruthObject], detections: &[Detection], threshold: f32) {
        let mut pairs: Vec<(f32, usize, usize)> = Vec::new();
        for (di, d) in detections.iter().enumerate() {
            for (ti, t) in truth.iter().enumerate() {
                if t.class.index() as u32 != d.class_id {
                    continue;
                }
                let iou = d.bbox.iou(&t.bbox);
                if iou >= MATCH_IOU {
                    pairs.push((iou, di, ti));
                }
            }
        }
        pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut det_truth = vec![None; detections.len()];
        let mut truth_taken = vec![false; truth.len()];
        for (_, di, ti) in pairs {
            if det_truth[di].is_none() && !truth_taken[ti] {
                det_truth[di] = Some(ti);
                truth_taken[ti] = true;
            }
        }
        for (d, m) in detections.iter().zip(&det_truth) {
            if let (Some(ti), Some(id)) = (m, d.track_id)
                && scored(&truth[*ti])
            {
                self.objects.entry((sequence, truth[*ti].id)).or_default().0.insert(id);
            }
            if d.confidence < threshold {
                continue;
            }
            match m {
                Some(ti) if scored(&truth[*ti]) => self.tp += 1,
                Some(_) => {}
                None => self.fp += 1,
            }
        }
        for (ti, t) in truth.iter().enumerate() {
            if !scored(t) {
                continue;
            }
            self.objects.entry((sequence, t.id)).or_default().1 += 1;
            let found = det_truth
                .iter()
                .zip(detections)
                .any(|(m, d)| *m == Some(ti) && d.confidence >= threshold);
            if !found {
                self.fn_ += 1;
            }
        }
    }

    /// The totals so far.
    pub fn summary(&self) -> Summary {
        let ratio = |a: u64, b: u64| if b == 0 { 1.0 } else { a as f64 / b as f64 };
        let tracked: Vec<usize> = self
            .objects
            .values()
            .filter(|(ids, life)| *life >= MIN_LIFE && !ids.is_empty())
            .map(|(ids, _)| ids.len())
            .collect();
        let single = tracked.iter().filter(|&&n| n == 1).count() as u64;
        Summary {
            true_positives: self.tp,
            false_positives: self.fp,
            false_negatives: self.fn_,
            precision: ratio(self.tp, self.tp + self.fp),
            recall: ratio(self.tp, self.tp + self.fn_),
            tracked_objects: tracked.len() as u64,
            id_persistence: ratio(single, tracked.len() as u64),
            id_switches: tracked.iter().map(|&n| n as u64 - 1).sum(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::{ObjectClass, Rect};

    fn truth(id: u32, x: f32, visible: f32) -> TruthObject {
        TruthObject {
            id,
            class: ObjectClass::Car,
            bbox: Rect {
                x,
                y: 0.0,
                w: 100.0,
                h: 50.0,
            },
            visible,
            in_frame: 1.0,
        }
    }

    fn det(x: f32, confidence: f32, track_id: Option<u64>) -> Detection {
        Detection {
            class_id: 2,
            label: "car".into(),
            confidence,
            bbox: Rect {
                x,
                y: 0.0,
                w: 100.0,
                h: 50.0,
            },
            track_id,
        }
    }

    #[test]
    fn matches_misses_false_alarms_and_ignored_objects() {
        let mut s = Score::default();
        // Object 1 found, object 2 missed, a false alarm at 500, object 3 (hidden) detected: ignored.
        s.add(
            0,
            &[truth(1, 0.0, 1.0), truth(2, 200.0, 1.0), truth(3, 800.0, 0.2)],
            &[
                det(5.0, 0.9, Some(1)),
                det(500.0, 0.8, None),
                det(800.0, 0.9, None),
                det(210.0, 0.3, None),
            ],
            0.5,
        );
        let m = s.summary();
        assert_eq!((m.true_positives, m.false_positives, m.false_negatives), (1, 1, 1));
        assert_eq!((m.precision, m.recall), (0.5, 0.5));
    }

    #[test]
    fn id_persistence_counts_objects_with_one_id() {
        let mut s = Score::default();
        for f in 0..10 {
            let x = f as f32;
            let second = if f < 5 { 7 } else { 8 };
            s.add(
                0,
                &[truth(1, x, 1.0), truth(2, 300.0 + x, 1.0)],
                &[det(x, 0.9, Some(3)), det(300.0 + x, 0.9, Some(second))],
                0.5,
            );
        }
        let m = s.summary();
        assert_eq!((m.tracked_objects, m.id_switches), (2, 1));
        assert_eq!(m.id_persistence, 0.5);
    }
}

//! The tracker (DeepStream's nvtracker): ByteTrack-style association with a
//! constant-velocity Kalman filter per track, stable ids, and a maximum age
//! for tracks that lost their object.
//!
//! ByteTrack (Zhang et al., 2022) associates in passes: confident detections
//! first, against every confirmed track (seen or coasting); then the
//! low-confidence ones (often the same objects, partly hidden) against the
//! confirmed tracks still unmatched, which keeps ids through occlusions
//! instead of dropping those boxes; last, the confident detections left
//! against tracks not yet confirmed, so a short-lived duplicate box never
//! takes an object away from its established track.
//! Each pass is an optimal assignment ([`assign`]) within a class, scored by
//! IoU with the tracks' predicted boxes less their difference of look: in a
//! crowd, where a box overlaps several tracks, greedy best-pair-first
//! matching swaps ids that the optimum keeps. Sans-IO: one call per frame,
//! time counted in frames.

pub mod assign;
pub mod kalman;
pub mod look;

use serde::{Deserialize, Serialize};

use crate::media::{Detection, Frame, Rect};
use kalman::BoxFilter;
use look::Look;

/// Tracker settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrackerOptions {
    /// Detections at or above this confidence take part in the first pass and may start tracks.
    pub high: f32,
    /// Detections below this are ignored.
    pub low: f32,
    /// IoU a confident detection needs with a track's predicted box.
    pub match_iou: f32,
    /// IoU a low-confidence detection needs (stricter: it only extends tracks).
    pub low_match_iou: f32,
    /// Frames a track survives without a detection before it is removed.
    pub max_age: u32,
    /// Detections in a row before a new track gets an id (1: at once).
    pub min_hits: u32,
    /// Largest difference of look (mean colours, 0–255) between a track and a
    /// detection it may take; 0 turns looks off (boxes only).
    pub max_look_distance: f32,
}

impl Default for TrackerOptions {
    fn default() -> Self {
        TrackerOptions {
            high: 0.5,
            low: 0.1,
            match_iou: 0.2,
            low_match_iou: 0.4,
            max_age: 30,
            min_hits: 4,
            max_look_distance: 80.0,
        }
    }
}

impl TrackerOptions {
    /// Checks the values, naming the key at fault.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        for (key, v) in [
            ("high", self.high),
            ("low", self.low),
            ("match_iou", self.match_iou),
            ("low_match_iou", self.low_match_iou),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err((key, format!("{v} is outside 0..=1")));
            }
        }
        if self.low > self.high {
            return Err(("low", format!("{} is above `high` ({})", self.low, self.high)));
        }
        if self.min_hits == 0 {
            return Err(("min_hits", "must be at least 1".into()));
        }
        if !(0.0..=255.0).contains(&self.max_look_distance) {
            return Err((
                "max_look_distance",
                format!("{} is outside 0..=255", self.max_look_distance),
            ));
        }
        Ok(())
    }
}

/// How fast a track's look follows its detections.
const LOOK_RATE: f32 = 0.2;

#[derive(Clone, Debug)]
struct Track {
    /// Assigned once confirmed.
    id: Option<u64>,
    class_id: u32,
    filter: BoxFilter,
    hits: u32,
    /// Frames since the last detection.
    missed: u32,
    /// Its look, when known.
    look: Option<Look>,
    /// Label and confidence of its last detection (for frames the detector skipped).
    label: String,
    confidence: f32,
}

/// Tracks of one stream.
#[derive(Clone, Debug)]
pub struct Tracker {
    options: TrackerOptions,
    tracks: Vec<Track>,
    next_id: u64,
    frames: u64,
}

impl Tracker {
    /// A tracker with no tracks; ids start at 1.
    pub fn new(options: TrackerOptions) -> Self {
        Tracker {
            options,
            tracks: Vec::new(),
            next_id: 1,
            frames: 0,
        }
    }

    /// Forgets every track, as for a new scene (an input now from another
    /// camera); ids go on from where they were, so no id is ever given twice.
    pub fn restart(&mut self) {
        self.tracks.clear();
        self.frames = 0;
    }

    /// Live tracks (confirmed or not).
    pub fn len(&self) -> usize {
        self.tracks.len()
    }

    /// No live track.
    pub fn is_empty(&self) -> bool {
        self.tracks.is_empty()
    }

    /// Advances one frame with its detections: sets `track_id` on those that
    /// belong to a confirmed track (others keep `None`). Boxes only: see
    /// [`Tracker::update_frame`].
    pub fn update(&mut self, detections: &mut [Detection]) {
        self.step(detections, &[]);
    }

    /// As [`Tracker::update`], with the frame the detections were found in,
    /// so that tracks also compare how objects look.
    pub fn update_frame(&mut self, frame: &Frame, detections: &mut [Detection]) {
        let looks: Vec<Option<Look>> = if self.options.max_look_distance > 0.0 {
            detections.iter().map(|d| look::describe(frame, &d.bbox)).collect()
        } else {
            Vec::new()
        };
        self.step(detections, &looks);
    }

    fn step(&mut self, detections: &mut [Detection], looks: &[Option<Look>]) {
        self.frames += 1;
        for t in &mut self.tracks {
            t.filter.predict();
        }
        let o = self.options.clone();
        let (high, low): (Vec<usize>, Vec<usize>) = (0..detections.len())
            .filter(|&i| detections[i].confidence >= o.low)
            .partition(|&i| detections[i].confidence >= o.high);
        let mut track_free = vec![true; self.tracks.len()];
        let mut det_track = vec![None; detections.len()];
        // First pass: confident detections against every confirmed track.
        let confirmed = |t: &Track| t.id.is_some();
        self.associate(
            detections,
            looks,
            &high,
            &mut track_free,
            &mut det_track,
            o.match_iou,
            confirmed,
        );
        // Second pass: the weak ones against confirmed tracks alive last frame.
        let alive = |t: &Track| t.id.is_some() && t.missed == 0;
        self.associate(
            detections,
            looks,
            &low,
            &mut track_free,
            &mut det_track,
            o.low_match_iou,
            alive,
        );
        // Last, the confident ones left against tracks not yet confirmed: a
        // passing duplicate box never takes an object away from its track.
        let tentative = |t: &Track| t.id.is_none();
        self.associate(
            detections,
            looks,
            &high,
            &mut track_free,
            &mut det_track,
            o.low_match_iou,
            tentative,
        );
        for (i, t) in self.tracks.iter_mut().enumerate() {
            if track_free[i] {
                t.missed += 1;
            }
        }
        for (i, (d, slot)) in detections.iter_mut().zip(&det_track).enumerate() {
            d.track_id = None;
            let Some(ti) = *slot else { continue };
            let t = &mut self.tracks[ti];
            t.filter.update(&d.bbox);
            if let Some(Some(l)) = looks.get(i) {
                t.look = Some(t.look.map_or(*l, |old| look::blend(&old, l, LOOK_RATE)));
            }
            t.hits += 1;
            t.missed = 0;
            t.confidence = d.confidence;
            t.label.clone_from(&d.label);
            if t.id.is_none() && (t.hits >= o.min_hits || self.frames == 1) {
                t.id = Some(self.next_id);
                self.next_id += 1;
            }
            d.track_id = t.id;
        }
        // New tracks from confident detections nobody claimed.
        for &i in &high {
            if det_track[i].is_none() {
                let d = &mut detections[i];
                let mut t = Track {
                    id: None,
                    class_id: d.class_id,
                    filter: BoxFilter::new(&d.bbox),
                    hits: 1,
                    missed: 0,
                    look: looks.get(i).copied().flatten(),
                    label: d.label.clone(),
                    confidence: d.confidence,
                };
                if o.min_hits <= 1 || self.frames == 1 {
                    t.id = Some(self.next_id);
                    self.next_id += 1;
                }
                d.track_id = t.id;
                self.tracks.push(t);
            }
        }
        // Unconfirmed tracks die at their first miss; confirmed ones after `max_age`.
        self.tracks
            .retain(|t| t.missed == 0 || (t.id.is_some() && t.missed <= o.max_age));
    }

    /// Matches the unmatched `candidates` (detection indices) to free tracks
    /// of their class with at least `min_iou`: the assignment with the best
    /// total of IoU less look difference ([`assign::best`]).
    #[allow(clippy::too_many_arguments)]
    fn associate(
        &self,
        detections: &[Detection],
        looks: &[Option<Look>],
        candidates: &[usize],
        track_free: &mut [bool],
        det_track: &mut [Option<usize>],
        min_iou: f32,
        eligible: impl Fn(&Track) -> bool,
    ) {
        let mut pairs: Vec<(usize, usize, f32)> = Vec::new();
        for &d in candidates.iter().filter(|&&d| det_track[d].is_none()) {
            for (ti, t) in self.tracks.iter().enumerate() {
                if !track_free[ti] || t.class_id != detections[d].class_id || !eligible(t) {
                    continue;
                }
                let iou = t.filter.rect().iou(&detections[d].bbox);
                if iou < min_iou {
                    continue;
                }
                // A box in the right place that looks like another object is not this one.
                let unlike = match (&t.look, looks.get(d)) {
                    (Some(a), Some(Some(b))) => look::distance(a, b),
                    _ => 0.0,
                };
                if unlike > self.options.max_look_distance {
                    continue;
                }
                pairs.push((d, ti, iou - unlike / 255.0));
            }
        }
        for (d, ti, _) in assign::best(&pairs) {
            det_track[d] = Some(ti);
            track_free[ti] = false;
        }
    }

    /// Advances one frame the detector skipped (an inference policy such as
    /// every k-th frame): tracks move on their velocity, nothing counts as a
    /// miss, and the confirmed tracks seen at the last detector frame come
    /// back as detections at their predicted boxes, with their ids.
    pub fn carry(&mut self) -> Vec<Detection> {
        for t in &mut self.tracks {
            t.filter.predict();
        }
        self.tracks
            .iter()
            .filter(|t| t.missed == 0)
            .filter_map(|t| {
                Some(Detection {
                    class_id: t.class_id,
                    label: t.label.clone(),
                    confidence: t.confidence,
                    bbox: t.filter.rect(),
                    track_id: Some(t.id?),
                })
            })
            .collect()
    }

    /// Predicted boxes of the confirmed tracks that missed this frame (for display).
    pub fn coasting(&self) -> impl Iterator<Item = (u64, Rect)> + '_ {
        self.tracks
            .iter()
            .filter(|t| t.missed > 0)
            .filter_map(|t| Some((t.id?, t.filter.rect())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(class_id: u32, confidence: f32, x: f32, y: f32) -> Detection {
        Detection {
            class_id,
            label: String::new(),
            confidence,
            bbox: Rect { x, y, w: 40.0, h: 80.0 },
            track_id: None,
        }
    }

    #[test]
    fn moving_objects_keep_their_ids() {
        let mut tracker = Tracker::new(TrackerOptions::default());
        let mut ids = Vec::new();
        for f in 0..60 {
            let x = f as f32 * 6.0;
            let mut dets = vec![det(0, 0.9, x, 100.0), det(2, 0.8, 600.0 - x, 300.0)];
            tracker.update(&mut dets);
            ids.push((dets[0].track_id, dets[1].track_id));
        }
        assert_eq!(ids[0], (Some(1), Some(2)));
        assert!(ids.iter().all(|&i| i == (Some(1), Some(2))), "{ids:?}");
    }

    #[test]
    fn an_occluded_object_keeps_its_id_through_low_scores_and_misses() {
        let mut tracker = Tracker::new(TrackerOptions::default());
        let mut seen = std::collections::BTreeSet::new();
        for f in 0..80 {
            let x = f as f32 * 5.0;
            let mut dets = match f {
                // Half hidden: a weak detection.
                20..30 => vec![det(0, 0.3, x, 100.0)],
                // Fully hidden: nothing, the filter coasts.
                30..40 => vec![],
                _ => vec![det(0, 0.9, x, 100.0)],
            };
            tracker.update(&mut dets);
            seen.extend(dets.iter().filter_map(|d| d.track_id));
            if (30..40).contains(&f) {
                assert_eq!(tracker.coasting().count(), 1);
            }
        }
        assert_eq!(seen.into_iter().collect::<Vec<_>>(), vec![1]);
    }

    #[test]
    fn new_tracks_wait_for_a_second_hit_and_old_ones_expire() {
        let mut tracker = Tracker::new(TrackerOptions {
            max_age: 3,
            min_hits: 2,
            ..TrackerOptions::default()
        });
        let mut first = vec![];
        tracker.update(&mut first);
        // A one-frame false positive never gets an id.
        let mut blip = vec![det(1, 0.9, 300.0, 300.0)];
        tracker.update(&mut blip);
        assert_eq!(blip[0].track_id, None);
        let mut nothing = vec![];
        tracker.update(&mut nothing);
        assert!(tracker.is_empty());
        let mut a = vec![det(0, 0.9, 10.0, 10.0)];
        tracker.update(&mut a);
        let mut b = vec![det(0, 0.9, 12.0, 10.0)];
        tracker.update(&mut b);
        assert_eq!(b[0].track_id, Some(1));
        for _ in 0..4 {
            tracker.update(&mut []);
        }
        assert!(tracker.is_empty());
        // A different class at the same place is another object.
        let mut c = vec![det(2, 0.9, 14.0, 10.0)];
        tracker.update(&mut c);
        let mut c = vec![det(2, 0.9, 16.0, 10.0)];
        tracker.update(&mut c);
        assert_eq!(c[0].track_id, Some(2));
    }

    #[test]
    fn frames_the_detector_skipped_get_the_tracks_boxes_moving_on() {
        let mut tracker = Tracker::new(TrackerOptions::default());
        // The detector runs on every third frame; the object moves 3 px a frame.
        for f in 0..60u32 {
            let x = 3.0 * f as f32;
            if f % 3 == 0 {
                let mut dets = vec![det(0, 0.9, x, 100.0)];
                tracker.update(&mut dets);
                assert_eq!(dets[0].track_id, Some(1));
                continue;
            }
            let carried = tracker.carry();
            assert_eq!(carried.len(), 1, "frame {f}");
            let d = &carried[0];
            assert_eq!((d.track_id, d.class_id, d.confidence), (Some(1), 0, 0.9));
            if f > 30 {
                // By now the filter knows the speed: the box is where the object is.
                assert!((d.bbox.x - x).abs() < 2.0, "frame {f}: {:?} vs x {x}", d.bbox);
            }
        }
        // A track lost at the last detector frame is not drawn in between.
        tracker.update(&mut []);
        assert!(tracker.carry().is_empty());
    }

    #[test]
    fn options_are_checked() {
        assert!(TrackerOptions::default().check().is_ok());
        let bad = TrackerOptions {
            low: 0.6,
            ..TrackerOptions::default()
        };
        assert_eq!(bad.check().unwrap_err().0, "low");
    }
}

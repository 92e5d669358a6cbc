//! Triggers: the minimal event → action link. "When class C is detected
//! (with at least confidence P, its box centre inside polygon Z) on the
//! stream S, take a snapshot and/or start a smart-record clip", at most
//! once per cooldown. Sans-IO: [`Rule::check`] looks at one frame's
//! detections; the `trigger` node does the actions.

use serde::{Deserialize, Serialize};

use crate::media::{Detection, FrameMeta};
use crate::output::name::check_template;
use crate::output::root::check_relative;

/// The keys of a `trigger` node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TriggerOptions {
    /// The class label to react to (`person`, `car`, ...).
    pub class: String,
    /// The lowest confidence that counts, 0..=1.
    pub min_confidence: f32,
    /// A polygon the box centre must be inside: `[[x, y], ...]`, fractions
    /// of the frame's width and height (0..=1). None: the whole frame.
    pub zone: Option<Vec<[f32; 2]>>,
    /// Seconds after firing during which it does not fire again.
    pub cooldown: f64,
    /// Write a JPEG of the frame that fired it here (a path template
    /// relative to the media root, e.g. `snapshots/{camera}/{utc}.jpg`).
    pub snapshot: Option<String>,
    /// Start (or extend) a clip on this `smartrecord` node.
    pub smart_record: Option<String>,
    /// Seconds of the clip before the detection (default: the node's).
    pub before: Option<f64>,
    /// Seconds of the clip after the detection (default: the node's).
    pub after: Option<f64>,
}

impl Default for TriggerOptions {
    fn default() -> Self {
        TriggerOptions {
            class: String::new(),
            min_confidence: 0.5,
            zone: None,
            cooldown: 10.0,
            snapshot: None,
            smart_record: None,
            before: None,
            after: None,
        }
    }
}

impl TriggerOptions {
    /// Checks values beyond their types; the error names the key.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if self.class.is_empty() {
            return Err(("class", "a trigger needs the `class` it reacts to".into()));
        }
        if !(0.0..=1.0).contains(&self.min_confidence) {
            return Err(("min_confidence", format!("{} is not within 0..=1", self.min_confidence)));
        }
        if let Some(zone) = &self.zone {
            if zone.len() < 3 {
                return Err(("zone", format!("a polygon needs 3 points or more, not {}", zone.len())));
            }
            if let Some(p) = zone.iter().find(|p| !p.iter().all(|v| (0.0..=1.0).contains(v))) {
                return Err(("zone", format!("point {p:?} is outside 0..=1 (fractions of the frame)")));
            }
        }
        if !(self.cooldown >= 0.0 && self.cooldown.is_finite()) {
            return Err(("cooldown", format!("{} is not a number of seconds >= 0", self.cooldown)));
        }
        for (key, v) in [("before", self.before), ("after", self.after)] {
            if let Some(v) = v
                && !(v >= 0.0 && v.is_finite())
            {
                return Err((key, format!("{v} is not a number of seconds >= 0")));
            }
        }
        if let Some(t) = &self.snapshot {
            check_template(t).map_err(|e| ("snapshot", e))?;
            check_relative(t).map_err(|why| {
                (
                    "snapshot",
                    format!("`{t}`: {why}; paths are relative to the media root"),
                )
            })?;
        }
        if self.snapshot.is_none() && self.smart_record.is_none() {
            return Err((
                "class",
                "a trigger needs an action: `snapshot` and/or `smart_record`".into(),
            ));
        }
        Ok(())
    }
}

/// A trigger's matching state.
#[derive(Debug)]
pub struct Rule {
    options: TriggerOptions,
    last_fired_ns: Option<i64>,
}

impl Rule {
    /// A rule of `options` (checked).
    pub fn new(options: TriggerOptions) -> Rule {
        Rule {
            options,
            last_fired_ns: None,
        }
    }

    /// The options.
    pub fn options(&self) -> &TriggerOptions {
        &self.options
    }

    /// The detection that fires the rule in a `width`×`height` frame at
    /// `pts_ns` (the most confident one that matches), unless the rule is
    /// cooling down.
    pub fn check<'a>(&mut self, meta: &'a FrameMeta, width: u32, height: u32, pts_ns: i64) -> Option<&'a Detection> {
        if let Some(last) = self.last_fired_ns
            && pts_ns - last < (self.options.cooldown * 1e9) as i64
        {
            return None;
        }
        let o = &self.options;
        let hit = meta
            .detections
            .iter()
            .filter(|d| d.label == o.class && d.confidence >= o.min_confidence)
            .filter(|d| {
                o.zone.as_ref().is_none_or(|zone| {
                    let cx = (d.bbox.x + d.bbox.w / 2.0) / width as f32;
                    let cy = (d.bbox.y + d.bbox.h / 2.0) / height as f32;
                    inside(zone, cx, cy)
                })
            })
            .max_by(|a, b| a.confidence.total_cmp(&b.confidence))?;
        self.last_fired_ns = Some(pts_ns);
        Some(hit)
    }
}

/// Whether `(x, y)` is inside `polygon` (even-odd rule).
fn inside(polygon: &[[f32; 2]], x: f32, y: f32) -> bool {
    let mut inside = false;
    let mut j = polygon.len() - 1;
    for i in 0..polygon.len() {
        let ([xi, yi], [xj, yj]) = (polygon[i], polygon[j]);
        if (yi > y) != (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi {
            inside = !inside;
        }
        j = i;
    }
    inside
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::Rect;

    fn meta(label: &str, confidence: f32, x: f32) -> FrameMeta {
        let mut m = FrameMeta::default();
        m.detections.push(Detection {
            class_id: 0,
            label: label.into(),
            confidence,
            bbox: Rect {
                x,
                y: 40.0,
                w: 20.0,
                h: 20.0,
            },
            track_id: None,
        });
        m
    }

    #[test]
    fn class_confidence_zone_and_cooldown() {
        let mut rule = Rule::new(TriggerOptions {
            class: "person".into(),
            min_confidence: 0.6,
            // The left half of the frame.
            zone: Some(vec![[0.0, 0.0], [0.5, 0.0], [0.5, 1.0], [0.0, 1.0]]),
            cooldown: 1.0,
            smart_record: Some("sr".into()),
            ..Default::default()
        });
        assert!(rule.options().check().is_ok());
        assert!(
            rule.check(&meta("car", 0.9, 10.0), 100, 100, 0).is_none(),
            "another class"
        );
        assert!(
            rule.check(&meta("person", 0.5, 10.0), 100, 100, 0).is_none(),
            "not confident enough"
        );
        assert!(
            rule.check(&meta("person", 0.9, 70.0), 100, 100, 0).is_none(),
            "outside the zone"
        );
        assert!(rule.check(&meta("person", 0.9, 10.0), 100, 100, 0).is_some());
        assert!(
            rule.check(&meta("person", 0.9, 10.0), 100, 100, 999_999_999).is_none(),
            "cooling down"
        );
        assert!(
            rule.check(&meta("person", 0.9, 10.0), 100, 100, 1_000_000_000)
                .is_some()
        );
    }

    #[test]
    fn bad_options_name_their_key() {
        let bad = |o: TriggerOptions| o.check().unwrap_err().0;
        let base = || TriggerOptions {
            class: "car".into(),
            snapshot: Some("snapshots/{camera}/{utc}.jpg".into()),
            ..Default::default()
        };
        assert!(base().check().is_ok());
        assert_eq!(
            bad(TriggerOptions {
                class: String::new(),
                ..base()
            }),
            "class"
        );
        assert_eq!(
            bad(TriggerOptions {
                min_confidence: 2.0,
                ..base()
            }),
            "min_confidence"
        );
        assert_eq!(
            bad(TriggerOptions {
                zone: Some(vec![[0.0, 0.0]; 2]),
                ..base()
            }),
            "zone"
        );
        assert_eq!(
            bad(TriggerOptions {
                zone: Some(vec![[0.0, 0.0], [2.0, 0.0], [0.0, 1.0]]),
                ..base()
            }),
            "zone"
        );
        assert_eq!(
            bad(TriggerOptions {
                snapshot: Some("../x.jpg".into()),
                ..base()
            }),
            "snapshot"
        );
        assert_eq!(
            bad(TriggerOptions {
                snapshot: None,
                ..base()
            }),
            "class"
        );
    }
}

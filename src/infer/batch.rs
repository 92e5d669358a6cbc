//! The batcher (DeepStream's nvstreammux, without copies): frames of several
//! inputs collected into batches of up to `max` frames. A batch leaves when it
//! is full, or `timeout` after its first frame (a partial batch, so one slow
//! camera never stalls the others). Frames are held by their leases.
//!
//! Each input has an inference policy: every frame, every k-th frame, or at
//! most once per period and then only when the motion detector sees movement
//! (the NVR approach for cameras that cannot afford a detector on every frame).
//! A frame the policy skips goes on without detections. Sans-IO: the caller
//! passes the time.

use serde::{Deserialize, Serialize};

use super::motion::{Motion, MotionOptions};
use crate::media::Frame;

/// When an input's frames are inferred.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyOptions {
    /// Infer every k-th frame (1: every frame).
    pub every: u32,
    /// Infer at most once per this many seconds (0: no limit).
    pub period: f64,
    /// Infer only frames in which the motion detector sees movement.
    pub motion: bool,
    /// The motion detector's settings.
    #[serde(rename = "motion_options")]
    pub motion_options: MotionOptions,
}

impl Default for PolicyOptions {
    fn default() -> Self {
        PolicyOptions {
            every: 1,
            period: 0.0,
            motion: false,
            motion_options: MotionOptions::default(),
        }
    }
}

impl PolicyOptions {
    /// Checks the values, naming the key at fault.
    pub fn check(&self) -> Result<(), (String, String)> {
        if self.every == 0 {
            return Err(("every".into(), "must be at least 1".into()));
        }
        if !self.period.is_finite() || self.period < 0.0 {
            return Err(("period".into(), format!("{} is not a duration in seconds", self.period)));
        }
        self.motion_options
            .check()
            .map_err(|(k, m)| (format!("motion_options.{k}"), m))
    }
}

/// One input's policy state.
#[derive(Debug)]
struct Input {
    policy: PolicyOptions,
    seen: u64,
    last_ns: Option<i64>,
    motion: Option<Motion>,
}

impl Input {
    fn new(policy: PolicyOptions) -> Self {
        Input {
            motion: policy.motion.then(|| Motion::new(policy.motion_options.clone())),
            policy,
            seen: 0,
            last_ns: None,
        }
    }

    fn wants(&mut self, frame: &Frame, now_ns: i64) -> bool {
        self.seen += 1;
        // Motion is measured on every frame, so its reference stays current.
        let moving = match &mut self.motion {
            Some(m) => m.update(frame),
            None => true,
        };
        if !(self.seen - 1).is_multiple_of(self.policy.every as u64) {
            return false;
        }
        let period_ns = (self.policy.period * 1e9) as i64;
        if self.last_ns.is_some_and(|last| now_ns - last < period_ns) || !moving {
            return false;
        }
        self.last_ns = Some(now_ns);
        true
    }
}

/// What became of a pushed frame.
#[derive(Debug)]
// Returned from `push` and taken apart at once: boxing the frame would cost
// an allocation per skipped frame for nothing.
#[allow(clippy::large_enum_variant)]
pub enum Pushed {
    /// Held for a batch; the batch, when this frame completed it.
    Held(Option<Vec<(usize, Frame)>>),
    /// Not for inference (its input's policy): here it is back, after the
    /// pending batch when that holds frames of the same input (they leave
    /// first, so each input's frames stay in order).
    Skipped(Option<Vec<(usize, Frame)>>, Frame),
}

/// Forms batches from several inputs.
#[derive(Debug)]
pub struct Batcher {
    max: usize,
    timeout_ns: i64,
    inputs: Vec<Input>,
    pending: Vec<(usize, Frame)>,
    first_ns: i64,
}

impl Batcher {
    /// A batcher of up to `max` frames that waits at most `timeout_ns`, with one
    /// policy per input.
    pub fn new(max: usize, timeout_ns: i64, policies: Vec<PolicyOptions>) -> Self {
        let inputs = policies.into_iter().map(Input::new).collect();
        Batcher {
            max: max.max(1),
            timeout_ns,
            inputs,
            pending: Vec::with_capacity(max),
            first_ns: 0,
        }
    }

    /// A frame of input `slot` arrived at `now_ns`.
    pub fn push(&mut self, slot: usize, frame: Frame, now_ns: i64) -> Pushed {
        if !self.inputs[slot].wants(&frame, now_ns) {
            let ahead = self.pending.iter().any(|(s, _)| *s == slot).then(|| self.take());
            return Pushed::Skipped(ahead, frame);
        }
        if self.pending.is_empty() {
            self.first_ns = now_ns;
        }
        self.pending.push((slot, frame));
        Pushed::Held((self.pending.len() >= self.max).then(|| self.take()))
    }

    /// Input `slot` now comes from another stream: its pending frames are
    /// dropped (returned: they are the old stream's) and its policy starts
    /// afresh with `policy` (frame count, period, the motion gate's background).
    pub fn reset_input(&mut self, slot: usize, policy: PolicyOptions) -> usize {
        self.inputs[slot] = Input::new(policy);
        let before = self.pending.len();
        self.pending.retain(|(s, _)| *s != slot);
        before - self.pending.len()
    }

    /// When the pending batch must leave, if one is pending.
    pub fn deadline(&self) -> Option<i64> {
        (!self.pending.is_empty()).then_some(self.first_ns + self.timeout_ns)
    }

    /// The pending batch, if its time has come at `now_ns`.
    pub fn poll(&mut self, now_ns: i64) -> Option<Vec<(usize, Frame)>> {
        self.deadline().filter(|&d| now_ns >= d).map(|_| self.take())
    }

    /// The pending batch now, whatever its size (at the end of the streams).
    pub fn flush(&mut self) -> Option<Vec<(usize, Frame)>> {
        (!self.pending.is_empty()).then(|| self.take())
    }

    fn take(&mut self) -> Vec<(usize, Frame)> {
        std::mem::replace(&mut self.pending, Vec::with_capacity(self.max))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::{Buffer, Fps, FrameMeta, PixelFormat, VideoInfo};
    use std::sync::Arc;

    fn frame(seq: u64, luma: u8) -> Frame {
        let info = VideoInfo::new(PixelFormat::Gray8, 64, 48, Fps::new(30, 1).unwrap()).unwrap();
        Frame {
            info,
            pts: 0,
            duration: 0,
            capture_utc: std::time::SystemTime::UNIX_EPOCH,
            seq,
            source: Arc::from("cam"),
            meta: Arc::new(FrameMeta::default()),
            buffer: Buffer::from_bytes(vec![luma; info.size()].into()),
        }
    }

    const MS: i64 = 1_000_000;

    #[test]
    fn a_full_batch_leaves_at_once_a_partial_one_at_its_timeout() {
        let mut b = Batcher::new(4, 20 * MS, vec![PolicyOptions::default(); 4]);
        for slot in 0..3 {
            assert!(matches!(
                b.push(slot, frame(0, 0), slot as i64 * MS),
                Pushed::Held(None)
            ));
        }
        let Pushed::Held(Some(batch)) = b.push(3, frame(0, 0), 3 * MS) else {
            panic!("a fourth frame fills the batch");
        };
        assert_eq!(batch.iter().map(|(s, _)| *s).collect::<Vec<_>>(), [0, 1, 2, 3]);
        assert_eq!(b.deadline(), None);
        // One camera alone: its frame waits for the others until the timeout.
        assert!(matches!(b.push(1, frame(1, 0), 40 * MS), Pushed::Held(None)));
        assert_eq!(b.deadline(), Some(60 * MS));
        assert!(b.poll(59 * MS).is_none());
        let partial = b.poll(60 * MS).expect("the timeout sends the partial batch");
        assert_eq!(partial.len(), 1);
        assert!(b.flush().is_none());
    }

    #[test]
    fn batches_hold_leases_not_copies() {
        let mut b = Batcher::new(2, 20 * MS, vec![PolicyOptions::default(); 2]);
        let f = frame(0, 9);
        let before = f.buffer.lease_count();
        b.push(0, f.clone(), 0);
        assert_eq!(f.buffer.lease_count(), before + 1);
        let batch = b.flush().unwrap();
        assert!(batch[0].1.buffer.same_memory(&f.buffer));
    }

    #[test]
    fn policies_every_kth_and_per_period() {
        let every_third = PolicyOptions {
            every: 3,
            ..PolicyOptions::default()
        };
        let per_second = PolicyOptions {
            period: 1.0,
            ..PolicyOptions::default()
        };
        let mut b = Batcher::new(8, 20 * MS, vec![every_third, per_second]);
        let mut inferred = [0, 0];
        for n in 0..90u64 {
            let now = n as i64 * 33 * MS;
            for (slot, count) in inferred.iter_mut().enumerate() {
                if let Pushed::Held(_) = b.push(slot, frame(n, 0), now) {
                    *count += 1;
                }
            }
            b.flush();
        }
        assert_eq!(inferred, [30, 3]);
    }

    #[test]
    fn a_skipped_frame_never_overtakes_held_frames_of_its_input() {
        let every_third = PolicyOptions {
            every: 3,
            ..PolicyOptions::default()
        };
        let mut b = Batcher::new(4, 20 * MS, vec![every_third, PolicyOptions::default()]);
        assert!(matches!(b.push(1, frame(0, 0), 0), Pushed::Held(None)));
        assert!(matches!(b.push(0, frame(0, 0), 0), Pushed::Held(None)));
        // Frame 1 of input 0 is skipped: the batch holding its frame 0 leaves first.
        let Pushed::Skipped(Some(ahead), skipped) = b.push(0, frame(1, 0), MS) else {
            panic!("frame 1 of input 0 is skipped after the batch");
        };
        assert_eq!(
            ahead.iter().map(|(s, f)| (*s, f.seq)).collect::<Vec<_>>(),
            vec![(1, 0), (0, 0)]
        );
        assert_eq!(skipped.seq, 1);
        // Nothing of input 0 pending: a skip leaves the batch alone.
        assert!(matches!(b.push(1, frame(1, 0), 2 * MS), Pushed::Held(None)));
        assert!(matches!(b.push(0, frame(2, 0), 3 * MS), Pushed::Skipped(None, _)));
        assert_eq!(b.flush().map(|batch| batch.len()), Some(1));
    }

    #[test]
    fn a_reset_input_loses_its_pending_frames_and_starts_its_policy_afresh() {
        let every_third = PolicyOptions {
            every: 3,
            ..PolicyOptions::default()
        };
        let mut b = Batcher::new(4, 20 * MS, vec![every_third.clone(), PolicyOptions::default()]);
        assert!(matches!(b.push(0, frame(0, 0), 0), Pushed::Held(None)));
        assert!(matches!(b.push(1, frame(0, 0), 0), Pushed::Held(None)));
        assert!(matches!(b.push(0, frame(1, 0), MS), Pushed::Skipped(Some(_), _)));
        assert!(matches!(b.push(1, frame(1, 0), MS), Pushed::Held(None)));
        assert!(matches!(b.push(0, frame(3, 0), MS), Pushed::Skipped(None, _)));
        assert!(matches!(b.push(0, frame(4, 0), MS), Pushed::Held(None)));
        // Input 0 relinked: its held frame 4 goes, input 1's stays, and the
        // new stream's first frame is inferred (its count starts again).
        assert_eq!(b.reset_input(0, every_third), 1);
        let Pushed::Held(None) = b.push(0, frame(0, 9), 2 * MS) else {
            panic!("the first frame of the new stream is inferred");
        };
        let batch = b.flush().unwrap();
        assert_eq!(
            batch.iter().map(|(s, f)| (*s, f.seq)).collect::<Vec<_>>(),
            vec![(1, 1), (0, 0)]
        );
    }

    #[test]
    fn the_motion_gate_skips_still_frames() {
        let gated = PolicyOptions {
            motion: true,
            ..PolicyOptions::default()
        };
        let mut b = Batcher::new(1, 0, vec![gated]);
        let mut inferred = Vec::new();
        for n in 0..10u64 {
            // The picture changes at frame 5 only.
            let luma = if n < 5 { 50 } else { 200 };
            if let Pushed::Held(Some(_)) = b.push(0, frame(n, luma), 0) {
                inferred.push(n);
            }
        }
        // Nothing before the change; from it on until the background has absorbed it.
        assert_eq!(inferred.first(), Some(&5), "{inferred:?}");
    }
}

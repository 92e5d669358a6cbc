//! `eyrie eval`: synthetic sequences through the configured detector and
//! tracker, scored against their ground truth ([`eyrie::infer::score`]).
//!
//! The sequences are `testsrc` cameras with seeds `seed`, `seed + 1`, …; the
//! frame `n` of every sequence goes through the detector as one batch, then
//! each sequence's own tracker. The model, thresholds and tracker settings
//! come from the first `infer` and `track` nodes of the config, when given.

use std::time::Instant;

use eyrie::capture::testsrc::{TestSrc, TestSrcOptions};
use eyrie::config::{Config, NodeProps};
use eyrie::infer::detector::{Detector, InferOptions};
use eyrie::infer::score::Score;
use eyrie::media::Frame;
use eyrie::track::{Tracker, TrackerOptions};
use serde_json::json;

/// What to evaluate.
pub struct Spec {
    /// First seed.
    pub seed: u64,
    /// Number of sequences (cameras).
    pub sequences: u32,
    /// Frames per sequence.
    pub frames: u64,
    /// Camera size.
    pub camera: (u32, u32),
    /// Detections at or above this confidence count for precision and recall
    /// (default: the tracker's `high`).
    pub threshold: Option<f32>,
}

/// The detector and tracker settings of `config` (its first `infer` and `track` nodes).
pub fn settings(config: Option<&Config>) -> (InferOptions, TrackerOptions) {
    let mut infer = InferOptions::default();
    let mut track = TrackerOptions::default();
    for n in config.map_or(&[][..], |c| &c.nodes[..]) {
        match &n.props {
            NodeProps::Infer(o) => infer = (**o).clone(),
            NodeProps::Track(o) => track = o.clone(),
            _ => continue,
        }
    }
    (infer, track)
}

/// Runs the evaluation; returns the JSON report.
pub fn run(spec: &Spec, infer: &InferOptions, track: &TrackerOptions) -> Result<serde_json::Value, String> {
    let mut detector = Detector::new(infer).map_err(|e| e.to_string())?;
    let options = TestSrcOptions {
        width: spec.camera.0,
        height: spec.camera.1,
        ..TestSrcOptions::default()
    };
    let cameras: Vec<TestSrc> = (0..spec.sequences as u64)
        .map(|i| {
            TestSrc::new(
                "eval",
                &TestSrcOptions {
                    seed: Some(spec.seed + i),
                    ..options.clone()
                },
            )
        })
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let mut trackers: Vec<Tracker> = cameras.iter().map(|_| Tracker::new(track.clone())).collect();
    let threshold = spec.threshold.unwrap_or(track.high);
    let mut score = Score::default();
    let (mut detect_ns, mut track_ns) = (0u128, 0u128);
    let started = Instant::now();
    for n in 0..spec.frames {
        let frames: Vec<Frame> = cameras.iter().map(|cam| cam.frame(n)).collect();
        let t0 = Instant::now();
        let found = detector
            .detect(&frames.iter().collect::<Vec<_>>())
            .map_err(|e| e.to_string())?;
        detect_ns += t0.elapsed().as_nanos();
        for (i, mut dets) in found.into_iter().enumerate() {
            let t0 = Instant::now();
            trackers[i].update_frame(&frames[i], &mut dets);
            track_ns += t0.elapsed().as_nanos();
            score.add(i as u32, &frames[i].meta.ground_truth, &dets, threshold);
        }
        if n > 0 && n % 300 == 0 {
            eprintln!("eyrie eval: {n}/{} frames", spec.frames);
        }
    }
    let total = spec.frames * spec.sequences as u64;
    let t = detector.times();
    let us = |ns: u128| ns as f64 / total.max(1) as f64 / 1e3;
    Ok(json!({
        "seed": spec.seed,
        "sequences": spec.sequences,
        "frames": total,
        "camera": format!("{}x{}", spec.camera.0, spec.camera.1),
        "model": infer.source().to_string(),
        "engine": infer.engine,
        "threshold": threshold,
        "score": score.summary(),
        "detector_fps": total as f64 / (detect_ns as f64 / 1e9),
        "per_frame_us": {
            "preprocess": us(t.preprocess_ns as u128),
            "inference": us(t.inference_ns as u128),
            "decode_nms": us(t.decode_ns as u128),
            "track": us(track_ns),
        },
        "wall_s": started.elapsed().as_secs_f64(),
    }))
}

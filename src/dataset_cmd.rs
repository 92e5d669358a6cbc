//! `eyrie dataset`: frames and ground truth of synthetic cameras, exactly as
//! the detector sees them, for training (`models/train.py`).
//!
//! Each frame is rendered by `testsrc`, fitted into the model input by the same
//! [`Preprocess`] the `infer` node runs (identity normalisation, so values stay
//! 0..=255) and appended to `frames.u8` as planar RGB; its objects, mapped
//! into input pixels, go to one line of `labels.jsonl`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use eyrie::capture::testsrc::{TestSrc, TestSrcOptions};
use eyrie::infer::preprocess::{Normalize, Preprocess};
use eyrie::process::letterbox::Resize;
use serde_json::json;

/// What to render.
pub struct Spec {
    /// Scene seeds, one camera each.
    pub seeds: Vec<u64>,
    /// Frames per seed.
    pub frames: u64,
    /// Keep every `stride`-th frame.
    pub stride: u64,
    /// Camera size.
    pub camera: (u32, u32),
    /// Model input size.
    pub input: (u32, u32),
}

/// Writes the data set into `dir`; returns the number of frames written.
pub fn run(spec: &Spec, dir: &Path) -> Result<u64, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let create = |name: &str| {
        let path = dir.join(name);
        File::create(&path)
            .map(BufWriter::new)
            .map_err(|e| format!("{}: {e}", path.display()))
    };
    let (mut frames, mut labels) = (create("frames.u8")?, create("labels.jsonl")?);
    let mut tensor = vec![0u8; 3 * (spec.input.0 * spec.input.1) as usize];
    let mut written = 0;
    for &seed in &spec.seeds {
        let options = TestSrcOptions {
            width: spec.camera.0,
            height: spec.camera.1,
            seed: Some(seed),
            ..TestSrcOptions::default()
        };
        let src = TestSrc::new("dataset", &options).map_err(|e| e.to_string())?;
        let pre = Preprocess::new(src.info(), spec.input, Resize::Letterbox, Normalize::identity());
        let mut frame = vec![0u8; src.info().size()];
        for n in (0..spec.frames).step_by(spec.stride.max(1) as usize) {
            let truth = src.render(n, &mut frame);
            pre.run(&frame, &mut tensor);
            let objects: Vec<_> = truth
                .iter()
                .map(|t| {
                    let b = pre.fit().to_input(&t.bbox);
                    json!([t.class.index(), b.x, b.y, b.w, b.h, t.visible, t.in_frame])
                })
                .collect();
            let line = json!({ "seed": seed, "frame": n, "objects": objects });
            let write = |e: std::io::Error| format!("{}: {e}", dir.display());
            frames.write_all(&tensor).map_err(write)?;
            writeln!(labels, "{line}").map_err(write)?;
            written += 1;
        }
    }
    frames.flush().map_err(|e| e.to_string())?;
    labels.flush().map_err(|e| e.to_string())?;
    Ok(written)
}

//! A detector: preprocessing, an engine and an output decoder put together,
//! checked against each other when it is built, timed per stage.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::batch::PolicyOptions;
use super::decode::{self, Layout};
use super::engine::{self, BUILTIN_LABELS, Engine, EngineError, EngineKind, InputMut, ModelSource, OrtOptions};
use super::preprocess::{Normalize, Preprocess};
use crate::media::{Detection, Frame, VideoInfo};
use crate::process::letterbox::Resize;

/// The keys of an `infer` node: its inputs and batching, which model runs and
/// how its input and output are read. The model defaults describe the built-in
/// model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InferOptions {
    /// The streams batched together (the node's inputs, in batch-slot order).
    pub inputs: Vec<String>,
    /// Largest batch.
    pub batch: usize,
    /// Seconds a partial batch waits for more frames.
    pub timeout: f64,
    /// Inference policy of every input.
    pub policy: PolicyOptions,
    /// Policies of particular inputs, by stream name.
    pub policies: BTreeMap<String, PolicyOptions>,
    /// Input queue per stream (frames; leaky: the oldest is dropped and counted).
    pub queue: usize,
    /// ONNX model file. Default: the built-in demo detector.
    pub model: Option<PathBuf>,
    /// Label file, one class per line. Default: the built-in model's labels.
    pub labels: Option<PathBuf>,
    /// Engine: `tract` or `ort`.
    pub engine: EngineKind,
    /// Settings of the `ort` engine.
    pub ort: OrtOptions,
    /// Output layout: `yolov8` (also YOLO11) or `yolov5`.
    pub layout: Layout,
    /// Fit into the input: `letterbox` or `stretch`.
    pub resize: Resize,
    /// Input normalisation.
    pub normalize: Normalize,
    /// Detections below this confidence are dropped.
    pub confidence: f32,
    /// Overlap (IoU) above which non-maximum suppression drops a box of the same class.
    pub iou: f32,
    /// At most this many detections per frame.
    pub max_detections: usize,
}

impl Default for InferOptions {
    fn default() -> Self {
        InferOptions {
            inputs: Vec::new(),
            batch: 4,
            timeout: 0.02,
            policy: PolicyOptions::default(),
            policies: BTreeMap::new(),
            queue: 4,
            model: None,
            labels: None,
            engine: EngineKind::Tract,
            ort: OrtOptions::default(),
            layout: Layout::Yolov8,
            resize: Resize::Letterbox,
            normalize: Normalize::default(),
            confidence: 0.25,
            iou: 0.4,
            max_detections: 100,
        }
    }
}

impl InferOptions {
    /// Checks the values, naming the key at fault.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if self.batch == 0 || self.batch > 64 {
            return Err(("batch", format!("{} is outside 1..=64", self.batch)));
        }
        if !self.timeout.is_finite() || !(0.0..=10.0).contains(&self.timeout) {
            return Err(("timeout", format!("{} is not a wait in seconds (0..=10)", self.timeout)));
        }
        if self.queue == 0 {
            return Err(("queue", "must be at least 1".into()));
        }
        self.policy.check().map_err(|(k, m)| ("policy", format!("{k}: {m}")))?;
        for (name, p) in &self.policies {
            if !self.inputs.contains(name) {
                return Err(("policies", format!("`{name}` is not one of `inputs`")));
            }
            p.check().map_err(|(k, m)| ("policies", format!("{name}.{k}: {m}")))?;
        }
        if !(0.0..=1.0).contains(&self.confidence) {
            return Err(("confidence", format!("{} is outside 0..=1", self.confidence)));
        }
        if !(0.0..=1.0).contains(&self.iou) {
            return Err(("iou", format!("{} is outside 0..=1", self.iou)));
        }
        if self.max_detections == 0 {
            return Err(("max_detections", "must be at least 1".into()));
        }
        self.normalize
            .check()
            .map_err(|(k, m)| ("normalize", format!("{k}: {m}")))
    }

    /// The policy of each input, in slot order.
    pub fn input_policies(&self) -> Vec<PolicyOptions> {
        self.inputs
            .iter()
            .map(|name| self.policies.get(name).unwrap_or(&self.policy).clone())
            .collect()
    }

    /// Where the model comes from.
    pub fn source(&self) -> ModelSource {
        self.model.clone().map_or(ModelSource::Builtin, ModelSource::File)
    }
}

/// Time spent per stage, summed, with the number of frames.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct StageTimes {
    /// Frames detected.
    pub frames: u64,
    /// Batches run.
    pub batches: u64,
    /// Preprocessing (into the tensor), ns.
    pub preprocess_ns: u64,
    /// The engine, ns.
    pub inference_ns: u64,
    /// Output decoding and NMS, ns.
    pub decode_ns: u64,
}

/// A loaded, checked detector.
pub struct Detector {
    options: InferOptions,
    engine: Box<dyn Engine>,
    labels: Vec<String>,
    anchors: usize,
    preprocess: HashMap<VideoInfo, Preprocess>,
    times: StageTimes,
}

impl Detector {
    /// Loads the model and labels and checks that they fit the decoder.
    pub fn new(options: &InferOptions) -> Result<Self, EngineError> {
        let labels = match &options.labels {
            Some(path) => decode::load_labels(path).map_err(EngineError::Load)?,
            None if options.model.is_none() => decode::parse_labels(BUILTIN_LABELS).map_err(EngineError::Load)?,
            None => {
                return Err(EngineError::Load(format!(
                    "model {} needs `labels` (a label file, one class per line)",
                    options.source()
                )));
            }
        };
        let source = options.source();
        let engine = engine::load(options.engine, &source, &options.ort)?;
        let info = engine.info().clone();
        if info.chw[0] != 3 {
            return Err(EngineError::Mismatch(format!(
                "{source}: input has {} channels; detectors here take 3 (RGB or BGR)",
                info.chw[0]
            )));
        }
        let (_, shape) = info
            .outputs
            .first()
            .ok_or_else(|| EngineError::Mismatch(format!("{source}: the model has no output")))?;
        // Judge the shape with the batch dimension set to 1.
        let shape: Vec<usize> = shape
            .iter()
            .enumerate()
            .map(|(i, d)| d.unwrap_or(if i == 0 { 1 } else { 0 }))
            .collect();
        let anchors = options
            .layout
            .anchors(&shape, labels.len())
            .map_err(|e| EngineError::Mismatch(format!("{source}: {e}")))?;
        tracing::info!(model = %source, engine = ?options.engine, "{info}; {} labels, {anchors} anchors", labels.len());
        Ok(Detector {
            options: options.clone(),
            engine,
            labels,
            anchors,
            preprocess: HashMap::new(),
            times: StageTimes::default(),
        })
    }

    /// The class labels.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// The model's input and outputs.
    pub fn info(&self) -> &engine::ModelInfo {
        self.engine.info()
    }

    /// Time per stage so far.
    pub fn times(&self) -> StageTimes {
        self.times
    }

    /// The largest batch one engine run takes (`None`: any).
    pub fn max_batch(&self) -> Option<usize> {
        self.engine.info().batch
    }

    /// Detects objects in `frames` (one engine run per fixed-size chunk);
    /// returns their detections in frame pixels, in order.
    pub fn detect(&mut self, frames: &[&Frame]) -> Result<Vec<Vec<Detection>>, EngineError> {
        let chunk = self.max_batch().unwrap_or(frames.len()).max(1);
        let mut out = Vec::with_capacity(frames.len());
        for part in frames.chunks(chunk) {
            out.extend(self.detect_batch(part)?);
        }
        Ok(out)
    }

    fn detect_batch(&mut self, frames: &[&Frame]) -> Result<Vec<Vec<Detection>>, EngineError> {
        let [_, h, w] = self.engine.info().chw;
        let input = (w as u32, h as u32);
        for f in frames {
            self.preprocess.entry(f.info).or_insert_with(|| {
                Preprocess::new(&f.info, input, self.options.resize, self.options.normalize.clone())
            });
        }
        let per_image = self.engine.info().image_len();
        let started = Instant::now();
        let mut pre_ns = 0;
        let preprocess = &self.preprocess;
        let output = self.engine.run(frames.len(), &mut |mut tensor| {
            let t0 = Instant::now();
            for (i, f) in frames.iter().enumerate() {
                let p = &preprocess[&f.info];
                let slot = i * per_image..(i + 1) * per_image;
                match tensor {
                    InputMut::F32(ref mut t) => p.run(f.data(), &mut t[slot]),
                    InputMut::F16(ref mut t) => p.run(f.data(), &mut t[slot]),
                }
            }
            pre_ns = t0.elapsed().as_nanos() as u64;
        })?;
        let total_ns = started.elapsed().as_nanos() as u64;
        let t0 = Instant::now();
        let per_output: usize = output.shape.iter().skip(1).product();
        if output.shape.first().copied().unwrap_or(0) < frames.len() || output.data.len() < per_output * frames.len() {
            return Err(EngineError::Run(format!(
                "output of shape {:?} for a batch of {}",
                output.shape,
                frames.len()
            )));
        }
        let o = &self.options;
        let dets = frames
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let data = &output.data[i * per_output..(i + 1) * per_output];
                let found = decode::decode(o.layout, data, self.anchors, self.labels.len(), o.confidence);
                let fit = self.preprocess[&f.info].fit();
                decode::nms(found, o.iou, o.max_detections)
                    .into_iter()
                    .map(|c| Detection {
                        class_id: c.class_id,
                        label: self.labels[c.class_id as usize].clone(),
                        confidence: c.confidence,
                        bbox: fit.to_source(&c.bbox),
                        track_id: None,
                    })
                    .filter(|d| d.bbox.area() > 0.0)
                    .collect()
            })
            .collect();
        self.times.frames += frames.len() as u64;
        self.times.batches += 1;
        self.times.preprocess_ns += pre_ns;
        self.times.inference_ns += total_ns.saturating_sub(pre_ns);
        self.times.decode_ns += t0.elapsed().as_nanos() as u64;
        Ok(dets)
    }
}

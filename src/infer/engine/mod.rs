//! Inference engines behind one trait. `tract` (pure Rust) is always built;
//! `ort` (ONNX Runtime, loaded at run time, with its CUDA and TensorRT
//! execution providers) comes with the feature of that name.
//!
//! An engine loads its model once, reports the input it wants and the shapes
//! it returns ([`ModelInfo`]) and runs batches whose input tensor the caller
//! fills in place (so preprocessing writes straight into the engine's tensor).

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[cfg(feature = "ort")]
pub mod ort;
pub mod tract;

/// The shipped demo detector (`models/eyrie-det.onnx`), built into the binary.
pub const BUILTIN_MODEL: &[u8] = include_bytes!("../../../models/eyrie-det.onnx");
/// The shipped detector's label file.
pub const BUILTIN_LABELS: &str = include_str!("../../../models/eyrie-det.labels");

/// Which engine runs a model.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    /// tract: pure Rust, CPU, no setup.
    #[default]
    Tract,
    /// ONNX Runtime, loaded at run time (feature `ort`).
    Ort,
}

/// ONNX Runtime's execution provider.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// The CPU.
    #[default]
    Cpu,
    /// CUDA (needs `onnxruntime-gpu`'s library and an NVIDIA GPU).
    Cuda,
    /// TensorRT (needs TensorRT; engines are cached in `engine_cache`).
    Tensorrt,
}

/// Settings of the `ort` engine.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OrtOptions {
    /// `libonnxruntime.so` to load. Default: `ORT_DYLIB_PATH`.
    pub library: Option<PathBuf>,
    /// Execution provider.
    pub provider: Provider,
    /// GPU index (CUDA, TensorRT).
    pub device: u32,
    /// Where TensorRT keeps the engines it builds (the first start builds them; later ones load them).
    pub engine_cache: Option<PathBuf>,
    /// Let TensorRT run in fp16.
    pub fp16: bool,
    /// Threads for the CPU provider (0: ONNX Runtime's default).
    pub threads: usize,
}

/// Where a model comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum ModelSource {
    /// The built-in demo detector.
    Builtin,
    /// An ONNX file.
    File(PathBuf),
}

impl fmt::Display for ModelSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelSource::Builtin => f.write_str("the built-in model"),
            ModelSource::File(p) => write!(f, "{}", p.display()),
        }
    }
}

impl ModelSource {
    /// The model's bytes.
    pub fn bytes(&self) -> Result<std::borrow::Cow<'static, [u8]>, EngineError> {
        match self {
            ModelSource::Builtin => Ok(BUILTIN_MODEL.into()),
            ModelSource::File(p) => std::fs::read(p)
                .map(Into::into)
                .map_err(|e| EngineError::Load(format!("{}: {e}", p.display()))),
        }
    }
}

/// What a model takes and gives, as loaded.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ModelInfo {
    /// Name of the input.
    pub input: String,
    /// Batch size the model is fixed to, or `None` when its batch dimension is dynamic.
    pub batch: Option<usize>,
    /// Channels, height, width of one image (NCHW).
    pub chw: [usize; 3],
    /// The input wants f16 rather than f32.
    pub half: bool,
    /// Name and shape of each output (`None` for a dynamic dimension).
    pub outputs: Vec<(String, Vec<Option<usize>>)>,
}

impl ModelInfo {
    /// The input shape of a run of `n` images: `n` rows (a dynamic batch) or the
    /// model's fixed batch (the rows past `n` left blank); more is an error.
    pub fn run_shape(&self, n: usize) -> Result<[usize; 4], EngineError> {
        let rows = self.batch.unwrap_or(n);
        if n > rows {
            return Err(EngineError::Run(format!("{n} images for a model of batch {rows}")));
        }
        let [c, h, w] = self.chw;
        Ok([rows, c, h, w])
    }

    /// Elements of one image in the input.
    pub fn image_len(&self) -> usize {
        self.chw.iter().product()
    }
}

impl fmt::Display for ModelInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dim = |d: &Option<usize>| d.map_or("?".to_owned(), |d| d.to_string());
        let [c, h, w] = self.chw;
        write!(
            f,
            "input `{}` [{}, {c}, {h}, {w}] {}",
            self.input,
            dim(&self.batch),
            if self.half { "f16" } else { "f32" }
        )?;
        for (name, shape) in &self.outputs {
            let dims: Vec<String> = shape.iter().map(dim).collect();
            write!(f, ", output `{name}` [{}]", dims.join(", "))?;
        }
        Ok(())
    }
}

/// The input tensor of a batch, to be filled (NCHW, `n × c × h × w` elements).
pub enum InputMut<'a> {
    /// f32 elements.
    F32(&'a mut [f32]),
    /// f16 elements.
    F16(&'a mut [half::f16]),
}

/// The first output of a batch, as f32.
#[derive(Clone, Debug, PartialEq)]
pub struct Output {
    /// Its shape, batch first.
    pub shape: Vec<usize>,
    /// Its values, row-major.
    pub data: Vec<f32>,
}

/// A model that runs batches.
pub trait Engine: Send {
    /// What the model takes and gives.
    fn info(&self) -> &ModelInfo;

    /// Runs `n` images (at most the fixed batch size, if any): `fill` writes
    /// the input tensor; the first output comes back.
    fn run(&mut self, n: usize, fill: &mut dyn FnMut(InputMut<'_>)) -> Result<Output, EngineError>;
}

/// Why an engine cannot load or run.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The model (or the runtime) cannot be loaded.
    #[error("{0}")]
    Load(String),
    /// The model does not fit what the node expects.
    #[error("{0}")]
    Mismatch(String),
    /// A batch failed.
    #[error("inference failed: {0}")]
    Run(String),
}

/// Loads `source` into the engine `kind`.
pub fn load(kind: EngineKind, source: &ModelSource, ort: &OrtOptions) -> Result<Box<dyn Engine>, EngineError> {
    match kind {
        EngineKind::Tract => Ok(Box::new(tract::TractEngine::load(source)?)),
        #[cfg(feature = "ort")]
        EngineKind::Ort => Ok(Box::new(ort::OrtEngine::load(source, ort)?)),
        #[cfg(not(feature = "ort"))]
        EngineKind::Ort => {
            let _ = ort;
            Err(EngineError::Load(
                "engine `ort` is not built in: rebuild with `--features ort`".into(),
            ))
        }
    }
}

/// The image shape `[c, h, w]` of an NCHW input shape, checked.
pub(crate) fn image_shape(input: &str, shape: &[Option<usize>]) -> Result<[usize; 3], EngineError> {
    match shape {
        [_, Some(c @ (1 | 3)), Some(h), Some(w)] => Ok([*c, *h, *w]),
        _ => Err(EngineError::Mismatch(format!(
            "input `{input}` has shape {shape:?}; expected [batch, 3, height, width] (NCHW, fixed height and width)"
        ))),
    }
}

//! The ONNX Runtime engine (feature `ort`): `libonnxruntime.so` loaded at run
//! time from the node's `ort.library` or `ORT_DYLIB_PATH` (nothing is
//! downloaded or linked at build time), on the CPU or through the CUDA and
//! TensorRT execution providers (with an engine cache and fp16 for TensorRT).
//!
//! The runtime is loaded once per process; the first library that loads is
//! the one every later engine uses.

use std::sync::Mutex;

use ort::environment::Environment;
use ort::ep;
use ort::session::Session;
use ort::value::{Tensor, TensorElementType};

use super::{Engine, EngineError, InputMut, ModelInfo, ModelSource, OrtOptions, Output, Provider, image_shape};

/// The runtime, once loaded (it stays for the life of the process).
static RUNTIME: Mutex<Option<&'static Environment>> = Mutex::new(None);

fn runtime(options: &OrtOptions) -> Result<&'static Environment, EngineError> {
    let path = options
        .library
        .clone()
        .or_else(|| std::env::var_os("ORT_DYLIB_PATH").map(Into::into))
        .ok_or_else(|| {
            EngineError::Load("engine `ort` needs the ONNX Runtime library: set `ort.library` or ORT_DYLIB_PATH".into())
        })?;
    if !path.exists() {
        return Err(EngineError::Load(format!(
            "ONNX Runtime library {}: no such file",
            path.display()
        )));
    }
    let mut loaded = RUNTIME.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(env) = *loaded {
        return Ok(env);
    }
    // A failure is not kept: a later engine with a good path loads it.
    let fail = |e: String| EngineError::Load(format!("ONNX Runtime library {}: {e}", path.display()));
    let env = ort::init_from(&path)
        .map_err(|e| fail(e.to_string()))?
        .with_name("eyrie")
        .build()
        .map_err(|e| fail(e.to_string()))?;
    let env: &'static Environment = Box::leak(Box::new(env));
    *loaded = Some(env);
    Ok(env)
}

/// A model loaded into ONNX Runtime.
pub struct OrtEngine {
    session: Session,
    info: ModelInfo,
}

fn dims(shape: &[i64]) -> Vec<Option<usize>> {
    shape
        .iter()
        .map(|&d| usize::try_from(d).ok().filter(|&d| d > 0))
        .collect()
}

impl OrtEngine {
    /// Loads `source` with `options` (the provider must be available: a
    /// missing CUDA or TensorRT is an error, never a silent fall-back to the CPU).
    pub fn load(source: &ModelSource, options: &OrtOptions) -> Result<Self, EngineError> {
        let env = runtime(options)?;
        let bytes = source.bytes()?;
        let load = |e: String| EngineError::Load(format!("{source}: {e}"));
        let provider = match options.provider {
            Provider::Cpu => None,
            Provider::Cuda => Some(
                ep::CUDA::default()
                    .with_device_id(options.device as i32)
                    .build()
                    .error_on_failure(),
            ),
            Provider::Tensorrt => {
                let mut trt = ep::TensorRT::default()
                    .with_device_id(options.device as i32)
                    .with_fp16(options.fp16);
                if let Some(dir) = &options.engine_cache {
                    trt = trt
                        .with_engine_cache(true)
                        .with_engine_cache_path(dir.display())
                        .with_timing_cache(true)
                        .with_timing_cache_path(dir.display());
                }
                Some(trt.build().error_on_failure())
            }
        };
        let mut builder = Session::builder(env).map_err(|e| load(e.to_string()))?;
        if options.threads > 0 {
            builder = builder
                .with_intra_threads(options.threads)
                .map_err(|e| load(e.to_string()))?;
        }
        if let Some(p) = provider {
            builder = builder.with_execution_providers([p]).map_err(|e| load(e.to_string()))?;
        }
        let session = builder.commit_from_memory(&bytes).map_err(|e| load(e.to_string()))?;
        let input = session
            .inputs()
            .first()
            .ok_or_else(|| EngineError::Mismatch(format!("{source}: the model has no input")))?;
        let shape = dims(input.dtype().tensor_shape().map(|s| &s[..]).unwrap_or(&[]));
        let half = match input.dtype().tensor_type() {
            Some(TensorElementType::Float32) => false,
            Some(TensorElementType::Float16) => true,
            other => {
                return Err(EngineError::Mismatch(format!(
                    "{source}: input is {other:?}; expected f32 or f16"
                )));
            }
        };
        let chw = image_shape(input.name(), &shape).map_err(|e| EngineError::Mismatch(format!("{source}: {e}")))?;
        let info = ModelInfo {
            input: input.name().to_owned(),
            batch: shape[0],
            chw,
            half,
            outputs: session
                .outputs()
                .iter()
                .map(|o| {
                    let shape = o.dtype().tensor_shape().map(|s| dims(s)).unwrap_or_default();
                    (o.name().to_owned(), shape)
                })
                .collect(),
        };
        let mut engine = OrtEngine { session, info };
        // Outputs whose shape the file leaves open are learnt from one run on a blank image.
        if engine
            .info
            .outputs
            .iter()
            .any(|(_, s)| s.iter().skip(1).any(Option::is_none))
        {
            let out = engine
                .run(1, &mut |_| {})
                .map_err(|e| EngineError::Load(format!("{source}: a trial run failed: {e}")))?;
            if let Some((_, shape)) = engine.info.outputs.first_mut() {
                *shape = out.shape.iter().map(|&d| Some(d)).collect();
                if engine.info.batch.is_none() {
                    shape[0] = None;
                }
            }
        }
        Ok(engine)
    }
}

impl Engine for OrtEngine {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn run(&mut self, n: usize, fill: &mut dyn FnMut(InputMut<'_>)) -> Result<Output, EngineError> {
        let shape = self.info.run_shape(n)?;
        let len = shape.iter().product();
        let used = n * self.info.image_len();
        let run_err = |e: ort::Error| EngineError::Run(e.to_string());
        // The tensor is filled where it lies, then handed to the runtime without a copy.
        let input = if self.info.half {
            let mut data = vec![half::f16::ZERO; len];
            fill(InputMut::F16(&mut data[..used]));
            Tensor::from_array((shape, data)).map_err(run_err)?.into_dyn()
        } else {
            let mut data = vec![0f32; len];
            fill(InputMut::F32(&mut data[..used]));
            Tensor::from_array((shape, data)).map_err(run_err)?.into_dyn()
        };
        let name = self.info.input.clone();
        let outputs = self.session.run(ort::inputs![name => input]).map_err(run_err)?;
        let first = &outputs[0];
        let (shape, data) = match first.try_extract_tensor::<f32>() {
            Ok((s, d)) => (s.iter().map(|&d| d as usize).collect(), d.to_vec()),
            Err(_) => {
                let (s, d) = first.try_extract_tensor::<half::f16>().map_err(run_err)?;
                (
                    s.iter().map(|&d| d as usize).collect(),
                    d.iter().map(|v| v.to_f32()).collect(),
                )
            }
        };
        Ok(Output { shape, data })
    }
}

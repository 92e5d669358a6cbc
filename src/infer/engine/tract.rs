//! The tract engine: ONNX in pure Rust on the CPU. A plan is optimised for
//! each batch size the first time that size runs (a dynamic-batch model) or
//! once (a fixed one); concrete shapes give tract its fastest kernels.

use std::collections::HashMap;
use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::{Factoid, InferenceModel};
use tract_onnx::tract_hir::internal::DimLike;

use super::{Engine, EngineError, InputMut, ModelInfo, ModelSource, Output, image_shape};

type Plan = Arc<TypedRunnableModel>;

/// A model loaded into tract.
pub struct TractEngine {
    model: InferenceModel,
    info: ModelInfo,
    plans: HashMap<usize, Plan>,
    dtype: DatumType,
}

fn load_err(source: &ModelSource) -> impl Fn(TractError) -> EngineError + '_ {
    move |e| EngineError::Load(format!("{source}: {e:#}"))
}

impl TractEngine {
    /// Loads and checks `source`; the first plan is optimised here, so a model
    /// tract cannot run fails at start-up.
    pub fn load(source: &ModelSource) -> Result<Self, EngineError> {
        let bytes = source.bytes()?;
        let model = tract_onnx::onnx()
            .model_for_read(&mut &bytes[..])
            .map_err(load_err(source))?;
        let fact = model.input_fact(0).map_err(load_err(source))?;
        let shape: Vec<Option<usize>> = fact
            .shape
            .dims()
            .map(|d| d.concretize().and_then(|d| d.to_usize().ok()))
            .collect();
        let dtype = fact.datum_type.concretize().unwrap_or(DatumType::F32);
        if dtype != DatumType::F32 && dtype != DatumType::F16 {
            return Err(EngineError::Mismatch(format!(
                "{source}: input is {dtype:?}; expected f32 or f16"
            )));
        }
        let input = model
            .input_outlets()
            .ok()
            .and_then(|o| o.first())
            .map(|o| model.node(o.node).name.clone())
            .unwrap_or_default();
        let chw = image_shape(&input, &shape).map_err(|e| EngineError::Mismatch(format!("{source}: {e}")))?;
        let outputs = model
            .output_outlets()
            .map_err(load_err(source))?
            .iter()
            .map(|o| {
                let fact = model.outlet_fact(*o).ok();
                let dims = fact
                    .map(|f| {
                        f.shape
                            .dims()
                            .map(|d| d.concretize().and_then(|d| d.to_usize().ok()))
                            .collect()
                    })
                    .unwrap_or_default();
                (model.node(o.node).name.clone(), dims)
            })
            .collect();
        let mut engine = TractEngine {
            model,
            info: ModelInfo {
                input,
                batch: shape[0],
                chw,
                half: dtype == DatumType::F16,
                outputs,
            },
            plans: HashMap::new(),
            dtype,
        };
        let first = engine.info.batch.unwrap_or(1);
        engine
            .plan(first)
            .map_err(|e| EngineError::Load(format!("{source}: {e}")))?;
        // With the plan's concrete shapes the output dimensions are known.
        if let Some(plan) = engine.plans.get(&first) {
            let model = plan.model();
            for (i, o) in model.output_outlets().unwrap_or(&[]).iter().enumerate() {
                if let (Ok(fact), Some(out)) = (model.outlet_fact(*o), engine.info.outputs.get_mut(i)) {
                    out.1 = fact.shape.iter().map(|d| d.to_usize().ok()).collect();
                    if engine.info.batch.is_none() {
                        out.1[0] = None;
                    }
                }
            }
        }
        Ok(engine)
    }

    fn plan(&mut self, n: usize) -> Result<Plan, String> {
        if let Some(plan) = self.plans.get(&n) {
            return Ok(Arc::clone(plan));
        }
        let [c, h, w] = self.info.chw;
        let outputs = self.info.outputs.len();
        let mut model = self
            .model
            .clone()
            .with_input_fact(0, InferenceFact::dt_shape(self.dtype, tvec!(n, c, h, w)))
            .map_err(|e| format!("{e:#}"))?;
        // Output facts may name the batch symbol: let them be inferred from the input.
        for i in 0..outputs {
            model = model
                .with_output_fact(i, InferenceFact::default())
                .map_err(|e| format!("{e:#}"))?;
        }
        let plan = model
            .into_optimized()
            .and_then(|m| m.into_runnable())
            .map_err(|e| format!("{e:#}"))?;
        self.plans.insert(n, Arc::clone(&plan));
        Ok(plan)
    }
}

impl Engine for TractEngine {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn run(&mut self, n: usize, fill: &mut dyn FnMut(InputMut<'_>)) -> Result<Output, EngineError> {
        let shape = self.info.run_shape(n)?;
        let plan = self.plan(shape[0]).map_err(EngineError::Run)?;
        let used = n * self.info.image_len();
        let run_err = |e: TractError| EngineError::Run(format!("{e:#}"));
        let tensor = if self.info.half {
            let mut t = Tensor::zero::<f16>(&shape).map_err(run_err)?;
            let mut view = t.try_as_plain_ram_mut().map_err(run_err)?;
            // tract's f16 is the `half` crate's.
            fill(InputMut::F16(&mut view.as_slice_mut::<f16>().map_err(run_err)?[..used]));
            t
        } else {
            let mut t = Tensor::zero::<f32>(&shape).map_err(run_err)?;
            let mut view = t.try_as_plain_ram_mut().map_err(run_err)?;
            fill(InputMut::F32(&mut view.as_slice_mut::<f32>().map_err(run_err)?[..used]));
            t
        };
        let outputs = plan.run(tvec!(tensor.into())).map_err(run_err)?;
        let first = outputs
            .first()
            .ok_or_else(|| EngineError::Run("the model gave no output".into()))?;
        let values = first.cast_to::<f32>().map_err(run_err)?;
        Ok(Output {
            shape: values.shape().to_vec(),
            data: values
                .try_as_plain_ram()
                .and_then(|v| v.as_slice::<f32>().map(<[f32]>::to_vec))
                .map_err(run_err)?,
        })
    }
}

//! The AI path's first half (DeepStream's nvstreammux → nvinfer): frames of
//! many inputs batched under leases, fitted into a model's input tensor in one
//! pass, run through an inference engine and decoded into detections.
//!
//! - [`batch`]: batches of up to B frames with a timeout, per-input policies;
//! - [`motion`]: the motion gate of those policies;
//! - [`preprocess`]: any pixel format straight into the NCHW tensor (fitted
//!   by [`crate::process::letterbox`]);
//! - `cuda` (feature `cuda`): the same preprocessing as a CUDA kernel
//!   (`kernels/preprocess.cu`, compiled at run time by NVRTC);
//! - [`engine`]: tract (default) and ONNX Runtime (feature `ort`);
//! - [`decode`]: YOLOv8/YOLO11 and YOLOv5 outputs, NMS, label files;
//! - [`detector`]: the three put together and checked against each other;
//! - [`score`]: precision, recall and id persistence against ground truth.
pub mod batch;
#[cfg(feature = "cuda")]
pub mod cuda;
pub mod decode;
pub mod detector;
pub mod engine;
pub mod motion;
pub mod preprocess;
pub mod score;

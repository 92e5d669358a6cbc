//! Preprocessing on an NVIDIA GPU (feature `cuda`): `kernels/preprocess.cu`
//! compiled at run time by NVRTC and launched through cudarc, computing what
//! [`Preprocess::run`] computes (to within 1/255 after normalisation).
//!
//! The driver library is loaded at run time: a machine without one gets a
//! clear error from [`CudaPreprocess::new`], never a panic. Frames in system
//! memory are uploaded (counted as copied bytes); the tensor is written on the
//! device and can be read back for a CPU engine.

use std::collections::HashMap;
use std::sync::Arc;

use cudarc::driver::{CudaContext, CudaFunction, CudaSlice, CudaStream, LaunchConfig, PushKernelArg};

use super::preprocess::Preprocess;
use crate::media::{VideoInfo, count_copied};

/// The kernel source.
pub const KERNEL: &str = include_str!("../../kernels/preprocess.cu");

/// A layout's kernel parameters on the device (ints, floats).
type Params = (CudaSlice<i32>, CudaSlice<f32>);

/// The preprocessing kernel, loaded on one GPU.
pub struct CudaPreprocess {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    function: CudaFunction,
    params: HashMap<(VideoInfo, (u32, u32)), Params>,
}

fn err(what: &str) -> impl Fn(cudarc::driver::DriverError) -> String + '_ {
    move |e| format!("CUDA {what}: {e}")
}

impl CudaPreprocess {
    /// Compiles the kernel and loads it on GPU `device`.
    pub fn new(device: usize) -> Result<Self, String> {
        // Without a driver, cudarc would panic at first use: ask first.
        if !unsafe { cudarc::driver::sys::is_culib_present() } {
            return Err("CUDA: no NVIDIA driver (libcuda) on this machine".into());
        }
        let ctx = CudaContext::new(device).map_err(err("device"))?;
        let ptx = cudarc::nvrtc::compile_ptx(KERNEL).map_err(|e| format!("NVRTC: kernels/preprocess.cu: {e}"))?;
        let module = ctx.load_module(ptx).map_err(err("module"))?;
        let function = module.load_function("preprocess").map_err(err("function"))?;
        Ok(CudaPreprocess {
            stream: ctx.default_stream(),
            ctx,
            function,
            params: HashMap::new(),
        })
    }

    /// Runs `pre` on one frame's bytes into `out` (3 × height × width), on the GPU.
    pub fn run(&mut self, pre: &Preprocess, data: &[u8], out: &mut [f32]) -> Result<(), String> {
        let frame = &data[..pre.info().size()];
        let src = self.stream.clone_htod(frame).map_err(err("upload"))?;
        count_copied(frame.len());
        let (w, h) = pre.fit().dst;
        let mut dst = self
            .stream
            .alloc_zeros::<f32>(3 * (w * h) as usize)
            .map_err(err("alloc"))?;
        self.launch(pre, &src, &mut dst)?;
        self.stream
            .memcpy_dtoh(&dst, &mut out[..3 * (w * h) as usize])
            .map_err(err("download"))
    }

    /// Launches the kernel on a frame and a tensor already on the device.
    fn launch(&mut self, pre: &Preprocess, src: &CudaSlice<u8>, dst: &mut CudaSlice<f32>) -> Result<(), String> {
        let (w, h) = pre.fit().dst;
        let key = (*pre.info(), (w, h));
        if !self.params.contains_key(&key) {
            let (ip, fp) = pre.kernel_params();
            let ip = self.stream.clone_htod(&ip).map_err(err("upload"))?;
            let fp = self.stream.clone_htod(&fp).map_err(err("upload"))?;
            self.params.insert(key, (ip, fp));
        }
        let (ip, fp) = &self.params[&key];
        let config = LaunchConfig {
            grid_dim: (w.div_ceil(16), h.div_ceil(16), 1),
            block_dim: (16, 16, 1),
            shared_mem_bytes: 0,
        };
        let mut launch = self.stream.launch_builder(&self.function);
        launch.arg(src).arg(dst).arg(ip).arg(fp);
        // Safety: the arguments match the kernel's signature (two device
        // pointers of bytes and floats, two parameter arrays of the lengths it reads).
        unsafe { launch.launch(config) }.map_err(err("launch"))?;
        Ok(())
    }

    /// The card's name and its peak memory bandwidth in bytes per second
    /// (memory clock × bus width × 2 for double data rate).
    pub fn card(&self) -> Result<(String, f64), String> {
        use cudarc::driver::sys::CUdevice_attribute as A;
        let khz = self
            .ctx
            .attribute(A::CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE)
            .map_err(err("attribute"))?;
        let bits = self
            .ctx
            .attribute(A::CU_DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH)
            .map_err(err("attribute"))?;
        let name = self.ctx.name().map_err(err("name"))?;
        Ok((name, 2.0 * f64::from(khz) * 1e3 * f64::from(bits) / 8.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::infer::preprocess::Normalize;
    use crate::media::paint::write_rgb_image;
    use crate::media::{Fps, PixelFormat};
    use crate::process::letterbox::Resize;

    /// Needs an NVIDIA GPU: `cargo test --features cuda -- --ignored`.
    #[test]
    #[ignore = "needs an NVIDIA GPU and driver"]
    fn the_kernel_matches_the_cpu_within_one_level() {
        let mut gpu = CudaPreprocess::new(0).unwrap();
        for format in PixelFormat::ALL {
            for (sw, sh, input) in [(1280, 720, (256, 144)), (640, 480, (256, 144)), (200, 150, (320, 320))] {
                let info = VideoInfo::new(format, sw, sh, Fps::new(30, 1).unwrap()).unwrap();
                let rgb: Vec<u8> = (0..sw * sh * 3).map(|i| (i * 7 % 251) as u8).collect();
                let mut data = vec![0u8; info.size()];
                write_rgb_image(&info, &rgb, &mut data);
                let pre = Preprocess::new(&info, input, Resize::Letterbox, Normalize::default());
                let n = 3 * (input.0 * input.1) as usize;
                let (mut cpu, mut dev) = (vec![0f32; n], vec![0f32; n]);
                pre.run(&data, &mut cpu);
                gpu.run(&pre, &data, &mut dev).unwrap();
                let worst = cpu.iter().zip(&dev).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
                println!(
                    "GPU-CHECK match: {format} {sw}x{sh} -> {}x{}: worst difference {worst:.6}",
                    input.0, input.1
                );
                assert!(worst <= 1.0 / 255.0, "{format} {sw}x{sh}: off by {worst}");
            }
        }
    }

    /// Needs an NVIDIA GPU. The kernel alone, on a 1080p NV12 frame into a
    /// 640×640 tensor (both on the device), against the card's peak memory
    /// bandwidth; it prints, asserts nothing on speed (scripts/gpu-check.sh reads it).
    #[test]
    #[ignore = "needs an NVIDIA GPU and driver"]
    fn kernel_throughput_against_memory_bandwidth() {
        let mut gpu = CudaPreprocess::new(0).unwrap();
        let info = VideoInfo::new(PixelFormat::Nv12, 1920, 1080, Fps::new(30, 1).unwrap()).unwrap();
        let pre = Preprocess::new(&info, (640, 640), Resize::Letterbox, Normalize::default());
        let frame: Vec<u8> = (0..info.size()).map(|i| (i * 13 % 251) as u8).collect();
        let src = gpu.stream.clone_htod(&frame).unwrap();
        let mut dst = gpu.stream.alloc_zeros::<f32>(3 * 640 * 640).unwrap();
        gpu.launch(&pre, &src, &mut dst).unwrap();
        gpu.stream.synchronize().unwrap();
        let runs = 500;
        let started = std::time::Instant::now();
        for _ in 0..runs {
            gpu.launch(&pre, &src, &mut dst).unwrap();
        }
        gpu.stream.synchronize().unwrap();
        let per = started.elapsed().as_secs_f64() / f64::from(runs);
        let bytes = (info.size() + 3 * 640 * 640 * 4) as f64;
        let (card, peak) = gpu.card().unwrap();
        println!(
            "GPU-CHECK throughput: {card}: 1920x1080 nv12 -> 640x640 f32 in {:.1} us per frame, {:.0} GB/s moved \
             ({:.1} % of the card's {:.0} GB/s)",
            per * 1e6,
            bytes / per / 1e9,
            100.0 * bytes / per / peak,
            peak / 1e9
        );
    }

    #[test]
    fn the_kernel_source_is_built_in() {
        assert!(KERNEL.contains("extern \"C\" __global__ void preprocess"));
    }
}

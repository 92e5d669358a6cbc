//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod ff;
pub mod gst;
pub mod http;

use std::sync::Arc;
use std::time::SystemTime;

use eyrie::media::{BufferPool, Fps, Frame, FrameMeta, PixelFormat, VideoInfo};

/// A small raw format for hub tests.
pub fn info() -> VideoInfo {
    VideoInfo::new(PixelFormat::Gray8, 16, 16, Fps::new(30, 1).unwrap()).unwrap()
}

/// A frame from `pool` numbered `seq`, from `source`; `None` when the pool is empty.
pub fn frame(pool: &BufferPool, source: &Arc<str>, seq: u64) -> Option<Frame> {
    let buf = pool.acquire()?.freeze();
    Some(Frame {
        info: info(),
        pts: seq as i64 * 33_333_333,
        duration: 33_333_333,
        capture_utc: SystemTime::now(),
        seq,
        source: Arc::clone(source),
        meta: Arc::new(FrameMeta::default()),
        buffer: buf,
    })
}

/// `n` frames of a synthetic camera (seed 7) at `width`×`height` in
/// `format`, 30 fps, numbered from 0: codec test material with ground truth.
pub fn testsrc_frames(format: PixelFormat, width: u32, height: u32, n: u64) -> Vec<Frame> {
    use eyrie::capture::testsrc::{TestSrc, TestSrcOptions};
    let options = TestSrcOptions {
        width,
        height,
        format,
        fps: Fps { num: 30, den: 1 },
        seed: Some(7),
        ..TestSrcOptions::default()
    };
    let src = TestSrc::new("src", &options).unwrap();
    let info = *src.info();
    (0..n)
        .map(|i| {
            let mut data = vec![0u8; info.size()];
            src.render(i, &mut data);
            Frame {
                info,
                pts: info.fps.frame_time_ns(i) as i64,
                duration: info.fps.frame_duration_ns() as i64,
                capture_utc: SystemTime::now(),
                seq: i,
                source: Arc::from("src"),
                meta: Arc::new(FrameMeta::default()),
                buffer: eyrie::media::Buffer::from_bytes(data.into()),
            }
        })
        .collect()
}

/// PSNR in dB of `a` against `b` over all their bytes (same length).
pub fn psnr_db(a: &[u8], b: &[u8]) -> f64 {
    let mse = a
        .iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 - *y as f64).powi(2))
        .sum::<f64>()
        / a.len() as f64;
    10.0 * (255.0f64.powi(2) / mse.max(1e-9)).log10()
}

/// `eyrie ctl --url URL ARGS` signed in with `token`, `stdin` fed (no
/// `EYRIE_TOKEN`/`EYRIE_CACERT` from the environment): (exit success, stdout, stderr).
pub fn eyrie_ctl(url: &str, token: Option<&str>, args: &[&str], stdin: &str) -> (bool, String, String) {
    use std::io::Write;
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_eyrie"));
    command
        .args(["ctl", "--url", url])
        .args(args)
        .env_remove("EYRIE_TOKEN")
        .env_remove("EYRIE_CACERT");
    if let Some(t) = token {
        command.env("EYRIE_TOKEN", t);
    }
    let mut child = command
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod ff;

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

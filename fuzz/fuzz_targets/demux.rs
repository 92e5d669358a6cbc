//! The container readers over arbitrary bytes. The first byte picks the
//! reader, so one corpus of real files (TS, MKV, MP4) serves all three.
#![no_main]

use std::sync::Arc;

use bytes::Bytes;
use eyrie::demux::{mkv, mp4, ts};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let source: Arc<str> = Arc::from("fuzz");
    let bytes = Bytes::copy_from_slice(data);
    let _ = ts::read(&bytes, &source);
    let _ = mkv::read(&bytes, &source);
    let _ = mp4::read(&bytes, &source);
});

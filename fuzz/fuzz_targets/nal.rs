//! NAL framing, access units, parameter tracking and picture order over
//! arbitrary bytes, as H.264 and as H.265; and the elementary-stream reader.
#![no_main]

use std::sync::Arc;

use bytes::Bytes;
use eyrie::codec::poc::PocCounter;
use eyrie::codec::{ParamTracker, access_units, nal};
use eyrie::demux::{EsKind, es};
use eyrie::media::Codec;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for codec in [Codec::H264, Codec::H265] {
        let mut tracker = ParamTracker::new(codec);
        let mut pocs = PocCounter::new(codec);
        for au in access_units(codec, data) {
            let _ = tracker.update(&au);
            let _ = pocs.push(&au);
        }
    }
    for size in [1, 2, 4] {
        let _ = nal::length_prefixed(data, size, 0);
    }
    let bytes = Bytes::copy_from_slice(data);
    let fps = Some("30".parse().unwrap());
    for kind in [EsKind::H264, EsKind::H265, EsKind::Ivf] {
        let _ = es::read(&bytes, kind, fps, &Arc::from("fuzz"));
    }
});

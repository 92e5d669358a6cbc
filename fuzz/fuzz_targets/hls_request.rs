//! What a hostile HTTP client asks, and what an odd stream feeds the window:
//! the blocking-reload query, the file names of `init/`, `seg/` and `part/`
//! and the times of a recorded range parse strictly or are refused, and a window fed pictures of any
//! durations and keyframe pattern keeps every segment within the target
//! duration and every part within the part target, and answers any request
//! without a panic.
#![no_main]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use eyrie::media::{Codec, CodecParams, Packet};
use eyrie::serve::cmaf::Fragmenter;
use eyrie::serve::hls::{HlsOptions, Name, Window, blocking_query};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok((msn, part)) = blocking_query(Some(&text)) {
        assert!(part.is_none() || msn.is_some());
    }
    if let Ok(t) = eyrie::serve::clip::parse_time(&text) {
        assert!(t >= std::time::UNIX_EPOCH);
    }
    for dir in ["init", "seg", "part"] {
        if let Some(name) = Name::parse(dir, &text) {
            assert!(!text.contains('/') && !text.contains(".."), "{dir}/{text} parsed as {name:?}");
        }
    }
    // Pictures: each byte a duration (1..=50 ms) and a keyframe bit.
    let sps = [0x67, 0x42, 0xC0, 0x1E, 0xDA, 0x02, 0x80, 0xBF, 0xE5, 0x80];
    let pps = [0x68, 0xCE, 0x3C, 0x80];
    let avcc = eyrie::codec::h264::avcc(&[&sps], &[&pps]).unwrap();
    let params = Arc::new(CodecParams::new(Codec::H264, 640, 480).with_extradata(avcc.into()));
    let options = HlsOptions {
        part_ms: 100 + u32::from(data.first().copied().unwrap_or(0)) * 3,
        segment_ms: 1000 + u32::from(data.get(1).copied().unwrap_or(0)) * 20,
        segments: 3,
        max_bytes: 1 << 20,
        ts: true,
    };
    let target = options.target_duration() as f64;
    let mut window = Window::new(options, 0);
    let mut fragmenter = Fragmenter::new(0);
    let mut t = 0i64;
    for (i, b) in data.iter().enumerate().skip(2) {
        let duration = i64::from(b & 0x7F) % 50 + 1;
        let key = b & 0x80 != 0 || i == 2;
        let packet = Packet {
            codec: Codec::H264,
            data: Bytes::from(vec![0, 0, 0, 1, if key { 0x65 } else { 0x41 }, 0x88, 0x80]),
            pts: t,
            dts: t,
            duration: duration * 1_000_000,
            capture_utc: SystemTime::UNIX_EPOCH + Duration::from_nanos(t as u64),
            keyframe: key,
            params: Arc::clone(&params),
            source: "fuzz".into(),
            seq: i as u64,
            meta: Default::default(),
        };
        t += duration * 1_000_000;
        let chunk = fragmenter.push(&packet).unwrap();
        window.push(&chunk);
        let newest = window.last_part().map_or(0, |(m, _)| m);
        for msn in newest.saturating_sub(3)..newest + 4 {
            let _ = window.playlist_ready(msn, None);
            for p in 0..4 {
                let _ = window.playlist_ready(msn, Some(p));
                let _ = window.part_ready(msn, p);
            }
            if let Some(seg) = window.segment(msn) {
                assert!(seg.duration.round() <= target, "segment {} s", seg.duration);
                for part in seg.complete_parts() {
                    assert!(part.duration <= window.part_target() + 1e-3, "part {} s", part.duration);
                }
            }
        }
    }
    let _ = window.media_playlist();
    let _ = window.ts_playlist();
});

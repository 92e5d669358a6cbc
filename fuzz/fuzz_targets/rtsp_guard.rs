//! What a hostile camera sends, through the guard in front of retina: the
//! framing of RTSP messages and interleaved frames at any split, the header
//! and Transport readers and rewriters, the per-picture RTP count. Never a
//! panic, and never more buffered than one message or frame plus one read.
#![no_main]

use eyrie::capture::rtsp::guard::{self, Deframer, MAX_MESSAGE_BYTES, PictureGuard, Transport, Unit};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let split = data.first().map_or(1, |&b| usize::from(b).max(1));
    let mut deframer = Deframer::default();
    let mut pictures = PictureGuard::default();
    'feed: for chunk in data.chunks(split) {
        deframer.buffer().extend_from_slice(chunk);
        loop {
            match deframer.unit() {
                Ok(Some(Unit::Message(m))) => {
                    let head = guard::head(&m);
                    if let Some(t) = guard::header(head, "transport") {
                        let _ = Transport::parse(t);
                        let rewritten = Transport::rewrite(t, Some(4000), Some(6000));
                        let _ = guard::with_header(&m, "transport", &rewritten);
                    }
                }
                Ok(Some(Unit::Interleaved { frame, .. })) => {
                    let _ = pictures.packet(&frame[4..], 1 << 20);
                }
                Ok(None) => break,
                Err(_) => break 'feed,
            }
        }
        assert!(deframer.buffer().len() <= MAX_MESSAGE_BYTES.max(65_539) + split);
    }
});

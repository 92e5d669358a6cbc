//! What a hostile RTSP client sends the server: framing at any split, the
//! request parser, URL and stream names, the `Transport` offer, Digest and
//! Basic credentials, and the response echoing its `CSeq`. Never a panic,
//! and never more buffered than one message or frame plus one read.
#![no_main]

use std::time::SystemTime;

use eyrie::capture::rtsp::guard::{Deframer, MAX_MESSAGE_BYTES, Unit};
use eyrie::serve::auth::{Authenticator, Role, User};
use eyrie::serve::rtsp::message::{Request, Response, Status, pick_transport, stream_of};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let split = data.first().map_or(1, |&b| usize::from(b).max(1));
    let auth = Authenticator::new(vec![User::with_password("admin", "hunter2", Role::Admin)], [7; 32]);
    let mut deframer = Deframer::default();
    'feed: for chunk in data.chunks(split) {
        deframer.buffer().extend_from_slice(chunk);
        loop {
            match deframer.unit() {
                Ok(Some(Unit::Message(m))) => {
                    let Ok(r) = Request::parse(&m) else { continue };
                    let _ = stream_of(r.path());
                    let _ = r.url_for_log();
                    let _ = r.session();
                    if let Some(t) = r.header("transport") {
                        let _ = pick_transport(t, "127.0.0.1".parse().unwrap(), t.len() % 2 == 0);
                    }
                    let from = "127.0.0.1".parse().unwrap();
                    let _ = auth.check(r.header("authorization"), &r.method, &r.url, from, SystemTime::now());
                    let bytes = Response::new(Status::OK, r.cseq.as_deref()).to_bytes();
                    let head = String::from_utf8_lossy(&bytes);
                    assert_eq!(head.matches("\r\n").count(), 3, "one line per header: {head}");
                }
                Ok(Some(Unit::Interleaved { .. })) => {}
                Ok(None) => break,
                Err(_) => break 'feed,
            }
        }
        assert!(deframer.buffer().len() <= MAX_MESSAGE_BYTES.max(65_539) + split);
    }
});

//! `.y4m` headers and frame indexes (`eyrie encode --input x.y4m`), and the
//! FWHT frame header (vicodec packets).
#![no_main]

use bytes::Bytes;
use eyrie::capture::y4m::Y4m;
use eyrie::codec::fwht;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = fwht::is_keyframe(data);
    if let Ok(y) = Y4m::parse(Bytes::copy_from_slice(data)) {
        let size = y.info().size();
        for n in 0..y.len() {
            assert_eq!(y.frame(n).expect("every indexed frame").len(), size);
        }
        assert!(y.frame(y.len()).is_none());
    }
});

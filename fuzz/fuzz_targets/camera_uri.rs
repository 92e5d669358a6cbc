//! Camera URIs (`eyrie run --camera`) and credential redaction over arbitrary text.
#![no_main]

use eyrie::capture::rtsp::{CameraUrl, redact};
use eyrie::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let shown = redact(text);
    // Redacting what was redacted changes nothing.
    assert_eq!(redact(&shown), shown);
    if let Ok(config) = Config::from_cameras(&[text]) {
        let _ = format!("{config:?}");
    }
    if let Ok((url, creds)) = CameraUrl::new(text).parse() {
        assert!(url.password().is_none() && url.username().is_empty());
        let _ = creds;
    }
});

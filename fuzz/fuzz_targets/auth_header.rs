//! What a hostile client sends to sign in: any `Authorization` value (Basic,
//! Digest, Bearer or garbage), for any method and URL, from any address.
//! Checking never panics, and only the one right password or a token this
//! server signed gets in.
#![no_main]

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use eyrie::serve::auth::{Authenticator, Role, User};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let auth = Authenticator::new(vec![User::with_password("admin", "hunter2", Role::Admin)], [7; 32]);
    let text = String::from_utf8_lossy(data);
    let (header, url) = text.split_once('\n').unwrap_or((&text, "rtsp://127.0.0.1/cam0"));
    let from = IpAddr::from([data.first().copied().unwrap_or(0), 0, 0, 1]);
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    if let Ok(who) = auth.check(Some(header), "DESCRIBE", url, from, now) {
        assert_eq!(who.name, "admin");
        let lower = header.to_ascii_lowercase();
        // Basic with the password, a Digest answer (computed from it) or a
        // token signed with the key: nothing else.
        assert!(
            lower.starts_with("basic") || lower.starts_with("digest") || lower.starts_with("bearer"),
            "{header:?}"
        );
    }
    let _ = auth.login(&text, "hunter2", from);
});

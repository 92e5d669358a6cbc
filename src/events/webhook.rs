//! Webhooks (`[[server.webhooks]]`): what is sent where, how it is signed
//! and when a failed delivery is tried again. Delivery itself (a thread per
//! webhook, reading its own bounded subscription of the bus) is the
//! server's; nothing here does I/O.
//!
//! Each event is POSTed as JSON (the event's own fields, `event` naming
//! it) with `X-Eyrie-Event` (its name), `X-Eyrie-Delivery` (a number, the
//! same on every retry) and, with a `secret`, `X-Eyrie-Signature:
//! t=<UNIX seconds>,sha256=<hex>`: HMAC-SHA256 (RFC 2104) under the secret
//! of `<t>.<body>`, so a receiver checks both origin and freshness.

use std::time::Duration;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::Event;

fn default_queue() -> usize {
    256
}

fn default_retries() -> u32 {
    5
}

fn default_timeout() -> f64 {
    5.0
}

/// One `[[server.webhooks]]` table.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookOptions {
    /// Where events are POSTed: `http://host:port/path` or `https://…`.
    pub url: String,
    /// For `https://`: a PEM file of certificates to trust besides the
    /// system's (a receiver's self-signed one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<std::path::PathBuf>,
    /// The events sent, by name (`closed`, `failed`, `triggered`, `node`,
    /// `reader`); empty: all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<String>,
    /// Only events about nodes or cameras matching this glob.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The HMAC-SHA256 key of `X-Eyrie-Signature` (never logged or shown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// Events waiting at most; beyond, the oldest are dropped and counted.
    #[serde(default = "default_queue")]
    pub queue: usize,
    /// Tries after the first before an event is given up.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Seconds one try may take.
    #[serde(default = "default_timeout")]
    pub timeout: f64,
}

impl std::fmt::Debug for WebhookOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookOptions")
            .field("url", &self.url)
            .field("ca", &self.ca)
            .field("events", &self.events)
            .field("node", &self.node)
            .field("secret", &self.secret.as_ref().map(|_| "***"))
            .field("queue", &self.queue)
            .field("retries", &self.retries)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl WebhookOptions {
    /// Checks the keys beyond their types; the error names the key.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        let rest = self
            .url
            .strip_prefix("http://")
            .or_else(|| self.url.strip_prefix("https://"))
            .ok_or(("url", format!("`{}` is not an http:// or https:// URL", self.url)))?;
        if self.ca.is_some() && !self.url.starts_with("https://") {
            return Err(("ca", "is for https:// URLs only".into()));
        }
        if rest.is_empty() || rest.starts_with(['/', '?']) || rest.contains(char::is_whitespace) || rest.contains('@') {
            return Err((
                "url",
                format!("`{}` is not a URL like http://127.0.0.1:9000/hook", self.url),
            ));
        }
        if let Some(message) = Event::unknown(&self.events) {
            return Err(("events", message));
        }
        if self.secret.as_ref().is_some_and(String::is_empty) {
            return Err(("secret", "is empty".into()));
        }
        if !(1..=65_536).contains(&self.queue) {
            return Err(("queue", format!("{} is out of range 1..=65536", self.queue)));
        }
        if self.retries > 20 {
            return Err(("retries", format!("{} is out of range 0..=20", self.retries)));
        }
        if !(0.1..=60.0).contains(&self.timeout) {
            return Err(("timeout", format!("{} is out of range 0.1..=60 seconds", self.timeout)));
        }
        Ok(())
    }

    /// Whether `event` is one this webhook sends.
    pub fn wants(&self, event: &Event) -> bool {
        event.matches(&self.events, self.node.as_deref())
    }
}

/// The `X-Eyrie-Signature` value of `body` sent at UNIX time `t`.
pub fn signature(secret: &str, t: u64, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    format!("t={t},sha256={hex}")
}

/// How long to wait before try `n` (1 = the first retry): 0.5 s doubling, at most 30 s.
pub fn backoff(n: u32) -> Duration {
    Duration::from_millis(500u64.saturating_mul(1 << n.saturating_sub(1).min(16))).min(Duration::from_secs(30))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(url: &str) -> WebhookOptions {
        WebhookOptions {
            url: url.into(),
            ca: None,
            events: Vec::new(),
            node: None,
            secret: Some("s3cret".into()),
            queue: 256,
            retries: 5,
            timeout: 5.0,
        }
    }

    #[test]
    fn the_signature_is_hmac_sha256_of_time_and_body() {
        // RFC 4231 is for raw keys; this pins the exact bytes signed: "<t>.<body>".
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(b"s3cret").unwrap();
        mac.update(b"1700000000.{}");
        let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            signature("s3cret", 1_700_000_000, b"{}"),
            format!("t=1700000000,sha256={hex}")
        );
        assert_ne!(
            signature("s3cret", 1_700_000_001, b"{}"),
            signature("s3cret", 1_700_000_000, b"{}")
        );
    }

    #[test]
    fn retries_back_off_doubling_to_a_ceiling() {
        let waits: Vec<u64> = (1..=8).map(|n| backoff(n).as_millis() as u64).collect();
        assert_eq!(waits, [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000]);
        assert_eq!(backoff(u32::MAX), Duration::from_secs(30));
    }

    #[test]
    fn bad_keys_are_named_and_secrets_not_shown() {
        assert_eq!(options("ftp://x/y").check().unwrap_err().0, "url");
        assert_eq!(options("http:///y").check().unwrap_err().0, "url");
        assert!(options("http://127.0.0.1:9/hook").check().is_ok());
        let mut o = options("https://h/x");
        o.ca = Some("ca.pem".into());
        assert!(o.check().is_ok());
        o.url = "http://h/x".into();
        assert_eq!(o.check().unwrap_err().0, "ca");
        o.ca = None;
        o.events = vec!["everything".into()];
        assert_eq!(o.check().unwrap_err().0, "events");
        o.events.clear();
        o.queue = 0;
        assert_eq!(o.check().unwrap_err().0, "queue");
        assert!(!format!("{o:?}").contains("s3cret"));
    }

    #[test]
    fn filters_by_name_and_node_glob() {
        let mut o = options("http://h/x");
        o.events = vec!["node".into()];
        o.node = Some("cam*".into());
        let node = |n: &str| Event::Node {
            node: n.into(),
            kind: "testsrc".into(),
            state: "running".into(),
            error: None,
        };
        assert!(o.wants(&node("cam0")));
        assert!(!o.wants(&node("h264")));
        let reader = Event::Reader {
            stream: "cam0".into(),
            protocol: "rtsp".into(),
            user: None,
        };
        assert!(!o.wants(&reader));
    }
}

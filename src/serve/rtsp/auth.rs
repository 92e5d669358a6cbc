//! RTSP authentication against the configured users (RFC 2617 as RTSP
//! clients use it, RFC 2326 §D.2): `Basic` and `Digest` (MD5, with or
//! without `qop=auth`). Nonces are stateless: a time and a keyed digest of
//! it, accepted for [`NONCE_LIFETIME`]. Passwords are compared in constant
//! time and never leave this module.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use md5::{Digest, Md5};

/// The realm Eyrie's challenges name.
pub const REALM: &str = "eyrie";
/// How long a nonce is honoured.
pub const NONCE_LIFETIME: Duration = Duration::from_secs(600);

/// A user who may sign in.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    /// The user name.
    pub name: String,
    /// The password (never logged or shown).
    pub password: String,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("name", &self.name)
            .field("password", &"***")
            .finish()
    }
}

/// Checks credentials; one per server.
pub struct Authenticator {
    users: Vec<User>,
    secret: [u8; 16],
}

fn hex_md5(parts: &[&[u8]]) -> String {
    let mut h = Md5::new();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            h.update(b":");
        }
        h.update(p);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The `key="value"` parameters of a Digest header.
fn digest_params(value: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = value;
    loop {
        rest = rest.trim_start_matches([' ', ',']);
        let Some(eq) = rest.find('=') else { break };
        let key = rest[..eq].trim().to_ascii_lowercase();
        rest = &rest[eq + 1..];
        let v = if let Some(q) = rest.strip_prefix('"') {
            let end = q.find('"').unwrap_or(q.len());
            let v = &q[..end];
            rest = q.get(end + 1..).unwrap_or("");
            v
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            let v = rest[..end].trim();
            rest = &rest[end..];
            v
        };
        out.push((key, v.to_owned()));
    }
    out
}

impl Authenticator {
    /// An authenticator of `users` (none: everyone may enter).
    pub fn new(users: Vec<User>) -> Authenticator {
        let mut secret = [0u8; 16];
        if getrandom::getrandom(&mut secret).is_err() {
            // No entropy source: a nonce key from the clock is still unguessable enough
            // for expiry checks, and passwords do not depend on it.
            let t = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos();
            secret = t.to_le_bytes();
        }
        Authenticator { users, secret }
    }

    /// True when users are configured (every request must then sign in).
    pub fn required(&self) -> bool {
        !self.users.is_empty()
    }

    fn nonce_at(&self, secs: u64) -> String {
        let stamp = format!("{secs:016x}");
        let key = hex_md5(&[&self.secret, stamp.as_bytes()]);
        format!("{stamp}{key}")
    }

    fn nonce_valid(&self, nonce: &str, now: SystemTime) -> bool {
        let Some(secs) = nonce.get(..16).and_then(|s| u64::from_str_radix(s, 16).ok()) else {
            return false;
        };
        let now = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        same(self.nonce_at(secs).as_bytes(), nonce.as_bytes())
            && now.saturating_sub(secs) <= NONCE_LIFETIME.as_secs()
            && secs <= now + 60
    }

    /// The `WWW-Authenticate` values of a 401 (Digest first, the stronger).
    pub fn challenges(&self, now: SystemTime) -> [String; 2] {
        let secs = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        [
            format!(
                "Digest realm=\"{REALM}\", nonce=\"{}\", algorithm=MD5",
                self.nonce_at(secs)
            ),
            format!("Basic realm=\"{REALM}\""),
        ]
    }

    /// The user an `Authorization` header signs in as, for a request with
    /// `method` and `url`; `None` when it is missing or wrong. A Digest
    /// answer counts only for the URL it was computed for.
    pub fn check(&self, authorization: Option<&str>, method: &str, url: &str, now: SystemTime) -> Option<&str> {
        let value = authorization?.trim();
        let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
        if scheme.eq_ignore_ascii_case("basic") {
            let decoded = STANDARD.decode(rest.trim()).ok()?;
            let text = String::from_utf8(decoded).ok()?;
            let (name, password) = text.split_once(':')?;
            let user = self.users.iter().find(|u| u.name == name)?;
            return same(user.password.as_bytes(), password.as_bytes()).then_some(user.name.as_str());
        }
        if !scheme.eq_ignore_ascii_case("digest") {
            return None;
        }
        let params = digest_params(rest);
        let get = |k: &str| params.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
        let (name, nonce, uri, response) = (get("username")?, get("nonce")?, get("uri")?, get("response")?);
        let path = |u: &str| super::message::split_url(u).map_or(u.to_owned(), |(_, _, p)| p.to_owned());
        if get("realm") != Some(REALM) || !self.nonce_valid(nonce, now) || (uri != url && path(uri) != path(url)) {
            return None;
        }
        let user = self.users.iter().find(|u| u.name == name)?;
        let ha1 = hex_md5(&[name.as_bytes(), REALM.as_bytes(), user.password.as_bytes()]);
        let ha2 = hex_md5(&[method.as_bytes(), uri.as_bytes()]);
        let expected = match get("qop") {
            Some(qop) => hex_md5(&[
                ha1.as_bytes(),
                nonce.as_bytes(),
                get("nc")?.as_bytes(),
                get("cnonce")?.as_bytes(),
                qop.as_bytes(),
                ha2.as_bytes(),
            ]),
            None => hex_md5(&[ha1.as_bytes(), nonce.as_bytes(), ha2.as_bytes()]),
        };
        same(expected.as_bytes(), response.to_ascii_lowercase().as_bytes()).then_some(user.name.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "rtsp://127.0.0.1:8554/cam0";

    fn auth() -> Authenticator {
        Authenticator::new(vec![User {
            name: "admin".into(),
            password: "hunter2".into(),
        }])
    }

    #[test]
    fn basic_and_digest_sign_in_and_wrong_ones_do_not() {
        let a = auth();
        let now = SystemTime::now();
        let basic = format!("Basic {}", STANDARD.encode("admin:hunter2"));
        assert_eq!(a.check(Some(&basic), "DESCRIBE", URL, now), Some("admin"));
        let wrong = format!("Basic {}", STANDARD.encode("admin:hunter3"));
        assert_eq!(a.check(Some(&wrong), "DESCRIBE", URL, now), None);
        assert_eq!(a.check(None, "DESCRIBE", URL, now), None);
        assert_eq!(a.check(Some("Basic !!!"), "DESCRIBE", URL, now), None);

        let challenge = &a.challenges(now)[0];
        let nonce = challenge.split("nonce=\"").nth(1).unwrap().split('"').next().unwrap();
        let uri = URL;
        let ha1 = hex_md5(&[b"admin", b"eyrie", b"hunter2"]);
        let ha2 = hex_md5(&[b"DESCRIBE", uri.as_bytes()]);
        let response = hex_md5(&[ha1.as_bytes(), nonce.as_bytes(), ha2.as_bytes()]);
        let header = format!(
            "Digest username=\"admin\", realm=\"eyrie\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{response}\""
        );
        assert_eq!(a.check(Some(&header), "DESCRIBE", URL, now), Some("admin"));
        // Another method, a stale or forged nonce, another realm: refused.
        assert_eq!(a.check(Some(&header), "PLAY", URL, now), None);
        // Replayed for another stream: refused.
        assert_eq!(
            a.check(Some(&header), "DESCRIBE", "rtsp://127.0.0.1:8554/cam1", now),
            None
        );
        assert_eq!(a.check(Some(&header), "DESCRIBE", URL, now + NONCE_LIFETIME * 2), None);
        let forged = header.replace(&nonce[16..], &"0".repeat(32));
        assert_eq!(a.check(Some(&forged), "DESCRIBE", URL, now), None);
        assert_eq!(a.check(Some(&header.replace("eyrie", "x")), "DESCRIBE", URL, now), None);
        // With qop=auth.
        let cnonce = "abc";
        let response = hex_md5(&[
            ha1.as_bytes(),
            nonce.as_bytes(),
            b"00000001",
            cnonce.as_bytes(),
            b"auth",
            ha2.as_bytes(),
        ]);
        let qop = format!(
            "Digest username=\"admin\", realm=\"eyrie\", nonce=\"{nonce}\", uri=\"{uri}\", qop=auth, nc=00000001, cnonce=\"{cnonce}\", response=\"{response}\""
        );
        assert_eq!(a.check(Some(&qop), "DESCRIBE", URL, now), Some("admin"));
        assert!(!format!("{:?}", a.users).contains("hunter2"));
    }
}

//! Who may sign in, on every listener (RTSP, HTTP and what comes): the
//! configured users with their roles and per-stream grants, and the ways
//! they prove who they are.
//!
//! - `Basic` (RFC 7617) against an argon2id hash (`password_hash`, what
//!   `eyrie passwd` prints) or a plain `password`. A verified hash is
//!   remembered for [`VERIFIED_FOR`] under a keyed digest of the pair, so a
//!   player that sends Basic with every request costs one argon2 run, not one
//!   per request.
//! - `Digest` (RFC 2617 as RTSP clients use it, RFC 2326 §D.2; MD5, with or
//!   without `qop=auth`) for users with a plain `password` only: Digest needs
//!   the password itself. Nonces are stateless: a time and a keyed digest of
//!   it, accepted for [`NONCE_LIFETIME`].
//! - `Bearer` tokens ([`Authenticator::issue`]): a JSON payload naming the
//!   user and its expiry, signed with HMAC-SHA256 (RFC 2104) under the
//!   server's key (kept in the media root, mode 0600, so tokens outlive a
//!   restart). A token carries no role: the user's role and grants are read
//!   at each use, so a removed user's tokens stop working.
//!
//! Failed attempts are counted per address and user name (tokens and
//! unreadable headers count under no name): after [`MAX_FAILURES`] within
//! [`FAILURE_WINDOW`] that address is refused for that name without
//! checking until the window ends, so a guesser is slowed to a crawl while
//! other users behind the same address still sign in. Passwords and tokens are compared in constant time and never
//! leave this module (nor appear in `Debug`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// The realm Eyrie's challenges name.
pub const REALM: &str = "eyrie";
/// How long a nonce is honoured.
pub const NONCE_LIFETIME: Duration = Duration::from_secs(600);
/// How long a verified password hash is remembered.
pub const VERIFIED_FOR: Duration = Duration::from_secs(300);
/// Failed attempts an address may make within [`FAILURE_WINDOW`].
pub const MAX_FAILURES: u32 = 10;
/// The window failed attempts are counted in.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// Addresses whose failures are remembered at most (the oldest are forgotten).
const FAILURE_TABLE: usize = 4096;
/// Verified passwords remembered at most.
const VERIFIED_TABLE: usize = 1024;
/// Password hashes verified at once at most.
pub const MAX_VERIFYING: usize = 2;

/// What a user may do. Each role may do what the ones before it may.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Watch and read (streams, nodes, recordings, stats) within its grants.
    #[default]
    Viewer,
    /// Also record, clip, snapshot, relink and change node properties.
    Operator,
    /// Everything: create and delete nodes, the configuration, users.
    Admin,
}

impl Role {
    /// Its name in config and responses.
    pub fn name(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

fn every_stream() -> Vec<String> {
    vec!["*".into()]
}

/// A user who may sign in (`[[server.users]]`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    /// The user name.
    pub name: String,
    /// The password in the clear (never logged or shown). Lets RTSP
    /// clients sign in with Digest; prefer `password_hash`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// An argon2id hash of the password in PHC form, as `eyrie passwd` prints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<String>,
    /// `viewer` (the default), `operator` or `admin`.
    #[serde(default)]
    pub role: Role,
    /// The streams and nodes the user may see and act on, as globs (`*`
    /// any run of characters, `?` one): `["cam*", "h264"]`. Default `["*"]`.
    #[serde(default = "every_stream")]
    pub streams: Vec<String>,
}

impl User {
    /// A user with a plain password, every grant, and `role`.
    pub fn with_password(name: &str, password: &str, role: Role) -> User {
        User {
            name: name.into(),
            password: Some(password.into()),
            password_hash: None,
            role,
            streams: every_stream(),
        }
    }

    /// Checks the user's keys beyond their types; the error names the key.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if self.name.is_empty() || self.name.contains(':') || self.name.chars().any(char::is_control) {
            return Err((
                "name",
                format!(
                    "`{}` is empty or has a colon or a control character",
                    self.name.escape_debug()
                ),
            ));
        }
        match (&self.password, &self.password_hash) {
            (Some(_), Some(_)) => Err((
                "password_hash",
                format!("user `{}` has both `password` and `password_hash`: keep one", self.name),
            )),
            (None, None) => Err((
                "password_hash",
                format!(
                    "user `{}` needs a `password_hash` (make one with `eyrie passwd`) or a `password`",
                    self.name
                ),
            )),
            (Some(p), None) if p.is_empty() => Err(("password", format!("user `{}` has an empty password", self.name))),
            (None, Some(h)) => match argon2::PasswordHash::new(h) {
                Ok(parsed) if parsed.algorithm.as_str() == "argon2id" => Ok(()),
                Ok(parsed) => Err((
                    "password_hash",
                    format!(
                        "user `{}`: the hash is {}, not argon2id (make one with `eyrie passwd`)",
                        self.name, parsed.algorithm
                    ),
                )),
                Err(e) => Err((
                    "password_hash",
                    format!(
                        "user `{}`: not a PHC hash ({e}); make one with `eyrie passwd`",
                        self.name
                    ),
                )),
            },
            (Some(_), None) => Ok(()),
        }
        .and_then(|()| self.check_grants())
    }

    fn check_grants(&self) -> Result<(), (&'static str, String)> {
        match self.streams.iter().find(|g| g.is_empty() || g.len() > 256) {
            Some(_) => Err((
                "streams",
                format!("user `{}`: a grant is empty or longer than 256 characters", self.name),
            )),
            None => Ok(()),
        }
    }
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("streams", &self.streams)
            .finish_non_exhaustive()
    }
}

/// An argon2id hash of `password` in PHC form, with a fresh salt (`eyrie passwd`).
pub fn hash_password(password: &str) -> Result<String, String> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let mut salt = [0u8; 16];
    getrandom::getrandom(&mut salt).map_err(|e| format!("no random source: {e}"))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// `*` matches any run of characters, `?` one; everything else itself.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    // The classic two-pointer match with one backtrack point: linear in practice.
    let (mut i, mut j, mut star, mut mark) = (0, 0, None, 0);
    while j < n.len() {
        if i < p.len() && (p[i] == '?' || p[i] == n[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some(i);
            mark = j;
            i += 1;
        } else if let Some(s) = star {
            i = s + 1;
            mark += 1;
            j = mark;
        } else {
            return false;
        }
    }
    p[i..].iter().all(|&c| c == '*')
}

/// Someone signed in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The user's name.
    pub name: String,
    /// Its role.
    pub role: Role,
    /// Its grants (globs over stream and node names).
    pub streams: Vec<String>,
}

impl Identity {
    /// Whether the grants cover stream or node `name`.
    pub fn may_see(&self, name: &str) -> bool {
        self.streams.iter().any(|g| glob_match(g, name))
    }

    /// Whether the grants cover every stream (`*`).
    pub fn sees_everything(&self) -> bool {
        self.streams.iter().any(|g| g.chars().all(|c| c == '*'))
    }

    fn of(user: &User) -> Identity {
        Identity {
            name: user.name.clone(),
            role: user.role,
            streams: user.streams.clone(),
        }
    }
}

/// Why a request did not sign in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// No credentials.
    Missing,
    /// Wrong or unknown credentials, or a forged token.
    Wrong,
    /// A token that was valid but has expired.
    Expired,
    /// Too many failures from this address lately, or too many sign-ins
    /// being checked at once: not checked.
    Throttled,
}

impl Refused {
    /// What a client is told (no detail that helps a guesser).
    pub fn message(self) -> &'static str {
        match self {
            Refused::Missing => "sign in first",
            Refused::Wrong => "wrong user name, password or token",
            Refused::Expired => "the token has expired: sign in again",
            Refused::Throttled => "too many failed or simultaneous sign-ins: try again in a while",
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Claims {
    /// The user.
    sub: String,
    /// Expiry, UNIX seconds.
    exp: u64,
    /// A long-lived API token's id: it signs in only while the id is live.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    jti: Option<String>,
    /// A sign-in token's credential version: a keyed digest of the user's
    /// password or hash when it was issued, so a changed password ends it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cv: Option<String>,
}

/// Whose guesses an address's are: an IPv4 address, or the /64 of an IPv6
/// one (one subscriber's prefix: moving within it is not a new guesser).
fn guesser(from: IpAddr) -> IpAddr {
    match from.to_canonical() {
        IpAddr::V6(v6) => {
            let mut octets = v6.octets();
            octets[8..].fill(0);
            IpAddr::V6(octets.into())
        }
        v4 => v4,
    }
}

/// Checks credentials and issues tokens; one per server, shared by every listener.
pub struct Authenticator {
    users: Vec<User>,
    /// Signs tokens and nonces, and keys the verified-password memory.
    key: [u8; 32],
    verified: Mutex<HashMap<[u8; 32], Instant>>,
    failures: Mutex<HashMap<(IpAddr, String), (u32, Instant)>>,
    /// The ids of the API tokens not revoked.
    live: std::sync::RwLock<std::collections::HashSet<String>>,
    /// Password hashes being verified now.
    verifying: std::sync::atomic::AtomicUsize,
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

fn unix(now: SystemTime) -> u64 {
    now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

/// A fresh random key (the clock's nanoseconds where no random source exists).
pub fn random_key() -> [u8; 32] {
    let mut key = [0u8; 32];
    if getrandom::getrandom(&mut key).is_err() {
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        key[..16].copy_from_slice(&t.to_le_bytes());
    }
    key
}

impl Authenticator {
    /// An authenticator of `users` (none: everyone may enter) signing with `key`.
    pub fn new(users: Vec<User>, key: [u8; 32]) -> Authenticator {
        Authenticator {
            users,
            key,
            verified: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            live: Default::default(),
            verifying: Default::default(),
        }
    }

    /// True when users are configured (every request must then sign in).
    pub fn required(&self) -> bool {
        !self.users.is_empty()
    }

    /// The identity of user `name`, when it is configured.
    pub fn identity(&self, name: &str) -> Option<Identity> {
        self.users.iter().find(|u| u.name == name).map(Identity::of)
    }

    fn mac(&self, label: &[u8], data: &[u8]) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(label);
        mac.update(&[0]);
        mac.update(data);
        mac.finalize().into_bytes().into()
    }

    fn nonce_at(&self, secs: u64) -> String {
        let stamp = format!("{secs:016x}");
        let key: String = self.mac(b"nonce", stamp.as_bytes())[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("{stamp}{key}")
    }

    fn nonce_valid(&self, nonce: &str, now: SystemTime) -> bool {
        let Some(secs) = nonce.get(..16).and_then(|s| u64::from_str_radix(s, 16).ok()) else {
            return false;
        };
        let now = unix(now);
        same(self.nonce_at(secs).as_bytes(), nonce.as_bytes())
            && now.saturating_sub(secs) <= NONCE_LIFETIME.as_secs()
            && secs <= now + 60
    }

    /// The `WWW-Authenticate` values of a 401: Digest (when a user can use
    /// it) first, the stronger, then Basic and Bearer as `bearer` asks.
    pub fn challenges(&self, now: SystemTime, bearer: bool) -> Vec<String> {
        let mut out = Vec::new();
        if self.users.iter().any(|u| u.password.is_some()) {
            out.push(format!(
                "Digest realm=\"{REALM}\", nonce=\"{}\", algorithm=MD5",
                self.nonce_at(unix(now))
            ));
        }
        out.push(format!("Basic realm=\"{REALM}\""));
        if bearer {
            out.push(format!("Bearer realm=\"{REALM}\""));
        }
        out
    }

    /// Whether `password` is `user`'s (`Throttled`: too many hashes being checked now).
    fn password_ok(&self, user: &User, password: &str) -> Result<bool, Refused> {
        if let Some(plain) = &user.password {
            return Ok(same(plain.as_bytes(), password.as_bytes()));
        }
        let Some(hash) = &user.password_hash else {
            return Ok(false);
        };
        let mut pair = user.name.as_bytes().to_vec();
        pair.push(0);
        pair.extend_from_slice(password.as_bytes());
        let memo = self.mac(b"verified", &pair);
        let now = Instant::now();
        {
            let verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
            if verified
                .get(&memo)
                .is_some_and(|at| now.duration_since(*at) < VERIFIED_FOR)
            {
                return Ok(true);
            }
        }
        let ok = self.verify_hash(hash, password)?;
        if ok {
            let mut verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
            verified.retain(|_, at| now.duration_since(*at) < VERIFIED_FOR);
            if verified.len() < VERIFIED_TABLE {
                verified.insert(memo, now);
            }
        }
        Ok(ok)
    }

    /// Verifies `password` against an argon2 `hash`, at most
    /// [`MAX_VERIFYING`] at once (more are refused, not queued: a flood of
    /// guesses cannot take every CPU; the caller is told to try later).
    fn verify_hash(&self, hash: &str, password: &str) -> Result<bool, Refused> {
        use argon2::PasswordVerifier;
        use std::sync::atomic::Ordering;
        if self.verifying.fetch_add(1, Ordering::AcqRel) >= MAX_VERIFYING {
            self.verifying.fetch_sub(1, Ordering::AcqRel);
            return Err(Refused::Throttled);
        }
        let ok = argon2::PasswordHash::new(hash).is_ok_and(|parsed| {
            argon2::Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        });
        self.verifying.fetch_sub(1, Ordering::AcqRel);
        Ok(ok)
    }

    /// The user `name` with `password` (a login form's), or why not. An
    /// unknown name costs what a known one does (a hash is verified all the
    /// same), so timing tells no one which names exist.
    pub fn login(&self, name: &str, password: &str, from: IpAddr) -> Result<Identity, Refused> {
        self.counted(from, name, || match self.users.iter().find(|u| u.name == name) {
            Some(user) => match self.password_ok(user, password)? {
                true => Ok(Identity::of(user)),
                false => Err(Refused::Wrong),
            },
            None => {
                if let Some(hash) = self.users.iter().find_map(|u| u.password_hash.as_deref()) {
                    self.verify_hash(hash, password)?;
                }
                Err(Refused::Wrong)
            }
        })
    }

    /// A token for user `name`, valid for `ttl` from `now`.
    pub fn issue(&self, name: &str, ttl: Duration, now: SystemTime) -> String {
        self.sign(Claims {
            sub: name.to_owned(),
            exp: unix(now) + ttl.as_secs().max(1),
            jti: None,
            cv: self.credential_version(name),
        })
    }

    /// The keyed digest of user `name`'s password or hash (tokens carry it).
    fn credential_version(&self, name: &str) -> Option<String> {
        let user = self.users.iter().find(|u| u.name == name)?;
        let secret = user.password_hash.as_deref().or(user.password.as_deref())?;
        Some(URL_SAFE_NO_PAD.encode(&self.mac(b"credential", secret.as_bytes())[..9]))
    }

    /// A long-lived API token `id` for user `name`: valid for `ttl` from
    /// `now` while `id` is live ([`Authenticator::allow_token`], until
    /// [`Authenticator::forget_token`]).
    pub fn issue_api(&self, name: &str, id: &str, ttl: Duration, now: SystemTime) -> String {
        self.sign(Claims {
            sub: name.to_owned(),
            exp: unix(now) + ttl.as_secs().max(1),
            jti: Some(id.to_owned()),
            cv: None,
        })
    }

    /// API token `id` signs in from now on (until it expires).
    pub fn allow_token(&self, id: &str) {
        self.live
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.to_owned());
    }

    /// API token `id` signs in no more.
    pub fn forget_token(&self, id: &str) {
        self.live.write().unwrap_or_else(|e| e.into_inner()).remove(id);
    }

    fn sign(&self, claims: Claims) -> String {
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).expect("claims serialize"));
        let signature = URL_SAFE_NO_PAD.encode(self.mac(b"token", payload.as_bytes()));
        format!("{payload}.{signature}")
    }

    fn token(&self, token: &str, now: SystemTime) -> Result<Identity, Refused> {
        let (payload, signature) = token.split_once('.').ok_or(Refused::Wrong)?;
        let expected = URL_SAFE_NO_PAD.encode(self.mac(b"token", payload.as_bytes()));
        if !same(expected.as_bytes(), signature.as_bytes()) {
            return Err(Refused::Wrong);
        }
        let claims: Claims = URL_SAFE_NO_PAD
            .decode(payload)
            .ok()
            .and_then(|json| serde_json::from_slice(&json).ok())
            .ok_or(Refused::Wrong)?;
        if claims.exp <= unix(now) {
            return Err(Refused::Expired);
        }
        if let Some(id) = &claims.jti
            && !self.live.read().unwrap_or_else(|e| e.into_inner()).contains(id)
        {
            return Err(Refused::Wrong);
        }
        if claims.cv.is_some() && claims.cv != self.credential_version(&claims.sub) {
            return Err(Refused::Wrong);
        }
        self.identity(&claims.sub).ok_or(Refused::Wrong)
    }

    /// Runs `check` unless `from` is throttled for `name`; counts its failure.
    fn counted(
        &self,
        from: IpAddr,
        name: &str,
        check: impl FnOnce() -> Result<Identity, Refused>,
    ) -> Result<Identity, Refused> {
        let now = Instant::now();
        // Unknown names are one guesser's all the same: they share one count.
        let known = self.users.iter().any(|u| u.name == name);
        let key = (guesser(from), if known { name.to_owned() } else { String::new() });
        {
            let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((count, since)) = failures.get(&key)
                && *count >= MAX_FAILURES
                && now.duration_since(*since) < FAILURE_WINDOW
            {
                return Err(Refused::Throttled);
            }
        }
        let result = check();
        if matches!(result, Err(Refused::Wrong)) {
            let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
            if failures.len() >= FAILURE_TABLE {
                failures.retain(|_, (_, since)| now.duration_since(*since) < FAILURE_WINDOW);
            }
            // A count still in its window is never forgotten to make room:
            // while the table is full of them, newcomers that fail are refused.
            if failures.len() >= FAILURE_TABLE && !failures.contains_key(&key) {
                return Err(Refused::Throttled);
            }
            let entry = failures.entry(key).or_insert((0, now));
            if now.duration_since(entry.1) >= FAILURE_WINDOW {
                *entry = (0, now);
            }
            entry.0 += 1;
        }
        result
    }

    /// Who an `Authorization` header signs in as, for a request from `from`
    /// with `method` and `url` (a Digest answer counts only for the URL it
    /// was computed for), or why not.
    pub fn check(
        &self,
        authorization: Option<&str>,
        method: &str,
        url: &str,
        from: IpAddr,
        now: SystemTime,
    ) -> Result<Identity, Refused> {
        let value = authorization.map(str::trim).ok_or(Refused::Missing)?;
        let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
        if scheme.eq_ignore_ascii_case("bearer") {
            // A token this server signed needs no guessing: never throttled.
            return match self.token(rest.trim(), now) {
                Err(Refused::Wrong) => self.counted(from, "", || Err(Refused::Wrong)),
                other => other,
            };
        }
        if scheme.eq_ignore_ascii_case("basic") {
            let pair = STANDARD
                .decode(rest.trim())
                .ok()
                .and_then(|d| String::from_utf8(d).ok());
            let Some((name, password)) = pair.as_deref().and_then(|p| p.split_once(':')) else {
                return self.counted(from, "", || Err(Refused::Wrong));
            };
            return self.login(name, password, from);
        }
        if scheme.eq_ignore_ascii_case("digest") {
            let params = digest_params(rest);
            let name = params
                .iter()
                .find(|(k, _)| k == "username")
                .map_or("", |(_, v)| v.as_str());
            return self.counted(from, name, || {
                self.digest(&params, method, url, now).ok_or(Refused::Wrong)
            });
        }
        self.counted(from, "", || Err(Refused::Wrong))
    }

    fn digest(&self, params: &[(String, String)], method: &str, url: &str, now: SystemTime) -> Option<Identity> {
        let get = |k: &str| params.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
        let (name, nonce, uri, response) = (get("username")?, get("nonce")?, get("uri")?, get("response")?);
        let path = |u: &str| super::rtsp::message::split_url(u).map_or(u.to_owned(), |(_, _, p)| p.to_owned());
        if get("realm") != Some(REALM) || !self.nonce_valid(nonce, now) || (uri != url && path(uri) != path(url)) {
            return None;
        }
        let user = self.users.iter().find(|u| u.name == name)?;
        let password = user.password.as_ref()?;
        let ha1 = hex_md5(&[name.as_bytes(), REALM.as_bytes(), password.as_bytes()]);
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
        same(expected.as_bytes(), response.to_ascii_lowercase().as_bytes()).then(|| Identity::of(user))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "rtsp://127.0.0.1:8554/cam0";
    const HERE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    fn auth() -> Authenticator {
        Authenticator::new(vec![User::with_password("admin", "hunter2", Role::Admin)], random_key())
    }

    fn name(r: Result<Identity, Refused>) -> Result<String, Refused> {
        r.map(|i| i.name)
    }

    #[test]
    fn basic_and_digest_sign_in_and_wrong_ones_do_not() {
        let a = auth();
        let now = SystemTime::now();
        let check = |h: Option<&str>, method: &str, url: &str, now| name(a.check(h, method, url, HERE, now));
        let basic = format!("Basic {}", STANDARD.encode("admin:hunter2"));
        assert_eq!(check(Some(&basic), "DESCRIBE", URL, now), Ok("admin".into()));
        let wrong = format!("Basic {}", STANDARD.encode("admin:hunter3"));
        assert_eq!(check(Some(&wrong), "DESCRIBE", URL, now), Err(Refused::Wrong));
        assert_eq!(check(None, "DESCRIBE", URL, now), Err(Refused::Missing));
        assert_eq!(check(Some("Basic !!!"), "DESCRIBE", URL, now), Err(Refused::Wrong));

        let challenge = &a.challenges(now, false)[0];
        let nonce = challenge.split("nonce=\"").nth(1).unwrap().split('"').next().unwrap();
        let uri = URL;
        let ha1 = hex_md5(&[b"admin", b"eyrie", b"hunter2"]);
        let ha2 = hex_md5(&[b"DESCRIBE", uri.as_bytes()]);
        let response = hex_md5(&[ha1.as_bytes(), nonce.as_bytes(), ha2.as_bytes()]);
        let header = format!(
            "Digest username=\"admin\", realm=\"eyrie\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{response}\""
        );
        assert_eq!(check(Some(&header), "DESCRIBE", URL, now), Ok("admin".into()));
        // Another method, a stale or forged nonce, another realm: refused.
        assert!(check(Some(&header), "PLAY", URL, now).is_err());
        // Replayed for another stream: refused.
        assert!(check(Some(&header), "DESCRIBE", "rtsp://127.0.0.1:8554/cam1", now).is_err());
        assert!(check(Some(&header), "DESCRIBE", URL, now + NONCE_LIFETIME * 2).is_err());
        let forged = header.replace(&nonce[16..], &"0".repeat(32));
        assert!(check(Some(&forged), "DESCRIBE", URL, now).is_err());
        assert!(check(Some(&header.replace("eyrie", "x")), "DESCRIBE", URL, now).is_err());
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
        assert_eq!(check(Some(&qop), "DESCRIBE", URL, now), Ok("admin".into()));
        assert!(!format!("{:?}", a.users).contains("hunter2"));
    }

    #[test]
    fn hashed_passwords_sign_in_with_basic_only() {
        let hash = hash_password("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        let user = User {
            password: None,
            password_hash: Some(hash),
            ..User::with_password("ops", "x", Role::Operator)
        };
        user.check().unwrap();
        let a = Authenticator::new(vec![user], random_key());
        let now = SystemTime::now();
        let basic = |pw: &str| format!("Basic {}", STANDARD.encode(format!("ops:{pw}")));
        for _ in 0..2 {
            // The second time from memory.
            let who = a.check(Some(&basic("correct horse")), "GET", "/", HERE, now).unwrap();
            assert_eq!((who.name.as_str(), who.role), ("ops", Role::Operator));
        }
        assert_eq!(
            name(a.check(Some(&basic("wrong horse")), "GET", "/", HERE, now)),
            Err(Refused::Wrong)
        );
        // No Digest challenge: nobody could answer it.
        assert!(a.challenges(now, true).iter().all(|c| !c.starts_with("Digest")));
    }

    #[test]
    fn users_missing_or_doubling_a_password_are_refused_naming_the_key() {
        let mut u = User::with_password("a", "b", Role::Viewer);
        u.password_hash = Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaA".into());
        assert_eq!(u.check().unwrap_err().0, "password_hash");
        u.password = None;
        u.password_hash = Some("$2b$12$notargon".into());
        assert_eq!(u.check().unwrap_err().0, "password_hash");
        u.password_hash = None;
        assert!(u.check().unwrap_err().1.contains("eyrie passwd"));
        let mut u = User::with_password("a:b", "c", Role::Viewer);
        assert_eq!(u.check().unwrap_err().0, "name");
        u.name = "a".into();
        u.streams = vec![String::new()];
        assert_eq!(u.check().unwrap_err().0, "streams");
    }

    #[test]
    fn tokens_name_their_user_until_they_expire_and_cannot_be_forged() {
        let a = auth();
        let now = SystemTime::now();
        let token = a.issue("admin", Duration::from_secs(60), now);
        let bearer = |t: &str, at| name(a.check(Some(&format!("Bearer {t}")), "GET", "/", HERE, at));
        assert_eq!(bearer(&token, now), Ok("admin".into()));
        assert_eq!(bearer(&token, now + Duration::from_secs(61)), Err(Refused::Expired));
        // Another key's token, a changed payload, garbage: wrong.
        let other = Authenticator::new(vec![User::with_password("admin", "x", Role::Admin)], random_key());
        assert_eq!(
            bearer(&other.issue("admin", Duration::from_secs(60), now), now),
            Err(Refused::Wrong)
        );
        let (payload, sig) = token.split_once('.').unwrap();
        let forged = URL_SAFE_NO_PAD.encode(br#"{"sub":"admin","exp":99999999999}"#);
        assert_ne!(forged, payload);
        assert_eq!(bearer(&format!("{forged}.{sig}"), now), Err(Refused::Wrong));
        assert_eq!(bearer("x", now), Err(Refused::Wrong));
        // An API token: only while its id is live.
        let api = a.issue_api("admin", "t1", Duration::from_secs(60), now);
        assert_eq!(bearer(&api, now), Err(Refused::Wrong));
        a.allow_token("t1");
        assert_eq!(bearer(&api, now), Ok("admin".into()));
        a.forget_token("t1");
        assert_eq!(bearer(&api, now), Err(Refused::Wrong));
        // A sign-in token ends with a changed password.
        let changed = Authenticator::new(vec![User::with_password("admin", "new", Role::Admin)], a.key);
        assert_eq!(
            name(changed.check(Some(&format!("Bearer {token}")), "GET", "/", HERE, now)),
            Err(Refused::Wrong)
        );
        // A token of a user no longer configured: wrong.
        let b = Authenticator::new(Vec::new(), a.key);
        assert_eq!(
            name(b.check(Some(&format!("Bearer {token}")), "GET", "/", HERE, now)),
            Err(Refused::Wrong)
        );
    }

    #[test]
    fn an_address_that_keeps_failing_is_throttled_and_others_are_not() {
        let a = auth();
        let now = SystemTime::now();
        let wrong = format!("Basic {}", STANDARD.encode("admin:nope"));
        let right = format!("Basic {}", STANDARD.encode("admin:hunter2"));
        let bad: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..MAX_FAILURES {
            assert_eq!(name(a.check(Some(&wrong), "GET", "/", bad, now)), Err(Refused::Wrong));
        }
        assert_eq!(
            name(a.check(Some(&right), "GET", "/", bad, now)),
            Err(Refused::Throttled)
        );
        assert_eq!(name(a.login("admin", "hunter2", bad)), Err(Refused::Throttled));
        // Another address, or a token from the same one: not throttled.
        assert_eq!(name(a.check(Some(&right), "GET", "/", HERE, now)), Ok("admin".into()));
        let token = format!("Bearer {}", a.issue("admin", Duration::from_secs(60), now));
        assert_eq!(name(a.check(Some(&token), "GET", "/", bad, now)), Ok("admin".into()));
        // An IPv6 guesser's /64 is one guesser; the next /64 is another.
        for i in 0..MAX_FAILURES {
            let from: IpAddr = format!("2001:db8:1:2::{:x}", i + 1).parse().unwrap();
            assert_eq!(name(a.check(Some(&wrong), "GET", "/", from, now)), Err(Refused::Wrong));
        }
        let same: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        assert_eq!(
            name(a.check(Some(&right), "GET", "/", same, now)),
            Err(Refused::Throttled)
        );
        let next: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(name(a.check(Some(&right), "GET", "/", next, now)), Ok("admin".into()));
        // An IPv4 address seen as IPv4-mapped IPv6 is the same guesser.
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(
            name(a.check(Some(&right), "GET", "/", mapped, now)),
            Err(Refused::Throttled)
        );
    }

    #[test]
    fn globs_match_as_documented() {
        for (p, n, m) in [
            ("*", "cam0", true),
            ("cam*", "cam0", true),
            ("cam*", "h264", false),
            ("cam?", "cam10", false),
            ("c*m*1", "cam_cam1", true),
            ("h264", "h264", true),
            ("h264", "h264b", false),
            ("", "", true),
            ("**", "x", true),
        ] {
            assert_eq!(glob_match(p, n), m, "{p} vs {n}");
        }
    }
}

//! What the server keeps beyond its nodes: the config file it writes back
//! to and applies by difference, the audit log and API tokens (in
//! `eyrie-control.sqlite`), and the key tokens are signed with.

use std::time::Duration;

use serde::Serialize;

use super::{ErrorKind, Server, ServerError};
use crate::config::{Config, NodeProps};
use crate::control::store::{AuditEntry, TokenEntry};
use crate::serve::auth::random_key;

impl Server {
    /// From now on, every change to the nodes (added, removed, replaced,
    /// relinked, an encoder changed) is written back to the config file at
    /// `path` — its `[server]` as the file says it (command-line overrides
    /// are not written), the nodes as they run — atomically (a temporary
    /// file renamed over it, mode 0600: it may hold passwords), the previous
    /// version kept as `<path>.prev`; so a restart with `-c path` resumes
    /// the same pipeline. The file is read now for its `[server]`. `None`
    /// stops it.
    pub fn persist_to(&self, path: Option<std::path::PathBuf>) -> Result<(), ServerError> {
        let file = match path {
            Some(path) => {
                let server = Config::from_file(&path)?.server;
                Some((path, server))
            }
            None => None,
        };
        *self.inner.config_file.lock().unwrap_or_else(|e| e.into_inner()) = file;
        Ok(())
    }

    /// Writes the configuration back, when [`Server::persist_to`] says where;
    /// a failure is logged (the change itself has been made).
    pub(super) fn persist(&self) {
        if self.inner.applying.load(std::sync::atomic::Ordering::Acquire) {
            return;
        }
        let file = self.inner.config_file.lock().unwrap_or_else(|e| e.into_inner());
        let Some((path, remembered)) = file.as_ref() else {
            return;
        };
        // `[server]` as the file says it now (edited by hand meanwhile, perhaps).
        let server = Config::from_file(path).map_or_else(|_| remembered.clone(), |c| c.server);
        let config = Config {
            server,
            nodes: self.config().nodes,
        };
        match write_config(path, &config) {
            Ok(()) => tracing::debug!(path = %path.display(), "configuration written back"),
            Err(e) => tracing::error!(path = %path.display(), "cannot write the configuration back: {e}"),
        }
    }

    /// Applies `next` by difference: new nodes are added (producers first),
    /// nodes whose description changed are relinked, changed live (an
    /// encoder's rate, keyframe interval, profile, level, quality) or
    /// restarted with the new one, and nodes it no longer has are removed
    /// (consumers first). `[server]` cannot change while running: a
    /// difference there is refused and nothing is applied.
    pub fn apply(&self, next: Config) -> Result<Applied, ServerError> {
        next.validate()?;
        // One apply at a time (SIGHUP and the API may come together).
        let _one = self.inner.apply_lock.lock().unwrap_or_else(|e| e.into_inner());
        let now = self.config();
        // Against the file's own [server] when there is one (the running one
        // may carry command-line overrides).
        let server = match &*self.inner.config_file.lock().unwrap_or_else(|e| e.into_inner()) {
            Some((_, server)) => server.clone(),
            None => now.server.clone(),
        };
        if next.server != server {
            let keys = changed_keys(&server, &next.server);
            return Err(ServerError::NeedsRestart(format!("[server] ({keys})")));
        }
        // While applying, the steps write nothing back: the file is the
        // source (and, when a step fails, stays as it was edited, for the
        // user to fix and apply again).
        let certificate = self.reload_certificate()?;
        self.inner.applying.store(true, std::sync::atomic::Ordering::Release);
        let result = self
            .apply_nodes(&now, &next)
            .map(|applied| Applied { certificate, ..applied });
        self.inner.applying.store(false, std::sync::atomic::Ordering::Release);
        result
    }

    fn apply_nodes(&self, now: &Config, next: &Config) -> Result<Applied, ServerError> {
        let mut applied = Applied::default();
        let old = |name: &str| now.nodes.iter().find(|n| n.name == name);
        for i in next.flow_order() {
            let spec = &next.nodes[i];
            if old(&spec.name).is_none() {
                self.add_node(spec.clone())?;
                applied.added.push(spec.name.clone());
            }
        }
        for spec in &next.nodes {
            let Some(was) = old(&spec.name).filter(|was| *was != spec) else {
                continue;
            };
            let live = match (&was.props, &spec.props) {
                (a, b) if a == b => Some(Vec::new()),
                (NodeProps::Encode(a), NodeProps::Encode(b)) => a.live_changes(b),
                _ => None,
            };
            let Some(changes) = live else {
                self.replace_node(spec.clone())?;
                applied.restarted.push(spec.name.clone());
                continue;
            };
            if let (Some(stream), true) = (&spec.listen_to, was.listen_to != spec.listen_to) {
                self.relink(&spec.name, stream)?;
                applied.relinked.push(spec.name.clone());
            }
            if !changes.is_empty() {
                for change in changes {
                    self.change_encoder(&spec.name, change)?;
                }
                applied.changed.push(spec.name.clone());
            }
        }
        for i in now.flow_order().into_iter().rev() {
            let name = &now.nodes[i].name;
            if !next.nodes.iter().any(|n| &n.name == name) {
                self.remove_node(name)?;
                applied.removed.push(name.clone());
            }
        }
        // The nodes in the file's order, as a write-back will say them.
        self.registry()
            .config
            .nodes
            .sort_by_key(|n| next.nodes.iter().position(|m| m.name == n.name));
        tracing::info!(?applied, "configuration applied");
        Ok(applied)
    }

    /// Records a change in the audit log (`eyrie-control.sqlite` in the
    /// media root) and the log (target `eyrie::audit`): `user` did `action`
    /// to `target` (`detail`: the request, never a secret), ending `outcome`.
    pub fn audit(&self, user: &str, action: &str, target: &str, detail: &str, outcome: &str) {
        tracing::info!(target: "eyrie::audit", user, action, target, detail, outcome, "changed");
        if let Err(e) = self.inner.store.audit(user, action, target, detail, outcome) {
            tracing::error!("cannot write the audit log: {e}");
        }
    }

    /// The newest `limit` changes of the audit log (of `user` when given).
    pub fn audit_log(&self, limit: u32, user: Option<&str>) -> Result<Vec<AuditEntry>, ServerError> {
        self.inner.store.audit_log(limit, user).map_err(ServerError::storage)
    }

    /// A long-lived API token named `name` signing in as `user` for `ttl`,
    /// made by `by`: its entry and the token (shown this once).
    pub fn create_token(
        &self,
        name: &str,
        user: &str,
        ttl: Duration,
        by: &str,
    ) -> Result<(TokenEntry, String), ServerError> {
        let invalid = |message: String| ServerError::Invalid {
            node: "tokens".into(),
            message,
        };
        if self.inner.auth.identity(user).is_none() {
            return Err(invalid(format!("no user `{user}` is configured")));
        }
        if name.is_empty() || name.len() > 200 || name.chars().any(char::is_control) {
            return Err(invalid("a token's name is 1 to 200 printable characters".into()));
        }
        let id: String = crate::serve::auth::random_key()[..12]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let now = std::time::SystemTime::now();
        let since = now.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let entry = TokenEntry {
            id: id.clone(),
            name: name.to_owned(),
            user: user.to_owned(),
            created_by: by.to_owned(),
            created_ms: since.as_millis() as i64,
            expires_s: (since + ttl).as_secs() as i64,
        };
        self.inner.store.add_token(&entry).map_err(ServerError::storage)?;
        self.inner.auth.allow_token(&id);
        Ok((entry, self.inner.auth.issue_api(user, &id, ttl, now)))
    }

    /// The live API tokens (without their secrets).
    pub fn tokens(&self) -> Result<Vec<TokenEntry>, ServerError> {
        self.inner.store.tokens().map_err(ServerError::storage)
    }

    /// Revokes API token `id`: it signs in no more.
    pub fn revoke_token(&self, id: &str) -> Result<(), ServerError> {
        self.inner.auth.forget_token(id);
        match self.inner.store.revoke(id).map_err(ServerError::storage)? {
            true => Ok(()),
            false => Err(ServerError::Failed {
                node: "tokens".into(),
                kind: ErrorKind::NotFound,
                message: format!("no token `{id}`"),
            }),
        }
    }

    /// Applies the config file [`Server::persist_to`] names, by difference
    /// ([`Server::apply`]): what `SIGHUP` and `POST /api/v1/config/reload` do.
    pub fn reload(&self) -> Result<Applied, ServerError> {
        let file = self.inner.config_file.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let (path, _) = file.ok_or_else(|| {
            ServerError::NeedsRestart("nothing: the server was not started from a config file (-c FILE), so".into())
        })?;
        self.apply(Config::from_file(&path)?)
    }
}

/// The key tokens are signed with: `secret.key` in the media root, made on
/// first start (32 random bytes, mode 0600) so tokens outlive a restart.
pub(super) fn load_key(media_root: &std::path::Path) -> Result<[u8; 32], ServerError> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let path = media_root.join("secret.key");
    let fail = |what: &str, e: std::io::Error| ServerError::Storage {
        message: format!("cannot {what} the token key {}: {e}", path.display()),
        source: Some(Box::new(e)),
    };
    match std::fs::read(&path) {
        Ok(bytes) => {
            let mode = std::fs::metadata(&path)
                .map_err(|e| fail("read", e))?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                return Err(ServerError::storage(format!(
                    "the token key {} may be read by others (mode {:o}): chmod 600 it",
                    path.display(),
                    mode & 0o777
                )));
            }
            bytes.try_into().map_err(|_| {
                ServerError::storage(format!(
                    "the token key {} is not 32 bytes: delete it to make a new one (signed-in tokens end)",
                    path.display()
                ))
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(media_root).map_err(|e| fail("make the media root for", e))?;
            let key = random_key();
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .map_err(|e| fail("create", e))?;
            file.write_all(&key)
                .and_then(|()| file.sync_all())
                .map_err(|e| fail("write", e))?;
            tracing::info!(path = %path.display(), "made the token key");
            Ok(key)
        }
        Err(e) => Err(fail("read", e)),
    }
}

/// What [`Server::apply`] did, by node name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Applied {
    /// Nodes started.
    pub added: Vec<String>,
    /// Nodes stopped and removed.
    pub removed: Vec<String>,
    /// Nodes restarted with a new description.
    pub restarted: Vec<String>,
    /// Consumers relinked.
    pub relinked: Vec<String>,
    /// Encoders changed while running.
    pub changed: Vec<String>,
    /// The SHA-256 fingerprint of the TLS certificate, read again (with TLS on).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
}

/// The top-level keys of `[server]` that differ, comma-separated.
fn changed_keys(a: &crate::config::ServerConfig, b: &crate::config::ServerConfig) -> String {
    let (a, b) = (
        serde_json::to_value(a).unwrap_or_default(),
        serde_json::to_value(b).unwrap_or_default(),
    );
    let keys: Vec<&str> = a
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, v)| b.get(k.as_str()) != Some(v))
        .map(|(k, _)| k.as_str())
        .collect();
    keys.join(", ")
}

/// Writes `config` to `path` atomically, keeping the previous file as `<path>.prev`.
fn write_config(path: &std::path::Path, config: &Config) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let text = crate::capture::rtsp::with_secrets(|| toml::to_string(config))
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = path.with_file_name(format!(".{name}.tmp"));
    let prev = path.with_file_name(format!("{name}.prev"));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temp)?;
    file.write_all(
        b"# Written by eyrie: the running configuration (comments are not kept; the previous file is .prev).\n",
    )?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    if path.exists() {
        let _ = std::fs::remove_file(&prev);
        std::fs::hard_link(path, &prev)?;
    }
    std::fs::rename(&temp, path)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

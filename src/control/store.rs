//! What the control layer keeps in the media root
//! (`eyrie-control.sqlite`): the audit log of every change made through the
//! API (who, what, when, and how it ended) and the long-lived API tokens
//! (their ids, names and owners; never the tokens themselves, which are
//! signed and can be checked without a lookup — the table says only which
//! ids are still live, so revoking one ends it).

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, params};
use serde::Serialize;

/// The database's file name in the media root.
pub const FILE: &str = "eyrie-control.sqlite";
/// Audit entries kept at most (the oldest go first).
pub const AUDIT_KEPT: i64 = 100_000;

/// One change in the audit log.
#[derive(Clone, Debug, PartialEq, Serialize, schemars::JsonSchema)]
pub struct AuditEntry {
    /// Row id.
    pub id: i64,
    /// When, UNIX milliseconds.
    pub at_ms: i64,
    /// Who (a user name, or `-` when no users are configured).
    pub user: String,
    /// What: `create`, `delete`, `change`, `record start`, `clip`, `reload`,
    /// `token create`, `token revoke`…
    pub action: String,
    /// The node, token or file it was done to.
    pub target: String,
    /// The request's details (never a password or token).
    pub detail: String,
    /// `ok`, or why it failed.
    pub outcome: String,
}

/// A long-lived API token, as listed (its secret is shown once, at creation).
#[derive(Clone, Debug, PartialEq, Serialize, schemars::JsonSchema)]
pub struct TokenEntry {
    /// Its id (the token carries it).
    pub id: String,
    /// What it is for.
    pub name: String,
    /// The user it signs in as.
    pub user: String,
    /// Who made it.
    pub created_by: String,
    /// When, UNIX milliseconds.
    pub created_ms: i64,
    /// When it expires, UNIX seconds.
    pub expires_s: i64,
}

/// The control database.
pub struct Store {
    conn: Mutex<Connection>,
    path: PathBuf,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Store {
    /// Opens (or makes) the database in `media_root`.
    pub fn open(media_root: &Path) -> Result<Store, String> {
        let path = media_root.join(FILE);
        let fail = |e: rusqlite::Error| format!("{}: {e}", path.display());
        std::fs::create_dir_all(media_root).map_err(|e| format!("{}: {e}", media_root.display()))?;
        let conn = Connection::open(&path).map_err(fail)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             CREATE TABLE IF NOT EXISTS audit (
                 id INTEGER PRIMARY KEY, at_ms INTEGER NOT NULL, user TEXT NOT NULL,
                 action TEXT NOT NULL, target TEXT NOT NULL, detail TEXT NOT NULL, outcome TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS tokens (
                 id TEXT PRIMARY KEY, name TEXT NOT NULL, user TEXT NOT NULL, created_by TEXT NOT NULL,
                 created_ms INTEGER NOT NULL, expires_s INTEGER NOT NULL);",
        )
        .map_err(fail)?;
        Ok(Store {
            conn: Mutex::new(conn),
            path,
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn fail(&self, e: rusqlite::Error) -> String {
        format!("{}: {e}", self.path.display())
    }

    /// Records a change.
    pub fn audit(&self, user: &str, action: &str, target: &str, detail: &str, outcome: &str) -> Result<(), String> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO audit (at_ms, user, action, target, detail, outcome) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![now_ms(), user, action, target, detail, outcome],
        )
        .and_then(|_| {
            conn.execute(
                "DELETE FROM audit WHERE id <= (SELECT MAX(id) FROM audit) - ?1",
                params![AUDIT_KEPT],
            )
        })
        .map(|_| ())
        .map_err(|e| self.fail(e))
    }

    /// The newest `limit` changes, newest first (of `user` when given).
    pub fn audit_log(&self, limit: u32, user: Option<&str>) -> Result<Vec<AuditEntry>, String> {
        let conn = self.conn();
        let mut statement = conn
            .prepare(
                "SELECT id, at_ms, user, action, target, detail, outcome FROM audit
                 WHERE ?1 IS NULL OR user = ?1 ORDER BY id DESC LIMIT ?2",
            )
            .map_err(|e| self.fail(e))?;
        let rows = statement
            .query_map(params![user, limit], |r| {
                Ok(AuditEntry {
                    id: r.get(0)?,
                    at_ms: r.get(1)?,
                    user: r.get(2)?,
                    action: r.get(3)?,
                    target: r.get(4)?,
                    detail: r.get(5)?,
                    outcome: r.get(6)?,
                })
            })
            .map_err(|e| self.fail(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.fail(e))
    }

    /// Records a new API token.
    pub fn add_token(&self, token: &TokenEntry) -> Result<(), String> {
        self.conn()
            .execute(
                "INSERT INTO tokens (id, name, user, created_by, created_ms, expires_s) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![token.id, token.name, token.user, token.created_by, token.created_ms, token.expires_s],
            )
            .map(|_| ())
            .map_err(|e| self.fail(e))
    }

    /// Forgets token `id` (it signs in no more); false when there was none.
    pub fn revoke(&self, id: &str) -> Result<bool, String> {
        self.conn()
            .execute("DELETE FROM tokens WHERE id = ?1", params![id])
            .map(|n| n > 0)
            .map_err(|e| self.fail(e))
    }

    /// The live API tokens, newest first.
    pub fn tokens(&self) -> Result<Vec<TokenEntry>, String> {
        let conn = self.conn();
        let mut statement = conn
            .prepare("SELECT id, name, user, created_by, created_ms, expires_s FROM tokens ORDER BY created_ms DESC")
            .map_err(|e| self.fail(e))?;
        let rows = statement
            .query_map([], |r| {
                Ok(TokenEntry {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    user: r.get(2)?,
                    created_by: r.get(3)?,
                    created_ms: r.get(4)?,
                    expires_s: r.get(5)?,
                })
            })
            .map_err(|e| self.fail(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.fail(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_logged_newest_first_and_tokens_revoked() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.audit("alice", "create", "cam2", "{}", "ok").unwrap();
        store
            .audit("bob", "delete", "cam2", "", "node `cam2` feeds `enc`")
            .unwrap();
        let log = store.audit_log(10, None).unwrap();
        assert_eq!(
            log.iter().map(|e| e.user.as_str()).collect::<Vec<_>>(),
            ["bob", "alice"]
        );
        assert_eq!(store.audit_log(10, Some("alice")).unwrap().len(), 1);
        let token = TokenEntry {
            id: "t1".into(),
            name: "prometheus".into(),
            user: "ops".into(),
            created_by: "alice".into(),
            created_ms: 1,
            expires_s: 2,
        };
        store.add_token(&token).unwrap();
        // Reopened: still there.
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.tokens().unwrap(), [token]);
        assert!(store.revoke("t1").unwrap());
        assert!(!store.revoke("t1").unwrap());
        assert!(store.tokens().unwrap().is_empty());
    }
}

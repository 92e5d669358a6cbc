//! The recordings index: one SQLite database in the media root listing every
//! recording, event clip and snapshot (camera, kind, start and end UTC, path,
//! size, frames, trigger).
//!
//! A row is added *before* its file is created (with no end) and completed
//! once the file is closed, so after a crash every file being written has a
//! row saying so: [`Index::open`] repairs those files (cut after their last
//! whole fragment, see [`super::recover`]) and completes their rows. A file
//! with no row (the database was lost) is added by scanning the media root;
//! a missing or damaged database is set aside and rebuilt the same way.
//!
//! Rebuilding infers a file's kind and camera from its path: under
//! `recordings/`, `events/` or `snapshots/`, the next directory is the
//! camera; elsewhere the first directory is the camera of a continuous
//! recording (the layout `eyrie record` writes).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use std::time::SystemTime;

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use super::name::{from_unix_ms, rfc3339, unix_ms};
use super::recover;
use super::root::MediaRoot;

/// The database's file name in the media root.
pub const FILE: &str = "eyrie-index.sqlite";
const SCHEMA_VERSION: i64 = 1;

/// What a recording is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// From a `record` node.
    Continuous,
    /// A smart-record clip.
    Event,
    /// A JPEG snapshot.
    Snapshot,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Continuous => "continuous",
            Kind::Event => "event",
            Kind::Snapshot => "snapshot",
        }
    }

    fn parse(s: &str) -> Kind {
        match s {
            "event" => Kind::Event,
            "snapshot" => Kind::Snapshot,
            _ => Kind::Continuous,
        }
    }
}

/// One row of the index.
#[derive(Clone, Debug, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Entry {
    /// Row id.
    pub id: i64,
    /// The camera.
    pub camera: String,
    /// What it is.
    pub kind: Kind,
    /// UTC time of its first frame.
    #[serde(serialize_with = "utc")]
    #[schemars(with = "String")]
    pub start: SystemTime,
    /// UTC time after its last frame; `None` while it is being written.
    #[serde(serialize_with = "utc_opt")]
    #[schemars(with = "Option<String>")]
    pub end: Option<SystemTime>,
    /// Path relative to the media root.
    pub path: String,
    /// Bytes.
    pub size: u64,
    /// Video frames.
    pub frames: u64,
    /// What started it (event clips and snapshots).
    pub trigger: Option<String>,
}

fn utc<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339(*t))
}

fn utc_opt<S: serde::Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => utc(t, s),
        None => s.serialize_none(),
    }
}

/// An error of the index, naming the database.
#[derive(Debug, thiserror::Error)]
#[error("recordings index {path}: {message}")]
pub struct IndexError {
    /// The database file.
    pub path: PathBuf,
    /// What went wrong.
    pub message: String,
}

/// What [`Index::open`] found and mended.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Recovery {
    /// Files that were being written, cut after their last whole part and completed.
    pub repaired: Vec<String>,
    /// Files found without a row, now listed.
    pub adopted: Vec<String>,
    /// Rows whose file was gone, or held no whole frame (file removed), dropped.
    pub dropped: Vec<String>,
    /// The damaged database set aside, if there was one.
    pub damaged: Option<String>,
}

/// Limits on what a set of recordings may keep; the oldest finished files go first.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    /// Delete recordings that ended more than this many seconds ago.
    pub max_age: Option<f64>,
    /// Delete the oldest recordings while together they exceed this many bytes.
    pub max_bytes: Option<u64>,
}

/// The recordings index of a media root. Cheap to clone; clones share the database.
#[derive(Clone)]
pub struct Index {
    conn: Arc<Mutex<Connection>>,
    root: MediaRoot,
    path: PathBuf,
}

/// The columns [`entry`] reads, in its order.
const COLUMNS: &str = "id, camera, kind, start_ms, end_ms, path, size, frames, trigger";

/// One row of [`COLUMNS`].
fn entry(r: &rusqlite::Row<'_>) -> rusqlite::Result<Entry> {
    Ok(Entry {
        id: r.get(0)?,
        camera: r.get(1)?,
        kind: Kind::parse(&r.get::<_, String>(2)?),
        start: from_unix_ms(r.get(3)?),
        end: r.get::<_, Option<i64>>(4)?.map(from_unix_ms),
        path: r.get(5)?,
        size: r.get::<_, i64>(6)? as u64,
        frames: r.get::<_, i64>(7)? as u64,
        trigger: r.get(8)?,
    })
}

impl Index {
    /// Opens the index of `root` (creating, or rebuilding a damaged one) and
    /// recovers what a crash left: see the module docs.
    pub fn open(root: &MediaRoot) -> Result<(Index, Recovery), IndexError> {
        let path = root.path().join(FILE);
        let mut recovery = Recovery::default();
        let conn = match connect(&path) {
            Ok(c) => c,
            Err(why) => {
                let aside = format!("{FILE}.damaged-{}", unix_ms(SystemTime::now()));
                tracing::warn!(
                    "recordings index {} is damaged ({why}); set aside as {aside}, rebuilding",
                    path.display()
                );
                for ext in ["", "-wal", "-shm"] {
                    let from = root.path().join(format!("{FILE}{ext}"));
                    if from.exists() {
                        std::fs::rename(&from, root.path().join(format!("{aside}{ext}"))).map_err(|e| IndexError {
                            path: path.clone(),
                            message: format!("cannot set the damaged database aside: {e}"),
                        })?;
                    }
                }
                recovery.damaged = Some(aside);
                connect(&path).map_err(|message| IndexError {
                    path: path.clone(),
                    message,
                })?
            }
        };
        let index = Index {
            conn: Arc::new(Mutex::new(conn)),
            root: root.clone(),
            path,
        };
        index.recover(&mut recovery)?;
        Ok((index, recovery))
    }

    /// The media root it indexes.
    pub fn root(&self) -> &MediaRoot {
        &self.root
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn err(&self, e: impl std::fmt::Display) -> IndexError {
        IndexError {
            path: self.path.clone(),
            message: e.to_string(),
        }
    }

    /// Adds the row of a file about to be written (no end yet); returns its id.
    pub fn begin(
        &self,
        camera: &str,
        kind: Kind,
        start: SystemTime,
        path: &str,
        trigger: Option<&str>,
    ) -> Result<i64, IndexError> {
        let conn = self.lock();
        conn.execute(
            "INSERT INTO recordings (camera, kind, start_ms, path, trigger) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(path) DO UPDATE SET camera = ?1, kind = ?2, start_ms = ?3, end_ms = NULL, trigger = ?5",
            params![camera, kind.as_str(), unix_ms(start), path, trigger],
        )
        .map_err(|e| self.err(e))?;
        conn.query_row("SELECT id FROM recordings WHERE path = ?1", [path], |r| r.get(0))
            .map_err(|e| self.err(e))
    }

    /// Completes row `id` once its file is closed.
    pub fn finish(&self, id: i64, end: SystemTime, size: u64, frames: u64) -> Result<(), IndexError> {
        self.lock()
            .execute(
                "UPDATE recordings SET end_ms = ?2, size = ?3, frames = ?4 WHERE id = ?1",
                params![id, unix_ms(end), size as i64, frames as i64],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Adds a finished file (a snapshot) in one step.
    pub fn add(
        &self,
        camera: &str,
        kind: Kind,
        at: SystemTime,
        path: &str,
        size: u64,
        trigger: Option<&str>,
    ) -> Result<i64, IndexError> {
        let id = self.begin(camera, kind, at, path, trigger)?;
        self.finish(id, at, size, u64::from(kind == Kind::Snapshot))?;
        Ok(id)
    }

    /// Every row (of `camera`, when given), oldest first.
    pub fn list(&self, camera: Option<&str>) -> Result<Vec<Entry>, IndexError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare(&format!(
                "SELECT {COLUMNS} FROM recordings WHERE ?1 IS NULL OR camera = ?1 ORDER BY start_ms, id"
            ))
            .map_err(|e| self.err(e))?;
        let rows = stmt.query_map([camera], entry).map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Row `id`, when there is one.
    pub fn get(&self, id: i64) -> Result<Option<Entry>, IndexError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare(&format!("SELECT {COLUMNS} FROM recordings WHERE id = ?1"))
            .map_err(|e| self.err(e))?;
        let mut rows = stmt.query_map([id], entry).map_err(|e| self.err(e))?;
        rows.next().transpose().map_err(|e| self.err(e))
    }

    /// Per camera: files and their bytes, by camera name.
    pub fn totals(&self) -> Result<Vec<(String, u64, u64)>, IndexError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare("SELECT camera, COUNT(*), COALESCE(SUM(size), 0) FROM recordings GROUP BY camera ORDER BY camera")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((r.get(0)?, r.get::<_, i64>(1)? as u64, r.get::<_, i64>(2)? as u64))
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Deletes the oldest finished recordings (of `camera` and `kind`, when
    /// given) that `rule` no longer allows, files first; never one being
    /// written. Returns what was deleted.
    pub fn enforce(
        &self,
        rule: &Retention,
        camera: Option<&str>,
        kind: Option<Kind>,
        now: SystemTime,
    ) -> Result<Vec<Entry>, IndexError> {
        if rule.max_age.is_none() && rule.max_bytes.is_none() {
            return Ok(Vec::new());
        }
        let rows: Vec<Entry> = self
            .list(camera)?
            .into_iter()
            .filter(|e| e.end.is_some() && kind.is_none_or(|k| e.kind == k))
            .collect();
        let mut total: u64 = rows.iter().map(|e| e.size).sum();
        let oldest_kept = rule.max_age.map(|s| unix_ms(now) - (s * 1000.0) as i64);
        let mut deleted = Vec::new();
        for e in rows {
            let too_old = oldest_kept.is_some_and(|t| e.end.is_some_and(|end| unix_ms(end) < t));
            let too_big = rule.max_bytes.is_some_and(|max| total > max);
            if !too_old && !too_big {
                break;
            }
            if let Err(err) = self.delete(&e) {
                tracing::warn!("retention: {err}");
                continue;
            }
            total -= e.size;
            tracing::info!(camera = %e.camera, "retention deleted {} ({} bytes)", e.path, e.size);
            deleted.push(e);
        }
        Ok(deleted)
    }

    /// Deletes recording `e`: its file (one already gone is no error), then its row.
    pub fn delete(&self, e: &Entry) -> Result<(), IndexError> {
        let file = self.root.path().join(&e.path);
        match std::fs::remove_file(&file) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => {
                return Err(IndexError {
                    path: file,
                    message: format!("cannot delete: {err}"),
                });
            }
        }
        self.lock()
            .execute("DELETE FROM recordings WHERE id = ?1", [e.id])
            .map(|_| ())
            .map_err(|err| self.err(err))
    }

    fn recover(&self, recovery: &mut Recovery) -> Result<(), IndexError> {
        // Files that were being written.
        for e in self.list(None)?.into_iter().filter(|e| e.end.is_none()) {
            let file = self.root.path().join(&e.path);
            match recover::examine(&file, true) {
                Some((size, frames, duration_ms)) if frames > 0 => {
                    let end = from_unix_ms(unix_ms(e.start) + duration_ms);
                    self.finish(e.id, end, size, frames)?;
                    tracing::info!("recovered {} ({frames} frames)", e.path);
                    recovery.repaired.push(e.path);
                }
                found => {
                    if found.is_some() {
                        let _ = std::fs::remove_file(&file);
                    }
                    self.lock()
                        .execute("DELETE FROM recordings WHERE id = ?1", [e.id])
                        .map_err(|err| self.err(err))?;
                    recovery.dropped.push(e.path);
                }
            }
        }
        // Files without a row.
        let known: std::collections::HashSet<String> = self.list(None)?.into_iter().map(|e| e.path).collect();
        let mut found = Vec::new();
        walk(self.root.path(), &mut found);
        for file in found {
            let Some(rel) = self.root.relative(&file).and_then(Path::to_str) else {
                continue;
            };
            if known.contains(rel) || rel.starts_with(FILE) {
                continue;
            }
            let is_jpeg = rel.ends_with(".jpg");
            // Only a fragmented or Matroska file is cut again: a TS file's last PES cannot be told whole.
            let cut = !rel.ends_with(".ts");
            let Some((size, frames, duration_ms)) = (if is_jpeg {
                std::fs::metadata(&file).ok().map(|m| (m.len(), 1, 0))
            } else {
                recover::examine(&file, cut)
            }) else {
                continue;
            };
            if frames == 0 {
                continue;
            }
            let modified = std::fs::metadata(&file)
                .and_then(|m| m.modified())
                .unwrap_or_else(|_| SystemTime::now());
            let start = from_unix_ms(unix_ms(modified) - duration_ms);
            let (kind, camera) = kind_and_camera(rel, is_jpeg);
            let id = self.begin(&camera, kind, start, rel, None)?;
            self.finish(id, modified, size, frames)?;
            recovery.adopted.push(rel.to_owned());
        }
        Ok(())
    }
}

fn connect(path: &Path) -> Result<Connection, String> {
    let conn = Connection::open(path).map_err(|e| e.to_string())?;
    let check: String = conn
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .map_err(|e| e.to_string())?;
    if check != "ok" {
        return Err(check);
    }
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| e.to_string())?;
    let exists: Option<String> = conn
        .query_row("SELECT name FROM sqlite_master WHERE name = 'recordings'", [], |r| {
            r.get(0)
        })
        .optional()
        .map_err(|e| e.to_string())?;
    if exists.is_some() && version != SCHEMA_VERSION {
        return Err(format!("schema version {version}, expected {SCHEMA_VERSION}"));
    }
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = NORMAL;
         CREATE TABLE IF NOT EXISTS recordings (
             id INTEGER PRIMARY KEY,
             camera TEXT NOT NULL,
             kind TEXT NOT NULL,
             start_ms INTEGER NOT NULL,
             end_ms INTEGER,
             path TEXT NOT NULL UNIQUE,
             size INTEGER NOT NULL DEFAULT 0,
             frames INTEGER NOT NULL DEFAULT 0,
             trigger TEXT
         );
         CREATE INDEX IF NOT EXISTS recordings_by_camera ON recordings (camera, start_ms);
         PRAGMA user_version = {SCHEMA_VERSION};"
    ))
    .map_err(|e| e.to_string())?;
    Ok(conn)
}

/// Media files under `dir` (not following links).
fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let Ok(kind) = entry.file_type() else { continue };
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if kind.is_dir() {
            walk(&path, out);
        } else if kind.is_file() && !name.starts_with('.') && name != "latest.jpg" {
            let ext = path.extension().and_then(|e| e.to_str()).unwrap_or_default();
            if matches!(ext, "mp4" | "mkv" | "ts" | "jpg") {
                out.push(path);
            }
        }
    }
}

fn kind_and_camera(rel: &str, jpeg: bool) -> (Kind, String) {
    let mut parts = rel.split('/');
    let first = parts.next().unwrap_or_default();
    let second = parts.next();
    let kind = match first {
        "recordings" => Some(Kind::Continuous),
        "events" => Some(Kind::Event),
        "snapshots" => Some(Kind::Snapshot),
        _ => None,
    };
    let fallback = if jpeg { Kind::Snapshot } else { Kind::Continuous };
    match (kind, second) {
        (Some(k), Some(camera)) if parts.next().is_some() => (k, camera.to_owned()),
        (None, Some(_)) => (fallback, first.to_owned()),
        _ => (fallback, "unknown".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_cameras_from_paths() {
        assert_eq!(
            kind_and_camera("recordings/cam0/a.mp4", false),
            (Kind::Continuous, "cam0".into())
        );
        assert_eq!(
            kind_and_camera("events/cam1/x/clip.mkv", false),
            (Kind::Event, "cam1".into())
        );
        assert_eq!(
            kind_and_camera("snapshots/cam1/s.jpg", true),
            (Kind::Snapshot, "cam1".into())
        );
        assert_eq!(kind_and_camera("cam2/a.ts", false), (Kind::Continuous, "cam2".into()));
        assert_eq!(kind_and_camera("a.ts", false), (Kind::Continuous, "unknown".into()));
    }

    #[test]
    fn rows_retention_and_a_damaged_database() {
        let dir = tempfile::tempdir().unwrap();
        let root = MediaRoot::open(dir.path()).unwrap();
        let (index, recovery) = Index::open(&root).unwrap();
        assert_eq!(recovery, Recovery::default());
        let t0 = from_unix_ms(1_795_257_000_000);
        for i in 0..4 {
            let rel = format!("snapshots/cam0/{i}.jpg");
            std::fs::create_dir_all(root.path().join("snapshots/cam0")).unwrap();
            std::fs::write(root.path().join(&rel), vec![0u8; 100]).unwrap();
            index
                .add(
                    "cam0",
                    Kind::Snapshot,
                    from_unix_ms(unix_ms(t0) + i * 1000),
                    &rel,
                    100,
                    Some("api"),
                )
                .unwrap();
        }
        // One being written: never deleted.
        let open = index
            .begin("cam0", Kind::Snapshot, t0, "snapshots/cam0/open.jpg", None)
            .unwrap();
        assert!(open > 0);
        let rule = Retention {
            max_age: None,
            max_bytes: Some(250),
        };
        let gone = index.enforce(&rule, Some("cam0"), None, t0).unwrap();
        assert_eq!(
            gone.iter().map(|e| e.path.as_str()).collect::<Vec<_>>(),
            ["snapshots/cam0/0.jpg", "snapshots/cam0/1.jpg"]
        );
        assert!(!root.path().join("snapshots/cam0/0.jpg").exists());
        assert!(root.path().join("snapshots/cam0/2.jpg").exists());
        let by_age = Retention {
            max_age: Some(0.5),
            max_bytes: None,
        };
        let gone = index
            .enforce(&by_age, None, None, from_unix_ms(unix_ms(t0) + 3000))
            .unwrap();
        assert_eq!(gone.len(), 1, "only the one that ended over 0.5 s ago");
        assert_eq!(index.list(None).unwrap().len(), 2);
        drop(index);

        // Damage the database: it is set aside and rebuilt from the files.
        std::fs::write(root.path().join(FILE), b"this is not a database, it is garbage bytes").unwrap();
        let _ = std::fs::remove_file(root.path().join(format!("{FILE}-wal")));
        let _ = std::fs::remove_file(root.path().join(format!("{FILE}-shm")));
        let (index, recovery) = Index::open(&root).unwrap();
        assert!(recovery.damaged.is_some(), "{recovery:?}");
        assert_eq!(recovery.adopted, ["snapshots/cam0/3.jpg"]);
        let rows = index.list(Some("cam0")).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].kind, Kind::Snapshot);
    }
}

//! The config keys of the output nodes: `record`, `smartrecord` and `snapshot`.

use serde::{Deserialize, Serialize};

use super::index::Retention;
use super::name::check_template;
use super::recorder::{FileFormat, FileSpec};
use super::root::check_relative;

/// Checks a path template: known placeholders, and relative below the media root.
fn check_path(template: &str) -> Result<(), String> {
    check_template(template)?;
    check_relative(template).map_err(|why| format!("`{template}`: {why}; paths are relative to the media root"))
}

/// The keys of a `record` node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecordOptions {
    /// `mp4` (fragmented while written), `mkv` or `ts`.
    pub container: FileFormat,
    /// File path template, relative to the media root, without extension.
    pub path: String,
    /// Seconds per file; a new file starts at the first keyframe after it (0: one file).
    pub segment: f64,
    /// Bytes per file; a new file starts at the first keyframe after it.
    pub segment_bytes: Option<u64>,
    /// Rewrite each finished MP4 with its index in front (progressive, "faststart").
    pub faststart: bool,
    /// Fragmented MP4: a fragment at least every this many ms (and at every keyframe).
    pub fragment_ms: u32,
    /// Delete this camera's recordings older than this many seconds.
    pub max_age: Option<f64>,
    /// Delete this camera's oldest recordings while they exceed this many bytes.
    pub max_bytes: Option<u64>,
    /// Start recording when the node starts (else on `Server::start_recording`).
    pub autostart: bool,
    /// Packets the input queue holds; a lost packet makes the recording skip to the next keyframe.
    pub queue: usize,
}

impl Default for RecordOptions {
    fn default() -> Self {
        RecordOptions {
            container: FileFormat::Mp4,
            path: "recordings/{camera}/{camera}-{utc}".into(),
            segment: 60.0,
            segment_bytes: None,
            faststart: false,
            fragment_ms: 1000,
            max_age: None,
            max_bytes: None,
            autostart: true,
            queue: 256,
        }
    }
}

impl RecordOptions {
    /// Checks values beyond their types; the error names the key.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        check_path(&self.path).map_err(|e| ("path", e))?;
        if !(self.segment >= 0.0 && self.segment.is_finite()) {
            return Err(("segment", format!("{} is not a number of seconds >= 0", self.segment)));
        }
        if self.segment_bytes == Some(0) {
            return Err(("segment_bytes", "must be at least 1".into()));
        }
        if self.faststart && self.container != FileFormat::Mp4 {
            return Err(("faststart", "applies to `container = \"mp4\"` only".into()));
        }
        if self.queue == 0 {
            return Err(("queue", "must be at least 1".into()));
        }
        check_retention(&self.retention())
    }

    /// How its files are written.
    pub fn spec(&self) -> FileSpec {
        FileSpec {
            format: self.container,
            template: self.path.clone(),
            segment_ns: (self.segment * 1e9) as i64,
            segment_bytes: self.segment_bytes.unwrap_or(0),
            faststart: self.faststart,
            fragment_ms: self.fragment_ms,
        }
    }

    /// What its camera's recordings may keep.
    pub fn retention(&self) -> Retention {
        Retention {
            max_age: self.max_age,
            max_bytes: self.max_bytes,
        }
    }
}

/// Checks retention limits; the error names the key.
pub fn check_retention(r: &Retention) -> Result<(), (&'static str, String)> {
    if let Some(age) = r.max_age
        && !(age > 0.0 && age.is_finite())
    {
        return Err(("max_age", format!("{age} is not a number of seconds > 0")));
    }
    if r.max_bytes == Some(0) {
        return Err(("max_bytes", "must be at least 1".into()));
    }
    Ok(())
}

/// The keys of a `smartrecord` node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmartRecordOptions {
    /// Seconds of packets kept in memory for clips that start in the past.
    pub cache: f64,
    /// Most bytes the cache may hold (the oldest go first).
    pub cache_bytes: u64,
    /// Seconds a clip runs after its trigger when the trigger says nothing.
    pub default_duration: f64,
    /// Seconds before the trigger a clip starts at when the trigger says
    /// nothing (default: 5 or `cache`, whichever is less).
    pub default_before: Option<f64>,
    /// `mp4` or `mkv`.
    pub container: FileFormat,
    /// Directory of the clips, relative to the media root (placeholders allowed).
    pub dir: String,
    /// File-name prefix of the clips.
    pub prefix: String,
    /// A trigger during a clip starts a second, overlapping clip (else it extends the running one).
    pub overlap: bool,
    /// Longest a clip may run, in seconds, however often it is extended.
    pub max_duration: f64,
    /// Packets the input queue holds.
    pub queue: usize,
}

impl Default for SmartRecordOptions {
    fn default() -> Self {
        SmartRecordOptions {
            cache: 30.0,
            cache_bytes: 64 << 20,
            default_duration: 10.0,
            default_before: None,
            container: FileFormat::Mp4,
            dir: "events/{camera}".into(),
            prefix: "clip".into(),
            overlap: false,
            max_duration: 600.0,
            queue: 256,
        }
    }
}

impl SmartRecordOptions {
    /// Checks values beyond their types; the error names the key.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        for (key, v) in [
            ("cache", self.cache),
            ("default_duration", self.default_duration),
            ("max_duration", self.max_duration),
        ] {
            if !(v > 0.0 && v.is_finite()) {
                return Err((key, format!("{v} is not a number of seconds > 0")));
            }
        }
        if let Some(before) = self.default_before
            && !(before >= 0.0 && before <= self.cache)
        {
            return Err((
                "default_before",
                format!("{before} must be between 0 and `cache` ({})", self.cache),
            ));
        }
        if self.cache_bytes < 1 << 20 {
            return Err(("cache_bytes", "must be at least 1 MiB (1048576)".into()));
        }
        if self.container == FileFormat::Ts {
            return Err(("container", "clips are `mp4` or `mkv`".into()));
        }
        check_path(&self.dir).map_err(|e| ("dir", e))?;
        if self.prefix.is_empty() || self.prefix.contains('/') || self.prefix.contains('{') {
            return Err(("prefix", format!("`{}` is not a plain file-name prefix", self.prefix)));
        }
        if self.queue == 0 {
            return Err(("queue", "must be at least 1".into()));
        }
        Ok(())
    }

    /// Seconds before the trigger a clip starts at when the trigger says nothing.
    pub fn before(&self) -> f64 {
        self.default_before.unwrap_or(self.cache.min(5.0))
    }

    /// How its clips are written.
    pub fn spec(&self) -> FileSpec {
        FileSpec {
            format: self.container,
            template: format!("{}/{}-{{utc}}", self.dir, self.prefix),
            segment_ns: 0,
            segment_bytes: 0,
            faststart: false,
            fragment_ms: 1000,
        }
    }
}

/// The keys of a `snapshot` node: a JPEG of its stream every `interval`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SnapshotOptions {
    /// Seconds between snapshots.
    pub interval: f64,
    /// JPEG quality, 1–100.
    pub quality: u8,
    /// Where the latest snapshot is kept, relative to the media root (replaced atomically).
    pub path: String,
}

impl Default for SnapshotOptions {
    fn default() -> Self {
        SnapshotOptions {
            interval: 10.0,
            quality: 85,
            path: "snapshots/{camera}/latest.jpg".into(),
        }
    }
}

impl SnapshotOptions {
    /// Checks values beyond their types; the error names the key.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if !(self.interval > 0.0 && self.interval.is_finite()) {
            return Err(("interval", format!("{} is not a number of seconds > 0", self.interval)));
        }
        if !(1..=100).contains(&self.quality) {
            return Err(("quality", format!("quality {} is out of range 1..=100", self.quality)));
        }
        check_path(&self.path).map_err(|e| ("path", e))
    }
}

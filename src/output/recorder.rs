//! The recording writer shared by the `record` node, smart-record clips and
//! `eyrie record`: packets in, files out — named by a template inside the
//! media root, cut into segments that each start on a keyframe, listed in
//! the recordings index before they are created and completed once closed.
//!
//! Fragmented MP4 (and Matroska, and TS) are written piece by piece, each
//! piece in one write, so a crash or a full disk leaves a file that plays up
//! to its last whole fragment; a full disk stops the recording with
//! [`RecordError::Full`], the file cut back to that fragment and its row
//! completed. With `faststart`, a finished fragmented file is rewritten as a
//! progressive MP4 (`moov` in front), its packets shared, not re-encoded.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::index::{Index, Kind};
use super::name::{Fill, expand, from_unix_ms, unix_ms};
use super::recover;
use super::root::{MediaRoot, PathError};
use crate::media::{Clock, CodecParams, Packet};
use crate::mux::mp4::{Mp4Muxer, Mp4Options};
use crate::mux::write::FileWriter;
use crate::mux::{Container, MuxError, Muxer, Output};

/// A container recordings are written in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    /// Fragmented MP4 while writing (see `faststart`).
    #[default]
    Mp4,
    /// Matroska.
    Mkv,
    /// MPEG transport stream.
    Ts,
}

impl FileFormat {
    /// The file extension.
    pub fn extension(self) -> &'static str {
        match self {
            FileFormat::Mp4 => "mp4",
            FileFormat::Mkv => "mkv",
            FileFormat::Ts => "ts",
        }
    }

    fn container(self) -> Container {
        match self {
            FileFormat::Mp4 => Container::Fmp4,
            FileFormat::Mkv => Container::Mkv,
            FileFormat::Ts => Container::Ts,
        }
    }
}

/// How files are written.
#[derive(Clone, Debug, PartialEq)]
pub struct FileSpec {
    /// The container.
    pub format: FileFormat,
    /// Path template relative to the media root, without extension (see [`super::name`]).
    pub template: String,
    /// Start a new file at the first keyframe this long after the file's start (0: never).
    pub segment_ns: i64,
    /// Start a new file at the first keyframe once a file holds this many bytes (0: never).
    pub segment_bytes: u64,
    /// Rewrite a finished MP4 with its index in front.
    pub faststart: bool,
    /// Fragmented MP4: cut a fragment at least this often, in ms (besides every keyframe).
    pub fragment_ms: u32,
}

/// Why a recording stopped or could not start.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The path is refused (outside the media root) or cannot be made.
    #[error(transparent)]
    Path(#[from] PathError),
    /// The muxer refused a packet; the recording goes on from the next keyframe.
    #[error("{path}: {error}")]
    Mux {
        /// The file.
        path: PathBuf,
        /// Why.
        error: MuxError,
    },
    /// The disk is full: the file is cut back to its last whole fragment
    /// and closed (`kept`), and the recording stops.
    #[error("{}: the disk is full; recording stopped, the file keeps {} whole frames", kept.path.display(), kept.frames)]
    Full {
        /// What was kept.
        kept: Box<Closed>,
    },
    /// Another I/O error.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
}

/// A closed file.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Closed {
    /// Its absolute path.
    pub path: PathBuf,
    /// Its path relative to the media root.
    pub rel: String,
    /// The camera.
    pub camera: String,
    /// What it is.
    pub kind: Kind,
    /// UTC of its first frame.
    #[serde(skip)]
    pub start: SystemTime,
    /// UTC after its last frame.
    #[serde(skip)]
    pub end: SystemTime,
    /// Pipeline time of its first packet, ns.
    pub first_pts: i64,
    /// Pipeline time of its last packet, ns.
    pub last_pts: i64,
    /// Frames written.
    pub frames: u64,
    /// Bytes.
    pub bytes: u64,
    /// What started it.
    pub trigger: Option<String>,
}

impl Closed {
    /// Seconds from the first frame to after the last.
    pub fn duration_s(&self) -> f64 {
        self.end.duration_since(self.start).unwrap_or_default().as_secs_f64()
    }
}

struct OpenFile {
    muxer: Box<dyn Muxer>,
    writer: FileWriter,
    path: PathBuf,
    rel: String,
    id: Option<i64>,
    camera: Arc<str>,
    params: Arc<CodecParams>,
    start: SystemTime,
    first_pts: i64,
    first_dts: i64,
    last_pts: i64,
    end_pts: i64,
    frames: u64,
}

/// Writes packets into files (see the module docs).
pub struct Recorder {
    spec: FileSpec,
    node: String,
    kind: Kind,
    trigger: Option<String>,
    root: MediaRoot,
    index: Option<Index>,
    clock: Arc<dyn Clock>,
    open: Option<OpenFile>,
    out: Output,
    files: u64,
    /// A packet was lost: the next one written must be a keyframe.
    waiting: bool,
    /// Packets skipped while waiting for a keyframe.
    pub skipped: u64,
}

impl Recorder {
    /// A recorder for `node`, writing `kind` files under `root` (listed in
    /// `index` when given); UTC times come from `clock`.
    pub fn new(
        spec: FileSpec,
        node: &str,
        kind: Kind,
        root: MediaRoot,
        index: Option<Index>,
        clock: Arc<dyn Clock>,
    ) -> Recorder {
        Recorder {
            spec,
            node: node.to_owned(),
            kind,
            trigger: None,
            root,
            index,
            clock,
            open: None,
            out: Output::new(),
            files: 0,
            waiting: false,
            skipped: 0,
        }
    }

    /// Packets were lost before the next one: skip to the next keyframe
    /// rather than write pictures that cannot be decoded.
    pub fn resync(&mut self) {
        self.waiting = true;
    }

    /// Records `trigger` as what started the files.
    pub fn with_trigger(mut self, trigger: Option<String>) -> Self {
        self.trigger = trigger;
        self
    }

    /// True while a file is open.
    pub fn is_open(&self) -> bool {
        self.open.is_some()
    }

    /// Pipeline time of the open file's first packet.
    pub fn first_pts(&self) -> Option<i64> {
        self.open.as_ref().map(|f| f.first_pts)
    }

    /// Writes a packet (in decoding order). Returns the file it closed, when
    /// it started a new segment.
    pub fn push(&mut self, packet: &Packet) -> Result<Option<Closed>, RecordError> {
        let cut = match &self.open {
            None => true,
            Some(f) => {
                packet.keyframe
                    && ((self.spec.segment_ns > 0 && packet.dts - f.first_dts >= self.spec.segment_ns)
                        || (self.spec.segment_bytes > 0 && f.writer.written() >= self.spec.segment_bytes)
                        || *packet.params != *f.params)
            }
        };
        // A file starts, and a recording resumes after a loss, on a keyframe only.
        if (cut || self.waiting) && !packet.keyframe {
            self.skipped += 1;
            return Ok(None);
        }
        self.waiting = false;
        let mut closed = None;
        if cut {
            closed = self.finish()?;
            self.open_file(packet)?;
        }
        let f = self.open.as_mut().expect("opened above");
        if let Err(error) = f.muxer.push(packet, &mut self.out) {
            // The packet is not written: what depends on it cannot be either.
            self.waiting = true;
            return Err(RecordError::Mux {
                path: f.path.clone(),
                error,
            });
        }
        f.frames += 1;
        f.last_pts = packet.pts;
        f.end_pts = f.end_pts.max(packet.pts + packet.duration.max(0));
        self.write()?;
        Ok(closed)
    }

    fn open_file(&mut self, packet: &Packet) -> Result<(), RecordError> {
        let start = self.utc_of(packet.pts);
        let fill = Fill {
            camera: &packet.source,
            node: &self.node,
            utc: start,
            n: self.files,
        };
        let stem = expand(&self.spec.template, &fill);
        let ext = self.spec.format.extension();
        // Never overwrite: a second file in the same second gets a suffix.
        let mut rel = format!("{stem}.{ext}");
        let mut k = 1;
        while self.root.resolve(&rel)?.exists() {
            rel = format!("{stem}-{k}.{ext}");
            k += 1;
        }
        let path = self.root.create(&rel)?;
        let id = match &self.index {
            Some(index) => match index.begin(&packet.source, self.kind, start, &rel, self.trigger.as_deref()) {
                Ok(id) => Some(id),
                Err(e) => {
                    tracing::warn!(node = %self.node, "{e}");
                    None
                }
            },
            None => None,
        };
        let writer = FileWriter::create(&path).map_err(|error| RecordError::Io {
            path: path.clone(),
            error,
        })?;
        let muxer: Box<dyn Muxer> = match self.spec.format {
            FileFormat::Mp4 => Box::new(Mp4Muxer::new(Mp4Options {
                fragmented: true,
                fragment_ms: self.spec.fragment_ms,
            })),
            f => f.container().muxer(),
        };
        tracing::info!(node = %self.node, camera = %packet.source, "recording to {}", path.display());
        self.files += 1;
        self.open = Some(OpenFile {
            muxer,
            writer,
            path,
            rel,
            id,
            camera: Arc::clone(&packet.source),
            params: Arc::clone(&packet.params),
            start,
            first_pts: packet.pts,
            first_dts: packet.dts,
            last_pts: packet.pts,
            end_pts: packet.pts,
            frames: 0,
        });
        Ok(())
    }

    /// Writes what the muxer made; a full disk closes the file with what is whole.
    fn write(&mut self) -> Result<(), RecordError> {
        let f = self.open.as_mut().expect("a file is open");
        let Err(error) = f.writer.write(&mut self.out) else {
            return Ok(());
        };
        let full = error.kind() == std::io::ErrorKind::StorageFull; // ENOSPC
        let f = self.open.take().expect("a file is open");
        if !full {
            return Err(RecordError::Io { path: f.path, error });
        }
        // The writer cut the file back to its last whole write; count what it holds.
        let (bytes, frames, duration_ms) = recover::examine(&f.path, true).unwrap_or((0, 0, 0));
        let end = from_unix_ms(unix_ms(f.start) + duration_ms);
        let kept = Closed {
            frames,
            bytes,
            end,
            ..self.closed(&f)
        };
        self.complete(&kept, f.id);
        Err(RecordError::Full { kept: Box::new(kept) })
    }

    /// Closes the open file (finalizing it); returns it.
    pub fn finish(&mut self) -> Result<Option<Closed>, RecordError> {
        let Some(mut f) = self.open.take() else { return Ok(None) };
        let trailer = f.muxer.finish(&mut self.out).map_err(|error| RecordError::Mux {
            path: f.path.clone(),
            error,
        })?;
        self.open = Some(f);
        self.write()?;
        let f = self.open.take().expect("still open");
        let closed = self.closed(&f);
        let mut bytes = f.writer.finish(trailer).map_err(|error| RecordError::Io {
            path: f.path.clone(),
            error,
        })?;
        if self.spec.faststart && self.spec.format == FileFormat::Mp4 {
            bytes = faststart(&f.path).map_err(|e| RecordError::Io {
                path: f.path.clone(),
                error: std::io::Error::other(e),
            })?;
        }
        let closed = Closed { bytes, ..closed };
        self.complete(&closed, f.id);
        Ok(Some(closed))
    }

    fn closed(&self, f: &OpenFile) -> Closed {
        Closed {
            path: f.path.clone(),
            rel: f.rel.clone(),
            camera: f.camera.to_string(),
            kind: self.kind,
            start: f.start,
            end: f.start + Duration::from_nanos((f.end_pts - f.first_pts).max(0) as u64),
            first_pts: f.first_pts,
            last_pts: f.last_pts,
            frames: f.frames,
            bytes: f.writer.written(),
            trigger: self.trigger.clone(),
        }
    }

    fn complete(&self, closed: &Closed, id: Option<i64>) {
        if let (Some(index), Some(id)) = (&self.index, id)
            && let Err(e) = index.finish(id, closed.end, closed.bytes, closed.frames)
        {
            tracing::warn!(node = %self.node, "{e}");
        }
        tracing::info!(
            node = %self.node,
            "closed {} ({} frames, {:.1} s, {} bytes)",
            closed.path.display(),
            closed.frames,
            closed.duration_s(),
            closed.bytes
        );
    }

    /// UTC of pipeline time `pts`.
    fn utc_of(&self, pts: i64) -> SystemTime {
        let ago = self.clock.now_ns() - pts;
        let now = self.clock.utc_now();
        if ago >= 0 {
            now - Duration::from_nanos(ago as u64)
        } else {
            now + Duration::from_nanos(ago.unsigned_abs())
        }
    }
}

/// Rewrites a finished fragmented MP4 as a progressive one (its packets
/// mapped from the file, shared, written once); returns the new size.
fn faststart(path: &std::path::Path) -> Result<u64, String> {
    let packets = crate::demux::read_file(path, &Arc::from("faststart"))?;
    let tmp = path.with_extension("faststart.tmp");
    let result = (|| {
        let mut muxer = Container::Mp4.muxer();
        let mut out = Output::new();
        let mut writer = FileWriter::create(&tmp)
            .map_err(|e| format!("{}: {e}", tmp.display()))?
            .gather(u64::MAX);
        for p in &packets {
            muxer.push(p, &mut out).map_err(|e| e.to_string())?;
            writer.write(&mut out).map_err(|e| e.to_string())?;
        }
        let trailer = muxer.finish(&mut out).map_err(|e| e.to_string())?;
        writer.write(&mut out).map_err(|e| e.to_string())?;
        let size = writer.finish(trailer).map_err(|e| e.to_string())?;
        std::fs::rename(&tmp, path).map_err(|e| e.to_string())?;
        Ok(size)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

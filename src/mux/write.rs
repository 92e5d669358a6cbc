//! Writers: where a muxer's bytes go. [`FileWriter`] (one file),
//! [`Segmenter`] (a series of files, each starting on a keyframe) and
//! [`MemoryWriter`] (a vector, for tests and in-memory consumers).

use std::fs::{self, File};
use std::io::{self, IoSlice, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::{Container, MuxError, Muxer, Output, Trailer};
use crate::media::Packet;

/// Writes all of `outs`, in order, with vectored writes (at most 1024 slices per call).
pub fn write_outputs<'a>(w: &mut impl Write, outs: impl IntoIterator<Item = &'a Output>) -> io::Result<()> {
    let mut slices: Vec<IoSlice<'a>> = outs.into_iter().flat_map(Output::slices).collect();
    for chunk in slices.chunks_mut(1024) {
        let mut chunk: &mut [IoSlice<'_>] = chunk;
        while !chunk.is_empty() {
            let n = w.write_vectored(chunk)?;
            if n == 0 {
                return Err(io::Error::new(io::ErrorKind::WriteZero, "write returned 0"));
            }
            IoSlice::advance_slices(&mut chunk, n);
        }
    }
    Ok(())
}

/// A muxer's output into one file. By default each [`FileWriter::write`] is
/// one run of vectored writes, so what a muxer hands over in one piece (a
/// fragment, a block) reaches the file together, and a crash of the process
/// loses nothing handed over; [`FileWriter::gather`] trades that for fewer,
/// larger writes.
#[derive(Debug)]
pub struct FileWriter {
    file: File,
    path: PathBuf,
    /// [`FileWriter::create_complete`]: the name `path` takes at [`FileWriter::finish`].
    finish_as: Option<PathBuf>,
    /// Dropped unfinished (an error path), the file stays; otherwise it is removed.
    keep_unfinished: bool,
    /// Bytes handed over.
    written: u64,
    /// Bytes handed to the file (the rest are in `pending`).
    flushed: u64,
    /// Up to how many bytes are gathered before they are written.
    gather: u64,
    pending: Vec<Output>,
    /// Emptied outputs, to hand back to the muxer so that their buffers are reused.
    spare: Vec<Output>,
}

impl FileWriter {
    /// Creates (truncates) `path`.
    pub fn create(path: &Path) -> io::Result<FileWriter> {
        Ok(FileWriter {
            file: File::create(path)?,
            path: path.to_path_buf(),
            finish_as: None,
            keep_unfinished: true,
            written: 0,
            flushed: 0,
            gather: 0,
            pending: Vec::new(),
            spare: Vec::new(),
        })
    }

    /// A file that exists under `path` only once whole: bytes go to a hidden
    /// `.NAME.partial` beside it, renamed to `path` by [`FileWriter::finish`];
    /// dropped unfinished (an error path), the partial file is removed, so a
    /// failed one-shot job leaves nothing behind and an existing `path` is
    /// replaced only by a whole file. Not for recordings, whose cut files
    /// crash recovery keeps.
    pub fn create_complete(path: &Path) -> io::Result<FileWriter> {
        let name = path
            .file_name()
            .ok_or_else(|| io::Error::other("the output path names no file"))?;
        let partial = path.with_file_name(format!(".{}.partial", name.to_string_lossy()));
        let mut writer = FileWriter::create(&partial)?.remove_unfinished();
        writer.finish_as = Some(path.to_path_buf());
        Ok(writer)
    }

    /// Removes the file if the writer is dropped before [`FileWriter::finish`]
    /// (an error path); a killed process still leaves what was written.
    pub fn remove_unfinished(mut self) -> Self {
        self.keep_unfinished = false;
        self
    }

    /// Gathers up to `bytes` of output (referenced, not copied) before writing
    /// it: far fewer system calls for a batch job, at the price of losing what
    /// is gathered if the process dies. `u64::MAX` holds everything until
    /// [`FileWriter::finish`], so that a trailer's `prepend` costs no rewrite.
    pub fn gather(mut self, bytes: u64) -> Self {
        self.gather = bytes;
        self
    }

    /// Writes (or gathers) `out` and leaves it empty. When a write fails (a
    /// full disk), the file is cut back to what it held before it, so a
    /// file written piece by piece ends on a whole piece.
    pub fn write(&mut self, out: &mut Output) -> io::Result<()> {
        if self.gather == 0 {
            if let Err(e) = write_outputs(&mut self.file, [&*out]) {
                out.clear();
                self.file.set_len(self.flushed)?;
                std::io::Seek::seek(&mut self.file, io::SeekFrom::Start(self.flushed))?;
                return Err(e);
            }
            self.written += out.len();
            out.clear();
            self.flushed = self.written;
            return Ok(());
        }
        self.written += out.len();
        let spare = self.spare.pop().unwrap_or_default();
        self.pending.push(std::mem::replace(out, spare));
        if self.written - self.flushed >= self.gather {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes what is gathered.
    pub fn flush(&mut self) -> io::Result<()> {
        write_outputs(&mut self.file, &self.pending)?;
        for mut out in self.pending.drain(..) {
            out.clear();
            self.spare.push(out);
        }
        self.flushed = self.written;
        Ok(())
    }

    /// Bytes handed over so far (without a prepend).
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Applies the trailer; returns the file's final size.
    pub fn finish(mut self, trailer: Trailer) -> io::Result<u64> {
        if self.flushed == 0 {
            self.file.write_all(&trailer.prepend)?;
        } else if !trailer.prepend.is_empty() {
            // Rewrite behind a temporary name: prepend, then the bytes written
            // so far (copied in the kernel where the filesystem allows); what
            // is still gathered follows.
            let tmp = self.path.with_extension("prepend.tmp");
            let mut dst = File::create(&tmp)?;
            dst.write_all(&trailer.prepend)?;
            let mut src = File::open(&self.path)?;
            io::copy(&mut src, &mut dst)?;
            fs::rename(&tmp, &self.path)?;
            self.file = dst;
        }
        self.flush()?;
        let shift = trailer.prepend.len() as u64;
        for p in &trailer.patches {
            self.file.write_all_at(&p.bytes, shift + p.offset)?;
        }
        self.file.flush()?;
        if let Some(name) = &self.finish_as {
            fs::rename(&self.path, name)?;
        }
        self.keep_unfinished = true;
        Ok(shift + self.written)
    }
}

impl Drop for FileWriter {
    fn drop(&mut self) {
        if !self.keep_unfinished {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// A muxer's output in memory.
#[derive(Debug, Default)]
pub struct MemoryWriter {
    /// The bytes so far.
    pub bytes: Vec<u8>,
}

impl MemoryWriter {
    /// Appends `out` and leaves it empty.
    pub fn write(&mut self, out: &mut Output) {
        for s in out.slices() {
            self.bytes.extend_from_slice(&s);
        }
        out.clear();
    }

    /// Applies the trailer; returns the finished bytes.
    pub fn finish(mut self, trailer: Trailer) -> Vec<u8> {
        for p in &trailer.patches {
            let at = p.offset as usize;
            self.bytes[at..at + p.bytes.len()].copy_from_slice(&p.bytes);
        }
        let mut bytes = trailer.prepend;
        bytes.extend_from_slice(&self.bytes);
        bytes
    }
}

/// Muxes packets to memory with a fresh muxer: the whole file.
pub fn mux_to_vec(container: Container, packets: &[Packet]) -> Result<Vec<u8>, MuxError> {
    let mut muxer = container.muxer();
    let mut out = Output::new();
    let mut w = MemoryWriter::default();
    for p in packets {
        muxer.push(p, &mut out)?;
        w.write(&mut out);
    }
    let trailer = muxer.finish(&mut out)?;
    w.write(&mut out);
    Ok(w.finish(trailer))
}

/// An error of a writer: muxing or I/O, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The muxer refused a packet.
    #[error(transparent)]
    Mux(#[from] MuxError),
    /// The file could not be written.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        error: io::Error,
    },
}

/// Writes a series of files, `pattern` with `{n}` replaced by the segment
/// number (from 0); a new segment starts at the first keyframe at least
/// `segment_ns` after the current segment's start, so every segment starts
/// on a keyframe and no packet is lost or repeated between segments.
pub struct Segmenter {
    container: Container,
    pattern: String,
    segment_ns: i64,
    current: Option<(Box<dyn Muxer>, FileWriter, PathBuf, i64)>,
    out: Output,
    done: Vec<PathBuf>,
}

impl Segmenter {
    /// A segmenter writing `container` files named by `pattern`.
    pub fn new(container: Container, pattern: impl Into<String>, segment_ns: i64) -> Self {
        Segmenter {
            container,
            pattern: pattern.into(),
            segment_ns,
            current: None,
            out: Output::new(),
            done: Vec::new(),
        }
    }

    /// Adds a packet, starting a new segment when it is due.
    pub fn push(&mut self, packet: &Packet) -> Result<(), WriteError> {
        let due = match &self.current {
            None => true,
            Some((_, _, _, start)) => packet.keyframe && packet.dts - start >= self.segment_ns,
        };
        if due {
            self.close()?;
            let path = PathBuf::from(self.pattern.replace("{n}", &self.done.len().to_string()));
            let writer = FileWriter::create(&path).map_err(|error| WriteError::Io {
                path: path.clone(),
                error,
            })?;
            let writer = writer.gather(if self.container.index_in_front() { u64::MAX } else { 0 });
            self.current = Some((self.container.muxer(), writer, path, packet.dts));
        }
        let (muxer, writer, path, _) = self.current.as_mut().expect("a segment is open");
        muxer.push(packet, &mut self.out)?;
        writer.write(&mut self.out).map_err(|error| WriteError::Io {
            path: path.clone(),
            error,
        })
    }

    /// Finishes the open segment; returns every segment written, in order.
    pub fn finish(mut self) -> Result<Vec<PathBuf>, WriteError> {
        self.close()?;
        Ok(self.done)
    }

    fn close(&mut self) -> Result<(), WriteError> {
        if let Some((mut muxer, mut writer, path, _)) = self.current.take() {
            let io = |error| WriteError::Io {
                path: path.clone(),
                error,
            };
            let trailer = muxer.finish(&mut self.out)?;
            writer.write(&mut self.out).map_err(io)?;
            writer.finish(trailer).map_err(io)?;
            self.done.push(path);
        }
        Ok(())
    }
}

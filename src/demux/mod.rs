//! Demuxers: elementary streams ([`es`]) and readers for the containers Eyrie
//! writes ([`ts`], [`mkv`], [`mp4`]), producing the same [`Packet`]s the
//! muxers take (H.264/H.265 payloads back in Annex-B).
//!
//! Readers hold the whole file ([`Bytes`]) and return its packets in
//! decoding order; VP9 and JPEG payloads share the file, H.264/H.265 ones are
//! rewritten from length-prefixed to Annex-B. Malformed input is a
//! [`CodecError`] naming the byte offset; nothing here panics on any input.

pub mod es;
pub mod mkv;
pub mod mp4;
pub mod ts;

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;

use crate::media::{Fps, Packet};
use crate::mux::Container;
pub use es::EsKind;

/// Maps a file read-only: packets read from it share the page cache, and
/// nothing is read into a copy.
pub fn map_file(path: &Path) -> std::io::Result<Bytes> {
    let file = std::fs::File::open(path)?;
    // SAFETY: the map is read-only and private to this process; a file
    // truncated underneath it would fault, as with any mapped input.
    let map = unsafe { memmap2::MmapOptions::new().populate().map(&file) }?;
    Ok(Bytes::from_owner(map))
}

/// Reads a file Eyrie can demux, chosen by its extension: `.ts`, `.mkv`,
/// `.webm`, `.mp4` (progressive or fragmented), or an elementary stream.
pub fn read_file(path: &Path, source: &Arc<str>) -> Result<Vec<Packet>, String> {
    read_file_at(path, None, source)
}

/// [`read_file`], with the frame rate an elementary stream is timed at
/// (`None`: its own, from the SPS).
pub fn read_file_at(path: &Path, fps: Option<Fps>, source: &Arc<str>) -> Result<Vec<Packet>, String> {
    let data = map_file(path).map_err(|e| format!("{}: {e}", path.display()))?;
    // Containers by the same extensions the muxers write them under.
    let result = match Container::from_path(path, false) {
        Some(Container::Ts) => ts::read(&data, source),
        Some(Container::Mkv | Container::Webm) => mkv::read(&data, source),
        Some(Container::Mp4 | Container::Fmp4) => mp4::read(&data, source),
        None => {
            let ext = path.extension().and_then(|e| e.to_str()).unwrap_or_default();
            match EsKind::from_extension(&ext.to_ascii_lowercase()) {
                Some(kind) => es::read(&data, kind, fps, source),
                None => return Err(format!("{}: unknown file type", path.display())),
            }
        }
    };
    result.map_err(|e| format!("{}: {e}", path.display()))
}

/// Decode times for packets that carry only presentation times (Matroska):
/// the sorted presentation times, shifted back just enough that no packet
/// is decoded after it is shown.
pub(crate) fn reconstruct_dts(packets: &mut [Packet]) {
    let mut sorted: Vec<i64> = packets.iter().map(|p| p.pts).collect();
    sorted.sort_unstable();
    let shift = packets
        .iter()
        .zip(&sorted)
        .map(|(p, s)| s - p.pts)
        .max()
        .unwrap_or(0)
        .max(0);
    for (p, s) in packets.iter_mut().zip(sorted) {
        p.dts = s - shift;
    }
}

/// Fills each packet's duration from the next packet's decode time (the last
/// keeps the one before it, or `fallback`).
pub(crate) fn fill_durations(packets: &mut [Packet], fallback: i64) {
    let mut last = fallback;
    for i in 0..packets.len() {
        if packets[i].duration <= 0 {
            packets[i].duration = match packets.get(i + 1) {
                Some(next) if next.dts > packets[i].dts => next.dts - packets[i].dts,
                _ => last,
            };
        }
        last = packets[i].duration;
    }
}

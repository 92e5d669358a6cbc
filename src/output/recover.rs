//! Crash recovery of recordings: how much of a file that was being written
//! when the process died (or the disk filled) is whole, and cutting it there.
//!
//! - fragmented MP4: the init segment and every complete `moof` + `mdat` pair;
//! - Matroska: every complete element, SimpleBlocks inside the open
//!   unknown-size Cluster included (RFC 9559 §6.2, unknown sizes);
//! - MPEG-TS: whole 188-byte packets up to the start of the last PES packet,
//!   which may be incomplete (a PES of unbounded length has no end marker).

use std::io;
use std::path::Path;
use std::sync::Arc;

use crate::mux::Container;
use crate::mux::ebml::read_header;
use crate::mux::mkv::{TOP_LEVEL, id};

/// The whole part of a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Intact {
    /// Bytes that are whole.
    pub len: u64,
    /// Video frames (samples, blocks or PES packets) in them.
    pub frames: u64,
}

/// How much of `data`, a `container` file possibly cut while written, is whole.
pub fn intact(container: Container, data: &[u8]) -> Intact {
    match container {
        Container::Mp4 | Container::Fmp4 => mp4(data),
        Container::Mkv | Container::Webm => mkv(data),
        Container::Ts => ts(data),
    }
}

fn mp4(data: &[u8]) -> Intact {
    let mut good = Intact { len: 0, frames: 0 };
    let mut pos = 0usize;
    let mut moov = false;
    // Samples of a `moof` whose `mdat` has not been seen whole yet.
    let mut pending: Option<u64> = None;
    while pos + 8 <= data.len() {
        let size32 = u32::from_be_bytes(data[pos..pos + 4].try_into().expect("4 bytes"));
        let kind = &data[pos + 4..pos + 8];
        let (size, header) = match size32 {
            1 if pos + 16 <= data.len() => (
                u64::from_be_bytes(data[pos + 8..pos + 16].try_into().expect("8 bytes")),
                16,
            ),
            0 | 1 => break,
            s => (s as u64, 8),
        };
        let end = pos as u64 + size;
        if size < header || end > data.len() as u64 {
            break;
        }
        let body = &data[pos + header as usize..end as usize];
        match kind {
            b"moov" => {
                moov = true;
                good.len = end;
            }
            b"ftyp" | b"styp" | b"free" | b"skip" | b"sidx" if pending.is_none() => good.len = end,
            b"moof" => pending = Some(trun_samples(body)),
            b"mdat" if moov => {
                // A progressive file's samples are counted by its `moov`; here only fragments count.
                good.len = end;
                good.frames += pending.take().unwrap_or(0);
            }
            _ => {}
        }
        pos = end as usize;
    }
    if !moov {
        good.len = 0;
    }
    good
}

/// Sample counts of the `trun` boxes inside a `moof` body (`traf` children).
fn trun_samples(moof: &[u8]) -> u64 {
    children(moof)
        .filter(|(kind, _)| *kind == b"traf")
        .flat_map(|(_, traf)| children(traf))
        .filter(|(kind, body)| *kind == b"trun" && body.len() >= 8)
        .map(|(_, trun)| u32::from_be_bytes(trun[4..8].try_into().expect("4 bytes")) as u64)
        .sum()
}

/// The whole boxes in `data`: (type, body).
fn children(data: &[u8]) -> impl Iterator<Item = (&[u8; 4], &[u8])> {
    let mut pos = 0;
    std::iter::from_fn(move || {
        let size = u32::from_be_bytes(data.get(pos..pos + 4)?.try_into().expect("4 bytes")) as usize;
        if size < 8 || pos + size > data.len() {
            return None;
        }
        let kind = data[pos + 4..pos + 8].try_into().expect("4 bytes");
        let body = &data[pos + 8..pos + size];
        pos += size;
        Some((kind, body))
    })
}

fn mkv(data: &[u8]) -> Intact {
    let mut good = Intact { len: 0, frames: 0 };
    let element = |pos: usize| {
        let h = read_header(data.get(pos..)?)?;
        let end = h.size.map(|s| pos as u64 + h.len as u64 + s);
        Some((h, end))
    };
    let Some((ebml, Some(end))) = element(0) else {
        return good;
    };
    if ebml.id != id::EBML || end > data.len() as u64 {
        return good;
    }
    let mut pos = end as usize;
    let Some((segment, _)) = element(pos) else { return good };
    if segment.id != id::SEGMENT {
        return good;
    }
    pos += segment.len;
    let mut tracks = false;
    let mut in_cluster = false;
    while let Some((h, end)) = element(pos) {
        if TOP_LEVEL.contains(&h.id) {
            in_cluster = false;
        }
        match (h.id, end) {
            // An unknown-size Cluster: its children follow.
            (id::CLUSTER, None) => {
                in_cluster = true;
                pos += h.len;
                good.len = pos as u64;
            }
            (_, Some(end)) if end <= data.len() as u64 => {
                match h.id {
                    id::TRACKS => tracks = true,
                    id::SIMPLE_BLOCK | id::BLOCK_GROUP if in_cluster => good.frames += 1,
                    id::CLUSTER => good.frames += count_blocks(&data[pos + h.len..end as usize]),
                    _ => {}
                }
                good.len = end;
                pos = end as usize;
            }
            _ => break,
        }
    }
    if !tracks {
        good.len = 0;
    }
    good
}

fn count_blocks(cluster: &[u8]) -> u64 {
    let mut pos = 0;
    let mut n = 0;
    while let Some(h) = cluster.get(pos..).and_then(read_header) {
        let Some(size) = h.size else { break };
        if matches!(h.id, id::SIMPLE_BLOCK | id::BLOCK_GROUP) {
            n += 1;
        }
        pos += h.len + size as usize;
    }
    n
}

fn ts(data: &[u8]) -> Intact {
    const PACKET: usize = 188;
    let whole = data.len() / PACKET * PACKET;
    let mut last_start = None;
    let mut frames = 0u64;
    for (i, p) in data[..whole].chunks_exact(PACKET).enumerate() {
        if p[0] != 0x47 {
            return Intact {
                len: (i * PACKET) as u64,
                frames: frames.saturating_sub(1),
            };
        }
        let pusi = p[1] & 0x40 != 0;
        let has_payload = p[3] & 0x10 != 0;
        let adaptation = if p[3] & 0x20 != 0 { 1 + p[4] as usize } else { 0 };
        let payload = p.get(4 + adaptation..).unwrap_or_default();
        if pusi && has_payload && payload.starts_with(&[0, 0, 1]) {
            last_start = Some(i * PACKET);
            frames += 1;
        }
    }
    match last_start {
        Some(at) => Intact {
            len: at as u64,
            frames: frames - 1,
        },
        None => Intact { len: 0, frames: 0 },
    }
}

/// Cuts the file at `path` after its whole part; returns that part.
pub fn repair(path: &Path, container: Container) -> io::Result<Intact> {
    let data = std::fs::read(path)?;
    let good = intact(container, &data);
    if good.len < data.len() as u64 {
        std::fs::OpenOptions::new().write(true).open(path)?.set_len(good.len)?;
    }
    Ok(good)
}

/// A media file's size, whole frames and duration in ms (after cutting it
/// after its whole part, when `cut`); `None` when it is not a recording
/// Eyrie reads.
pub fn examine(file: &Path, cut: bool) -> Option<(u64, u64, i64)> {
    let container = Container::from_path(file, false)?;
    let intact = if cut {
        repair(file, container).ok()?
    } else {
        intact(container, &std::fs::read(file).ok()?)
    };
    if intact.frames == 0 {
        return Some((intact.len, 0, 0));
    }
    let packets = crate::demux::read_file(file, &Arc::from("recover")).ok()?;
    let first = packets.iter().map(|p| p.pts).min()?;
    let last = packets.iter().map(|p| p.pts + p.duration).max()?;
    Some((intact.len, packets.len() as u64, (last - first) / 1_000_000))
}

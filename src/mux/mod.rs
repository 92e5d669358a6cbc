//! Container muxers, sans-IO: push [`Packet`]s, get the bytes to write in an
//! [`Output`]; [`Muxer::finish`] returns the trailer and the [`Patch`]es to
//! apply to bytes already written. No file or socket lives here: writers
//! ([`write`]) put the bytes in a file, a series of segment files or memory.
//!
//! Payloads are never copied: an [`Output`] holds the small headers a muxer
//! built and shared slices ([`Bytes`]) of the packets, and a writer hands both
//! to the kernel in one vectored write.
//!
//! - [`ts`]: MPEG-TS (ISO/IEC 13818-1);
//! - [`mkv`]: Matroska and WebM (RFC 9559);
//! - [`mp4`]: MP4, progressive with `moov` in front, and fragmented (ISO/IEC 14496-12, -15).

pub mod ebml;
pub mod es;
pub mod mkv;
pub mod mp4;
pub mod ts;
pub mod write;

use std::io::IoSlice;
use std::path::Path;

use bytes::Bytes;

use crate::codec::CodecError;
use crate::media::{Codec, Packet};

/// The version of the bytes the muxers write. Bump it whenever their output
/// changes for the same input; golden tests pin output hashes to it.
pub const FORMAT_VERSION: u32 = 2;

/// Why a packet cannot be muxed.
#[derive(Debug, thiserror::Error)]
pub enum MuxError {
    /// The container cannot carry the codec.
    #[error("{container} cannot carry {codec} ({hint})")]
    Unsupported {
        /// The container.
        container: &'static str,
        /// The codec.
        codec: Codec,
        /// What the container does carry.
        hint: &'static str,
    },
    /// A packet is unusable.
    #[error("packet {seq} ({codec}): {message}")]
    BadPacket {
        /// The packet's sequence number.
        seq: u64,
        /// Its codec.
        codec: Codec,
        /// What is wrong.
        message: String,
    },
    /// The bitstream inside a packet is malformed.
    #[error("packet {seq}: {error}")]
    Bitstream {
        /// The packet's sequence number.
        seq: u64,
        /// The parse error (offset within the packet).
        error: CodecError,
    },
}

impl MuxError {
    pub(crate) fn bad(packet: &Packet, message: impl Into<String>) -> Self {
        MuxError::BadPacket {
            seq: packet.seq,
            codec: packet.codec,
            message: message.into(),
        }
    }
}

/// Bytes for a writer, in order: headers a muxer built and shared payload slices.
#[derive(Debug, Default)]
pub struct Output {
    own: Vec<u8>,
    parts: Vec<Part>,
    len: u64,
}

#[derive(Debug)]
enum Part {
    /// `own[start..end]`.
    Own(usize, usize),
    Shared(Bytes),
}

/// Shared slices shorter than this are copied: a pointer costs more than the bytes.
const SHARE_MIN: usize = 64;

impl Output {
    /// An empty output.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends bytes the muxer built (copied).
    pub fn put(&mut self, bytes: &[u8]) {
        self.own.extend_from_slice(bytes);
        let end = self.own.len();
        match self.parts.last_mut() {
            Some(Part::Own(_, e)) => *e = end,
            _ => self.parts.push(Part::Own(end - bytes.len(), end)),
        }
        self.len += bytes.len() as u64;
    }

    /// Makes room for `additional` more bytes of [`Output::put`] without reallocating.
    pub fn reserve(&mut self, additional: usize) {
        self.own.reserve(additional);
    }

    /// Appends a payload slice without copying it.
    pub fn share(&mut self, bytes: Bytes) {
        if bytes.len() < SHARE_MIN {
            self.put(&bytes);
        } else {
            self.len += bytes.len() as u64;
            self.parts.push(Part::Shared(bytes));
        }
    }

    /// Total length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Drops everything held.
    pub fn clear(&mut self) {
        self.own.clear();
        self.parts.clear();
        self.len = 0;
    }

    /// The held bytes as slices for a vectored write.
    pub fn slices(&self) -> impl Iterator<Item = IoSlice<'_>> {
        self.parts.iter().map(|p| match p {
            Part::Own(s, e) => IoSlice::new(&self.own[*s..*e]),
            Part::Shared(b) => IoSlice::new(b),
        })
    }

    /// The held bytes, copied into one vector (tests, in-memory sinks).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.len as usize);
        for s in self.slices() {
            v.extend_from_slice(&s);
        }
        v
    }
}

/// Bytes to overwrite at an absolute offset of what was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Patch {
    /// Offset from the start of the muxer's output.
    pub offset: u64,
    /// The new bytes.
    pub bytes: Vec<u8>,
}

/// What [`Muxer::finish`] asks of the writer besides its final bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Trailer {
    /// Overwrites of bytes already written (offsets without `prepend`).
    pub patches: Vec<Patch>,
    /// Bytes that go before everything written so far (a progressive MP4's
    /// `ftyp`, `moov` and `mdat` header).
    pub prepend: Vec<u8>,
}

/// A sans-IO container muxer for one video track.
pub trait Muxer: Send {
    /// Adds a packet (in decoding order); appends what is ready to `out`.
    fn push(&mut self, packet: &Packet, out: &mut Output) -> Result<(), MuxError>;

    /// Ends the file: appends the last bytes to `out` and returns the trailer.
    fn finish(&mut self, out: &mut Output) -> Result<Trailer, MuxError>;
}

/// A container Eyrie writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Container {
    /// MPEG transport stream.
    Ts,
    /// Matroska.
    Mkv,
    /// WebM (Matroska restricted to VP9 here).
    Webm,
    /// Progressive MP4, `moov` in front.
    Mp4,
    /// Fragmented MP4 (CMAF-style).
    Fmp4,
}

impl Container {
    /// The container named by a file extension (`fragmented` picks fMP4 for `.mp4`).
    pub fn from_path(path: &Path, fragmented: bool) -> Option<Container> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        Some(match ext.as_str() {
            "ts" | "m2ts" | "mts" => Container::Ts,
            "mkv" => Container::Mkv,
            "webm" => Container::Webm,
            "mp4" | "m4v" | "mov" if fragmented => Container::Fmp4,
            "mp4" | "m4v" | "mov" => Container::Mp4,
            "m4s" | "cmfv" => Container::Fmp4,
            _ => return None,
        })
    }

    /// Whether the container's index goes in front of its data (progressive
    /// MP4): a writer then holds the (shared, uncopied) data until the index
    /// is known rather than writing the file twice.
    pub fn index_in_front(self) -> bool {
        self == Container::Mp4
    }

    /// A new muxer for this container.
    pub fn muxer(self) -> Box<dyn Muxer> {
        match self {
            Container::Ts => Box::new(ts::TsMuxer::new()),
            Container::Mkv => Box::new(mkv::MkvMuxer::new(false)),
            Container::Webm => Box::new(mkv::MkvMuxer::new(true)),
            Container::Mp4 => Box::new(mp4::Mp4Muxer::new(mp4::Mp4Options::default())),
            Container::Fmp4 => Box::new(mp4::Mp4Muxer::new(mp4::Mp4Options {
                fragmented: true,
                ..Default::default()
            })),
        }
    }
}

/// `ns` nanoseconds in units of `1/timescale` s, rounded to nearest.
pub fn to_units(ns: i64, timescale: u32) -> i64 {
    let v = ns as i128 * timescale as i128;
    let half = if v >= 0 { 500_000_000 } else { -500_000_000 };
    ((v + half) / 1_000_000_000) as i64
}

/// `units` of `1/timescale` s in nanoseconds, rounded to nearest.
pub fn to_ns(units: i64, timescale: u32) -> i64 {
    let v = units as i128 * 1_000_000_000;
    let ts = timescale as i128;
    let half = if v >= 0 { ts / 2 } else { -ts / 2 };
    ((v + half) / ts) as i64
}

/// A packet's payload as MP4 and Matroska store it: H.264/H.265 access
/// units length-prefixed (4-byte lengths, NAL units shared), other codecs as
/// they are. The Annex-B payload is scanned once, on creation.
#[derive(Debug)]
pub(crate) struct Sample {
    data: Bytes,
    /// `(offset, len)` of each NAL unit; `None` for codecs stored whole.
    nals: Option<Vec<(usize, usize)>>,
    size: u64,
}

impl Sample {
    pub(crate) fn new(packet: &Packet) -> Sample {
        let nals: Option<Vec<(usize, usize)>> = matches!(packet.codec, Codec::H264 | Codec::H265).then(|| {
            crate::codec::nal::annexb(&packet.data)
                .map(|n| (n.offset, n.data.len()))
                .collect()
        });
        let size = nals
            .as_ref()
            .map_or(packet.data.len() as u64, |n| n.iter().map(|(_, l)| 4 + *l as u64).sum());
        Sample {
            data: packet.data.clone(),
            nals,
            size,
        }
    }

    /// Stored size in bytes.
    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    /// Appends the stored form to `out`, sharing the payload.
    pub(crate) fn put(&self, out: &mut Output) {
        match &self.nals {
            None => out.share(self.data.clone()),
            Some(nals) => {
                for &(offset, len) in nals {
                    out.put(&(len as u32).to_be_bytes());
                    out.share(self.data.slice(offset..offset + len));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_merges_own_bytes_and_shares_payloads() {
        let mut out = Output::new();
        out.put(b"ab");
        out.put(b"cd");
        out.share(Bytes::from(vec![7u8; 100]));
        out.share(Bytes::from_static(b"short"));
        assert_eq!(out.slices().count(), 3);
        assert_eq!(out.len(), 2 + 2 + 100 + 5);
        let v = out.to_vec();
        assert_eq!(&v[..4], b"abcd");
        assert_eq!(&v[104..], b"short");
    }

    #[test]
    fn units_round_trip() {
        let third = 1_000_000_000 / 30; // 33_333_333 ns
        assert_eq!(to_units(third, 90_000), 3000);
        assert_eq!(to_units(-2 * third, 90_000), -6000);
        assert_eq!(to_ns(3000, 90_000), 33_333_333);
        assert_eq!(to_units(third, 1000), 33);
    }
}

//! One stream as CMAF (ISO/IEC 23000-19) for every HTTP client, sans-IO: an
//! init segment (`ftyp` + `moov`, from the MP4 muxer) and one chunk
//! (`moof` + `mdat`, ISO/IEC 14496-12 §8.8) per picture, made as soon as the
//! picture arrives (its duration is the nominal one, so nothing waits for
//! the next picture). Chunks are what the WebSocket and `live.mp4` clients
//! get; LL-HLS parts and segments are runs of them ([`super::hls`]).
//!
//! A chunk is made once per stream, as one contiguous [`Bytes`] (the
//! WebSocket needs one buffer per message): the picture's bytes are copied
//! once here, length-prefixed, and shared by every client after.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;

use crate::media::{Codec, CodecParams, Packet};
use crate::mux::mp4::{Entry, Mp4Muxer, TIMESCALE, write_fragment};
use crate::mux::{MuxError, Output, Sample, to_units};

/// The init segment of a stream's current format.
#[derive(Debug)]
pub struct InitSegment {
    /// `ftyp` + `moov`.
    pub bytes: Bytes,
    /// The RFC 6381 codec string (`avc1.64001f`, `hvc1.1.6.L93.B0`).
    pub codecs: String,
    /// Picture width.
    pub width: u32,
    /// Picture height.
    pub height: u32,
    /// Counts the formats this stream has had (a new one needs a new init).
    pub version: u64,
}

impl InitSegment {
    /// The MIME type for `MediaSource.addSourceBuffer`.
    pub fn mime(&self) -> String {
        format!("video/mp4; codecs=\"{}\"", self.codecs)
    }
}

/// One picture as a CMAF chunk.
#[derive(Debug)]
pub struct Chunk {
    /// `moof` + `mdat`.
    pub bytes: Bytes,
    /// Decoding can start here.
    pub keyframe: bool,
    /// Its presentation time on the fMP4 timeline, seconds (what a browser's
    /// `video.currentTime` shows for it).
    pub pts: f64,
    /// Its duration, ns.
    pub duration: i64,
    /// When it was captured.
    pub utc: SystemTime,
    /// The packet (shared, not copied): the MPEG-TS variant muxes it again.
    pub packet: Packet,
    /// The init segment it needs.
    pub init: Arc<InitSegment>,
}

/// Why a packet makes no chunk.
#[derive(Debug, thiserror::Error)]
pub enum CmafError {
    /// The muxer refused it.
    #[error(transparent)]
    Mux(#[from] MuxError),
    /// Its decode time does not increase.
    #[error("packet {seq}: decode time does not increase (back {back_ns} ns); dropped")]
    Backwards {
        /// The packet's sequence number.
        seq: u64,
        /// How far back it is, ns.
        back_ns: i64,
    },
}

/// Default picture duration when a stream gives none and no rate is known yet.
const FALLBACK_DURATION_NS: i64 = 1_000_000_000 / 30;

/// Packets in, CMAF chunks out.
#[derive(Debug, Default)]
pub struct Fragmenter {
    init: Option<Arc<InitSegment>>,
    params: Option<Arc<CodecParams>>,
    /// Decode time of the first packet (time zero of the timeline), ns.
    base: i64,
    last_dts: Option<i64>,
    last_delta: i64,
    sequence: u32,
    version: u64,
}

impl Fragmenter {
    /// A fragmenter that has seen nothing; its first init segment is
    /// version `first_version` + 1 (a fresh number per fragmenter keeps
    /// cached URLs of an earlier one from being taken for its own).
    pub fn new(first_version: u64) -> Self {
        Fragmenter {
            version: first_version,
            ..Self::default()
        }
    }

    /// The chunk of `packet`; a packet in a new format starts a new init
    /// segment (and a new timeline: a client must start again at the
    /// keyframe after it).
    pub fn push(&mut self, packet: &Packet) -> Result<Chunk, CmafError> {
        let new_format = self.params.as_ref().is_none_or(|p| **p != *packet.params);
        if new_format {
            let codecs = codec_string(&packet.params)
                .ok_or_else(|| MuxError::bad(packet, "no codec string can describe its parameters"))?;
            let bytes = Mp4Muxer::init_segment(packet)?;
            self.version += 1;
            self.init = Some(Arc::new(InitSegment {
                bytes: Bytes::from(bytes),
                codecs,
                width: packet.params.width,
                height: packet.params.height,
                version: self.version,
            }));
            self.params = Some(Arc::clone(&packet.params));
            self.base = packet.dts;
            self.last_dts = None;
        }
        if let Some(last) = self.last_dts.filter(|last| packet.dts <= *last) {
            return Err(CmafError::Backwards {
                seq: packet.seq,
                back_ns: last - packet.dts,
            });
        }
        if let Some(last) = self.last_dts {
            self.last_delta = packet.dts - last;
        }
        self.last_dts = Some(packet.dts);
        let duration = match (packet.duration, self.last_delta) {
            (d, _) if d > 0 => d,
            (_, d) if d > 0 => d,
            _ => FALLBACK_DURATION_NS,
        };
        let sample = Sample::new(packet);
        let size = u32::try_from(sample.size()).map_err(|_| MuxError::bad(packet, "picture larger than 4 GiB"))?;
        let dts = to_units(packet.dts - self.base, TIMESCALE);
        let pts = to_units(packet.pts - self.base, TIMESCALE);
        let entry = Entry {
            size,
            dts,
            cto: pts - dts,
            duration: to_units(duration, TIMESCALE) as u32,
            sync: packet.keyframe,
        };
        self.sequence = self.sequence.wrapping_add(1);
        let mut out = Output::new();
        write_fragment(self.sequence, &[entry], std::slice::from_ref(&sample), &mut out);
        Ok(Chunk {
            bytes: Bytes::from(out.to_vec()),
            keyframe: packet.keyframe,
            pts: pts as f64 / TIMESCALE as f64,
            duration,
            utc: packet.capture_utc,
            packet: packet.clone(),
            init: Arc::clone(self.init.as_ref().expect("set above")),
        })
    }
}

/// The RFC 6381 `codecs` value of an H.264 (`avc1.PPCCLL`, ISO/IEC 14496-15
/// Annex E) or H.265 stream (`hvc1.…`, Annex E.3) from its `avcC`/`hvcC`.
pub fn codec_string(params: &CodecParams) -> Option<String> {
    let x = &params.extradata;
    match params.codec {
        Codec::H264 if x.len() >= 4 => Some(format!("avc1.{:02x}{:02x}{:02x}", x[1], x[2], x[3])),
        Codec::H265 if x.len() >= 13 => {
            let space = ["", "A", "B", "C"][(x[1] >> 6) as usize];
            let tier = if x[1] & 0x20 != 0 { 'H' } else { 'L' };
            let profile = x[1] & 0x1F;
            let compat = u32::from_be_bytes([x[2], x[3], x[4], x[5]]).reverse_bits();
            let mut s = format!("hvc1.{space}{profile}.{compat:X}.{tier}{}", x[12]);
            // The six constraint bytes, trailing zero bytes left out.
            let constraints = &x[6..12];
            let used = constraints.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
            for b in &constraints[..used] {
                s.push_str(&format!(".{b:02X}"));
            }
            Some(s)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codec_strings_follow_rfc_6381() {
        let avc =
            CodecParams::new(Codec::H264, 1280, 720).with_extradata(Bytes::from_static(&[1, 0x64, 0, 0x1f, 0xff]));
        assert_eq!(codec_string(&avc).as_deref(), Some("avc1.64001f"));
        // Main profile, compatible with 1 and 2, main tier, level 3.1, progressive + frame-only.
        let mut hvcc = vec![1, 0x01, 0x60, 0, 0, 0, 0x90, 0, 0, 0, 0, 0, 93];
        hvcc.resize(23, 0);
        let hevc = CodecParams::new(Codec::H265, 1280, 720).with_extradata(Bytes::from(hvcc));
        assert_eq!(codec_string(&hevc).as_deref(), Some("hvc1.1.6.L93.90"));
        assert_eq!(codec_string(&CodecParams::new(Codec::Mjpeg, 1, 1)), None);
        assert_eq!(codec_string(&CodecParams::new(Codec::H264, 1, 1)), None);
    }
}

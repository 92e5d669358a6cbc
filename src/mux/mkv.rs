//! Matroska and WebM muxer (RFC 9559; WebM is its VP9/VP8/AV1 subset).
//!
//! Live-friendly: the Segment and each Cluster are written with the unknown
//! size, and every SimpleBlock goes out as soon as its packet arrives, so a
//! file cut anywhere plays up to its last whole block. A Cluster starts at
//! every keyframe (and when a block's 16-bit relative timestamp would
//! overflow). On finish the sizes are patched in, the Cues are appended, and
//! the SeekHead and Duration are written into Void space reserved for them,
//! so the finished file seeks.
//!
//! Timestamps are in milliseconds (TimestampScale 1 000 000 ns), counted
//! from the first packet's DTS so that no block time is negative.

use std::sync::Arc;

use super::ebml::{UNKNOWN_SIZE, put_bytes, put_float, put_id, put_master, put_size, put_size_len, put_uint, void};
use super::{MuxError, Muxer, Output, Patch, Sample, Trailer, to_units};
use crate::media::{Codec, CodecParams, Packet};

/// Elements at the Segment's level (RFC 9559 §5.1), which end an unknown-size Cluster.
pub const TOP_LEVEL: [u32; 7] = [
    id::CLUSTER,
    id::CUES,
    id::INFO,
    id::TRACKS,
    id::SEEK_HEAD,
    0x1043_A770, // Chapters
    0x1254_C367, // Tags
];

/// Element IDs used here (RFC 9559 §5.1).
#[allow(missing_docs)]
pub mod id {
    pub const EBML: u32 = 0x1A45_DFA3;
    pub const EBML_VERSION: u32 = 0x4286;
    pub const EBML_READ_VERSION: u32 = 0x42F7;
    pub const EBML_MAX_ID_LENGTH: u32 = 0x42F2;
    pub const EBML_MAX_SIZE_LENGTH: u32 = 0x42F3;
    pub const DOC_TYPE: u32 = 0x4282;
    pub const DOC_TYPE_VERSION: u32 = 0x4287;
    pub const DOC_TYPE_READ_VERSION: u32 = 0x4285;
    pub const SEGMENT: u32 = 0x1853_8067;
    pub const SEEK_HEAD: u32 = 0x114D_9B74;
    pub const SEEK: u32 = 0x4DBB;
    pub const SEEK_ID: u32 = 0x53AB;
    pub const SEEK_POSITION: u32 = 0x53AC;
    pub const INFO: u32 = 0x1549_A966;
    pub const TIMESTAMP_SCALE: u32 = 0x2A_D7B1;
    pub const DURATION: u32 = 0x4489;
    pub const MUXING_APP: u32 = 0x4D80;
    pub const WRITING_APP: u32 = 0x5741;
    pub const TRACKS: u32 = 0x1654_AE6B;
    pub const TRACK_ENTRY: u32 = 0xAE;
    pub const TRACK_NUMBER: u32 = 0xD7;
    pub const TRACK_UID: u32 = 0x73C5;
    pub const TRACK_TYPE: u32 = 0x83;
    pub const FLAG_LACING: u32 = 0x9C;
    pub const CODEC_ID: u32 = 0x86;
    pub const CODEC_PRIVATE: u32 = 0x63A2;
    pub const DEFAULT_DURATION: u32 = 0x23_E383;
    pub const VIDEO: u32 = 0xE0;
    pub const PIXEL_WIDTH: u32 = 0xB0;
    pub const PIXEL_HEIGHT: u32 = 0xBA;
    pub const CLUSTER: u32 = 0x1F43_B675;
    pub const TIMESTAMP: u32 = 0xE7;
    pub const SIMPLE_BLOCK: u32 = 0xA3;
    pub const BLOCK_GROUP: u32 = 0xA0;
    pub const BLOCK: u32 = 0xA1;
    pub const CUES: u32 = 0x1C53_BB6B;
    pub const CUE_POINT: u32 = 0xBB;
    pub const CUE_TIME: u32 = 0xB3;
    pub const CUE_TRACK_POSITIONS: u32 = 0xB7;
    pub const CUE_TRACK: u32 = 0xF7;
    pub const CUE_CLUSTER_POSITION: u32 = 0xF1;
    pub const VOID: u32 = 0xEC;
}

/// Bytes reserved after the Segment header for the SeekHead.
const SEEK_HEAD_SPACE: usize = 96;
/// Bytes reserved in Info for the Duration element (ID 2 + size 1 + float 8).
const DURATION_SPACE: usize = 11;

/// The Matroska `CodecID` of a codec (none for vicodec's test codec).
pub fn codec_id(codec: Codec) -> Option<&'static str> {
    Some(match codec {
        Codec::H264 => "V_MPEG4/ISO/AVC",
        Codec::H265 => "V_MPEGH/ISO/HEVC",
        Codec::Vp9 => "V_VP9",
        Codec::Mjpeg => "V_MJPEG",
        Codec::Fwht => return None,
    })
}

/// Matroska/WebM muxer for one video track.
#[derive(Debug)]
pub struct MkvMuxer {
    webm: bool,
    pos: u64,
    segment_size_at: u64,
    segment_data: u64,
    info_at: u64,
    tracks_at: u64,
    duration_at: u64,
    params: Option<Arc<CodecParams>>,
    base: i64,
    /// Open cluster: (offset, timestamp in ms).
    cluster: Option<(u64, i64)>,
    /// Closed clusters: (offset, payload size).
    closed: Vec<(u64, u64)>,
    /// (time in ms, cluster offset from the segment's data).
    cues: Vec<(i64, u64)>,
    end_ms: i64,
    buf: Vec<u8>,
}

impl MkvMuxer {
    /// A Matroska muxer (`webm`: restricted to VP9, DocType `webm`).
    pub fn new(webm: bool) -> Self {
        MkvMuxer {
            webm,
            pos: 0,
            segment_size_at: 0,
            segment_data: 0,
            info_at: 0,
            tracks_at: 0,
            duration_at: 0,
            params: None,
            base: 0,
            cluster: None,
            closed: Vec::new(),
            cues: Vec::new(),
            end_ms: 0,
            buf: Vec::new(),
        }
    }

    fn emit(&mut self, out: &mut Output) {
        out.put(&self.buf);
        self.pos += self.buf.len() as u64;
        self.buf.clear();
    }

    fn header(&mut self, packet: &Packet, out: &mut Output) -> Result<(), MuxError> {
        let codec_id = codec_id(packet.codec).ok_or(MuxError::Unsupported {
            container: "Matroska",
            codec: packet.codec,
            hint: "it carries h264, h265, vp9 and mjpeg",
        })?;
        if self.webm && packet.codec != Codec::Vp9 {
            return Err(MuxError::Unsupported {
                container: "WebM",
                codec: packet.codec,
                hint: "it carries vp9; use .mkv for h264, h265 and mjpeg",
            });
        }
        let p = &packet.params;
        if matches!(packet.codec, Codec::H264 | Codec::H265) && p.extradata.is_empty() {
            return Err(MuxError::bad(
                packet,
                "no avcC/hvcC record: the stream has not sent its parameter sets",
            ));
        }
        let doc_type = if self.webm { "webm" } else { "matroska" };
        let b = &mut self.buf;
        put_master(b, id::EBML, |b| {
            put_uint(b, id::EBML_VERSION, 1);
            put_uint(b, id::EBML_READ_VERSION, 1);
            put_uint(b, id::EBML_MAX_ID_LENGTH, 4);
            put_uint(b, id::EBML_MAX_SIZE_LENGTH, 8);
            put_bytes(b, id::DOC_TYPE, doc_type.as_bytes());
            put_uint(b, id::DOC_TYPE_VERSION, 4);
            put_uint(b, id::DOC_TYPE_READ_VERSION, 2);
        });
        put_id(b, id::SEGMENT);
        self.segment_size_at = b.len() as u64;
        b.extend_from_slice(&UNKNOWN_SIZE);
        self.segment_data = b.len() as u64;
        b.extend_from_slice(&void(SEEK_HEAD_SPACE));
        self.info_at = b.len() as u64;
        put_master(b, id::INFO, |b| {
            put_uint(b, id::TIMESTAMP_SCALE, 1_000_000);
            put_bytes(b, id::MUXING_APP, b"eyrie");
            put_bytes(
                b,
                id::WRITING_APP,
                concat!("eyrie ", env!("CARGO_PKG_VERSION")).as_bytes(),
            );
            b.extend_from_slice(&void(DURATION_SPACE)); // Info's last child
        });
        self.tracks_at = b.len() as u64;
        self.duration_at = self.tracks_at - DURATION_SPACE as u64;
        put_master(b, id::TRACKS, |b| {
            put_master(b, id::TRACK_ENTRY, |b| {
                put_uint(b, id::TRACK_NUMBER, 1);
                put_uint(b, id::TRACK_UID, 1);
                put_uint(b, id::TRACK_TYPE, 1);
                put_uint(b, id::FLAG_LACING, 0);
                put_bytes(b, id::CODEC_ID, codec_id.as_bytes());
                if !p.extradata.is_empty() {
                    put_bytes(b, id::CODEC_PRIVATE, &p.extradata);
                }
                if packet.duration > 0 {
                    put_uint(b, id::DEFAULT_DURATION, packet.duration as u64);
                }
                put_master(b, id::VIDEO, |b| {
                    put_uint(b, id::PIXEL_WIDTH, p.width as u64);
                    put_uint(b, id::PIXEL_HEIGHT, p.height as u64);
                });
            });
        });
        self.params = Some(Arc::clone(p));
        self.base = packet.dts;
        self.emit(out);
        Ok(())
    }

    fn close_cluster(&mut self) {
        if let Some((at, _)) = self.cluster.take() {
            self.closed.push((at, self.pos - at - 12));
        }
    }
}

impl Muxer for MkvMuxer {
    fn push(&mut self, packet: &Packet, out: &mut Output) -> Result<(), MuxError> {
        match &self.params {
            None => self.header(packet, out)?,
            Some(p) if p.codec != packet.codec => {
                return Err(MuxError::bad(
                    packet,
                    format!("codec differs from the track's {}", p.codec),
                ));
            }
            Some(_) => {}
        }
        let ms = to_units(packet.pts - self.base, 1000);
        if ms < 0 {
            return Err(MuxError::bad(packet, "pts before the first packet's dts"));
        }
        let rel_ok = |c: Option<(u64, i64)>| c.is_some_and(|(_, t)| i16::try_from(ms - t).is_ok());
        if packet.keyframe || !rel_ok(self.cluster) {
            self.close_cluster();
            self.cluster = Some((self.pos, ms));
            if packet.keyframe {
                self.cues.push((ms, self.pos - self.segment_data));
            }
            put_id(&mut self.buf, id::CLUSTER);
            self.buf.extend_from_slice(&UNKNOWN_SIZE);
            put_uint(&mut self.buf, id::TIMESTAMP, ms as u64);
        }
        let cluster_ms = self.cluster.map_or(0, |(_, t)| t);
        let sample = Sample::new(packet);
        let size = sample.size();
        put_id(&mut self.buf, id::SIMPLE_BLOCK);
        put_size(&mut self.buf, 4 + size);
        self.buf.push(0x81); // track 1
        self.buf.extend_from_slice(&((ms - cluster_ms) as i16).to_be_bytes());
        self.buf.push(if packet.keyframe { 0x80 } else { 0x00 });
        self.emit(out);
        sample.put(out);
        self.pos += size;
        self.end_ms = self.end_ms.max(ms + to_units(packet.duration, 1000));
        Ok(())
    }

    fn finish(&mut self, out: &mut Output) -> Result<Trailer, MuxError> {
        if self.params.is_none() {
            return Ok(Trailer::default());
        }
        self.close_cluster();
        let cues_at = self.pos;
        let cues = std::mem::take(&mut self.cues);
        put_master(&mut self.buf, id::CUES, |b| {
            for (ms, at) in &cues {
                put_master(b, id::CUE_POINT, |b| {
                    put_uint(b, id::CUE_TIME, *ms as u64);
                    put_master(b, id::CUE_TRACK_POSITIONS, |b| {
                        put_uint(b, id::CUE_TRACK, 1);
                        put_uint(b, id::CUE_CLUSTER_POSITION, *at);
                    });
                });
            }
        });
        self.emit(out);

        let mut patches = Vec::with_capacity(self.closed.len() + 3);
        for &(at, size) in &self.closed {
            let mut b = Vec::with_capacity(8);
            put_size_len(&mut b, size, 8);
            patches.push(Patch {
                offset: at + 4,
                bytes: b,
            });
        }
        let mut b = Vec::with_capacity(8);
        put_size_len(&mut b, self.pos - self.segment_data, 8);
        patches.push(Patch {
            offset: self.segment_size_at,
            bytes: b,
        });
        let mut b = Vec::with_capacity(DURATION_SPACE);
        put_float(&mut b, id::DURATION, self.end_ms as f64);
        patches.push(Patch {
            offset: self.duration_at,
            bytes: b,
        });
        let mut seek = Vec::with_capacity(SEEK_HEAD_SPACE);
        put_master(&mut seek, id::SEEK_HEAD, |b| {
            for (element, at) in [
                (id::INFO, self.info_at),
                (id::TRACKS, self.tracks_at),
                (id::CUES, cues_at),
            ] {
                put_master(b, id::SEEK, |b| {
                    put_bytes(b, id::SEEK_ID, &element.to_be_bytes());
                    put_uint(b, id::SEEK_POSITION, at - self.segment_data);
                });
            }
        });
        let rest = SEEK_HEAD_SPACE - seek.len();
        assert!(rest >= 2, "SeekHead outgrew its reserved space");
        seek.extend_from_slice(&void(rest));
        patches.push(Patch {
            offset: self.segment_data,
            bytes: seek,
        });
        Ok(Trailer {
            patches,
            prepend: Vec::new(),
        })
    }
}

//! Matroska/WebM reader (RFC 9559): the first video track's codec, private
//! data and size; its SimpleBlocks and Blocks from known- and unknown-size
//! Clusters. Decode times are reconstructed from presentation times
//! (Matroska stores only the latter).

use std::sync::Arc;

use bytes::Bytes;

use super::{fill_durations, reconstruct_dts};
use crate::codec::ParamFollower;
use crate::codec::{CodecError, vp9};
use crate::media::{Codec, CodecParams, Packet};
use crate::mux::ebml::{Header, read_float, read_header, read_uint, read_vint};
use crate::mux::mkv::{TOP_LEVEL, id};

#[derive(Default)]
struct Track {
    number: u64,
    video: bool,
    codec_id: String,
    private: Vec<u8>,
    width: u32,
    height: u32,
    default_duration: i64,
}

struct Reader<'a> {
    data: &'a Bytes,
    scale: i64,
    track: Option<Track>,
    follower: Option<(Codec, usize, ParamFollower)>,
    packets: Vec<Packet>,
    source: &'a Arc<str>,
}

/// Reads the video packets of a Matroska or WebM file.
pub fn read(data: &Bytes, source: &Arc<str>) -> Result<Vec<Packet>, CodecError> {
    let ebml = element(data, 0)?;
    if ebml.0.id != id::EBML {
        return Err(CodecError::new(0, "not an EBML file"));
    }
    let mut pos = ebml.1;
    let segment = element(data, pos)?;
    if segment.0.id != id::SEGMENT {
        return Err(CodecError::new(pos, "no Segment after the EBML header"));
    }
    pos += segment.0.len;
    let end = segment
        .0
        .size
        .map_or(data.len(), |s| (pos as u64 + s).min(data.len() as u64) as usize);
    let mut r = Reader {
        data,
        scale: 1_000_000,
        track: None,
        follower: None,
        packets: Vec::new(),
        source,
    };
    while pos < end {
        let (h, next) = match element(data, pos) {
            Ok(e) => e,
            // A file cut while writing ends inside an element: keep what was whole.
            Err(_) if r.track.is_some() => break,
            Err(e) => return Err(e),
        };
        let body = pos + h.len;
        match h.id {
            id::INFO => r.info(body, next)?,
            id::TRACKS => r.tracks(body, next)?,
            id::CLUSTER => {
                let stop = r.cluster(body, h.size.map_or(end, |_| next.min(end)))?;
                pos = stop;
                continue;
            }
            _ => {}
        }
        pos = next;
    }
    let track = r.track.as_ref().ok_or_else(|| CodecError::new(0, "no video track"))?;
    let fallback = track.default_duration;
    let mut packets = r.packets;
    reconstruct_dts(&mut packets);
    fill_durations(&mut packets, fallback);
    Ok(packets)
}

/// The element at `pos`: its header and the offset after it (clamped for
/// unknown sizes to the end of the data).
fn element(data: &[u8], pos: usize) -> Result<(Header, usize), CodecError> {
    let h = read_header(data.get(pos..).unwrap_or_default())
        .ok_or_else(|| CodecError::new(pos, "malformed or truncated EBML element header"))?;
    let next = match h.size {
        Some(s) => {
            let next = pos as u64 + h.len as u64 + s;
            if next > data.len() as u64 {
                return Err(CodecError::new(
                    pos,
                    format!("element 0x{:X} of {s} bytes overruns the file", h.id),
                ));
            }
            next as usize
        }
        None => data.len(),
    };
    Ok((h, next))
}

/// The children of the element whose body is `from..to`: (id, body range).
fn children(data: &[u8], from: usize, to: usize) -> Result<Vec<(u32, usize, usize)>, CodecError> {
    let mut out = Vec::new();
    let mut pos = from;
    while pos < to {
        let (h, next) = element(&data[..to], pos)?;
        out.push((h.id, pos + h.len, next));
        pos = next;
    }
    Ok(out)
}

impl Reader<'_> {
    fn uint(&self, from: usize, to: usize) -> Result<u64, CodecError> {
        read_uint(&self.data[from..to]).ok_or_else(|| CodecError::new(from, "integer longer than 8 bytes"))
    }

    fn info(&mut self, from: usize, to: usize) -> Result<(), CodecError> {
        for (eid, a, b) in children(self.data, from, to)? {
            if eid == id::TIMESTAMP_SCALE {
                self.scale = self.uint(a, b)? as i64;
                if self.scale <= 0 || self.scale > 1_000_000_000 {
                    return Err(CodecError::new(a, format!("TimestampScale {}", self.scale)));
                }
            }
            if eid == id::DURATION && read_float(&self.data[a..b]).is_none() {
                return Err(CodecError::new(a, "Duration is not a 4- or 8-byte float"));
            }
        }
        Ok(())
    }

    fn tracks(&mut self, from: usize, to: usize) -> Result<(), CodecError> {
        for (eid, a, b) in children(self.data, from, to)? {
            if eid != id::TRACK_ENTRY || self.track.is_some() {
                continue;
            }
            let mut t = Track::default();
            for (tid, a, b) in children(self.data, a, b)? {
                match tid {
                    id::TRACK_NUMBER => t.number = self.uint(a, b)?,
                    id::TRACK_TYPE => t.video = self.uint(a, b)? == 1,
                    id::CODEC_ID => t.codec_id = String::from_utf8_lossy(&self.data[a..b]).into_owned(),
                    id::CODEC_PRIVATE => t.private = self.data[a..b].to_vec(),
                    id::DEFAULT_DURATION => t.default_duration = self.uint(a, b)? as i64,
                    id::VIDEO => {
                        for (vid, a, b) in children(self.data, a, b)? {
                            match vid {
                                id::PIXEL_WIDTH => t.width = self.uint(a, b)? as u32,
                                id::PIXEL_HEIGHT => t.height = self.uint(a, b)? as u32,
                                _ => {}
                            }
                        }
                    }
                    _ => {}
                }
            }
            if !t.video {
                continue;
            }
            let codec = match t.codec_id.as_str() {
                "V_MPEG4/ISO/AVC" => Codec::H264,
                "V_MPEGH/ISO/HEVC" => Codec::H265,
                "V_VP9" => Codec::Vp9,
                "V_MJPEG" => Codec::Mjpeg,
                other => return Err(CodecError::new(a, format!("video codec {other} is not supported"))),
            };
            let length_size = match codec {
                Codec::H264 => t.private.get(4).map_or(4, |b| (b & 3) as usize + 1),
                Codec::H265 => t.private.get(21).map_or(4, |b| (b & 3) as usize + 1),
                _ => 0,
            };
            let params = CodecParams::new(codec, t.width, t.height).with_extradata(Bytes::from(t.private.clone()));
            self.follower = Some((codec, length_size, ParamFollower::new(codec, Some(params))));
            self.track = Some(t);
        }
        Ok(())
    }

    /// Reads a Cluster's blocks; returns where the Cluster ends.
    fn cluster(&mut self, from: usize, to: usize) -> Result<usize, CodecError> {
        let mut cluster_ts = 0i64;
        let mut pos = from;
        while pos < to {
            let Ok((h, next)) = element(&self.data[..to], pos) else {
                return Ok(to); // cut while writing: drop the partial block
            };
            if h.size.is_none() || TOP_LEVEL.contains(&h.id) {
                return Ok(pos); // the next top-level element ends an unknown-size Cluster
            }
            let (a, b) = (pos + h.len, next);
            match h.id {
                id::TIMESTAMP => cluster_ts = self.uint(a, b)? as i64,
                id::SIMPLE_BLOCK => self.block(a, b, cluster_ts)?,
                id::BLOCK_GROUP => {
                    for (gid, a, b) in children(self.data, a, b)? {
                        if gid == id::BLOCK {
                            self.block(a, b, cluster_ts)?;
                        }
                    }
                }
                _ => {}
            }
            pos = next;
        }
        Ok(to)
    }

    fn block(&mut self, from: usize, to: usize, cluster_ts: i64) -> Result<(), CodecError> {
        let (track, n) =
            read_vint(&self.data[from..to]).ok_or_else(|| CodecError::new(from, "bad block track number"))?;
        let Some(t) = &self.track else { return Ok(()) };
        if track != t.number {
            return Ok(());
        }
        let head = from + n;
        let Some(h) = self.data.get(head..head + 3).filter(|_| head + 3 <= to) else {
            return Err(CodecError::new(from, "block header truncated"));
        };
        let rel = i16::from_be_bytes([h[0], h[1]]) as i64;
        let flags = h[2];
        if flags & 0x06 != 0 {
            return Err(CodecError::new(head + 2, "laced blocks are not supported"));
        }
        let payload = head + 3;
        let (codec, length_size, follower) = self.follower.as_mut().expect("a track has a follower");
        let (data, params, nal_key) = match codec {
            Codec::H264 | Codec::H265 => follower.follow_sample(&self.data[payload..to], *length_size, payload)?,
            _ => {
                let data = self.data.slice(payload..to);
                let (params, nal_key) = follower.follow(&data, payload)?;
                (data, params, nal_key)
            }
        };
        // Keyframes come from the payload, whatever the block flags say.
        let keyframe = match codec {
            Codec::H264 | Codec::H265 => nal_key,
            Codec::Vp9 => vp9::packet_header(&data, payload)?.keyframe,
            Codec::Mjpeg | Codec::Fwht => true,
        };
        let pts = cluster_ts.saturating_add(rel).saturating_mul(self.scale);
        self.packets.push(Packet {
            meta: Default::default(),
            codec: *codec,
            data,
            pts,
            dts: pts,
            duration: t.default_duration,
            keyframe,
            params,
            source: Arc::clone(self.source),
            seq: self.packets.len() as u64,
            capture_utc: std::time::SystemTime::UNIX_EPOCH,
        });
        Ok(())
    }
}

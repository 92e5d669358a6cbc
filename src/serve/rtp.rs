//! RTP packetizers (sans-IO): one coded picture in, the RTP packets that carry
//! it out, each a small header and a slice of the picture's own bytes.
//!
//! - RTP fixed header: RFC 3550 §5.1 (version 2, no padding, no extension,
//!   no CSRC), a 90 kHz clock for video (RFC 3551 §5).
//! - H.264, RFC 6184 (packetization-mode 1, §5.6–§5.8): NAL units that fit
//!   go as single NAL unit packets; parameter sets and other small non-VCL
//!   units are aggregated into one STAP-A (§5.7.1); larger units are split
//!   into FU-A fragments (§5.8).
//! - H.265, RFC 7798 (no DONL, §4.4): single NAL unit packets, aggregation
//!   packets (AP, type 48, §4.4.2) and fragmentation units (FU, type 49, §4.4.3).
//! - JPEG, RFC 2435: the main JPEG header (§3.1), a restart marker header
//!   when the image has restart intervals (§3.1.7, types 64/65), and the
//!   quantization tables in band (Q = 255, §3.1.8) in the first packet of
//!   each picture; the payload is the entropy-coded scan. What RFC 2435
//!   cannot carry is refused with an error that says so: images wider or
//!   taller than 2040 pixels, anything but 8-bit baseline YUV with 4:2:0 or
//!   4:2:2 sampling (3 components), tables other than the standard Huffman
//!   tables (which the receiver assumes; they are not checked).
//!
//! For H.264/H.265, a keyframe whose picture does not carry its parameter
//! sets gets them from the stream's `avcC`/`hvcC` in front of it, so a
//! client that joins late, or a stream whose format changed, always has
//! them in band.
//!
//! **Work once per stream.** A packet's body is a slice ([`Bytes`]) of the
//! coded picture: the payload is never copied, and every client gets the same
//! bodies. Its head (RTP header and payload header, at most 150 bytes) is
//! small; a client that needs its own sequence numbers and timestamps patches its copy of
//! the head ([`RtpPacket::head_for`]).

use std::time::SystemTime;

use bytes::{BufMut, Bytes, BytesMut};

use crate::codec::{h264, h265, nal};
use crate::media::{Codec, CodecParams, Packet};

/// The payload type H.264 and H.265 use (dynamic, RFC 3551 §3).
pub const DYNAMIC_PAYLOAD_TYPE: u8 = 96;
/// The static payload type of JPEG (RFC 3551 §6).
pub const JPEG_PAYLOAD_TYPE: u8 = 26;
/// The RTP clock rate of video, Hz.
pub const CLOCK_RATE: u32 = 90_000;
/// The default largest RTP packet (header included), bytes.
pub const DEFAULT_MTU: usize = 1200;
/// The smallest MTU that leaves room for every header.
pub const MIN_MTU: usize = 200;
/// The largest JPEG side RFC 2435 can describe (255 blocks of 8).
pub const JPEG_MAX_SIDE: u32 = 2040;

/// Why a picture cannot be packetized.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacketizeError {
    /// A codec RTP has no payload format for here.
    #[error("{0} cannot be sent over RTP (H.264, H.265 and MJPEG can)")]
    Codec(Codec),
    /// A JPEG image RFC 2435 cannot describe.
    #[error("this JPEG cannot be sent over RTP (RFC 2435): {0}")]
    Jpeg(String),
}

/// One RTP packet: a head (RTP header and payload headers) and a body that
/// is a slice of the coded picture.
#[derive(Clone, Debug)]
pub struct RtpPacket {
    /// RTP header (12 bytes), then the payload's own header(s).
    pub head: Bytes,
    /// The rest of the payload.
    pub body: Bytes,
}

impl RtpPacket {
    /// Bytes on the wire.
    pub fn len(&self) -> usize {
        self.head.len() + self.body.len()
    }

    /// Never: a packet has at least its header.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The sequence number.
    pub fn seq(&self) -> u16 {
        u16::from_be_bytes([self.head[2], self.head[3]])
    }

    /// The payload's length in bytes (what RTCP counts as octets).
    pub fn payload_len(&self) -> usize {
        self.len() - 12
    }

    /// Appends the head with sequence number `seq` and its timestamp moved
    /// by `offset` to `out` (a client's own numbering).
    pub fn head_for(&self, seq: u16, offset: u32, out: &mut Vec<u8>) {
        let at = out.len();
        out.extend_from_slice(&self.head);
        out[at + 2..at + 4].copy_from_slice(&seq.to_be_bytes());
        let timestamp = u32::from_be_bytes([self.head[4], self.head[5], self.head[6], self.head[7]]);
        out[at + 4..at + 8].copy_from_slice(&timestamp.wrapping_add(offset).to_be_bytes());
    }

    /// The whole packet as one buffer (tests and tools; the servers send
    /// head and body without joining them).
    pub fn to_vec(&self) -> Vec<u8> {
        [&self.head[..], &self.body[..]].concat()
    }
}

/// The RTP packets of one picture.
#[derive(Clone, Debug)]
pub struct RtpFrame {
    /// Its RTP timestamp (presentation time, 90 kHz).
    pub timestamp: u32,
    /// True when a decoder can start here.
    pub keyframe: bool,
    /// When the picture was captured (UTC): RTCP sender reports map
    /// `timestamp` to it.
    pub capture_utc: SystemTime,
    /// Its presentation time on the pipeline clock, ns.
    pub pts: i64,
    /// The packets, in order; the last has the marker bit.
    pub packets: Vec<RtpPacket>,
}

impl RtpFrame {
    /// Bytes of all its packets on the wire.
    pub fn bytes(&self) -> usize {
        self.packets.iter().map(RtpPacket::len).sum()
    }
}

/// The identity and size limits of one RTP stream.
#[derive(Clone, Copy, Debug)]
pub struct RtpOptions {
    /// Largest packet, header included (at least [`MIN_MTU`]).
    pub mtu: usize,
    /// Synchronization source.
    pub ssrc: u32,
    /// Sequence number of the first packet.
    pub first_seq: u16,
    /// RTP timestamp of pipeline time 0.
    pub timestamp_base: u32,
}

/// Packetizes one stream's pictures.
#[derive(Debug)]
pub struct Packetizer {
    options: RtpOptions,
    payload_type: u8,
    codec: Codec,
    seq: u16,
    /// Parameter sets (NAL units) to put in front of keyframes that lack them.
    parameter_sets: Vec<Bytes>,
}

impl Packetizer {
    /// A packetizer of `params`' codec.
    pub fn new(params: &CodecParams, options: RtpOptions) -> Result<Packetizer, PacketizeError> {
        let payload_type = match params.codec {
            Codec::H264 | Codec::H265 => DYNAMIC_PAYLOAD_TYPE,
            Codec::Mjpeg => JPEG_PAYLOAD_TYPE,
            other => return Err(PacketizeError::Codec(other)),
        };
        let mut p = Packetizer {
            options: RtpOptions {
                mtu: options.mtu.max(MIN_MTU),
                ..options
            },
            payload_type,
            codec: params.codec,
            seq: options.first_seq,
            parameter_sets: Vec::new(),
        };
        p.set_params(params)?;
        Ok(p)
    }

    /// Takes the stream's new parameters (a format change): the sequence
    /// numbers and timestamps go on; the codec must stay the same.
    pub fn set_params(&mut self, params: &CodecParams) -> Result<(), PacketizeError> {
        if params.codec != self.codec {
            return Err(PacketizeError::Codec(params.codec));
        }
        self.parameter_sets = parameter_sets(params)
            .into_iter()
            .map(|n| params.extradata.slice_ref(n))
            .collect();
        Ok(())
    }

    /// The payload type it sends.
    pub fn payload_type(&self) -> u8 {
        self.payload_type
    }

    /// The sequence number of the next packet.
    pub fn next_seq(&self) -> u16 {
        self.seq
    }

    /// The RTP timestamp of pipeline time `ns`.
    pub fn timestamp_of(&self, ns: i64) -> u32 {
        let ticks = i128::from(ns) * i128::from(CLOCK_RATE) / 1_000_000_000;
        self.options.timestamp_base.wrapping_add(ticks as u32)
    }

    /// The packets of `packet`'s picture.
    pub fn push(&mut self, packet: &Packet) -> Result<RtpFrame, PacketizeError> {
        let timestamp = self.timestamp_of(packet.pts);
        let mut payloads = Vec::new();
        match self.codec {
            Codec::H264 | Codec::H265 => self.nal_payloads(packet, &mut payloads),
            _ => jpeg_payloads(&packet.data, self.options.mtu - 12, &mut payloads)?,
        }
        let last = payloads.len().saturating_sub(1);
        let packets = payloads
            .into_iter()
            .enumerate()
            .map(|(i, (header, body))| {
                let mut head = BytesMut::with_capacity(12 + header.len());
                head.put_u8(0x80);
                head.put_u8(self.payload_type | if i == last { 0x80 } else { 0 });
                head.put_u16(self.seq);
                head.put_u32(timestamp);
                head.put_u32(self.options.ssrc);
                head.put_slice(&header);
                self.seq = self.seq.wrapping_add(1);
                RtpPacket {
                    head: head.freeze(),
                    body,
                }
            })
            .collect();
        Ok(RtpFrame {
            timestamp,
            keyframe: packet.keyframe,
            capture_utc: packet.capture_utc,
            pts: packet.pts,
            packets,
        })
    }

    /// H.264/H.265: (payload header, body) pairs.
    fn nal_payloads(&self, packet: &Packet, out: &mut Vec<(Vec<u8>, Bytes)>) {
        let scheme = Scheme::of(self.codec);
        // Units shorter than their own header are malformed: not sent.
        let mut units: Vec<Bytes> = nal::annexb(&packet.data)
            .filter(|n| n.data.len() >= scheme.header_len())
            .map(|n| packet.data.slice_ref(n.data))
            .collect();
        let has_sets = units.iter().any(|n| scheme.is_parameter_set(n));
        let mut small: Vec<Bytes> = Vec::new();
        if packet.keyframe && !has_sets {
            // An access unit delimiter stays first (H.264 §7.4.1.2.3, H.265 §7.4.2.4.4).
            if units.first().is_some_and(|n| scheme.is_delimiter(n)) {
                small.push(units.remove(0));
            }
            small.extend(self.parameter_sets.iter().cloned());
        }
        let room = self.options.mtu - 12;
        for unit in units {
            if !scheme.is_vcl(&unit) && unit.len() < room / 2 {
                small.push(unit);
                continue;
            }
            scheme.aggregate(std::mem::take(&mut small), room, out);
            scheme.single_or_fragments(unit, room, out);
        }
        scheme.aggregate(small, room, out);
    }
}

/// The NAL units of an `avcC`/`hvcC` record (none when it is empty or bad;
/// units shorter than a NAL header are left out).
pub fn parameter_sets(params: &CodecParams) -> Vec<&[u8]> {
    let units = match params.codec {
        Codec::H264 => h264::parse_avcc(&params.extradata)
            .map(|(sps, pps)| sps.into_iter().chain(pps).collect())
            .unwrap_or_default(),
        Codec::H265 => h265::parse_hvcc(&params.extradata).unwrap_or_default(),
        _ => Vec::new(),
    };
    units.into_iter().filter(|n| n.len() >= 2).collect()
}

/// How H.264 and H.265 differ in packetization: the size of the NAL header,
/// the types of aggregation and fragmentation packets.
#[derive(Clone, Copy)]
struct Scheme {
    codec: Codec,
}

impl Scheme {
    fn of(codec: Codec) -> Scheme {
        Scheme { codec }
    }

    fn header_len(self) -> usize {
        if self.codec == Codec::H264 { 1 } else { 2 }
    }

    fn is_vcl(self, nal: &[u8]) -> bool {
        match self.codec {
            Codec::H264 => h264::is_vcl(h264::nal_type(nal)),
            _ => h265::is_vcl(h265::nal_type(nal)),
        }
    }

    fn is_delimiter(self, nal: &[u8]) -> bool {
        match self.codec {
            Codec::H264 => h264::nal_type(nal) == 9,
            _ => h265::nal_type(nal) == 35,
        }
    }

    fn is_parameter_set(self, nal: &[u8]) -> bool {
        match self.codec {
            Codec::H264 => matches!(h264::nal_type(nal), 7 | 8),
            _ => matches!(h265::nal_type(nal), 32..=34),
        }
    }

    /// Small units: alone when one, else STAP-A / AP packets (each unit with
    /// a 16-bit size), split where a packet would overflow `room`.
    fn aggregate(self, units: Vec<Bytes>, room: usize, out: &mut Vec<(Vec<u8>, Bytes)>) {
        let mut group: Vec<Bytes> = Vec::new();
        let mut size = self.header_len();
        let flush = |group: &mut Vec<Bytes>, out: &mut Vec<(Vec<u8>, Bytes)>| match group.len() {
            0 => {}
            1 => out.push((Vec::new(), group.pop().expect("one unit"))),
            _ => {
                let mut body = BytesMut::new();
                match self.codec {
                    // STAP-A: F and NRI of the most important unit, type 24.
                    Codec::H264 => body.put_u8(group.iter().map(|n| n[0] & 0xE0).max().unwrap_or(0) | 24),
                    // AP: type 48, the lowest layer id and temporal id.
                    _ => {
                        let layer = group.iter().map(|n| h265_layer(n)).min().unwrap_or(0);
                        let tid = group.iter().map(|n| n[1] & 7).min().unwrap_or(1);
                        body.put_u16(48 << 9 | u16::from(layer) << 3 | u16::from(tid));
                    }
                }
                for n in group.drain(..) {
                    body.put_u16(n.len() as u16);
                    body.put_slice(&n);
                }
                out.push((Vec::new(), body.freeze()));
            }
        };
        for unit in units {
            if size + 2 + unit.len() > room {
                flush(&mut group, out);
                size = self.header_len();
            }
            if unit.len() + 2 + self.header_len() > room {
                // Too large to share a packet (only with a tiny MTU).
                self.single_or_fragments(unit, room, out);
                continue;
            }
            size += 2 + unit.len();
            group.push(unit);
        }
        flush(&mut group, out);
    }

    /// A unit that fits goes alone; a larger one as FU-A / FU fragments.
    fn single_or_fragments(self, unit: Bytes, room: usize, out: &mut Vec<(Vec<u8>, Bytes)>) {
        if unit.len() <= room {
            out.push((Vec::new(), unit));
            return;
        }
        let h = self.header_len();
        let (indicator, nal_type): (Vec<u8>, u8) = match self.codec {
            Codec::H264 => (vec![unit[0] & 0xE0 | 28], unit[0] & 0x1F),
            _ => (vec![unit[0] & 0x81 | 49 << 1, unit[1]], h265::nal_type(&unit)),
        };
        let chunk = room - h - 1;
        let rest = unit.slice(h..);
        let count = rest.len().div_ceil(chunk);
        for i in 0..count {
            let mut header = indicator.clone();
            let start = if i == 0 { 0x80 } else { 0 };
            let end = if i + 1 == count { 0x40 } else { 0 };
            header.push(start | end | nal_type);
            out.push((header, rest.slice(i * chunk..((i + 1) * chunk).min(rest.len()))));
        }
    }
}

fn h265_layer(nal: &[u8]) -> u8 {
    (nal[0] & 1) << 5 | nal[1] >> 3
}

/// What RFC 2435 needs from a JPEG image.
struct JpegParts<'a> {
    /// 0 (4:2:2) or 1 (4:2:0), plus 64 with restart intervals.
    kind: u8,
    width8: u8,
    height8: u8,
    restart_interval: u16,
    /// Luma then chroma table, each 64 bytes (8-bit) or 128 (16-bit).
    tables: Vec<(&'a [u8], bool)>,
    /// The entropy-coded scan (after the SOS header, before EOI).
    scan: std::ops::Range<usize>,
}

/// Reads the segments of a baseline JPEG that RFC 2435 carries.
fn jpeg_parts(data: &[u8]) -> Result<JpegParts<'_>, PacketizeError> {
    let bad = |m: &str| PacketizeError::Jpeg(m.to_owned());
    if data.get(..2) != Some(&[0xFF, 0xD8]) {
        return Err(bad("no SOI marker"));
    }
    let mut pos = 2;
    let mut tables: [Option<(&[u8], bool)>; 4] = [None; 4];
    let mut restart_interval = 0;
    let mut frame: Option<(u8, u32, u32, [u8; 3])> = None;
    loop {
        while data.get(pos) == Some(&0xFF) && data.get(pos + 1) == Some(&0xFF) {
            pos += 1;
        }
        let (Some(&0xFF), Some(&marker)) = (data.get(pos), data.get(pos + 1)) else {
            return Err(PacketizeError::Jpeg(format!("expected a marker at byte {pos}")));
        };
        let len = data
            .get(pos + 2..pos + 4)
            .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
            .filter(|&l| l >= 2)
            .ok_or_else(|| PacketizeError::Jpeg(format!("bad segment length at byte {}", pos + 2)))?;
        let seg = data
            .get(pos + 4..pos + 2 + len)
            .ok_or_else(|| PacketizeError::Jpeg(format!("segment at byte {pos} runs past the end")))?;
        match marker {
            0xDB => {
                let mut s = seg;
                while let Some(&pq) = s.first() {
                    let wide = pq >> 4 != 0;
                    let n = if wide { 128 } else { 64 };
                    let table = s.get(1..1 + n).ok_or_else(|| bad("truncated DQT"))?;
                    *tables.get_mut(usize::from(pq & 3)).expect("2-bit id") = Some((table, wide));
                    s = &s[1 + n..];
                }
            }
            0xDD => restart_interval = seg.get(..2).map_or(0, |b| u16::from_be_bytes([b[0], b[1]])),
            0xC0 => {
                if seg.len() < 6 + 3 * 3 || seg[0] != 8 || seg[5] != 3 {
                    return Err(bad("only 8-bit baseline images of 3 components (YUV) can be sent"));
                }
                let height = u32::from(u16::from_be_bytes([seg[1], seg[2]]));
                let width = u32::from(u16::from_be_bytes([seg[3], seg[4]]));
                let sampling = [seg[7], seg[10], seg[13]];
                let tq = [seg[8], seg[11], seg[14]];
                frame = Some((sampling[0], width, height, tq));
                if sampling[1] != 0x11 || sampling[2] != 0x11 || tq[1] != tq[2] {
                    return Err(bad("chroma must be sampled 1×1 and share one quantization table"));
                }
            }
            0xC1..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC) => {
                return Err(bad("only baseline (SOF0) images can be sent"));
            }
            0xDA => {
                let (sampling, width, height, tq) =
                    frame.ok_or_else(|| bad("no frame header (SOF0) before the scan"))?;
                let kind = match sampling {
                    0x21 => 0,
                    0x22 => 1,
                    _ => return Err(bad("luma sampling must be 2×1 (4:2:2) or 2×2 (4:2:0)")),
                };
                if width > JPEG_MAX_SIDE || height > JPEG_MAX_SIDE {
                    return Err(PacketizeError::Jpeg(format!(
                        "{width}×{height} is larger than {JPEG_MAX_SIDE} pixels on a side"
                    )));
                }
                let table = |id: u8| {
                    tables[usize::from(id & 3)]
                        .ok_or_else(|| PacketizeError::Jpeg(format!("quantization table {id} is missing")))
                };
                let start = pos + 2 + len;
                let end = if data.ends_with(&[0xFF, 0xD9]) {
                    data.len() - 2
                } else {
                    data.len()
                };
                return Ok(JpegParts {
                    kind: kind | if restart_interval > 0 { 64 } else { 0 },
                    width8: width.div_ceil(8) as u8,
                    height8: height.div_ceil(8) as u8,
                    restart_interval,
                    tables: vec![table(tq[0])?, table(tq[1])?],
                    scan: start..end.max(start),
                });
            }
            0xD9 => return Err(bad("the image ends before its scan")),
            _ => {}
        }
        pos += 2 + len;
    }
}

/// JPEG: (payload header, body) pairs of at most `room` bytes.
fn jpeg_payloads(data: &Bytes, room: usize, out: &mut Vec<(Vec<u8>, Bytes)>) -> Result<(), PacketizeError> {
    let parts = jpeg_parts(data)?;
    let scan = data.slice(parts.scan.clone());
    let mut offset = 0;
    loop {
        let mut header = Vec::with_capacity(16 + 4 + 256);
        header.push(0);
        header.extend_from_slice(&(offset as u32).to_be_bytes()[1..]);
        header.extend_from_slice(&[parts.kind, 255, parts.width8, parts.height8]);
        if parts.restart_interval > 0 {
            header.extend_from_slice(&parts.restart_interval.to_be_bytes());
            header.extend_from_slice(&[0xFF, 0xFF]); // F = L = 1, count 0x3FFF: whole pictures only
        }
        if offset == 0 {
            let precision = parts
                .tables
                .iter()
                .enumerate()
                .fold(0u8, |p, (i, (_, wide))| p | u8::from(*wide) << i);
            let length: usize = parts.tables.iter().map(|(t, _)| t.len()).sum();
            header.extend_from_slice(&[0, precision]);
            header.extend_from_slice(&(length as u16).to_be_bytes());
            for (t, _) in &parts.tables {
                header.extend_from_slice(t);
            }
        }
        let take = room.saturating_sub(header.len()).min(scan.len() - offset);
        if take == 0 && offset < scan.len() {
            return Err(PacketizeError::Jpeg(format!(
                "its headers and quantization tables ({} bytes) leave no room in an RTP packet of the MTU",
                header.len()
            )));
        }
        out.push((header, scan.slice(offset..offset + take)));
        offset += take;
        if offset >= scan.len() {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn options(mtu: usize) -> RtpOptions {
        RtpOptions {
            mtu,
            ssrc: 0x1234_5678,
            first_seq: 65_530,
            timestamp_base: 1000,
        }
    }

    fn packet(codec: Codec, data: Vec<u8>, keyframe: bool, params: &Arc<CodecParams>) -> Packet {
        Packet {
            meta: Default::default(),
            codec,
            data: Bytes::from(data),
            pts: 1_000_000_000,
            dts: 1_000_000_000,
            duration: 33_333_333,
            capture_utc: SystemTime::UNIX_EPOCH,
            keyframe,
            params: Arc::clone(params),
            source: "cam".into(),
            seq: 0,
        }
    }

    /// Reassembles the NAL units of an H.264 frame (STAP-A, FU-A, single).
    fn h264_units(frame: &RtpFrame) -> Vec<Vec<u8>> {
        let mut units = Vec::new();
        let mut fu: Vec<u8> = Vec::new();
        for p in &frame.packets {
            let payload = &p.to_vec()[12..];
            match payload[0] & 0x1F {
                24 => {
                    let mut s = &payload[1..];
                    while s.len() >= 2 {
                        let n = usize::from(u16::from_be_bytes([s[0], s[1]]));
                        units.push(s[2..2 + n].to_vec());
                        s = &s[2 + n..];
                    }
                }
                28 => {
                    if payload[1] & 0x80 != 0 {
                        fu = vec![payload[0] & 0xE0 | payload[1] & 0x1F];
                    }
                    fu.extend_from_slice(&payload[2..]);
                    if payload[1] & 0x40 != 0 {
                        units.push(std::mem::take(&mut fu));
                    }
                }
                _ => units.push(payload.to_vec()),
            }
        }
        units
    }

    #[test]
    fn h264_pictures_come_back_whole_with_parameter_sets_in_front_of_keyframes() {
        let sps = [0x67, 0x42, 0xC0, 0x1E, 0xDA, 0x02, 0x80, 0xBF, 0xE5, 0x80];
        let pps = [0x68, 0xCE, 0x3C, 0x80];
        let avcc = h264::avcc(&[&sps], &[&pps]).unwrap();
        let params = Arc::new(CodecParams::new(Codec::H264, 640, 480).with_extradata(avcc.into()));
        let mut p = Packetizer::new(&params, options(300)).unwrap();
        let idr: Vec<u8> = [0x65].into_iter().chain((0..2000).map(|i| i as u8)).collect();
        let sei = vec![0x06, 5, 1, 0xAA, 0x80];
        let data = [&[0, 0, 0, 1][..], &sei, &[0, 0, 1], &idr].concat();
        let frame = p.push(&packet(Codec::H264, data, true, &params)).unwrap();
        assert_eq!(h264_units(&frame), vec![sps.to_vec(), pps.to_vec(), sei, idr]);
        assert!(frame.packets.iter().all(|p| p.len() <= 300));
        let seqs: Vec<u16> = frame.packets.iter().map(RtpPacket::seq).collect();
        assert_eq!(seqs[0], 65_530);
        assert!(seqs.windows(2).all(|w| w[1] == w[0].wrapping_add(1)), "{seqs:?}");
        let markers: Vec<bool> = frame.packets.iter().map(|p| p.head[1] & 0x80 != 0).collect();
        assert_eq!(markers.iter().filter(|m| **m).count(), 1);
        assert!(markers.last().unwrap());
        assert_eq!(frame.timestamp, 1000 + 90_000);
        // A picture that carries its own sets gets no second copy.
        let own = [&[0, 0, 0, 1][..], &sps, &[0, 0, 1], &pps, &[0, 0, 1, 0x65, 1, 2]].concat();
        let frame = p.push(&packet(Codec::H264, own, true, &params)).unwrap();
        assert_eq!(h264_units(&frame).len(), 3);
        // Not a keyframe: nothing added; one small slice goes alone.
        let frame = p
            .push(&packet(Codec::H264, vec![0, 0, 1, 0x41, 9, 9], false, &params))
            .unwrap();
        assert_eq!(frame.packets.len(), 1);
        assert_eq!(&frame.packets[0].to_vec()[12..], &[0x41, 9, 9]);
    }

    #[test]
    fn malformed_units_are_left_out_and_an_aud_stays_first() {
        // A 1-byte H.265 unit beside another small one (a fuzzer's crasher),
        // and an hvcC whose PPS is empty.
        let hvcc = h265::hvcc(&[&[0x40, 0x01, 0xAA]], &[&[0x42, 0x01]], &[]).unwrap_or_default();
        let params = Arc::new(CodecParams::new(Codec::H265, 64, 64).with_extradata(hvcc.into()));
        let mut p = Packetizer::new(&params, options(200)).unwrap();
        let frame = p
            .push(&packet(
                Codec::H265,
                vec![0, 0, 1, 0x40, 0, 0, 1, 0x42, 1, 7],
                true,
                &params,
            ))
            .unwrap();
        assert!(!frame.packets.is_empty());
        // H.264: the delimiter, then the parameter sets, then the slice.
        let sps = [0x67, 0x42, 0xC0, 0x1E, 0xDA, 0x02, 0x80, 0xBF, 0xE5, 0x80];
        let pps = [0x68, 0xCE, 0x3C, 0x80];
        let avcc = h264::avcc(&[&sps], &[&pps]).unwrap();
        let params = Arc::new(CodecParams::new(Codec::H264, 64, 64).with_extradata(avcc.into()));
        let mut p = Packetizer::new(&params, options(1200)).unwrap();
        let aud = [0x09, 0xF0];
        let data = [&[0, 0, 0, 1][..], &aud, &[0, 0, 1, 0x65, 1, 2, 3]].concat();
        let frame = p.push(&packet(Codec::H264, data, true, &params)).unwrap();
        let units = h264_units(&frame);
        assert_eq!(units[..3], [aud.to_vec(), sps.to_vec(), pps.to_vec()]);
    }

    #[test]
    fn h265_fragments_carry_the_unit_type_and_aggregates_the_sizes() {
        let params = Arc::new(CodecParams::new(Codec::H265, 640, 480));
        let mut p = Packetizer::new(&params, options(200)).unwrap();
        let vps = vec![0x40, 0x01, 0xAA];
        let idr: Vec<u8> = [0x26, 0x01].into_iter().chain((0..1000).map(|i| i as u8)).collect();
        let data = [&[0, 0, 1][..], &vps, &[0, 0, 1], &idr].concat();
        let frame = p.push(&packet(Codec::H265, data, true, &params)).unwrap();
        let payloads: Vec<Vec<u8>> = frame.packets.iter().map(|p| p.to_vec()[12..].to_vec()).collect();
        // One small unit alone, then fragments of type 49 with the IDR's type 19.
        assert_eq!(payloads[0], vps);
        let mut whole = vec![0x26, 0x01];
        for (i, f) in payloads[1..].iter().enumerate() {
            assert_eq!(f[0] >> 1 & 0x3F, 49);
            assert_eq!(f[2] & 0x3F, 19);
            assert_eq!(f[2] & 0x80 != 0, i == 0);
            assert_eq!(f[2] & 0x40 != 0, i == payloads.len() - 2);
            whole.extend_from_slice(&f[3..]);
        }
        assert_eq!(whole, idr);
    }

    /// A JPEG from the project's own encoder.
    fn jpeg(width: u32, height: u32, restart: bool) -> Vec<u8> {
        let pixels: Vec<u8> = (0..width * height * 3).map(|i| (i % 251) as u8).collect();
        let mut out = Vec::new();
        let mut e = jpeg_encoder::Encoder::new(&mut out, 80);
        e.set_sampling_factor(jpeg_encoder::SamplingFactor::F_2_2);
        if restart {
            e.set_restart_interval(4);
        }
        e.encode(&pixels, width as u16, height as u16, jpeg_encoder::ColorType::Rgb)
            .unwrap();
        out
    }

    #[test]
    fn jpeg_pictures_carry_their_tables_once_and_the_scan_in_order() {
        for restart in [false, true] {
            let data = jpeg(320, 240, restart);
            let params = Arc::new(CodecParams::new(Codec::Mjpeg, 320, 240));
            let mut p = Packetizer::new(&params, options(400)).unwrap();
            let frame = p.push(&packet(Codec::Mjpeg, data.clone(), true, &params)).unwrap();
            let mut scan = Vec::new();
            for (i, packet) in frame.packets.iter().enumerate() {
                let b = packet.to_vec();
                assert!(b.len() <= 400);
                let h = &b[12..];
                let offset = u32::from_be_bytes([0, h[1], h[2], h[3]]) as usize;
                assert_eq!(offset, scan.len());
                assert_eq!(h[4], 1 | if restart { 64 } else { 0 }, "4:2:0");
                assert_eq!((h[5], h[6], h[7]), (255, 40, 30));
                let mut at = 8 + if restart { 4 } else { 0 };
                if i == 0 {
                    let len = usize::from(u16::from_be_bytes([h[at + 2], h[at + 3]]));
                    assert_eq!(len, 128);
                    at += 4 + len;
                }
                scan.extend_from_slice(&h[at..]);
            }
            let start = data.len() - 2 - scan.len();
            assert_eq!(&data[start..data.len() - 2], &scan[..]);
        }
    }

    #[test]
    fn jpegs_rfc_2435_cannot_describe_are_refused_with_the_reason() {
        let params = Arc::new(CodecParams::new(Codec::Mjpeg, 2048, 16));
        let mut p = Packetizer::new(&params, options(1200)).unwrap();
        let e = p
            .push(&packet(Codec::Mjpeg, jpeg(2048, 16, false), true, &params))
            .unwrap_err();
        assert!(e.to_string().contains("larger than 2040"), "{e}");
        let e = p
            .push(&packet(Codec::Mjpeg, vec![0xFF, 0xD8, 0xFF], true, &params))
            .unwrap_err();
        assert!(e.to_string().contains("RFC 2435"), "{e}");
        // 16-bit quantization tables (256 bytes) do not fit a 200-byte packet: refused, not looped on.
        let mut wide = jpeg(64, 64, false);
        let dqt = wide.windows(2).position(|w| w == [0xFF, 0xDB]).unwrap();
        let len = usize::from(u16::from_be_bytes([wide[dqt + 2], wide[dqt + 3]]));
        let mut tables = Vec::new();
        for id in 0..2u8 {
            tables.push(0x10 | id);
            tables.extend((0..64).flat_map(|i: u16| (i + 1).to_be_bytes()));
        }
        let mut segment = vec![0xFF, 0xDB];
        segment.extend_from_slice(&(2 + tables.len() as u16).to_be_bytes());
        segment.extend_from_slice(&tables);
        wide.splice(dqt..dqt + 2 + len, segment);
        let mut p = Packetizer::new(&params, options(200)).unwrap();
        let e = p.push(&packet(Codec::Mjpeg, wide, true, &params)).unwrap_err();
        assert!(e.to_string().contains("no room"), "{e}");
        let vp9 = CodecParams::new(Codec::Vp9, 2, 2);
        assert!(Packetizer::new(&vp9, options(1200)).is_err());
    }
}

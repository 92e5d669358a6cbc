//! MPEG-TS reader (ISO/IEC 13818-1): PAT → PMT → the first H.264/H.265
//! stream, PES reassembly with PTS/DTS (33-bit, unwrapped), keyframes from
//! the NAL units. Times count from the first PES's DTS.

use std::sync::Arc;

use bytes::Bytes;

use super::fill_durations;
use crate::codec::CodecError;
use crate::codec::ParamFollower;
use crate::media::{Codec, Packet};
use crate::mux::to_ns;
use crate::mux::ts::{PACKET, STREAM_TYPE_H264, STREAM_TYPE_H265, read_timestamp};

struct Pes {
    offset: usize,
    data: Vec<u8>,
}

/// Reads the video packets of a transport stream.
pub fn read(data: &Bytes, source: &Arc<str>) -> Result<Vec<Packet>, CodecError> {
    if !data.len().is_multiple_of(PACKET) {
        return Err(CodecError::new(
            data.len() - data.len() % PACKET,
            format!("{} bytes is not a whole number of 188-byte TS packets", data.len()),
        ));
    }
    let mut pmt_pid = None;
    let mut video: Option<(u16, Codec)> = None;
    let mut pes: Option<Pes> = None;
    let mut units: Vec<Pes> = Vec::new();
    for (i, p) in data.chunks_exact(PACKET).enumerate() {
        let at = i * PACKET;
        if p[0] != 0x47 {
            return Err(CodecError::new(at, format!("no sync byte (0x{:02X})", p[0])));
        }
        let start = p[1] & 0x40 != 0;
        let pid = u16::from(p[1] & 0x1F) << 8 | u16::from(p[2]);
        let control = p[3] >> 4 & 3;
        let mut pos = 4;
        if control & 2 != 0 {
            pos += 1 + p[4] as usize;
        }
        if control & 1 == 0 || pos > PACKET {
            continue;
        }
        let payload = &p[pos..];
        if pid == 0 && start {
            let s = section(payload, at + pos)?;
            if let Some(e) = s.get(..4) {
                pmt_pid = Some(u16::from(e[2] & 0x1F) << 8 | u16::from(e[3]));
            }
        } else if Some(pid) == pmt_pid && start && video.is_none() {
            let s = section(payload, at + pos)?;
            let info_len = s
                .get(2..4)
                .map_or(0, |b| usize::from(b[0] & 0x0F) << 8 | usize::from(b[1]));
            let mut e = 4 + info_len;
            while let Some(es) = s.get(e..e + 5) {
                let es_pid = u16::from(es[1] & 0x1F) << 8 | u16::from(es[2]);
                let codec = match es[0] {
                    STREAM_TYPE_H264 => Some(Codec::H264),
                    STREAM_TYPE_H265 => Some(Codec::H265),
                    _ => None,
                };
                if let Some(codec) = codec {
                    video = Some((es_pid, codec));
                    break;
                }
                e += 5 + (usize::from(es[3] & 0x0F) << 8 | usize::from(es[4]));
            }
        } else if video.is_some_and(|(v, _)| v == pid) {
            if start {
                units.extend(pes.take());
                pes = Some(Pes {
                    offset: at + pos,
                    data: Vec::new(),
                });
            }
            if let Some(pes) = &mut pes {
                pes.data.extend_from_slice(payload);
            }
        }
    }
    units.extend(pes);
    let (_, codec) = video.ok_or_else(|| CodecError::new(0, "no H.264 or H.265 stream in the PMT"))?;
    let mut follower = ParamFollower::new(codec, None);
    let mut out: Vec<Packet> = Vec::with_capacity(units.len());
    let (mut base, mut last_dts) = (None, 0i64);
    for (seq, u) in units.into_iter().enumerate() {
        let (pts, dts, body) = pes_header(&u.data, u.offset)?;
        // The payload shares the reassembled PES buffer: no second copy.
        let start = body.as_ptr() as usize - u.data.as_ptr() as usize;
        let body = start..start + body.len();
        let data = Bytes::from(u.data).slice(body);
        let (params, keyframe) = follower.follow(&data, u.offset)?;
        // Unwrap the 33-bit clock against the previous DTS.
        let unwrap = |t: i64, near: i64| t + ((near - t + (1 << 32)) >> 33 << 33);
        let dts = unwrap(dts, last_dts);
        let pts = unwrap(pts, dts);
        last_dts = dts;
        let base = *base.get_or_insert(dts);
        out.push(Packet {
            meta: Default::default(),
            codec,
            data,
            pts: to_ns(pts - base, 90_000),
            dts: to_ns(dts - base, 90_000),
            duration: 0,
            keyframe,
            params,
            source: Arc::clone(source),
            seq: seq as u64,
            capture_utc: std::time::SystemTime::UNIX_EPOCH,
        });
    }
    fill_durations(&mut out, 0);
    Ok(out)
}

/// The long-syntax section after the pointer field, without its 8-byte header
/// and CRC: the table body.
fn section(payload: &[u8], at: usize) -> Result<&[u8], CodecError> {
    let skip = 1 + *payload.first().unwrap_or(&0) as usize;
    let s = payload.get(skip..).unwrap_or_default();
    let len = s.get(1..3).map(|b| usize::from(b[0] & 0x0F) << 8 | usize::from(b[1]));
    match len {
        Some(len) if len >= 9 && s.len() >= 3 + len => Ok(&s[8..3 + len - 4]),
        _ => Err(CodecError::new(at, "PSI section truncated or longer than its packet")),
    }
}

/// (PTS, DTS, payload) of a PES packet (DTS = PTS when absent).
fn pes_header(pes: &[u8], at: usize) -> Result<(i64, i64, &[u8]), CodecError> {
    if pes.len() < 9 || pes[..3] != [0, 0, 1] {
        return Err(CodecError::new(at, "PES packet without a start code"));
    }
    let header_len = 9 + pes[8] as usize;
    let flags = pes[7] >> 6;
    let ts = |from: usize| -> Result<i64, CodecError> {
        pes.get(from..from + 5)
            .map(|b| read_timestamp(b.try_into().expect("5 bytes")))
            .ok_or_else(|| CodecError::new(at + from, "PES header ends inside a timestamp"))
    };
    let pts = match flags {
        2 | 3 => ts(9)?,
        _ => return Err(CodecError::new(at + 7, "PES packet without a PTS")),
    };
    let dts = if flags == 3 { ts(14)? } else { pts };
    let body = pes
        .get(header_len..)
        .ok_or_else(|| CodecError::new(at + 8, "PES header longer than the packet"))?;
    Ok((pts, dts, body))
}

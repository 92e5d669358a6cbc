//! MPEG-2 transport stream muxer (ISO/IEC 13818-1): PAT and PMT (§2.4.4),
//! PES packets with PTS/DTS (§2.4.3.6), PCR in the adaptation field
//! (§2.4.3.4), continuity counters, the random-access indicator on
//! keyframes, and an access unit delimiter in front of every H.264/H.265
//! access unit that lacks one (§2.14, §2.17).
//!
//! Timestamps: the first packet's DTS maps to 1.4 s, and the PCR runs 0.7 s
//! behind the DTS, leaving the decoder buffer time to fill.

use super::{MuxError, Muxer, Output, Trailer, to_units};
use crate::codec::{h264, h265, nal};
use crate::media::{Codec, Packet};

/// TS packet size.
pub const PACKET: usize = 188;
/// PID of the program map table.
pub const PMT_PID: u16 = 0x1000;
/// PID of the video elementary stream (also the PCR PID).
pub const VIDEO_PID: u16 = 0x100;
/// `stream_type` for H.264.
pub const STREAM_TYPE_H264: u8 = 0x1B;
/// `stream_type` for H.265.
pub const STREAM_TYPE_H265: u8 = 0x24;

const START_90K: i64 = 126_000;
const PCR_DELAY_90K: i64 = 63_000;
const WRAP: i64 = 1 << 33;

/// MPEG-TS muxer for one H.264 or H.265 video stream.
#[derive(Debug, Default)]
pub struct TsMuxer {
    base: Option<i64>,
    codec: Option<Codec>,
    cc: [u8; 3],
    pes: Vec<u8>,
}

impl TsMuxer {
    /// A muxer that has written nothing.
    pub fn new() -> Self {
        Self::default()
    }

    fn tables(&mut self, stream_type: u8, out: &mut Output) {
        let pat = section(0x00, 1, &[0x00, 0x01, 0xE0 | (PMT_PID >> 8) as u8, PMT_PID as u8]);
        self.psi(0, 0, &pat, out);
        let pmt_body = [
            0xE0 | (VIDEO_PID >> 8) as u8,
            VIDEO_PID as u8, // PCR_PID
            0xF0,
            0x00, // program_info_length 0
            stream_type,
            0xE0 | (VIDEO_PID >> 8) as u8,
            VIDEO_PID as u8,
            0xF0,
            0x00, // ES_info_length 0
        ];
        let pmt = section(0x02, 1, &pmt_body);
        self.psi(1, PMT_PID, &pmt, out);
    }

    /// One section in one TS packet, padded with 0xFF.
    fn psi(&mut self, slot: usize, pid: u16, section: &[u8], out: &mut Output) {
        let mut p = [0xFFu8; PACKET];
        p[..4].copy_from_slice(&header(pid, true, 0x10, self.next_cc(slot)));
        p[4] = 0; // pointer_field
        p[5..5 + section.len()].copy_from_slice(section);
        out.put(&p);
    }

    fn next_cc(&mut self, slot: usize) -> u8 {
        let cc = self.cc[slot];
        self.cc[slot] = (cc + 1) & 0x0F;
        cc
    }
}

impl Muxer for TsMuxer {
    fn push(&mut self, packet: &Packet, out: &mut Output) -> Result<(), MuxError> {
        let (stream_type, aud): (u8, &[u8]) = match packet.codec {
            Codec::H264 => (STREAM_TYPE_H264, &[0, 0, 0, 1, h264::AUD, 0xF0]),
            Codec::H265 => (STREAM_TYPE_H265, &[0, 0, 0, 1, h265::AUD << 1, 0x01, 0x50]),
            codec => {
                return Err(MuxError::Unsupported {
                    container: "MPEG-TS",
                    codec,
                    hint: "it carries h264 and h265",
                });
            }
        };
        if *self.codec.get_or_insert(packet.codec) != packet.codec {
            return Err(MuxError::bad(packet, "codec differs from the stream's first packet"));
        }
        let first = self.base.is_none();
        let base = *self.base.get_or_insert(packet.dts);
        let dts = (START_90K + to_units(packet.dts - base, 90_000)).rem_euclid(WRAP);
        let pts = (START_90K + to_units(packet.pts - base, 90_000)).rem_euclid(WRAP);
        if packet.keyframe || first {
            self.tables(stream_type, out);
        }
        let first_type = nal::first_unit(&packet.data).map(|n| match packet.codec {
            Codec::H264 => h264::nal_type(n),
            _ => h265::nal_type(n),
        });
        let has_aud = first_type
            == Some(if packet.codec == Codec::H264 {
                h264::AUD
            } else {
                h265::AUD
            });

        // PES header (§2.4.3.6): unbounded length, data-aligned, PTS (and DTS).
        self.pes.clear();
        self.pes.extend_from_slice(&[0, 0, 1, 0xE0, 0, 0, 0x84]);
        if pts != dts {
            self.pes.extend_from_slice(&[0xC0, 10]);
            self.pes.extend_from_slice(&timestamp(0x3, pts));
            self.pes.extend_from_slice(&timestamp(0x1, dts));
        } else {
            self.pes.extend_from_slice(&[0x80, 5]);
            self.pes.extend_from_slice(&timestamp(0x2, pts));
        }
        if !has_aud {
            self.pes.extend_from_slice(aud);
        }
        let prefix = std::mem::take(&mut self.pes);
        let pcr = (dts - PCR_DELAY_90K).rem_euclid(WRAP);
        self.payload(&prefix, &packet.data, Some((pcr, packet.keyframe)), out);
        self.pes = prefix;
        Ok(())
    }

    fn finish(&mut self, _out: &mut Output) -> Result<Trailer, MuxError> {
        Ok(Trailer::default())
    }
}

impl TsMuxer {
    /// Splits `prefix` + `data` into TS packets on the video PID; the first
    /// carries the PCR (and the random-access indicator for keyframes).
    fn payload(&mut self, prefix: &[u8], data: &[u8], mut first: Option<(i64, bool)>, out: &mut Output) {
        let total = prefix.len() + data.len();
        // Every packet carries at least 176 payload bytes (188 less the header
        // and the PCR's adaptation field): room for them all, allocated once.
        out.reserve(total.div_ceil(PACKET - 4 - 8) * PACKET);
        let mut pos = 0;
        while pos < total {
            let mut af: Option<Vec<u8>> = first.take().map(|(pcr, key)| {
                vec![
                    if key { 0x50 } else { 0x10 }, // random_access_indicator, PCR_flag
                    (pcr >> 25) as u8,
                    (pcr >> 17) as u8,
                    (pcr >> 9) as u8,
                    (pcr >> 1) as u8,
                    ((pcr & 1) << 7) as u8 | 0x7E, // reserved bits, extension high bit 0
                    0,
                ]
            });
            let room = |af: &Option<Vec<u8>>| PACKET - 4 - af.as_ref().map_or(0, |a| 1 + a.len());
            let left = total - pos;
            if left < room(&af) {
                // The last packet: stuff the adaptation field up to 188 bytes.
                let af_len = PACKET - 4 - 1 - left;
                let a = af.get_or_insert_with(Vec::new);
                if af_len > 0 && a.is_empty() {
                    a.push(0x00); // no flags
                }
                a.resize(af_len, 0xFF);
            }
            let take = left.min(room(&af));
            out.put(&header(
                VIDEO_PID,
                pos == 0,
                if af.is_some() { 0x30 } else { 0x10 },
                self.next_cc(2),
            ));
            if let Some(a) = &af {
                out.put(&[a.len() as u8]);
                out.put(a);
            }
            let end = pos + take;
            if pos < prefix.len() {
                out.put(&prefix[pos..end.min(prefix.len())]);
            }
            if end > prefix.len() {
                let from = pos.max(prefix.len()) - prefix.len();
                out.put(&data[from..end - prefix.len()]);
            }
            pos = end;
        }
    }
}

/// A TS packet header: sync byte, PUSI, PID, adaptation/payload control, continuity counter.
fn header(pid: u16, start: bool, control: u8, cc: u8) -> [u8; 4] {
    [
        0x47,
        (start as u8) << 6 | (pid >> 8) as u8 & 0x1F,
        pid as u8,
        control | cc,
    ]
}

/// A PSI section with the long syntax: id 1 (`transport_stream_id` or
/// `program_number`), version 0, current, single section, CRC-32.
fn section(table_id: u8, id: u16, body: &[u8]) -> Vec<u8> {
    let len = 5 + body.len() + 4;
    let mut s = vec![
        table_id,
        0xB0 | (len >> 8) as u8,
        len as u8,
        (id >> 8) as u8,
        id as u8,
        0xC1, // version 0, current_next_indicator 1
        0,
        0,
    ];
    s.extend_from_slice(body);
    let crc = crc32_mpeg(&s);
    s.extend_from_slice(&crc.to_be_bytes());
    s
}

/// CRC-32/MPEG-2: polynomial 0x04C11DB7, initial 0xFFFFFFFF, not reflected.
pub fn crc32_mpeg(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= (b as u32) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 {
                crc << 1 ^ 0x04C1_1DB7
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// A 33-bit PTS/DTS in the 5-byte PES layout, with a 4-bit prefix.
fn timestamp(prefix: u8, ts: i64) -> [u8; 5] {
    [
        prefix << 4 | ((ts >> 29) & 0x0E) as u8 | 1,
        (ts >> 22) as u8,
        ((ts >> 14) & 0xFE) as u8 | 1,
        (ts >> 7) as u8,
        ((ts << 1) & 0xFE) as u8 | 1,
    ]
}

/// The 33-bit value of a 5-byte PES timestamp.
pub fn read_timestamp(b: &[u8; 5]) -> i64 {
    ((b[0] as i64 >> 1) & 0x07) << 30
        | (b[1] as i64) << 22
        | (b[2] as i64 >> 1) << 15
        | (b[3] as i64) << 7
        | b[4] as i64 >> 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_matches_the_mpeg2_check_value() {
        assert_eq!(crc32_mpeg(b"123456789"), 0x0376_E6E7);
    }

    #[test]
    fn timestamps_round_trip() {
        for ts in [0, 1, 126_000, (1 << 33) - 1, 0x1_2345_6789] {
            assert_eq!(read_timestamp(&timestamp(2, ts)), ts);
        }
    }
}

//! Picture order: the picture order count (POC) of each access unit of an
//! H.264 (§8.2.1) or H.265 (§8.3.1) stream, read from the parameter sets and
//! the first slice header, and the presentation order it implies
//! ([`Presenter`]: the output ("bumping") process of a decoder whose picture
//! buffer holds `max_num_reorder` frames, §C.4.5.3 / §C.5.2.2).
//!
//! Elementary streams carry no timestamps; this is how a demuxer gives an
//! Annex-B file with B-frames its presentation times. RTP carries only
//! presentation times; [`DecodeTimes`] gives such pictures their decoding times.

use super::bits::{BitReader, unescape};
use super::{AccessUnit, CodecError, Nal, h264, h265};
use crate::media::Codec;

/// The order of one access unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Poc {
    /// Picture order count: output order within a POC period.
    pub value: i64,
    /// Starts a new POC period (H.264 IDR, H.265 IDR/BLA/first CRA): every
    /// earlier picture is output before it.
    pub reset: bool,
    /// The stream's reorder depth (`max_num_reorder_frames`).
    pub reorder: u32,
}

/// A slice header needs at most this many bytes before the fields read here.
const SLICE_HEADER_BYTES: usize = 64;

/// Computes the POC of each access unit, keeping the parameter sets it needs.
#[derive(Debug)]
pub struct PocCounter {
    codec: Codec,
    h264_sps: Vec<Option<h264::Sps>>,
    /// H.264 PPS by id: (SPS id, bottom_field_pic_order_in_frame_present_flag).
    h264_pps: Vec<Option<(u32, bool)>>,
    h265_sps: Vec<Option<h265::Sps>>,
    h265_pps: Vec<Option<H265Pps>>,
    prev_msb: i64,
    prev_lsb: i64,
    /// Pictures since the last reset, for streams output in decoding order.
    decoded: i64,
    first: bool,
}

#[derive(Clone, Copy, Debug)]
struct H265Pps {
    sps_id: u32,
    output_flag_present: bool,
    extra_header_bits: u32,
}

impl PocCounter {
    /// A counter for `codec` (H.264 or H.265).
    pub fn new(codec: Codec) -> Self {
        PocCounter {
            codec,
            h264_sps: vec![None; 32],
            h264_pps: vec![None; 256],
            h265_sps: vec![None; 16],
            h265_pps: vec![None; 64],
            prev_msb: 0,
            prev_lsb: 0,
            decoded: 0,
            first: true,
        }
    }

    /// The order of `au` (access units must be pushed in decoding order);
    /// `None` for an access unit without a coded picture.
    pub fn push(&mut self, au: &AccessUnit<'_>) -> Result<Option<Poc>, CodecError> {
        let mut poc = None;
        for nal in &au.nals {
            let found = match self.codec {
                Codec::H264 => self.h264(nal)?,
                _ => self.h265(nal)?,
            };
            if poc.is_none() {
                poc = found;
            }
        }
        if poc.is_some() {
            self.first = false;
        }
        Ok(poc)
    }

    fn h264(&mut self, nal: &Nal<'_>) -> Result<Option<Poc>, CodecError> {
        let t = h264::nal_type(nal.data);
        match t {
            h264::SPS => {
                let sps = h264::Sps::parse(nal.data, nal.offset)?;
                let id = sps.id as usize;
                self.h264_sps[id] = Some(sps);
                Ok(None)
            }
            h264::PPS => {
                let rbsp = unescape(&nal.data[1..nal.data.len().min(SLICE_HEADER_BYTES)]);
                let mut r = BitReader::new(&rbsp, nal.offset + 1, "H.264 PPS");
                let id = r.ue()?;
                let sps_id = r.ue()?;
                if id > 255 || sps_id > 31 {
                    return Err(r.error(format!("PPS id {id} / SPS id {sps_id} out of range")));
                }
                r.skip(1)?; // entropy_coding_mode_flag
                self.h264_pps[id as usize] = Some((sps_id, r.bit()?));
                Ok(None)
            }
            h264::SLICE | h264::IDR => self.h264_slice(nal, t == h264::IDR).map(Some),
            _ => Ok(None),
        }
    }

    fn h264_slice(&mut self, nal: &Nal<'_>, idr: bool) -> Result<Poc, CodecError> {
        let rbsp = unescape(&nal.data[1..nal.data.len().min(SLICE_HEADER_BYTES)]);
        let mut r = BitReader::new(&rbsp, nal.offset + 1, "H.264 slice header");
        r.ue()?; // first_mb_in_slice
        r.ue()?; // slice_type
        let pps_id = r.ue()?;
        let (sps_id, bottom_present) = self
            .h264_pps
            .get(pps_id as usize)
            .copied()
            .flatten()
            .ok_or_else(|| r.error(format!("slice refers to PPS {pps_id}, which the stream has not sent")))?;
        let sps = self.h264_sps[sps_id as usize].as_ref().ok_or_else(|| {
            r.error(format!(
                "PPS {pps_id} refers to SPS {sps_id}, which the stream has not sent"
            ))
        })?;
        let reorder = sps.reorder_depth();
        if idr {
            self.decoded = 0;
        }
        if sps.pic_order_cnt_type != 0 {
            // Types 1 and 2: output order is taken as decoding order.
            self.decoded += 1;
            return Ok(Poc {
                value: self.decoded,
                reset: idr,
                reorder: if sps.pic_order_cnt_type == 2 { 0 } else { reorder },
            });
        }
        if sps.separate_colour_plane {
            r.skip(2)?;
        }
        r.skip(sps.log2_max_frame_num as usize)?; // frame_num
        let mut field = false;
        if !sps.frame_mbs_only {
            field = r.bit()?;
            if field {
                r.skip(1)?; // bottom_field_flag
            }
        }
        if idr {
            r.ue()?; // idr_pic_id
        }
        let lsb = r.bits(sps.log2_max_poc_lsb)? as i64;
        let delta_bottom = if bottom_present && !field { r.se()? as i64 } else { 0 };
        if idr {
            (self.prev_msb, self.prev_lsb) = (0, 0);
        }
        let max = 1i64 << sps.log2_max_poc_lsb;
        let msb = self.msb(lsb, max);
        if nal.data[0] & 0x60 != 0 {
            // A reference picture: the next one's POC is relative to it.
            (self.prev_msb, self.prev_lsb) = (msb, lsb);
        }
        let top = msb + lsb;
        Ok(Poc {
            value: top.min(top + delta_bottom),
            reset: idr,
            reorder,
        })
    }

    /// `PicOrderCntMsb` from the previous reference (§8.2.1.1, eq. 8-3; §8.3.1, eq. 8-1).
    fn msb(&self, lsb: i64, max: i64) -> i64 {
        if lsb < self.prev_lsb && self.prev_lsb - lsb >= max / 2 {
            self.prev_msb + max
        } else if lsb > self.prev_lsb && lsb - self.prev_lsb > max / 2 {
            self.prev_msb - max
        } else {
            self.prev_msb
        }
    }

    fn h265(&mut self, nal: &Nal<'_>) -> Result<Option<Poc>, CodecError> {
        let t = h265::nal_type(nal.data);
        match t {
            h265::SPS => {
                let sps = h265::Sps::parse(nal.data, nal.offset)?;
                let id = sps.id as usize;
                self.h265_sps[id] = Some(sps);
                Ok(None)
            }
            h265::PPS => {
                let rbsp = unescape(
                    nal.data
                        .get(2..nal.data.len().min(SLICE_HEADER_BYTES))
                        .unwrap_or_default(),
                );
                let mut r = BitReader::new(&rbsp, nal.offset + 2, "H.265 PPS");
                let id = r.ue()?;
                let sps_id = r.ue()?;
                if id > 63 || sps_id > 15 {
                    return Err(r.error(format!("PPS id {id} / SPS id {sps_id} out of range")));
                }
                r.skip(1)?; // dependent_slice_segments_enabled_flag (non-first segments only)
                self.h265_pps[id as usize] = Some(H265Pps {
                    sps_id,
                    output_flag_present: r.bit()?,
                    extra_header_bits: r.bits(3)?,
                });
                Ok(None)
            }
            t if h265::is_vcl(t) && t <= 21 => self.h265_slice(nal, t),
            _ => Ok(None),
        }
    }

    /// The order of the picture whose first slice segment `nal` is; `None`
    /// for its other segments (a picture of several slices).
    fn h265_slice(&mut self, nal: &Nal<'_>, t: u8) -> Result<Option<Poc>, CodecError> {
        let rbsp = unescape(
            nal.data
                .get(2..nal.data.len().min(SLICE_HEADER_BYTES))
                .unwrap_or_default(),
        );
        let mut r = BitReader::new(&rbsp, nal.offset + 2, "H.265 slice header");
        if !r.bit()? {
            // first_slice_segment_in_pic_flag 0: not the picture's first segment.
            return Ok(None);
        }
        if h265::is_irap(t) {
            r.skip(1)?; // no_output_of_prior_pics_flag
        }
        let pps_id = r.ue()?;
        let pps = self
            .h265_pps
            .get(pps_id as usize)
            .copied()
            .flatten()
            .ok_or_else(|| r.error(format!("slice refers to PPS {pps_id}, which the stream has not sent")))?;
        let sps = self.h265_sps[pps.sps_id as usize].as_ref().ok_or_else(|| {
            r.error(format!(
                "PPS {pps_id} refers to SPS {}, which the stream has not sent",
                pps.sps_id
            ))
        })?;
        r.skip(pps.extra_header_bits as usize)?;
        r.ue()?; // slice_type
        if pps.output_flag_present {
            r.skip(1)?;
        }
        if sps.separate_colour_plane {
            r.skip(2)?;
        }
        const IDR_W_RADL: u8 = 19;
        const IDR_N_LP: u8 = 20;
        const CRA: u8 = 21;
        let idr = t == IDR_W_RADL || t == IDR_N_LP;
        let lsb = if idr { 0 } else { r.bits(sps.log2_max_poc_lsb)? as i64 };
        // IDR, BLA, and a CRA that starts the stream begin a new POC period.
        let reset = h265::is_irap(t) && (t != CRA || self.first);
        let msb = if reset {
            0
        } else {
            self.msb(lsb, 1 << sps.log2_max_poc_lsb)
        };
        let temporal_id = nal.data.get(1).map_or(0, |b| (b & 7).saturating_sub(1));
        // RADL/RASL (6..=9) and sub-layer non-reference pictures (even types ≤ 14)
        // do not anchor the next POC.
        let sub_layer_non_ref = t <= 14 && t.is_multiple_of(2);
        if temporal_id == 0 && !(6..=9).contains(&t) && !sub_layer_non_ref {
            (self.prev_msb, self.prev_lsb) = (msb, lsb);
        }
        Ok(Some(Poc {
            value: msb + lsb,
            reset,
            reorder: sps.max_num_reorder_pics,
        }))
    }
}

/// Assigns presentation indices to pictures pushed in decoding order: a
/// picture is output once more than `reorder` pictures wait, smallest POC
/// first, and everything waiting is output at a POC reset and at the end.
#[derive(Debug, Default)]
pub struct Presenter {
    waiting: Vec<(i64, u64)>,
    next: u64,
}

impl Presenter {
    /// A presenter that has output nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds picture `id` (any caller key) with its order; returns the pictures
    /// this outputs, as (id, presentation index).
    pub fn push(&mut self, id: u64, poc: Poc) -> Vec<(u64, u64)> {
        let mut out = if poc.reset { self.flush() } else { Vec::new() };
        self.waiting.push((poc.value, id));
        while self.waiting.len() > poc.reorder as usize {
            out.push(self.bump());
        }
        out
    }

    /// Outputs every waiting picture (end of stream).
    pub fn flush(&mut self) -> Vec<(u64, u64)> {
        let mut out = Vec::with_capacity(self.waiting.len());
        while !self.waiting.is_empty() {
            out.push(self.bump());
        }
        out
    }

    fn bump(&mut self) -> (u64, u64) {
        let (at, _) = self
            .waiting
            .iter()
            .enumerate()
            .min_by_key(|(_, (poc, _))| *poc)
            .expect("bump with pictures waiting");
        let (_, id) = self.waiting.remove(at);
        self.next += 1;
        (id, self.next - 1)
    }
}

/// Decoding times for pictures that arrive in decoding order with known
/// presentation times (an RTP camera's). The decoding time of a picture is
/// the presentation time of the picture a decoder of the stream's reorder
/// depth outputs as it decodes this one (the smallest waiting, so never after
/// this picture's own). Where a push outputs nothing (the first pictures, and
/// after a POC reset), the time is spread evenly between the previous one and
/// the next output's (the smallest waiting presentation time), so it stays
/// before every later picture's. The result always increases, so muxers take
/// it as it is; it lags presentation by the reorder depth, never by more.
#[derive(Debug, Default)]
pub struct DecodeTimes {
    presenter: Presenter,
    /// Presentation times of the pictures the presenter holds, by id.
    waiting: Vec<(u64, i64)>,
    next: u64,
    last: Option<i64>,
}

impl DecodeTimes {
    /// Times that start afresh (a new session).
    pub fn new() -> Self {
        Self::default()
    }

    /// The decoding time of the next picture in decoding order, presented at
    /// `pts`, about `duration` before the next one; `poc` is its order, or
    /// `None` where it is unknown (then decoding order is taken as
    /// presentation order).
    pub fn push(&mut self, poc: Option<Poc>, pts: i64, duration: i64) -> i64 {
        let candidate = match poc {
            None => pts,
            Some(poc) => {
                let id = self.next;
                self.next += 1;
                self.waiting.push((id, pts));
                let shown = self.presenter.push(id, poc);
                let mut first: Option<i64> = None;
                for (id, _) in shown {
                    if let Some(at) = self.waiting.iter().position(|(w, _)| *w == id) {
                        let (_, t) = self.waiting.swap_remove(at);
                        first = Some(first.map_or(t, |f| f.min(t)));
                    }
                }
                match (first, self.last) {
                    (Some(t), _) => t,
                    (None, None) => pts - i64::from(poc.reorder) * duration,
                    (None, Some(last)) => {
                        // The next output comes after this many more pictures.
                        let slots = (i64::from(poc.reorder) + 2 - self.waiting.len() as i64).max(1);
                        let next = self.waiting.iter().map(|(_, t)| *t).min().unwrap_or(pts);
                        last + (next - last) / slots
                    }
                }
            }
        };
        let dts = match self.last {
            Some(last) if candidate <= last => last + 1,
            _ => candidate,
        };
        self.last = Some(dts);
        dts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_times_follow_the_output_of_a_decoder() {
        // Pyramid B-frames, reorder 2: I0 P4 B2 b1 b3 P8 B6 b5 b7, then an
        // IDR at 9 (a POC reset) and P12 B10 b11.
        let pictures = [
            (0, 0, false),
            (4, 8, false),
            (2, 4, false),
            (1, 2, false),
            (3, 6, false),
            (8, 16, false),
            (6, 12, false),
            (5, 10, false),
            (7, 14, false),
            (9, 0, true),
            (12, 6, false),
            (10, 2, false),
            (11, 4, false),
        ];
        let mut times = DecodeTimes::new();
        let dts: Vec<i64> = pictures
            .iter()
            .map(|&(pts, value, reset)| times.push(Some(poc(value, reset, 2)), pts, 1))
            .collect();
        assert_eq!(dts, [-2, -1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        // A first duration far off (100 where pictures are 1 apart) is
        // mended by the spreading: I0 P3 B1 B2, reorder 2.
        let mut times = DecodeTimes::new();
        let dts = [(0, 0), (3, 6), (1, 2), (2, 4)].map(|(pts, value)| times.push(Some(poc(value, false, 2)), pts, 100));
        assert_eq!(dts, [-200, -100, 0, 1]);
        for (d, (pts, _, _)) in dts.iter().zip(pictures) {
            assert!(*d <= pts, "dts {d} after pts {pts}");
        }
        // Without an order, decoding order is presentation order.
        let mut plain = DecodeTimes::new();
        assert_eq!([0, 1, 1].map(|pts| plain.push(None, pts, 1)), [0, 1, 2]);
    }

    fn poc(value: i64, reset: bool, reorder: u32) -> Poc {
        Poc { value, reset, reorder }
    }

    #[test]
    fn presenter_orders_b_frames() {
        // I0 P6 B2 B4 (POC 0 6 2 4; display 0 3 1 2), reorder 1.
        let mut p = Presenter::new();
        let mut out = Vec::new();
        for (id, v) in [0, 6, 2, 4].into_iter().enumerate() {
            out.extend(p.push(id as u64, poc(v, id == 0, 1)));
        }
        out.extend(p.flush());
        out.sort();
        assert_eq!(out, [(0, 0), (1, 3), (2, 1), (3, 2)]);
    }

    #[test]
    fn presenter_flushes_at_reset() {
        let mut p = Presenter::new();
        assert!(p.push(0, poc(0, true, 2)).is_empty());
        assert!(p.push(1, poc(4, false, 2)).is_empty());
        // An IDR outputs both waiting pictures first.
        assert_eq!(p.push(2, poc(0, true, 2)), [(0, 0), (1, 1)]);
        assert_eq!(p.flush(), [(2, 2)]);
    }
}

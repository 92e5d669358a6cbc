//! H.265 / HEVC: NAL unit types, sequence parameter sets up to the conformance
//! window and bit depths (ITU-T H.265 §7.3.2.2, profile_tier_level §7.3.3),
//! access-unit boundaries (§7.4.2.4.4) and the
//! `HEVCDecoderConfigurationRecord` (`hvcC`, ISO/IEC 14496-15 §8.3.3.1).

use super::CodecError;
use super::bits::{BitReader, unescape};
use super::h264::{fps_ratio, push_u16_prefixed, skip_vui_head};
use crate::media::Fps;

/// `nal_unit_type` (bits 1..7 of the two-byte header).
pub fn nal_type(nal: &[u8]) -> u8 {
    nal.first().map_or(0, |b| (b >> 1) & 0x3f)
}

/// Video parameter set.
pub const VPS: u8 = 32;
/// Sequence parameter set.
pub const SPS: u8 = 33;
/// Picture parameter set.
pub const PPS: u8 = 34;
/// Access unit delimiter.
pub const AUD: u8 = 35;
/// Prefix SEI.
pub const PREFIX_SEI: u8 = 39;

/// True for coded slice segments.
pub fn is_vcl(t: u8) -> bool {
    t < 32
}

/// True for intra random access point pictures (BLA, IDR, CRA): decoding can start here.
pub fn is_irap(t: u8) -> bool {
    (16..=23).contains(&t)
}

/// Whether `nal` starts a new access unit, given that the current one already
/// holds a coded slice segment.
pub fn starts_access_unit(nal: &[u8]) -> bool {
    match nal_type(nal) {
        VPS | SPS | PPS | AUD | PREFIX_SEI | 41..=44 | 48..=55 => true,
        // first_slice_segment_in_pic_flag: the first bit after the header.
        t if is_vcl(t) => nal.get(2).is_some_and(|b| b & 0x80 != 0),
        _ => false,
    }
}

/// The frame rate a video parameter set signals in its timing info
/// (§7.3.2.1: `vps_timing_info_present_flag`, then `vps_num_units_in_tick`
/// and `vps_time_scale`; fps = time_scale / num_units_in_tick, §E.3.1), if any.
pub fn vps_fps(nal: &[u8], offset: usize) -> Result<Option<Fps>, CodecError> {
    if nal_type(nal) != VPS || nal.len() < 3 {
        return Err(CodecError::new(
            offset,
            format!("NAL type {} is not a VPS", nal_type(nal)),
        ));
    }
    let rbsp = unescape(&nal[2..]);
    let mut r = BitReader::new(&rbsp, offset + 2, "H.265 VPS");
    r.skip(4 + 1 + 1 + 6)?; // vps_video_parameter_set_id, base layer flags, vps_max_layers_minus1
    let max_sub_layers_minus1 = r.bits(3)? as u8;
    if max_sub_layers_minus1 > 6 {
        return Err(r.error(format!("vps_max_sub_layers_minus1 {max_sub_layers_minus1} > 6")));
    }
    r.skip(1 + 16)?; // vps_temporal_id_nesting_flag, vps_reserved_0xffff_16bits
    profile_tier_level(&mut r, max_sub_layers_minus1)?;
    let all_sub_layers = r.bit()?;
    for _ in if all_sub_layers { 0 } else { max_sub_layers_minus1 }..=max_sub_layers_minus1 {
        r.ue()?; // vps_max_dec_pic_buffering_minus1
        r.ue()?; // vps_max_num_reorder_pics
        r.ue()?; // vps_max_latency_increase_plus1
    }
    let max_layer_id = r.bits(6)? as usize;
    let layer_sets = r.ue()? as usize;
    if layer_sets > 1023 {
        return Err(r.error(format!("vps_num_layer_sets_minus1 {layer_sets} > 1023")));
    }
    r.skip(layer_sets * (max_layer_id + 1))?; // layer_id_included_flag
    if !r.bit()? {
        return Ok(None);
    }
    let units = r.bits(32)?;
    let scale = r.bits(32)?;
    Ok(fps_ratio(u64::from(scale), u64::from(units)))
}

/// The general profile, tier and level (the fields `hvcC` repeats).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProfileTierLevel {
    /// `general_profile_space`.
    pub profile_space: u8,
    /// `general_tier_flag`.
    pub tier: bool,
    /// `general_profile_idc` (1 Main, 2 Main 10, ...).
    pub profile_idc: u8,
    /// `general_profile_compatibility_flags`.
    pub compatibility: u32,
    /// `general_constraint_indicator_flags` (48 bits).
    pub constraints: u64,
    /// `general_level_idc` (level × 30).
    pub level_idc: u8,
}

/// What Eyrie reads from a sequence parameter set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sps {
    /// `sps_seq_parameter_set_id`.
    pub id: u32,
    /// `sps_max_sub_layers_minus1 + 1`.
    pub sub_layers: u8,
    /// `sps_temporal_id_nesting_flag`.
    pub temporal_id_nesting: bool,
    /// General profile, tier and level.
    pub ptl: ProfileTierLevel,
    /// 0 monochrome, 1 4:2:0, 2 4:2:2, 3 4:4:4.
    pub chroma_format_idc: u32,
    /// Displayed width (conformance window applied).
    pub width: u32,
    /// Displayed height (conformance window applied).
    pub height: u32,
    /// Luma bit depth.
    pub bit_depth_luma: u32,
    /// Chroma bit depth.
    pub bit_depth_chroma: u32,
    /// `separate_colour_plane_flag`.
    pub separate_colour_plane: bool,
    /// `log2_max_pic_order_cnt_lsb_minus4 + 4`.
    pub log2_max_poc_lsb: u32,
    /// `sps_max_num_reorder_pics` of the highest sub-layer.
    pub max_num_reorder_pics: u32,
    /// The frame rate the VUI timing info signals (§E.2.1), if any.
    pub fps: Option<Fps>,
}

impl Sps {
    /// Parses an SPS NAL unit (header included) found at byte `offset` of the input.
    pub fn parse(nal: &[u8], offset: usize) -> Result<Sps, CodecError> {
        if nal_type(nal) != SPS || nal.len() < 3 {
            return Err(CodecError::new(
                offset,
                format!("NAL type {} is not an SPS", nal_type(nal)),
            ));
        }
        let rbsp = unescape(&nal[2..]);
        let mut r = BitReader::new(&rbsp, offset + 2, "H.265 SPS");
        r.skip(4)?; // sps_video_parameter_set_id
        let max_sub_layers_minus1 = r.bits(3)? as u8;
        if max_sub_layers_minus1 > 6 {
            return Err(r.error(format!("sps_max_sub_layers_minus1 {max_sub_layers_minus1} > 6")));
        }
        let temporal_id_nesting = r.bit()?;
        let ptl = profile_tier_level(&mut r, max_sub_layers_minus1)?;
        let id = r.ue()?;
        if id > 15 {
            return Err(r.error(format!("sps_seq_parameter_set_id {id} > 15")));
        }
        let chroma_format_idc = r.ue()?;
        if chroma_format_idc > 3 {
            return Err(r.error(format!("chroma_format_idc {chroma_format_idc} > 3")));
        }
        let separate_colour_plane = chroma_format_idc == 3 && r.bit()?;
        let width = r.ue()? as u64;
        let height = r.ue()? as u64;
        let (mut l, mut rt, mut t, mut b) = (0u64, 0u64, 0u64, 0u64);
        if r.bit()? {
            l = r.ue()? as u64;
            rt = r.ue()? as u64;
            t = r.ue()? as u64;
            b = r.ue()? as u64;
        }
        let chroma_array_type = if separate_colour_plane { 0 } else { chroma_format_idc };
        let (sub_w, sub_h) = match chroma_array_type {
            1 => (2, 2),
            2 => (2, 1),
            _ => (1, 1),
        };
        let (cw, ch) = (sub_w * (l + rt), sub_h * (t + b));
        if width == 0 || height == 0 || cw >= width || ch >= height || width > 32768 || height > 32768 {
            return Err(r.error(format!("bad size {width}x{height} with conformance window {cw}x{ch}")));
        }
        let bit_depth_luma = r.ue()?.saturating_add(8);
        let bit_depth_chroma = r.ue()?.saturating_add(8);
        if bit_depth_luma > 16 || bit_depth_chroma > 16 {
            return Err(r.error("bit depth above 16"));
        }
        let log2_max_poc_lsb = r.ue()?.saturating_add(4);
        if log2_max_poc_lsb > 16 {
            return Err(r.error(format!("log2_max_pic_order_cnt_lsb {log2_max_poc_lsb} > 16")));
        }
        let all_sub_layers = r.bit()?;
        let mut max_num_reorder_pics = 0;
        for _ in if all_sub_layers { 0 } else { max_sub_layers_minus1 }..=max_sub_layers_minus1 {
            r.ue()?; // sps_max_dec_pic_buffering_minus1
            max_num_reorder_pics = r.ue()?;
            r.ue()?; // sps_max_latency_increase_plus1
        }
        if max_num_reorder_pics > 16 {
            return Err(r.error(format!("sps_max_num_reorder_pics {max_num_reorder_pics} > 16")));
        }
        // Past the coding tools to the VUI; a parameter set cut short before
        // its timing info simply signals no frame rate.
        let fps = sps_vui_fps(&mut r, log2_max_poc_lsb).unwrap_or(None);
        Ok(Sps {
            id,
            sub_layers: max_sub_layers_minus1 + 1,
            temporal_id_nesting,
            ptl,
            chroma_format_idc,
            width: (width - cw) as u32,
            height: (height - ch) as u32,
            bit_depth_luma,
            bit_depth_chroma,
            separate_colour_plane,
            log2_max_poc_lsb,
            max_num_reorder_pics,
            fps,
        })
    }
}

/// The rest of an SPS after the sub-layer ordering info (§7.3.2.2.1), read
/// up to the VUI timing info: the frame rate, if signalled.
fn sps_vui_fps(r: &mut BitReader<'_>, log2_max_poc_lsb: u32) -> Result<Option<Fps>, CodecError> {
    for _ in 0..6 {
        r.ue()?; // coding and transform block sizes, transform hierarchy depths
    }
    if r.bit()? && r.bit()? {
        scaling_list_data(r)?;
    }
    r.skip(2)?; // amp_enabled_flag, sample_adaptive_offset_enabled_flag
    if r.bit()? {
        r.skip(8)?; // pcm sample bit depths
        r.ue()?;
        r.ue()?;
        r.skip(1)?; // pcm_loop_filter_disabled_flag
    }
    let sets = r.ue()? as usize;
    if sets > 64 {
        return Err(r.error(format!("num_short_term_ref_pic_sets {sets} > 64")));
    }
    let mut rps: Vec<RefPicSet> = Vec::with_capacity(sets);
    for i in 0..sets {
        let set = RefPicSet::parse(r, rps.get(i.wrapping_sub(1)))?;
        rps.push(set);
    }
    if r.bit()? {
        let lt = r.ue()?;
        if lt > 32 {
            return Err(r.error(format!("num_long_term_ref_pics_sps {lt} > 32")));
        }
        r.skip(lt as usize * (log2_max_poc_lsb as usize + 1))?; // lt_ref_pic_poc_lsb_sps, used_by_curr_pic_lt_sps_flag
    }
    r.skip(2)?; // sps_temporal_mvp_enabled_flag, strong_intra_smoothing_enabled_flag
    if !r.bit()? {
        return Ok(None); // no VUI
    }
    // vui_parameters() (§E.2.1) up to vui_timing_info_present_flag.
    skip_vui_head(r)?;
    r.skip(3)?; // neutral_chroma_indication_flag, field_seq_flag, frame_field_info_present_flag
    if r.bit()? {
        for _ in 0..4 {
            r.ue()?; // default display window offsets
        }
    }
    if !r.bit()? {
        return Ok(None);
    }
    let units = r.bits(32)?;
    let scale = r.bits(32)?;
    Ok(fps_ratio(u64::from(scale), u64::from(units)))
}

/// `scaling_list_data()` (§7.3.4), skipped.
fn scaling_list_data(r: &mut BitReader<'_>) -> Result<(), CodecError> {
    for size_id in 0..4 {
        let step = if size_id == 3 { 3 } else { 1 };
        for _ in (0..6).step_by(step) {
            if !r.bit()? {
                r.ue()?; // scaling_list_pred_matrix_id_delta
                continue;
            }
            if size_id > 1 {
                r.se()?; // scaling_list_dc_coef_minus8
            }
            for _ in 0..(64.min(1 << (4 + (size_id << 1)))) {
                r.se()?; // scaling_list_delta_coef
            }
        }
    }
    Ok(())
}

/// A short-term reference picture set's delta POCs (§7.4.8): S0 (before the
/// current picture) and S1 (after), in the spec's order, which the next set
/// may be predicted from.
struct RefPicSet {
    s0: Vec<i32>,
    s1: Vec<i32>,
}

impl RefPicSet {
    /// `st_ref_pic_set()` (§7.3.7) of an SPS, predicted from `previous` when it says so.
    fn parse(r: &mut BitReader<'_>, previous: Option<&RefPicSet>) -> Result<RefPicSet, CodecError> {
        let predicted = match previous {
            Some(p) if r.bit()? => p,
            _ => {
                let (neg, pos) = (r.ue()?, r.ue()?);
                if neg > 16 || pos > 16 {
                    return Err(r.error(format!("a reference picture set of {neg} + {pos} pictures")));
                }
                let mut deltas = |n: u32, sign: i32| -> Result<Vec<i32>, CodecError> {
                    let mut poc = 0i32;
                    (0..n)
                        .map(|_| {
                            poc += sign * (delta_minus1(r)? as i32 + 1);
                            r.skip(1)?; // used_by_curr_pic_flag
                            Ok(poc)
                        })
                        .collect()
                };
                let s0 = deltas(neg, -1)?;
                let s1 = deltas(pos, 1)?;
                return Ok(RefPicSet { s0, s1 });
            }
        };
        let sign = if r.bit()? { -1 } else { 1 };
        let delta_rps = sign * (delta_minus1(r)? as i32 + 1);
        // One use_delta flag per picture of the reference set (S0, then S1), then one for delta_rps itself.
        let n = predicted.s0.len() + predicted.s1.len();
        let mut use_delta = Vec::with_capacity(n + 1);
        for _ in 0..=n {
            let used = r.bit()?;
            use_delta.push(used || r.bit()?);
        }
        let (neg, pos) = (predicted.s0.len(), &predicted.s1);
        let mut s0 = Vec::new();
        for (j, d) in pos.iter().enumerate().rev() {
            if d + delta_rps < 0 && use_delta[neg + j] {
                s0.push(d + delta_rps);
            }
        }
        if delta_rps < 0 && use_delta[n] {
            s0.push(delta_rps);
        }
        for (j, d) in predicted.s0.iter().enumerate() {
            if d + delta_rps < 0 && use_delta[j] {
                s0.push(d + delta_rps);
            }
        }
        let mut s1 = Vec::new();
        for (j, d) in predicted.s0.iter().enumerate().rev() {
            if d + delta_rps > 0 && use_delta[j] {
                s1.push(d + delta_rps);
            }
        }
        if delta_rps > 0 && use_delta[n] {
            s1.push(delta_rps);
        }
        for (j, d) in pos.iter().enumerate() {
            if d + delta_rps > 0 && use_delta[neg + j] {
                s1.push(d + delta_rps);
            }
        }
        if s0.len() + s1.len() > 16 {
            return Err(r.error(format!(
                "a predicted reference picture set of {} pictures (at most 16)",
                s0.len() + s1.len()
            )));
        }
        Ok(RefPicSet { s0, s1 })
    }
}

/// A delta POC minus 1 (`delta_poc_s0/s1_minus1`, `abs_delta_rps_minus1`): 0..2^15 − 1
/// (§7.4.8), so sums over a set of 16 stay far from `i32` limits.
fn delta_minus1(r: &mut BitReader<'_>) -> Result<u32, CodecError> {
    let d = r.ue()?;
    if d > 0x7fff {
        return Err(r.error(format!("a delta POC of {} (at most 32768)", u64::from(d) + 1)));
    }
    Ok(d)
}

fn profile_tier_level(r: &mut BitReader<'_>, max_sub_layers_minus1: u8) -> Result<ProfileTierLevel, CodecError> {
    let profile_space = r.bits(2)? as u8;
    let tier = r.bit()?;
    let profile_idc = r.bits(5)? as u8;
    let compatibility = r.bits(32)?;
    let constraints = (r.bits(16)? as u64) << 32 | r.bits(32)? as u64;
    let level_idc = r.bits(8)? as u8;
    let mut present = Vec::with_capacity(max_sub_layers_minus1 as usize);
    for _ in 0..max_sub_layers_minus1 {
        present.push((r.bit()?, r.bit()?));
    }
    if max_sub_layers_minus1 > 0 {
        r.skip(2 * (8 - max_sub_layers_minus1 as usize))?;
    }
    for (profile, level) in present {
        if profile {
            r.skip(88)?;
        }
        if level {
            r.skip(8)?;
        }
    }
    Ok(ProfileTierLevel {
        profile_space,
        tier,
        profile_idc,
        compatibility,
        constraints,
        level_idc,
    })
}

/// Builds an `hvcC` record (ISO/IEC 14496-15 §8.3.3.1.2) with 4-byte NAL lengths,
/// one array per parameter-set type.
pub fn hvcc(vps: &[&[u8]], sps: &[&[u8]], pps: &[&[u8]]) -> Result<Vec<u8>, CodecError> {
    let first = sps
        .first()
        .ok_or_else(|| CodecError::new(0, "hvcC needs at least one SPS"))?;
    let s = Sps::parse(first, 0)?;
    let p = s.ptl;
    let mut out = Vec::with_capacity(64);
    out.push(1);
    out.push(p.profile_space << 6 | (p.tier as u8) << 5 | p.profile_idc);
    out.extend_from_slice(&p.compatibility.to_be_bytes());
    out.extend_from_slice(&p.constraints.to_be_bytes()[2..]);
    out.push(p.level_idc);
    out.extend_from_slice(&[0xF0, 0x00]); // min_spatial_segmentation_idc 0
    out.push(0xFC); // parallelismType 0
    out.push(0xFC | s.chroma_format_idc as u8);
    out.push(0xF8 | (s.bit_depth_luma - 8) as u8);
    out.push(0xF8 | (s.bit_depth_chroma - 8) as u8);
    out.extend_from_slice(&[0, 0]); // avgFrameRate unknown
    // constantFrameRate 0, numTemporalLayers, temporalIdNested, lengthSizeMinusOne 3.
    out.push(s.sub_layers << 3 | (s.temporal_id_nesting as u8) << 2 | 3);
    let arrays: Vec<(u8, &[&[u8]])> = [(VPS, vps), (SPS, sps), (PPS, pps)]
        .into_iter()
        .filter(|(_, list)| !list.is_empty())
        .collect();
    out.push(arrays.len() as u8);
    for (t, list) in arrays {
        out.push(0x80 | t); // array_completeness 1
        let n = u16::try_from(list.len()).map_err(|_| CodecError::new(0, "too many parameter sets for hvcC"))?;
        out.extend_from_slice(&n.to_be_bytes());
        for nal in list {
            push_u16_prefixed(&mut out, nal)?;
        }
    }
    Ok(out)
}

/// The VPS, SPS and PPS NAL units of an `hvcC` record (ISO/IEC 14496-15
/// §8.3.3.1.2), in the record's order; other arrays are skipped.
pub fn parse_hvcc(record: &[u8]) -> Result<Vec<&[u8]>, CodecError> {
    if record.first() != Some(&1) {
        return Err(CodecError::new(0, "hvcC configurationVersion is not 1"));
    }
    let take = |at: usize, n: usize| {
        record
            .get(at..at + n)
            .ok_or_else(|| CodecError::new(at, "hvcC ends early"))
    };
    let arrays = take(22, 1)?[0];
    let mut pos = 23;
    let mut units = Vec::new();
    for _ in 0..arrays {
        let head = take(pos, 3)?;
        let kind = head[0] & 0x3F;
        pos += 3;
        for _ in 0..u16::from_be_bytes([head[1], head[2]]) {
            let len = take(pos, 2)?;
            let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
            let nal = take(pos + 2, len)?;
            if matches!(kind, VPS | SPS | PPS) {
                units.push(nal);
            }
            pos += 2 + len;
        }
    }
    Ok(units)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bits written MSB first, then made a NAL unit (emulation prevention added).
    #[derive(Default)]
    struct Bits(Vec<bool>);

    impl Bits {
        fn u(&mut self, n: u32, v: u64) -> &mut Self {
            self.0.extend((0..n).rev().map(|i| v >> i & 1 == 1));
            self
        }
        fn ue(&mut self, v: u32) -> &mut Self {
            let n = 32 - (v + 1).leading_zeros();
            self.u(n - 1, 0).u(n, u64::from(v + 1))
        }
        fn se(&mut self, v: i32) -> &mut Self {
            self.ue(if v > 0 { 2 * v as u32 - 1 } else { 2 * v.unsigned_abs() })
        }
        fn nal(&mut self, header: [u8; 2]) -> Vec<u8> {
            self.u(1, 1);
            while !self.0.len().is_multiple_of(8) {
                self.u(1, 0);
            }
            let rbsp: Vec<u8> = self
                .0
                .chunks(8)
                .map(|b| b.iter().fold(0, |a, &x| a << 1 | x as u8))
                .collect();
            let mut out = header.to_vec();
            for b in rbsp {
                if out.len() >= 4 && out[out.len() - 2..] == [0, 0] && b <= 3 {
                    out.push(3);
                }
                out.push(b);
            }
            out
        }
    }

    /// x265's own parameter sets (320×240, 25 fps): the rate is in the SPS's
    /// VUI, not in the VPS.
    #[test]
    fn x265_signals_its_frame_rate_in_the_sps_vui() {
        let hex = |s: &str| {
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
                .collect::<Vec<u8>>()
        };
        let vps = hex("40010c01ffff01600000030090000003000003003c959809");
        let sps = hex("42010101600000030090000003000003003ca00a080f165959a4932bc05a020000030002000003003210");
        assert_eq!(vps_fps(&vps, 0).unwrap(), None);
        let sps = Sps::parse(&sps, 0).unwrap();
        assert_eq!((sps.width, sps.height, sps.fps), (320, 240, Fps::new(25, 1).ok()));
    }

    /// An SPS with every optional part before the VUI: scaling lists, PCM,
    /// short-term reference picture sets (two predicted from the one before),
    /// long-term pictures; its VUI says 30000/1001.
    #[test]
    fn the_vui_is_found_past_scaling_lists_pcm_and_reference_picture_sets() {
        let mut b = Bits::default();
        b.u(4, 0).u(3, 0).u(1, 1); // vps id, max_sub_layers_minus1, temporal_id_nesting
        b.u(2, 0)
            .u(1, 0)
            .u(5, 1)
            .u(32, 0x6000_0000)
            .u(48, 0x9000_0000_0000)
            .u(8, 60);
        b.ue(0).ue(1).ue(320).ue(240).u(1, 0).ue(0).ue(0).ue(4); // id, 4:2:0, size, bit depths, poc lsb 8 bits
        b.u(1, 1).ue(4).ue(2).ue(0); // sub-layer ordering
        for v in [0, 3, 0, 3, 1, 1] {
            b.ue(v);
        }
        b.u(1, 1).u(1, 1); // scaling lists, present
        for size_id in 0..4 {
            for matrix in (0..6).step_by(if size_id == 3 { 3 } else { 1 }) {
                if size_id == 2 && matrix == 0 {
                    b.u(1, 1).se(8);
                    for i in 0..64 {
                        b.se(i % 5 - 2);
                    }
                } else {
                    b.u(1, 0).ue(0);
                }
            }
        }
        b.u(1, 1).u(1, 1); // amp, sao
        b.u(1, 1).u(4, 7).u(4, 7).ue(0).ue(1).u(1, 0); // pcm
        b.ue(3); // three short-term sets
        b.ue(2).ue(1).ue(0).u(1, 1).ue(1).u(1, 1).ue(1).u(1, 0); // S0 = [-1, -3], S1 = [2]
        b.u(1, 1).u(1, 1).ue(0); // predicted from set 0, delta -1
        b.u(1, 1).u(1, 0).u(1, 1).u(1, 0).u(1, 0).u(1, 1); // -> S0 = [-1, -2, -4]
        b.u(1, 1).u(1, 0).ue(1); // predicted from set 1 (three pictures: four flags), delta +2
        for _ in 0..4 {
            b.u(1, 1);
        }
        b.u(1, 1).ue(2).u(8, 5).u(1, 1).u(8, 9).u(1, 0); // two long-term pictures
        b.u(1, 1).u(1, 1); // temporal mvp, strong intra smoothing
        b.u(1, 1).u(1, 1).u(8, 255).u(16, 4).u(16, 3); // VUI: aspect ratio
        b.u(1, 0).u(1, 1).u(3, 5).u(1, 0).u(1, 1).u(24, 0x010101); // overscan, signal type
        b.u(1, 0).u(3, 0).u(1, 1).ue(0).ue(2).ue(0).ue(2); // chroma loc, flags, display window
        b.u(1, 1).u(32, 1001).u(32, 30000).u(1, 0); // timing
        let sps = Sps::parse(&b.nal([0x42, 0x01]), 0).unwrap();
        assert_eq!(sps.fps, Fps::new(30000, 1001).ok());
        assert_eq!(sps.log2_max_poc_lsb, 8);
    }
}

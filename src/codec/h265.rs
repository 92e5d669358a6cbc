//! H.265 / HEVC: NAL unit types, sequence parameter sets up to the conformance
//! window and bit depths (ITU-T H.265 §7.3.2.2, profile_tier_level §7.3.3),
//! access-unit boundaries (§7.4.2.4.4) and the
//! `HEVCDecoderConfigurationRecord` (`hvcC`, ISO/IEC 14496-15 §8.3.3.1).

use super::CodecError;
use super::bits::{BitReader, unescape};
use super::h264::push_u16_prefixed;

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
        })
    }
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

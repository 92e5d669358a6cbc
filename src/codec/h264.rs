//! H.264 / AVC: NAL unit types, sequence parameter sets (ITU-T H.264 §7.3.2.1.1,
//! VUI §E.1.1), access-unit boundaries (§7.4.1.2.3) and the
//! `AVCDecoderConfigurationRecord` (`avcC`, ISO/IEC 14496-15 §5.3.3.1).

use super::CodecError;
use super::bits::{BitReader, unescape};
use crate::media::Fps;

/// `nal_unit_type` of a NAL unit (its first byte's low 5 bits).
pub fn nal_type(nal: &[u8]) -> u8 {
    nal.first().map_or(0, |b| b & 0x1f)
}

/// Non-IDR coded slice.
pub const SLICE: u8 = 1;
/// IDR coded slice: decoding can start here.
pub const IDR: u8 = 5;
/// Supplemental enhancement information.
pub const SEI: u8 = 6;
/// Sequence parameter set.
pub const SPS: u8 = 7;
/// Picture parameter set.
pub const PPS: u8 = 8;
/// Access unit delimiter.
pub const AUD: u8 = 9;

/// True for coded slices (VCL NAL units of a primary picture).
pub fn is_vcl(t: u8) -> bool {
    (1..=5).contains(&t)
}

/// Whether `nal` starts a new access unit, given that the current one already
/// holds a coded slice (§7.4.1.2.3; assumes no arbitrary slice order).
pub fn starts_access_unit(nal: &[u8]) -> bool {
    match nal_type(nal) {
        AUD | SPS | PPS | SEI | 14..=18 => true,
        // The first slice of a picture has first_mb_in_slice = 0: ue(v) "1".
        t if is_vcl(t) => nal.get(1).is_some_and(|b| b & 0x80 != 0),
        _ => false,
    }
}

/// What Eyrie reads from a sequence parameter set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sps {
    /// `profile_idc` (66 baseline, 77 main, 100 high, ...).
    pub profile_idc: u8,
    /// The constraint flags byte.
    pub constraints: u8,
    /// `level_idc` (level × 10).
    pub level_idc: u8,
    /// `seq_parameter_set_id`.
    pub id: u32,
    /// 0 monochrome, 1 4:2:0, 2 4:2:2, 3 4:4:4.
    pub chroma_format_idc: u32,
    /// Luma bit depth.
    pub bit_depth_luma: u32,
    /// Chroma bit depth.
    pub bit_depth_chroma: u32,
    /// Displayed width (cropping applied).
    pub width: u32,
    /// Displayed height (cropping applied).
    pub height: u32,
    /// `log2_max_frame_num_minus4 + 4`.
    pub log2_max_frame_num: u32,
    /// `pic_order_cnt_type`.
    pub pic_order_cnt_type: u32,
    /// `log2_max_pic_order_cnt_lsb_minus4 + 4` (POC type 0).
    pub log2_max_poc_lsb: u32,
    /// `frame_mbs_only_flag`.
    pub frame_mbs_only: bool,
    /// `separate_colour_plane_flag` (4:4:4 coded as three planes).
    pub separate_colour_plane: bool,
    /// `max_num_ref_frames`.
    pub max_num_ref_frames: u32,
    /// Frame rate from VUI timing info, when signalled.
    pub fps: Option<Fps>,
    /// `max_num_reorder_frames` from the VUI bitstream restriction, when signalled.
    pub max_num_reorder_frames: Option<u32>,
}

impl Sps {
    /// How many frames may precede a frame in decoding order and follow it in
    /// output order: the VUI value, else none for POC type 2 (output order is
    /// decoding order), else the DPB bound of 16.
    pub fn reorder_depth(&self) -> u32 {
        match (self.max_num_reorder_frames, self.pic_order_cnt_type) {
            (Some(n), _) => n.min(16),
            (None, 2) => 0,
            (None, _) => 16,
        }
    }
}

const HIGH_PROFILES: [u8; 13] = [100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135];

impl Sps {
    /// Parses an SPS NAL unit (header included) found at byte `offset` of the input.
    pub fn parse(nal: &[u8], offset: usize) -> Result<Sps, CodecError> {
        if nal_type(nal) != SPS {
            return Err(CodecError::new(
                offset,
                format!("NAL type {} is not an SPS", nal_type(nal)),
            ));
        }
        let rbsp = unescape(&nal[1..]);
        let mut r = BitReader::new(&rbsp, offset + 1, "H.264 SPS");
        let profile_idc = r.bits(8)? as u8;
        let constraints = r.bits(8)? as u8;
        let level_idc = r.bits(8)? as u8;
        let id = r.ue()?;
        if id > 31 {
            return Err(r.error(format!("seq_parameter_set_id {id} > 31")));
        }
        let (mut chroma_format_idc, mut bit_depth_luma, mut bit_depth_chroma) = (1, 8, 8);
        let mut separate_colour_plane = false;
        if HIGH_PROFILES.contains(&profile_idc) {
            chroma_format_idc = r.ue()?;
            if chroma_format_idc > 3 {
                return Err(r.error(format!("chroma_format_idc {chroma_format_idc} > 3")));
            }
            if chroma_format_idc == 3 {
                separate_colour_plane = r.bit()?;
            }
            bit_depth_luma = r.ue()?.saturating_add(8);
            bit_depth_chroma = r.ue()?.saturating_add(8);
            if bit_depth_luma > 14 || bit_depth_chroma > 14 {
                return Err(r.error("bit depth above 14"));
            }
            r.skip(1)?; // qpprime_y_zero_transform_bypass_flag
            if r.bit()? {
                for i in 0..if chroma_format_idc == 3 { 12 } else { 8 } {
                    if r.bit()? {
                        skip_scaling_list(&mut r, if i < 6 { 16 } else { 64 })?;
                    }
                }
            }
        }
        let log2_max_frame_num = r.ue()?.saturating_add(4);
        let pic_order_cnt_type = r.ue()?;
        let mut log2_max_poc_lsb = 0;
        match pic_order_cnt_type {
            0 => log2_max_poc_lsb = r.ue()?.saturating_add(4),
            1 => {
                r.skip(1)?;
                r.se()?;
                r.se()?;
                let cycle = r.ue()?;
                if cycle > 255 {
                    return Err(r.error(format!("num_ref_frames_in_pic_order_cnt_cycle {cycle} > 255")));
                }
                for _ in 0..cycle {
                    r.se()?;
                }
            }
            2 => {}
            t => return Err(r.error(format!("pic_order_cnt_type {t} > 2"))),
        }
        if log2_max_frame_num > 16 || log2_max_poc_lsb > 16 {
            return Err(r.error("log2_max_frame_num or log2_max_pic_order_cnt_lsb above 16"));
        }
        let max_num_ref_frames = r.ue()?;
        r.skip(1)?; // gaps_in_frame_num_value_allowed_flag
        let width_mbs = r.ue()? as u64 + 1;
        let height_map_units = r.ue()? as u64 + 1;
        let frame_mbs_only = r.bit()?;
        if !frame_mbs_only {
            r.skip(1)?; // mb_adaptive_frame_field_flag
        }
        r.skip(1)?; // direct_8x8_inference_flag
        let (mut crop_l, mut crop_r, mut crop_t, mut crop_b) = (0u64, 0u64, 0u64, 0u64);
        if r.bit()? {
            crop_l = r.ue()? as u64;
            crop_r = r.ue()? as u64;
            crop_t = r.ue()? as u64;
            crop_b = r.ue()? as u64;
        }
        let chroma_array_type = if separate_colour_plane { 0 } else { chroma_format_idc };
        let (sub_w, sub_h) = match chroma_array_type {
            1 => (2, 2),
            2 => (2, 1),
            _ => (1, 1),
        };
        let fields = if frame_mbs_only { 1 } else { 2 };
        let crop_x = if chroma_array_type == 0 { 1 } else { sub_w };
        let crop_y = if chroma_array_type == 0 { fields } else { sub_h * fields };
        let coded_w = width_mbs * 16;
        let coded_h = fields * height_map_units * 16;
        let cw = crop_x * (crop_l + crop_r);
        let ch = crop_y * (crop_t + crop_b);
        if cw >= coded_w || ch >= coded_h || coded_w > 16384 * 2 || coded_h > 16384 * 2 {
            return Err(r.error(format!("bad size {coded_w}x{coded_h} with cropping {cw}x{ch}")));
        }
        let (fps, max_num_reorder_frames) = if r.bit()? { vui(&mut r)? } else { (None, None) };
        Ok(Sps {
            profile_idc,
            constraints,
            level_idc,
            id,
            chroma_format_idc,
            bit_depth_luma,
            bit_depth_chroma,
            width: (coded_w - cw) as u32,
            height: (coded_h - ch) as u32,
            log2_max_frame_num,
            pic_order_cnt_type,
            log2_max_poc_lsb,
            frame_mbs_only,
            separate_colour_plane,
            max_num_ref_frames,
            fps,
            max_num_reorder_frames,
        })
    }
}

fn skip_scaling_list(r: &mut BitReader<'_>, size: usize) -> Result<(), CodecError> {
    let (mut last, mut next) = (8i32, 8i32);
    for _ in 0..size {
        if next != 0 {
            let delta = r.se()?;
            if !(-128..=127).contains(&delta) {
                return Err(r.error(format!("delta_scale {delta} outside -128..=127")));
            }
            next = (last + delta).rem_euclid(256);
        }
        if next != 0 {
            last = next;
        }
    }
    Ok(())
}

/// Reads the VUI parameters (§E.1.1): the frame rate from the timing info and
/// `max_num_reorder_frames` from the bitstream restriction. A VUI cut short
/// after the timing info keeps what was read.
fn vui(r: &mut BitReader<'_>) -> Result<(Option<Fps>, Option<u32>), CodecError> {
    skip_vui_head(r)?;
    let mut fps = None;
    if r.bit()? {
        let units = r.bits(32)?;
        let scale = r.bits(32)?;
        r.skip(1)?; // fixed_frame_rate_flag
        // A frame is two fields: fps = time_scale / (2 × num_units_in_tick).
        fps = fps_ratio(u64::from(scale), 2 * u64::from(units));
    }
    Ok((fps, vui_reorder(r).unwrap_or(None)))
}

/// Skips what H.264's and H.265's VUI both start with (§E.1.1 / H.265
/// §E.2.1): aspect ratio, overscan, video signal type, chroma sample locations.
pub(super) fn skip_vui_head(r: &mut BitReader<'_>) -> Result<(), CodecError> {
    if r.bit()? && r.bits(8)? == 255 {
        r.skip(32)?; // sar_width, sar_height
    }
    if r.bit()? {
        r.skip(1)?; // overscan_appropriate_flag
    }
    if r.bit()? {
        r.skip(4)?; // video_format, video_full_range_flag
        if r.bit()? {
            r.skip(24)?; // colour description
        }
    }
    if r.bit()? {
        r.ue()?;
        r.ue()?; // chroma sample locations
    }
    Ok(())
}

/// `num / den` frames per second, reduced; `None` for a zero term or a
/// ratio that does not fit.
pub(super) fn fps_ratio(num: u64, den: u64) -> Option<Fps> {
    if num == 0 || den == 0 {
        return None;
    }
    let g = gcd(num, den);
    u32::try_from(num / g)
        .ok()
        .zip(u32::try_from(den / g).ok())
        .and_then(|(n, d)| Fps::new(n, d).ok())
}

/// The VUI after the timing info: HRD parameters, then the bitstream restriction.
fn vui_reorder(r: &mut BitReader<'_>) -> Result<Option<u32>, CodecError> {
    let nal_hrd = r.bit()?;
    if nal_hrd {
        skip_hrd(r)?;
    }
    let vcl_hrd = r.bit()?;
    if vcl_hrd {
        skip_hrd(r)?;
    }
    if nal_hrd || vcl_hrd {
        r.skip(1)?; // low_delay_hrd_flag
    }
    r.skip(1)?; // pic_struct_present_flag
    if !r.bit()? {
        return Ok(None);
    }
    r.skip(1)?; // motion_vectors_over_pic_boundaries_flag
    for _ in 0..4 {
        r.ue()?; // max_bytes_per_pic_denom .. log2_max_mv_length_vertical
    }
    Ok(Some(r.ue()?))
}

/// hrd_parameters() (§E.1.2).
fn skip_hrd(r: &mut BitReader<'_>) -> Result<(), CodecError> {
    let cpb_cnt = r.ue()?.saturating_add(1);
    if cpb_cnt > 32 {
        return Err(r.error(format!("cpb_cnt_minus1 {} > 31", cpb_cnt - 1)));
    }
    r.skip(8)?; // bit_rate_scale, cpb_size_scale
    for _ in 0..cpb_cnt {
        r.ue()?;
        r.ue()?;
        r.skip(1)?;
    }
    r.skip(20)
}

pub(super) fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// The parameter sets of an `avcC` record: (SPS list, PPS list).
pub type AvccSets<'a> = (Vec<&'a [u8]>, Vec<&'a [u8]>);

/// Builds an `avcC` record (ISO/IEC 14496-15 §5.3.3.1.2) with 4-byte NAL lengths.
pub fn avcc(sps: &[&[u8]], pps: &[&[u8]]) -> Result<Vec<u8>, CodecError> {
    let first = sps
        .first()
        .ok_or_else(|| CodecError::new(0, "avcC needs at least one SPS"))?;
    let parsed = Sps::parse(first, 0)?;
    if sps.len() > 31 || pps.len() > 255 {
        return Err(CodecError::new(0, "too many parameter sets for avcC"));
    }
    let mut out = vec![1, first[1], first[2], first[3], 0xFF, 0xE0 | sps.len() as u8];
    for s in sps {
        push_u16_prefixed(&mut out, s)?;
    }
    out.push(pps.len() as u8);
    for p in pps {
        push_u16_prefixed(&mut out, p)?;
    }
    if [100, 110, 122, 144].contains(&parsed.profile_idc) {
        out.push(0xFC | parsed.chroma_format_idc as u8);
        out.push(0xF8 | (parsed.bit_depth_luma - 8) as u8);
        out.push(0xF8 | (parsed.bit_depth_chroma - 8) as u8);
        out.push(0); // numOfSequenceParameterSetExt
    }
    Ok(out)
}

pub(super) fn push_u16_prefixed(out: &mut Vec<u8>, nal: &[u8]) -> Result<(), CodecError> {
    let len = u16::try_from(nal.len()).map_err(|_| CodecError::new(0, "parameter set longer than 65535 bytes"))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(nal);
    Ok(())
}

/// The SPS and PPS NAL units of an `avcC` record.
pub fn parse_avcc(record: &[u8]) -> Result<AvccSets<'_>, CodecError> {
    let mut pos = 5;
    let mut take_list = |count_mask: u8| -> Result<Vec<&[u8]>, CodecError> {
        let n = record.get(pos).ok_or_else(|| CodecError::new(pos, "avcC ends early"))? & count_mask;
        pos += 1;
        (0..n)
            .map(|_| {
                let len = record
                    .get(pos..pos + 2)
                    .map(|b| u16::from_be_bytes([b[0], b[1]]) as usize)
                    .ok_or_else(|| CodecError::new(pos, "avcC ends early"))?;
                let nal = record
                    .get(pos + 2..pos + 2 + len)
                    .ok_or_else(|| CodecError::new(pos, "avcC NAL overruns"))?;
                pos += 2 + len;
                Ok(nal)
            })
            .collect()
    };
    if record.first() != Some(&1) {
        return Err(CodecError::new(0, "avcC configurationVersion is not 1"));
    }
    let sps = take_list(0x1F)?;
    let pps = take_list(0xFF)?;
    Ok((sps, pps))
}

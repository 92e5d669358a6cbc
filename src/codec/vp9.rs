//! VP9: the uncompressed frame header up to the frame size (VP9 Bitstream
//! Specification v0.6 §6.2), superframe indexes (Annex B), and the IVF file
//! format that carries VP9 elementary streams.

use super::CodecError;
use super::bits::BitReader;

/// What a VP9 frame header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// Profile 0..=3.
    pub profile: u8,
    /// A key frame: decoding can start here.
    pub keyframe: bool,
    /// Shown (false for hidden alt-ref frames inside superframes).
    pub show_frame: bool,
    /// `show_existing_frame`: repeats a decoded frame, carries no new data.
    pub show_existing: bool,
    /// Frame size, for key frames and intra-only frames.
    pub size: Option<(u32, u32)>,
}

/// Parses the header of one VP9 frame (not a superframe) at byte `offset` of the input.
pub fn parse_frame(data: &[u8], offset: usize) -> Result<FrameHeader, CodecError> {
    let mut r = BitReader::new(data, offset, "VP9 frame header");
    if r.bits(2)? != 2 {
        return Err(CodecError::new(offset, "VP9 frame_marker is not 2"));
    }
    let low = r.bits(1)?;
    let high = r.bits(1)?;
    let profile = (high << 1 | low) as u8;
    if profile == 3 {
        r.skip(1)?;
    }
    if r.bit()? {
        return Ok(FrameHeader {
            profile,
            keyframe: false,
            show_frame: true,
            show_existing: true,
            size: None,
        });
    }
    let keyframe = !r.bit()?;
    let show_frame = r.bit()?;
    let error_resilient = r.bit()?;
    let intra_only = if keyframe { false } else { !show_frame && r.bit()? };
    let mut size = None;
    if keyframe || intra_only {
        if !keyframe && !error_resilient {
            r.skip(2)?; // reset_frame_context
        }
        if r.bits(24)? != 0x49_83_42 {
            return Err(r.error("bad frame_sync_code"));
        }
        if keyframe || profile > 0 {
            color_config(&mut r, profile)?;
        }
        if !keyframe {
            r.skip(8)?; // refresh_frame_flags
        }
        let w = r.bits(16)? + 1;
        let h = r.bits(16)? + 1;
        size = Some((w, h));
    }
    Ok(FrameHeader {
        profile,
        keyframe,
        show_frame,
        show_existing: false,
        size,
    })
}

fn color_config(r: &mut BitReader<'_>, profile: u8) -> Result<(), CodecError> {
    if profile >= 2 {
        r.skip(1)?; // ten_or_twelve_bit
    }
    let color_space = r.bits(3)?;
    if color_space != 7 {
        r.skip(1)?; // color_range
        if profile == 1 || profile == 3 {
            r.skip(3)?; // subsampling_x, subsampling_y, reserved_zero
        }
    } else if profile == 1 || profile == 3 {
        r.skip(1)?;
    }
    Ok(())
}

/// The frames of a packet: several when it ends with a superframe index, else one.
pub fn superframe(data: &[u8], offset: usize) -> Result<Vec<&[u8]>, CodecError> {
    let Some(&marker) = data.last() else {
        return Err(CodecError::new(offset, "empty VP9 packet"));
    };
    if marker & 0xE0 != 0xC0 {
        return Ok(vec![data]);
    }
    let frames = (marker & 7) as usize + 1;
    let size_bytes = ((marker >> 3) & 3) as usize + 1;
    let index_len = 2 + size_bytes * frames;
    if data.len() < index_len || data[data.len() - index_len] != marker {
        return Ok(vec![data]); // Not an index after all: a frame ending in such a byte.
    }
    let index = &data[data.len() - index_len + 1..data.len() - 1];
    let mut out = Vec::with_capacity(frames);
    let mut pos = 0;
    for sizes in index.chunks_exact(size_bytes) {
        let size = sizes.iter().rev().fold(0usize, |acc, &b| acc << 8 | b as usize);
        let frame = data
            .get(pos..pos + size)
            .filter(|_| pos + size <= data.len() - index_len)
            .ok_or_else(|| {
                CodecError::new(
                    offset + pos,
                    format!("superframe frame of {size} bytes overruns the packet"),
                )
            })?;
        out.push(frame);
        pos += size;
    }
    Ok(out)
}

/// The header of a packet's first frame (a packet may be a superframe), at
/// byte `offset` of the input.
pub fn packet_header(data: &[u8], offset: usize) -> Result<FrameHeader, CodecError> {
    let frames = superframe(data, offset)?;
    let first = frames
        .first()
        .ok_or_else(|| CodecError::new(offset, "empty VP9 packet"))?;
    parse_frame(first, offset)
}

/// The header of an IVF file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IvfHeader {
    /// The codec FourCC (`VP90`, `VP80`, `AV01`).
    pub fourcc: [u8; 4],
    /// Width in pixels.
    pub width: u16,
    /// Height in pixels.
    pub height: u16,
    /// Timestamps count in units of `timebase_num / timebase_den` seconds.
    pub timebase_num: u32,
    /// See `timebase_num`.
    pub timebase_den: u32,
}

impl IvfHeader {
    /// The 32-byte file header, saying the file holds `frames` frames.
    pub fn to_bytes(&self, frames: u32) -> [u8; 32] {
        let mut b = [0u8; 32];
        b[..4].copy_from_slice(b"DKIF");
        b[6..8].copy_from_slice(&32u16.to_le_bytes());
        b[8..12].copy_from_slice(&self.fourcc);
        b[12..14].copy_from_slice(&self.width.to_le_bytes());
        b[14..16].copy_from_slice(&self.height.to_le_bytes());
        b[16..20].copy_from_slice(&self.timebase_den.to_le_bytes());
        b[20..24].copy_from_slice(&self.timebase_num.to_le_bytes());
        b[24..28].copy_from_slice(&frames.to_le_bytes());
        b
    }
}

/// One frame of an IVF file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IvfFrame<'a> {
    /// Byte offset of the frame data in the file.
    pub offset: usize,
    /// Timestamp in time-base units.
    pub pts: u64,
    /// The frame (or superframe).
    pub data: &'a [u8],
}

/// An IVF file's header and whole frames; `cut` says where and why it ends
/// early (a file truncated mid-frame keeps every frame before the cut).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ivf<'a> {
    /// The file header.
    pub header: IvfHeader,
    /// Every whole frame.
    pub frames: Vec<IvfFrame<'a>>,
    /// Where the file ends early, if it does.
    pub cut: Option<CodecError>,
}

/// Parses an IVF file; a bad header is an error, a truncated tail is [`Ivf::cut`].
pub fn parse_ivf(file: &[u8]) -> Result<Ivf<'_>, CodecError> {
    if file.len() < 32 || &file[..4] != b"DKIF" {
        return Err(CodecError::new(0, "not an IVF file (no DKIF signature)"));
    }
    let u16le = |at: usize| u16::from_le_bytes([file[at], file[at + 1]]);
    let u32le = |at: usize| u32::from_le_bytes(file[at..at + 4].try_into().expect("4 bytes"));
    let header_len = u16le(6) as usize;
    if header_len < 32 || header_len > file.len() {
        return Err(CodecError::new(6, format!("IVF header length {header_len}")));
    }
    let header = IvfHeader {
        fourcc: file[8..12].try_into().expect("4 bytes"),
        width: u16le(12),
        height: u16le(14),
        timebase_den: u32le(16),
        timebase_num: u32le(20),
    };
    if header.timebase_den == 0 || header.timebase_num == 0 {
        return Err(CodecError::new(16, "IVF time base has a zero term"));
    }
    let mut frames = Vec::new();
    let mut pos = header_len;
    let mut cut = None;
    while pos < file.len() {
        if pos + 12 > file.len() {
            cut = Some(CodecError::new(pos, "the file ends inside an IVF frame header"));
            break;
        }
        let size = u32le(pos) as usize;
        let pts = u64::from_le_bytes(file[pos + 4..pos + 12].try_into().expect("8 bytes"));
        let Some(data) = file.get(pos + 12..(pos + 12).saturating_add(size)) else {
            let msg = format!(
                "IVF frame of {size} bytes overruns the file (it ends after {})",
                file.len()
            );
            cut = Some(CodecError::new(pos, msg));
            break;
        };
        frames.push(IvfFrame {
            offset: pos + 12,
            pts,
            data,
        });
        pos += 12 + size;
    }
    Ok(Ivf { header, frames, cut })
}

//! Bitstream parsing, pure and sans-IO: NAL framing (Annex-B and
//! length-prefixed), H.264 and H.265 parameter sets and access units, `avcC` /
//! `hvcC` records, VP9 frame headers and IVF, JPEG frame headers.
//!
//! Bad input is an error carrying the byte offset where it was found; nothing
//! here panics on any input.

pub mod bits;
pub mod fwht;
pub mod h264;
pub mod h265;
pub mod jpeg;
pub mod nal;
pub mod poc;
pub mod vp9;

use std::sync::Arc;

use bytes::Bytes;

use crate::media::{Codec, CodecParams};
pub use nal::Nal;

/// The frame rate a parameter set of `codec` signals: an H.264 or H.265
/// SPS's VUI timing, an H.265 VPS's timing info; `None` for other units or
/// no timing.
pub fn signalled_fps(codec: Codec, nal: &[u8]) -> Option<crate::media::Fps> {
    match codec {
        Codec::H264 if h264::nal_type(nal) == h264::SPS => h264::Sps::parse(nal, 0).ok()?.fps,
        Codec::H265 if h265::nal_type(nal) == h265::SPS => h265::Sps::parse(nal, 0).ok()?.fps,
        Codec::H265 if h265::nal_type(nal) == h265::VPS => h265::vps_fps(nal, 0).ok()?,
        _ => None,
    }
}

/// A bitstream error: what is wrong, and where.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("at byte {offset}: {message}")]
pub struct CodecError {
    /// Byte offset in the input.
    pub offset: usize,
    /// What is wrong.
    pub message: String,
}

impl CodecError {
    /// An error at `offset`.
    pub fn new(offset: usize, message: impl Into<String>) -> Self {
        CodecError {
            offset,
            message: message.into(),
        }
    }
}

/// One access unit (a coded picture with its parameter sets and SEI) of an
/// H.264 or H.265 stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessUnit<'a> {
    /// Its NAL units, in order.
    pub nals: Vec<Nal<'a>>,
    /// Decoding can start here (H.264 IDR, H.265 IRAP).
    pub keyframe: bool,
}

impl<'a> AccessUnit<'a> {
    /// The access unit these NAL units make (a container sample is one).
    pub fn of(codec: Codec, nals: Vec<Nal<'a>>) -> Self {
        let keyframe = nals.iter().any(|n| match codec {
            Codec::H264 => h264::nal_type(n.data) == h264::IDR,
            _ => h265::is_irap(h265::nal_type(n.data)),
        });
        AccessUnit { nals, keyframe }
    }

    /// Offset of its first NAL unit in the input.
    pub fn offset(&self) -> usize {
        self.nals.first().map_or(0, |n| n.offset)
    }
}

/// Groups NAL units into access units (H.264 §7.4.1.2.3, H.265 §7.4.2.4.4):
/// push NAL units in stream order, take each access unit as it completes.
#[derive(Debug)]
pub struct AuSplitter<'a> {
    codec: Codec,
    current: Vec<Nal<'a>>,
    has_vcl: bool,
}

impl<'a> AuSplitter<'a> {
    /// A splitter for `codec` (H.264 or H.265).
    pub fn new(codec: Codec) -> Self {
        assert!(
            matches!(codec, Codec::H264 | Codec::H265),
            "access units are an H.264/H.265 notion"
        );
        AuSplitter {
            codec,
            current: Vec::new(),
            has_vcl: false,
        }
    }

    /// Adds a NAL unit; returns the previous access unit if this one starts a new one.
    pub fn push(&mut self, nal: Nal<'a>) -> Option<AccessUnit<'a>> {
        let (starts, vcl) = match self.codec {
            Codec::H264 => (
                h264::starts_access_unit(nal.data),
                h264::is_vcl(h264::nal_type(nal.data)),
            ),
            _ => (
                h265::starts_access_unit(nal.data),
                h265::is_vcl(h265::nal_type(nal.data)),
            ),
        };
        let done = if self.has_vcl && starts { self.take() } else { None };
        self.has_vcl |= vcl;
        self.current.push(nal);
        done
    }

    /// The last access unit, at end of stream.
    pub fn finish(&mut self) -> Option<AccessUnit<'a>> {
        self.take()
    }

    fn take(&mut self) -> Option<AccessUnit<'a>> {
        if self.current.is_empty() {
            return None;
        }
        self.has_vcl = false;
        Some(AccessUnit::of(self.codec, std::mem::take(&mut self.current)))
    }
}

/// The access units of a whole Annex-B stream.
pub fn access_units(codec: Codec, data: &[u8]) -> Vec<AccessUnit<'_>> {
    let mut splitter = AuSplitter::new(codec);
    let mut out: Vec<AccessUnit<'_>> = nal::annexb(data).filter_map(|n| splitter.push(n)).collect();
    out.extend(splitter.finish());
    out
}

/// Tracks a stream's parameter sets and turns them into [`CodecParams`]
/// (size and `avcC`/`hvcC`), reporting a format change whenever they change.
#[derive(Debug)]
pub struct ParamTracker {
    codec: Codec,
    /// (NAL type, id, NAL unit), in order of first appearance.
    sets: Vec<(u8, u32, Vec<u8>)>,
    current: Option<Arc<CodecParams>>,
}

impl ParamTracker {
    /// A tracker for `codec` (H.264 or H.265).
    pub fn new(codec: Codec) -> Self {
        ParamTracker {
            codec,
            sets: Vec::new(),
            current: None,
        }
    }

    /// The parameters in effect.
    pub fn current(&self) -> Option<&Arc<CodecParams>> {
        self.current.as_ref()
    }

    /// Reads the parameter sets of `au`; returns the new parameters when they
    /// changed (the first time, or a new resolution mid-stream).
    pub fn update(&mut self, au: &AccessUnit<'_>) -> Result<Option<Arc<CodecParams>>, CodecError> {
        let mut changed = false;
        for n in &au.nals {
            // A set seen before, byte for byte (its header included): nothing to parse.
            if self.sets.iter().any(|(_, _, old)| old.as_slice() == n.data) {
                continue;
            }
            let Some((t, id)) = self.param_id(n)? else { continue };
            match self.sets.iter_mut().find(|(st, sid, _)| *st == t && *sid == id) {
                Some((_, _, old)) => {
                    *old = n.data.to_vec();
                    changed = true;
                }
                None => {
                    self.sets.push((t, id, n.data.to_vec()));
                    changed = true;
                }
            }
        }
        if !changed {
            return Ok(None);
        }
        let of = |t: u8| {
            self.sets
                .iter()
                .filter(|s| s.0 == t)
                .map(|s| s.2.as_slice())
                .collect::<Vec<_>>()
        };
        let params = match self.codec {
            Codec::H264 => {
                let (sps, pps) = (of(h264::SPS), of(h264::PPS));
                if sps.is_empty() || pps.is_empty() {
                    return Ok(None);
                }
                let s = h264::Sps::parse(sps[0], au.offset())?;
                CodecParams::new(Codec::H264, s.width, s.height).with_extradata(Bytes::from(h264::avcc(&sps, &pps)?))
            }
            _ => {
                let (vps, sps, pps) = (of(h265::VPS), of(h265::SPS), of(h265::PPS));
                if vps.is_empty() || sps.is_empty() || pps.is_empty() {
                    return Ok(None);
                }
                let s = h265::Sps::parse(sps[0], au.offset())?;
                CodecParams::new(Codec::H265, s.width, s.height)
                    .with_extradata(Bytes::from(h265::hvcc(&vps, &sps, &pps)?))
            }
        };
        if self.current.as_deref() == Some(&params) {
            return Ok(None);
        }
        let params = Arc::new(params);
        self.current = Some(Arc::clone(&params));
        Ok(Some(params))
    }

    /// (type, id) of a parameter set NAL unit; `None` for other units.
    fn param_id(&self, n: &Nal<'_>) -> Result<Option<(u8, u32)>, CodecError> {
        let first_ue = |skip: usize, what| -> Result<u32, CodecError> {
            let rbsp = bits::unescape(n.data.get(skip..).unwrap_or_default());
            bits::BitReader::new(&rbsp, n.offset + skip, what).ue()
        };
        Ok(match self.codec {
            Codec::H264 => match h264::nal_type(n.data) {
                h264::SPS => Some((h264::SPS, h264::Sps::parse(n.data, n.offset)?.id)),
                h264::PPS => Some((h264::PPS, first_ue(1, "H.264 PPS")?)),
                _ => None,
            },
            _ => match h265::nal_type(n.data) {
                h265::VPS => Some((h265::VPS, n.data.get(2).map_or(0, |b| (b >> 4) as u32))),
                h265::SPS => Some((h265::SPS, h265::Sps::parse(n.data, n.offset)?.id)),
                h265::PPS => Some((h265::PPS, first_ue(2, "H.265 PPS")?)),
                _ => None,
            },
        })
    }
}

/// Follows the parameter sets carried in H.264/H.265 samples, so a change
/// mid-stream reaches the packets' [`CodecParams`].
pub(crate) struct ParamFollower {
    codec: Codec,
    tracker: Option<ParamTracker>,
    current: Option<Arc<CodecParams>>,
}

impl ParamFollower {
    /// Starts from the container's parameters, if it has any.
    pub(crate) fn new(codec: Codec, initial: Option<CodecParams>) -> Self {
        ParamFollower {
            codec,
            tracker: matches!(codec, Codec::H264 | Codec::H265).then(|| ParamTracker::new(codec)),
            current: initial.map(Arc::new),
        }
    }

    /// The parameters in effect for an Annex-B sample found at byte `offset`,
    /// and whether the sample is a keyframe (IDR/IRAP; false for other codecs).
    pub(crate) fn follow(&mut self, data: &[u8], offset: usize) -> Result<(Arc<CodecParams>, bool), CodecError> {
        let mut keyframe = false;
        if self.tracker.is_some() {
            for au in access_units(self.codec, data) {
                keyframe |= self.track(&au)?;
            }
        }
        Ok((self.params(offset)?, keyframe))
    }

    /// A container's length-prefixed H.264/H.265 sample (at byte `offset` of
    /// the file) as Annex-B, with the parameters in effect and whether it is a
    /// keyframe: its NAL units are found once, for both.
    pub(crate) fn follow_sample(
        &mut self,
        sample: &[u8],
        length_size: usize,
        offset: usize,
    ) -> Result<(Bytes, Arc<CodecParams>, bool), CodecError> {
        let nals = nal::length_prefixed(sample, length_size, offset)?;
        let mut annexb = Vec::with_capacity(sample.len() + nals.len() * 4);
        nal::write_annexb(nals.iter().map(|n| n.data), &mut annexb);
        let keyframe = self.track(&AccessUnit::of(self.codec, nals))?;
        Ok((Bytes::from(annexb), self.params(offset)?, keyframe))
    }

    /// Reads the parameter sets of `au`; returns whether it is a keyframe.
    fn track(&mut self, au: &AccessUnit<'_>) -> Result<bool, CodecError> {
        if let Some(tracker) = &mut self.tracker
            && let Some(p) = tracker.update(au)?
        {
            self.current = Some(p);
        }
        Ok(au.keyframe)
    }

    fn params(&self, offset: usize) -> Result<Arc<CodecParams>, CodecError> {
        self.current
            .clone()
            .ok_or_else(|| CodecError::new(offset, format!("{} data before its parameter sets", self.codec)))
    }
}

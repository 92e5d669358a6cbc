//! Elementary streams: Annex-B H.264/H.265 (`.h264`, `.h265`) and IVF VP9
//! (`.ivf`), read into [`Packet`]s.
//!
//! Annex-B carries no timestamps. Each access unit gets its decode time from
//! its position (`(n − reorder) / fps`, so the first picture is presented
//! at 0) and its presentation time from its picture order count through
//! [`Presenter`] — the convention of x264 and FFmpeg, so B-frame streams get
//! the pts/dts an encoder would have given them. The frame rate comes from
//! the caller, else from the SPS VUI timing info.

use std::sync::Arc;

use bytes::Bytes;

use crate::codec::poc::{PocCounter, Presenter};
use crate::codec::{AccessUnit, AuSplitter, CodecError, ParamTracker, h264, nal, vp9};
use crate::media::{Codec, CodecParams, Fps, Packet};

/// The kinds of elementary stream files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EsKind {
    /// H.264 Annex-B byte stream.
    H264,
    /// H.265 Annex-B byte stream.
    H265,
    /// IVF file (VP9).
    Ivf,
}

impl EsKind {
    /// The kind named by a file extension.
    pub fn from_extension(ext: &str) -> Option<EsKind> {
        Some(match ext.to_ascii_lowercase().as_str() {
            "h264" | "264" | "avc" | "h26l" => EsKind::H264,
            "h265" | "265" | "hevc" => EsKind::H265,
            "ivf" => EsKind::Ivf,
            _ => return None,
        })
    }
}

/// Reads every packet of an elementary stream held in `data` (packets share
/// `data`; nothing is copied). `fps` overrides the stream's own rate.
pub fn read(data: &Bytes, kind: EsKind, fps: Option<Fps>, source: &Arc<str>) -> Result<Vec<Packet>, CodecError> {
    match kind {
        EsKind::H264 => read_annexb(data, Codec::H264, fps, source),
        EsKind::H265 => read_annexb(data, Codec::H265, fps, source),
        EsKind::Ivf => read_ivf(data, source),
    }
}

fn read_annexb(data: &Bytes, codec: Codec, fps: Option<Fps>, source: &Arc<str>) -> Result<Vec<Packet>, CodecError> {
    let mut splitter = AuSplitter::new(codec);
    let mut params = ParamTracker::new(codec);
    let mut pocs = PocCounter::new(codec);
    let mut presenter = Presenter::new();
    let mut fps = fps;
    let mut delay = None;
    // (access unit bytes, keyframe, params), in decoding order, and each one's presentation index.
    let mut units: Vec<(Bytes, bool, Arc<CodecParams>)> = Vec::new();
    let mut shown: Vec<u64> = Vec::new();
    let mut add = |au: AccessUnit<'_>| -> Result<(), CodecError> {
        params.update(&au)?;
        let Some(poc) = pocs.push(&au)? else {
            return Ok(()); // no coded picture (e.g. a trailing end-of-stream unit)
        };
        let p = params
            .current()
            .cloned()
            .ok_or_else(|| CodecError::new(au.offset(), "a picture before the stream's parameter sets (SPS/PPS)"))?;
        if fps.is_none() && codec == Codec::H264 {
            fps = au
                .nals
                .iter()
                .find(|n| h264::nal_type(n.data) == h264::SPS)
                .and_then(|n| h264::Sps::parse(n.data, n.offset).ok()?.fps);
        }
        delay.get_or_insert(poc.reorder);
        let last = au.nals.last().expect("an access unit has NAL units");
        let (start, end) = (au.offset() - 3, last.offset + last.data.len());
        let id = units.len() as u64;
        units.push((data.slice(start..end), au.keyframe, p));
        shown.push(u64::MAX);
        for (id, at) in presenter.push(id, poc) {
            shown[id as usize] = at;
        }
        Ok(())
    };
    for n in nal::annexb(data) {
        if let Some(au) = splitter.push(n) {
            add(au)?;
        }
    }
    if let Some(au) = splitter.finish() {
        add(au)?;
    }
    for (id, at) in presenter.flush() {
        shown[id as usize] = at;
    }
    let fps = fps.ok_or_else(|| {
        CodecError::new(
            0,
            format!("the {codec} stream does not signal its frame rate: give one (--fps)"),
        )
    })?;
    let delay = delay.unwrap_or(0) as i64;
    let t = |n: i64| n.signum() * fps.frame_time_ns(n.unsigned_abs()) as i64;
    let duration = fps.frame_time_ns(1) as i64;
    Ok(units
        .into_iter()
        .zip(shown)
        .enumerate()
        .map(|(i, ((bytes, keyframe, params), at))| Packet {
            codec,
            data: bytes,
            pts: t(at as i64),
            dts: t(i as i64 - delay),
            duration,
            keyframe,
            params,
            source: Arc::clone(source),
            seq: i as u64,
        })
        .collect())
}

fn read_ivf(data: &Bytes, source: &Arc<str>) -> Result<Vec<Packet>, CodecError> {
    let (header, frames) = vp9::parse_ivf(data)?;
    if &header.fourcc != b"VP90" {
        return Err(CodecError::new(
            8,
            format!(
                "IVF codec {} (Eyrie reads VP90)",
                String::from_utf8_lossy(&header.fourcc)
            ),
        ));
    }
    let ns = |ts: u64| (ts as i128 * header.timebase_num as i128 * 1_000_000_000 / header.timebase_den as i128) as i64;
    let mut params = Arc::new(CodecParams::new(Codec::Vp9, header.width as u32, header.height as u32));
    let mut out: Vec<Packet> = Vec::with_capacity(frames.len());
    for (i, f) in frames.iter().enumerate() {
        let first = vp9::superframe(f.data, f.offset)?
            .first()
            .copied()
            .ok_or_else(|| CodecError::new(f.offset, "empty VP9 frame"))?;
        let h = vp9::parse_frame(first, f.offset)?;
        if let Some((w, hgt)) = h.size.filter(|_| h.keyframe)
            && (w, hgt) != (params.width, params.height)
        {
            params = Arc::new(CodecParams::new(Codec::Vp9, w, hgt));
        }
        let pts = ns(f.pts);
        let next = frames.get(i + 1).map(|n| ns(n.pts));
        out.push(Packet {
            codec: Codec::Vp9,
            data: data.slice_ref(f.data),
            pts,
            dts: pts,
            duration: next.map_or(ns(1), |n| n - pts),
            keyframe: h.keyframe,
            params: Arc::clone(&params),
            source: Arc::clone(source),
            seq: i as u64,
        });
    }
    Ok(out)
}

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
use crate::codec::{AccessUnit, AuSplitter, CodecError, ParamTracker, nal, vp9};
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

impl std::fmt::Display for EsKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            EsKind::H264 => "H.264 (Annex-B)",
            EsKind::H265 => "H.265 (Annex-B)",
            EsKind::Ivf => "VP9 (IVF)",
        })
    }
}

/// Reads every packet of an elementary stream held in `data` (packets share
/// `data`; nothing is copied). `fps` overrides the stream's own rate.
pub fn read(data: &Bytes, kind: EsKind, fps: Option<Fps>, source: &Arc<str>) -> Result<Vec<Packet>, CodecError> {
    let mut out = Vec::new();
    for_each(data, kind, fps, source, |p| {
        out.push(p);
        Ok(())
    })?;
    Ok(out)
}

/// Streams the packets of an elementary stream to `sink`, in decoding order,
/// each as soon as its presentation time is known (a few pictures behind the
/// parser), so a caller can mux a picture while its bytes are still in cache.
pub fn for_each<E: From<CodecError>>(
    data: &Bytes,
    kind: EsKind,
    fps: Option<Fps>,
    source: &Arc<str>,
    sink: impl FnMut(Packet) -> Result<(), E>,
) -> Result<(), E> {
    match kind {
        EsKind::H264 => read_annexb(data, Codec::H264, fps, source, sink),
        EsKind::H265 => read_annexb(data, Codec::H265, fps, source, sink),
        EsKind::Ivf => read_ivf(data, source, sink),
    }
}

/// Annex-B access units waiting for their presentation index.
struct Pending {
    codec: Codec,
    source: Arc<str>,
    fps: Option<Fps>,
    delay: i64,
    /// Decoding index of `units[0]`.
    first: u64,
    /// (access unit, keyframe, params, presentation index once known).
    units: std::collections::VecDeque<(Bytes, bool, Arc<CodecParams>, Option<u64>)>,
}

impl Pending {
    fn shown(&mut self, id: u64, at: u64) {
        if let Some(u) = self.units.get_mut((id - self.first) as usize) {
            u.3 = Some(at);
        }
    }

    /// Hands every front unit whose presentation index is known to `sink`.
    fn drain<E: From<CodecError>>(&mut self, sink: &mut impl FnMut(Packet) -> Result<(), E>) -> Result<(), E> {
        while self.units.front().is_some_and(|u| u.3.is_some()) {
            let fps = self.fps.ok_or_else(|| {
                CodecError::new(
                    0,
                    format!(
                        "the {} stream does not signal its frame rate: give one (--fps)",
                        self.codec
                    ),
                )
            })?;
            let (data, keyframe, params, at) = self.units.pop_front().expect("a front unit");
            let t = |n: i64| n.signum() * fps.frame_time_ns(n.unsigned_abs()) as i64;
            sink(Packet {
                meta: Default::default(),
                codec: self.codec,
                data,
                pts: t(at.expect("known") as i64),
                dts: t(self.first as i64 - self.delay),
                duration: fps.frame_time_ns(1) as i64,
                keyframe,
                params,
                source: Arc::clone(&self.source),
                seq: self.first,
                capture_utc: std::time::SystemTime::UNIX_EPOCH,
            })?;
            self.first += 1;
        }
        Ok(())
    }
}

fn read_annexb<E: From<CodecError>>(
    data: &Bytes,
    codec: Codec,
    fps: Option<Fps>,
    source: &Arc<str>,
    mut sink: impl FnMut(Packet) -> Result<(), E>,
) -> Result<(), E> {
    let mut splitter = AuSplitter::new(codec);
    let mut params = ParamTracker::new(codec);
    let mut pocs = PocCounter::new(codec);
    let mut presenter = Presenter::new();
    let mut pending = Pending {
        codec,
        source: Arc::clone(source),
        fps,
        delay: -1,
        first: 0,
        units: Default::default(),
    };
    let mut decoded = 0u64;
    // `last`: the stream's last access unit, which a cut file may have cut
    // too: its cut NAL units are left out, with a warning, down to what parses.
    let mut add = |mut au: AccessUnit<'_>,
                   last: bool,
                   sink: &mut dyn FnMut(Packet) -> Result<(), E>|
     -> Result<(), E> {
        let (poc, p) = loop {
            let parsed = params.update(&au).and_then(|_| pocs.push(&au)).and_then(|poc| {
                let p = params.current().cloned();
                let p = p.ok_or_else(|| {
                    CodecError::new(au.offset(), "a picture before the stream's parameter sets (SPS/PPS)")
                });
                poc.map(|poc| p.map(|p| (poc, p))).transpose()
            });
            match parsed {
                Ok(Some(picture)) => break picture,
                Ok(None) => return Ok(()), // no coded picture (e.g. a trailing end-of-stream unit)
                Err(e) if last => {
                    tracing::warn!(%source, "truncated: the NAL unit at byte {} is left out: {e}", au.nals.last().map_or(0, |n| n.offset));
                    au.nals.pop();
                    if au.nals.is_empty() {
                        return Ok(());
                    }
                    au = AccessUnit::of(codec, std::mem::take(&mut au.nals));
                }
                Err(e) => return Err(e.into()),
            }
        };
        if pending.fps.is_none() {
            pending.fps = au.nals.iter().find_map(|n| crate::codec::signalled_fps(codec, n.data));
        }
        if pending.delay < 0 {
            pending.delay = poc.reorder as i64;
        }
        let last = au.nals.last().expect("an access unit has NAL units");
        let (start, end) = (au.offset() - 3, last.offset + last.data.len());
        pending.units.push_back((data.slice(start..end), au.keyframe, p, None));
        for (id, at) in presenter.push(decoded, poc) {
            pending.shown(id, at);
        }
        decoded += 1;
        pending.drain(&mut |p| sink(p))
    };
    for n in nal::annexb(data) {
        if let Some(au) = splitter.push(n) {
            add(au, false, &mut sink)?;
        }
    }
    if let Some(au) = splitter.finish() {
        add(au, true, &mut sink)?;
    }
    for (id, at) in presenter.flush() {
        pending.shown(id, at);
    }
    pending.drain(&mut sink)
}

fn read_ivf<E: From<CodecError>>(
    data: &Bytes,
    source: &Arc<str>,
    mut sink: impl FnMut(Packet) -> Result<(), E>,
) -> Result<(), E> {
    let vp9::Ivf { header, frames, cut } = vp9::parse_ivf(data)?;
    if let Some(cut) = cut {
        tracing::warn!(%source, "truncated: {cut}; the {} whole frames before it are read", frames.len());
    }
    if &header.fourcc != b"VP90" {
        return Err(CodecError::new(
            8,
            format!(
                "IVF codec {} (Eyrie reads VP90)",
                String::from_utf8_lossy(&header.fourcc)
            ),
        )
        .into());
    }
    let ns = |ts: u64| (ts as i128 * header.timebase_num as i128 * 1_000_000_000 / header.timebase_den as i128) as i64;
    let mut params = Arc::new(CodecParams::new(Codec::Vp9, header.width as u32, header.height as u32));
    for (i, f) in frames.iter().enumerate() {
        let h = vp9::packet_header(f.data, f.offset)?;
        if let Some((w, hgt)) = h.size.filter(|_| h.keyframe)
            && (w, hgt) != (params.width, params.height)
        {
            params = Arc::new(CodecParams::new(Codec::Vp9, w, hgt));
        }
        let pts = ns(f.pts);
        let next = frames.get(i + 1).map(|n| ns(n.pts));
        sink(Packet {
            meta: Default::default(),
            codec: Codec::Vp9,
            data: data.slice_ref(f.data),
            pts,
            dts: pts,
            duration: next.map_or(ns(1), |n| n - pts),
            keyframe: h.keyframe,
            params: Arc::clone(&params),
            source: Arc::clone(source),
            seq: i as u64,
            capture_utc: std::time::SystemTime::UNIX_EPOCH,
        })?;
    }
    Ok(())
}

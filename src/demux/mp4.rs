//! MP4 reader (ISO/IEC 14496-12): the first video track of a progressive
//! file (`stbl` sample tables) or a fragmented one (`moof`/`traf`/`trun`),
//! with its edit list's start offset applied. A fragmented file cut while
//! being written reads up to its last whole fragment.

use std::sync::Arc;

use bytes::Bytes;

use crate::codec::ParamFollower;
use crate::codec::{CodecError, vp9};
use crate::media::{Codec, CodecParams, Packet};
use crate::mux::to_ns;

/// A box: its type and its body's byte range.
type Mp4Box = ([u8; 4], usize, usize);

fn boxes(data: &[u8], from: usize, to: usize) -> Result<Vec<Mp4Box>, CodecError> {
    let mut out = Vec::new();
    let mut pos = from;
    while pos + 8 <= to {
        let size = u32::from_be_bytes(data[pos..pos + 4].try_into().expect("4 bytes")) as u64;
        let kind: [u8; 4] = data[pos + 4..pos + 8].try_into().expect("4 bytes");
        let (header, size) = match size {
            0 => (8, (to - pos) as u64),
            1 => {
                let large = data
                    .get(pos + 8..pos + 16)
                    .ok_or_else(|| CodecError::new(pos, "box header truncated"))?;
                (16, u64::from_be_bytes(large.try_into().expect("8 bytes")))
            }
            s => (8, s),
        };
        if size < header || size > (to - pos) as u64 {
            return Err(CodecError::new(
                pos,
                format!(
                    "box '{}' of {size} bytes overruns its container",
                    String::from_utf8_lossy(&kind)
                ),
            ));
        }
        out.push((kind, pos + header as usize, pos + size as usize));
        pos += size as usize;
    }
    Ok(out)
}

fn find(list: &[Mp4Box], kind: &[u8; 4]) -> Option<(usize, usize)> {
    list.iter().find(|b| &b.0 == kind).map(|b| (b.1, b.2))
}

/// Big-endian reads that fail with the offset instead of panicking.
struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
    end: usize,
}

impl<'a> Cursor<'a> {
    fn new(data: &'a [u8], (pos, end): (usize, usize)) -> Self {
        Cursor { data, pos, end }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        if self.pos + n > self.end {
            return Err(CodecError::new(self.pos, "box ends early"));
        }
        self.pos += n;
        Ok(&self.data[self.pos - n..self.pos])
    }

    fn u32(&mut self) -> Result<u32, CodecError> {
        Ok(u32::from_be_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }

    fn u64(&mut self) -> Result<u64, CodecError> {
        Ok(u64::from_be_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }

    /// A full box's (version, flags).
    fn full(&mut self) -> Result<(u8, u32), CodecError> {
        let v = self.u32()?;
        Ok(((v >> 24) as u8, v & 0xFF_FFFF))
    }

    /// A u32 entry count, checked against the bytes left (`entry` bytes each).
    fn count(&mut self, entry: usize) -> Result<usize, CodecError> {
        let at = self.pos;
        let n = self.u32()? as usize;
        if n.saturating_mul(entry) > self.end - self.pos {
            return Err(CodecError::new(at, format!("{n} entries do not fit in the box")));
        }
        Ok(n)
    }

    /// A u32 count of samples of `size` bytes each that the table does not
    /// list one by one, checked against the input: no more than it can hold.
    fn samples(&mut self, size: u32) -> Result<usize, CodecError> {
        let at = self.pos;
        let n = self.u32()? as usize;
        if n.saturating_mul(size.max(1) as usize) > self.data.len() {
            return Err(CodecError::new(
                at,
                format!("{n} samples of {size} bytes are more than the input holds"),
            ));
        }
        Ok(n)
    }
}

#[derive(Clone, Copy, Debug)]
struct Sample {
    offset: u64,
    size: u32,
    dts: i64,
    duration: u32,
    cto: i64,
    sync: bool,
}

struct Track {
    id: u32,
    codec: Codec,
    timescale: u32,
    media_time: i64,
    length_size: usize,
    params: CodecParams,
    /// Progressive sample table boxes: stbl children.
    stbl: Vec<Mp4Box>,
}

/// Reads the video packets of an MP4 file.
pub fn read(data: &Bytes, source: &Arc<str>) -> Result<Vec<Packet>, CodecError> {
    // A file cut mid-box keeps the whole boxes before the cut.
    let top = match boxes(data, 0, data.len()) {
        Ok(all) => all,
        Err(e) => boxes(data, 0, e.offset)?,
    };
    let (ms, me) = find(&top, b"moov").ok_or_else(|| CodecError::new(0, "no moov box"))?;
    let moov = boxes(data, ms, me)?;
    let mut track = None;
    for (kind, s, e) in &moov {
        if kind == b"trak"
            && let Some(t) = trak(data, *s, *e)?
        {
            track = Some(t);
            break;
        }
    }
    let t = track.ok_or_else(|| CodecError::new(ms, "no video track"))?;
    let mut samples = progressive(data, &t)?;
    let mut trex = (0u32, 0u32, 0u32);
    if let Some(mvex) = find(&moov, b"mvex") {
        for (kind, s, e) in boxes(data, mvex.0, mvex.1)? {
            let mut c = Cursor::new(data, (s, e));
            if &kind == b"trex" {
                c.full()?;
                if c.u32()? == t.id {
                    c.u32()?;
                    trex = (c.u32()?, c.u32()?, c.u32()?);
                }
            }
        }
    }
    let mut next_dts = 0i64;
    for (kind, s, e) in &top {
        if kind == b"moof" {
            fragment(data, &t, trex, (*s - 8, *s, *e), &mut next_dts, &mut samples)?;
        }
    }
    // A fragment cut short: keep the samples whose bytes are all there.
    let whole = samples
        .iter()
        .position(|s| s.offset + s.size as u64 > data.len() as u64)
        .unwrap_or(samples.len());
    samples.truncate(whole);

    let mut follower = ParamFollower::new(t.codec, Some(t.params.clone()));
    let mut out = Vec::with_capacity(samples.len());
    for (i, s) in samples.iter().enumerate() {
        let (a, b) = (s.offset as usize, s.offset as usize + s.size as usize);
        let (payload, params) = match t.codec {
            Codec::H264 | Codec::H265 => {
                let (payload, params, _) = follower.follow_sample(&data[a..b], t.length_size, a)?;
                (payload, params)
            }
            _ => {
                let payload = data.slice(a..b);
                let (params, _) = follower.follow(&payload, a)?;
                (payload, params)
            }
        };
        let keyframe = match t.codec {
            Codec::Vp9 => vp9::packet_header(&payload, a)?.keyframe,
            _ => s.sync,
        };
        out.push(Packet {
            meta: Default::default(),
            codec: t.codec,
            data: payload,
            pts: to_ns(s.dts.saturating_add(s.cto).saturating_sub(t.media_time), t.timescale),
            dts: to_ns(s.dts.saturating_sub(t.media_time), t.timescale),
            duration: to_ns(s.duration as i64, t.timescale),
            keyframe,
            params,
            source: Arc::clone(source),
            seq: i as u64,
            capture_utc: std::time::SystemTime::UNIX_EPOCH,
        });
    }
    Ok(out)
}

/// A video `trak`; `None` for other tracks.
fn trak(data: &Bytes, s: usize, e: usize) -> Result<Option<Track>, CodecError> {
    let trak = boxes(data, s, e)?;
    let tkhd = find(&trak, b"tkhd").ok_or_else(|| CodecError::new(s, "trak without tkhd"))?;
    let mut c = Cursor::new(data, tkhd);
    let (v, _) = c.full()?;
    c.take(if v == 1 { 16 } else { 8 })?;
    let id = c.u32()?;
    let mdia = find(&trak, b"mdia").ok_or_else(|| CodecError::new(s, "trak without mdia"))?;
    let mdia = boxes(data, mdia.0, mdia.1)?;
    if let Some(hdlr) = find(&mdia, b"hdlr") {
        let mut c = Cursor::new(data, hdlr);
        c.take(8)?;
        if c.take(4)? != b"vide" {
            return Ok(None);
        }
    }
    let mdhd = find(&mdia, b"mdhd").ok_or_else(|| CodecError::new(s, "mdia without mdhd"))?;
    let mut c = Cursor::new(data, mdhd);
    let (v, _) = c.full()?;
    c.take(if v == 1 { 16 } else { 8 })?;
    let timescale = c.u32()?;
    if timescale == 0 {
        return Err(CodecError::new(mdhd.0, "mdhd timescale 0"));
    }
    let mut media_time = 0;
    if let Some(edts) = find(&trak, b"edts")
        && let Some(elst) = find(&boxes(data, edts.0, edts.1)?, b"elst")
    {
        let mut c = Cursor::new(data, elst);
        let (v, _) = c.full()?;
        for _ in 0..c.count(if v == 1 { 20 } else { 12 })? {
            let t = if v == 1 {
                c.u64()?;
                c.u64()? as i64
            } else {
                c.u32()?;
                c.u32()? as i32 as i64
            };
            c.u32()?;
            if t >= 0 {
                media_time = t;
                break;
            }
        }
    }
    let minf = find(&mdia, b"minf").ok_or_else(|| CodecError::new(s, "mdia without minf"))?;
    let stbl = find(&boxes(data, minf.0, minf.1)?, b"stbl").ok_or_else(|| CodecError::new(s, "minf without stbl"))?;
    let stbl = boxes(data, stbl.0, stbl.1)?;
    let stsd = find(&stbl, b"stsd").ok_or_else(|| CodecError::new(s, "stbl without stsd"))?;
    let mut c = Cursor::new(data, stsd);
    c.full()?;
    c.u32()?;
    let entry = boxes(data, c.pos, stsd.1)?
        .into_iter()
        .next()
        .ok_or_else(|| CodecError::new(stsd.0, "stsd without an entry"))?;
    let (kind, es, ee) = entry;
    let codec = match &kind {
        b"avc1" | b"avc3" => Codec::H264,
        b"hvc1" | b"hev1" => Codec::H265,
        b"vp09" => Codec::Vp9,
        other => {
            return Err(CodecError::new(
                es,
                format!("sample entry '{}' is not supported", String::from_utf8_lossy(other)),
            ));
        }
    };
    let mut c = Cursor::new(data, (es, ee));
    c.take(24)?;
    let dims = c.take(4)?;
    let (width, height) = (
        u16::from_be_bytes([dims[0], dims[1]]) as u32,
        u16::from_be_bytes([dims[2], dims[3]]) as u32,
    );
    c.take(50)?;
    let children = boxes(data, c.pos, ee)?;
    let (config, length_size) = match codec {
        Codec::H264 => {
            let (a, b) = find(&children, b"avcC").ok_or_else(|| CodecError::new(es, "avc1 without avcC"))?;
            (data.slice(a..b), data.get(a + 4).map_or(4, |x| (x & 3) as usize + 1))
        }
        Codec::H265 => {
            let (a, b) = find(&children, b"hvcC").ok_or_else(|| CodecError::new(es, "hvc1 without hvcC"))?;
            (data.slice(a..b), data.get(a + 21).map_or(4, |x| (x & 3) as usize + 1))
        }
        _ => (Bytes::new(), 0),
    };
    Ok(Some(Track {
        id,
        codec,
        timescale,
        media_time,
        length_size,
        params: CodecParams::new(codec, width, height).with_extradata(config),
        stbl,
    }))
}

/// Samples of the progressive sample tables (none in a fragmented file's init).
fn progressive(data: &[u8], t: &Track) -> Result<Vec<Sample>, CodecError> {
    let table = |kind: &[u8; 4]| find(&t.stbl, kind);
    let Some(stsz) = table(b"stsz") else {
        return Ok(Vec::new());
    };
    let mut c = Cursor::new(data, stsz);
    c.full()?;
    let fixed = c.u32()?;
    let n = if fixed == 0 { c.count(4)? } else { c.samples(fixed)? };
    let sizes: Vec<u32> = (0..n)
        .map(|_| if fixed == 0 { c.u32() } else { Ok(fixed) })
        .collect::<Result<_, _>>()?;
    if n == 0 {
        return Ok(Vec::new());
    }
    let missing = |k: &str| CodecError::new(stsz.0, format!("stbl without {k}"));
    // Decode times.
    let mut dts = Vec::with_capacity(n);
    let mut durations = Vec::with_capacity(n);
    let mut c = Cursor::new(data, table(b"stts").ok_or_else(|| missing("stts"))?);
    c.full()?;
    let mut t_now = 0i64;
    for _ in 0..c.count(8)? {
        let (count, delta) = (c.u32()?, c.u32()?);
        for _ in 0..(count as usize).min(n - dts.len()) {
            dts.push(t_now);
            durations.push(delta);
            t_now += delta as i64;
        }
    }
    // Composition offsets.
    let mut cto = vec![0i64; n];
    if let Some(ctts) = table(b"ctts") {
        let mut c = Cursor::new(data, ctts);
        c.full()?;
        let mut i = 0;
        for _ in 0..c.count(8)? {
            let (count, off) = (c.u32()?, c.u32()? as i32 as i64);
            let run = (count as usize).min(n - i);
            cto[i..i + run].fill(off);
            i += run;
        }
    }
    // Sync samples (all when stss is absent).
    let mut sync = vec![table(b"stss").is_none(); n];
    if let Some(stss) = table(b"stss") {
        let mut c = Cursor::new(data, stss);
        c.full()?;
        for _ in 0..c.count(4)? {
            if let Some(x) = sync.get_mut((c.u32()? as usize).wrapping_sub(1)) {
                *x = true;
            }
        }
    }
    // Chunk offsets and samples per chunk.
    let mut chunks = Vec::new();
    if let Some(stco) = table(b"stco") {
        let mut c = Cursor::new(data, stco);
        c.full()?;
        for _ in 0..c.count(4)? {
            chunks.push(c.u32()? as u64);
        }
    } else if let Some(co64) = table(b"co64") {
        let mut c = Cursor::new(data, co64);
        c.full()?;
        for _ in 0..c.count(8)? {
            chunks.push(c.u64()?);
        }
    } else {
        return Err(missing("stco/co64"));
    }
    let mut c = Cursor::new(data, table(b"stsc").ok_or_else(|| missing("stsc"))?);
    c.full()?;
    let runs: Vec<(u32, u32)> = (0..c.count(12)?)
        .map(|_| {
            let r = (c.u32()?, c.u32()?);
            c.u32()?;
            Ok(r)
        })
        .collect::<Result<_, CodecError>>()?;
    let mut out = Vec::with_capacity(n);
    // stsc runs ascend by first chunk (1-based); walk them alongside the chunks.
    let mut run = None;
    for (ci, &chunk) in chunks.iter().enumerate() {
        let mut next = run.map_or(0, |r| r + 1);
        while runs.get(next).is_some_and(|(first, _)| *first as usize <= ci + 1) {
            run = Some(next);
            next += 1;
        }
        let per = run.map_or(0, |r| runs[r].1);
        let mut offset = chunk;
        for _ in 0..per {
            let i = out.len();
            if i >= n || i >= dts.len() {
                break;
            }
            out.push(Sample {
                offset,
                size: sizes[i],
                dts: dts[i],
                duration: durations[i],
                cto: cto[i],
                sync: sync[i],
            });
            offset += sizes[i] as u64;
        }
    }
    Ok(out)
}

/// Samples of one `moof` (`(box start, body start, end)`).
fn fragment(
    data: &[u8],
    t: &Track,
    (def_duration, def_size, def_flags): (u32, u32, u32),
    (moof_at, s, e): (usize, usize, usize),
    next_dts: &mut i64,
    out: &mut Vec<Sample>,
) -> Result<(), CodecError> {
    for (kind, ts, te) in boxes(data, s, e)? {
        if &kind != b"traf" {
            continue;
        }
        let traf = boxes(data, ts, te)?;
        let tfhd = find(&traf, b"tfhd").ok_or_else(|| CodecError::new(ts, "traf without tfhd"))?;
        let mut c = Cursor::new(data, tfhd);
        let (_, flags) = c.full()?;
        if c.u32()? != t.id {
            continue;
        }
        let mut base = moof_at as u64;
        if flags & 0x1 != 0 {
            base = c.u64()?;
        }
        if flags & 0x2 != 0 {
            c.u32()?;
        }
        let duration = if flags & 0x8 != 0 { c.u32()? } else { def_duration };
        let size = if flags & 0x10 != 0 { c.u32()? } else { def_size };
        let sflags = if flags & 0x20 != 0 { c.u32()? } else { def_flags };
        if let Some(tfdt) = find(&traf, b"tfdt") {
            let mut c = Cursor::new(data, tfdt);
            let (v, _) = c.full()?;
            *next_dts = if v == 1 { c.u64()? as i64 } else { c.u32()? as i64 };
        }
        for (kind, rs, re) in &traf {
            if kind != b"trun" {
                continue;
            }
            let mut c = Cursor::new(data, (*rs, *re));
            let (_, f) = c.full()?;
            let per = [0x100, 0x200, 0x400, 0x800].iter().filter(|b| f & **b != 0).count() * 4;
            let n = if per == 0 { c.samples(size)? } else { c.count(per)? };
            let mut offset = base;
            if f & 0x1 != 0 {
                offset = (base as i64 + c.u32()? as i32 as i64).max(0) as u64;
            }
            let first_flags = if f & 0x4 != 0 { Some(c.u32()?) } else { None };
            for i in 0..n {
                let d = if f & 0x100 != 0 { c.u32()? } else { duration };
                let sz = if f & 0x200 != 0 { c.u32()? } else { size };
                let fl = if f & 0x400 != 0 {
                    c.u32()?
                } else {
                    first_flags.filter(|_| i == 0).unwrap_or(sflags)
                };
                let cto = if f & 0x800 != 0 { c.u32()? as i32 as i64 } else { 0 };
                out.push(Sample {
                    offset,
                    size: sz,
                    dts: *next_dts,
                    duration: d,
                    cto,
                    sync: fl & 0x1_0000 == 0,
                });
                offset += sz as u64;
                *next_dts = next_dts.saturating_add(d as i64);
            }
        }
    }
    Ok(())
}

//! HLS and Low-Latency HLS in memory, sans-IO (RFC 8216, and its second
//! edition draft-pantos-hls-rfc8216bis: §4.4.4.9 `EXT-X-PART`, §4.4.3.7
//! `EXT-X-PART-INF`, §4.4.3.8 `EXT-X-SERVER-CONTROL`, §4.4.5.3
//! `EXT-X-PRELOAD-HINT`, §6.2.5.2 blocking playlist reload).
//!
//! A [`Window`] takes a stream's CMAF chunks ([`super::cmaf`]) one picture
//! at a time and groups them into parts (at most `part_ms` long) and
//! segments (cut at the first keyframe once `segment_ms` is reached; cut
//! anyway, not independent, before a segment would round above the target
//! duration). It keeps the last `segments` segments (and no more than
//! `max_bytes`), renders the media playlists (fMP4 with parts; MPEG-TS
//! without) and answers whether a blocking request can be answered yet.
//! Nothing here waits or does I/O: the HTTP layer waits on the window's
//! progress.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::cmaf::{Chunk, InitSegment};
use crate::media::Packet;
use crate::mux::ts::TsMuxer;
use crate::mux::{Muxer, Output};
use crate::output::name::rfc3339;

/// HLS settings (`[server.http.hls]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HlsOptions {
    /// Longest LL-HLS part, ms (the `PART-TARGET`).
    pub part_ms: u32,
    /// A segment ends at the first keyframe after this many ms.
    pub segment_ms: u32,
    /// Whole segments kept (and listed) per stream.
    pub segments: usize,
    /// Most bytes of segments kept per stream (the oldest go first).
    pub max_bytes: usize,
    /// Also make the MPEG-TS variant (`ts.m3u8`) for players without fMP4.
    pub ts: bool,
}

impl Default for HlsOptions {
    fn default() -> Self {
        HlsOptions {
            part_ms: 200,
            segment_ms: 2000,
            segments: 6,
            max_bytes: 64 << 20,
            ts: true,
        }
    }
}

impl HlsOptions {
    /// Checks values beyond their types: (key, message).
    pub fn check(&self) -> Result<(), (String, String)> {
        let err = |k: &str, m: String| Err((k.to_owned(), m));
        if !(50..=2000).contains(&self.part_ms) {
            return err("part_ms", format!("{} is outside 50..=2000", self.part_ms));
        }
        if self.segment_ms < self.part_ms || self.segment_ms > 30_000 {
            return err(
                "segment_ms",
                format!(
                    "{} must be at least part_ms ({}) and at most 30000",
                    self.segment_ms, self.part_ms
                ),
            );
        }
        if !(3..=100).contains(&self.segments) {
            return err("segments", format!("{} is outside 3..=100", self.segments));
        }
        if self.max_bytes < 1 << 20 {
            return err("max_bytes", format!("{} is below 1 MiB", self.max_bytes));
        }
        Ok(())
    }

    /// `EXT-X-TARGETDURATION`, whole seconds.
    pub fn target_duration(&self) -> u32 {
        self.segment_ms.div_ceil(1000)
    }
}

/// An LL-HLS part: consecutive chunks.
#[derive(Debug, Default)]
pub struct Part {
    /// The chunks (`moof` + `mdat` each), in order.
    pub chunks: Vec<Bytes>,
    /// Seconds.
    pub duration: f64,
    /// It starts with a keyframe.
    pub independent: bool,
    bytes: usize,
}

/// A media segment.
#[derive(Debug)]
pub struct Segment {
    /// Its media sequence number.
    pub msn: u64,
    /// Its parts (the last one open while the segment is).
    pub parts: Vec<Part>,
    /// Seconds.
    pub duration: f64,
    /// When its first picture was captured.
    pub utc: SystemTime,
    /// No more parts come.
    pub complete: bool,
    /// The MPEG-TS form, once complete (when the variant is on and the codec fits).
    pub ts: Option<Bytes>,
    /// Its packets until then (shared), for the TS form.
    packets: Vec<Packet>,
    bytes: usize,
}

impl Segment {
    /// Its parts that are complete (while it is open, its last part is the
    /// one filling).
    pub fn complete_parts(&self) -> &[Part] {
        if self.complete {
            &self.parts
        } else {
            &self.parts[..self.parts.len().saturating_sub(1)]
        }
    }

    /// Its bytes (all of its chunks), in order.
    pub fn chunks(&self) -> impl Iterator<Item = &Bytes> {
        self.parts.iter().flat_map(|p| p.chunks.iter())
    }
}

/// Whether a blocking request can be answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ready {
    /// Yes.
    Now,
    /// Not yet: wait for more.
    Wait,
    /// It asks for something too far ahead (answer 400).
    TooFar,
}

/// One stream's segments and parts.
#[derive(Debug)]
pub struct Window {
    opts: HlsOptions,
    segments: VecDeque<Segment>,
    next_msn: u64,
    init: Option<Arc<InitSegment>>,
    ts: Option<TsMuxer>,
    bytes: usize,
    /// Highest bitrate a segment had, bits per second.
    peak_bps: f64,
    /// The part target: whole pictures, as close to `part_ms` as they come
    /// (so every part but a segment's last is the same length, never
    /// under 85 % of the target, §4.4.3.7), once the picture rate is known.
    part_target: Option<f64>,
}

const EPSILON: f64 = 1e-4;

impl Window {
    /// An empty window whose first segment is number `first_msn` (a fresh
    /// number per window keeps cached URLs of an earlier one from being
    /// taken for its own).
    pub fn new(opts: HlsOptions, first_msn: u64) -> Self {
        Window {
            ts: opts.ts.then(TsMuxer::new),
            opts,
            segments: VecDeque::new(),
            next_msn: first_msn,
            init: None,
            bytes: 0,
            peak_bps: 0.0,
            part_target: None,
        }
    }

    /// The longest part, seconds.
    pub fn part_target(&self) -> f64 {
        self.part_target.unwrap_or(self.opts.part_ms as f64 / 1000.0)
    }

    /// The options.
    pub fn options(&self) -> &HlsOptions {
        &self.opts
    }

    /// The current init segment.
    pub fn init(&self) -> Option<&Arc<InitSegment>> {
        self.init.as_ref()
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Adds a picture.
    pub fn push(&mut self, chunk: &Chunk) {
        if self.init.as_ref().is_some_and(|i| !Arc::ptr_eq(i, &chunk.init)) {
            // A new format: what is kept cannot be played with the new init.
            self.segments.clear();
            self.bytes = 0;
            self.ts = self.opts.ts.then(TsMuxer::new);
        }
        self.init = Some(Arc::clone(&chunk.init));
        let d = chunk.duration as f64 / 1e9;
        let target = self.opts.target_duration() as f64;
        let cut = match self.segments.back() {
            None => true,
            Some(s) if s.complete => true,
            Some(s) => {
                (chunk.keyframe && s.duration + EPSILON >= self.opts.segment_ms as f64 / 1000.0)
                    || s.duration + d > target + 0.5 - EPSILON
            }
        };
        if cut {
            self.close_segment();
            self.segments.push_back(Segment {
                msn: self.next_msn,
                parts: vec![Part::default()],
                duration: 0.0,
                utc: chunk.utc,
                complete: false,
                ts: None,
                packets: Vec::new(),
                bytes: 0,
            });
            self.next_msn += 1;
        }
        let part_target = *self.part_target.get_or_insert_with(|| {
            let pictures = (self.opts.part_ms as f64 / 1000.0 / d).round().max(1.0);
            pictures * d
        });
        let seg = self.segments.back_mut().expect("an open segment");
        if seg
            .parts
            .last()
            .is_none_or(|p| p.duration > 0.0 && p.duration + d > part_target + EPSILON)
        {
            seg.parts.push(Part::default());
        }
        let part = seg.parts.last_mut().expect("an open part");
        if part.chunks.is_empty() {
            part.independent = chunk.keyframe;
        }
        part.chunks.push(chunk.bytes.clone());
        part.duration += d;
        part.bytes += chunk.bytes.len();
        seg.duration += d;
        seg.bytes += chunk.bytes.len();
        self.bytes += chunk.bytes.len();
        if self.ts.is_some() {
            seg.packets.push(chunk.packet.clone());
        }
        // A part that one more picture would take past the target is complete
        // now, not when the next picture comes.
        if part.duration + d > part_target + EPSILON {
            seg.parts.push(Part::default());
        }
        self.evict();
    }

    /// Ends the open segment (the stream ended or a new one starts).
    pub fn close_segment(&mut self) {
        let Some(seg) = self.segments.back_mut().filter(|s| !s.complete) else {
            return;
        };
        if seg.parts.last().is_some_and(|p| p.chunks.is_empty()) {
            seg.parts.pop();
        }
        seg.complete = true;
        if seg.duration > 0.0 {
            self.peak_bps = self.peak_bps.max(seg.bytes as f64 * 8.0 / seg.duration);
        }
        let packets = std::mem::take(&mut seg.packets);
        if let Some(ts) = &mut self.ts {
            let mut out = Output::new();
            let muxed = packets.iter().try_for_each(|p| ts.push(p, &mut out));
            match muxed {
                Ok(()) => {
                    let bytes = Bytes::from(out.to_vec());
                    self.bytes += bytes.len();
                    seg.ts = Some(bytes);
                }
                // The codec has no TS form (VP9): the variant is off for this stream.
                Err(_) => self.ts = None,
            }
        }
    }

    fn evict(&mut self) {
        let complete = |w: &Window| w.segments.iter().filter(|s| s.complete).count();
        while (complete(self) > self.opts.segments || self.bytes > self.opts.max_bytes) && self.segments.len() > 1 {
            let Some(old) = self.segments.pop_front() else { break };
            self.bytes -= old.bytes + old.ts.as_ref().map_or(0, Bytes::len);
        }
    }

    /// A segment still held.
    pub fn segment(&self, msn: u64) -> Option<&Segment> {
        let first = self.segments.front()?.msn;
        self.segments.get(usize::try_from(msn.checked_sub(first)?).ok()?)
    }

    /// A complete part still held.
    pub fn part(&self, msn: u64, part: usize) -> Option<&Part> {
        self.segment(msn)?.complete_parts().get(part)
    }

    /// The last complete part: (msn, index); `None` before the first.
    pub fn last_part(&self) -> Option<(u64, usize)> {
        self.segments
            .iter()
            .rev()
            .find_map(|s| s.complete_parts().len().checked_sub(1).map(|p| (s.msn, p)))
    }

    /// The part that comes next (the preload hint).
    fn next_part(&self) -> Option<(u64, usize)> {
        let last = self.segments.back()?;
        Some(if last.complete {
            (last.msn + 1, 0)
        } else {
            (last.msn, last.complete_parts().len())
        })
    }

    /// Whether a playlist request with `_HLS_msn=msn` (and `_HLS_part=part`)
    /// can be answered (§6.2.5.2): it waits until segment `msn` is complete,
    /// or with a part, until that part or a later one exists.
    pub fn playlist_ready(&self, msn: u64, part: Option<usize>) -> Ready {
        // The last segment the playlist lists whole (or the one filling at the start).
        let newest = self
            .segments
            .iter()
            .rev()
            .find(|s| s.complete)
            .or(self.segments.back())
            .map_or(self.next_msn, |s| s.msn);
        if msn > newest + 2 {
            return Ready::TooFar;
        }
        let done = match part {
            None => self.segments.iter().any(|s| s.complete && s.msn >= msn),
            Some(p) => self.last_part().is_some_and(|(m, q)| m > msn || (m == msn && q >= p)),
        };
        if done { Ready::Now } else { Ready::Wait }
    }

    /// Whether a part request can be answered: [`Ready::Now`] when it exists
    /// (or never will: it is gone), [`Ready::Wait`] for the one the preload
    /// hint names, [`Ready::TooFar`] beyond it.
    pub fn part_ready(&self, msn: u64, part: usize) -> Ready {
        if self.part(msn, part).is_some() {
            return Ready::Now;
        }
        match self.next_part() {
            Some(next) if (msn, part) == next => Ready::Wait,
            Some(next) if (msn, part) > next => Ready::TooFar,
            _ => Ready::Now,
        }
    }

    /// The LL-HLS media playlist (fMP4 with parts), URIs relative to it.
    pub fn media_playlist(&self) -> String {
        let o = &self.opts;
        let mut s = String::with_capacity(4096);
        let first = self.segments.front().map_or(self.next_msn, |s| s.msn);
        let _ = write!(
            s,
            "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:{}\n\
             #EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={:.3}\n\
             #EXT-X-PART-INF:PART-TARGET={:.3}\n#EXT-X-MEDIA-SEQUENCE:{first}\n",
            o.target_duration(),
            3.0 * self.part_target(),
            self.part_target(),
        );
        if let Some(init) = &self.init {
            let _ = writeln!(s, "#EXT-X-MAP:URI=\"init/{}.mp4\"", init.version);
        }
        // Parts are listed for the last segments only (§4.4.4.9: those
        // within three target durations of the end).
        let mut listed_from = self.segments.len();
        let mut span = 0.0;
        for (i, seg) in self.segments.iter().enumerate().rev() {
            if span > 3.0 * o.target_duration() as f64 {
                break;
            }
            span += seg.duration;
            listed_from = i;
        }
        for (i, seg) in self.segments.iter().enumerate() {
            let listed = i >= listed_from && !seg.complete_parts().is_empty();
            if seg.complete || listed {
                let _ = writeln!(s, "#EXT-X-PROGRAM-DATE-TIME:{}", rfc3339(seg.utc));
            }
            if listed {
                for (p, part) in seg.complete_parts().iter().enumerate() {
                    let _ = writeln!(
                        s,
                        "#EXT-X-PART:DURATION={:.5},URI=\"part/{}.{p}.m4s\"{}",
                        part.duration,
                        seg.msn,
                        if part.independent { ",INDEPENDENT=YES" } else { "" }
                    );
                }
            }
            if seg.complete {
                let _ = writeln!(s, "#EXTINF:{:.5},\nseg/{}.m4s", seg.duration, seg.msn);
            }
        }
        if let Some((m, p)) = self.next_part() {
            let _ = writeln!(s, "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part/{m}.{p}.m4s\"");
        }
        s
    }

    /// The MPEG-TS media playlist (whole segments only), when the variant is made.
    pub fn ts_playlist(&self) -> Option<String> {
        self.ts.as_ref()?;
        let done = self.segments.iter().filter(|s| s.ts.is_some());
        let first = self
            .segments
            .iter()
            .find(|s| s.ts.is_some())
            .map_or(self.next_msn, |s| s.msn);
        let mut s = format!(
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:{}\n#EXT-X-MEDIA-SEQUENCE:{first}\n",
            self.opts.target_duration()
        );
        for seg in done {
            let _ = write!(
                s,
                "#EXT-X-PROGRAM-DATE-TIME:{}\n#EXTINF:{:.5},\nseg/{}.ts\n",
                rfc3339(seg.utc),
                seg.duration,
                seg.msn
            );
        }
        Some(s)
    }

    /// The multivariant playlist naming the fMP4 media playlist.
    pub fn multivariant(&self, fps: Option<f64>) -> Option<String> {
        let init = self.init.as_ref()?;
        let bandwidth = (self.peak_bps.max(1.0) * 1.1).ceil() as u64;
        let rate = fps.map(|f| format!(",FRAME-RATE={f:.3}")).unwrap_or_default();
        Some(format!(
            "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-STREAM-INF:BANDWIDTH={bandwidth},CODECS=\"{}\",RESOLUTION={}x{}{rate}\nmedia.m3u8\n",
            init.codecs, init.width, init.height
        ))
    }
}

/// A file of a stream's HLS tree, by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Name {
    /// `init/<version>.mp4`.
    Init(u64),
    /// `seg/<msn>.m4s`.
    Segment(u64),
    /// `seg/<msn>.ts`.
    TsSegment(u64),
    /// `part/<msn>.<part>.m4s`.
    Part(u64, usize),
}

fn number<T: std::str::FromStr>(s: &str) -> Option<T> {
    // Digits only: no sign, no spaces, no leading `+`, at most 19 of them.
    (!s.is_empty() && s.len() <= 19 && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

impl Name {
    /// The file `name` in directory `dir` (`init`, `seg` or `part`), if it is one.
    pub fn parse(dir: &str, name: &str) -> Option<Name> {
        match dir {
            "init" => number(name.strip_suffix(".mp4")?).map(Name::Init),
            "seg" => {
                if let Some(m) = name.strip_suffix(".m4s") {
                    number(m).map(Name::Segment)
                } else {
                    number(name.strip_suffix(".ts")?).map(Name::TsSegment)
                }
            }
            "part" => {
                let (m, p) = name.strip_suffix(".m4s")?.split_once('.')?;
                Some(Name::Part(number(m)?, number(p)?))
            }
            _ => None,
        }
    }
}

/// The blocking-reload parameters of a playlist request (§6.2.5.2):
/// `_HLS_msn` and `_HLS_part`; other parameters (cache busters, `_HLS_skip`)
/// are ignored. Errors name the parameter and its value.
pub fn blocking_query(query: Option<&str>) -> Result<(Option<u64>, Option<usize>), String> {
    let (mut msn, mut part) = (None, None);
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let slot = match key {
            "_HLS_msn" => &mut msn,
            "_HLS_part" => &mut part,
            _ => continue,
        };
        if slot.is_some() {
            return Err(format!("{key} is given twice"));
        }
        let shown: String = value.chars().take(24).collect();
        *slot = Some(number::<u64>(value).ok_or_else(|| format!("{key}={shown} is not a whole number"))?);
    }
    let part = match (msn, part) {
        (None, Some(_)) => return Err("_HLS_part needs _HLS_msn".into()),
        (_, Some(p)) => Some(usize::try_from(p).map_err(|_| "_HLS_part is too large".to_string())?),
        (_, None) => None,
    };
    Ok((msn, part))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::{Codec, CodecParams};
    use crate::serve::cmaf::Fragmenter;

    /// An H.264 stream of `n` pictures at 30 fps, a keyframe every `gop`.
    fn chunks(n: usize, gop: usize) -> Vec<Chunk> {
        let sps = [0x67, 0x42, 0xC0, 0x1E, 0xDA, 0x02, 0x80, 0xBF, 0xE5, 0x80];
        let pps = [0x68, 0xce, 0x3c, 0x80];
        let avcc = crate::codec::h264::avcc(&[&sps], &[&pps]).expect("an avcC");
        let params = Arc::new(CodecParams::new(Codec::H264, 640, 480).with_extradata(Bytes::from(avcc)));
        let mut f = Fragmenter::new(0);
        (0..n)
            .map(|i| {
                let key = i % gop == 0;
                let mut data = vec![0, 0, 0, 1, if key { 0x65 } else { 0x41 }];
                data.extend_from_slice(&[0x88; 100]);
                let t = i as i64 * 1_000_000_000 / 30;
                let packet = Packet {
                    codec: Codec::H264,
                    data: Bytes::from(data),
                    pts: t,
                    dts: t,
                    duration: 1_000_000_000 / 30,
                    capture_utc: SystemTime::UNIX_EPOCH + std::time::Duration::from_nanos(t as u64),
                    keyframe: key,
                    params: Arc::clone(&params),
                    source: "cam".into(),
                    seq: i as u64,
                    meta: Default::default(),
                };
                f.push(&packet).expect("a chunk")
            })
            .collect()
    }

    #[test]
    fn segments_and_parts_stay_within_their_targets_and_numbers_only_grow() {
        for gop in [15, 60, 45, 200] {
            let mut w = Window::new(HlsOptions::default(), 0);
            let mut last_msn = None;
            for c in chunks(900, gop) {
                w.push(&c);
                let o = w.options();
                for seg in &w.segments {
                    assert!(
                        (seg.duration.round() as u32) <= o.target_duration(),
                        "gop {gop}: {}",
                        seg.duration
                    );
                    for p in seg.complete_parts() {
                        assert!(
                            p.duration <= w.part_target() + EPSILON,
                            "gop {gop}: part {}",
                            p.duration
                        );
                    }
                }
                let msns: Vec<u64> = w.segments.iter().map(|s| s.msn).collect();
                assert!(msns.windows(2).all(|m| m[1] == m[0] + 1));
                let newest = w.segments.back().map(|s| s.msn);
                assert!(newest >= last_msn);
                last_msn = newest;
                assert!(w.segments.iter().filter(|s| s.complete).count() <= o.segments);
            }
            // With keyframes at least every segment, every segment starts with one.
            if 60 % gop == 0 {
                assert!(w.segments.iter().all(|s| s.parts[0].independent), "gop {gop}");
            }
        }
    }

    #[test]
    fn a_keyframe_gop_gives_independent_two_second_segments_of_ten_parts() {
        let mut w = Window::new(HlsOptions::default(), 0);
        for c in chunks(181, 60) {
            w.push(&c);
        }
        let seg = w.segment(1).expect("segment 1");
        assert!(seg.complete);
        assert!((seg.duration - 2.0).abs() < 1e-3);
        assert_eq!(seg.complete_parts().len(), 10);
        assert!(seg.parts[0].independent);
        assert!(seg.parts[1..].iter().all(|p| !p.independent));
        let playlist = w.media_playlist();
        assert!(playlist.contains("#EXT-X-TARGETDURATION:2\n"));
        assert!(playlist.contains("PART-HOLD-BACK=0.600"));
        assert!(playlist.contains("#EXT-X-PART:DURATION=0.20000,URI=\"part/1.0.m4s\",INDEPENDENT=YES\n"));
        assert!(playlist.contains("#EXTINF:2.00000,\nseg/1.m4s\n"));
        // Picture 180 opened segment 3 and its first part.
        assert!(
            playlist.ends_with("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part/3.0.m4s\"\n"),
            "{playlist}"
        );
        let ts = w.ts_playlist().expect("the TS variant");
        assert!(ts.contains("seg/2.ts") && !ts.contains("seg/3.ts"));
        assert!(
            w.segment(2)
                .and_then(|s| s.ts.as_ref())
                .is_some_and(|b| b.len() % 188 == 0)
        );
    }

    #[test]
    fn blocking_requests_wait_for_their_part_and_refuse_what_is_too_far() {
        let mut w = Window::new(HlsOptions::default(), 0);
        let all = chunks(200, 60);
        let mut it = all.iter();
        for c in it.by_ref().take(7) {
            w.push(c);
        }
        // Six pictures made part 0.0; the seventh opened part 0.1.
        assert_eq!(w.last_part(), Some((0, 0)));
        assert_eq!(w.playlist_ready(0, Some(0)), Ready::Now);
        assert_eq!(w.playlist_ready(0, Some(1)), Ready::Wait);
        assert_eq!(w.playlist_ready(0, None), Ready::Wait);
        assert_eq!(w.playlist_ready(2, Some(0)), Ready::Wait);
        assert_eq!(w.playlist_ready(3, None), Ready::TooFar);
        assert_eq!(w.part_ready(0, 0), Ready::Now);
        assert_eq!(w.part_ready(0, 1), Ready::Wait);
        assert_eq!(w.part_ready(0, 5), Ready::TooFar, "only the hinted part is waited for");
        assert_eq!(w.part_ready(1, 0), Ready::TooFar);
        // The sixth picture of part 0.1 completes it at once (no wait for the next picture).
        for c in it.by_ref().take(5) {
            w.push(c);
        }
        assert_eq!(w.last_part(), Some((0, 1)));
        assert_eq!(w.playlist_ready(0, Some(1)), Ready::Now);
        // Segment 0 ends at the keyframe of picture 60; a request for a part
        // past its last is answered by the first part of segment 1.
        for c in it.by_ref().take(48) {
            w.push(c);
        }
        assert_eq!(w.last_part(), Some((0, 9)));
        assert_eq!(w.playlist_ready(0, Some(10)), Ready::Wait);
        assert_eq!(w.playlist_ready(0, None), Ready::Wait);
        for c in it.by_ref().take(6) {
            w.push(c);
        }
        assert_eq!(w.playlist_ready(0, Some(10)), Ready::Now);
        assert_eq!(w.playlist_ready(0, None), Ready::Now);
        assert_eq!(
            w.part_ready(0, 10),
            Ready::Now,
            "a part that will never exist is not waited for"
        );
        assert!(w.part(0, 10).is_none());
    }

    #[test]
    fn names_and_queries_parse_strictly() {
        assert_eq!(Name::parse("part", "12.3.m4s"), Some(Name::Part(12, 3)));
        assert_eq!(Name::parse("seg", "7.ts"), Some(Name::TsSegment(7)));
        assert_eq!(Name::parse("seg", "7.m4s"), Some(Name::Segment(7)));
        assert_eq!(Name::parse("init", "2.mp4"), Some(Name::Init(2)));
        for (dir, bad) in [
            ("seg", "../7.ts"),
            ("seg", "+7.ts"),
            ("seg", "7.mp4"),
            ("part", "1.m4s"),
            ("part", "1.-2.m4s"),
            ("init", "99999999999999999999.mp4"),
            ("other", "1.ts"),
        ] {
            assert_eq!(Name::parse(dir, bad), None, "{dir}/{bad}");
        }
        assert_eq!(blocking_query(None), Ok((None, None)));
        assert_eq!(
            blocking_query(Some("_HLS_msn=4&_HLS_part=2&x=1")),
            Ok((Some(4), Some(2)))
        );
        assert_eq!(blocking_query(Some("_HLS_msn=4&_HLS_skip=YES")), Ok((Some(4), None)));
        for bad in [
            "_HLS_part=1",
            "_HLS_msn=-1",
            "_HLS_msn=1&_HLS_msn=2",
            "_HLS_msn=",
            "_HLS_msn=1e3",
        ] {
            assert!(blocking_query(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn memory_is_bounded_by_segments_and_bytes() {
        let opts = HlsOptions {
            segments: 3,
            max_bytes: 1 << 20,
            ..HlsOptions::default()
        };
        let mut w = Window::new(opts, 0);
        for c in chunks(3000, 30) {
            w.push(&c);
            assert!(w.segments.iter().filter(|s| s.complete).count() <= 3);
            assert!(w.bytes() <= 1 << 20);
        }
        assert!(w.segment(0).is_none());
        assert!(w.media_playlist().contains("#EXT-X-MEDIA-SEQUENCE:"));
    }
}

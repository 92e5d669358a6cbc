//! A time range of a camera's continuous recordings as one MP4, remuxed
//! without re-encoding: the files that overlap the range are read (mapped,
//! not copied) in order, the clip starts at the last keyframe at or before
//! the range's start and ends before its end, and the packets go into one
//! fragmented MP4 (ISO/IEC 14496-12 §8.8) whose times are the pictures'
//! distances from the clip's first one. Written fragment by fragment, so
//! memory is one GOP whatever the range.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use crate::media::{CodecParams, Packet};
use crate::mux::mp4::{Mp4Muxer, Mp4Options};
use crate::mux::{Muxer, Output};
use crate::output::index::{Entry, Kind};

/// The longest range one request may ask for.
pub const MAX_RANGE: Duration = Duration::from_secs(24 * 3600);

/// A time in a URL: whole or fractional seconds since the Unix epoch
/// (`1764543600`, `1764543600.5`) or RFC 3339 UTC (`2026-11-30T23:00:00Z`,
/// `2026-11-30T23:00:00.250Z`). Errors quote what they could not read.
pub fn parse_time(s: &str) -> Result<SystemTime, String> {
    let bad = || {
        let shown: String = s.chars().take(40).collect();
        format!("`{shown}` is not a time (seconds since 1970, or like 2026-11-30T23:00:00Z)")
    };
    if s.is_empty() || s.len() > 40 {
        return Err(bad());
    }
    if s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
        if whole.is_empty() || whole.len() > 11 || frac.len() > 9 || frac.contains('.') {
            return Err(bad());
        }
        let secs: u64 = whole.parse().map_err(|_| bad())?;
        let nanos: u32 = format!("{frac:0<9}").parse().map_err(|_| bad())?;
        return Ok(UNIX_EPOCH + Duration::new(secs, nanos));
    }
    let b = s.as_bytes();
    let field = |from: usize, len: usize| -> Result<i64, String> {
        let part = s.get(from..from + len).ok_or_else(bad)?;
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return Err(bad());
        }
        part.parse().map_err(|_| bad())
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return Err(bad());
    }
    let (year, month, day) = (field(0, 4)?, field(5, 2)?, field(8, 2)?);
    let (hour, minute, second) = (field(11, 2)?, field(14, 2)?, field(17, 2)?);
    let rest = &s[19..];
    let (frac, zone) = match rest.strip_prefix('.') {
        Some(r) => r.split_at(r.bytes().take_while(u8::is_ascii_digit).count()),
        None => ("", rest),
    };
    if zone != "Z" || frac.len() > 9 || (rest.starts_with('.') && frac.is_empty()) {
        return Err(bad());
    }
    let days_in = [
        31,
        if leap(year) { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if year < 1970
        || !(1..=12).contains(&month)
        || day < 1
        || day > days_in[month as usize - 1]
        || hour > 23
        || minute > 59
        || second > 59
    {
        return Err(bad());
    }
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second;
    let nanos: u32 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}").parse().map_err(|_| bad())?
    };
    Ok(UNIX_EPOCH + Duration::new(secs as u64, nanos))
}

fn leap(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The continuous recordings of `entries` that overlap `from..to`, in order.
pub fn overlapping(entries: &[Entry], from: SystemTime, to: SystemTime) -> Vec<Entry> {
    let mut files: Vec<Entry> = entries
        .iter()
        .filter(|e| e.kind == Kind::Continuous && e.start < to && e.end.is_none_or(|end| end > from))
        .cloned()
        .collect();
    files.sort_by_key(|e| e.start);
    files
}

/// Remuxes the packets of recordings into one fragmented MP4 of `from..to`.
pub struct Clip {
    from: SystemTime,
    to: SystemTime,
    muxer: Mp4Muxer,
    params: Option<Arc<CodecParams>>,
    /// Capture time of the clip's first picture.
    start: Option<SystemTime>,
    last_dts: Option<i64>,
    ended: bool,
    /// Pictures written.
    pub pictures: u64,
}

impl Clip {
    /// A clip of `from..to`.
    pub fn new(from: SystemTime, to: SystemTime) -> Clip {
        Clip {
            from,
            to,
            muxer: Mp4Muxer::new(Mp4Options {
                fragmented: true,
                fragment_ms: 0,
            }),
            params: None,
            start: None,
            last_dts: None,
            ended: false,
            pictures: 0,
        }
    }

    /// True once the range's end (or a format the clip cannot continue in) is reached.
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// Adds the packets of one recording that began at `file_start`;
    /// returns the bytes to send.
    pub fn push_file(&mut self, file_start: SystemTime, packets: &[Packet]) -> Result<Bytes, String> {
        let mut out = Output::new();
        let Some(base) = packets.iter().map(|p| p.pts).min() else {
            return Ok(Bytes::new());
        };
        let at = |p: &Packet| file_start + Duration::from_nanos((p.pts - base).max(0) as u64);
        // The first picture: the last keyframe at or before the range's start
        // (or the first keyframe after it when the recording starts later).
        let first = match self.start {
            Some(_) => 0,
            None => {
                let keys: Vec<usize> = (0..packets.len()).filter(|&i| packets[i].keyframe).collect();
                match keys
                    .iter()
                    .rev()
                    .find(|&&i| at(&packets[i]) <= self.from)
                    .or(keys.first())
                {
                    Some(&i) => i,
                    None => return Ok(Bytes::new()),
                }
            }
        };
        for p in &packets[first..] {
            let t = at(p);
            if t >= self.to {
                self.ended = true;
                break;
            }
            if self.params.as_ref().is_some_and(|q| **q != *p.params) {
                // Another format (the encoder was changed): an MP4 track has one.
                tracing::info!("clip ends at a format change ({:?})", t);
                self.ended = true;
                break;
            }
            let start = *self.start.get_or_insert(t);
            let dts = t.duration_since(start).unwrap_or_default().as_nanos() as i64 - (p.pts - p.dts);
            if self.last_dts.is_some_and(|last| dts <= last) {
                continue;
            }
            self.last_dts = Some(dts);
            self.params.get_or_insert_with(|| Arc::clone(&p.params));
            let packet = Packet {
                pts: dts + (p.pts - p.dts),
                dts,
                ..p.clone()
            };
            self.muxer.push(&packet, &mut out).map_err(|e| e.to_string())?;
            self.pictures += 1;
        }
        Ok(Bytes::from(out.to_vec()))
    }

    /// The last fragment.
    pub fn finish(&mut self) -> Result<Bytes, String> {
        let mut out = Output::new();
        self.muxer.finish(&mut out).map_err(|e| e.to_string())?;
        Ok(Bytes::from(out.to_vec()))
    }
}

/// Reads one recording for a clip.
pub fn read(root: &Path, entry: &Entry) -> Result<Vec<Packet>, String> {
    let source: Arc<str> = Arc::from(entry.camera.as_str());
    crate::demux::read_file(&root.join(&entry.path), &source)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_as_epoch_seconds_or_rfc_3339_and_nothing_else() {
        let t = |s: &str| parse_time(s).map(|t| t.duration_since(UNIX_EPOCH).unwrap().as_secs_f64());
        assert_eq!(t("1764543600"), Ok(1_764_543_600.0));
        assert_eq!(t("1764543600.25"), Ok(1_764_543_600.25));
        assert_eq!(t("2026-11-30T23:00:00Z"), Ok(1_796_079_600.0));
        assert_eq!(t("1970-01-01T00:00:01.5Z"), Ok(1.5));
        assert_eq!(t("2024-02-29T00:00:00Z"), Ok(1_709_164_800.0));
        for bad in [
            "",
            "-1",
            "1.2.3",
            ".5",
            "2023-02-29T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-11-30T24:00:00Z",
            "2026-11-30T23:00:00",
            "2026-11-30T23:00:00+01:00",
            "2026-11-30 23:00:00Z",
            "2026-11-30T23:00:00.Z",
            "../../etc",
            "1969-12-31T23:59:59Z",
            "999999999999",
        ] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
        assert!(parse_time("x").unwrap_err().contains("`x`"));
    }
}

//! MP4 muxer (ISO/IEC 14496-12 ISOBMFF, 14496-15 for H.264/H.265 sample
//! entries, the VP9 ISOBMFF binding for `vp09`/`vpcC`), in two modes:
//!
//! - **progressive**: sample data streams out as it arrives; [`Muxer::finish`]
//!   returns `ftyp` + `moov` + the `mdat` header as [`Trailer::prepend`], so the
//!   finished file has its index in front ("faststart") and needs no rewrite
//!   when the writer holds the data until the end;
//! - **fragmented** (CMAF-style): an init segment (`ftyp` + `moov` with
//!   `mvex`) and one `moof` + `mdat` fragment per keyframe (or every
//!   `fragment_ms`). A fragment is written whole when the next one starts, so
//!   a file cut at any point plays up to its last whole fragment.
//!
//! Media timescale 90 kHz; times count from the first packet's DTS, and an
//! edit list starts presentation at the first picture when B-frames delay it.
//! Composition offsets (`ctts`, `trun`) carry pts − dts.

use std::sync::Arc;

use super::{MuxError, Muxer, Output, Sample, Trailer, to_units};
use crate::codec::vp9;
use crate::media::{Codec, CodecParams, Packet};

/// The media timescale (ticks per second).
pub const TIMESCALE: u32 = 90_000;
/// The movie timescale (`mvhd`, `tkhd`, `elst` durations).
const MOVIE_TIMESCALE: u32 = 1000;

/// Options of [`Mp4Muxer`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Mp4Options {
    /// Fragmented MP4 instead of progressive.
    pub fragmented: bool,
    /// Fragmented only: also cut a fragment once it spans this many ms
    /// (0: cut at keyframes only).
    pub fragment_ms: u32,
}

/// A sample's table entry (times in media units).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Entry {
    pub(crate) size: u32,
    pub(crate) dts: i64,
    pub(crate) cto: i64,
    pub(crate) duration: u32,
    pub(crate) sync: bool,
}

/// sample_flags of a sync sample (depends on no other) and of any other sample.
const SYNC_FLAGS: u32 = 0x0200_0000;
const NON_SYNC_FLAGS: u32 = 0x0101_0000;

/// MP4 muxer for one video track.
#[derive(Debug)]
pub struct Mp4Muxer {
    opts: Mp4Options,
    params: Option<Arc<CodecParams>>,
    vp9_profile: u8,
    base: i64,
    /// Progressive: every sample; fragmented: the open fragment's.
    samples: Vec<Entry>,
    /// Fragmented: the open fragment's payloads.
    payloads: Vec<Sample>,
    /// Progressive: bytes of sample data written.
    data_len: u64,
    last_dts: Option<i64>,
    last_duration: u32,
    /// Presentation start (first pts) in media units.
    media_time: i64,
    sequence: u32,
}

impl Mp4Muxer {
    /// A muxer that has written nothing.
    pub fn new(opts: Mp4Options) -> Self {
        Mp4Muxer {
            opts,
            params: None,
            vp9_profile: 0,
            base: 0,
            samples: Vec::new(),
            payloads: Vec::new(),
            data_len: 0,
            last_dts: None,
            last_duration: 0,
            media_time: 0,
            sequence: 0,
        }
    }

    fn start(&mut self, packet: &Packet) -> Result<(), MuxError> {
        match packet.codec {
            Codec::H264 | Codec::H265 if packet.params.extradata.is_empty() => {
                return Err(MuxError::bad(
                    packet,
                    "no avcC/hvcC record: the stream has not sent its parameter sets",
                ));
            }
            Codec::H264 | Codec::H265 => {}
            Codec::Vp9 => {
                self.vp9_profile = vp9::packet_header(&packet.data, 0)
                    .map_err(|error| MuxError::Bitstream { seq: packet.seq, error })?
                    .profile;
            }
            codec => {
                return Err(MuxError::Unsupported {
                    container: "MP4",
                    codec,
                    hint: "it carries h264, h265 and vp9; use .mkv for mjpeg",
                });
            }
        }
        self.params = Some(Arc::clone(&packet.params));
        self.base = packet.dts;
        self.media_time = to_units(packet.pts - packet.dts, TIMESCALE);
        Ok(())
    }

    /// `ftyp`.
    fn ftyp(&self, out: &mut Vec<u8>) {
        boxed(out, b"ftyp", |b| {
            b.extend_from_slice(b"isom");
            b.extend_from_slice(&0x200u32.to_be_bytes());
            let brands: &[&[u8; 4]] = if self.opts.fragmented {
                &[b"isom", b"iso6", b"mp41"]
            } else {
                &[b"isom", b"iso2", b"mp41"]
            };
            for brand in brands {
                b.extend_from_slice(*brand);
            }
        });
    }

    /// `moov`; `media_duration` in media units, 0 for fragmented files.
    fn moov(&self, out: &mut Vec<u8>, media_duration: u64) {
        let p = self.params.as_deref().expect("moov after the first packet");
        // What is shown: from the first picture presented (`media_time`) to
        // the end of the last one presented, which with B-frames is not the
        // last one decoded (ISO/IEC 14496-12 §8.6.6: the edit's segment
        // duration is in the movie timescale and spans the presentation).
        let presented_end = self.samples.iter().map(|s| s.dts + s.cto + i64::from(s.duration)).max();
        let shown = presented_end.map_or(media_duration, |end| (end - self.media_time).max(0) as u64);
        let movie_duration = shown * MOVIE_TIMESCALE as u64 / TIMESCALE as u64;
        boxed(out, b"moov", |b| {
            full(b, b"mvhd", 0, 0, |b| {
                put32(b, &[0, 0, MOVIE_TIMESCALE, movie_duration as u32, 0x0001_0000]);
                b.extend_from_slice(&0x0100u16.to_be_bytes()); // volume
                b.extend_from_slice(&[0; 10]);
                matrix(b);
                b.extend_from_slice(&[0; 24]);
                put32(b, &[2]); // next_track_ID
            });
            boxed(b, b"trak", |b| {
                full(b, b"tkhd", 0, 3, |b| {
                    put32(b, &[0, 0, 1, 0, movie_duration as u32, 0, 0]);
                    b.extend_from_slice(&[0; 8]); // layer, alternate_group, volume, reserved
                    matrix(b);
                    put32(b, &[p.width << 16, p.height << 16]);
                });
                if self.media_time > 0 {
                    boxed(b, b"edts", |b| {
                        full(b, b"elst", 0, 0, |b| {
                            put32(b, &[1, movie_duration as u32, self.media_time as u32, 0x0001_0000]);
                        });
                    });
                }
                boxed(b, b"mdia", |b| {
                    full(b, b"mdhd", 0, 0, |b| {
                        put32(b, &[0, 0, TIMESCALE, media_duration as u32]);
                        b.extend_from_slice(&[0x55, 0xC4, 0, 0]); // language "und"
                    });
                    full(b, b"hdlr", 0, 0, |b| {
                        put32(b, &[0]);
                        b.extend_from_slice(b"vide");
                        b.extend_from_slice(&[0; 12]);
                        b.extend_from_slice(b"VideoHandler\0");
                    });
                    boxed(b, b"minf", |b| {
                        full(b, b"vmhd", 0, 1, |b| b.extend_from_slice(&[0; 8]));
                        boxed(b, b"dinf", |b| {
                            full(b, b"dref", 0, 0, |b| {
                                put32(b, &[1]);
                                full(b, b"url ", 0, 1, |_| {});
                            });
                        });
                        boxed(b, b"stbl", |b| {
                            self.stsd(b, p);
                            if self.opts.fragmented {
                                for kind in [b"stts", b"stsc", b"stco"] {
                                    full(b, kind, 0, 0, |b| put32(b, &[0]));
                                }
                                full(b, b"stsz", 0, 0, |b| put32(b, &[0, 0]));
                            } else {
                                self.sample_tables(b);
                            }
                        });
                    });
                });
            });
            if self.opts.fragmented {
                boxed(b, b"mvex", |b| {
                    full(b, b"trex", 0, 0, |b| put32(b, &[1, 1, 0, 0, 0]));
                });
            }
        });
    }

    fn stsd(&self, b: &mut Vec<u8>, p: &CodecParams) {
        full(b, b"stsd", 0, 0, |b| {
            put32(b, &[1]);
            let kind = match p.codec {
                Codec::H264 => b"avc1",
                Codec::H265 => b"hvc1",
                _ => b"vp09",
            };
            boxed(b, kind, |b| {
                b.extend_from_slice(&[0; 6]);
                b.extend_from_slice(&1u16.to_be_bytes()); // data_reference_index
                b.extend_from_slice(&[0; 16]);
                b.extend_from_slice(&(p.width as u16).to_be_bytes());
                b.extend_from_slice(&(p.height as u16).to_be_bytes());
                put32(b, &[0x0048_0000, 0x0048_0000, 0]); // 72 dpi, reserved
                b.extend_from_slice(&1u16.to_be_bytes()); // frame_count
                let mut name = [0u8; 32];
                name[0] = 5;
                name[1..6].copy_from_slice(b"eyrie");
                b.extend_from_slice(&name);
                b.extend_from_slice(&[0x00, 0x18, 0xFF, 0xFF]); // depth 24, pre_defined -1
                match p.codec {
                    Codec::H264 => boxed(b, b"avcC", |b| b.extend_from_slice(&p.extradata)),
                    Codec::H265 => boxed(b, b"hvcC", |b| b.extend_from_slice(&p.extradata)),
                    _ => full(b, b"vpcC", 1, 0, |b| {
                        let depth = if self.vp9_profile >= 2 { 10 } else { 8 };
                        // level 0 (unknown), 4:2:0 colocated, limited range,
                        // colour primaries/transfer/matrix unspecified (2).
                        b.extend_from_slice(&[self.vp9_profile, 0, depth << 4 | 1 << 1, 2, 2, 2, 0, 0]);
                    }),
                }
            });
        });
    }

    /// Progressive sample tables: stts, ctts, stss, stsc, stsz, stco (one chunk).
    fn sample_tables(&self, b: &mut Vec<u8>) {
        let s = &self.samples;
        let runs = |key: &dyn Fn(&Entry) -> i64| {
            let mut runs: Vec<(u32, i64)> = Vec::new();
            for x in s {
                match runs.last_mut() {
                    Some((n, v)) if *v == key(x) => *n += 1,
                    _ => runs.push((1, key(x))),
                }
            }
            runs
        };
        full(b, b"stts", 0, 0, |b| {
            let r = runs(&|x| x.duration as i64);
            put32(b, &[r.len() as u32]);
            for (n, v) in r {
                put32(b, &[n, v as u32]);
            }
        });
        if s.iter().any(|x| x.cto != 0) {
            full(b, b"ctts", 0, 0, |b| {
                let r = runs(&|x| x.cto);
                put32(b, &[r.len() as u32]);
                for (n, v) in r {
                    put32(b, &[n, v as u32]);
                }
            });
        }
        if !s.iter().all(|x| x.sync) {
            full(b, b"stss", 0, 0, |b| {
                let sync: Vec<u32> = (1..=s.len() as u32).filter(|i| s[*i as usize - 1].sync).collect();
                put32(b, &[sync.len() as u32]);
                put32(b, &sync);
            });
        }
        full(b, b"stsc", 0, 0, |b| put32(b, &[1, 1, s.len() as u32, 1]));
        full(b, b"stsz", 0, 0, |b| {
            put32(b, &[0, s.len() as u32]);
            for x in s {
                put32(b, &[x.size]);
            }
        });
        // The chunk offset is patched by the caller once the moov size is known.
        full(b, b"stco", 0, 0, |b| put32(b, &[1, 0]));
    }

    /// Writes the open fragment as `moof` + `mdat`.
    fn flush_fragment(&mut self, out: &mut Output) {
        if self.samples.is_empty() {
            return;
        }
        self.sequence += 1;
        write_fragment(self.sequence, &self.samples, &self.payloads, out);
        self.samples.clear();
        self.payloads.clear();
    }

    /// The init segment (`ftyp` + `moov` with `mvex`) of a fragmented file
    /// whose first packet is `packet`.
    pub fn init_segment(packet: &Packet) -> Result<Vec<u8>, MuxError> {
        let mut muxer = Mp4Muxer::new(Mp4Options {
            fragmented: true,
            fragment_ms: 0,
        });
        muxer.start(packet)?;
        let mut init = Vec::new();
        muxer.ftyp(&mut init);
        muxer.moov(&mut init, 0);
        Ok(init)
    }
}

/// Writes one fragment, `moof` (numbered `sequence`) + `mdat`, of `samples`
/// with their `payloads`.
pub(crate) fn write_fragment(sequence: u32, samples: &[Entry], payloads: &[Sample], out: &mut Output) {
    let data: u64 = samples.iter().map(|s| s.size as u64).sum();
    let mut moof = Vec::with_capacity(64 + 16 * samples.len());
    boxed(&mut moof, b"moof", |b| {
        full(b, b"mfhd", 0, 0, |b| put32(b, &[sequence]));
        boxed(b, b"traf", |b| {
            full(b, b"tfhd", 0, 0x02_0000, |b| put32(b, &[1])); // default-base-is-moof
            full(b, b"tfdt", 1, 0, |b| {
                b.extend_from_slice(&(samples[0].dts as u64).to_be_bytes())
            });
            // data offset, duration, size, flags, composition offset (signed).
            full(b, b"trun", 1, 0x0F01, |b| {
                put32(b, &[samples.len() as u32, 0]); // data_offset: set below
                for s in samples {
                    let flags = if s.sync { SYNC_FLAGS } else { NON_SYNC_FLAGS };
                    put32(b, &[s.duration, s.size, flags, s.cto as i32 as u32]);
                }
            });
        });
    });
    // trun is moof's last box: data_offset sits just before its sample entries.
    let at = moof.len() - 16 * samples.len() - 4;
    let data_offset = moof.len() as u32 + 8;
    moof[at..at + 4].copy_from_slice(&data_offset.to_be_bytes());
    out.put(&moof);
    out.put(&((data + 8) as u32).to_be_bytes());
    out.put(b"mdat");
    for p in payloads {
        p.put(out);
    }
}

impl Muxer for Mp4Muxer {
    fn push(&mut self, packet: &Packet, out: &mut Output) -> Result<(), MuxError> {
        if self.params.is_none() {
            self.start(packet)?;
            if self.opts.fragmented {
                let mut init = Vec::new();
                self.ftyp(&mut init);
                self.moov(&mut init, 0);
                out.put(&init);
            }
        }
        if self.params.as_ref().is_some_and(|p| p.codec != packet.codec) {
            return Err(MuxError::bad(packet, "codec differs from the track's"));
        }
        let dts = to_units(packet.dts - self.base, TIMESCALE);
        let pts = to_units(packet.pts - self.base, TIMESCALE);
        if pts < dts {
            return Err(MuxError::bad(packet, "pts before dts"));
        }
        if let Some(last) = self.last_dts {
            if dts <= last {
                return Err(MuxError::bad(packet, "dts does not increase"));
            }
            self.last_duration = (dts - last) as u32;
        }
        // A fragment ends before a keyframe, or once it spans fragment_ms.
        let cut = self.opts.fragmented
            && (packet.keyframe
                || (self.opts.fragment_ms > 0
                    && self.samples.first().is_some_and(|s| {
                        dts - s.dts >= to_units(self.opts.fragment_ms as i64 * 1_000_000, TIMESCALE)
                    })));
        // The previous sample lasts until this one.
        if let Some(prev) = self.samples.last_mut() {
            prev.duration = self.last_duration;
        }
        if cut {
            self.flush_fragment(out);
        }
        self.last_dts = Some(dts);
        let sample = Sample::new(packet);
        let size = u32::try_from(sample.size()).map_err(|_| MuxError::bad(packet, "sample larger than 4 GiB"))?;
        self.samples.push(Entry {
            size,
            dts,
            cto: pts - dts,
            duration: 0,
            sync: packet.keyframe,
        });
        if self.opts.fragmented {
            self.payloads.push(sample);
        } else {
            sample.put(out);
            self.data_len += size as u64;
        }
        if packet.duration > 0 {
            self.last_duration = to_units(packet.duration, TIMESCALE) as u32;
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Output) -> Result<Trailer, MuxError> {
        if self.params.is_none() {
            return Ok(Trailer::default());
        }
        if let Some(last) = self.samples.last_mut() {
            last.duration = self.last_duration;
        }
        if self.opts.fragmented {
            self.flush_fragment(out);
            return Ok(Trailer::default());
        }
        let media_duration = self.samples.last().map_or(0, |s| (s.dts + s.duration as i64) as u64);
        let mut head = Vec::new();
        self.ftyp(&mut head);
        self.moov(&mut head, media_duration);
        let large = self.data_len + 8 > u32::MAX as u64;
        let data_start = head.len() as u64 + if large { 16 } else { 8 };
        // stco is moov's last box: its single entry is the last 4 bytes.
        let at = head.len() - 4;
        let offset = u32::try_from(data_start).expect("moov under 4 GiB");
        head[at..].copy_from_slice(&offset.to_be_bytes());
        if large {
            head.extend_from_slice(&1u32.to_be_bytes());
            head.extend_from_slice(b"mdat");
            head.extend_from_slice(&(self.data_len + 16).to_be_bytes());
        } else {
            head.extend_from_slice(&((self.data_len + 8) as u32).to_be_bytes());
            head.extend_from_slice(b"mdat");
        }
        Ok(Trailer {
            patches: Vec::new(),
            prepend: head,
        })
    }
}

/// Appends a box: size, type, then what `body` writes.
pub fn boxed(out: &mut Vec<u8>, kind: &[u8; 4], body: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(kind);
    body(out);
    let size = (out.len() - start) as u32;
    out[start..start + 4].copy_from_slice(&size.to_be_bytes());
}

/// Appends a full box (version and flags after the type).
pub fn full(out: &mut Vec<u8>, kind: &[u8; 4], version: u8, flags: u32, body: impl FnOnce(&mut Vec<u8>)) {
    boxed(out, kind, |b| {
        b.extend_from_slice(&(u32::from(version) << 24 | flags).to_be_bytes());
        body(b);
    });
}

fn put32(out: &mut Vec<u8>, values: &[u32]) {
    for v in values {
        out.extend_from_slice(&v.to_be_bytes());
    }
}

/// The identity transformation matrix.
fn matrix(out: &mut Vec<u8>) {
    put32(out, &[0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000]);
}

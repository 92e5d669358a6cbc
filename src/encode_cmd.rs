//! `eyrie encode`: frames from a camera URI or a `.y4m` file through one
//! encoder into a file, reporting speed — the codec benchmark harness.
//!
//! A `.y4m` input is memory-mapped and its frames are lent to the encoder as
//! they lie in the file. A camera URI runs that camera as a server node (a
//! `testsrc://` one as fast as it can render, not paced) and encodes what it
//! publishes through a blocking subscription, so no frame is skipped.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use eyrie::capture::y4m::Y4m;
use eyrie::config::{Config, NodeProps};
use eyrie::encode::{EncoderSettings, StageTimes, open_encoder};
use eyrie::hub::{Hub, Item, SubscribeOptions};
use eyrie::media::{Buffer, Codec, Frame, FrameMeta, MonotonicClock, Packet};
use eyrie::mux::es::{EsMuxer, codec_of_extension};
use eyrie::mux::write::FileWriter;
use eyrie::mux::{Container, Muxer, Output};
use eyrie::server::Server;
use serde::Serialize;

/// What one run measured.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Frames encoded.
    pub frames: u64,
    /// Packets written (keyframes among them).
    pub packets: u64,
    /// Keyframes written.
    pub keyframes: u64,
    /// Input: `1280x720 nv12`.
    pub input: String,
    /// The backend.
    pub encoder: &'static str,
    /// Output bytes.
    pub bytes: u64,
    /// Seconds of video encoded (frames × frame duration).
    pub media_s: f64,
    /// Output bitrate over that time, Mbit/s.
    pub mbit_s: f64,
    /// Wall time of the encoding loop, s.
    pub wall_s: f64,
    /// Process CPU time (user + system) over the run, s.
    pub cpu_s: f64,
    /// Frames per second of wall time.
    pub fps: f64,
    /// Time by stage, ms per frame.
    pub convert_ms: f64,
    /// Inside the codec, ms per frame.
    pub codec_ms: f64,
    /// Packetizing, ms per frame.
    pub packetize_ms: f64,
    /// Writing the output, ms per frame.
    pub write_ms: f64,
    /// Eyrie's own work (convert + packetize + write) as a share of the codec's time, %.
    pub overhead_pct: f64,
}

/// Process CPU time so far (user + system).
fn cpu_time() -> Duration {
    // SAFETY: getrusage fills the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// Where packets go: a container or an elementary-stream file, by extension.
struct Sink {
    muxer: Box<dyn Muxer>,
    writer: FileWriter,
    out: Output,
    spent: Duration,
}

impl Sink {
    fn create(path: &Path, codec: Codec) -> Result<Sink, String> {
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        let (muxer, gather) = if let Some(container) = Container::from_path(path, false) {
            let gather = if container.index_in_front() { u64::MAX } else { 1 << 20 };
            (container.muxer(), gather)
        } else if let Some(es) = codec_of_extension(ext) {
            if es != codec {
                return Err(format!("{}: a .{ext} file holds {es}, not {codec}", path.display()));
            }
            (Box::new(EsMuxer::new(codec)) as Box<dyn Muxer>, 1 << 20)
        } else {
            return Err(format!(
                "{}: unknown output type (expected .h264, .h265, .ivf, .mjpeg, .jpg, .mp4, .mkv, .webm or .ts)",
                path.display()
            ));
        };
        let writer = FileWriter::create_complete(path)
            .map_err(|e| format!("{}: {e}", path.display()))?
            .gather(gather);
        Ok(Sink {
            muxer,
            writer,
            out: Output::new(),
            spent: Duration::ZERO,
        })
    }

    fn push(&mut self, packet: &Packet, path: &Path) -> Result<(), String> {
        let t = Instant::now();
        self.muxer
            .push(packet, &mut self.out)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        self.writer
            .write(&mut self.out)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        self.spent += t.elapsed();
        Ok(())
    }

    fn finish(mut self, path: &Path) -> Result<(u64, Duration), String> {
        let t = Instant::now();
        let err = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
        let trailer = self.muxer.finish(&mut self.out).map_err(|e| err(&e))?;
        self.writer.write(&mut self.out).map_err(|e| err(&e))?;
        let size = self.writer.finish(trailer).map_err(|e| err(&e))?;
        Ok((size, self.spent + t.elapsed()))
    }
}

/// Frames from `input`: hands each to `each` until it returns false or the input ends.
fn frames(input: &str, limit: u64, mut each: impl FnMut(Frame) -> Result<bool, String>) -> Result<(), String> {
    if input.ends_with(".y4m") && !input.contains("://") {
        let path = Path::new(input);
        let data = eyrie::demux::map_file(path).map_err(|e| format!("{input}: {e}"))?;
        let y4m = Y4m::parse(data).map_err(|e| format!("{input}: {e}"))?;
        let info = *y4m.info();
        let source: Arc<str> = Arc::from(input);
        let meta = Arc::new(FrameMeta::default());
        for n in 0..(y4m.len() as u64).min(limit) {
            let frame = Frame {
                info,
                pts: info.fps.frame_time_ns(n) as i64,
                duration: info.fps.frame_duration_ns() as i64,
                capture_utc: SystemTime::now(),
                seq: n,
                source: Arc::clone(&source),
                meta: Arc::clone(&meta),
                buffer: Buffer::from_bytes(y4m.frame(n as usize).expect("n < len")),
            };
            if !each(frame)? {
                break;
            }
        }
        return Ok(());
    }
    let mut config = Config::from_cameras(&[input]).map_err(|e| e.to_string())?;
    match &mut config.nodes[0].props {
        NodeProps::Testsrc(o) => {
            o.live = false;
            o.num_frames = Some(limit);
        }
        NodeProps::V4l2(_) => {}
        other => {
            return Err(format!(
                "{input}: a {} camera gives coded pictures; `eyrie encode` needs raw frames \
                 (testsrc://, v4l2:// with a raw format, or a .y4m file)",
                other.kind()
            ));
        }
    }
    let hub = Hub::new();
    let frames = hub.subscribe("cam0", SubscribeOptions::blocking(4));
    let server = Server::start_with(config, hub, Arc::new(MonotonicClock::new())).map_err(|e| e.to_string())?;
    let mut result = Ok(());
    let mut seen = 0;
    while seen < limit {
        match frames.recv_timeout(Duration::from_secs(10)) {
            Ok(Item::Frame(f)) => {
                seen += 1;
                match each(f) {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                }
            }
            Ok(Item::Eos) => break,
            Ok(_) => {}
            Err(_) => {
                let why = server.stats().nodes[0].error.clone();
                result = Err(format!(
                    "{input}: no frame for 10 s{}",
                    why.map(|e| format!(": {e}")).unwrap_or_default()
                ));
                break;
            }
        }
    }
    drop(frames);
    server.shutdown();
    result
}

/// Encodes up to `limit` frames of `input` into `output`.
pub fn run(input: &str, limit: u64, settings: &EncoderSettings, output: &Path) -> Result<Report, String> {
    let mut sink = Sink::create(output, settings.codec)?;
    let mut encoder = None;
    let mut packets = Vec::new();
    let (mut n, mut count, mut keyframes) = (0u64, 0u64, 0u64);
    let mut described = String::new();
    let mut media_ns = 0i64;
    let cpu0 = cpu_time();
    let started = Instant::now();
    frames(input, limit, |frame| {
        let enc = match &mut encoder {
            Some(e) => e,
            None => {
                described = format!("{}x{} {}", frame.info.width, frame.info.height, frame.info.format);
                encoder.insert(open_encoder(settings, &frame.info).map_err(|e| format!("{input}: {e}"))?)
            }
        };
        enc.encode(&frame, &mut packets)
            .map_err(|e| format!("{input}: frame {}: {e}", frame.seq))?;
        n += 1;
        media_ns += frame.duration;
        for p in packets.drain(..) {
            count += 1;
            keyframes += p.keyframe as u64;
            sink.push(&p, output)?;
        }
        Ok(n < limit)
    })?;
    let Some(mut enc) = encoder else {
        return Err(format!("{input}: no frames"));
    };
    enc.flush(&mut packets).map_err(|e| format!("{input}: {e}"))?;
    for p in packets.drain(..) {
        count += 1;
        keyframes += p.keyframe as u64;
        sink.push(&p, output)?;
    }
    let (bytes, write) = sink.finish(output)?;
    let wall = started.elapsed();
    let cpu = cpu_time() - cpu0;
    let StageTimes {
        convert,
        codec,
        packetize,
    } = enc.times();
    let per_frame = |d: Duration| d.as_secs_f64() * 1e3 / n.max(1) as f64;
    Ok(Report {
        frames: n,
        packets: count,
        keyframes,
        input: described,
        encoder: enc.name(),
        bytes,
        media_s: media_ns as f64 / 1e9,
        mbit_s: bytes as f64 * 8.0 / 1e6 / (media_ns as f64 / 1e9).max(1e-9),
        wall_s: wall.as_secs_f64(),
        cpu_s: cpu.as_secs_f64(),
        fps: n as f64 / wall.as_secs_f64().max(1e-9),
        convert_ms: per_frame(convert),
        codec_ms: per_frame(codec),
        packetize_ms: per_frame(packetize),
        write_ms: per_frame(write),
        overhead_pct: 100.0 * (convert + packetize + write).as_secs_f64() / codec.as_secs_f64().max(1e-9),
    })
}

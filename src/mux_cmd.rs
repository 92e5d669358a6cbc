//! `eyrie mux INPUT OUTPUT`: an elementary stream into a container, written
//! with one vectored write per muxer output and no payload copy.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use eyrie::demux::{EsKind, es};
use eyrie::media::{Fps, Packet};
use eyrie::mux::write::FileWriter;
use eyrie::mux::{Container, Output};

pub fn run(input: &Path, output: &Path, fps: Option<Fps>, fragmented: bool, realtime: bool) -> Result<(), String> {
    let started = Instant::now();
    let kind = input
        .extension()
        .and_then(|e| e.to_str())
        .and_then(EsKind::from_extension)
        .ok_or_else(|| {
            format!(
                "{}: unknown input type (expected .h264/.264, .h265/.265/.hevc or .ivf)",
                input.display()
            )
        })?;
    let container = Container::from_path(output, fragmented).ok_or_else(|| {
        format!(
            "{}: unknown output type (expected .ts, .mkv, .webm or .mp4)",
            output.display()
        )
    })?;
    let data = Bytes::from(std::fs::read(input).map_err(|e| format!("{}: {e}", input.display()))?);
    let source: Arc<str> = Arc::from(input.display().to_string());
    let packets = es::read(&data, kind, fps, &source).map_err(|e| format!("{}: {e}", input.display()))?;
    // A progressive MP4's index goes in front: hold the (shared, uncopied)
    // data until it is known rather than rewriting the file.
    let hold = container == Container::Mp4;
    let io = |e: std::io::Error| format!("{}: {e}", output.display());
    let mut writer = FileWriter::create(output, hold).map_err(io)?;
    let mut muxer = container.muxer();
    let mut out = Output::new();
    let first_dts = packets.first().map_or(0, |p| p.dts);
    for p in &packets {
        if realtime {
            let due = started + Duration::from_nanos((p.dts - first_dts).max(0) as u64);
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
        }
        muxer
            .push(p, &mut out)
            .map_err(|e| format!("{}: {e}", input.display()))?;
        writer.write(&mut out).map_err(io)?;
    }
    let trailer = muxer
        .finish(&mut out)
        .map_err(|e| format!("{}: {e}", input.display()))?;
    writer.write(&mut out).map_err(io)?;
    let size = writer.finish(trailer).map_err(io)?;
    report(&packets, size, output, started);
    Ok(())
}

fn report(packets: &[Packet], size: u64, output: &Path, started: Instant) {
    let keyframes = packets.iter().filter(|p| p.keyframe).count();
    let span = match (
        packets.iter().map(|p| p.pts).min(),
        packets.iter().map(|p| p.pts + p.duration).max(),
    ) {
        (Some(a), Some(b)) => (b - a) as f64 / 1e9,
        _ => 0.0,
    };
    let (codec, w, h) = packets.first().map_or(("-".to_string(), 0, 0), |p| {
        (p.codec.to_string(), p.params.width, p.params.height)
    });
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "{}: {} packets ({keyframes} keyframes), {codec} {w}x{h}, {span:.3} s, {size} bytes in {secs:.3} s ({:.0} MB/s)",
        output.display(),
        packets.len(),
        size as f64 / 1e6 / secs.max(1e-9),
    );
}

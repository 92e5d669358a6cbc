//! `eyrie mux INPUT OUTPUT`: an elementary stream into a container. The input
//! is memory-mapped and streamed: each picture is parsed and muxed while its
//! bytes are still in cache, and the output, still referencing the map, is
//! written 1 MiB at a time with vectored writes (each packet as it comes with
//! `--realtime`).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use eyrie::demux::{EsKind, es};
use eyrie::media::Fps;
use eyrie::mux::write::FileWriter;
use eyrie::mux::{Container, Output};

/// Bytes gathered per write in a batch conversion.
const GATHER: u64 = 1 << 20;

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
    let in_err = |e: &dyn std::fmt::Display| format!("{}: {e}", input.display());
    let data = eyrie::demux::map_file(input).map_err(|e| in_err(&e))?;
    let source: Arc<str> = Arc::from(input.display().to_string());
    // Batch conversion gathers a few MiB per write; `--realtime` writes each
    // packet as it comes.
    let gather = if container.index_in_front() {
        u64::MAX
    } else if realtime {
        0
    } else {
        GATHER
    };
    let out_err = |e: &dyn std::fmt::Display| format!("{}: {e}", output.display());
    // A batch conversion's output appears whole or not at all; a `--realtime`
    // one grows in place like a recording (a killed run leaves a playable
    // prefix), and is removed only on an error.
    let writer = if realtime {
        FileWriter::create(output).map(FileWriter::remove_unfinished)
    } else {
        FileWriter::create_complete(output)
    };
    let mut writer = writer.map_err(|e| out_err(&e))?.gather(gather);
    let mut muxer = container.muxer();
    let mut out = Output::new();
    let mut stats = Stats::default();
    es::for_each(&data, kind, fps, &source, |p| -> Result<(), Error> {
        if realtime {
            let due = started + Duration::from_nanos((p.dts - stats.first_dts.unwrap_or(p.dts)).max(0) as u64);
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
        }
        stats.add(&p);
        muxer.push(&p, &mut out).map_err(|e| Error::Other(in_err(&e)))?;
        writer.write(&mut out).map_err(|e| Error::Other(out_err(&e)))
    })
    .map_err(|e| match e {
        Error::Parse(e) => in_err(&e),
        Error::Other(s) => s,
    })?;
    if stats.packets == 0 {
        return Err(in_err(&format_args!(
            "no {kind} pictures in its {} bytes: nothing to mux",
            data.len()
        )));
    }
    let trailer = muxer.finish(&mut out).map_err(|e| in_err(&e))?;
    writer.write(&mut out).map_err(|e| out_err(&e))?;
    let size = writer.finish(trailer).map_err(|e| out_err(&e))?;
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "{}: {} packets ({} keyframes), {} {}x{}, {:.3} s, {size} bytes in {secs:.3} s ({:.0} MB/s)",
        output.display(),
        stats.packets,
        stats.keyframes,
        stats.codec,
        stats.size.0,
        stats.size.1,
        (stats.end - stats.start) as f64 / 1e9,
        size as f64 / 1e6 / secs.max(1e-9),
    );
    Ok(())
}

/// Why muxing stopped: the input does not parse, or a message naming the file at fault.
enum Error {
    Parse(eyrie::codec::CodecError),
    Other(String),
}

impl From<eyrie::codec::CodecError> for Error {
    fn from(e: eyrie::codec::CodecError) -> Self {
        Error::Parse(e)
    }
}

#[derive(Default)]
struct Stats {
    packets: u64,
    keyframes: u64,
    codec: String,
    size: (u32, u32),
    first_dts: Option<i64>,
    start: i64,
    end: i64,
}

impl Stats {
    fn add(&mut self, p: &eyrie::media::Packet) {
        if self.first_dts.is_none() {
            self.first_dts = Some(p.dts);
            (self.start, self.end) = (p.pts, p.pts);
            self.codec = p.codec.to_string();
        }
        self.packets += 1;
        self.keyframes += p.keyframe as u64;
        self.size = (p.params.width, p.params.height);
        self.start = self.start.min(p.pts);
        self.end = self.end.max(p.pts + p.duration);
    }
}

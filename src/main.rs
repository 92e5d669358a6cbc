//! The `eyrie` command: run the server, or check a config.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use eyrie::config::Config;
use eyrie::media::Fps;
use eyrie::output::options::RecordOptions;
use eyrie::output::recorder::FileFormat;
use eyrie::server::{NodeState, Server, ServerStats};
mod ctl_cmd;
mod dataset_cmd;
mod encode_cmd;
mod eval_cmd;
mod mux_cmd;

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::prelude::*;

#[derive(Parser)]
#[command(
    name = "eyrie",
    version = concat!(env!("CARGO_PKG_VERSION"), " (", env!("EYRIE_COMMIT"), ")"),
    about = "A zero-copy, multi-camera AI media server"
)]
struct Cli {
    /// Log filter, e.g. `info` or `warn,eyrie::server=debug`.
    #[arg(long, global = true, env = "EYRIE_LOG", default_value = "info")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the built-in demo when no config is given).
    Run {
        /// Config file (TOML).
        #[arg(short, long, conflicts_with = "camera")]
        config: Option<PathBuf>,
        /// A camera, instead of a config (repeatable): `testsrc://?size=1280x720&fps=30&seed=7`,
        /// `v4l2:///dev/video0?format=NV12&size=640x480&fps=30`,
        /// `rtsp://user:pass@host/path?transport=tcp`, `file:///path/clip.mp4?loop=1`.
        #[arg(long, value_name = "URI")]
        camera: Vec<String>,
        /// Stop after this many seconds.
        #[arg(long = "for", value_name = "SECONDS")]
        duration: Option<f64>,
        /// Write final per-node stats as JSON to this file.
        #[arg(long, value_name = "FILE")]
        stats: Option<PathBuf>,
        /// Serve RTSP on this address instead of `[server.rtsp] listen`
        /// (default 127.0.0.1:8554); `off` serves no RTSP.
        #[arg(long, value_name = "ADDR", env = "EYRIE_RTSP")]
        rtsp: Option<String>,
        /// Serve HTTP (the page, HLS, WebSocket, MJPEG) on this address
        /// instead of `[server.http] listen` (default 127.0.0.1:8080); `off`
        /// serves no HTTP.
        #[arg(long, value_name = "ADDR", env = "EYRIE_HTTP")]
        http: Option<String>,
    },
    /// Score the configured detector and tracker on synthetic sequences: JSON with
    /// precision and recall (IoU 0.5), id persistence and speed.
    Eval {
        /// First scene seed (sequences use seed, seed+1, ...; training used seeds below 1000).
        #[arg(long, default_value_t = 1000)]
        seed: u64,
        /// Frames per sequence.
        #[arg(long, default_value_t = 900)]
        frames: u64,
        /// Sequences (cameras) run side by side, as one batch.
        #[arg(long, default_value_t = 1)]
        sequences: u32,
        /// Camera size, WxH.
        #[arg(long, default_value = "1280x720", value_parser = parse_size)]
        camera: (u32, u32),
        /// Confidence at which detections count (default: the tracker's `high`).
        #[arg(long)]
        threshold: Option<f32>,
        /// Config whose first `infer` and `track` nodes give the settings.
        #[arg(short, long)]
        config: Option<PathBuf>,
    },
    /// Render synthetic frames and their ground truth as a detector's training set
    /// (`frames.u8`: planar RGB at the model's input size; `labels.jsonl`: one line per frame).
    Dataset {
        /// Scene seeds, comma-separated (one camera each).
        #[arg(long, value_delimiter = ',', default_value = "1")]
        seeds: Vec<u64>,
        /// Frames rendered per seed.
        #[arg(long, default_value_t = 300)]
        frames: u64,
        /// Keep every N-th frame.
        #[arg(long, default_value_t = 1)]
        stride: u64,
        /// Camera size, WxH.
        #[arg(long, default_value = "1280x720", value_parser = parse_size)]
        camera: (u32, u32),
        /// Model input size, WxH.
        #[arg(long, default_value = "256x144", value_parser = parse_size)]
        input: (u32, u32),
        /// Output directory.
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Wrap an elementary stream (`.h264`/`.h265` Annex-B, `.ivf` VP9) into the
    /// container the output's extension names (`.ts`, `.mkv`, `.webm`, `.mp4`).
    Mux {
        /// Input elementary stream.
        input: PathBuf,
        /// Output file.
        output: PathBuf,
        /// Frame rate, e.g. `30` or `30000/1001` (default: the stream's own).
        #[arg(long)]
        fps: Option<Fps>,
        /// Write fragmented MP4 (an init segment and a fragment per keyframe).
        #[arg(long)]
        fragmented: bool,
        /// Write at the stream's own pace, like a live recording.
        #[arg(long)]
        realtime: bool,
    },
    /// Encode frames from a camera URI or a `.y4m` file into OUT (`.h264`,
    /// `.h265`, `.ivf`, `.mjpeg`, `.jpg`, or `.mp4`/`.mkv`/`.webm`/`.ts`),
    /// printing speed: fps, CPU time, and time per frame by stage.
    Encode {
        /// `testsrc://?size=1280x720&fps=30&seed=7`, `v4l2:///dev/video0?format=nv12`, or a `.y4m` file.
        #[arg(long, value_name = "URI")]
        input: String,
        /// Frames to encode (default: all of a file; 300 from a camera).
        #[arg(long)]
        frames: Option<u64>,
        /// `h264`, `h265`, `vp9` or `mjpeg`.
        #[arg(long, default_value = "h264")]
        codec: String,
        /// `auto`, `openh264`, `jpeg`, `ffmpeg` or `v4l2m2m:/dev/videoN`.
        #[arg(long, default_value = "auto")]
        encoder: String,
        /// Target bitrate, bits per second.
        #[arg(long)]
        bitrate: Option<u32>,
        /// `cbr`, `vbr` or `cqp`.
        #[arg(long)]
        rate_control: Option<String>,
        /// Frames from one keyframe to the next.
        #[arg(long)]
        keyint: Option<u32>,
        /// JPEG quality, 1–100.
        #[arg(long)]
        quality: Option<u8>,
        /// Print the report as one JSON object.
        #[arg(long)]
        json: bool,
        /// Output file.
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Record cameras into DIR without a config: compressed cameras are stored
    /// as they come, raw ones encoded to H.264 first; files are
    /// `DIR/<camera>/<camera>-<utc>.mp4`, listed in `DIR/eyrie-index.sqlite`.
    Record {
        /// Camera URIs, as for `run --camera`.
        #[arg(required = true, value_name = "URI")]
        uris: Vec<String>,
        /// The media root to record into.
        #[arg(long)]
        dir: PathBuf,
        /// Seconds per file (each starts on a keyframe); 0 for one file.
        #[arg(long, default_value_t = 60.0, value_name = "SECONDS")]
        segment: f64,
        /// `mp4` (fragmented, crash-safe), `mkv` or `ts`.
        #[arg(long, default_value = "mp4")]
        container: String,
        /// Stop after this many seconds.
        #[arg(long = "for", value_name = "SECONDS")]
        duration: Option<f64>,
        /// Write final per-node stats as JSON to this file.
        #[arg(long, value_name = "FILE")]
        stats: Option<PathBuf>,
    },
    /// List V4L2 devices with their formats, frame sizes and rates (all
    /// `/dev/video*` when no device is given).
    Probe {
        /// Device node, e.g. `/dev/video0`.
        device: Option<PathBuf>,
    },
    /// Control a running server through its API (nodes, relinks, changes,
    /// recordings, clips, snapshots, events).
    Ctl {
        /// The server's HTTP listener.
        #[arg(long, env = "EYRIE_URL", default_value = "http://127.0.0.1:8080")]
        url: String,
        /// A token from `eyrie ctl login` (needed once users are configured).
        #[arg(long, env = "EYRIE_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// For https: a PEM file of certificates to trust besides the
        /// system's (e.g. the server's self-signed `cert.pem`).
        #[arg(long, env = "EYRIE_CACERT", value_name = "FILE")]
        cacert: Option<PathBuf>,
        /// Print the server's JSON instead of tables.
        #[arg(long)]
        json: bool,
        #[command(subcommand)]
        command: ctl_cmd::Ctl,
    },
    /// Print an argon2id hash of a password for `[[server.users]]`
    /// `password_hash` (the password is read from standard input; from a
    /// terminal, twice and without echo).
    Passwd {
        /// The user name, to print a whole `[[server.users]]` table.
        #[arg(long)]
        user: Option<String>,
    },
    /// Make a self-signed TLS certificate and key for a first setup of
    /// HTTPS and RTSPS (`cert.pem`, `key.pem` with mode 0600), and print
    /// the `[server.tls]` table that uses them.
    Cert {
        /// Directory to write them to.
        #[arg(long, default_value = ".")]
        out: PathBuf,
        /// A host name or IP address clients reach the server by, besides
        /// localhost, 127.0.0.1 and ::1 (repeatable).
        #[arg(long = "name", value_name = "NAME")]
        names: Vec<String>,
        /// Days it is valid.
        #[arg(long, default_value_t = 825, value_parser = clap::value_parser!(u32).range(1..=36500))]
        days: u32,
        /// Replace existing files.
        #[arg(long)]
        force: bool,
    },
    /// Validate a config file and exit.
    Check {
        /// Config file (TOML).
        #[arg(short, long)]
        config: PathBuf,
    },
}

/// How often a running server logs a progress line.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter: Targets = match cli.log.parse() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("eyrie: bad --log filter `{}`: {e}", cli.log);
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())),
        )
        .with(filter)
        .init();
    match cli.command {
        Command::Passwd { user } => passwd(user),
        Command::Ctl {
            url,
            token,
            cacert,
            json,
            command,
        } => ctl_cmd::run(&url, token, cacert.as_deref(), json, command),
        Command::Cert {
            out,
            names,
            days,
            force,
        } => cert(&out, names, days, force),
        Command::Check { config } => match Config::from_file(&config) {
            Ok(c) => {
                let names: Vec<String> = c
                    .nodes
                    .iter()
                    .map(|n| format!("{} ({})", n.name, n.props.kind()))
                    .collect();
                println!(
                    "{}: ok, {} nodes: {}",
                    config.display(),
                    c.nodes.len(),
                    names.join(", ")
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(2)
            }
        },
        Command::Run {
            config,
            camera,
            duration,
            stats,
            rtsp,
            http,
        } => match load(config.clone(), &camera) {
            Ok(mut config_read) => {
                let file = config;
                let config = &mut config_read;
                let server = &mut config.server;
                for (flag, enabled, listen) in [
                    (rtsp, &mut server.rtsp.enabled, &mut server.rtsp.listen),
                    (http, &mut server.http.enabled, &mut server.http.listen),
                ] {
                    match flag.as_deref() {
                        Some("off") => *enabled = false,
                        Some(addr) => {
                            *enabled = true;
                            *listen = addr.to_owned();
                        }
                        None => {}
                    }
                }
                run(config_read, file, duration, stats)
            }
            Err(code) => code,
        },
        Command::Record {
            uris,
            dir,
            segment,
            container,
            duration,
            stats,
        } => {
            let container = match container.as_str() {
                "mp4" => FileFormat::Mp4,
                "mkv" => FileFormat::Mkv,
                "ts" => FileFormat::Ts,
                other => {
                    eprintln!("eyrie: --container {other}: expected mp4, mkv or ts");
                    return ExitCode::from(2);
                }
            };
            let record = RecordOptions {
                container,
                path: "{camera}/{camera}-{utc}".into(),
                segment,
                ..RecordOptions::default()
            };
            match Config::recorder(&uris, &dir, record) {
                Ok(config) => run(config, None, duration, stats),
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Probe { device } => probe(device),
        Command::Encode {
            input,
            frames,
            codec,
            encoder,
            bitrate,
            rate_control,
            keyint,
            quality,
            json,
            output,
        } => {
            let settings = encode_settings(&codec, &encoder, bitrate, rate_control.as_deref(), keyint, quality);
            let settings = match settings {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("eyrie encode: {e}");
                    return ExitCode::from(2);
                }
            };
            let limit = frames.unwrap_or(if input.ends_with(".y4m") { u64::MAX } else { 300 });
            match encode_cmd::run(&input, limit, &settings, &output) {
                Ok(r) if json => {
                    println!("{}", serde_json::to_string(&r).expect("report serializes"));
                    ExitCode::SUCCESS
                }
                Ok(r) => {
                    println!(
                        "{}: {} frames of {} → {} ({}), {} packets ({} keyframes), {} bytes ({:.2} Mbit/s)",
                        output.display(),
                        r.frames,
                        r.input,
                        settings.codec,
                        r.encoder,
                        r.packets,
                        r.keyframes,
                        r.bytes,
                        r.mbit_s,
                    );
                    println!(
                        "{:.1} fps, {:.3} s wall, {:.3} s CPU ({:.2} ms/frame); per frame: codec {:.3} ms, \
                         convert {:.3} ms, packetize {:.3} ms, write {:.3} ms (Eyrie's share {:.2} % of the codec's)",
                        r.fps,
                        r.wall_s,
                        r.cpu_s,
                        r.cpu_s * 1e3 / r.frames.max(1) as f64,
                        r.codec_ms,
                        r.convert_ms,
                        r.packetize_ms,
                        r.write_ms,
                        r.overhead_pct
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("eyrie encode: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Eval {
            seed,
            frames,
            sequences,
            camera,
            threshold,
            config,
        } => {
            let config = match config.map(|c| Config::from_file(&c)).transpose() {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::from(2);
                }
            };
            let (infer, track) = eval_cmd::settings(config.as_ref());
            let spec = eval_cmd::Spec {
                seed,
                sequences: sequences.max(1),
                frames,
                camera,
                threshold,
            };
            match eval_cmd::run(&spec, &infer, &track) {
                Ok(report) => {
                    println!("{}", serde_json::to_string_pretty(&report).expect("JSON"));
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("eyrie eval: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Dataset {
            seeds,
            frames,
            stride,
            camera,
            input,
            output,
        } => {
            let spec = dataset_cmd::Spec {
                seeds,
                frames,
                stride,
                camera,
                input,
            };
            match dataset_cmd::run(&spec, &output) {
                Ok(n) => {
                    println!("{n} frames written to {}", output.display());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("eyrie dataset: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Mux {
            input,
            output,
            fps,
            fragmented,
            realtime,
        } => match mux_cmd::run(&input, &output, fps, fragmented, realtime) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("eyrie mux: {e}");
                ExitCode::from(1)
            }
        },
    }
}

/// Encoder settings from `eyrie encode`'s options, checked like config keys.
fn encode_settings(
    codec: &str,
    encoder: &str,
    bitrate: Option<u32>,
    rate_control: Option<&str>,
    keyint: Option<u32>,
    quality: Option<u8>,
) -> Result<eyrie::encode::EncoderSettings, String> {
    use eyrie::encode::{EncoderSettings, RateControl};
    use eyrie::media::Codec;
    let enum_value = |key: &str, v: &str, expected: &str| format!("--{key} {v}: expected {expected}");
    let mut s = EncoderSettings {
        codec: match codec {
            "h264" => Codec::H264,
            "h265" | "hevc" => Codec::H265,
            "vp9" => Codec::Vp9,
            "mjpeg" | "jpeg" => Codec::Mjpeg,
            other => return Err(enum_value("codec", other, "h264, h265, vp9 or mjpeg")),
        },
        encoder: encoder.parse()?,
        ..EncoderSettings::default()
    };
    if let Some(b) = bitrate {
        s.bitrate = b;
    }
    if let Some(r) = rate_control {
        s.rate_control = match r {
            "cbr" => RateControl::Cbr,
            "vbr" => RateControl::Vbr,
            "cqp" => RateControl::Cqp,
            other => return Err(enum_value("rate-control", other, "cbr, vbr or cqp")),
        };
    }
    if let Some(k) = keyint {
        s.keyint = k;
    }
    if let Some(q) = quality {
        s.quality = q;
    }
    s.validate()?;
    Ok(s)
}

/// `eyrie probe`: what each device is and, for capture devices, what it can capture.
/// `WxH` as two numbers.
fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let parsed = s
        .split_once('x')
        .and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?)));
    match parsed {
        Some((w, h)) if w > 0 && h > 0 => Ok((w, h)),
        _ => Err(format!("`{s}`: expected WIDTHxHEIGHT, e.g. 1280x720")),
    }
}

fn probe(device: Option<PathBuf>) -> ExitCode {
    use eyrie::capture::v4l2::{Device, device_paths};
    let paths = match device {
        Some(d) => vec![d],
        None => device_paths(),
    };
    if paths.is_empty() {
        eprintln!("eyrie probe: no V4L2 devices (/dev/video*)");
        return ExitCode::from(1);
    }
    let mut failed = false;
    for path in paths {
        let device = match Device::open(&path) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("{e}");
                failed = true;
                continue;
            }
        };
        let info = device.info();
        println!(
            "{}: {} (driver {}, {}): {}",
            path.display(),
            info.card,
            info.driver,
            info.bus,
            info.roles().join(", ")
        );
        if info.capture_type().is_none() {
            continue;
        }
        match device.formats() {
            Ok(formats) => formats.iter().for_each(|f| println!("  {f}")),
            Err(e) => {
                eprintln!("{e}");
                failed = true;
            }
        }
    }
    if failed { ExitCode::from(1) } else { ExitCode::SUCCESS }
}

fn load(config: Option<PathBuf>, cameras: &[String]) -> Result<Config, ExitCode> {
    let config = match &config {
        Some(path) => Config::from_file(path),
        None if !cameras.is_empty() => Config::from_cameras(cameras),
        None => {
            tracing::info!("no config given: running the built-in demo (two synthetic cameras, four inputs)");
            Ok(Config::default_demo())
        }
    };
    config.map_err(|e| {
        eprintln!("{e}");
        ExitCode::from(2)
    })
}

fn run(config: Config, file: Option<PathBuf>, duration: Option<f64>, stats_path: Option<PathBuf>) -> ExitCode {
    if let Some(d) = duration
        && !(d.is_finite() && d >= 0.0)
    {
        eprintln!("eyrie: --for must be a number of seconds ≥ 0, not {d}");
        return ExitCode::from(2);
    }
    let (signal_tx, signals) = mpsc::channel();
    match signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) {
        Ok(mut s) => {
            std::thread::spawn(move || {
                for sig in s.forever() {
                    if signal_tx.send(sig).is_err() {
                        break;
                    }
                }
            });
        }
        Err(e) => tracing::warn!("cannot catch SIGINT/SIGTERM/SIGHUP ({e}); stop with --for"),
    }
    let coded: Vec<String> = config
        .nodes
        .iter()
        .filter(|n| matches!(n.props.kind(), "encode" | "rtsp" | "file"))
        .map(|n| n.name.clone())
        .collect();
    let server = match Server::start(config).and_then(|s| s.serve().map(|_| s)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("eyrie: {e}");
            return ExitCode::from(1);
        }
    };
    if let Some(path) = file {
        match server.persist_to(Some(path.clone())) {
            Ok(()) => tracing::info!(
                "changes through the API are written back to {}; SIGHUP applies an edited file",
                path.display()
            ),
            Err(e) => tracing::warn!("changes will not be written back to {}: {e}", path.display()),
        }
    }
    for url in coded.iter().filter_map(|name| server.rtsp_url(name)) {
        tracing::info!("watch: ffplay {url}");
    }
    if let Some(addr) = server.http_address() {
        let scheme = if server.config().server.http.tls {
            "https"
        } else {
            "http"
        };
        tracing::info!("open {scheme}://{addr}/ in a browser (every stream, with its players and URLs)");
    }
    let start = Instant::now();
    let deadline = duration.map(|d| start + Duration::from_secs_f64(d));
    let mut next_progress = start + PROGRESS_EVERY;
    loop {
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            tracing::info!("--for elapsed, stopping");
            break;
        }
        if server.sources_finished() {
            tracing::info!("every source has ended, stopping");
            break;
        }
        if now >= next_progress {
            progress(&server.stats());
            next_progress += PROGRESS_EVERY;
        }
        let wait = deadline
            .map_or(Duration::from_millis(100), |d| d.saturating_duration_since(now))
            .min(Duration::from_millis(100));
        match signals.recv_timeout(wait) {
            Ok(SIGHUP) => match server.reload() {
                Ok(applied) => tracing::info!(?applied, "SIGHUP: the config file applied"),
                Err(e) => tracing::error!("SIGHUP: {e}"),
            },
            Ok(sig) => {
                tracing::info!(signal = sig, "signal received, stopping");
                break;
            }
            Err(_) => {}
        }
    }
    let stats = server.shutdown();
    progress(&stats);
    if let Some(path) = stats_path {
        let json = serde_json::to_string_pretty(&stats).expect("stats serialize");
        if let Err(e) = std::fs::write(&path, json + "\n") {
            eprintln!("eyrie: cannot write stats to {}: {e}", path.display());
            return ExitCode::from(1);
        }
    }
    let failed: Vec<&str> = stats
        .nodes
        .iter()
        .filter(|n| n.state == NodeState::Failed)
        .map(|n| n.name.as_str())
        .collect();
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!("eyrie: nodes failed: {}", failed.join(", "));
        ExitCode::from(1)
    }
}

fn progress(stats: &ServerStats) {
    for n in &stats.nodes {
        tracing::info!(
            node = %n.name,
            kind = n.kind,
            state = ?n.state,
            out = n.frames_out,
            dropped = n.frames_dropped,
            fps = format_args!("{:.2}", n.fps),
        );
    }
    tracing::info!(
        uptime_s = format_args!("{:.1}", stats.uptime_s),
        bytes_copied = stats.bytes_copied
    );
}

/// `eyrie passwd`: a password from standard input, hashed.
fn cert(out: &std::path::Path, names: Vec<String>, days: u32, force: bool) -> ExitCode {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut all: Vec<String> = names;
    for default in ["localhost", "127.0.0.1", "::1"] {
        if !all.iter().any(|n| n == default) {
            all.push(default.into());
        }
    }
    let write = |name: &str, text: &str, mode: u32| -> Result<PathBuf, String> {
        let path = out.join(name);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).mode(mode);
        if force {
            options.create(true).truncate(true);
        } else {
            options.create_new(true);
        }
        let mut file = options
            .open(&path)
            .map_err(|e| format!("cannot write {}: {e} (--force replaces it)", path.display()))?;
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok(std::fs::canonicalize(&path).unwrap_or(path))
    };
    let result = eyrie::serve::tls::self_signed(&all, days).and_then(|made| {
        std::fs::create_dir_all(out).map_err(|e| format!("cannot make {}: {e}", out.display()))?;
        if let Some(there) = ["cert.pem", "key.pem"]
            .map(|n| out.join(n))
            .into_iter()
            .find(|p| p.exists())
            && !force
        {
            return Err(format!("{} exists (--force replaces it)", there.display()));
        }
        let key = write("key.pem", &made.key, 0o600)?;
        let cert = write("cert.pem", &made.cert, 0o644)?;
        Ok((cert, key, made.fingerprint))
    });
    match result {
        Ok((cert, key, fingerprint)) => {
            eprintln!(
                "made a self-signed certificate for {}, valid {days} days",
                all.join(", ")
            );
            eprintln!("SHA-256 fingerprint {fingerprint}");
            eprintln!(
                "clients trust it with e.g. `curl --cacert {0}` or `eyrie ctl --cacert {0}`",
                cert.display()
            );
            println!(
                "[server.tls]\ncert = {}\nkey = {}\n\n[server.http]\ntls = true\n\n[server.rtsp]\ntls = true",
                toml_string(&cert.display().to_string()),
                toml_string(&key.display().to_string())
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("eyrie cert: {e}");
            ExitCode::from(2)
        }
    }
}

fn passwd(user: Option<String>) -> ExitCode {
    let read = |prompt: &str| -> Result<String, String> {
        let tty = std::io::IsTerminal::is_terminal(&std::io::stdin());
        if tty {
            eprint!("{prompt}");
        }
        let echo = tty.then(no_echo);
        let mut line = String::new();
        let read = std::io::stdin().read_line(&mut line);
        if let Some(Some(saved)) = echo {
            // SAFETY: restores the terminal settings read from the same descriptor.
            unsafe { libc::tcsetattr(0, libc::TCSANOW, &saved) };
            eprintln!();
        }
        read.map_err(|e| format!("cannot read the password: {e}"))?;
        Ok(line.trim_end_matches(['\n', '\r']).to_owned())
    };
    let result = read("password: ").and_then(|password| {
        if password.is_empty() {
            return Err("the password is empty".into());
        }
        if std::io::IsTerminal::is_terminal(&std::io::stdin()) && read("again: ")? != password {
            return Err("the two passwords differ".into());
        }
        eyrie::serve::auth::hash_password(&password)
    });
    match result {
        Ok(hash) => {
            match user {
                Some(name) => println!(
                    "[[server.users]]\nname = {}\npassword_hash = \"{hash}\"\nrole = \"viewer\"\nstreams = [\"*\"]",
                    toml_string(&name)
                ),
                None => println!("{hash}"),
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("eyrie passwd: {e}");
            ExitCode::from(2)
        }
    }
}

/// Turns off echo on standard input; the settings to restore.
fn no_echo() -> Option<libc::termios> {
    // SAFETY: termios is plain data; tcgetattr fills it for descriptor 0.
    unsafe {
        let mut saved: libc::termios = std::mem::zeroed();
        if libc::tcgetattr(0, &mut saved) != 0 {
            return None;
        }
        let mut quiet = saved;
        quiet.c_lflag &= !libc::ECHO;
        (libc::tcsetattr(0, libc::TCSANOW, &quiet) == 0).then_some(saved)
    }
}

/// `s` as a TOML basic string.
fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

//! Latency from capture to a decoded picture through Eyrie's RTSP server,
//! per transport: a synthetic 1280×720 30 fps camera (which stamps its frame
//! number into every frame) encoded to H.264 (OpenH264) and served; `ffmpeg`
//! with low-delay flags decodes the stream to raw frames on a pipe; each
//! frame's stamp is read back and its arrival compared with the camera's
//! capture time of that frame (UTC, from the hub). The encoder's own delay
//! (capture → coded packet published) is measured alongside, so the figure
//! the server answers for is the difference.
//!
//!   cargo bench --bench rtsp_latency [-- FRAMES]     # default 300 frames per transport

use std::collections::HashMap;
use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use eyrie::capture::testsrc::stamp;
use eyrie::config::Config;
use eyrie::hub::{Item, SubscribeOptions};
use eyrie::media::{Fps, PixelFormat, VideoInfo};
use eyrie::server::Server;

const WIDTH: u32 = 1280;
const HEIGHT: u32 = 720;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn summary(mut ms: Vec<f64>) -> String {
    ms.sort_by(f64::total_cmp);
    if ms.is_empty() {
        return "no frames".into();
    }
    format!(
        "median {:.1} ms, p95 {:.1} ms over {} frames",
        percentile(&ms, 0.5),
        percentile(&ms, 0.95),
        ms.len()
    )
}

fn main() {
    let frames: usize = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with("--"))
        .and_then(|a| a.parse().ok())
        .unwrap_or(300);
    let root = std::env::temp_dir().join(format!("eyrie-latency-{}", std::process::id()));
    let text = format!(
        "[server]\nmedia_root = \"{}\"\n[server.http]\nenabled = false\n[server.rtsp]\nlisten = \"127.0.0.1:0\"\n\
         [[node]]\nname = \"cam\"\nkind = \"testsrc\"\nwidth = {WIDTH}\nheight = {HEIGHT}\n\
         [[node]]\nname = \"h264\"\nkind = \"encode\"\nlisten_to = \"cam\"\ncodec = \"h264\"\nkeyint = 30\n",
        root.display()
    );
    let server = Server::start(Config::parse(&text, "latency.toml").unwrap()).unwrap();
    server.serve().unwrap();
    let addr = server.rtsp_address().unwrap();
    // Capture times by frame number, and the encoder's own delay.
    let captured: Arc<Mutex<HashMap<u32, SystemTime>>> = Arc::default();
    let encoder_ms: Arc<Mutex<Vec<f64>>> = Arc::default();
    let cam = server.hub().subscribe("cam", SubscribeOptions::leaky(64));
    let coded = server.hub().subscribe("h264", SubscribeOptions::leaky(64));
    let (c, e) = (Arc::clone(&captured), Arc::clone(&encoder_ms));
    std::thread::spawn(move || {
        while let Some(item) = cam.recv() {
            if let Item::Frame(f) = item {
                c.lock().unwrap().insert(f.seq as u32, f.capture_utc);
            }
        }
    });
    std::thread::spawn(move || {
        while let Some(item) = coded.recv() {
            if let Item::Packet(p) = item
                && let Ok(d) = SystemTime::now().duration_since(p.capture_utc)
            {
                e.lock().unwrap().push(d.as_secs_f64() * 1e3);
            }
        }
    });
    let info = VideoInfo::new(PixelFormat::Nv12, WIDTH, HEIGHT, Fps::new(30, 1).unwrap()).unwrap();
    let size = (WIDTH * HEIGHT * 3 / 2) as usize;
    for transport in ["tcp", "udp"] {
        encoder_ms.lock().unwrap().clear();
        let url = format!("rtsp://{addr}/h264");
        let frames = frames.to_string();
        // Low delay; every decoded picture written once, as it comes (no rate conversion).
        let args = [
            "-nostdin",
            "-v",
            "error",
            "-fflags",
            "nobuffer",
            "-flags",
            "low_delay",
            "-probesize",
            "32",
            "-analyzeduration",
            "0",
            "-rtsp_transport",
            transport,
            "-i",
            &url,
            "-frames:v",
            &frames,
            "-vsync",
            "passthrough",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "nv12",
            "-",
        ];
        let mut child = Command::new("ffmpeg")
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("ffmpeg runs");
        let mut out = child.stdout.take().unwrap();
        let mut buf = vec![0u8; size];
        let mut ms = Vec::new();
        let mut unread = 0;
        let mut last = None;
        while out.read_exact(&mut buf).is_ok() {
            let now = SystemTime::now();
            let Some(s) = stamp::read(&info, &buf) else {
                unread += 1;
                continue;
            };
            // A picture counts once, when it first shows.
            if last.is_some_and(|l| s.frame <= l) {
                continue;
            }
            last = Some(s.frame);
            if let Some(t) = captured.lock().unwrap().get(&s.frame)
                && let Ok(d) = now.duration_since(*t)
            {
                ms.push(d.as_secs_f64() * 1e3);
            }
        }
        let _ = child.wait();
        // The first frames waited for the session and a keyframe: skip a second of them.
        let steady: Vec<f64> = ms.iter().skip(30).copied().collect();
        let median_of = |v: &[f64]| {
            let mut v = v.to_vec();
            v.sort_by(f64::total_cmp);
            v.get(v.len() / 2).copied().unwrap_or(0.0)
        };
        let encoder = encoder_ms.lock().unwrap().clone();
        println!(
            "{transport}: capture → decoded picture: {}; encoder alone: {}; beyond the encoder (medians): {:.1} ms; unreadable stamps: {unread}",
            summary(steady.clone()),
            summary(encoder.clone()),
            median_of(&steady) - median_of(&encoder),
        );
    }
    server.shutdown();
    let _ = std::fs::remove_dir_all(&root);
}

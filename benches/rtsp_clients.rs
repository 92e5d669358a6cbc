//! Light RTSP clients for benches/compare_rtsp_serve.sh: N sessions over TCP
//! (DESCRIBE, SETUP interleaved, PLAY) that count the interleaved RTP bytes
//! and packets they receive and the sequence numbers missing, without
//! decoding anything, so the server's CPU is what a run measures. One
//! thread, one tokio runtime for all of them.
//!
//!   cargo bench --bench rtsp_clients -- N URL SECONDS
//!
//! Clients arrive 4 ms apart. Prints one JSON line: clients connected, bytes,
//! packets, lost packets, the slowest client's share of the median client's
//! bytes, and how many got at least 90% of the median.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Default, Clone, Copy)]
struct Count {
    bytes: u64,
    packets: u64,
    lost: u64,
}

/// Reads one RTSP response (head and body) from `s`, keeping what follows in
/// `buf`. Interleaved frames before it are skipped: a shared GStreamer media
/// sends them before it answers PLAY.
async fn response(s: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<String> {
    loop {
        while buf.len() >= 4 && buf[0] == b'$' {
            let len = 4 + usize::from(u16::from_be_bytes([buf[2], buf[3]]));
            if buf.len() < len {
                break;
            }
            buf.drain(..len);
        }
        if buf.first() == Some(&b'$') {
            let mut chunk = [0u8; 4096];
            let n = s.read(&mut chunk).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            buf.extend_from_slice(&chunk[..n]);
            continue;
        }
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end + 4]).into_owned();
            let body = head
                .lines()
                .find_map(|l| {
                    l.strip_prefix("Content-Length:")
                        .or_else(|| l.strip_prefix("content-length:"))
                })
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            while buf.len() < end + 4 + body {
                let mut chunk = [0u8; 4096];
                let n = s.read(&mut chunk).await?;
                if n == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            buf.drain(..end + 4 + body);
            if !head.starts_with("RTSP/1.0 200") {
                return Err(std::io::Error::other(
                    head.lines().next().unwrap_or_default().to_owned(),
                ));
            }
            return Ok(head);
        }
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

async fn client(url: String, until: Instant) -> std::io::Result<Count> {
    let host = url
        .trim_start_matches("rtsp://")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    let mut s = TcpStream::connect(&host).await?;
    let mut buf = Vec::new();
    s.write_all(format!("DESCRIBE {url} RTSP/1.0\r\nCSeq: 1\r\nAccept: application/sdp\r\n\r\n").as_bytes())
        .await?;
    let head = response(&mut s, &mut buf).await?;
    let base = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Base:"))
        .map_or(format!("{url}/"), |b| b.trim().to_owned());
    // Both servers name the track from the base: Eyrie `trackID=0`, GStreamer `stream=0`.
    let mut session = None;
    for track in ["trackID=0", "stream=0"] {
        let setup = format!(
            "SETUP {base}{track} RTSP/1.0\r\nCSeq: 2\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n"
        );
        s.write_all(setup.as_bytes()).await?;
        if let Ok(head) = response(&mut s, &mut buf).await {
            session = head
                .lines()
                .find_map(|l| l.strip_prefix("Session:"))
                .map(|v| v.split(';').next().unwrap_or_default().trim().to_owned());
            break;
        }
    }
    let session = session.ok_or_else(|| std::io::Error::other("SETUP refused"))?;
    s.write_all(format!("PLAY {base} RTSP/1.0\r\nCSeq: 3\r\nSession: {session}\r\nRange: npt=now-\r\n\r\n").as_bytes())
        .await?;
    response(&mut s, &mut buf).await?;
    let mut count = Count::default();
    let mut last_seq: Option<u16> = None;
    let mut data = vec![0u8; 1 << 16];
    let mut pending = buf;
    while Instant::now() < until {
        // Walk whole interleaved frames; keep a partial one for the next read.
        let mut at = 0;
        while pending.len() >= at + 4 && pending[at] == b'$' {
            let len = usize::from(u16::from_be_bytes([pending[at + 2], pending[at + 3]]));
            if pending.len() < at + 4 + len {
                break;
            }
            if pending[at + 1] == 0 && len >= 12 {
                let seq = u16::from_be_bytes([pending[at + 6], pending[at + 7]]);
                if let Some(l) = last_seq {
                    count.lost += u64::from(seq.wrapping_sub(l).wrapping_sub(1).min(1000));
                }
                last_seq = Some(seq);
                count.packets += 1;
                count.bytes += len as u64;
            }
            at += 4 + len;
        }
        if pending.get(at).is_some_and(|b| *b != b'$') {
            // An RTSP message (a server's keep-alive answer): skip to the next frame.
            at += pending[at..]
                .iter()
                .position(|b| *b == b'$')
                .unwrap_or(pending.len() - at);
        }
        pending.drain(..at);
        let left = until.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.read(&mut data)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => pending.extend_from_slice(&data[..n]),
            Err(_) => break,
        }
    }
    Ok(count)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let [n, url, secs] = &args[..] else {
        eprintln!("usage: rtsp_clients N URL SECONDS");
        std::process::exit(2);
    };
    let n: usize = n.parse().expect("N");
    let secs: f64 = secs.parse().expect("SECONDS");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let counts = runtime.block_on(async {
        let until = Instant::now() + Duration::from_secs_f64(secs);
        // Clients arrive 4 ms apart, as viewers do (not all in one instant).
        let tasks: Vec<_> = (0..n)
            .map(|i| {
                let url = url.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(4 * i as u64)).await;
                    client(url, until).await
                })
            })
            .collect();
        let mut counts = Vec::new();
        for t in tasks {
            counts.push(t.await.unwrap());
        }
        counts
    });
    let ok: Vec<Count> = counts.iter().filter_map(|c| c.as_ref().ok().copied()).collect();
    let errors: Vec<String> = counts
        .iter()
        .filter_map(|c| c.as_ref().err().map(|e| e.to_string()))
        .collect();
    let mut bytes: Vec<u64> = ok.iter().map(|c| c.bytes).collect();
    bytes.sort_unstable();
    let median = bytes.get(bytes.len() / 2).copied().unwrap_or(0).max(1);
    let summary = serde_json::json!({
        "clients": ok.len(),
        "failed": errors.len(),
        "bytes": ok.iter().map(|c| c.bytes).sum::<u64>(),
        "packets": ok.iter().map(|c| c.packets).sum::<u64>(),
        "lost": ok.iter().map(|c| c.lost).sum::<u64>(),
        "slowest_share": bytes.first().copied().unwrap_or(0) as f64 / median as f64,
        // Clients that got at least 90% of what the median client got.
        "served": bytes.iter().filter(|b| **b * 10 >= median * 9).count(),
        "first_error": errors.first().cloned().unwrap_or_default(),
    });
    println!("{summary}");
}

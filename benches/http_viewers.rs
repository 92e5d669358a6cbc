//! Light HTTP viewers for benches/http_load.sh: WebSocket (fMP4) viewers,
//! LL-HLS pollers (blocking playlist reload, then the hinted part), MJPEG
//! viewers and stuck clients that never read, all counting bytes and
//! pictures without decoding anything, so the server's CPU is what a run
//! measures. One thread, one tokio runtime for all of them.
//!
//!   cargo bench --bench http_viewers -- ADDR SECONDS [ws=N] [hls=N] [mjpeg=N] [stuck=N] [coded=h264] [raw=cam0]
//!
//! Viewers arrive 5 ms apart. Prints one JSON line per kind: viewers that
//! connected, pictures (WebSocket fragments, LL-HLS parts, JPEGs) and bytes,
//! the median viewer's pictures per second, and the slowest viewer's.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

#[derive(Default, Clone, Copy)]
struct Count {
    connected: bool,
    pictures: u64,
    bytes: u64,
}

/// Reads one response with a body of known length (keep-alive): (status, head, body).
async fn response(s: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<(u16, String, Vec<u8>)> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
            let len = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().to_owned())
                })
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                let mut chunk = [0u8; 65536];
                let n = s.read(&mut chunk).await?;
                if n == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let body = buf[end + 4..end + 4 + len].to_vec();
            buf.drain(..end + 4 + len);
            return Ok((status, head, body));
        }
        let mut chunk = [0u8; 65536];
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

async fn ws_viewer(addr: SocketAddr, stream: String, until: Instant) -> Count {
    let mut c = Count::default();
    let Ok((mut ws, _)) = tokio_tungstenite::connect_async(format!("ws://{addr}/{stream}/ws")).await else {
        return c;
    };
    c.connected = true;
    while let Ok(Some(Ok(m))) = tokio::time::timeout_at(until.into(), ws.next()).await {
        if let Message::Binary(b) = m {
            c.pictures += 1;
            c.bytes += b.len() as u64;
        }
    }
    c
}

async fn hls_poller(addr: SocketAddr, stream: String, until: Instant) -> Count {
    let mut c = Count::default();
    let Ok(mut s) = TcpStream::connect(addr).await else {
        return c;
    };
    let mut buf = Vec::new();
    let mut ask = format!("/{stream}/media.m3u8");
    let work = async {
        loop {
            let request = format!("GET {ask} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
            s.write_all(request.as_bytes()).await?;
            let (status, _, playlist) = response(&mut s, &mut buf).await?;
            if status != 200 {
                return Ok::<_, std::io::Error>(());
            }
            c.connected = true;
            let text = String::from_utf8_lossy(&playlist);
            let Some(hint) = text
                .lines()
                .find_map(|l| l.strip_prefix("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\""))
                .map(|h| h.trim_end_matches('"').to_owned())
            else {
                return Ok(());
            };
            // The hinted part is held until it exists; then the playlist that lists it.
            s.write_all(format!("GET /{stream}/{hint} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
                .await?;
            let (status, _, part) = response(&mut s, &mut buf).await?;
            if status == 200 {
                c.pictures += 1;
                c.bytes += part.len() as u64;
            }
            let (msn, p) = hint
                .trim_start_matches("part/")
                .trim_end_matches(".m4s")
                .split_once('.')
                .unwrap_or(("0", "0"));
            ask = format!("/{stream}/media.m3u8?_HLS_msn={msn}&_HLS_part={p}");
        }
    };
    let _ = tokio::time::timeout_at(until.into(), work).await;
    c
}

async fn mjpeg_viewer(addr: SocketAddr, stream: String, until: Instant) -> Count {
    let mut c = Count::default();
    let Ok(mut s) = TcpStream::connect(addr).await else {
        return c;
    };
    if s.write_all(format!("GET /{stream}/mjpeg HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .await
        .is_err()
    {
        return c;
    }
    c.connected = true;
    let mut chunk = vec![0u8; 65536];
    let mut tail = [0u8; 2];
    while let Ok(Ok(n)) = tokio::time::timeout_at(until.into(), s.read(&mut chunk)).await {
        if n == 0 {
            break;
        }
        c.bytes += n as u64;
        // Each part ends with a JPEG's end marker (found across reads too).
        let joined = [&tail[..], &chunk[..n]].concat();
        c.pictures += joined.windows(2).filter(|w| w == &[0xFF, 0xD9]).count() as u64;
        tail.copy_from_slice(&joined[joined.len() - 2..]);
    }
    c
}

async fn stuck_client(addr: SocketAddr, path: String, until: Instant) -> Count {
    let mut c = Count::default();
    if let Ok(mut s) = TcpStream::connect(addr).await
        && s.write_all(format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
            .await
            .is_ok()
    {
        c.connected = true;
        // Never reads: waits until the end (or until the server hangs up is not seen).
        tokio::time::sleep_until(until.into()).await;
    }
    c
}

fn report(kind: &str, counts: &[Count], seconds: f64) {
    if counts.is_empty() {
        return;
    }
    let mut rates: Vec<f64> = counts.iter().map(|c| c.pictures as f64 / seconds).collect();
    rates.sort_by(f64::total_cmp);
    let median = rates[rates.len() / 2];
    println!(
        "{{\"kind\":\"{kind}\",\"viewers\":{},\"connected\":{},\"pictures\":{},\"bytes\":{},\"median_per_s\":{median:.2},\"slowest_per_s\":{:.2}}}",
        counts.len(),
        counts.iter().filter(|c| c.connected).count(),
        counts.iter().map(|c| c.pictures).sum::<u64>(),
        counts.iter().map(|c| c.bytes).sum::<u64>(),
        rates[0],
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let (Some(addr), Some(seconds)) = (
        args.first().and_then(|a| a.parse::<SocketAddr>().ok()),
        args.get(1).and_then(|s| s.parse::<f64>().ok()),
    ) else {
        eprintln!("usage: http_viewers ADDR SECONDS [ws=N] [hls=N] [mjpeg=N] [stuck=N] [coded=h264] [raw=cam0]");
        std::process::exit(2);
    };
    let opt = |key: &str, default: &str| {
        args.iter()
            .find_map(|a| a.strip_prefix(&format!("{key}=")).map(str::to_owned))
            .unwrap_or_else(|| default.to_owned())
    };
    let n = |key: &str| opt(key, "0").parse::<usize>().unwrap_or(0);
    let (coded, raw) = (opt("coded", "h264"), opt("raw", "cam0"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let until = Instant::now() + Duration::from_secs_f64(seconds);
        let mut tasks: Vec<(&str, tokio::task::JoinHandle<Count>)> = Vec::new();
        let kinds = [
            ("ws", n("ws")),
            ("hls", n("hls")),
            ("mjpeg", n("mjpeg")),
            ("stuck", n("stuck")),
        ];
        let total: usize = kinds.iter().map(|(_, n)| n).sum();
        for i in 0..total {
            // Interleave the kinds so each sees the server under the same load.
            let mut k = i;
            let kind = kinds
                .iter()
                .find_map(|(kind, count)| {
                    if k < *count {
                        Some(*kind)
                    } else {
                        k -= count;
                        None
                    }
                })
                .unwrap();
            let task = match kind {
                "ws" => tokio::spawn(ws_viewer(addr, coded.clone(), until)),
                "hls" => tokio::spawn(hls_poller(addr, coded.clone(), until)),
                "mjpeg" => tokio::spawn(mjpeg_viewer(addr, raw.clone(), until)),
                _ => {
                    let path = if i % 2 == 0 {
                        format!("/{coded}/live.mp4")
                    } else {
                        format!("/{raw}/mjpeg")
                    };
                    tokio::spawn(stuck_client(addr, path, until))
                }
            };
            tasks.push((kind, task));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let mut by_kind: std::collections::BTreeMap<&str, Vec<Count>> = Default::default();
        for (kind, t) in tasks {
            by_kind.entry(kind).or_default().push(t.await.unwrap_or_default());
        }
        for (kind, counts) in &by_kind {
            report(kind, counts, seconds);
        }
    });
}

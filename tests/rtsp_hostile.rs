//! Hostile cameras: RTSP servers written here to misbehave — an endless
//! header line, a huge body, pictures whose fragments never end (over TCP
//! and UDP), floods on an unused and on the used interleaved channel,
//! garbage RTP, a server that never answers. Each must cost the process at
//! most 32 MiB of resident memory over its baseline at any moment (sampled
//! from /proc/self/status), fail with an error that names the camera and the
//! limit without its password, and be reconnected with backoff.
//!
//! Every fake server binds 127.0.0.1 and stops by itself: each connection
//! ends when the client goes or after `ATTACK_LIMIT`.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use eyrie::config::Config;
use eyrie::hub::Hub;
use eyrie::media::MonotonicClock;
use eyrie::server::{NodeState, Server};

const ATTACK_LIMIT: Duration = Duration::from_secs(20);
const BUDGET: u64 = 32 << 20;
/// The SPS and PPS of a 320×240 H.264 stream (the limit falls to 512 KiB).
const SPROP: &str = "Z0LADdkBQfsBEAAAAwAQAAADA8DxQqSA,aMuDyyA=";

#[derive(Clone, Copy, Debug, PartialEq)]
enum Attack {
    EndlessHeader,
    HugeBody,
    EndlessFragments,
    EndlessFragmentsUdp,
    UnusedChannelFlood,
    GarbageRtp,
    Silent,
}

/// Starts a camera that answers with `attack`; returns its port.
fn hostile(attack: Attack) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { break };
            std::thread::spawn(move || {
                let _ = session(conn, attack, port);
            });
        }
    });
    port
}

/// One request's head, or `None` at the end of the connection.
fn request(s: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte).ok()? == 0 || head.len() > 8192 {
            return None;
        }
        head.push(byte[0]);
    }
    Some(String::from_utf8_lossy(&head).into_owned())
}

fn header<'a>(head: &'a str, name: &str) -> &'a str {
    head.lines()
        .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case(name)))
        .map_or("", |(_, v)| v.trim())
}

/// Writes `chunk` again and again until the client goes or the time is up.
fn endless(s: &mut TcpStream, mut chunk: impl FnMut() -> Vec<u8>) {
    let until = Instant::now() + ATTACK_LIMIT;
    while Instant::now() < until && s.write_all(&chunk()).is_ok() {}
}

/// An RTP packet carrying an FU-A fragment (RFC 6184 §5.8) of an IDR slice
/// that is never finished: same timestamp, no marker, no end bit.
fn fragment(seq: u16, first: bool) -> Vec<u8> {
    let mut p = vec![0x80, 96];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&3000u32.to_be_bytes());
    p.extend_from_slice(&0x1234_5678u32.to_be_bytes());
    p.extend_from_slice(&[0x7c, if first { 0x85 } else { 0x05 }]);
    p.resize(1400, 0x42);
    p
}

fn interleaved(channel: u8, packet: &[u8]) -> Vec<u8> {
    let mut f = vec![b'$', channel];
    f.extend_from_slice(&(packet.len() as u16).to_be_bytes());
    f.extend_from_slice(packet);
    f
}

fn session(mut s: TcpStream, attack: Attack, port: u16) -> std::io::Result<()> {
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut udp_client: Option<u16> = None;
    let udp = UdpSocket::bind("127.0.0.1:0")?;
    let mut seq = 0u16;
    let mut next_seq = || {
        seq = seq.wrapping_add(1);
        seq
    };
    while let Some(head) = request(&mut s) {
        let method = head.split(' ').next().unwrap_or("").to_string();
        let cseq = header(&head, "CSeq").to_string();
        let ok = |extra: &str, body: &str| {
            format!(
                "RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\n{extra}Content-Length: {}\r\n\r\n{body}",
                body.len()
            )
        };
        if attack == Attack::Silent {
            continue;
        }
        match method.as_str() {
            "DESCRIBE" if attack == Attack::EndlessHeader => {
                s.write_all(format!("RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nX-Junk: ").as_bytes())?;
                endless(&mut s, || vec![b'a'; 65536]);
                return Ok(());
            }
            "DESCRIBE" if attack == Attack::HugeBody => {
                let head = format!("RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nContent-Length: 4000000000\r\n\r\n");
                s.write_all(head.as_bytes())?;
                endless(&mut s, || vec![b'v'; 65536]);
                return Ok(());
            }
            "DESCRIBE" => {
                let sdp = format!(
                    "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=hostile\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\n\
                     c=IN IP4 0.0.0.0\r\na=rtpmap:96 H264/90000\r\n\
                     a=fmtp:96 packetization-mode=1;profile-level-id=42c00d;sprop-parameter-sets={SPROP}\r\n\
                     a=control:track1\r\n"
                );
                let base = format!("Content-Base: rtsp://127.0.0.1:{port}/cam/\r\nContent-Type: application/sdp\r\n");
                s.write_all(ok(&base, &sdp).as_bytes())?;
            }
            "SETUP" => {
                let transport = header(&head, "Transport");
                let reply = match transport.split(';').find_map(|p| p.strip_prefix("client_port=")) {
                    Some(ports) => {
                        udp_client = ports.split('-').next().and_then(|p| p.parse().ok());
                        let server = udp.local_addr()?.port();
                        format!(
                            "RTP/AVP;unicast;{};server_port={server}-{}",
                            &transport[transport.find("client_port").unwrap()..],
                            server + 1
                        )
                    }
                    None => "RTP/AVP/TCP;unicast;interleaved=0-1".to_string(),
                };
                s.write_all(ok(&format!("Transport: {reply}\r\nSession: 4242;timeout=60\r\n"), "").as_bytes())?;
            }
            "PLAY" => {
                s.write_all(ok("Session: 4242\r\n", "").as_bytes())?;
                match attack {
                    Attack::EndlessFragments => {
                        let mut first = true;
                        endless(&mut s, || {
                            interleaved(0, &fragment(next_seq(), std::mem::take(&mut first)))
                        });
                        return Ok(());
                    }
                    Attack::UnusedChannelFlood => {
                        endless(&mut s, || interleaved(7, &[0x80; 65535]));
                        return Ok(());
                    }
                    Attack::GarbageRtp => {
                        let mut x = 0x9e37_79b9u32;
                        endless(&mut s, || {
                            let junk: Vec<u8> = (0..1000)
                                .map(|_| {
                                    x ^= x << 13;
                                    x ^= x >> 17;
                                    x ^= x << 5;
                                    x as u8
                                })
                                .collect();
                            interleaved(0, &junk)
                        });
                        return Ok(());
                    }
                    Attack::EndlessFragmentsUdp => {
                        let to = ("127.0.0.1", udp_client.expect("a UDP SETUP came first"));
                        let done = Arc::new(AtomicBool::new(false));
                        let flood = {
                            let (udp, done) = (udp.try_clone()?, Arc::clone(&done));
                            std::thread::spawn(move || {
                                let until = Instant::now() + ATTACK_LIMIT;
                                let mut seq = 0u16;
                                while !done.load(Ordering::Relaxed) && Instant::now() < until {
                                    seq = seq.wrapping_add(1);
                                    let _ = udp.send_to(&fragment(seq, seq == 1), to);
                                }
                            })
                        };
                        // Until the client hangs up (or sends TEARDOWN).
                        while request(&mut s).is_some_and(|h| !h.starts_with("TEARDOWN")) {}
                        done.store(true, Ordering::Relaxed);
                        flood.join().unwrap();
                        return Ok(());
                    }
                    _ => {}
                }
            }
            _ => s.write_all(ok("", "").as_bytes())?,
        }
    }
    Ok(())
}

/// The process's resident memory in bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = header(&status, "VmRSS").trim_end_matches(" kB").trim().parse().unwrap();
    kb * 1024
}

/// Runs one hostile camera until it has been reconnected three times;
/// returns its error and the peak resident memory over the baseline.
fn attack(attack: Attack, transport: &str) -> (String, u64) {
    let port = hostile(attack);
    let text = format!(
        "[[node]]\nname = \"cam\"\nkind = \"rtsp\"\nurl = \"rtsp://admin:hunter2@127.0.0.1:{port}/cam\"\n\
         transport = \"{transport}\"\nstall_secs = 1\nretry_max_secs = 1\n"
    );
    let baseline = rss();
    let peak = Arc::new(AtomicU64::new(baseline));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (peak, sampling) = (Arc::clone(&peak), Arc::clone(&sampling));
        std::thread::spawn(move || {
            while sampling.load(Ordering::Relaxed) {
                peak.fetch_max(rss(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let config = Config::parse(&text, "<test>").unwrap();
    let server = Server::start_with(config, Hub::new(), Arc::new(MonotonicClock::new())).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let (error, reconnects) = loop {
        let stats = server.stats();
        let cam = stats.nodes.iter().find(|n| n.name == "cam").unwrap();
        if cam.reconnects >= 3 && cam.state == NodeState::Reconnecting {
            break (cam.error.clone().unwrap(), cam.reconnects);
        }
        assert!(
            Instant::now() < deadline,
            "{attack:?}: not reconnected three times ({} MiB over the baseline): {cam:?}",
            peak.load(Ordering::Relaxed).saturating_sub(baseline) >> 20
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    server.shutdown();
    sampling.store(false, Ordering::Relaxed);
    sampler.join().unwrap();
    let over = peak.load(Ordering::Relaxed).saturating_sub(baseline);
    eprintln!(
        "{attack:?} over {transport}: peak {:.1} MiB over the baseline, {reconnects} reconnects: {error}",
        over as f64 / (1 << 20) as f64
    );
    assert!(
        error.contains(&format!("127.0.0.1:{port}")),
        "{attack:?}: names the camera: {error}"
    );
    assert!(!error.contains("hunter2"), "{attack:?}: shows the password: {error}");
    (error, over)
}

#[test]
fn hostile_cameras_cost_at_most_32_mib_each_and_are_reconnected_with_the_limit_named() {
    let cases = [
        (Attack::EndlessHeader, "tcp", "an RTSP message over 65536 bytes"),
        (Attack::HugeBody, "tcp", "an RTSP message over 65536 bytes"),
        (Attack::EndlessFragments, "tcp", "a picture of more than 524288 bytes"),
        (
            Attack::EndlessFragmentsUdp,
            "udp",
            "a picture of more than 524288 bytes",
        ),
        (Attack::UnusedChannelFlood, "tcp", ""),
        (Attack::GarbageRtp, "tcp", ""),
        (Attack::Silent, "tcp", "no answer for 1.0 s"),
    ];
    let mut worst = 0;
    for (kind, transport, expected) in cases {
        let (error, over) = attack(kind, transport);
        assert!(error.contains(expected), "{kind:?}: {error}");
        assert!(over <= BUDGET, "{kind:?}: {over} bytes over the baseline");
        worst = worst.max(over);
    }
    eprintln!("worst: {:.1} MiB", worst as f64 / (1 << 20) as f64);
}

//! GStreamer's RTSP server (tests/rtsp/server.py) as the camera of RTSP tests.

use std::io::BufRead;
use std::io::BufReader;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The password the server asks for, and as it appears in a URL.
pub const PASSWORD: &str = "s@cr:t/pw";
const PASSWORD_IN_URL: &str = "s%40cr%3At%2Fpw";

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// What the server says it sent one client of a mount.
#[derive(Debug, serde::Deserialize)]
pub struct Served {
    pub mount: String,
    pub frames: usize,
    pub keyframes: Vec<usize>,
}

/// tests/rtsp/server.py, running until dropped.
pub struct GstServer {
    child: Child,
    pub port: u16,
    lines: mpsc::Receiver<String>,
}

impl GstServer {
    pub fn start(port: u16, args: &[&str]) -> GstServer {
        let mut child = Command::new("/usr/bin/python3")
            .arg("tests/rtsp/server.py")
            .args(["--port", &port.to_string()])
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("/usr/bin/python3 runs (scripts/test.sh installs python3-gi and GStreamer's RTSP server)");
        let (tx, lines) = mpsc::channel();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let ready = lines
            .recv_timeout(Duration::from_secs(20))
            .expect("the RTSP server starts");
        assert_eq!(ready, format!("ready {port}"));
        GstServer { child, port, lines }
    }

    pub fn url(&self, mount: &str, transport: &str) -> String {
        format!(
            "rtsp://admin:{PASSWORD_IN_URL}@127.0.0.1:{}/{mount}?transport={transport}",
            self.port
        )
    }

    /// The next end-of-stream report.
    pub fn served(&self) -> Served {
        let line = self
            .lines
            .recv_timeout(Duration::from_secs(60))
            .expect("the server reports what it sent");
        serde_json::from_str(&line).unwrap()
    }

    pub fn signal(&self, signal: &str) {
        let ok = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }
}

impl Drop for GstServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

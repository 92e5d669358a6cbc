//! HTTPS and RTSPS with a certificate `eyrie cert` made, judged by
//! independent clients: curl verifies the chain (`--cacert`), FFmpeg plays
//! `rtsps://` and decodes it strictly, `eyrie ctl` signs in over https;
//! a client that speaks plain text or never finishes its handshake holds
//! nothing; a renewed certificate is taken on reload.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::ff::{Dir, decode_strict, tool};
use eyrie::config::Config;
use eyrie::server::Server;
use serde_json::Value;

/// `eyrie cert ARGS`: (success, stdout, stderr).
fn cert(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_eyrie"))
        .arg("cert")
        .args(args)
        .output()
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

/// `curl` of `url` signed in as admin, trusting `cacert` when given: (exit code, body).
fn curl(url: &str, cacert: Option<&Path>) -> (i32, String) {
    let mut command = tool("curl");
    command.args(["-sS", "--max-time", "20", "-u", "admin:pw", url]);
    if let Some(ca) = cacert {
        command.arg("--cacert").arg(ca);
    }
    let out = command.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn https_and_rtsps_serve_with_a_certificate_eyrie_cert_made() {
    let dir = Dir::new();
    let pair = dir.file("pair");
    let (ok, table, said) = cert(&["--out", pair.to_str().unwrap()]);
    assert!(ok, "{said}");
    assert!(said.contains("SHA-256 fingerprint"), "{said}");
    let key = pair.join("key.pem");
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&key).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "the key is the owner's only");
    // A second run does not overwrite what is there.
    let (ok, _, said) = cert(&["--out", pair.to_str().unwrap()]);
    assert!(!ok && said.contains("exists"), "{said}");

    // The printed table is a config as it stands; here on free ports, with a user.
    Config::parse(&table, "printed.toml").unwrap_or_else(|e| panic!("{e}\n{table}"));
    let line = |k: &str| table.lines().find(|l| l.starts_with(&format!("{k} = "))).unwrap();
    let text = format!(
        "[server]\nmedia_root = \"{}\"\n[[server.users]]\nname = \"admin\"\npassword = \"pw\"\nrole = \"admin\"\n\
         [server.tls]\n{}\n{}\n[server.rtsp]\ntls = true\nlisten = \"127.0.0.1:0\"\n\
         [server.http]\ntls = true\nlisten = \"127.0.0.1:0\"\nheader_timeout = 1.0\n\
         [[node]]\nname = \"cam\"\nkind = \"testsrc\"\nwidth = 320\nheight = 240\n\
         [[node]]\nname = \"enc\"\nkind = \"encode\"\nlisten_to = \"cam\"\nkeyint = 30\n",
        dir.file("media").display(),
        line("cert"),
        line("key")
    );
    let config = Config::parse(&text, "tls.toml").unwrap_or_else(|e| panic!("{e}\n{text}"));
    let server = Server::start(config).unwrap();
    server.serve().unwrap();
    let http = server.http_address().unwrap();
    let https = format!("https://{http}");
    let ca = pair.join("cert.pem");

    // curl verifies the chain with the certificate, and refuses without it.
    let (code, body) = curl(&format!("{https}/api/v1/streams"), Some(&ca));
    assert_eq!(code, 0, "{body}");
    let streams: Value = serde_json::from_str(&body).unwrap();
    let rtsps = streams["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "enc")
        .and_then(|s| s["urls"]["rtsp"].as_str())
        .unwrap_or_else(|| panic!("{body}"))
        .to_owned();
    assert!(rtsps.starts_with("rtsps://127.0.0.1:"), "{rtsps}");
    let (code, _) = curl(&format!("{https}/api/v1/streams"), None);
    assert_eq!(code, 60, "an unknown issuer is refused by curl");
    // Over HTTPS the credentials still matter.
    let out = tool("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
        .arg(&ca)
        .arg(format!("{https}/api/v1/nodes"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "401");

    // FFmpeg plays RTSPS (interleaved in the TLS connection); what it got decodes strictly.
    let with_user = rtsps.replacen("rtsps://", "rtsps://admin:pw@", 1);
    let out = dir.file("rtsps.mp4");
    let status = tool("ffmpeg")
        .args(["-v", "error", "-y", "-i", &with_user, "-frames:v", "30", "-c", "copy"])
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success(), "ffmpeg {rtsps}");
    decode_strict(&out).unwrap();
    let probe = tool("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name",
            "-of",
            "csv=p=0",
            &with_user,
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&probe.stdout).trim(), "h264");

    // eyrie ctl signs in and lists over https with --cacert, and says why without.
    let (ok, token, said) = common::eyrie_ctl(
        &https,
        None,
        &["--cacert", ca.to_str().unwrap(), "login", "admin"],
        "pw\n",
    );
    assert!(ok, "{said}");
    let (ok, table, said) = common::eyrie_ctl(
        &https,
        Some(token.trim()),
        &["--cacert", ca.to_str().unwrap(), "nodes"],
        "",
    );
    assert!(ok && table.contains("enc"), "{table}{said}");
    let (ok, _, said) = common::eyrie_ctl(&https, Some(token.trim()), &["nodes"], "");
    assert!(!ok && said.to_lowercase().contains("certificate"), "{said}");

    // Plain HTTP to the HTTPS port, and a client that never finishes its
    // handshake: no answer, the connection closed, counted.
    let mut plain = TcpStream::connect(http).unwrap();
    plain.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    plain
        .write_all(b"GET /api/v1/streams HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer);
    assert!(!answer.starts_with(b"HTTP/"), "{}", String::from_utf8_lossy(&answer));
    let mut silent = TcpStream::connect(http).unwrap();
    silent.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut buf = [0u8; 16];
    let read = silent.read(&mut buf);
    assert!(
        matches!(read, Ok(0))
            || read
                .as_ref()
                .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
        "a silent client is closed after header_timeout: {read:?}"
    );
    let stats = server.stats();
    assert!(stats.http.as_ref().unwrap().handshakes_failed >= 2, "{:?}", stats.http);

    // A renewed certificate is taken on reload; the old one is no longer trusted for it.
    let old = std::fs::read(&ca).unwrap();
    let (ok, _, said) = cert(&["--out", pair.to_str().unwrap(), "--force", "--days", "30"]);
    assert!(ok, "{said}");
    let fingerprint = server.reload_certificate().unwrap().unwrap();
    assert!(said.contains(&fingerprint), "{said} / {fingerprint}");
    let (code, _) = curl(&format!("{https}/api/v1/streams"), Some(&ca));
    assert_eq!(code, 0);
    let stale = dir.file("old.pem");
    std::fs::write(&stale, old).unwrap();
    let (code, _) = curl(&format!("{https}/api/v1/streams"), Some(&stale));
    assert_eq!(code, 60);
    server.shutdown();
}

#[test]
fn tls_without_a_certificate_is_a_config_error_naming_the_key() {
    for listener in ["http", "rtsp"] {
        let text = format!("[server.{listener}]\ntls = true\n");
        let e = Config::parse(&text, "x.toml").unwrap_err().to_string();
        assert!(
            e.contains(&format!("server.{listener}.tls")) && e.contains("eyrie cert"),
            "{e}"
        );
    }
    let e = Config::parse("[server.tls]\ncert = \"c.pem\"\n", "x.toml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("server.tls.key"), "{e}");
    // A configured file that is not there stops the start, naming it.
    let dir = Dir::new();
    let text = format!(
        "[server]\nmedia_root = \"{}\"\n[server.tls]\ncert = \"{}\"\nkey = \"{}\"\n[server.rtsp]\nenabled = false\n\
         [server.http]\nlisten = \"127.0.0.1:0\"\ntls = true\n",
        dir.file("media").display(),
        dir.file("none.pem").display(),
        dir.file("none.key").display()
    );
    let server = Server::start(Config::parse(&text, "x.toml").unwrap()).unwrap();
    let e = server.serve().unwrap_err().to_string();
    assert!(e.contains("server.tls.cert") && e.contains("none.pem"), "{e}");
    server.shutdown();
}

//! Camera URIs — `eyrie run --camera URI` — turned into the same node tables
//! a config file holds, so a URI's keys are the node's keys, with the same
//! checks and the same error messages:
//!
//! | URI | node |
//! |---|---|
//! | `testsrc://?size=1280x720&fps=30&seed=7` | `testsrc` |
//! | `v4l2:///dev/video0?format=NV12&size=640x480&fps=30` | `v4l2`, `device` = the path |
//! | `rtsp://user:pass@host/path?transport=tcp` | `rtsp`, `url` = the URI without Eyrie's keys |
//! | `file:///path/clip.mp4?loop=1` | `file`, `path` = the path |
//!
//! Query keys are the node's keys, plus `size=WxH` for `width` and `height`.
//! `loop` and `live` take `1`/`0` as well as `true`/`false`; `quirks` is a
//! comma-separated list. An RTSP URI keeps the query keys that are not
//! Eyrie's (`transport`, `stall_secs`, `retry_max_secs`, `quirks`): they
//! belong to the camera.

use std::path::Path;

use super::{Config, ConfigError, NodeProps, NodeSpec, RelayOptions, ServerConfig};
use crate::capture::rtsp::redact;
use crate::encode::EncoderSettings;
use crate::output::options::RecordOptions;

/// The keys of an `rtsp` node that its URI's query may set.
const RTSP_KEYS: [&str; 4] = ["transport", "stall_secs", "retry_max_secs", "quirks"];

impl Config {
    /// A configuration of the given cameras, `cam0`, `cam1`, …, each with a
    /// relay `in0`, `in1`, … feeding later stages (as in the built-in demo).
    pub fn from_cameras<S: AsRef<str>>(uris: &[S]) -> Result<Config, ConfigError> {
        let mut nodes = Vec::new();
        for (i, uri) in uris.iter().enumerate() {
            let uri = uri.as_ref();
            // Errors name the camera (password hidden) and the key, not a line of generated text.
            let located = |e: ConfigError| ConfigError {
                origin: format!("--camera {}", redact(uri)),
                at: None,
                ..e
            };
            let table = node_table(uri).map_err(|message| {
                located(ConfigError {
                    origin: String::new(),
                    at: None,
                    key: None,
                    path: None,
                    message,
                })
            })?;
            let camera = Config::parse(&format!("[[node]]\nname = \"cam{i}\"\n{table}"), "").map_err(located)?;
            nodes.extend(camera.nodes);
            nodes.push(NodeSpec {
                name: format!("in{i}"),
                listen_to: Some(format!("cam{i}")),
                props: NodeProps::Relay(RelayOptions::default()),
            });
        }
        let config = Config {
            server: ServerConfig::default(),
            nodes,
        };
        config.validate()?;
        Ok(config)
    }
}

impl Config {
    /// The one-command recorder (`eyrie record`): each camera `cam0`, `cam1`, …
    /// recorded by `rec0`, `rec1`, … into `dir/<camera>/<camera>-<utc>.<ext>`
    /// in `segment`-second files. Compressed cameras (RTSP, files, V4L2
    /// MJPEG/H.264) are stored as they come; raw ones (V4L2 raw formats,
    /// testsrc) are encoded first by `cam0-h264`, … with the default H.264 encoder.
    pub fn recorder<S: AsRef<str>>(uris: &[S], dir: &Path, record: RecordOptions) -> Result<Config, ConfigError> {
        let cameras = Config::from_cameras(uris)?;
        let mut nodes = Vec::new();
        for (i, camera) in cameras.nodes.into_iter().filter(|n| !n.props.is_consumer()).enumerate() {
            let raw = match &camera.props {
                NodeProps::Testsrc(_) => true,
                NodeProps::V4l2(o) => {
                    !["MJPG", "JPEG", "H264", "HEVC"].contains(&o.format.to_ascii_uppercase().as_str())
                }
                _ => false,
            };
            let mut stream = camera.name.clone();
            nodes.push(camera);
            if raw {
                let name = format!("{stream}-h264");
                nodes.push(NodeSpec {
                    name: name.clone(),
                    listen_to: Some(stream),
                    props: NodeProps::Encode(EncoderSettings::default()),
                });
                stream = name;
            }
            nodes.push(NodeSpec {
                name: format!("rec{i}"),
                listen_to: Some(stream),
                props: NodeProps::Record(record.clone()),
            });
        }
        let config = Config {
            server: ServerConfig {
                media_root: dir.to_path_buf(),
                ..ServerConfig::default()
            },
            nodes,
        };
        config.validate()?;
        Ok(config)
    }
}

/// The TOML keys (after `name`) of the node a camera URI describes.
fn node_table(uri: &str) -> Result<String, String> {
    let parsed = url::Url::parse(uri).map_err(|e| format!("not a URI: {e}"))?;
    let mut keys: Vec<(String, String)> = Vec::new();
    // The camera's own query pieces, kept byte for byte.
    let mut rest: Vec<&str> = Vec::new();
    let kind = parsed.scheme();
    let path = percent_encoding::percent_decode_str(parsed.path()).decode_utf8_lossy();
    match kind {
        "testsrc" => {}
        "v4l2" | "file" => {
            if path.is_empty() || path == "/" {
                return Err(format!(
                    "{kind}: give the path, e.g. {kind}:///dev/video0 or {kind}:///clips/a.mp4"
                ));
            }
            let key = if kind == "v4l2" { "device" } else { "path" };
            keys.push((key.into(), toml_string(&path)));
        }
        "rtsp" => {}
        _ => return Err(format!("unknown scheme `{kind}` (testsrc, v4l2, rtsp, file)")),
    }
    for piece in parsed.query().unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
        let (key, value) = url::form_urlencoded::parse(piece.as_bytes()).next().unwrap_or_default();
        let (key, value) = (key.into_owned(), value.into_owned());
        if kind == "rtsp" && !RTSP_KEYS.contains(&key.as_str()) {
            rest.push(piece);
            continue;
        }
        match key.as_str() {
            "size" => {
                let (w, h) = value
                    .split_once('x')
                    .and_then(|(w, h)| Some((w.parse::<u32>().ok()?, h.parse::<u32>().ok()?)))
                    .ok_or_else(|| format!("size `{value}` is not WIDTHxHEIGHT"))?;
                keys.push(("width".into(), w.to_string()));
                keys.push(("height".into(), h.to_string()));
            }
            "loop" | "live" => {
                let b = match value.as_str() {
                    "1" | "true" | "yes" => "true",
                    "0" | "false" | "no" => "false",
                    _ => return Err(format!("{key} `{value}` is not 1/0/true/false")),
                };
                keys.push((key, b.into()));
            }
            "quirks" => {
                let list: Vec<String> = value.split(',').filter(|q| !q.is_empty()).map(toml_string).collect();
                keys.push((key, format!("[{}]", list.join(", "))));
            }
            _ => keys.push((key, toml_scalar(&value))),
        }
    }
    if kind == "rtsp" {
        let mut url = parsed.clone();
        url.set_query((!rest.is_empty()).then(|| rest.join("&")).as_deref());
        keys.push(("url".into(), toml_string(url.as_str())));
    }
    let mut table = format!("kind = \"{kind}\"\n");
    for (k, v) in keys {
        table.push_str(&format!("{k} = {v}\n"));
    }
    Ok(table)
}

/// A query value as TOML: a number stays a number, anything else is a string
/// (the node's own checks say what a key expects).
fn toml_scalar(value: &str) -> String {
    let numeric = !value.is_empty()
        && value.parse::<f64>().is_ok_and(f64::is_finite)
        && value.chars().all(|c| c.is_ascii_digit() || c == '.' || c == '-');
    if numeric { value.to_owned() } else { toml_string(value) }
}

fn toml_string(value: &str) -> String {
    toml::Value::String(value.to_owned()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(uri: &str) -> NodeProps {
        let config = Config::from_cameras(&[uri]).unwrap();
        assert_eq!(config.nodes.len(), 2, "a camera and its relay");
        assert_eq!(config.nodes[1].listen_to.as_deref(), Some("cam0"));
        config.nodes[0].props.clone()
    }

    #[test]
    fn each_scheme_becomes_its_node() {
        let NodeProps::Testsrc(t) = one("testsrc://?size=320x240&fps=15&seed=7") else {
            panic!()
        };
        assert_eq!((t.width, t.height, t.fps.num, t.seed), (320, 240, 15, Some(7)));
        let NodeProps::V4l2(v) = one("v4l2:///dev/video2?format=NV12&size=640x480&fps=30") else {
            panic!()
        };
        assert_eq!(v.device.to_str(), Some("/dev/video2"));
        assert_eq!((v.format.as_str(), v.width, v.height), ("NV12", 640, 480));
        assert_eq!(v.fps.map(|f| f.num), Some(30));
        let NodeProps::File(f) = one("file:///clips/my%20clip.mp4?loop=1&live=0") else {
            panic!()
        };
        assert_eq!(f.path.to_str(), Some("/clips/my clip.mp4"));
        assert!(f.looping && !f.live);
        let NodeProps::Rtsp(r) = one(
            "rtsp://admin:pw@10.1.2.3:554/Streaming?channel=1&transport=udp&quirks=no-teardown,first-session-id&a=b/c+d&flag",
        ) else {
            panic!()
        };
        assert_eq!(r.transport, crate::capture::rtsp::RtspTransport::Udp);
        assert_eq!(r.quirks.len(), 2);
        let (url, creds) = r.url.parse().unwrap();
        assert_eq!(
            url.as_str(),
            "rtsp://10.1.2.3:554/Streaming?channel=1&a=b/c+d&flag",
            "the camera's own keys stay, as written"
        );
        assert_eq!(creds.unwrap().password, "pw");
    }

    #[test]
    fn bad_uris_name_the_camera_and_key_without_the_password() {
        let err = |uri: &str| Config::from_cameras(&[uri]).unwrap_err().to_string();
        let e = err("rtsp://u:secret@h/x?transport=quic");
        assert!(
            e.contains("rtsp://u:***@h/x") && e.contains("transport") && !e.contains("secret"),
            "{e}"
        );
        let e = err("testsrc://?size=big");
        assert!(e.contains("size `big`"), "{e}");
        let e = err("testsrc://?colour=red");
        assert!(e.contains("colour") && e.contains("unknown key"), "{e}");
        let e = err("nfs://h/x");
        assert!(e.contains("unknown scheme `nfs`"), "{e}");
        let e = err("v4l2://");
        assert!(e.contains("give the path"), "{e}");
    }
}

//! `eyrie ctl`: a running server's control API from the shell (what
//! `gst-client` is to GstD). Tables for people, `--json` for programs; the
//! server's errors are shown as they came, and the exit code is 1.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;
use eyrie::control::client::{Client, Reply};
use serde_json::{Map, Value, json};

/// What `eyrie ctl` does.
#[derive(Subcommand, Debug)]
pub enum Ctl {
    /// Sign in: prints a token for `--token` / `EYRIE_TOKEN` (the password
    /// is read from standard input).
    Login {
        /// The user.
        user: String,
        /// Seconds the token lasts (default 3600).
        #[arg(long)]
        ttl: Option<u64>,
    },
    /// Every node: kind, state, rate, frames, drops, what it listens to.
    Nodes,
    /// One node, whole (stats and properties).
    Node {
        /// Its name.
        name: String,
    },
    /// Creates the nodes of a TOML file: `[[node]]` tables, or one node's
    /// keys without a header.
    Create {
        /// The file.
        file: PathBuf,
    },
    /// Changes a running node: `KEY=VALUE` (values are JSON where they
    /// parse as JSON, text otherwise), e.g. `bitrate=500000 force_keyframe=true`.
    Set {
        /// The node.
        node: String,
        /// The changes.
        #[arg(required = true, value_name = "KEY=VALUE")]
        changes: Vec<String>,
    },
    /// Relinks a consumer to another stream.
    Relink {
        /// The node.
        node: String,
        /// The stream it is to listen to.
        stream: String,
    },
    /// Stops and removes a node (a recording is closed playable).
    Delete {
        /// The node.
        node: String,
    },
    /// Starts a stopped node again (GstD's `pipeline_play`).
    Play {
        /// The node.
        node: String,
    },
    /// Stops a node and keeps it, to play later (GstD's `pipeline_stop`;
    /// a recording is closed playable).
    Stop {
        /// The node.
        node: String,
    },
    /// Starts or stops a `record` node.
    Record {
        /// `start` or `stop`.
        #[arg(value_parser = ["start", "stop"])]
        action: String,
        /// The node.
        node: String,
    },
    /// A clip from a `smartrecord` node.
    Clip {
        /// The node.
        node: String,
        /// Seconds before now.
        #[arg(long)]
        before: Option<f64>,
        /// Seconds after now.
        #[arg(long)]
        after: Option<f64>,
    },
    /// A JPEG of a stream's next picture.
    Snapshot {
        /// The stream.
        stream: String,
        /// Where to write it.
        #[arg(short, long)]
        output: PathBuf,
    },
    /// The recordings index.
    Recordings {
        /// Only this camera's.
        #[arg(long)]
        camera: Option<String>,
        /// Only `continuous`, `event` or `snapshot`.
        #[arg(long)]
        kind: Option<String>,
    },
    /// Events as they happen: the next one, or every one with `--follow`.
    Events {
        /// Keep printing until interrupted.
        #[arg(long)]
        follow: bool,
        /// Only these events (`closed`, `failed`, `triggered`), comma-separated.
        #[arg(long)]
        events: Option<String>,
        /// Only events about nodes or cameras matching this glob.
        #[arg(long)]
        node: Option<String>,
    },
}

/// Runs `command` against the server at `url`, trusting the certificates
/// of `cacert` too for `https://`.
pub fn run(url: &str, token: Option<String>, cacert: Option<&Path>, json_out: bool, command: Ctl) -> ExitCode {
    let client = match Client::new(url, token).and_then(|c| match cacert {
        Some(pem) => c.trust(pem),
        None => Ok(c),
    }) {
        Ok(c) => c,
        Err(e) => return fail(&e.to_string()),
    };
    match execute(&client, json_out, command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("eyrie ctl: {message}");
    ExitCode::from(1)
}

/// The answer's body, or the server's error as it came.
fn checked(reply: Result<Reply, eyrie::control::client::ClientError>) -> Result<Reply, String> {
    let reply = reply.map_err(|e| e.to_string())?;
    if reply.ok() {
        return Ok(reply);
    }
    let body: Option<Value> = serde_json::from_slice(&reply.body).ok();
    let message = body
        .as_ref()
        .and_then(|b| b["error"]["message"].as_str())
        .map(str::to_owned)
        .unwrap_or_else(|| String::from_utf8_lossy(&reply.body).trim().to_owned());
    Err(format!("{} {}: {message}", reply.status, reply.reason))
}

fn body_json(reply: &Reply) -> Result<Value, String> {
    serde_json::from_slice(&reply.body).map_err(|e| format!("the server's answer is not JSON: {e}"))
}

fn escape(segment: &str) -> String {
    percent_encoding::utf8_percent_encode(segment, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn execute(client: &Client, json_out: bool, command: Ctl) -> Result<(), String> {
    let print = |value: &Value| println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
    match command {
        Ctl::Login { user, ttl } => {
            let mut password = String::new();
            std::io::stdin()
                .read_line(&mut password)
                .map_err(|e| format!("cannot read the password: {e}"))?;
            let mut body = json!({"name": user, "password": password.trim_end_matches(['\n', '\r'])});
            if let Some(ttl) = ttl {
                body["ttl_s"] = json!(ttl);
            }
            let answer = body_json(&checked(client.json("POST", "/api/v1/login", Some(&body)))?)?;
            match json_out {
                true => print(&answer),
                false => println!("{}", answer["token"].as_str().unwrap_or_default()),
            }
        }
        Ctl::Nodes => {
            let nodes = body_json(&checked(client.json("GET", "/api/v1/nodes", None))?)?;
            if json_out {
                print(&nodes);
            } else {
                let rows = nodes.as_array().map(Vec::as_slice).unwrap_or_default().iter().map(|n| {
                    vec![
                        text(&n["name"]),
                        text(&n["kind"]),
                        text(&n["state"]),
                        format!("{:.1}", n["fps"].as_f64().unwrap_or(0.0)),
                        text(&n["frames_in"]),
                        text(&n["frames_out"]),
                        text(&n["frames_dropped"]),
                        text(&n["listen_to"]),
                    ]
                });
                table(
                    &["NAME", "KIND", "STATE", "FPS", "IN", "OUT", "DROPPED", "LISTEN_TO"],
                    rows,
                );
            }
        }
        Ctl::Node { name } => {
            print(&body_json(&checked(client.json(
                "GET",
                &format!("/api/v1/nodes/{}", escape(&name)),
                None,
            ))?)?);
        }
        Ctl::Create { file } => {
            let source = std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
            let value: toml::Value = toml::from_str(&source).map_err(|e| format!("{}: {e}", file.display()))?;
            let value = serde_json::to_value(value).map_err(|e| e.to_string())?;
            let nodes = match value.get("node") {
                Some(Value::Array(nodes)) => nodes.clone(),
                _ => vec![value],
            };
            for node in nodes {
                let created = body_json(&checked(client.json("POST", "/api/v1/nodes", Some(&node)))?)?;
                match json_out {
                    true => print(&created),
                    false => println!("created {} ({})", text(&created["name"]), text(&created["kind"])),
                }
            }
        }
        Ctl::Set { node, changes } => {
            let mut body = Map::new();
            for change in changes {
                let (key, value) = change
                    .split_once('=')
                    .ok_or_else(|| format!("`{change}` is not KEY=VALUE"))?;
                let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_owned()));
                body.insert(key.to_owned(), value);
            }
            patch(client, json_out, &node, Value::Object(body))?;
        }
        Ctl::Relink { node, stream } => patch(client, json_out, &node, json!({"listen_to": stream}))?,
        Ctl::Delete { node } => {
            let stats = body_json(&checked(client.json(
                "DELETE",
                &format!("/api/v1/nodes/{}", escape(&node)),
                None,
            ))?)?;
            match json_out {
                true => print(&stats),
                false => println!("deleted {node} ({} frames out)", text(&stats["frames_out"])),
            }
        }
        Ctl::Play { node } => play_or_stop(client, json_out, &node, "play")?,
        Ctl::Stop { node } => play_or_stop(client, json_out, &node, "stop")?,
        Ctl::Record { action, node } => {
            let path = format!("/api/v1/nodes/{}/record/{action}", escape(&node));
            let answer = body_json(&checked(client.json("POST", &path, None))?)?;
            match (json_out, answer["closed"]["path"].as_str()) {
                (true, _) => print(&answer),
                (false, Some(path)) => println!("{node}: stopped, closed {path}"),
                (false, None) => println!("{node}: {action}ed"),
            }
        }
        Ctl::Clip { node, before, after } => {
            let mut body = json!({});
            if let Some(b) = before {
                body["before"] = json!(b);
            }
            if let Some(a) = after {
                body["after"] = json!(a);
            }
            let path = format!("/api/v1/nodes/{}/clip", escape(&node));
            let answer = body_json(&checked(client.json("POST", &path, Some(&body)))?)?;
            match json_out {
                true => print(&answer),
                false if answer["extended"] == true => println!("{node}: the running clip was extended"),
                false => println!("{node}: a clip started"),
            }
        }
        Ctl::Snapshot { stream, output } => {
            let reply = checked(client.call("GET", &format!("/{}/snapshot.jpg", escape(&stream)), None))?;
            std::fs::write(&output, &reply.body).map_err(|e| format!("{}: {e}", output.display()))?;
            match json_out {
                true => print(&json!({"path": output, "bytes": reply.body.len()})),
                false => println!("{}: {} bytes", output.display(), reply.body.len()),
            }
        }
        Ctl::Recordings { camera, kind } => {
            let mut query = Vec::new();
            if let Some(c) = camera {
                query.push(format!("camera={}", escape(&c)));
            }
            if let Some(k) = kind {
                query.push(format!("kind={}", escape(&k)));
            }
            let path = format!("/api/v1/recordings?{}", query.join("&"));
            let entries = body_json(&checked(client.json("GET", &path, None))?)?;
            if json_out {
                print(&entries);
            } else {
                let rows = entries
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                    .iter()
                    .map(|e| {
                        vec![
                            text(&e["id"]),
                            text(&e["camera"]),
                            text(&e["kind"]),
                            text(&e["start"]),
                            text(&e["end"]),
                            text(&e["size"]),
                            text(&e["path"]),
                        ]
                    });
                table(&["ID", "CAMERA", "KIND", "START", "END", "BYTES", "PATH"], rows);
            }
        }
        Ctl::Events { follow, events, node } => {
            let mut query = Vec::new();
            if let Some(e) = events {
                query.push(format!("events={}", escape(&e)));
            }
            if let Some(n) = node {
                query.push(format!("node={}", escape(&n)));
            }
            let (reply, stream) = client
                .events(&format!("/api/v1/events?{}", query.join("&")))
                .map_err(|e| e.to_string())?;
            if !reply.ok() {
                return checked(Ok(reply)).map(|_| ());
            }
            // The server subscribed before it answered: nothing from now on is missed.
            eprintln!("eyrie ctl: waiting for events");
            for event in stream {
                let (name, data) = event.map_err(|e| format!("the event stream broke: {e}"))?;
                match json_out {
                    true => println!("{data}"),
                    false => println!("{name}: {data}"),
                }
                use std::io::Write;
                let _ = std::io::stdout().flush();
                if !follow {
                    break;
                }
            }
        }
    }
    Ok(())
}

fn patch(client: &Client, json_out: bool, node: &str, body: Value) -> Result<(), String> {
    let path = format!("/api/v1/nodes/{}", escape(node));
    let answer = body_json(&checked(client.json("PATCH", &path, Some(&body)))?)?;
    match json_out {
        true => println!("{}", serde_json::to_string_pretty(&answer).unwrap_or_default()),
        false => println!("{node}: changed {body}"),
    }
    Ok(())
}

fn play_or_stop(client: &Client, json_out: bool, node: &str, action: &str) -> Result<(), String> {
    let path = format!("/api/v1/nodes/{}/{action}", escape(node));
    let answer = body_json(&checked(client.json("POST", &path, None))?)?;
    match json_out {
        true => println!("{}", serde_json::to_string_pretty(&answer).unwrap_or_default()),
        false => println!("{node}: {}", text(&answer["state"])),
    }
    Ok(())
}

/// A value as a table cell (`-` for none).
fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn table(headers: &[&str], rows: impl Iterator<Item = Vec<String>>) {
    let rows: Vec<Vec<String>> = rows.collect();
    let widths: Vec<usize> = (0..headers.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([headers[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(headers.to_vec());
    for row in &rows {
        line(row.iter().map(String::as_str).collect());
    }
}

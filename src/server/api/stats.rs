//! `/metrics`: the server's stats in the Prometheus text format.

use super::*;

pub(super) async fn prometheus(State(api): State<Api>, who: Who) -> Answer {
    let server = api.server()?;
    allow(&server, &who, Role::Operator, None)?;
    let text = render_metrics(&server, &who);
    Ok((
        [
            (header::CONTENT_TYPE, metrics::CONTENT_TYPE),
            (header::CACHE_CONTROL, "no-store"),
        ],
        text,
    )
        .into_response())
}

/// `/metrics`: the server's stats in the Prometheus text format, limited
/// to the nodes and streams the user may see.
fn render_metrics(server: &Server, who: &Signed) -> String {
    let stats = server.stats();
    let nodes: Vec<&NodeStats> = stats.nodes.iter().filter(|n| sees(who, &n.name)).collect();
    let mut w = Writer::new();
    type NodeValue = fn(&NodeStats) -> f64;
    let per_node: [(&'static str, Type, &str, NodeValue); 7] = [
        (
            "eyrie_node_frames_in_total",
            Type::Counter,
            "Frames or packets the node received.",
            |n| n.frames_in as f64,
        ),
        (
            "eyrie_node_frames_total",
            Type::Counter,
            "Frames or packets the node published.",
            |n| n.frames_out as f64,
        ),
        (
            "eyrie_node_frames_dropped_total",
            Type::Counter,
            "Frames or packets the node lost (pool exhausted, late, or its input queue full).",
            |n| n.frames_dropped as f64,
        ),
        (
            "eyrie_node_reconnects_total",
            Type::Counter,
            "Times a source lost its device or connection and reopened it.",
            |n| n.reconnects as f64,
        ),
        (
            "eyrie_node_bytes_copied_total",
            Type::Counter,
            "Frame bytes the node copied (0 on a zero-copy path).",
            |n| n.bytes_copied as f64,
        ),
        (
            "eyrie_node_fps",
            Type::Gauge,
            "The node's output rate, frames per second.",
            |n| n.fps,
        ),
        (
            "eyrie_node_queue_depth",
            Type::Gauge,
            "Items waiting in the node's input queue.",
            |n| n.input.as_ref().map_or(0.0, |i| i.depth as f64),
        ),
    ];
    for (name, kind, help, value) in per_node {
        let mut f = w.family(name, kind, help);
        for n in &nodes {
            f.sample(&[("node", &n.name), ("kind", n.kind)], value(n));
        }
    }
    {
        let mut f = w.family("eyrie_node_up", Type::Gauge, "1 while the node runs, 0 otherwise.");
        for n in &nodes {
            let up = matches!(n.state, crate::server::NodeState::Running);
            f.sample(&[("node", &n.name), ("kind", n.kind)], if up { 1.0 } else { 0.0 });
        }
    }
    {
        let mut f = w.family(
            "eyrie_node_stage_microseconds",
            Type::Gauge,
            "Mean microseconds per frame of each stage of a node's work.",
        );
        for n in &nodes {
            for (stage, us) in &n.stages_us {
                f.sample(&[("node", &n.name), ("kind", n.kind), ("stage", stage)], *us);
            }
        }
    }
    let streams: Vec<_> = stats.streams.iter().filter(|s| sees(who, &s.name)).collect();
    {
        let mut f = w.family("eyrie_stream_subscribers", Type::Gauge, "Readers of the stream now.");
        for s in &streams {
            f.sample(&[("stream", &s.name)], s.subscribers as f64);
        }
    }
    {
        let mut f = w.family(
            "eyrie_stream_published_total",
            Type::Counter,
            "Frames or packets published on the stream.",
        );
        for s in &streams {
            f.sample(&[("stream", &s.name)], s.published as f64);
        }
    }
    {
        let mut f = w.family(
            "eyrie_http_stream_bytes_total",
            Type::Counter,
            "Bytes of fMP4 made for HTTP clients of the stream.",
        );
        for l in stats.http.iter().flat_map(|h| &h.live).filter(|l| sees(who, &l.stream)) {
            f.sample(&[("stream", &l.stream)], l.bytes as f64);
        }
    }
    {
        let mut f = w.family("eyrie_sessions", Type::Gauge, "Clients connected now, per protocol.");
        if let Some(r) = &stats.rtsp {
            f.sample(&[("protocol", "rtsp")], r.clients.len() as f64);
        }
        if let Some(h) = &stats.http {
            f.sample(&[("protocol", "http")], h.open as f64);
        }
    }
    {
        let mut f = w.family(
            "eyrie_connections_total",
            Type::Counter,
            "Connections accepted, per protocol.",
        );
        if let Some(r) = &stats.rtsp {
            f.sample(&[("protocol", "rtsp")], r.connections as f64);
        }
        if let Some(h) = &stats.http {
            f.sample(&[("protocol", "http")], h.connections as f64);
        }
    }
    {
        let mut f = w.family(
            "eyrie_tls_handshake_failures_total",
            Type::Counter,
            "TLS handshakes that failed or did not end in time, per protocol.",
        );
        if let Some(r) = &stats.rtsp {
            f.sample(&[("protocol", "rtsp")], r.handshakes_failed as f64);
        }
        if let Some(h) = &stats.http {
            f.sample(&[("protocol", "http")], h.handshakes_failed as f64);
        }
    }
    if let Some(r) = &stats.rtsp {
        w.family(
            "eyrie_rtsp_auth_failures_total",
            Type::Counter,
            "RTSP requests refused for missing or wrong credentials.",
        )
        .sample(&[], r.auth_failures as f64);
    }
    if who.0.as_ref().is_none_or(Identity::sees_everything)
        && let Ok(totals) = server.recording_totals()
    {
        let mut f = w.family(
            "eyrie_recordings_files",
            Type::Gauge,
            "Files in the recordings index, per camera.",
        );
        for (camera, files, _) in &totals {
            f.sample(&[("camera", camera)], *files as f64);
        }
        let mut f = w.family(
            "eyrie_recordings_bytes",
            Type::Gauge,
            "Bytes of the files in the recordings index, per camera.",
        );
        for (camera, _, bytes) in &totals {
            f.sample(&[("camera", camera)], *bytes as f64);
        }
    }
    if who.0.as_ref().is_none_or(|id| id.role == Role::Admin) {
        type HookValue = fn(&crate::server::WebhookStats) -> u64;
        let per_hook: [(&'static str, &str, HookValue); 4] = [
            (
                "eyrie_webhook_delivered_total",
                "Events a webhook's receiver took.",
                |w| w.delivered,
            ),
            (
                "eyrie_webhook_retried_total",
                "Webhook tries that failed and were tried again.",
                |w| w.retried,
            ),
            (
                "eyrie_webhook_failed_total",
                "Events a webhook gave up after every retry.",
                |w| w.failed,
            ),
            (
                "eyrie_webhook_dropped_total",
                "Events a webhook dropped unsent: its queue was full.",
                |w| w.dropped,
            ),
        ];
        for (name, help, value) in per_hook {
            let mut f = w.family(name, Type::Counter, help);
            for hook in &stats.webhooks {
                let url = hook.url.split('?').next().unwrap_or_default();
                f.sample(&[("url", url)], value(hook) as f64);
            }
        }
    }
    w.family(
        "eyrie_bytes_copied_total",
        Type::Counter,
        "Bytes of frame data the process copied.",
    )
    .sample(&[], stats.bytes_copied as f64);
    w.family("eyrie_uptime_seconds", Type::Gauge, "Seconds since the server started.")
        .sample(&[], stats.uptime_s);
    if let Some((cpu, rss)) = metrics::process() {
        w.family(
            "process_cpu_seconds_total",
            Type::Counter,
            "User and system CPU time of the process, seconds.",
        )
        .sample(&[], cpu);
        w.family(
            "process_resident_memory_bytes",
            Type::Gauge,
            "Resident memory of the process, bytes.",
        )
        .sample(&[], rss as f64);
    }
    w.finish()
}

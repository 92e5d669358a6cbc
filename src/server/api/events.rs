//! Events out: Server-Sent Events and a WebSocket, with one filter.

use super::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EventsQuery {
    /// Event names (`closed`, `failed`, `triggered`, `node`, `reader`), comma-separated.
    events: Option<String>,
    /// A glob over the node or camera the event is about.
    node: Option<String>,
}

/// The events `query` asks for that `who` may see, or why the query is wrong.
fn event_filter(
    who: &Signed,
    query: Params<EventsQuery>,
) -> Result<impl Fn(&Event) -> bool + Send + 'static, ApiError> {
    let q = query.get()?;
    let names: Vec<String> = q.events.as_deref().map_or(Vec::new(), |e| {
        e.split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect()
    });
    if let Some(message) = Event::unknown(&names) {
        return Err(ApiError::bad(message).key("events"));
    }
    let identity: Option<Identity> = who.0.clone();
    Ok(move |event: &Event| {
        let (node, camera) = event.subject();
        event.matches(&names, q.node.as_deref())
            && identity
                .as_ref()
                .is_none_or(|id| id.may_see(node) && camera.is_none_or(|c| id.may_see(c)))
    })
}

pub(super) async fn events(State(api): State<Api>, who: Who, query: Params<EventsQuery>) -> Answer {
    let server = api.server()?;
    allow(&server, &who, Role::Viewer, None)?;
    let wanted = event_filter(&who, query)?;
    let subscription = server.events();
    drop(server);
    let stream = futures_util::stream::unfold((subscription, wanted), |(subscription, wanted)| async move {
        loop {
            let event = subscription.recv_async().await;
            if wanted(&event) {
                let sse = SseEvent::default()
                    .event(event.name())
                    .data(serde_json::to_string(&event).unwrap_or_default());
                return Some((Ok::<_, Infallible>(sse), (subscription, wanted)));
            }
        }
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

/// The events as WebSocket text messages (one JSON event each), with the
/// filter of [`events`]; what the client sends is read and ignored.
pub(super) async fn events_ws(
    State(api): State<Api>,
    who: Who,
    slot: axum::Extension<std::sync::Arc<crate::serve::http::Slot>>,
    query: Params<EventsQuery>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Answer {
    let server = api.server()?;
    allow(&server, &who, Role::Viewer, None)?;
    let wanted = event_filter(&who, query)?;
    let upgrade = upgrade.map_err(|e| ApiError::bad(format!("/api/v1/events/ws is a WebSocket: {}", e.body_text())))?;
    let subscription = server.events();
    drop(server);
    let slot = slot.0;
    Ok(upgrade
        .max_message_size(64 << 10)
        .max_frame_size(64 << 10)
        .on_upgrade(move |socket| async move {
            let _slot = slot;
            let (mut sink, mut incoming) = futures_util::StreamExt::split(socket);
            let send = async {
                loop {
                    let event = subscription.recv_async().await;
                    if wanted(&event) {
                        let text = serde_json::to_string(&event).unwrap_or_default();
                        if futures_util::SinkExt::send(&mut sink, Message::Text(text.into()))
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                }
            };
            let receive = async { while let Some(Ok(_)) = futures_util::StreamExt::next(&mut incoming).await {} };
            tokio::select! {
                () = send => {}
                () = receive => {}
            }
        }))
}

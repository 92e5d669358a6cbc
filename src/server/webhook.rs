//! Webhook delivery: a thread per `[[server.webhooks]]` entry, reading its
//! own bounded subscription of the event bus (so a dead receiver only ever
//! drops that webhook's oldest events, counted; emitting never waits),
//! POSTing each wanted event with retries and backoff
//! ([`crate::events::webhook`]). At shutdown, what is queued gets one try
//! each within [`DRAIN`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::control::client::Client;
use crate::events::webhook::{WebhookOptions, backoff, signature};
use crate::events::{Event, EventBus, EventSubscription};
use crate::hub::RecvError;

/// How long queued events may take to go out at shutdown.
pub const DRAIN: Duration = Duration::from_secs(2);

/// Counters of one webhook.
#[derive(Clone, Debug, Serialize)]
pub struct WebhookStats {
    /// Where it sends.
    pub url: String,
    /// Events the receiver took (2xx).
    pub delivered: u64,
    /// Tries that failed and were tried again.
    pub retried: u64,
    /// Events given up after every retry failed.
    pub failed: u64,
    /// Events dropped unsent because the queue was full.
    pub dropped: u64,
}

#[derive(Default)]
struct Counters {
    delivered: AtomicU64,
    retried: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
}

/// A running webhook.
pub(super) struct Webhook {
    url: String,
    counters: Arc<Counters>,
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Webhook {
    /// Starts delivering `options`' events from `bus`.
    pub(super) fn start(options: WebhookOptions, bus: &EventBus) -> Result<Webhook, String> {
        let (mut client, path) = Client::with_path(&options.url, None).map_err(|e| e.to_string())?;
        if let Some(ca) = &options.ca {
            client = client.trust(ca).map_err(|e| format!("server.webhooks.ca {e}"))?;
        }
        // Only the status matters: a receiver's answer is read to 64 KiB at most.
        let client = client
            .timeout(Duration::from_secs_f64(options.timeout))
            .max_body(64 << 10);
        let subscription = bus.subscribe_with(options.queue);
        let counters = Arc::new(Counters::default());
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let url = options.url.clone();
        let sender = Sender {
            client,
            path,
            options,
            counters: Arc::clone(&counters),
            stop: Arc::clone(&stop),
            next_id: 1,
        };
        let thread = std::thread::Builder::new()
            .name("webhook".into())
            .spawn(move || sender.run(&subscription))
            .map_err(|e| format!("cannot start its thread: {e}"))?;
        Ok(Webhook {
            url,
            counters,
            stop,
            thread: Some(thread),
        })
    }

    /// Its counters now.
    pub(super) fn stats(&self) -> WebhookStats {
        let c = &self.counters;
        WebhookStats {
            url: self.url.clone(),
            delivered: c.delivered.load(Ordering::Relaxed),
            retried: c.retried.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
        }
    }

    /// Sends what is queued (one try each, within [`DRAIN`]) and stops.
    pub(super) fn stop(&mut self) {
        let (flag, wake) = &*self.stop;
        *flag.lock().unwrap_or_else(|e| e.into_inner()) = true;
        wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.stop();
    }
}

struct Sender {
    client: Client,
    path: String,
    options: WebhookOptions,
    counters: Arc<Counters>,
    stop: Arc<(Mutex<bool>, Condvar)>,
    next_id: u64,
}

impl Sender {
    fn stopping(&self) -> bool {
        *self.stop.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits `wait` unless stopped meanwhile; true when stopped.
    fn pause(&self, wait: Duration) -> bool {
        let (flag, wake) = &*self.stop;
        let stopped = flag.lock().unwrap_or_else(|e| e.into_inner());
        let (stopped, _) = wake
            .wait_timeout_while(stopped, wait, |s| !*s)
            .unwrap_or_else(|e| e.into_inner());
        *stopped
    }

    fn run(mut self, subscription: &EventSubscription) {
        while !self.stopping() {
            self.counters.dropped.store(subscription.dropped(), Ordering::Relaxed);
            match subscription.recv_timeout(Duration::from_millis(200)) {
                Ok(event) => self.deliver(&event, true),
                Err(RecvError::Timeout) => {}
                Err(_) => return,
            }
        }
        let deadline = Instant::now() + DRAIN;
        while let Some(event) = subscription.try_recv() {
            if Instant::now() >= deadline {
                self.counters.failed.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            self.deliver(&event, false);
        }
        self.counters.dropped.store(subscription.dropped(), Ordering::Relaxed);
    }

    /// Sends `event` if wanted: retried with backoff while `retry` and not stopped.
    fn deliver(&mut self, event: &Event, retry: bool) {
        if !self.options.wants(event) {
            return;
        }
        let body = serde_json::to_vec(event).unwrap_or_default();
        let id = self.next_id.to_string();
        self.next_id += 1;
        let mut attempt = 0;
        loop {
            let t = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs();
            let signed = self.options.secret.as_deref().map(|s| signature(s, t, &body));
            let mut headers = vec![("X-Eyrie-Event", event.name()), ("X-Eyrie-Delivery", id.as_str())];
            if let Some(s) = &signed {
                headers.push(("X-Eyrie-Signature", s));
            }
            let outcome = self
                .client
                .call_with("POST", &self.path, &headers, Some(("application/json", &body)));
            let why = match outcome {
                Ok(reply) if reply.ok() => {
                    self.counters.delivered.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Ok(reply) => format!("{} {}", reply.status, reply.reason),
                Err(e) => e.to_string(),
            };
            attempt += 1;
            if !retry || attempt > self.options.retries || self.pause(backoff(attempt)) {
                self.counters.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(url = %self.options.url, event = event.name(), "webhook gave up after {attempt} tries: {why}");
                return;
            }
            self.counters.retried.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(url = %self.options.url, attempt, "webhook retrying: {why}");
        }
    }
}

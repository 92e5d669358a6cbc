//! Answers to requests made of nodes. A request carries a deadline and a
//! one-shot [`Answer`] the node fills; the caller holds the matching
//! [`Pending`] and waits on it from a thread ([`Pending::wait`]) or awaits it
//! from a tokio task — never past the deadline. A node that finds a request
//! already past its deadline answers without doing the work, so a caller told
//! "timed out" is never surprised by the work done after.

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use super::{ErrorKind, ServerError};

struct Slot<T> {
    state: Mutex<State<T>>,
    ready: Condvar,
}

struct State<T> {
    value: Option<Result<T, ServerError>>,
    /// The answering side is gone (answered or dropped).
    closed: bool,
    waker: Option<Waker>,
}

impl<T> Slot<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn close(&self, value: Option<Result<T, ServerError>>) {
        let mut st = self.lock();
        if st.closed {
            return;
        }
        st.closed = true;
        st.value = value;
        let waker = st.waker.take();
        drop(st);
        self.ready.notify_all();
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// A request to `node` that must be answered by `timeout` from now.
pub(crate) fn request<T>(node: &str, timeout: Duration) -> (Answer<T>, Pending<T>) {
    let slot = Arc::new(Slot {
        state: Mutex::new(State {
            value: None,
            closed: false,
            waker: None,
        }),
        ready: Condvar::new(),
    });
    let deadline = Instant::now() + timeout;
    let node: Arc<str> = node.into();
    (
        Answer {
            slot: Arc::clone(&slot),
            node: Arc::clone(&node),
            deadline,
        },
        Pending {
            slot,
            node,
            deadline,
            timeout,
        },
    )
}

/// The answering end, held by the node. Dropping it unanswered tells the
/// caller the node has ended.
pub(crate) struct Answer<T> {
    slot: Arc<Slot<T>>,
    node: Arc<str>,
    deadline: Instant,
}

impl<T> Answer<T> {
    /// True once the caller has stopped waiting: do not start the work.
    pub(crate) fn expired(&self) -> bool {
        Instant::now() >= self.deadline
    }

    /// Answers with the node's result (an error message is the node's failure).
    pub(crate) fn send(self, result: Result<T, String>) {
        self.send_kind(result.map_err(|m| (ErrorKind::Internal, m)));
    }

    /// Answers with a result whose error has a kind.
    pub(crate) fn send_kind(self, result: Result<T, (ErrorKind, String)>) {
        let node = self.node.to_string();
        self.slot
            .close(Some(result.map_err(|(kind, message)| ServerError::Failed {
                node,
                kind,
                message,
            })));
    }
}

impl<T> Drop for Answer<T> {
    fn drop(&mut self) {
        self.slot.close(None);
    }
}

/// The caller's end of a request: [`Pending::wait`] from a thread, `.await`
/// from a tokio task (its timer bounds the wait).
#[must_use = "a request's answer says whether it worked"]
pub struct Pending<T> {
    slot: Arc<Slot<T>>,
    node: Arc<str>,
    deadline: Instant,
    timeout: Duration,
}

impl<T> Pending<T> {
    /// An answer known at once (a request refused before it reached a node).
    pub(crate) fn ready(node: &str, result: Result<T, ServerError>) -> Self {
        let (answer, pending) = request(node, Duration::ZERO);
        answer.slot.close(Some(result));
        pending
    }

    /// When the caller stops waiting.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Blocks until the node answers or the deadline passes.
    pub fn wait(self) -> Result<T, ServerError> {
        let mut st = self.slot.lock();
        loop {
            if st.closed {
                return self.outcome(st.value.take());
            }
            let left = self.deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(self.timed_out());
            }
            st = self
                .slot
                .ready
                .wait_timeout(st, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    fn outcome(&self, value: Option<Result<T, ServerError>>) -> Result<T, ServerError> {
        value.unwrap_or_else(|| Err(ServerError::ended(&self.node)))
    }

    fn timed_out(&self) -> ServerError {
        ServerError::Timeout {
            node: self.node.to_string(),
            waited: self.timeout,
        }
    }
}

/// The answer as a future, without the deadline.
struct Answered<T>(Arc<Slot<T>>);

impl<T> Future for Answered<T> {
    type Output = Option<Result<T, ServerError>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut st = self.0.lock();
        if st.closed {
            return Poll::Ready(st.value.take());
        }
        match &st.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => st.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl<T: Send + 'static> IntoFuture for Pending<T> {
    type Output = Result<T, ServerError>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send>>;

    /// Awaits the answer on a tokio runtime with its timer enabled.
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let answered = Answered(Arc::clone(&self.slot));
            match tokio::time::timeout_at(self.deadline.into(), answered).await {
                Ok(value) => self.outcome(value),
                Err(_) => Err(self.timed_out()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_a_dropped_request_and_a_late_one() {
        let (answer, pending) = request::<u32>("n", Duration::from_secs(5));
        std::thread::spawn(move || answer.send(Ok(7)));
        assert_eq!(pending.wait().unwrap(), 7);

        let (answer, pending) = request::<u32>("n", Duration::from_secs(5));
        drop(answer);
        assert_eq!(pending.wait().unwrap_err().kind(), ErrorKind::Unavailable);

        let (answer, pending) = request::<u32>("n", Duration::from_millis(1));
        let e = pending.wait().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
        assert!(answer.expired(), "the node sees the caller gave up");
    }

    #[test]
    fn awaited_from_tokio_with_its_deadline() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (answer, pending) = request::<u32>("n", Duration::from_secs(5));
        std::thread::spawn(move || answer.send(Err("no".into())));
        let e = rt.block_on(pending.into_future()).unwrap_err();
        assert_eq!(
            (e.kind(), e.to_string()),
            (ErrorKind::Internal, "node `n`: no".to_string())
        );
        let (_answer, pending) = request::<u32>("n", Duration::from_millis(20));
        assert_eq!(
            rt.block_on(pending.into_future()).unwrap_err().kind(),
            ErrorKind::Timeout
        );
    }
}

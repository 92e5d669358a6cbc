//! Work done once per stream while someone wants it: a [`Registry`] starts
//! one task per stream on first demand, shares it with every client, and
//! lets it end once nobody has used it for the registry's idle time. However
//! a task ends (even by a panic), its entry leaves the map and is marked
//! closed, so the next client starts a fresh one.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// One stream's shared work.
pub struct Entry<T> {
    /// The stream's name.
    pub name: String,
    /// What the task shares with clients.
    pub state: T,
    clients: AtomicUsize,
    idle_since: Mutex<Option<Instant>>,
    closed: AtomicBool,
}

impl<T> Entry<T> {
    /// Clients holding it now.
    pub fn clients(&self) -> usize {
        self.clients.load(Ordering::Acquire)
    }

    /// True once its task has ended.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

/// A client's hold on an entry: the task lives while held.
pub struct Hold<T> {
    /// The entry.
    pub entry: Arc<Entry<T>>,
}

impl<T> Drop for Hold<T> {
    fn drop(&mut self) {
        if self.entry.clients.fetch_sub(1, Ordering::AcqRel) == 1 {
            *lock(&self.entry.idle_since) = Some(Instant::now());
        }
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The entries of one kind of work, by stream.
pub struct Registry<T> {
    map: Mutex<HashMap<String, Arc<Entry<T>>>>,
    idle: Duration,
}

impl<T: Send + Sync + 'static> Registry<T> {
    /// No entries; each ends after `idle` unused.
    pub fn new(idle: Duration) -> Arc<Self> {
        Arc::new(Registry {
            map: Mutex::new(HashMap::new()),
            idle,
        })
    }

    /// Holds `stream`'s entry, starting it when there is none: `start`
    /// makes its shared state and what only its task keeps (a hub
    /// subscription), and `run` is that task (spawned on the current runtime).
    pub fn attach<S, E, F>(
        self: &Arc<Self>,
        stream: &str,
        start: impl FnOnce() -> Result<(T, S), E>,
        run: impl FnOnce(Arc<Self>, Arc<Entry<T>>, S) -> F,
    ) -> Result<Hold<T>, E>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let mut map = lock(&self.map);
        let entry = match map.get(stream) {
            Some(e) => Arc::clone(e),
            None => {
                let (state, private) = start()?;
                let entry = Arc::new(Entry {
                    name: stream.to_owned(),
                    state,
                    clients: AtomicUsize::new(0),
                    idle_since: Mutex::new(None),
                    closed: AtomicBool::new(false),
                });
                map.insert(stream.to_owned(), Arc::clone(&entry));
                let retire = Retire {
                    registry: Arc::clone(self),
                    entry: Arc::clone(&entry),
                };
                let task = run(Arc::clone(self), Arc::clone(&entry), private);
                tokio::spawn(async move {
                    let _retire = retire;
                    task.await;
                });
                entry
            }
        };
        entry.clients.fetch_add(1, Ordering::AcqRel);
        *lock(&entry.idle_since) = None;
        Ok(Hold { entry })
    }

    /// Every running entry, by name.
    pub fn all(&self) -> Vec<Arc<Entry<T>>> {
        let mut v: Vec<Arc<Entry<T>>> = lock(&self.map).values().cloned().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Removes `entry` if nobody has used it for the idle time; true when
    /// removed (its task should then end).
    pub fn retire_if_idle(&self, entry: &Entry<T>) -> bool {
        let mut map = lock(&self.map);
        let idle = entry.clients() == 0 && lock(&entry.idle_since).is_some_and(|t| t.elapsed() >= self.idle);
        if idle {
            map.remove(&entry.name);
        }
        idle
    }
}

/// Ends an entry however its task ends.
struct Retire<T> {
    registry: Arc<Registry<T>>,
    entry: Arc<Entry<T>>,
}

impl<T> Drop for Retire<T> {
    fn drop(&mut self) {
        self.entry.closed.store(true, Ordering::Release);
        let mut map = lock(&self.registry.map);
        if map.get(&self.entry.name).is_some_and(|e| Arc::ptr_eq(e, &self.entry)) {
            map.remove(&self.entry.name);
        }
    }
}

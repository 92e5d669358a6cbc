//! Frame memory: bounded pools, and reference-counted leases on their buffers.
//!
//! A [`Buffer`] is a lease: cloning it shares the memory, never the bytes. When
//! the last lease is dropped the memory goes back where it came from — a pool
//! buffer to its [`BufferPool`]'s free list; later a V4L2 buffer is re-queued
//! (QBUF) by its own [`Memory`] implementation's `Drop`.
//!
//! Pools are bounded. [`BufferPool::acquire`] returns `None` when every buffer is
//! held downstream: the producer drops that frame and counts it; nothing blocks
//! and nothing allocates beyond the bound.

use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Where a buffer's memory lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MemoryKind {
    /// Ordinary process memory (a pool buffer).
    System,
    /// A driver's MMAP buffer (V4L2).
    Mmap,
    /// A DMABUF shared with another device.
    DmaBuf,
}

/// Memory that a [`Buffer`] leases. Implementations return the memory to its
/// owner in their `Drop`.
pub trait Memory: Send + Sync + 'static {
    /// The bytes.
    fn bytes(&self) -> &[u8];
    /// The bytes, writable; `None` where the memory is read-only (e.g. a capture
    /// buffer the driver still owns).
    fn bytes_mut(&mut self) -> Option<&mut [u8]>;
    /// Where the memory lives.
    fn kind(&self) -> MemoryKind;
    /// A DMABUF file descriptor exporting this memory, for import by another device.
    fn dmabuf_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        None
    }
}

/// A reference-counted lease on frame memory. Cloning never copies the bytes.
#[derive(Clone)]
pub struct Buffer(Arc<dyn Memory>);

impl Buffer {
    /// Leases `memory`; it is released when the last clone is dropped.
    pub fn new(memory: impl Memory) -> Self {
        Buffer(Arc::new(memory))
    }

    /// Leases shared bytes (read-only): a frame inside a mapped file, say.
    pub fn from_bytes(bytes: bytes::Bytes) -> Self {
        Buffer::new(bytes)
    }

    /// The bytes.
    pub fn bytes(&self) -> &[u8] {
        self.0.bytes()
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.bytes().len()
    }

    /// True for a zero-length buffer.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writable bytes, only when this is the sole lease (so writing in place is
    /// invisible to anyone else) and the memory is writable.
    pub fn get_mut(&mut self) -> Option<&mut [u8]> {
        Arc::get_mut(&mut self.0).and_then(|m| m.bytes_mut())
    }

    /// How many leases share this memory.
    pub fn lease_count(&self) -> usize {
        Arc::strong_count(&self.0)
    }

    /// True when both leases share the same memory.
    pub fn same_memory(&self, other: &Buffer) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// Where the memory lives.
    pub fn kind(&self) -> MemoryKind {
        self.0.kind()
    }

    /// The DMABUF export of this memory, if it has one.
    pub fn dmabuf_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.0.dmabuf_fd()
    }
}

impl fmt::Debug for Buffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Buffer")
            .field("kind", &self.kind())
            .field("len", &self.len())
            .field("leases", &self.lease_count())
            .finish()
    }
}

/// A bounded pool of equally sized system-memory buffers.
#[derive(Clone)]
pub struct BufferPool {
    inner: Arc<PoolInner>,
}

struct PoolInner {
    buffer_size: usize,
    capacity: usize,
    free: Mutex<Free>,
    /// Signalled when a buffer comes back and someone waits for one.
    returned: Condvar,
    allocated: AtomicUsize,
    in_use: AtomicUsize,
    exhausted: AtomicU64,
}

struct Free {
    buffers: Vec<Box<[u8]>>,
    waiters: usize,
}

impl PoolInner {
    fn lock(&self) -> MutexGuard<'_, Free> {
        self.free.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Counters of a [`BufferPool`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct PoolStats {
    /// The most buffers the pool will ever hold.
    pub capacity: usize,
    /// Buffers allocated so far (never more than `capacity`).
    pub allocated: usize,
    /// Buffers currently leased out.
    pub in_use: usize,
    /// Times `acquire` found every buffer in use.
    pub exhausted: u64,
}

impl BufferPool {
    /// A pool of at most `capacity` buffers of `buffer_size` bytes each, allocated
    /// on first use.
    pub fn new(buffer_size: usize, capacity: usize) -> Self {
        assert!(capacity > 0, "a buffer pool needs a capacity of at least one");
        BufferPool {
            inner: Arc::new(PoolInner {
                buffer_size,
                capacity,
                free: Mutex::new(Free {
                    buffers: Vec::with_capacity(capacity),
                    waiters: 0,
                }),
                returned: Condvar::new(),
                allocated: AtomicUsize::new(0),
                in_use: AtomicUsize::new(0),
                exhausted: AtomicU64::new(0),
            }),
        }
    }

    /// A writable buffer, or `None` (counted) when all `capacity` buffers are
    /// leased. Never waits: what live sources use. The contents of a recycled
    /// buffer are whatever its last user left.
    pub fn acquire(&self) -> Option<PoolBuffer> {
        let recycled = self.inner.lock().buffers.pop();
        self.take(recycled).or_else(|| {
            self.inner.exhausted.fetch_add(1, Ordering::Relaxed);
            None
        })
    }

    /// Like [`acquire`](Self::acquire), but when every buffer is leased, waits up
    /// to `timeout` for one to come back: what sources that run as fast as
    /// possible use, so they follow their consumers instead of dropping.
    pub fn acquire_timeout(&self, timeout: Duration) -> Option<PoolBuffer> {
        let deadline = Instant::now() + timeout;
        let mut free = self.inner.lock();
        loop {
            let recycled = free.buffers.pop();
            if recycled.is_some() || self.inner.allocated.load(Ordering::Acquire) < self.inner.capacity {
                drop(free);
                if let Some(buffer) = self.take(recycled) {
                    return Some(buffer);
                }
                free = self.inner.lock();
                continue;
            }
            let now = Instant::now();
            if now >= deadline {
                self.inner.exhausted.fetch_add(1, Ordering::Relaxed);
                return None;
            }
            free.waiters += 1;
            free = self
                .inner
                .returned
                .wait_timeout(free, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
            free.waiters -= 1;
        }
    }

    /// Wraps a recycled buffer, or allocates a new one while under capacity.
    fn take(&self, recycled: Option<Box<[u8]>>) -> Option<PoolBuffer> {
        let inner = &self.inner;
        let data = match recycled {
            Some(data) => data,
            None => {
                // Reserve a slot first so concurrent acquirers never exceed the bound.
                inner
                    .allocated
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                        (n < inner.capacity).then_some(n + 1)
                    })
                    .ok()?;
                vec![0u8; inner.buffer_size].into_boxed_slice()
            }
        };
        inner.in_use.fetch_add(1, Ordering::Relaxed);
        Some(PoolBuffer {
            data: Some(data),
            pool: Arc::clone(inner),
        })
    }

    /// Size of each buffer.
    pub fn buffer_size(&self) -> usize {
        self.inner.buffer_size
    }

    /// The pool's counters.
    pub fn stats(&self) -> PoolStats {
        let i = &self.inner;
        PoolStats {
            capacity: i.capacity,
            allocated: i.allocated.load(Ordering::Acquire),
            in_use: i.in_use.load(Ordering::Acquire),
            exhausted: i.exhausted.load(Ordering::Relaxed),
        }
    }
}

impl fmt::Debug for BufferPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BufferPool")
            .field("buffer_size", &self.inner.buffer_size)
            .field("stats", &self.stats())
            .finish()
    }
}

/// A buffer taken from a [`BufferPool`]: writable while its producer owns it
/// alone, then frozen into a shareable [`Buffer`] lease. Returns to the pool on drop.
pub struct PoolBuffer {
    data: Option<Box<[u8]>>,
    pool: Arc<PoolInner>,
}

impl PoolBuffer {
    /// Turns this buffer into a shareable lease.
    pub fn freeze(self) -> Buffer {
        Buffer::new(self)
    }
}

impl std::ops::Deref for PoolBuffer {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.data.as_deref().expect("pool buffer present until drop")
    }
}

impl std::ops::DerefMut for PoolBuffer {
    fn deref_mut(&mut self) -> &mut [u8] {
        self.data.as_deref_mut().expect("pool buffer present until drop")
    }
}

/// Shared immutable bytes (a mapped file, a decoded picture) as frame memory.
impl Memory for bytes::Bytes {
    fn bytes(&self) -> &[u8] {
        self
    }
    fn bytes_mut(&mut self) -> Option<&mut [u8]> {
        None
    }
    fn kind(&self) -> MemoryKind {
        MemoryKind::System
    }
}

impl Memory for PoolBuffer {
    fn bytes(&self) -> &[u8] {
        self
    }
    fn bytes_mut(&mut self) -> Option<&mut [u8]> {
        Some(self)
    }
    fn kind(&self) -> MemoryKind {
        MemoryKind::System
    }
}

impl Drop for PoolBuffer {
    fn drop(&mut self) {
        if let Some(data) = self.data.take() {
            let mut free = self.pool.lock();
            free.buffers.push(data);
            self.pool.in_use.fetch_sub(1, Ordering::Release);
            let wake = free.waiters > 0;
            drop(free);
            if wake {
                self.pool.returned.notify_one();
            }
        }
    }
}

static BYTES_COPIED: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Where copies made on this thread are also counted (a node's own counter).
    static THREAD_COPIED: std::cell::RefCell<Option<Arc<AtomicU64>>> = const { std::cell::RefCell::new(None) };
}

/// Adds `n` to the global bytes-copied counter (and to this thread's, see
/// [`count_thread_copies_in`]). Every code path that copies frame data must
/// call this (or use [`copy_frame_bytes`]), so benchmarks can prove that a
/// pipeline moves leases, not pixels.
pub fn count_copied(n: usize) {
    BYTES_COPIED.fetch_add(n as u64, Ordering::Relaxed);
    THREAD_COPIED.with_borrow(|c| {
        if let Some(c) = c {
            c.fetch_add(n as u64, Ordering::Relaxed);
        }
    });
}

/// Also counts the copies this thread makes from now on in `counter`: a
/// node's thread does, so stats say which node copied.
pub fn count_thread_copies_in(counter: Arc<AtomicU64>) {
    THREAD_COPIED.set(Some(counter));
}

/// Copies frame data from `src` into `dst` (same length) and counts it.
pub fn copy_frame_bytes(dst: &mut [u8], src: &[u8]) {
    dst.copy_from_slice(src);
    count_copied(src.len());
}

/// Total bytes of frame data copied by this process so far.
pub fn bytes_copied() -> u64 {
    BYTES_COPIED.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_count_for_the_process_and_for_the_thread_that_made_them() {
        let node = Arc::new(AtomicU64::new(0));
        let before = bytes_copied();
        let counter = Arc::clone(&node);
        std::thread::spawn(move || {
            count_thread_copies_in(counter);
            copy_frame_bytes(&mut [0u8; 10], &[1u8; 10]);
        })
        .join()
        .unwrap();
        count_copied(5);
        assert_eq!(node.load(Ordering::Relaxed), 10, "only the node thread's copies");
        assert!(bytes_copied() >= before + 15, "every copy counts for the process");
    }

    #[test]
    fn leases_share_memory_and_return_it() {
        let pool = BufferPool::new(16, 2);
        let mut a = pool.acquire().unwrap();
        a[0] = 7;
        let a = a.freeze();
        let b = a.clone();
        assert!(a.same_memory(&b));
        assert_eq!(b.bytes()[0], 7);
        assert_eq!(a.lease_count(), 2);
        assert_eq!(pool.stats().in_use, 1);
        drop(a);
        assert_eq!(pool.stats().in_use, 1, "one lease still out");
        drop(b);
        assert_eq!(pool.stats().in_use, 0);
        let again = pool.acquire().unwrap();
        assert_eq!(again[0], 7, "the same memory came back");
        assert_eq!(pool.stats().allocated, 1);
    }

    #[test]
    fn an_empty_pool_refuses_and_counts() {
        let pool = BufferPool::new(8, 2);
        let a = pool.acquire().unwrap();
        let b = pool.acquire().unwrap();
        assert!(pool.acquire().is_none());
        assert!(pool.acquire().is_none());
        assert_eq!(pool.stats().exhausted, 2);
        assert_eq!(pool.stats().allocated, 2);
        drop(a);
        assert!(pool.acquire().is_some());
        drop(b);
        assert_eq!(pool.stats().allocated, 2);
    }

    #[test]
    fn acquire_timeout_waits_for_a_returned_buffer() {
        let pool = BufferPool::new(8, 1);
        let held = pool.acquire().unwrap().freeze();
        assert!(pool.acquire_timeout(Duration::from_millis(10)).is_none());
        let releaser = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            drop(held);
        });
        assert!(
            pool.acquire_timeout(Duration::from_secs(10)).is_some(),
            "the returned buffer was handed over"
        );
        releaser.join().unwrap();
        assert_eq!(pool.stats().exhausted, 1);
    }

    #[test]
    fn copies_are_counted() {
        let before = bytes_copied();
        let mut dst = [0u8; 100];
        copy_frame_bytes(&mut dst, &[7u8; 100]);
        assert_eq!(dst, [7u8; 100]);
        assert!(bytes_copied() >= before + 100);
    }

    #[test]
    fn writing_in_place_needs_the_only_lease() {
        let pool = BufferPool::new(4, 1);
        let mut a = pool.acquire().unwrap().freeze();
        assert!(a.get_mut().is_some());
        let b = a.clone();
        assert!(a.get_mut().is_none());
        drop(b);
        a.get_mut().unwrap()[3] = 1;
        assert_eq!(a.bytes(), &[0, 0, 0, 1]);
    }
}

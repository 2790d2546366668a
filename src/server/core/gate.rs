//! Admission under load: a bounded set of holders where a newcomer evicts
//! the oldest holder that is not busy.
//!
//! Slow and idle clients are cheap to create and expensive to serve: a
//! connection that trickles its request head, or an `/auth` body that
//! never ends, holds a slot for as long as the client likes. Refusing the
//! newcomer when full would let a few hundred such clients lock everybody
//! out; evicting the *oldest idle* one instead means an attacker's slots
//! are recycled under pressure while a real client, which sends its
//! request at once and then is busy, gets through. A holder is busy while
//! it serves a request that passed the session check (see
//! [`Pass::busy`]); busy holders are never evicted.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

struct Entry {
    token: CancellationToken,
    busy: Arc<AtomicUsize>,
}

#[derive(Default)]
struct Inner {
    next: u64,
    /// By admission order: the first is the oldest.
    entries: BTreeMap<u64, Entry>,
    evicted: u64,
}

/// A bounded set of holders (connections of one front door, or
/// unauthenticated requests).
pub(crate) struct Gate {
    name: &'static str,
    max: usize,
    inner: Mutex<Inner>,
}

/// One holder's place; dropping it frees the place.
pub(crate) struct Pass {
    gate: Arc<Gate>,
    id: u64,
    token: CancellationToken,
    busy: Arc<AtomicUsize>,
}

/// Marks its holder busy (not evictable) while it lives.
pub(crate) struct Busy(Arc<AtomicUsize>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Gate {
    /// A gate for at most `max` holders (at least one).
    pub(crate) fn new(name: &'static str, max: usize) -> Arc<Gate> {
        Arc::new(Gate {
            name,
            max: max.max(1),
            inner: Mutex::default(),
        })
    }

    /// Admits a newcomer. When the gate is full, the oldest holder that is
    /// not busy is evicted (its [`Pass::evicted`] resolves) to make room;
    /// when every holder is busy, the newcomer is refused (None).
    pub(crate) fn enter(self: &Arc<Self>) -> Option<Pass> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if inner.entries.len() >= self.max {
            let victim = inner
                .entries
                .iter()
                .find(|(_, e)| e.busy.load(Ordering::Acquire) == 0)
                .map(|(id, _)| *id);
            let Some(victim) = victim else {
                log::warn!(
                    "{}: all {} places busy; refusing a newcomer",
                    self.name,
                    self.max
                );
                return None;
            };
            if let Some(e) = inner.entries.remove(&victim) {
                e.token.cancel();
            }
            inner.evicted += 1;
            // One line per 1,000 evictions: the attacker chooses the rate.
            if inner.evicted % 1000 == 1 {
                log::warn!(
                    "{}: full ({}); evicting the oldest idle or unauthenticated holders ({} so far)",
                    self.name,
                    self.max,
                    inner.evicted
                );
            }
        }
        let id = inner.next;
        inner.next += 1;
        let token = CancellationToken::new();
        let busy = Arc::new(AtomicUsize::new(0));
        inner.entries.insert(
            id,
            Entry {
                token: token.clone(),
                busy: busy.clone(),
            },
        );
        Some(Pass {
            gate: self.clone(),
            id,
            token,
            busy,
        })
    }

    /// How many holders there are now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entries
            .len()
    }

    /// The most holders.
    pub(crate) fn max(&self) -> usize {
        self.max
    }
}

impl Pass {
    /// Resolves when this holder was evicted to make room.
    pub(crate) async fn evicted(&self) {
        self.token.cancelled().await
    }

    /// Whether this holder was evicted.
    #[cfg(test)]
    pub(crate) fn is_evicted(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Marks the holder busy until the guard is dropped (nestable).
    pub(crate) fn busy(&self) -> Busy {
        self.busy.fetch_add(1, Ordering::AcqRel);
        Busy(self.busy.clone())
    }
}

impl Drop for Pass {
    fn drop(&mut self) {
        let mut inner = self.gate.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.entries.remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_idle_holder_makes_room() {
        let g = Gate::new("test", 3);
        let a = g.enter().unwrap();
        let b = g.enter().unwrap();
        let _busy_b = b.busy();
        let c = g.enter().unwrap();
        assert_eq!(g.len(), 3);
        // Full: the oldest idle one (a) goes, b is busy and stays.
        let d = g.enter().unwrap();
        assert!(a.is_evicted() && !b.is_evicted() && !c.is_evicted());
        assert_eq!(g.len(), 3);
        // Dropping an evicted pass frees nothing twice.
        drop(a);
        assert_eq!(g.len(), 3);
        let _e = g.enter().unwrap();
        assert!(c.is_evicted() && !d.is_evicted());
    }

    #[test]
    fn all_busy_refuses_the_newcomer_and_busy_ends_with_its_guard() {
        let g = Gate::new("test", 2);
        let a = g.enter().unwrap();
        let b = g.enter().unwrap();
        let ga = a.busy();
        let _gb = b.busy();
        assert!(g.enter().is_none());
        assert!(!a.is_evicted() && !b.is_evicted());
        drop(ga);
        let _c = g.enter().unwrap();
        assert!(a.is_evicted());
        drop(b);
        assert_eq!(g.len(), 1);
    }

    #[tokio::test]
    async fn eviction_wakes_the_holder() {
        let g = Gate::new("test", 1);
        let a = g.enter().unwrap();
        let waiter = tokio::spawn(async move {
            a.evicted().await;
        });
        let _b = g.enter().unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap();
    }
}

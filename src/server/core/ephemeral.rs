//! Ephemeral ECDH key pairs made ahead of logins, off the login path.

use std::sync::{Arc, OnceLock};

use crate::proto::handshake::Ephemeral;

/// How many ephemeral keys are kept ready.
const EPHEMERALS_READY: usize = 4;

/// Ephemeral ECDH key pairs generated off the login path: each login takes
/// one (used once, then dropped and zeroised) and a background thread
/// replaces it, so a login pays for one P-256 scalar multiplication less.
/// The thread runs under `SCHED_IDLE`: refilling never competes with a
/// login (or anything else) for a core.
#[derive(Default)]
pub struct EphemeralPool {
    ready: Arc<std::sync::Mutex<Vec<Ephemeral>>>,
    wake: OnceLock<Option<std::sync::mpsc::SyncSender<()>>>,
}

impl EphemeralPool {
    /// A ready key, or a fresh one if none is ready; asks for a refill.
    pub(crate) fn take(&self) -> Ephemeral {
        let ready = self.ready.lock().ok().and_then(|mut v| v.pop());
        if let Some(tx) = self.wake.get_or_init(|| self.start()) {
            let _ = tx.try_send(());
        }
        ready.unwrap_or_else(Ephemeral::generate)
    }

    fn start(&self) -> Option<std::sync::mpsc::SyncSender<()>> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<()>(1);
        let ready = self.ready.clone();
        std::thread::Builder::new()
            .name("remod-keygen".into())
            .spawn(move || {
                let idle = libc::sched_param { sched_priority: 0 };
                // SAFETY: plain system call on this thread with a valid param.
                unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &idle) };
                while rx.recv().is_ok() {
                    while ready
                        .lock()
                        .map(|v| v.len() < EPHEMERALS_READY)
                        .unwrap_or(false)
                    {
                        let k = Ephemeral::generate();
                        if let Ok(mut v) = ready.lock() {
                            v.push(k);
                        }
                    }
                }
            })
            .ok()
            .map(|_| tx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn ephemerals_are_never_reused_and_the_pool_refills() {
        let pool = EphemeralPool::default();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..3 * EPHEMERALS_READY {
            assert!(
                seen.insert(*pool.take().public_sec1()),
                "a key came out twice"
            );
        }
        // The idle-priority thread fills the pool back up (generously
        // waited for: it only runs when a core is free).
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while pool.ready.lock().map(|v| v.len()).unwrap_or(0) < EPHEMERALS_READY {
            assert!(std::time::Instant::now() < deadline, "pool never refilled");
            std::thread::sleep(Duration::from_millis(10));
        }
        let ready: Vec<[u8; 65]> = pool
            .ready
            .lock()
            .unwrap()
            .iter()
            .map(|e| *e.public_sec1())
            .collect();
        for k in &ready {
            assert!(!seen.contains(k), "a used key went back into the pool");
        }
    }
}

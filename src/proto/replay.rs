//! The anti-replay window on request numbers (PROTOCOL.md §5): a request is
//! fresh if its `R` was never seen in the session and is greater than the
//! highest `R` seen minus 1024. Requests may arrive out of order.

/// Width of the window.
pub(crate) const WINDOW: u64 = 1024;
const WORDS: usize = (WINDOW / 64) as usize;

/// Why a request number was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ReplayError {
    /// Seen before.
    #[error("request number already used")]
    Duplicate,
    /// Older than the window.
    #[error("request number too old")]
    TooOld,
    /// `R = 0` is never sent: clients start at 1.
    #[error("request number 0 is invalid")]
    Zero,
}

/// A sliding bitmap of the last [`WINDOW`] request numbers.
#[derive(Debug, Clone, Default)]
pub(crate) struct ReplayWindow {
    highest: u64,
    /// Bit `k` (counting from bit 0 of word 0) marks `highest - k` as seen.
    bits: [u64; WORDS],
}

impl ReplayWindow {
    /// A window that has seen nothing.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    fn bit(&self, k: u64) -> bool {
        let (w, b) = ((k / 64) as usize, k % 64);
        self.bits.get(w).is_some_and(|word| word & (1u64 << b) != 0)
    }

    fn set(&mut self, k: u64) {
        let (w, b) = ((k / 64) as usize, k % 64);
        if let Some(word) = self.bits.get_mut(w) {
            *word |= 1u64 << b;
        }
    }

    fn shift(&mut self, by: u64) {
        if by >= WINDOW {
            self.bits = [0; WORDS];
            return;
        }
        let words = (by / 64) as usize;
        let bits = (by % 64) as u32;
        let mut next = [0u64; WORDS];
        for (i, slot) in next.iter_mut().enumerate() {
            let Some(src) = i.checked_sub(words) else {
                continue;
            };
            let lo = self.bits.get(src).copied().unwrap_or(0);
            let carry = if bits == 0 || src == 0 {
                0
            } else {
                self.bits.get(src - 1).copied().unwrap_or(0) >> (64 - bits)
            };
            *slot = (lo << bits) | carry;
        }
        self.bits = next;
    }

    /// Checks `r` and, if fresh, records it as seen.
    pub(crate) fn check_and_mark(&mut self, r: u64) -> Result<(), ReplayError> {
        if r == 0 {
            return Err(ReplayError::Zero);
        }
        if r > self.highest {
            self.shift(r - self.highest);
            self.highest = r;
            self.set(0);
            return Ok(());
        }
        let age = self.highest - r;
        if age >= WINDOW {
            return Err(ReplayError::TooOld);
        }
        if self.bit(age) {
            return Err(ReplayError::Duplicate);
        }
        self.set(age);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn in_order_duplicates_and_old() {
        let mut w = ReplayWindow::new();
        for r in 1..=3000 {
            assert_eq!(w.check_and_mark(r), Ok(()));
        }
        assert_eq!(w.check_and_mark(3000), Err(ReplayError::Duplicate));
        assert_eq!(w.check_and_mark(2000), Err(ReplayError::Duplicate));
        assert_eq!(w.check_and_mark(1976), Err(ReplayError::TooOld));
        assert_eq!(w.check_and_mark(0), Err(ReplayError::Zero));
    }

    #[test]
    fn out_of_order_within_window() {
        let mut w = ReplayWindow::new();
        assert_eq!(w.check_and_mark(2000), Ok(()));
        assert_eq!(w.check_and_mark(977), Ok(())); // 2000 - 977 = 1023
        assert_eq!(w.check_and_mark(976), Err(ReplayError::TooOld));
        assert_eq!(w.check_and_mark(1500), Ok(()));
        assert_eq!(w.check_and_mark(1500), Err(ReplayError::Duplicate));
        assert_eq!(w.check_and_mark(2001), Ok(()));
        assert_eq!(w.check_and_mark(1500), Err(ReplayError::Duplicate));
        assert_eq!(w.check_and_mark(977), Err(ReplayError::TooOld));
    }

    /// Model check against a set: the window must agree with the spec's
    /// definition for an arbitrary arrival order.
    #[test]
    fn agrees_with_a_set_model() {
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        // Fewer rounds under Miri, which interprets every hash.
        let (rounds, steps) = if cfg!(miri) { (2, 400) } else { (20, 5000) };
        for _ in 0..rounds {
            let mut w = ReplayWindow::new();
            let mut seen = HashSet::new();
            let mut highest = 0u64;
            let mut base = 1u64;
            for _ in 0..steps {
                let r = base + next() % 1400;
                if next() % 4 == 0 {
                    base += next() % 100;
                }
                let fresh = !seen.contains(&r) && r + WINDOW > highest;
                assert_eq!(
                    w.check_and_mark(r).is_ok(),
                    fresh,
                    "r={r} highest={highest}"
                );
                if fresh {
                    seen.insert(r);
                    highest = highest.max(r);
                }
            }
        }
    }
}

//! The kernel's lock order, and the per-CPU record of held locks that
//! checks it: a lock may be taken only while every lock its CPU holds is
//! strictly outer (a smaller [`Rank`]).
//!
//! Rules: one total order, written here once (docs/kernel.md quotes it);
//! a CPU that follows it can never be part of a wait cycle, since a cycle
//! needs some CPU to wait for an outer lock while holding an inner one.
//! Taking a lock already held (a self-deadlock) is a violation too. The
//! record is a bit set per CPU, kept by that CPU only; the kernel keeps it
//! only in its checked build (feature `lock-check`), where a violation
//! stops the machine naming both locks, before any waiting could hide it.

use core::fmt;

/// The kernel's locks, outermost first.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rank {
    /// `sched::SCHED`: processes, devices, the scheduler.
    Sched,
    /// The I/O MMU units (root and context tables, the invalidation queue).
    IommuUnits,
    /// Which interrupt-remapping entry each I/O APIC line uses.
    IoApicEntries,
    /// The I/O APICs' registers.
    IoApics,
    /// The heap's size classes.
    HeapSmall,
    /// The heap's deferred multi-page frees.
    HeapDeferred,
    /// The heap's virtual address space for multi-page blocks.
    HeapVmalloc,
    /// The kernel's page table.
    KernelTable,
    /// Where page-table frames come from.
    TableFrames,
    /// The frame table.
    Frames,
    /// The log ring and the serial port.
    Log,
}

impl Rank {
    /// Every rank, outermost first.
    pub const ALL: [Rank; 11] = [
        Rank::Sched,
        Rank::IommuUnits,
        Rank::IoApicEntries,
        Rank::IoApics,
        Rank::HeapSmall,
        Rank::HeapDeferred,
        Rank::HeapVmalloc,
        Rank::KernelTable,
        Rank::TableFrames,
        Rank::Frames,
        Rank::Log,
    ];

    /// The name the kernel's code gives the lock.
    pub fn name(self) -> &'static str {
        match self {
            Rank::Sched => "SCHED",
            Rank::IommuUnits => "iommu UNITS",
            Rank::IoApicEntries => "IOAPIC_ENTRIES",
            Rank::IoApics => "IOAPICS",
            Rank::HeapSmall => "heap small",
            Rank::HeapDeferred => "heap deferred",
            Rank::HeapVmalloc => "heap vmalloc",
            Rank::KernelTable => "KERNEL_TABLE",
            Rank::TableFrames => "TABLE_FRAMES",
            Rank::Frames => "FRAMES",
            Rank::Log => "LOG",
        }
    }

    const fn bit(self) -> u32 {
        1 << self as u8
    }
}

/// The locks one CPU holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Held(u32);

/// A lock taken out of order: `taking` while `holding` (the innermost
/// lock held that is not outer to it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Violation {
    pub taking: Rank,
    pub holding: Rank,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "lock order: taking {} while holding {}",
            self.taking.name(),
            self.holding.name()
        )
    }
}

impl Held {
    pub const NONE: Held = Held(0);

    /// The set as stored in a per-CPU word.
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// A set read back from [`Held::bits`] (unknown bits are dropped).
    pub const fn from_bits(bits: u32) -> Held {
        Held(bits & ((1 << Rank::ALL.len()) - 1))
    }

    /// Whether `rank` is held.
    pub fn holds(self, rank: Rank) -> bool {
        self.0 & rank.bit() != 0
    }

    /// The innermost lock held.
    pub fn innermost(self) -> Option<Rank> {
        Rank::ALL.iter().rev().copied().find(|&r| self.holds(r))
    }

    /// The set after taking `rank`, if the order allows it.
    pub fn take(self, rank: Rank) -> Result<Held, Violation> {
        // Every held lock must be outer: no bit at `rank` or above.
        let not_outer = self.0 & !(rank.bit() - 1);
        if not_outer != 0 {
            let holding = Held(not_outer).innermost().unwrap_or(rank);
            return Err(Violation {
                taking: rank,
                holding,
            });
        }
        Ok(Held(self.0 | rank.bit()))
    }

    /// The set after releasing `rank` (locks may be released in any order).
    pub fn release(self, rank: Rank) -> Held {
        Held(self.0 & !rank.bit())
    }

    /// Whether nothing but locks in `allowed` is held.
    pub fn only(self, allowed: &[Rank]) -> bool {
        let mask = allowed.iter().fold(0, |m, r| m | r.bit());
        self.0 & !mask == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    #[test]
    fn the_order_is_the_declaration_order_and_fits_the_word() {
        for pair in Rank::ALL.windows(2) {
            assert!(pair[0] < pair[1]);
        }
        assert!(Rank::ALL.len() <= 32);
        for (i, r) in Rank::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
        }
    }

    #[test]
    fn outer_to_inner_is_allowed_and_the_reverse_is_named() {
        let h = Held::NONE.take(Rank::Sched).unwrap();
        let h = h.take(Rank::HeapSmall).unwrap();
        let h = h.take(Rank::Frames).unwrap();
        assert_eq!(
            h.take(Rank::KernelTable),
            Err(Violation {
                taking: Rank::KernelTable,
                holding: Rank::Frames
            })
        );
        assert_eq!(
            h.take(Rank::Sched).unwrap_err().to_string(),
            "lock order: taking SCHED while holding FRAMES"
        );
        // Released inner first or outer first, the set empties.
        assert_eq!(
            h.release(Rank::Sched)
                .release(Rank::Frames)
                .release(Rank::HeapSmall),
            Held::NONE
        );
    }

    #[test]
    fn taking_a_held_lock_again_is_a_violation() {
        let h = Held::NONE.take(Rank::Log).unwrap();
        assert_eq!(
            h.take(Rank::Log),
            Err(Violation {
                taking: Rank::Log,
                holding: Rank::Log
            })
        );
    }

    #[test]
    fn only_names_what_may_be_held() {
        let h = Held::NONE.take(Rank::Sched).unwrap();
        assert!(h.only(&[Rank::Sched]));
        assert!(Held::NONE.only(&[]));
        assert!(!h.take(Rank::Frames).unwrap().only(&[Rank::Sched]));
        assert_eq!(Held::from_bits(u32::MAX).bits().count_ones(), 11);
    }

    /// Every sequence of takes the checker allows is in increasing rank
    /// order, and every increasing sequence is allowed: the checker is
    /// exactly the order, no stricter and no looser.
    #[test]
    fn the_checker_allows_exactly_the_increasing_sequences() {
        let mut rng = crate::testrng::Rng(0x10c4);
        for _ in 0..2000 {
            let len = rng.below(6) as usize;
            let seq: Vec<Rank> = (0..len)
                .map(|_| Rank::ALL[rng.below(Rank::ALL.len() as u64) as usize])
                .collect();
            let increasing = seq.windows(2).all(|w| w[0] < w[1]);
            let allowed = seq.iter().try_fold(Held::NONE, |h, &r| h.take(r)).is_ok();
            assert_eq!(allowed, increasing, "{seq:?}");
        }
    }
}

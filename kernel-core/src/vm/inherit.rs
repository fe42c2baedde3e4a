//! What fork and the end of an address space do with each page: the
//! kernel walks whole page trees itself (`PageTree::fork_into`, `destroy`)
//! and hands every leaf entry here.
//!
//! Rules: the same as `vm`'s; in particular a frame's reference count
//! stays the number of entries that map it (fork adds one per shared
//! page, release drops one), a wired page is copied rather than shared
//! (a device may be writing it), and a wired page's frame released with
//! its address space is handed back for quarantine, never freed.

use super::{Codec, FrameOps, Kind, Mapping};
#[cfg(test)]
use super::{PageTableOps, Vm};
use crate::frame::Frame;
use abi::Error;

/// What fork does with one parent entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ForkedEntry {
    /// The parent's entry after fork.
    pub parent: u64,
    /// The child's entry, if the page is inherited.
    pub child: Option<u64>,
}

/// What releasing an entry did with its frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Released {
    Nothing,
    /// A reference was dropped (the frame may now be free).
    Dropped,
    /// The page was wired: a device may still write the frame, so the
    /// caller must keep it out of circulation (quarantine).
    StillWired(Frame),
}

/// What fork does with one parent entry: private pages become COW on both
/// sides (one more reference, remembering whether they were writable), COW
/// pages gain a sharer, wired pages are copied for the child (the parent's
/// stay pinned and private), I/O mappings are not inherited. Fails only
/// when copying a wired page finds no frame (nothing changed then).
pub fn fork_pte<F: FrameOps>(codec: Codec, frames: &mut F, pte: u64) -> Result<ForkedEntry, Error> {
    let Some(m) = codec.decode(pte) else {
        return Ok(ForkedEntry {
            parent: pte,
            child: None,
        });
    };
    match m.kind {
        Kind::Io => Ok(ForkedEntry {
            parent: pte,
            child: None,
        }),
        _ if m.wires > 0 => {
            let copy = frames.alloc_zeroed().ok_or(Error::OutOfMemory)?;
            frames.copy(copy, m.frame);
            let child = codec.encode(&Mapping::private(copy, m.prot));
            Ok(ForkedEntry {
                parent: pte,
                child: Some(child),
            })
        }
        Kind::Private => {
            let shared = codec.encode(&Mapping {
                kind: Kind::Cow,
                prot: m.prot.without_write(),
                was_writable: m.was_writable || m.prot.write,
                ..m
            });
            frames.add_ref(m.frame);
            Ok(ForkedEntry {
                parent: shared,
                child: Some(shared),
            })
        }
        Kind::Cow => {
            frames.add_ref(m.frame);
            Ok(ForkedEntry {
                parent: pte,
                child: Some(pte),
            })
        }
    }
}

/// Releases a raw entry that is no longer in any table (the kernel's
/// page-table teardown walks tables itself and hands each leaf here).
pub fn release_entry<F: FrameOps>(codec: Codec, frames: &mut F, pte: u64) -> Released {
    match codec.decode(pte) {
        None => Released::Nothing,
        Some(m) if m.kind == Kind::Io => Released::Nothing,
        Some(m) if m.wires > 0 => Released::StillWired(m.frame),
        Some(m) => {
            frames.release(m.frame);
            Released::Dropped
        }
    }
}

#[cfg(test)]
impl<P: PageTableOps, F: FrameOps> Vm<'_, P, F> {
    /// What fork does with the parent's entry at `va` (see [`fork_pte`]);
    /// updates the parent's entry and returns the child's. The kernel forks
    /// whole trees (`PageTree::fork_into` with `fork_pte`); the tests fork
    /// entry by entry with this.
    #[cfg(test)]
    pub fn fork_entry(&mut self, va: u64) -> Result<Option<u64>, Error> {
        let pte = self.pt.entry(va);
        let forked = fork_pte(self.codec, self.frames, pte)?;
        if forked.parent != pte {
            self.pt.set(self.frames, va, forked.parent);
            self.pt.flush(va);
        }
        Ok(forked.child)
    }

    /// Releases what the entry at `va` holds and clears it (the tests'
    /// teardown; the kernel releases whole trees with `release_entry`).
    #[cfg(test)]
    pub fn release(&mut self, va: u64) -> Released {
        let pte = self.pt.entry(va);
        if pte != 0 {
            self.pt.set(self.frames, va, 0);
        }
        release_entry(self.codec, self.frames, pte)
    }
}

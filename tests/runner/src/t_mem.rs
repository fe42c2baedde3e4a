//! Frame reserves through the `mempool` device: usage follows what a
//! process maps and unmaps; past its limit a process gets `OutOfMemory`
//! (and one that allocates without bound dies alone); the rest of the
//! system is unaffected.

use crate::suite::{Fail, Suite};
use crate::util::{free_frames, in_child, poke};
use crate::{ensure, ensure_eq};
use abi::kdev::*;
use abi::layout::USER_HEAP_BASE;
use abi::{Error, ExitKind};
use libmh::dev::{self, Handle, REGISTRY};
use libmh::{process, vm};

const AREA: u64 = 0x5400_0000_0000;
const P: u64 = 4096;

fn fail(e: Error) -> Fail {
    Fail::new(format_args!("{e}"))
}

fn pool() -> Result<Handle, Error> {
    dev::attach(REGISTRY, "mempool", dev::RIGHT_READ | dev::RIGHT_WRITE)
}

fn used(h: Handle, pid: u32) -> Result<u64, Error> {
    h.port_out(MEMPOOL_PORT_SELECT, 4, pid as u64)?;
    h.port_in(MEMPOOL_PORT_USED, 8)
}

/// In a child: a reserve of its own, `extra` frames more than it holds.
fn limit_self(extra: u64) -> Result<(), Error> {
    libmh::mempool::limit_self(extra)
}

pub fn run(s: &mut Suite) {
    s.run("mempool_tracks_what_a_process_holds", || {
        let h = pool().map_err(fail)?;
        let me = process::getpid();
        let before = used(h, me).map_err(fail)?;
        ensure!(before > 10, "used {before}");
        ensure_eq!(h.port_in(MEMPOOL_PORT_LIMIT_NOW, 8), Ok(MEMPOOL_UNLIMITED));
        ensure!(
            h.port_in(MEMPOOL_PORT_FREE, 8).is_ok_and(|f| f > 1000),
            "free frames"
        );
        // A page kept mapped in the area holds its page tables, so the
        // pages below are all that changes (tables are charged too, but
        // whether a map makes new ones depends on what was unmapped before).
        ensure_eq!(vm::map(AREA, P, vm::PROT_RW), Ok(()));
        let anchored = used(h, me).map_err(fail)?;
        ensure_eq!(vm::map(AREA + P, 4 * P, vm::PROT_RW), Ok(()));
        ensure_eq!(used(h, me), Ok(anchored + 4));
        ensure_eq!(vm::unmap(AREA + P, 4 * P), Ok(()));
        ensure_eq!(used(h, me), Ok(anchored));
        ensure_eq!(vm::unmap(AREA, P), Ok(()));
        ensure!(
            used(h, me).is_ok_and(|u| u < anchored),
            "the anchor page is given back"
        );
        ensure_eq!(h.detach(), Ok(()));
        Ok(())
    });

    s.run("a_limit_gives_out_of_memory_and_nothing_else", || {
        let st = in_child(|| {
            // Eight frames more than it holds: pages, and whatever page
            // tables they need (tables are charged too).
            if limit_self(8).is_err() {
                return 1;
            }
            let mut k = 0;
            while k < 16 && vm::map(AREA + k * P, P, vm::PROT_RW).is_ok() {
                k += 1;
            }
            if !(1..=8).contains(&k) {
                return 2;
            }
            // Full: one more page is refused, and a range is refused whole.
            if vm::map(AREA + k * P, P, vm::PROT_RW) != Err(Error::OutOfMemory) {
                return 3;
            }
            // A page given back makes room for exactly one.
            if vm::unmap(AREA, P).is_err() || vm::map(AREA + k * P, P, vm::PROT_RW).is_err() {
                return 4;
            }
            if vm::map(AREA + (k + 1) * P, 2 * P, vm::PROT_RW) != Err(Error::OutOfMemory) {
                return 5;
            }
            0
        })?;
        ensure_eq!(st.code, 0);
        Ok(())
    });

    s.run("a_runaway_allocator_dies_alone", || {
        let before = free_frames();
        let st = in_child(|| {
            if limit_self(64).is_err() {
                return 1;
            }
            // Touch heap pages until the reserve runs out: the demand-zero
            // mapping fails and the process is killed for its fault.
            for i in 0.. {
                poke(USER_HEAP_BASE + 0x800_0000 + i * P, 1);
            }
            2
        })?;
        ensure_eq!((st.kind, st.code), (ExitKind::Faulted as u32, 14));
        ensure!(
            crate::t_syscalls::log_contains(b"page fault: write at 0x1000080"),
            "no report"
        );
        // Everyone else carries on, and every frame came back.
        ensure_eq!(free_frames(), before);
        ensure_eq!(vm::map(AREA, P, vm::PROT_RW), Ok(()));
        ensure_eq!(vm::unmap(AREA, P), Ok(()));
        Ok(())
    });

    s.run("exec_needs_room_for_the_image", || {
        let image = crate::t_exec::tiny_elf_with(&crate::t_exec::PORT_IN_CODE);
        let st = in_child(|| {
            // A reserve of its own with an absolute limit of 5 frames: the
            // image needs its code page and a 64 KiB stack.
            let limited = pool().and_then(|h| {
                h.port_out(MEMPOOL_PORT_SELECT, 4, process::getpid() as u64)?;
                h.port_out(MEMPOOL_PORT_NEW_RESERVE, 8, MEMPOOL_UNLIMITED)?;
                h.port_out(MEMPOOL_PORT_LIMIT, 8, 5)
            });
            if limited.is_err() {
                return 1;
            }
            match process::exec(&image, "tiny") {
                Error::OutOfMemory => 0,
                _ => 2,
            }
        })?;
        ensure_eq!(st.code, 0);
        Ok(())
    });

    s.run("mempool_refusals", || {
        let h = pool().map_err(fail)?;
        h.port_out(MEMPOOL_PORT_SELECT, 4, 99_999).map_err(fail)?;
        ensure_eq!(h.port_in(MEMPOOL_PORT_USED, 8), Err(Error::NotFound));
        ensure_eq!(h.port_out(MEMPOOL_PORT_LIMIT, 8, 10), Err(Error::NotFound));
        ensure_eq!(
            h.port_out(MEMPOOL_PORT_LIMIT, 4, 10),
            Err(Error::InvalidArgument)
        );
        ensure_eq!(h.port_in(MEMPOOL_PORT_USED, 4), Err(Error::InvalidArgument));
        ensure_eq!(h.port_in(99, 8), Err(Error::InvalidArgument));
        ensure_eq!(h.port_out(99, 8, 0), Err(Error::InvalidArgument));
        ensure_eq!(
            dev::attach(REGISTRY, "mempool", dev::RIGHT_DMA),
            Err(Error::AccessDenied)
        );
        let ro = dev::attach(REGISTRY, "mempool", dev::RIGHT_READ).map_err(fail)?;
        ensure_eq!(
            ro.port_out(MEMPOOL_PORT_LIMIT, 8, 10),
            Err(Error::AccessDenied)
        );
        ensure_eq!((h.detach(), ro.detach()), (Ok(()), Ok(())));
        Ok(())
    });
}

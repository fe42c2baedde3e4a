//! The allocator and the mem server: a small and a page-sized allocation
//! freed at once (libmh's global allocator, no system call once the heap
//! has grown), and the two requests a program makes of mem — a grant of
//! one frame and a usage report, each one round trip. The mem benchmarks
//! start the server from bootfs (module `mem`); mhbench, its parent, is
//! its supervisor, which is how it gives itself a ceiling and a limit to
//! grant against. The server is killed and reaped afterwards.

use crate::measure::{self, Fail};
use abi::kdev::{MEMPOOL_PORT_LIMIT, MEMPOOL_PORT_SELECT, MEMPOOL_UNLIMITED};
use alloc::boxed::Box;
use libmh::dev::{self, REGISTRY};
use libmh::mem::Mem;
use libmh::process;

const REPLY: u32 = 22;

/// `Box::new` and drop of 32 bytes (a size-class block).
pub fn alloc_free_small() -> Result<(u64, u64), Fail> {
    const N: u64 = 20_000;
    let per = measure::run(N, 100, &mut |i| {
        core::hint::black_box(Box::new([i as u8; 32]));
        Ok(())
    })?;
    Ok((per, N))
}

/// `Box::new` and drop of 4 KiB (from the merging free list).
pub fn alloc_free_4k() -> Result<(u64, u64), Fail> {
    const N: u64 = 10_000;
    let per = measure::run(N, 100, &mut |i| {
        let b = Box::new([i as u8; 4096]);
        core::hint::black_box(&b);
        Ok(())
    })?;
    Ok((per, N))
}

/// Runs `f` with the mem server up and opened, then kills and reaps it.
fn with_mem(f: impl FnOnce(&Mem) -> Result<u64, Fail>) -> Result<u64, Fail> {
    let pid = crate::servers::spawn("mem")?;
    let m = crate::servers::open_when_up("the mem server ended early", || Mem::open(REPLY))?;
    let result = f(&m);
    m.close()?;
    crate::servers::stop(pid)?;
    result
}

/// `Mem::grant(1)`: one round trip, the server raising our limit by a
/// frame. mhbench gives itself a ceiling far above its limit first, and
/// takes its limit away afterwards.
pub fn grant() -> Result<(u64, u64), Fail> {
    const N: u64 = 2_000;
    let per = with_mem(|m| {
        let me = process::getpid();
        let (used, ceiling) = (m.usage()?.used, 1 << 30);
        m.set_ceiling(me, ceiling)?;
        m.set_limit(me, used + 10_000)?;
        let r = measure::run(N, 10, &mut |_| {
            m.grant(1)?;
            Ok(())
        });
        let pool = dev::attach(REGISTRY, "mempool", dev::RIGHT_WRITE)?;
        pool.port_out(MEMPOOL_PORT_SELECT, 4, me as u64)?;
        pool.port_out(MEMPOOL_PORT_LIMIT, 8, MEMPOOL_UNLIMITED)?;
        pool.detach()?;
        r
    })?;
    Ok((per, N))
}

/// `Mem::usage()`: one round trip plus the three `port_in`s of the
/// published fields.
pub fn usage() -> Result<(u64, u64), Fail> {
    const N: u64 = 2_000;
    let per = with_mem(|m| {
        measure::run(N, 10, &mut |_| {
            core::hint::black_box(m.usage()?);
            Ok(())
        })
    })?;
    Ok((per, N))
}

//! The IPC fast path against the general path: for random situations
//! around a client/server pair (a server polling or not, or polling into
//! memory; queued requests; pending interrupts, handlers; more urgent
//! processes ready; wrong handles, bad sizes, masks, lines, clients), the
//! same `port_out_wait` or `dev_reply_poll` is made on two kernels built
//! alike from one seed: on A as the trap glue makes it (`ipc_fast_path`,
//! falling back to `dispatch`), on B through `dispatch` alone, each then
//! settling as its glue does. Everything observable must be the same
//! afterwards: the result, every process (registers, state, pending
//! interrupts, handles, memory), the current process and the scheduler's
//! queues, every device's records (queues, I/O spaces, in-flight client),
//! the reserves, and the fake machine (every frame's references and
//! contents, the log, the installed frame and page table).
//!
//! The fake machine's state is per thread, so A is built, called and
//! recorded first, then the machine is reset and B is built the same way.
//!
//! This file holds the trap glue both kernels share (`trap`), a case run
//! on both (`case`) and the test; `build` makes a case's kernel and call
//! from its seed, `snapshot` records what can be observed and finds the
//! first difference. Rules: a case is a pure function of its seed (both
//! builds must agree on the call), and nothing is left out of a snapshot
//! that a process or the machine could observe.

mod build;
mod snapshot;

use self::build::{Built, Kind, build};
use self::snapshot::{difference, snapshot};
use super::Kernel;
use super::audit::Auditor;
use super::model::RET_PC;
use crate::fake::{Fake, FakeFrame};
use crate::machine::UserFrame;
use crate::syscall::{self, Args};
use abi::Sysno;

/// One system call as the trap glue makes it; `fast`: the IPC fast path
/// first (as `syscall_ipc_from_user` does). Returns the result if the
/// caller simply returns, and whether the fast path took the call.
fn trap(k: &mut Kernel<Fake>, n: Sysno, a: [u64; 6], fast: bool) -> (Option<isize>, bool) {
    {
        let f = &mut k.current().frame;
        let (rsp, rflags) = (f.rsp, f.rflags);
        *f = FakeFrame::call(n as u64, a);
        f.rip = RET_PC;
        f.rsp = rsp;
        f.rflags = rflags;
    }
    let fused = matches!(n, Sysno::PortOutWait | Sysno::DevReplyPoll);
    if fast && fused && k.ipc_fast_path(n as u64, &a) {
        return (None, true);
    }
    let ret = syscall::dispatch(
        k,
        &Args {
            number: n as u64,
            a,
        },
    );
    if let Some(r) = ret {
        k.current().frame.set_result(r as u64);
    }
    let _ = k.settle();
    (ret, false)
}

/// The result a call left in the current process's frame.
fn result(k: &mut Kernel<Fake>) -> isize {
    k.current().frame.result() as isize
}

/// Runs case `seed` on both kernels; returns its kind and whether the
/// fast path took the call.
fn case(seed: u64) -> (Kind, bool) {
    let Built { mut k, kind, n, a } = build(seed);
    let (ret, fast) = trap(&mut k, n, a, true);
    if let Err(e) = Auditor::default().check(&k, true, true) {
        panic!("seed {seed}: after {n:?} {a:x?} on the fast-path kernel: {e}");
    }
    let on_a = snapshot(&mut k, ret);
    drop(k);
    let Built {
        mut k,
        kind: kind_b,
        n: n_b,
        a: a_b,
    } = build(seed);
    assert_eq!(
        (kind, n, a),
        (kind_b, n_b, a_b),
        "seed {seed}: the two builds differ"
    );
    let (ret, _) = trap(&mut k, n, a, false);
    let on_b = snapshot(&mut k, ret);
    if on_a != on_b {
        panic!(
            "seed {seed} ({kind:?}, fast path {fast}): {n:?} {a:x?} differs in {}",
            difference(&on_a, &on_b)
        );
    }
    (kind, fast)
}

#[test]
fn the_fast_path_does_what_the_general_path_does() {
    let t = std::time::Instant::now();
    // FASTPATH_CASES=n runs more (the seeds are the case numbers).
    let cases: u64 = std::env::var("FASTPATH_CASES").map_or(1000, |n| n.parse().unwrap());
    let mut fast = [0u32; 3];
    let mut all = [0u32; 3];
    for seed in 0..cases {
        let (kind, f) = case(seed);
        all[kind as usize] += 1;
        fast[kind as usize] += u32::from(f);
    }
    eprintln!(
        "fast path: {fast:?} of {all:?} (client, server, other) in {:?}",
        t.elapsed()
    );
    let taken: u32 = fast.iter().sum();
    assert!(
        u64::from(taken) * 5 > cases,
        "only {taken} of {cases} cases took the fast path"
    );
    assert!(
        fast[0] * 10 > all[0] && fast[1] * 10 > all[1],
        "both halves take the fast path"
    );
}

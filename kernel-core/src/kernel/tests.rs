//! The scheduler and the process lifecycle on the fake machine: fork,
//! exit, wait, kill and kill-tree, zombies and orphans, pid reuse,
//! priorities, ticks and the hand-off.

use super::*;
use crate::fake::{self, Fake, FakeFrame};
use crate::machine::UserFrame;
use crate::process::{INIT_PID, State};
use crate::syscall::{self, Args};
use abi::{Error, ExitStatus, Sysno};

/// A user address where tests keep the structures calls write.
pub const SCRATCH: u64 = 0x5000_0000_0000;

/// A booted kernel: init (pid 1) current, with a scratch page mapped.
pub fn boot() -> Kernel<Fake> {
    fake::reset(4096);
    let mut k = Kernel::<Fake>::new();
    crate::devices::init(&mut k.devices).unwrap();
    let init = fake::tiny_elf(&[0x90; 16]);
    assert_eq!(k.start_init(&init, "init test").unwrap(), INIT_PID);
    assert_eq!(k.settle(), Settled::Run);
    assert_eq!(
        call(&mut k, Sysno::VmMap, [SCRATCH, 4096, 3, 0, 0, 0]),
        Some(0)
    );
    k
}

/// The current process makes system call `n`, as the trap glue does it:
/// the result goes into its frame if it simply returns; then the kernel
/// settles. `None`: the caller slept, exited or was restarted.
pub fn call(k: &mut Kernel<Fake>, n: Sysno, a: [u64; 6]) -> Option<isize> {
    k.current().frame = FakeFrame::call(n as u64, a);
    k.current().frame.rip = 0x40_1000;
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
    ret
}

/// `call`, expecting an error.
pub fn call_err(k: &mut Kernel<Fake>, n: Sysno, a: [u64; 6]) -> Option<Error> {
    call(k, n, a).map(|r| Error::decode(r).err().unwrap_or(Error::InvalidArgument))
}

/// The exit status `wait_child` wrote to the scratch page.
fn status_written(k: &mut Kernel<Fake>) -> ExitStatus {
    let space = k.current().space.as_mut().unwrap();
    crate::usercopy::UserPtr::<ExitStatus>::new(SCRATCH)
        .unwrap()
        .read::<Fake>(space)
        .unwrap()
}

/// Forks the current process; returns the child's pid (the parent stays
/// current).
pub fn fork(k: &mut Kernel<Fake>) -> Pid {
    let pid = call(k, Sysno::Fork, [0; 6]).expect("fork returns");
    assert!(pid > 0, "fork failed: {pid}");
    pid as Pid
}

#[test]
fn init_runs_and_alone_yield_returns() {
    let mut k = boot();
    assert_eq!(k.current_pid(), INIT_PID);
    assert_eq!(call(&mut k, Sysno::GetPid, [0; 6]), Some(1));
    assert_eq!(call(&mut k, Sysno::Yield, [0; 6]), Some(0));
    assert_eq!(k.current_pid(), INIT_PID);
    assert_eq!(
        call_err(&mut k, Sysno::WaitChild, [SCRATCH, 0, 0, 0, 0, 0]),
        Some(Error::NoChildren)
    );
}

#[test]
fn fork_exit_wait_reaps_the_child_and_gives_everything_back() {
    let mut k = boot();
    let before = fake::with(|s| s.used());
    let child = fork(&mut k);
    assert_eq!(k.process_count(), 2);
    // The parent waits: the child runs, with 0 from its fork.
    assert_eq!(
        call(&mut k, Sysno::WaitChild, [SCRATCH, 0, 0, 0, 0, 0]),
        None
    );
    assert_eq!(k.current_pid(), child);
    assert_eq!(k.current().frame.result(), 0);
    assert_eq!(call(&mut k, Sysno::Exit, [7, 0, 0, 0, 0, 0]), None);
    // The parent's wait is made again and finds the zombie.
    assert_eq!(k.current_pid(), INIT_PID);
    assert_eq!(
        call(&mut k, Sysno::WaitChild, [SCRATCH, 0, 0, 0, 0, 0]),
        Some(child as isize)
    );
    let st = status_written(&mut k);
    assert_eq!(
        (st.pid, st.kind, st.code),
        (child, abi::ExitKind::Exited as u32, 7)
    );
    assert_eq!(k.process_count(), 1);
    assert_eq!(fake::with(|s| s.used()), before, "every frame back");
}

#[test]
fn orphans_and_their_zombies_go_to_init() {
    let mut k = boot();
    let a = fork(&mut k);
    // Let a run, and fork b and c; c exits before a does.
    assert_eq!(
        call(&mut k, Sysno::WaitChild, [SCRATCH, 0, 0, 0, 0, 0]),
        None
    );
    assert_eq!(k.current_pid(), a);
    let b = fork(&mut k);
    let c = fork(&mut k);
    assert_eq!(call(&mut k, Sysno::Yield, [0; 6]), Some(0));
    // Yield ran b (queued first); b yields to c, c exits.
    assert_eq!(k.current_pid(), b);
    assert_eq!(call(&mut k, Sysno::Yield, [0; 6]), Some(0));
    assert_eq!(k.current_pid(), c);
    assert_eq!(call(&mut k, Sysno::Exit, [3, 0, 0, 0, 0, 0]), None);
    // a runs again and exits: b (live) and c (a zombie) go to init.
    assert_eq!(k.current_pid(), a);
    assert_eq!(call(&mut k, Sysno::Exit, [0; 6]), None);
    let init = k.procs.get(INIT_PID).unwrap();
    assert_eq!(init.first_child, b, "b is init's now");
    assert_eq!(k.procs.get(b).unwrap().parent, INIT_PID);
    // init reaps a and c, in the order they ended: c first (it was a's
    // zombie, handed over), then a... whichever init's queue holds first.
    let mut reaped = Vec::new();
    while k.current_pid() != INIT_PID {
        let _ = call(&mut k, Sysno::Yield, [0; 6]);
    }
    for _ in 0..2 {
        let pid = call(&mut k, Sysno::WaitChild, [SCRATCH, 1, 0, 0, 0, 0]).unwrap();
        reaped.push(pid as Pid);
    }
    reaped.sort();
    assert_eq!(reaped, vec![a, c]);
    assert_eq!(
        call_err(&mut k, Sysno::WaitChild, [SCRATCH, 1, 0, 0, 0, 0]),
        Some(Error::WouldBlock)
    );
    assert_eq!(k.process_count(), 2, "init and b");
}

#[test]
fn a_tick_shares_a_level_after_half_a_tick_and_urgency_preempts() {
    let mut k = boot();
    let child = fork(&mut k);
    assert_eq!(
        call_err(&mut k, Sysno::SetPriority, [child as u64, 0, 0, 0, 0, 0]),
        Some(Error::AccessDenied),
        "never more urgent than the caller"
    );
    // Same level: a tick moves the CPU on only after half a tick.
    assert_eq!(k.current_pid(), INIT_PID);
    fake::with(|s| s.now = 0);
    k.cpus[0].slice_start = 0;
    fake::with(|s| s.now = 10);
    k.tick();
    assert_eq!(k.settle(), Settled::Run);
    assert_eq!(k.current_pid(), INIT_PID, "not yet half a tick");
    fake::with(|s| s.now = 5000);
    k.tick();
    assert_eq!(k.settle(), Settled::Run);
    assert_eq!(k.current_pid(), child, "the tick shared the level");
    // The child makes itself less urgent than init: init runs at once.
    assert_eq!(
        call(&mut k, Sysno::SetPriority, [0, 6, 0, 0, 0, 0]),
        Some(0)
    );
    assert_eq!(k.current_pid(), INIT_PID);
}

#[test]
fn a_sleeping_process_is_woken_by_the_vector_it_waits_for() {
    let mut k = boot();
    let child = fork(&mut k);
    // init sleeps on vector 5; the child raises it on init? It cannot
    // (irq_raise is the caller's own): the kernel raises it, as a device
    // would.
    assert_eq!(call(&mut k, Sysno::IrqWait, [1 << 5, 0, 0, 0, 0, 0]), None);
    assert_eq!(k.current_pid(), child);
    assert!(matches!(
        k.procs.get(INIT_PID).unwrap().state,
        State::Blocked(_)
    ));
    k.raise(INIT_PID, 6);
    assert!(
        matches!(k.procs.get(INIT_PID).unwrap().state, State::Blocked(_)),
        "not its vector"
    );
    k.raise(INIT_PID, 5);
    let init = k.procs.get(INIT_PID).unwrap();
    assert_eq!(init.state, State::Runnable);
    assert_eq!(init.frame.result(), 1 << 5, "woken with what it took");
    assert_eq!(init.pending, 1 << 6, "the other stays pending");
    // An irq_wait that finds its vector pending returns at once.
    assert_eq!(call(&mut k, Sysno::IrqRaise, [9, 0, 0, 0, 0, 0]), Some(0));
    assert_eq!(
        call(&mut k, Sysno::IrqWait, [1 << 9, 0, 0, 0, 0, 0]),
        Some(1 << 9)
    );
    assert_eq!(
        call_err(&mut k, Sysno::IrqWait, [0, 0, 0, 0, 0, 0]),
        Some(Error::InvalidArgument)
    );
}

#[test]
fn the_fork_limit_and_the_frame_limit_are_errors_not_failures() {
    let mut k = boot();
    // A reserve limit of what init holds now: a fork cannot fit.
    let used = {
        let (_, r) = k.current_and_reserve().unwrap();
        r.used()
    };
    k.current_and_reserve().unwrap().1.set_limit(Some(used));
    assert_eq!(
        call_err(&mut k, Sysno::Fork, [0; 6]),
        Some(Error::OutOfMemory)
    );
    assert_eq!(k.process_count(), 1);
    k.current_and_reserve().unwrap().1.set_limit(None);
    // The machine out of frames: the same.
    fake::with(|s| s.total = s.used());
    assert_eq!(
        call_err(&mut k, Sysno::Fork, [0; 6]),
        Some(Error::OutOfMemory)
    );
    assert_eq!(
        call_err(&mut k, Sysno::VmMap, [SCRATCH + 4096, 4096, 3, 0, 0, 0]),
        Some(Error::OutOfMemory)
    );
    assert_eq!(k.process_count(), 1);
}

#[test]
fn a_fault_without_a_handler_kills_the_process_with_a_report() {
    let mut k = boot();
    let child = fork(&mut k);
    assert_eq!(
        call(&mut k, Sysno::WaitChild, [SCRATCH, 0, 0, 0, 0, 0]),
        None
    );
    assert_eq!(k.current_pid(), child);
    k.user_fault(UserFault {
        vector: 13,
        error: 0,
        addr: 0,
        pc: 0x40_1234,
        write: false,
        fetch: false,
    });
    let _ = k.settle();
    assert_eq!(
        call(&mut k, Sysno::WaitChild, [SCRATCH, 0, 0, 0, 0, 0]),
        Some(child as isize)
    );
    let st = status_written(&mut k);
    assert_eq!(
        (st.kind, st.code, st.fault_ip),
        (abi::ExitKind::Faulted as u32, 13, 0x40_1234)
    );
    assert!(fake::with(|s| s.log_text()).contains("killed: fake exception"));
}

#[test]
fn a_reaped_pid_names_no_one_and_is_not_given_again_soon() {
    let mut k = boot();
    let mut seen = alloc::vec::Vec::new();
    for round in 0..50 {
        let child = fork(&mut k);
        assert!(
            !seen.contains(&child),
            "pid {child} given twice (round {round})"
        );
        seen.push(child);
        // The child runs and exits; init reaps it.
        assert_eq!(
            call(&mut k, Sysno::WaitChild, [SCRATCH, 0, 0, 0, 0, 0]),
            None
        );
        assert_eq!(call(&mut k, Sysno::Exit, [0; 6]), None);
        assert_eq!(
            call(&mut k, Sysno::WaitChild, [SCRATCH, 0, 0, 0, 0, 0]),
            Some(child as isize)
        );
        // Every pid handed out so far names nothing now.
        assert!(seen.iter().all(|&p| k.get_mut(p).is_none()));
        assert_eq!(
            call_err(
                &mut k,
                Sysno::SetPriority,
                [u64::from(child), 5, 0, 0, 0, 0]
            ),
            Some(Error::NotFound)
        );
    }
}

/// Writes `bytes` into the current process's memory at `va`.
fn poke(k: &mut Kernel<Fake>, va: u64, bytes: &[u8]) {
    let space = k.current().space.as_mut().unwrap();
    crate::usercopy::copy_to_user::<Fake>(space, va, bytes).unwrap();
}

/// Attaches kernel device `name` with `rights`; returns the handle.
fn attach(k: &mut Kernel<Fake>, name: &str, rights: u32) -> u64 {
    let at = SCRATCH + 0x800;
    poke(k, at, name.as_bytes());
    let h = call(
        k,
        Sysno::Attach,
        [0, at, name.len() as u64, u64::from(rights), 0, 0],
    )
    .unwrap();
    assert!(h >= 0, "attach {name}: {h}");
    h as u64
}

#[test]
fn kill_and_kill_tree_end_descendants_only_and_init_reaps_them() {
    use abi::bus::{RIGHT_CLONE, RIGHT_KILL, RIGHT_READ, RIGHT_WRITE};
    use abi::kdev::{PROC_PORT_KILL, PROC_PORT_KILL_TREE, PROC_PORT_SELECT};
    let mut k = boot();
    let before = fake::with(|s| s.used());
    let rights = RIGHT_READ | RIGHT_WRITE | RIGHT_KILL | RIGHT_CLONE;
    let procs = attach(&mut k, "proc", rights);
    let kill = |k: &mut Kernel<Fake>, port: u32, pid: Pid| {
        assert_eq!(
            call(
                k,
                Sysno::PortOut,
                [procs, u64::from(PROC_PORT_SELECT), 4, u64::from(pid), 0, 0]
            ),
            Some(0)
        );
        call(k, Sysno::PortOut, [procs, u64::from(port), 4, 0, 0, 0])
    };
    // a forks b; b forks c; a and b end up asleep, init keeps running.
    let a = fork(&mut k);
    assert_eq!(call(&mut k, Sysno::Yield, [0; 6]), Some(0));
    assert_eq!(k.current_pid(), a);
    let b = fork(&mut k);
    assert_eq!(call(&mut k, Sysno::IrqWait, [1 << 40, 0, 0, 0, 0, 0]), None);
    assert_eq!(k.current_pid(), INIT_PID);
    assert_eq!(call(&mut k, Sysno::Yield, [0; 6]), Some(0));
    assert_eq!(k.current_pid(), b);
    let c = fork(&mut k);
    // b may not kill its parent; it may kill its child.
    assert_eq!(
        kill(&mut k, PROC_PORT_KILL, a),
        Some(Error::AccessDenied.to_ret())
    );
    assert_eq!(kill(&mut k, PROC_PORT_KILL, c), Some(0));
    assert!(k.get_mut(c).is_some_and(|p| p.state == State::Zombie));
    assert_eq!(
        kill(&mut k, PROC_PORT_KILL, c),
        Some(Error::NotFound.to_ret())
    );
    assert_eq!(call(&mut k, Sysno::IrqWait, [1 << 40, 0, 0, 0, 0, 0]), None);
    // Back in init (the only runnable one): end a's whole tree; a, b and
    // b's zombie c are init's to reap.
    assert_eq!(k.current_pid(), INIT_PID);
    assert_eq!(kill(&mut k, PROC_PORT_KILL_TREE, a), Some(0));
    for _ in 0..3 {
        let reaped = call(
            &mut k,
            Sysno::WaitChild,
            [SCRATCH, abi::syscall::WAIT_NOHANG, 0, 0, 0, 0],
        );
        assert!(matches!(reaped, Some(p) if p > 0), "reaped {reaped:?}");
    }
    assert_eq!(
        call_err(&mut k, Sysno::WaitChild, [SCRATCH, 0, 0, 0, 0, 0]),
        Some(Error::NoChildren)
    );
    assert_eq!(k.process_count(), 1);
    assert_eq!(call(&mut k, Sysno::Detach, [procs, 0, 0, 0, 0, 0]), Some(0));
    assert_eq!(fake::with(|s| s.used()), before, "every frame back");
}

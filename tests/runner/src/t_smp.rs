//! Several CPUs: every CPU runs user code, a client and a server on two
//! CPUs keep the one-CPU semantics, a process busy or asleep on another
//! CPU is killed at once, and the kernel log stays exact with every CPU
//! writing. The storms, the fuzzer on every CPU and the soak are in
//! `t_smp_storm`, the TLB test in `t_smp_tlb`.
//!
//! Rules: each process is bound (`set_affinity`) to the CPU the test
//! wants before it does anything the test checks, so where it runs is
//! the test's choice; every wait is bounded by a count, never by time on
//! the host (4 vCPUs share 2 host cores); only order and progress are
//! checked. On one CPU every "other CPU" is CPU 0 and the tests check the
//! same semantics there.

use crate::suite::{Fail, Suite, TestResult};
use crate::{ensure, ensure_eq};
use abi::userdev::{REQUEST_OPEN, REQUEST_OUT};
use abi::{Error, ExitKind, ExitStatus};
use alloc::vec::Vec;
use libmh::dev::{self, Handle, REGISTRY};
use libmh::{process, procs};

pub(crate) fn fail(e: Error) -> Fail {
    Fail::new(format_args!("{e}"))
}

/// CPUs running.
pub(crate) fn cpus() -> u32 {
    process::cpu().1.max(1)
}

/// CPU `i`, counted round the CPUs there are.
pub(crate) fn cpu(i: u32) -> u32 {
    i % cpus()
}

/// Forks a child that binds itself to `cpu` and runs `f`; its pid.
pub(crate) fn bound_child(cpu: u32, f: impl FnOnce() -> i32) -> Result<u32, Fail> {
    match process::fork().map_err(fail)? {
        0 => {
            if process::set_affinity(0, 1 << cpu).is_err() {
                process::exit(100);
            }
            process::exit(f() as i64)
        }
        pid => Ok(pid),
    }
}

/// Reaps `n` children (orphans adopted by the runner included), bounded.
pub(crate) fn reap(n: usize) -> Result<Vec<ExitStatus>, Fail> {
    let mut out = Vec::new();
    while out.len() < n {
        out.push(process::wait_child().map_err(fail)?);
    }
    Ok(out)
}

/// Reaps every child left.
pub(crate) fn reap_all() {
    while process::wait_child().is_ok() {}
}

/// Fails unless every status is a clean `exit(0)`.
pub(crate) fn all_exited_ok(statuses: &[ExitStatus]) -> TestResult {
    for st in statuses {
        ensure!(
            st.kind == ExitKind::Exited as u32 && st.code == 0,
            "pid {} ended with kind {} code {}",
            st.pid,
            st.kind,
            st.code
        );
    }
    Ok(())
}

/// Spins in user mode for about `n` iterations (no system call).
pub(crate) fn spin(n: u64) {
    for i in 0..n {
        core::hint::black_box(i);
    }
}

const V: u32 = 21;

/// An echo server for `name`: answers each OUT with `value + 1` (fused
/// reply and poll); port 9 ends it.
pub(crate) fn echo_server(name: &str) -> i32 {
    let Ok(d) = dev::create(dev::REGISTRY, name, 1, 8, 1) else {
        return 1;
    };
    let mut next = d.poll();
    loop {
        let Ok(r) = next else { return 2 };
        next = match (r.kind, r.port) {
            (REQUEST_OUT, 9) => return 0,
            (REQUEST_OUT, _) => d.reply_poll(r.client, 0, 8, r.value + 1, Some(0)),
            _ => d.poll(),
        };
    }
}

/// Attaches `name`, retrying while its server starts.
pub(crate) fn attach_when_there(name: &str, rights: u32) -> Result<Handle, Error> {
    let mut last = Error::NotFound;
    for _ in 0..200_000 {
        match dev::attach(REGISTRY, name, rights) {
            Ok(h) => return Ok(h),
            Err(e) => last = e,
        }
        process::yield_now();
    }
    Err(last)
}

/// `n` round trips with an echo server, each answer checked; 0 if all
/// were right, else the first wrong round trip + 1.
fn echo_client(name: &str, n: u64) -> i32 {
    let rights = dev::RIGHT_READ | dev::RIGHT_WRITE | dev::RIGHT_IRQ;
    let Ok(h) = attach_when_there(name, rights) else {
        return -1;
    };
    if h.irq_map(0, V).is_err() {
        return -2;
    }
    for i in 0..n {
        if h.port_out_wait(0, 8, i, 1 << V).is_err() || h.port_in(0, 8) != Ok(i + 1) {
            return (i + 1) as i32;
        }
    }
    let _ = h.port_out(9, 8, 0);
    let _ = h.detach();
    0
}

/// A server on `server_cpu` and its client on `client_cpu`, `n` round
/// trips; both must end cleanly.
fn ping_pong(name: &'static str, server_cpu: u32, client_cpu: u32, n: u64) -> TestResult {
    bound_child(server_cpu, || echo_server(name))?;
    bound_child(client_cpu, || echo_client(name, n))?;
    all_exited_ok(&reap(2)?)
}

/// A child on `cpu` that spins in user mode until killed; waits until the
/// kernel says it runs there (bounded), then kills it and checks how it
/// ended.
fn kill_on(h: Handle, cpu: u32, busy: bool) -> TestResult {
    let pid = bound_child(cpu, move || {
        if busy {
            loop {
                spin(1 << 20);
            }
        }
        let _ = process::irq_wait(1 << 40);
        3
    })?;
    // Until it is where it was sent (running if busy, asleep otherwise).
    let want = if busy {
        u64::from(cpu)
    } else {
        u64::from(abi::kdev::PROC_CPU_NONE)
    };
    let mut seen = false;
    for _ in 0..200_000 {
        h.port_out(abi::kdev::PROC_PORT_SELECT, 4, u64::from(pid))
            .map_err(fail)?;
        let now = h.port_in(abi::kdev::PROC_PORT_CPU, 4).map_err(fail)?;
        let state = h.port_in(abi::kdev::PROC_PORT_STATE, 4).map_err(fail)?;
        let asleep = state == u64::from(abi::kdev::PROC_STATE_BLOCKED);
        // On one CPU the runner asking is the one running: the busy child
        // is only runnable then.
        let runnable = state == u64::from(abi::kdev::PROC_STATE_RUNNABLE);
        let there = if busy && cpus() == 1 {
            runnable
        } else {
            now == want && (busy || asleep)
        };
        if there {
            seen = true;
            break;
        }
        process::yield_now();
    }
    ensure!(seen, "pid {pid} never ran on CPU {cpu}");
    ensure_eq!(procs::kill(h, pid), Ok(()));
    let st = process::wait_child().map_err(fail)?;
    ensure_eq!(st.pid, pid);
    ensure_eq!(st.kind, ExitKind::KilledBy as u32);
    ensure_eq!(st.code, i64::from(process::getpid()));
    Ok(())
}

pub fn run(s: &mut Suite) {
    s.run("every_cpu_runs_user_code", || {
        let n = cpus();
        for c in 0..n {
            bound_child(c, move || {
                spin(100_000);
                let info = process::sys_info().map_or(u32::MAX, |i| i.cpu);
                if info != process::cpu().0 {
                    return 200;
                }
                info as i32
            })?;
        }
        let mut seen = 0u64;
        for st in reap(n as usize)? {
            ensure_eq!(st.kind, ExitKind::Exited as u32);
            ensure!(
                (0..i64::from(n)).contains(&st.code),
                "pid {} reported {}",
                st.pid,
                st.code
            );
            seen |= 1 << st.code;
        }
        ensure_eq!(seen, (1u64 << n) - 1, "CPUs that reported in");
        Ok(())
    });

    s.run("ping_pong_across_cpus", || {
        // Client and server on two CPUs, then both on one: same answers.
        ping_pong("t-smp-pp-a", cpu(1), cpu(2), 2_000)?;
        ping_pong("t-smp-pp-b", cpu(1), cpu(1), 2_000)
    });

    s.run("kill_of_a_process_busy_or_asleep_on_another_cpu", || {
        let h = procs::open(true).map_err(fail)?;
        let result = kill_on(h, cpu(cpus() - 1), true).and_then(|()| kill_on(h, cpu(1), false));
        let _ = h.detach();
        result
    });

    s.run("the_log_stays_exact_with_every_cpu_writing", || {
        const LINES: u32 = 40;
        let klog = dev::attach(REGISTRY, "klog", dev::RIGHT_READ).map_err(fail)?;
        let written = || klog.port_in(abi::kdev::KLOG_PORT_WRITTEN, 8).map_err(fail);
        let from = written()?;
        let n = cpus();
        for c in 0..n {
            bound_child(c, move || {
                for i in 0..LINES {
                    let line = line_of(c, i);
                    if process::log_write(&line) != Ok(line.len()) {
                        return 1;
                    }
                }
                0
            })?;
        }
        all_exited_ok(&reap(n as usize)?)?;
        let to = written()?;
        let _ = klog.detach();
        // Every line once, whole (other lines may sit between them).
        let mut text = Vec::new();
        let mut pos = from;
        let mut buf = [0u8; 1024];
        while pos < to {
            let got = process::log_read(pos, &mut buf).map_err(fail)?;
            ensure!(got > 0, "the log ended at {pos} before {to}");
            text.extend_from_slice(&buf[..got]);
            pos += got as u64;
        }
        for c in 0..n {
            for i in 0..LINES {
                let line = line_of(c, i);
                let count = text
                    .split(|&b| b == b'\n')
                    .filter(|l| l.ends_with(&line[..line.len() - 1]))
                    .count();
                ensure_eq!(count, 1, "line of CPU {c}, number {i}");
            }
        }
        Ok(())
    });
}

/// `smp-klog c<c> i<ii>\n`: 18 bytes.
fn line_of(c: u32, i: u32) -> [u8; 18] {
    let mut l = *b"smp-klog c0 i00 .\n";
    l[10] = b'0' + (c % 10) as u8;
    l[13] = b'0' + (i / 10 % 10) as u8;
    l[14] = b'0' + (i % 10) as u8;
    l
}

/// Clients of the OPEN requests a server got first, for tests that serve
/// several clients (`t_smp_tlb`).
pub(crate) fn next_open(d: libmh::dev::Served) -> Result<libmh::dev::ClientId, Error> {
    loop {
        let r = d.poll()?;
        if r.kind == REQUEST_OPEN {
            return Ok(r.client);
        }
    }
}

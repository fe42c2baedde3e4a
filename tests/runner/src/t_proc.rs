//! The `proc` device: the process table as ports, and killing — only
//! within the caller's own tree.

use crate::suite::{Fail, Suite};
use crate::util::in_child;
use crate::{ensure, ensure_eq};
use abi::kdev::*;
use abi::{Error, ExitKind};
use libmh::dev::{self, REGISTRY};
use libmh::{process, procs};

fn fail(e: Error) -> Fail {
    Fail::new(format_args!("{e}"))
}

/// A child that sleeps until killed (it waits for a vector nobody raises).
fn sleeper() -> Result<u32, Fail> {
    match process::fork().map_err(fail)? {
        0 => {
            let _ = process::irq_wait(1 << 30);
            process::exit(90)
        }
        pid => Ok(pid),
    }
}

/// A child serving device `name` until killed (it answers nothing).
fn server(name: &str) -> Result<u32, Fail> {
    match process::fork().map_err(fail)? {
        0 => {
            let Ok(d) = dev::create(REGISTRY, name, 0, 0, 1) else {
                process::exit(91)
            };
            loop {
                let _ = d.poll();
            }
        }
        pid => Ok(pid),
    }
}

/// Attaches `name`, retrying while its server has not registered yet.
fn attach_when_served(name: &str) -> Result<dev::Handle, Fail> {
    match crate::echo::attach_when_ready(name, dev::RIGHT_READ) {
        Err(Error::NotFound) => Err(Fail::new(format_args!("'{name}' was never registered"))),
        other => other.map_err(fail),
    }
}

pub fn run(s: &mut Suite) {
    s.run("revoking_a_sleeping_clients_device_ends_its_wait", || {
        const NAME: &str = "t-revoked";
        let h = procs::open(true).map_err(fail)?;
        let srv = server(NAME)?;
        let mine = attach_when_served(NAME)?;
        // A client that asks and sleeps for an answer that never comes.
        let client = match process::fork().map_err(fail)? {
            0 => {
                let code = match dev::attach(REGISTRY, NAME, dev::RIGHT_WRITE | dev::RIGHT_IRQ) {
                    Ok(c) => match c.port_out_wait(0, 8, 1, 1 << 20) {
                        Err(Error::DeviceGone) => 0,
                        Err(_) => 2,
                        Ok(_) => 3,
                    },
                    Err(_) => 4,
                };
                process::exit(code)
            }
            pid => pid,
        };
        // Until it sleeps in port_out_wait.
        let mut asleep = false;
        let start = crate::helpers::ticks_now();
        while !crate::helpers::seconds_passed(start, 10) {
            process::yield_now();
            let state = h
                .port_out(PROC_PORT_SELECT, 4, u64::from(client))
                .and_then(|()| h.port_in(PROC_PORT_STATE, 4));
            if state == Ok(u64::from(PROC_STATE_BLOCKED)) {
                asleep = true;
                break;
            }
        }
        ensure!(asleep, "the client never slept");
        ensure_eq!(procs::revoke(h, client, mine), Ok(()));
        // Its wait ends at once with DeviceGone (the device lives on).
        let st = process::wait_child().map_err(fail)?;
        ensure_eq!(
            (st.pid, st.kind, st.code),
            (client, ExitKind::Exited as u32, 0)
        );
        ensure_eq!(procs::kill(h, srv), Ok(()));
        ensure_eq!(process::wait_child().map_err(fail)?.pid, srv);
        ensure_eq!(mine.detach(), Ok(()));
        ensure_eq!(h.detach(), Ok(()));
        Ok(())
    });

    s.run(
        "proc_kill_by_a_restarted_servers_old_pid_is_not_found",
        || {
            const NAME: &str = "t-restarted";
            let h = procs::open(true).map_err(fail)?;
            let old = server(NAME)?;
            attach_when_served(NAME)?.detach().map_err(fail)?;
            ensure_eq!(procs::kill(h, old), Ok(()));
            ensure_eq!(process::wait_child().map_err(fail)?.pid, old);
            // Restarted, as a supervisor does: a new process, a new pid.
            let new = server(NAME)?;
            ensure!(new != old, "the restarted server got the old pid {old}");
            let client = attach_when_served(NAME)?;
            // The old pid names no one: the restarted server is not hit.
            ensure_eq!(procs::kill(h, old), Err(Error::NotFound));
            ensure_eq!(client.info().map_err(fail)?.server_pid, new);
            ensure_eq!(procs::kill(h, new), Ok(()));
            ensure_eq!(process::wait_child().map_err(fail)?.pid, new);
            ensure_eq!(client.info().map(|_| ()), Err(Error::DeviceGone));
            ensure_eq!(client.detach(), Ok(()));
            ensure_eq!(h.detach(), Ok(()));
            Ok(())
        },
    );

    s.run("proc_lists_this_process_and_its_parent", || {
        let h = procs::open(false).map_err(fail)?;
        let me = process::getpid();
        let (mut seen, mut count, mut last) = (None, 0, 0);
        procs::for_each(h, |e| {
            count += 1;
            ensure_order(&mut last, e.pid);
            if e.pid == me {
                seen = Some(*e);
            }
        })
        .map_err(fail)?;
        let e = seen.ok_or_else(|| Fail::new(format_args!("pid {me} not listed")))?;
        ensure_eq!(e.name(), "mhtest");
        ensure_eq!(e.state, PROC_STATE_RUNNABLE);
        ensure!(e.frames > 0, "frames {}", e.frames);
        ensure_eq!(h.port_in(PROC_PORT_COUNT, 4), Ok(count));
        ensure!(last != u32::MAX, "pids out of order");
        ensure_eq!(h.detach(), Ok(()));
        Ok(())
    });

    s.run("proc_kill_ends_a_descendant", || {
        let h = procs::open(true).map_err(fail)?;
        let pid = sleeper()?;
        process::yield_now();
        ensure_eq!(procs::kill(h, pid), Ok(()));
        let st = process::wait_child().map_err(fail)?;
        ensure_eq!(
            (st.pid, st.kind, st.code),
            (pid, ExitKind::KilledBy as u32, process::getpid() as i64)
        );
        // Gone now: killing again (or any unknown pid) is NotFound.
        ensure_eq!(procs::kill(h, pid), Err(Error::NotFound));
        ensure_eq!(procs::kill(h, 4000), Err(Error::NotFound));
        ensure_eq!(h.detach(), Ok(()));
        Ok(())
    });

    s.run("proc_kill_stays_inside_the_callers_tree", || {
        let h = procs::open(true).map_err(fail)?;
        let sibling = sleeper()?;
        let me = process::getpid();
        // A child may not kill its parent or its sibling.
        let st = in_child(|| {
            let Ok(h) = procs::open(true) else { return 1 };
            let parent = procs::kill(h, me) == Err(Error::AccessDenied);
            let sib = procs::kill(h, sibling) == Err(Error::AccessDenied);
            (!(parent && sib)) as i32 * 2
        })?;
        ensure_eq!(st.code, 0);
        // A zombie is not killable either.
        let zombie = match process::fork().map_err(fail)? {
            0 => process::exit(0),
            pid => pid,
        };
        for _ in 0..50 {
            process::yield_now();
        }
        ensure_eq!(procs::kill(h, zombie), Err(Error::NotFound));
        ensure_eq!(procs::kill(h, sibling), Ok(()));
        let mut reaped = 0;
        while reaped < 2 {
            process::wait_child().map_err(fail)?;
            reaped += 1;
        }
        ensure_eq!(h.detach(), Ok(()));
        Ok(())
    });

    s.run("proc_port_and_right_errors", || {
        let ro = procs::open(false).map_err(fail)?;
        ensure_eq!(procs::kill(ro, 1), Err(Error::AccessDenied));
        ensure_eq!(ro.port_in(PROC_PORT_FRAMES, 4), Err(Error::InvalidArgument));
        ensure_eq!(ro.port_in(PROC_PORT_PARENT, 2), Err(Error::InvalidArgument));
        ensure_eq!(ro.port_in(99, 4), Err(Error::InvalidArgument));
        ensure_eq!(ro.port_out(PROC_PORT_SELECT, 4, 0), Ok(()));
        ensure_eq!(ro.port_in(PROC_PORT_STATE, 4), Err(Error::NotFound));
        ensure_eq!(ro.detach(), Ok(()));
        let read_only = dev::attach(REGISTRY, "proc", dev::RIGHT_READ).map_err(fail)?;
        ensure_eq!(
            read_only.port_out(PROC_PORT_SELECT, 4, 1),
            Err(Error::AccessDenied)
        );
        ensure_eq!(read_only.detach(), Ok(()));
        let rw = dev::attach(REGISTRY, "proc", dev::RIGHT_WRITE).map_err(fail)?;
        ensure_eq!(rw.port_out(77, 4, 0), Err(Error::InvalidArgument));
        ensure_eq!(
            rw.port_out(PROC_PORT_SELECT, 1, 0),
            Err(Error::InvalidArgument)
        );
        ensure_eq!(
            dev::attach(REGISTRY, "proc", dev::RIGHT_DMA).map(|_| ()),
            Err(Error::AccessDenied)
        );
        ensure_eq!(rw.detach(), Ok(()));
        Ok(())
    });
}

fn ensure_order(last: &mut u32, pid: u32) {
    if pid <= *last {
        *last = u32::MAX;
    } else if *last != u32::MAX {
        *last = pid;
    }
}

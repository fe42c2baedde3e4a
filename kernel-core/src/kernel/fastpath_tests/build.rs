//! How a fast-path case is built from its seed: init forks a server, a
//! client and a few others (some more urgent), the server creates a
//! device, the client (and maybe others, maybe the server) attach it and
//! map a line; then a random situation around the pair (a server polling
//! or not, or polling into memory; queued requests; pending interrupts,
//! handlers; wrong handles, bad sizes, masks, lines, clients) and the
//! last call to make: `port_out_wait` by the client, `dev_reply_poll` by
//! the server, or either by anyone with whatever words.
//!
//! Rules: every choice comes from the seed's `Rng`, so building twice
//! gives the same kernel and call; the building calls all go through
//! `trap` with the fast path on, as the real glue makes them.

use super::{result, trap};
use crate::fake::Fake;
use crate::kernel::Kernel;
use crate::kernel::audit;
use crate::kernel::model::{
    CONFIGS, CONFIGS_AT, HANDLER_PC, NAMES, NAMES_AT, OUT_AT, VM_BASE, boot_with_inputs, run_as,
};
use crate::process::{Pid, State};
use crate::testrng::Rng;
use abi::bus::{RIGHT_CLONE, RIGHT_IRQ, RIGHT_READ, RIGHT_WRITE};
use abi::syscall::POLL_NOWAIT;
use abi::{Error, Sysno};

/// What a case does at the end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Client,
    Server,
    Other,
}

/// A kernel built for one case, and the call to make on it.
pub(super) struct Built {
    pub(super) k: Kernel<Fake>,
    pub(super) kind: Kind,
    pub(super) n: Sysno,
    pub(super) a: [u64; 6],
}

/// Builds case `seed`'s kernel: init forks a server, a client and a few
/// others, the server creates a device, the client (and maybe others)
/// attach it, and then a random situation for the last call.
pub(super) fn build(seed: u64) -> Built {
    let mut rng = Rng(seed.wrapping_mul(0x2545_f491_4f6c_dd1d) | 1);
    let mut k = boot_with_inputs(3000);
    let one_in = |rng: &mut Rng, n: u64| rng.below(n) == 0;
    let fork = |k: &mut Kernel<Fake>| {
        trap(k, Sysno::Fork, [0; 6], true);
        result(k) as Pid
    };
    let s = fork(&mut k);
    let c = fork(&mut k);
    let others: Vec<Pid> = (0..rng.below(3)).map(|_| fork(&mut k)).collect();
    for &pid in [s, c].iter().chain(&others) {
        if one_in(&mut rng, 4) {
            let prio = 4 + rng.below(4);
            trap(
                &mut k,
                Sysno::SetPriority,
                [u64::from(pid), prio, 0, 0, 0, 0],
                true,
            );
        }
    }
    // A handler with a mapped stack, interrupts on, or some pending.
    let extras = |k: &mut Kernel<Fake>, rng: &mut Rng| {
        if one_in(rng, 8) {
            trap(k, Sysno::VmMap, [VM_BASE, 8192, 3, 0, 0, 0], true);
            trap(
                k,
                Sysno::SetHandler,
                [HANDLER_PC, VM_BASE, 8192, 0, 0, 0],
                true,
            );
        }
        if one_in(rng, 8) {
            trap(k, Sysno::IntEnable, [1, 0, 0, 0, 0, 0], true);
        }
        if one_in(rng, 10) {
            let v = 30 + rng.below(10);
            trap(k, Sysno::IrqRaise, [v, 0, 0, 0, 0, 0], true);
        }
    };

    // The server and its device.
    assert!(run_as(&mut k, s));
    let cfg = [0, 0, 0, 1, 1, 1, 2, 2, 2, 3][rng.below(10) as usize];
    let (name, lines, space, _, _) = CONFIGS[cfg];
    trap(
        &mut k,
        Sysno::DevCreate,
        [0, CONFIGS_AT + 64 * cfg as u64, 0, 0, 0, 0],
        true,
    );
    let hs = result(&mut k) as u64;
    assert!((hs as isize) >= 0, "seed {seed}: dev_create");
    extras(&mut k, &mut rng);
    // Sometimes the server is a client of its own device too.
    let own = one_in(&mut rng, 10);

    // The client: attach, map a line to its vector.
    let name_at = NAMES_AT + 32 * NAMES.iter().position(|&n| n == name).unwrap() as u64;
    let attach = |k: &mut Kernel<Fake>, rights: u32| {
        let a = [0, name_at, name.len() as u64, u64::from(rights), 0, 0];
        trap(k, Sysno::Attach, a, true);
        result(k) as u64
    };
    assert!(run_as(&mut k, c));
    let rights = if one_in(&mut rng, 20) {
        RIGHT_READ | RIGHT_IRQ
    } else {
        RIGHT_READ | RIGHT_WRITE | RIGHT_IRQ | RIGHT_CLONE
    };
    let hc = attach(&mut k, rights);
    let line = if lines > 0 {
        rng.below(u64::from(lines))
    } else {
        0
    };
    let vector = 20 + rng.below(10);
    if lines > 0 && !one_in(&mut rng, 20) {
        trap(&mut k, Sysno::IrqMap, [hc, line, vector, 0, 0, 0], true);
    }
    extras(&mut k, &mut rng);
    if one_in(&mut rng, 20) {
        trap(&mut k, Sysno::IrqRaise, [vector, 0, 0, 0, 0, 0], true);
    }

    if own && run_as(&mut k, s) {
        let h = attach(&mut k, RIGHT_READ | RIGHT_WRITE | RIGHT_IRQ);
        if lines > 0 {
            trap(&mut k, Sysno::IrqMap, [h, line, vector, 0, 0, 0], true);
        }
    }

    // The others: more clients, a sleeper, or nothing.
    let mut other_clients = Vec::new();
    for &o in &others {
        if !run_as(&mut k, o) {
            continue;
        }
        match rng.below(3) {
            0 => {
                let h = attach(&mut k, RIGHT_READ | RIGHT_WRITE | RIGHT_IRQ);
                other_clients.push((o, h));
            }
            1 => {
                trap(&mut k, Sysno::IrqWait, [1 << 50, 0, 0, 0, 0, 0], true);
            }
            _ => extras(&mut k, &mut rng),
        }
    }
    let late_request = |k: &mut Kernel<Fake>, rng: &mut Rng| {
        if let Some(&(o, h)) = other_clients.get(rng.below(4) as usize)
            && run_as(k, o)
        {
            trap(k, Sysno::PortOut, [h, 1, 8, 7, 0, 0], true);
        }
    };

    // The server takes what is queued (OPENs), then goes to sleep in
    // one way or another.
    let server_sleeps = |k: &mut Kernel<Fake>, rng: &mut Rng| {
        if !run_as(k, s) {
            return;
        }
        for _ in 0..8 {
            trap(k, Sysno::DevPoll, [hs, 0, POLL_NOWAIT, 0, 0, 0], true);
            if result(k) == Error::WouldBlock.to_ret() {
                break;
            }
        }
        match rng.below(20) {
            0..=16 => {
                trap(k, Sysno::DevPoll, [hs, 0, 0, 0, 0, 0], true);
            }
            17 => {
                trap(k, Sysno::DevPoll, [hs, OUT_AT + 0x80, 0, 0, 0, 0], true);
            }
            18 => {
                trap(k, Sysno::IrqWait, [1 << 51, 0, 0, 0, 0, 0], true);
            }
            _ => {}
        }
    };

    let mut kind = match rng.below(10) {
        0..=4 => Kind::Client,
        5..=8 => Kind::Server,
        _ => Kind::Other,
    };
    let pick_mask = |rng: &mut Rng| match rng.below(24) {
        0 => 0,
        1 => 1 << 63,
        2 => 1 << (30 + rng.below(10)),
        3 => 1 << vector | 1 << (30 + rng.below(10)),
        _ => 1 << vector,
    };
    let mut op = None;
    if kind == Kind::Client {
        server_sleeps(&mut k, &mut rng);
        if one_in(&mut rng, 8) {
            late_request(&mut k, &mut rng);
        }
        if run_as(&mut k, c) {
            let h = match rng.below(30) {
                0 => hs,
                1 => 0,
                2 => 77,
                _ => hc,
            };
            let port = if one_in(&mut rng, 30) {
                1 << 33
            } else {
                rng.below(4)
            };
            let size = match rng.below(30) {
                0 => 3,
                1 => 0,
                2..=7 => [1, 2, 4][rng.below(3) as usize],
                _ => 8,
            };
            let mask = pick_mask(&mut rng);
            op = Some((Sysno::PortOutWait, [h, port, size, rng.next(), mask, 0]));
        }
    }
    if kind == Kind::Server {
        // A round trip's first half: the client's request reaches the
        // server, which then answers it.
        server_sleeps(&mut k, &mut rng);
        if run_as(&mut k, c) {
            let mask = pick_mask(&mut rng);
            if one_in(&mut rng, 6) {
                // The request, then a plain wait for the answer.
                trap(&mut k, Sysno::PortOut, [hc, 0, 8, rng.next(), 0, 0], true);
                trap(&mut k, Sysno::IrqWait, [mask, 0, 0, 0, 0, 0], true);
            } else {
                let value = rng.next();
                trap(&mut k, Sysno::PortOutWait, [hc, 0, 8, value, mask, 0], true);
            }
        }
        if one_in(&mut rng, 8) {
            late_request(&mut k, &mut rng);
        }
        if one_in(&mut rng, 10)
            && let Some(p) = k.procs.get_mut(c)
            && p.state != State::Zombie
        {
            // An interrupt for the client that is not an answer.
            let v = 40 + rng.below(10) as u32;
            k.raise(c, v);
            let _ = k.settle();
        }
        if run_as(&mut k, s) {
            let client = k.current().frame.rsi;
            let other = k
                .devices
                .user(
                    k.procs
                        .get(s)
                        .map_or(0, |p| match p.bus.get(hs).map(|e| &e.value) {
                            Ok(crate::devices::Attachment::Serve { dev }) => *dev,
                            _ => 0,
                        }),
                )
                .ok()
                .and_then(|u| u.clients().map(|(id, _)| id).find(|&id| id != client));
            let h = match rng.below(30) {
                0 => hc,
                1 => 0,
                _ => hs,
            };
            let client = match rng.below(30) {
                0 | 3 => other.unwrap_or(client),
                1 => rng.next(),
                2 => client ^ 1 << 16,
                _ => client,
            };
            let size = match rng.below(30) {
                0 => 3,
                1..=6 => [1, 2, 4][rng.below(3) as usize],
                _ => 8,
            };
            let port = match rng.below(30) {
                0 => u64::from(space),
                1 => 1 << 33,
                _ => rng.below(u64::from(space.max(8)) - 7),
            };
            let port_size = if one_in(&mut rng, 8) {
                0
            } else {
                port << 8 | size
            };
            let line = match rng.below(30) {
                0 => u64::MAX,
                1 => (line + 1) % u64::from(lines.max(1)),
                2 => 99,
                _ => line,
            };
            let out = if one_in(&mut rng, 20) {
                OUT_AT + 0x80
            } else {
                0
            };
            op = Some((
                Sysno::DevReplyPoll,
                [h, client, port_size, rng.next(), line, out],
            ));
        }
    }
    let (n, a) = match op {
        Some(op) => op,
        None => {
            // Anyone runnable makes either call with whatever words.
            kind = Kind::Other;
            let pids: Vec<Pid> = audit::pids(&k)
                .into_iter()
                .filter(|&p| k.procs.get(p).unwrap().state == State::Runnable)
                .collect();
            let pid = pids[rng.below(pids.len() as u64) as usize];
            assert!(run_as(&mut k, pid));
            let hs: Vec<u64> = k.current().bus.handles().collect();
            let word = |rng: &mut Rng| match rng.below(6) {
                0 => hs[rng.below(hs.len() as u64) as usize],
                1 => rng.below(8),
                2 => 1 << rng.below(64),
                3 => u64::MAX,
                4 => 8,
                _ => rng.next(),
            };
            let n = if one_in(&mut rng, 2) {
                Sysno::PortOutWait
            } else {
                Sysno::DevReplyPoll
            };
            let a = [
                word(&mut rng),
                word(&mut rng),
                word(&mut rng),
                word(&mut rng),
                word(&mut rng),
                0,
            ];
            (n, a)
        }
    };
    Built { k, kind, n, a }
}

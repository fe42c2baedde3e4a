//! mem: the memory-allocation server. It holds the kernel's `mempool`
//! device and serves the `mem` user device (`abi::mem`,
//! docs/devices/mem.md): a process whose reserve is spent asks for a
//! grant, and gets its limit raised — up to its ceiling and as far as free
//! memory allows — or `OutOfMemory`, which is then its problem alone.
//!
//! Ceilings: the supervisor (this server's parent, init) sets them per
//! pid from the manifest; a process without one has its nearest
//! ancestor's, else `MEM_DEFAULT_CEILING`.
//!
//! Rules: a client is the pid the kernel put in its request, never what it
//! says; only the supervisor may select, set ceilings or set limits, so no
//! process can raise its own ceiling through this device; a bad request
//! gets an error reply and changes nothing; the server never sleeps but in
//! `dev_poll`, so no client can stall it.
#![no_std]
#![no_main]

mod ceilings;

use abi::Error;
use abi::kdev::*;
use abi::mem::*;
use abi::userdev::ClientId;
use abi::userdev::{REQUEST_CLONE, REQUEST_CLOSE, REQUEST_OPEN, REQUEST_OUT, Request};
use ceilings::Ceilings;
use libmh::dev::{self, Handle, REGISTRY, Served};
use libmh::server::Reply;
use libmh::{Args, println, process};

/// Raised when a request is queued (unused: the server always polls).
const V_REQUEST: u32 = 1;
/// Entries of the table of selections, by client id modulo its size (the
/// whole id is kept and checked, so two clients never share one).
const SLOTS: usize = 64;
/// How far up the process tree a ceiling is looked for.
const ANCESTRY_MAX: u32 = 64;

libmh::entry!(main);

struct Mem {
    dev: Served,
    pool: Handle,
    procs: Handle,
    supervisor: u32,
    ceilings: Ceilings,
    /// The pid each client selected (supervisor only): (client id, pid).
    selected: [(ClientId, u32); SLOTS],
}

fn main(args: Args) -> i32 {
    if let Some(word) = args.iter().next() {
        println!("mem: unknown argument '{word}' (it takes none)");
        return 2;
    }
    let rw = dev::RIGHT_READ | dev::RIGHT_WRITE;
    let (pool, procs) = match (
        dev::attach(REGISTRY, "mempool", rw),
        dev::attach(REGISTRY, "proc", rw),
    ) {
        (Ok(p), Ok(q)) => (p, q),
        (p, q) => {
            println!("mem: cannot attach mempool ({p:?}) and proc ({q:?})");
            return 3;
        }
    };
    let me = process::getpid();
    let supervisor = match parent_of(procs, me) {
        Ok(p) => p,
        Err(e) => {
            println!("mem: cannot find my parent: {e}");
            return 3;
        }
    };
    let dev = match dev::create(
        dev::REGISTRY,
        libmh::mem::NAME,
        MEM_IRQ_LINES,
        MEM_IOSPACE_SIZE,
        V_REQUEST,
    ) {
        Ok(d) => d,
        Err(e) => {
            println!("mem: cannot create the device: {e}");
            return 4;
        }
    };
    let free = pool.port_in(MEMPOOL_PORT_FREE, 8).unwrap_or(0);
    println!(
        "mem: serving '{}'; supervisor pid {supervisor}; {} KiB free",
        libmh::mem::NAME,
        free * 4
    );
    // About 8 KiB of selections: on the stack, which grows on demand.
    let mut server = Mem {
        dev,
        pool,
        procs,
        supervisor,
        ceilings: Ceilings::new(),
        selected: [(ClientId::MAX, 0); SLOTS],
    };
    match libmh::server::serve(dev, V_REQUEST, 0, &mut server) {
        Ok(code) => code,
        Err(e) => {
            println!("mem: dev_poll: {e}");
            1
        }
    }
}

fn parent_of(procs: Handle, pid: u32) -> Result<u32, Error> {
    procs.port_out(PROC_PORT_SELECT, 4, pid as u64)?;
    procs.port_in(PROC_PORT_PARENT, 4).map(|p| p as u32)
}

impl libmh::server::Server for Mem {
    fn request(&mut self, _dev: Served, r: &Request) -> Reply {
        match r.kind {
            REQUEST_OPEN | REQUEST_CLONE | REQUEST_CLOSE => {
                let e = &mut self.selected[r.client as usize % SLOTS];
                if e.0 == r.client {
                    *e = (ClientId::MAX, 0);
                }
                Reply::None
            }
            REQUEST_OUT => Reply::word(MEM_IO_RESULT, self.answer(r), MEM_IRQ_REPLY),
            _ => Reply::None,
        }
    }
}

impl Mem {
    /// Handles one OUT request; returns its result word (the usage ports
    /// of the I/O space are written here too).
    fn answer(&mut self, r: &Request) -> u64 {
        let result = if r.size != 8 {
            Err(Error::InvalidArgument)
        } else {
            match r.port {
                MEM_PORT_GRANT => self.grant(r.pid, r.value),
                MEM_PORT_USAGE => self.usage_of(r.pid).map(|(used, _, _)| used),
                MEM_PORT_SELECT => self.select(r),
                MEM_PORT_CEILING => self.set_ceiling(r),
                MEM_PORT_LIMIT => self.set_limit(r),
                _ => Err(Error::NotSupported),
            }
        };
        if matches!(r.port, MEM_PORT_GRANT | MEM_PORT_USAGE)
            && let Ok((used, limit, ceiling)) = self.usage_of(r.pid)
        {
            for (port, v) in [
                (MEM_IO_USED, used),
                (MEM_IO_LIMIT, limit),
                (MEM_IO_CEILING, ceiling),
            ] {
                let _ = self.dev.write_iospace(r.client, port, 8, v);
            }
        }
        mem_encode_result(result)
    }

    /// (used, limit, ceiling) of `pid`, the limit `MEMPOOL_UNLIMITED` if
    /// it has none.
    fn usage_of(&self, pid: u32) -> Result<(u64, u64, u64), Error> {
        self.pool.port_out(MEMPOOL_PORT_SELECT, 4, pid as u64)?;
        let used = self.pool.port_in(MEMPOOL_PORT_USED, 8)?;
        let limit = self.pool.port_in(MEMPOOL_PORT_LIMIT_NOW, 8)?;
        Ok((used, limit, self.ceiling_of(pid)))
    }

    /// `pid`'s ceiling: its own, else its nearest ancestor's, else the
    /// default.
    fn ceiling_of(&self, pid: u32) -> u64 {
        let mut p = pid;
        for _ in 0..ANCESTRY_MAX {
            if let Some(c) = self.ceilings.get(p) {
                return c;
            }
            match parent_of(self.procs, p) {
                Ok(parent) if parent != 0 && parent != p => p = parent,
                _ => break,
            }
        }
        MEM_DEFAULT_CEILING
    }

    fn grant(&self, pid: u32, want: u64) -> Result<u64, Error> {
        if want == 0 || want > MEM_GRANT_MAX {
            return Err(Error::InvalidArgument);
        }
        let (_, limit, ceiling) = self.usage_of(pid)?;
        if limit >= MEMPOOL_UNLIMITED {
            return Err(Error::NotSupported);
        }
        let free = self.pool.port_in(MEMPOOL_PORT_FREE, 8)?;
        let n = want
            .min(ceiling.saturating_sub(limit))
            .min(free.saturating_sub(MEM_FREE_FLOOR));
        if n == 0 {
            return Err(Error::OutOfMemory);
        }
        // usage_of selected `pid`.
        self.pool.port_out(MEMPOOL_PORT_LIMIT, 8, limit + n)?;
        Ok(limit + n)
    }

    fn check_supervisor(&self, r: &Request) -> Result<(), Error> {
        if r.pid == self.supervisor {
            Ok(())
        } else {
            Err(Error::AccessDenied)
        }
    }

    /// The pid `r`'s client selected.
    fn selection(&self, r: &Request) -> Result<u32, Error> {
        match self.selected[r.client as usize % SLOTS] {
            (client, pid) if client == r.client => Ok(pid),
            _ => Err(Error::NotFound),
        }
    }

    fn select(&mut self, r: &Request) -> Result<u64, Error> {
        self.check_supervisor(r)?;
        let pid = u32::try_from(r.value).map_err(|_| Error::InvalidArgument)?;
        self.selected[r.client as usize % SLOTS] = (r.client, pid);
        Ok(0)
    }

    fn set_ceiling(&mut self, r: &Request) -> Result<u64, Error> {
        self.check_supervisor(r)?;
        let pid = self.selection(r)?;
        if r.value >= MEMPOOL_UNLIMITED {
            return Err(Error::InvalidArgument);
        }
        if r.value == 0 {
            self.ceilings.clear(pid);
            return Ok(0);
        }
        // The process must exist.
        self.usage_of(pid)?;
        let pool = self.pool;
        let alive = |p: u32| {
            pool.port_out(MEMPOOL_PORT_SELECT, 4, p as u64).is_ok()
                && pool.port_in(MEMPOOL_PORT_USED, 8).is_ok()
        };
        self.ceilings.set(pid, r.value, alive)?;
        Ok(r.value)
    }

    fn set_limit(&mut self, r: &Request) -> Result<u64, Error> {
        self.check_supervisor(r)?;
        let pid = self.selection(r)?;
        let (_, _, ceiling) = self.usage_of(pid)?;
        if r.value > ceiling {
            return Err(Error::InvalidArgument);
        }
        // usage_of selected `pid`.
        self.pool.port_out(MEMPOOL_PORT_LIMIT, 8, r.value)?;
        Ok(r.value)
    }
}

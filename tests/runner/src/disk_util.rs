//! What the disk tests (t_disk.rs) share: starting, killing and reaping
//! the driver (a `start = false` module of the test image, which the
//! runner — init here — spawns itself), raw requests that bypass
//! libmh::disk's own checks so that the server's are what is tested, a
//! deterministic PRNG, and the clients' workloads.

use crate::suite::Fail;
use abi::disk::*;
use abi::{Error, ExitStatus};
use alloc::vec::Vec;
use libmh::bootfs::Bootfs;
use libmh::dev::Handle;
use libmh::disk::Disk;
use libmh::{process, procs, registry, vm};

/// Where the tests map their buffers (each process its own).
pub const VA: u64 = 0x5700_0000_0000;
pub const SECTOR: u64 = 512;
/// Sectors each of the several clients owns (client `k` from `k *
/// REGION` on), all below `SHARED_END`.
pub const REGION: u64 = 1024;
pub const SHARED_END: u64 = 4 * REGION;
/// The largest single read or write a workload makes, in sectors: more
/// than a transfer, so libmh splits it.
const OP_MAX: u64 = 256;

pub fn fail(e: Error) -> Fail {
    Fail::new(format_args!("{e}"))
}

/// xorshift64*: the same numbers on every run.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// 0 ..= n - 1 (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let w = self.next().to_le_bytes();
            chunk.copy_from_slice(&w[..chunk.len()]);
        }
    }
}

/// `len` fresh zeroed bytes at `VA + at` (in the calling process).
pub fn buffer(at: u64, len: u64) -> Result<&'static mut [u8], Error> {
    vm::map(VA + at, len, vm::PROT_RW)?;
    // SAFETY: just mapped read-write, and only this slice names it.
    Ok(unsafe { core::slice::from_raw_parts_mut((VA + at) as *mut u8, len as usize) })
}

/// Starts the driver module and waits until `disk0` answers; its pid.
pub fn start_driver() -> Result<u32, Fail> {
    let fs = Bootfs::open().map_err(fail)?;
    let index = fs.find("virtio-blk").map_err(fail)?;
    let Some(index) = index else {
        return Err(Fail::new(format_args!(
            "no 'virtio-blk' module in the image"
        )));
    };
    let pid = fs.spawn(index).map_err(fail)?;
    let _ = fs.0.detach();
    for _ in 0..1_000_000 {
        match Disk::open() {
            Ok(d) => {
                let _ = d.close();
                return Ok(pid);
            }
            Err(Error::NotFound) => {
                if let Ok(st) = process::try_wait_child() {
                    return Err(Fail::new(format_args!(
                        "pid {} ended (kind {}, code {}) before disk0 answered",
                        st.pid, st.kind, st.code
                    )));
                }
                process::yield_now();
            }
            Err(e) => return Err(Fail::new(format_args!("opening disk0: {e}"))),
        }
    }
    Err(Fail::new(format_args!("disk0 never appeared")))
}

/// Kills `pid` (a child of the runner).
pub fn kill(pid: u32) -> Result<(), Fail> {
    let h = procs::open(true).map_err(fail)?;
    let killed = procs::kill(h, pid);
    let _ = h.detach();
    killed.map_err(|e| Fail::new(format_args!("kill {pid}: {e}")))
}

/// Reaps `n` children: their statuses, in the order they were reaped.
pub fn reap(n: usize) -> Result<Vec<ExitStatus>, Fail> {
    let mut all = Vec::new();
    for _ in 0..n {
        all.push(process::wait_child().map_err(|e| Fail::new(format_args!("wait_child: {e}")))?);
    }
    Ok(all)
}

/// Kills the driver and reaps it.
pub fn stop_driver(pid: u32) -> Result<(), Fail> {
    kill(pid)?;
    reap_driver(pid)
}

/// Stops a server that also ends by itself once its last client leaves
/// (the timer, `exit-when-idle`): on another CPU it may have ended before
/// the kill, which then finds only its zombie (`NotFound`).
pub fn stop_idle_exiting(pid: u32) -> Result<(), Fail> {
    let h = procs::open(true).map_err(fail)?;
    let killed = procs::kill(h, pid);
    let state = h
        .port_out(abi::kdev::PROC_PORT_SELECT, 4, u64::from(pid))
        .and_then(|()| h.port_in(abi::kdev::PROC_PORT_STATE, 4));
    let _ = h.detach();
    match killed {
        Ok(()) => {}
        Err(Error::NotFound) if state == Ok(u64::from(abi::kdev::PROC_STATE_ZOMBIE)) => {}
        Err(e) => return Err(Fail::new(format_args!("kill {pid}: {e}"))),
    }
    reap_driver(pid)
}

fn reap_driver(pid: u32) -> Result<(), Fail> {
    let st = reap(1)?;
    if st[0].pid != pid {
        return Err(Fail::new(format_args!(
            "reaped {} instead of the driver",
            st[0].pid
        )));
    }
    Ok(())
}

/// disk0's clients now (0 if it is not registered).
pub fn clients() -> u32 {
    let mut n = 0;
    let _ = registry::for_each(|e| {
        if e.name() == libmh::disk::NAME {
            n = e.clients;
        }
    });
    n
}

/// One request the way a careless (or hostile) client would send it:
/// `block` at an export of its own, whatever it says. Returns the
/// completion: (tag, result).
pub fn raw(d: &Disk, port: u32, block: &DiskRequest) -> Result<(u32, Result<(), Error>), Error> {
    // SAFETY: DiskRequest is repr(C) plain integers; the view lives only
    // while exported.
    let bytes = unsafe {
        core::slice::from_raw_parts(
            (block as *const DiskRequest).cast::<u8>(),
            size_of::<DiskRequest>(),
        )
    };
    let h = d.handle();
    let at = h.export_read_only(bytes)?;
    let sent = raw_out(h, port, 8, at);
    h.unexport(at)?;
    sent
}

/// `port_out_wait` of any port and size, then the completion.
pub fn raw_out(
    h: Handle,
    port: u32,
    size: u32,
    value: u64,
) -> Result<(u32, Result<(), Error>), Error> {
    h.port_out_wait(port, size, value, 1 << libmh::disk::DEFAULT_VECTOR)?;
    Ok(disk_decode_result(h.port_in(DISK_IO_RESULT, 8)?))
}

/// Client `k`'s workload, `rounds` random reads and writes (sizes and
/// places from the PRNG seeded by `k`) inside its own region, checked
/// against a shadow copy; then the whole region read back. Exit status 0,
/// or what went wrong.
pub fn workload(d: &Disk, k: u64, rounds: u32) -> i32 {
    let first = k * REGION;
    let (Ok(shadow), Ok(io)) = (
        buffer(0, REGION * SECTOR),
        buffer(REGION * SECTOR, OP_MAX * SECTOR),
    ) else {
        return 10;
    };
    if d.read(first, shadow).is_err() {
        return 11;
    }
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (k + 1));
    for _ in 0..rounds {
        let at = rng.below(REGION);
        let n = 1 + rng.below(OP_MAX.min(REGION - at));
        let range = (at * SECTOR) as usize..((at + n) * SECTOR) as usize;
        let data = &mut io[..range.len()];
        if rng.below(10) < 6 {
            rng.fill(data);
            if let Err(e) = d.write(first + at, data) {
                libmh::println!("disk client {k}: write {n} sectors at {at}: {e}");
                return 12;
            }
            shadow[range].copy_from_slice(data);
        } else {
            if let Err(e) = d.read(first + at, data) {
                libmh::println!("disk client {k}: read {n} sectors at {at}: {e}");
                return 13;
            }
            if *data != shadow[range] {
                libmh::println!("disk client {k}: {n} sectors at {at} read back wrong");
                return 20;
            }
        }
    }
    for (i, expect) in shadow.chunks(io.len()).enumerate() {
        let data = &mut io[..expect.len()];
        if d.read(first + i as u64 * OP_MAX, data).is_err() {
            return 14;
        }
        if *data != *expect {
            libmh::println!("disk client {k}: its region read back wrong at the end");
            return 21;
        }
    }
    0
}

/// A client that writes and reads back 8 KiB at `sector` until the disk
/// goes away: 0 when that ends a transfer with `DeviceGone`, 1 when it
/// ends the open, else what went wrong.
pub fn hammer(sector: u64) -> i32 {
    let d = match Disk::open() {
        Ok(d) => d,
        Err(Error::DeviceGone) => return 1,
        Err(e) => {
            libmh::println!("disk hammer at {sector}: open: {e}");
            return 30;
        }
    };
    let (Ok(out), Ok(back)) = (buffer(0, 8192), buffer(8192, 8192)) else {
        return 31;
    };
    let mut rng = Rng(sector + 1);
    loop {
        rng.fill(out);
        let r = d.write(sector, out).and_then(|()| d.read(sector, back));
        match r {
            Ok(()) if out == back => {}
            Ok(()) => return 20,
            Err(Error::DeviceGone) => return 0,
            Err(e) => {
                libmh::println!("disk hammer at {sector}: {e}");
                return 40 + e.code() as i32;
            }
        }
    }
}

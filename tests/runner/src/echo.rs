//! The test device server (runs in a forked child): answers the runner's
//! commands through a user device, and runs negative checks on its own
//! server-side calls, reporting each result through the client's I/O
//! space. Ports (all size 8):
//! - 0: reply value + 1 (I/O space 0, line 0);
//! - 1: DMA: read `value` bytes at the iova last written to port 2,
//!   uppercase them, write them back; reply the byte sum (I/O space 8);
//! - 3: sequence: the value must be the next in 0, 1, 2...; reply it;
//! - 4: reply the counts of OPEN, CLONE and CLOSE seen (I/O space 16, 24,
//!   32);
//! - 10 + k: run negative check k, reply its error code (I/O space 8);
//! - 9: stop serving (the process exits 0).

use abi::Error;
use abi::userdev::{ClientId, REQUEST_CLONE, REQUEST_CLOSE, REQUEST_OPEN, REQUEST_OUT};
use libmh::dev::{self, Handle, REGISTRY, Served};
use libmh::process;

/// Server-side checks: (what, the error it must give).
pub const CHECKS: [(&str, Error); 10] = [
    ("write_iospace_to_unknown_client", Error::NotFound),
    ("irq_to_unknown_client", Error::NotFound),
    ("dma_from_unknown_client", Error::NotFound),
    ("dma_beyond_the_export", Error::AccessDenied),
    ("write_iospace_beyond_its_size", Error::InvalidArgument),
    ("irq_on_a_line_it_has_not", Error::InvalidArgument),
    ("poll_through_a_non_serving_handle", Error::AccessDenied),
    ("register_a_taken_name", Error::AlreadyExists),
    (
        "dma_into_a_buffer_running_off_its_mapping",
        Error::BadAddress,
    ),
    ("dma_into_a_read_only_buffer", Error::BadAddress),
];

/// Where the server's checks map their buffers.
const CHECK_AREA: u64 = 0x5d00_0000_0000;

/// `dev_dma_read` of 16 bytes of the client's export into the server's
/// page at `CHECK_AREA`, at `offset`, with the page mapped `prot`
/// (unmapped again afterwards). The error must be BadAddress and the
/// page's bytes untouched (a DMA that fails writes nothing); any other
/// outcome is reported as NotSupported.
fn dma_into_check_page(d: Served, client: ClientId, iova: u64, offset: u64, prot: u64) -> Error {
    use libmh::vm;
    if vm::map(CHECK_AREA, 4096, vm::PROT_RW).is_err() {
        return Error::OutOfMemory;
    }
    // SAFETY: the page was just mapped read-write and nothing else uses it.
    unsafe { core::ptr::write_bytes(CHECK_AREA as *mut u8, 0xaa, 4096) };
    let _ = vm::protect(CHECK_AREA, 4096, prot);
    // SAFETY: the buffer's pointer is passed to the kernel, which checks it
    // (that is the test); no Rust reference to it is made.
    let r = unsafe {
        libmh::raw::syscall6(
            abi::Sysno::DevDmaRead as u64,
            d.0.0,
            client,
            iova,
            CHECK_AREA + offset,
            16,
            0,
        )
    };
    // SAFETY: the page is still mapped and readable.
    let untouched = unsafe {
        core::slice::from_raw_parts(CHECK_AREA as *const u8, 4096)
            .iter()
            .all(|&b| b == 0xaa)
    };
    let _ = vm::unmap(CHECK_AREA, 4096);
    match Error::decode(r) {
        Err(e) if untouched => e,
        _ => Error::NotSupported,
    }
}

fn check(k: usize, d: Served, client: ClientId, iova: u64, name: &str) -> Error {
    let mut buf = [0u8; 16];
    let r = match k {
        0 => d.write_iospace(999, 0, 8, 1),
        1 => d.irq(5000, 0),
        2 => d.dma_read(777, iova, &mut buf),
        3 => d.dma_read(client, iova.wrapping_add(4096), &mut buf),
        4 => d.write_iospace(client, 60, 8, 1),
        5 => d.irq(client, 7),
        6 => Served(REGISTRY).try_poll().map(|_| ()),
        7 => dev::create(dev::REGISTRY, name, 0, 0, 1).map(|_| ()),
        // The last 8 bytes of the page and 8 beyond it.
        8 => return dma_into_check_page(d, client, iova, 4096 - 8, libmh::vm::PROT_RW),
        _ => return dma_into_check_page(d, client, iova, 0, libmh::vm::PROT_READ),
    };
    r.err().unwrap_or(Error::NotSupported)
}

pub fn serve(name: &str) -> i32 {
    let d = match dev::create(dev::REGISTRY, name, 2, 64, 1) {
        Ok(d) => d,
        Err(_) => return 90,
    };
    let (mut opens, mut clones, mut closes) = (0u64, 0u64, 0u64);
    let mut iova = 0;
    let mut expect = 0u64;
    let mut next = d.poll();
    loop {
        let r = match next {
            Ok(r) => r,
            Err(_) => return 91,
        };
        // A client that left before its answer is no reason to stop.
        let reply = |port: u32, value: u64| match d.reply_poll(r.client, port, 8, value, Some(0)) {
            Err(Error::NotFound | Error::InvalidArgument) => d.poll(),
            other => other,
        };
        next = match (r.kind, r.port) {
            (REQUEST_OPEN, _) => {
                opens += 1;
                d.poll()
            }
            (REQUEST_CLONE, _) => {
                clones += 1;
                d.poll()
            }
            (REQUEST_CLOSE, _) => {
                closes += 1;
                d.poll()
            }
            (REQUEST_OUT, 0) => reply(0, r.value.wrapping_add(1)),
            (REQUEST_OUT, 2) => {
                iova = r.value;
                d.poll()
            }
            (REQUEST_OUT, 1) => {
                let mut buf = [0u8; 256];
                let n = (r.value as usize).min(buf.len());
                let sum = match d.dma_read(r.client, iova, &mut buf[..n]) {
                    Ok(()) => {
                        buf[..n].make_ascii_uppercase();
                        let _ = d.dma_write(r.client, &buf[..n], iova);
                        buf[..n].iter().map(|&b| b as u64).sum()
                    }
                    Err(e) => 1_000_000 + e.code() as u64,
                };
                reply(8, sum)
            }
            (REQUEST_OUT, 3) => {
                let ok = r.value == expect;
                expect += 1;
                reply(0, if ok { r.value } else { u64::MAX >> 1 })
            }
            (REQUEST_OUT, 4) => {
                let _ = d.write_iospace(r.client, 16, 8, opens);
                let _ = d.write_iospace(r.client, 24, 8, clones);
                reply(32, closes)
            }
            (REQUEST_OUT, 9) => return 0,
            (REQUEST_OUT, p) if (10..10 + CHECKS.len() as u32).contains(&p) => {
                let e = check((p - 10) as usize, d, r.client, iova, name);
                reply(8, e.code() as u64)
            }
            _ => d.poll(),
        };
    }
}

/// Attaches `name`, waiting (yielding) until its server has registered it.
/// The wait is bounded in time, not in yields: on 4 busy CPUs a fresh
/// server can take many of this runner's yields to get going.
pub fn attach_when_ready(name: &str, rights: u32) -> Result<Handle, Error> {
    let start = crate::helpers::ticks_now();
    loop {
        match dev::attach(REGISTRY, name, rights) {
            Err(Error::NotFound) if !crate::helpers::seconds_passed(start, 10) => {
                process::yield_now()
            }
            other => return other,
        }
    }
}

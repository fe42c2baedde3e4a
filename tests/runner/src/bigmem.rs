//! The `bigmem` role (tools/images/selftest-bigmem.toml): on a machine
//! with 8 GiB of RAM (q35 puts 2 GiB below 4 GiB and 6 GiB above), forked
//! children together map and touch 6 GiB at once, which cannot fit below
//! 4 GiB, so frames from above it are handed out, written and read back.
//! Then the children exit and are reaped, and the free frames must be
//! exactly what they were before (counted as the suite counts them: free
//! plus the heap's frames plus spare tables, since the kernel heap may keep
//! a partly used slab page either way; the raw counts are printed too).
//! Prints `bigmem: ok` and exits 0, or says what went wrong and exits 1.
//!
//! First, DMA without an I/O MMU: a device made through platform sees
//! physical addresses, and may drive only 32 bits of them, so the pages
//! exported to it must lie below 4 GiB although fresh pages come from
//! above (the kernel moves them; their contents stay).
//!
//! Each child maps its share in one `vm_map` call (restartable: it stops
//! at ticks), writes a pattern into every page (its first and last words,
//! naming the child and the page), says so in the kernel log, and waits
//! until the log holds that line from every child: a barrier that needs
//! no IPC and stays passed (lines are never taken back, while freed frames
//! would be), so the shares are all held at one moment. Then it checks
//! every page and exits with 0, or with a code saying what failed.

use crate::util::free_frames;
use abi::hw::{HwDeviceSpec, HwPortRange};
use abi::{Error, ExitKind};
use libmh::dev::{self, REGISTRY};
use libmh::{println, process, vm};

/// Children, and what each maps.
const CHILDREN: u64 = 6;
const SHARE: u64 = 1 << 30;
const PAGE: u64 = 4096;
const PAGES: u64 = SHARE / PAGE;
/// Where each child maps its share (its own address space).
const AREA: u64 = 0x3000_0000_0000;
/// How long a child waits at the barrier (in timer ticks) before giving up.
const BARRIER_TICKS: u64 = 120 * 100;

/// Exit codes of a child.
const MAP_FAILED: i32 = 10;
const BARRIER_TIMEOUT: i32 = 11;
const PATTERN_WRONG: i32 = 12;

fn pattern(child: u64, page: u64, last: bool) -> u64 {
    (child << 56) ^ (page.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 8) ^ (last as u64)
}

fn word(page: u64, last: bool) -> *mut u64 {
    (AREA + page * PAGE + if last { PAGE - 8 } else { 0 }) as *mut u64
}

/// The device for the DMA check (the CMOS clock's ports: any will do,
/// nothing is sent to it), and where its buffer is mapped.
const CMOS: &str = "bigmem-cmos";
const DMA_AREA: u64 = 0x3100_0000_0000;
const DMA_PAGES: usize = 8;

/// Exports `DMA_PAGES` fresh pages to a device that sees physical
/// addresses and checks that they all lie below 4 GiB, unchanged.
fn dma_below_4_gib() -> Result<(), Error> {
    let plat = dev::attach(REGISTRY, "platform", dev::RIGHT_WRITE | dev::RIGHT_DMA)?;
    let mut spec = HwDeviceSpec {
        name_len: CMOS.len() as u32,
        port_count: 1,
        ..HwDeviceSpec::default()
    };
    spec.name[..CMOS.len()].copy_from_slice(CMOS.as_bytes());
    spec.ports[0] = HwPortRange { base: 0x70, len: 2 };
    dev::create_hardware(plat, &spec)?;
    let _ = plat.detach();
    let h = dev::attach(REGISTRY, CMOS, dev::RIGHT_DMA)?;
    let len = DMA_PAGES as u64 * PAGE;
    vm::map(DMA_AREA, len, vm::PROT_RW)?;
    // SAFETY: just mapped read-write, and only used here.
    let buf = unsafe { core::slice::from_raw_parts_mut(DMA_AREA as *mut u8, len as usize) };
    for (i, b) in buf.iter_mut().enumerate() {
        *b = (i / 7) as u8;
    }
    let mut pages = [0u64; DMA_PAGES];
    let first = h.export_pages(buf, &mut pages)?;
    let high = pages.iter().find(|&&p| p + PAGE > 1 << 32);
    let same = buf.iter().enumerate().all(|(i, &b)| b == (i / 7) as u8);
    println!(
        "bigmem: {DMA_PAGES} pages exported to '{CMOS}' (no I/O MMU) at {:#x}..{:#x}",
        pages.iter().min().copied().unwrap_or(0),
        pages.iter().max().copied().unwrap_or(0) + PAGE
    );
    h.unexport(first)?;
    let _ = h.detach();
    vm::unmap(DMA_AREA, len)?;
    if let Some(p) = high {
        println!("bigmem: FAILED: a page a 32-bit device was given lies at {p:#x}");
        return Err(Error::InvalidArgument);
    }
    if !same {
        println!("bigmem: FAILED: the exported pages changed");
        return Err(Error::InvalidArgument);
    }
    Ok(())
}

/// What a child logs once its share is mapped and written.
const HOLDING: &str = "share mapped and written";

/// Where the kernel log ends now (its absolute position).
fn log_end() -> u64 {
    let mut buf = [0u8; 4096];
    let mut pos = 0;
    loop {
        match process::log_read(pos, &mut buf) {
            Ok(0) => return pos,
            Ok(n) => pos += n as u64,
            // Overwritten already (the log is a ring): look further on.
            Err(_) => pos += buf.len() as u64,
        }
    }
}

/// How often `needle` occurs in the kernel log from position `from` on.
fn count_in_log(from: u64, needle: &[u8]) -> usize {
    const CHUNK: usize = 4096;
    let mut buf = [0u8; CHUNK + 64];
    // Bytes carried over from the last chunk, so that a needle split
    // between two reads is seen (fewer than the needle: none counted twice).
    let mut keep = 0;
    let mut pos = from;
    let mut found = 0;
    loop {
        let got = match process::log_read(pos, &mut buf[keep..keep + CHUNK]) {
            Ok(0) | Err(_) => return found,
            Ok(n) => n,
        };
        pos += got as u64;
        let hay = &buf[..keep + got];
        found += hay.windows(needle.len()).filter(|w| *w == needle).count();
        let carry = (needle.len() - 1).min(hay.len());
        buf.copy_within(keep + got - carry..keep + got, 0);
        keep = carry;
    }
}

fn child(index: u64, log_from: u64) -> i32 {
    if let Err(e) = vm::map(AREA, SHARE, vm::PROT_RW) {
        println!("bigmem: child {index}: vm_map of {} MiB: {e}", SHARE >> 20);
        return MAP_FAILED;
    }
    for page in 0..PAGES {
        for last in [false, true] {
            // SAFETY: the page was just mapped read-write by this process.
            unsafe { word(page, last).write_volatile(pattern(index, page, last)) };
        }
    }
    println!("bigmem: child {index}: {HOLDING}");
    let start = process::sys_info().map_or(0, |i| i.ticks);
    while count_in_log(log_from, HOLDING.as_bytes()) < CHILDREN as usize {
        if process::sys_info().map_or(0, |i| i.ticks) - start > BARRIER_TICKS {
            println!("bigmem: child {index}: the others never mapped their shares");
            return BARRIER_TIMEOUT;
        }
        process::yield_now();
    }
    for page in 0..PAGES {
        for last in [false, true] {
            // SAFETY: as above; the page stays mapped until exit.
            let got = unsafe { word(page, last).read_volatile() };
            if got != pattern(index, page, last) {
                println!("bigmem: child {index}: page {page} reads {got:#x}");
                return PATTERN_WRONG;
            }
        }
    }
    0
}

pub fn run() -> i32 {
    if let Err(e) = dma_below_4_gib() {
        println!("bigmem: FAILED: DMA below 4 GiB: {e}");
        return 1;
    }
    let info = match process::sys_info() {
        Ok(i) => i,
        Err(e) => {
            println!("bigmem: FAILED: sys_info: {e}");
            return 1;
        }
    };
    let baseline = free_frames();
    println!(
        "bigmem: {} MiB managed, {} MiB free; {CHILDREN} children map {} MiB each",
        (info.total_frames * PAGE) >> 20,
        (info.free_frames * PAGE) >> 20,
        SHARE >> 20
    );
    let log_from = log_end();
    let t0 = info.ticks;
    let mut forked = 0;
    let mut failed = false;
    for index in 0..CHILDREN {
        match process::fork() {
            Ok(0) => process::exit(child(index, log_from) as i64),
            Ok(_) => forked += 1,
            Err(e) => {
                println!("bigmem: FAILED: fork {index}: {e}");
                failed = true;
                break;
            }
        }
    }
    for _ in 0..forked {
        match process::wait_child() {
            Ok(st) if st.kind == ExitKind::Exited as u32 && st.code == 0 => {}
            Ok(st) => {
                println!(
                    "bigmem: FAILED: pid {} ended with kind {} code {} (addr {:#x})",
                    st.pid, st.kind, st.code, st.fault_addr
                );
                failed = true;
            }
            Err(e) => {
                println!("bigmem: FAILED: wait_child: {e}");
                failed = true;
            }
        }
    }
    let after = free_frames();
    let raw_after = process::sys_info().map_or(0, |i| i.free_frames);
    let secs = process::sys_info().map_or(0, |i| (i.ticks - t0) / i.tick_hz.max(1));
    if after != baseline {
        println!("bigmem: FAILED: {baseline} frames free before, {after} after");
        failed = true;
    }
    if failed {
        return 1;
    }
    println!(
        "bigmem: ok: {CHILDREN} children mapped, wrote and read back {} MiB at once, \
         exited and were reaped in {secs} s; {baseline} frames free before and after \
         (raw free frames {} before, {raw_after} after)",
        (CHILDREN * SHARE) >> 20,
        info.free_frames
    );
    0
}

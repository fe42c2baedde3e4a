//! mhbench: MH's benchmark program. It runs as init of the `bench` image
//! (`cargo xtask bench`, docs/benchmarks.md) under QEMU `-icount`, where the
//! guest TSC counts instructions, and prints guest instructions per
//! operation for a fixed list of kernel paths.
//!
//! Rules (the output contract `cargo xtask bench` parses): one line per
//! benchmark, `bench <name> <instructions> <iterations>`, or `bench <name>
//! FAILED <reason>`; then `bench done`; the exit status is 0 only if nothing
//! failed. Benchmark names are stable. Each benchmark uses its own address
//! range, so none disturbs another's page tables, and reaps every child it
//! starts, so `yield_alone` really is alone.
#![no_std]
#![no_main]

extern crate alloc;

mod cbench;
mod disk;
mod dma;
mod ipc;
mod measure;
mod memsrv;
mod scale;
mod servers;
mod smp;
mod time;
mod tiny;

use abi::layout::{PAGE_SIZE as P, USER_HEAP_BASE};
use abi::{ExitKind, ExitStatus};
use libmh::{Args, println, process, rt, vm};
use measure::{Fail, REPS};

libmh::entry!(main);

/// Where `fork_exit_wait_1mib` keeps its touched MiB.
const MIB_AREA: u64 = 0x6000_0000_0000;
/// Where `vm_map_unmap` maps its page.
const MAP_AREA: u64 = 0x6100_0000_0000;
/// Where `cow_fault` keeps the pages its children copy.
const COW_AREA: u64 = 0x6200_0000_0000;
/// The part of the heap `page_fault_demand_zero` touches.
const HEAP_AREA: u64 = USER_HEAP_BASE + 0x100_0000;

/// Pages touched per batch by the two page-fault benchmarks.
const FAULT_PAGES: u64 = 256;

/// A benchmark: its name and the function that returns (instructions per
/// operation, iterations per batch).
type Bench = (&'static str, fn() -> Result<(u64, u64), Fail>);

const BENCHES: [Bench; 31] = [
    ("null_syscall", null_syscall),
    ("yield_alone", yield_alone),
    ("fork_exit_wait", fork_exit_wait),
    ("fork_exit_wait_1mib", fork_exit_wait_1mib),
    ("cow_fault", cow_fault),
    ("page_fault_demand_zero", page_fault_demand_zero),
    ("vm_map_unmap", vm_map_unmap),
    ("irq_raise_wait", irq_raise_wait),
    ("exec_tiny", exec_tiny),
    ("ipc_round_trip", ipc::round_trip_fused),
    ("ipc_round_trip_plain", ipc::round_trip_plain),
    ("ipc_round_trip_dma_4k", ipc::round_trip_dma_4k),
    ("irq_ping_pong", ipc::irq_ping_pong),
    ("port_in_kernel_device", ipc::port_in_kernel),
    ("attach_detach", ipc::attach_detach),
    ("export_unexport_1_iommu", dma::iommu_1),
    ("export_unexport_64_iommu", dma::iommu_64),
    ("export_unexport_1_physical", dma::physical_1),
    ("export_unexport_64_physical", dma::physical_64),
    ("time_now_ns", time::now_ns),
    ("time_port_in_timer", time::port_in_timer),
    ("alloc_free_small", memsrv::alloc_free_small),
    ("alloc_free_4k", memsrv::alloc_free_4k),
    ("mem_grant", memsrv::grant),
    ("mem_usage", memsrv::usage),
    ("disk_sync_round_trip", disk::sync_round_trip),
    ("disk_read_4k", disk::read_4k),
    ("disk_write_4k", disk::write_4k),
    ("disk_read_4k_irq", disk::read_4k_irq),
    ("disk_write_4k_irq", disk::write_4k_irq),
    ("disk_read_1mib_seq_irq", disk::read_1mib_seq_irq),
];

fn main(args: Args) -> i32 {
    // The bench-smp image: the wall-time figures of several CPUs only.
    if args.get(0) == Some("smp") {
        let failed = smp::run();
        return if failed == 0 { 0 } else { 1 };
    }
    // First thing: under -icount this is every instruction since the CPU
    // started (firmware, kernel boot, loading init, libmh's start-up).
    let boot = measure::now();
    println!("bench boot_to_init {boot} 1");
    let mut failed = 0u32;
    for (name, bench) in BENCHES {
        match bench() {
            Ok((per_op, iters)) => println!("bench {name} {per_op} {iters}"),
            Err(e) => {
                println!("bench {name} FAILED {e}");
                failed += 1;
            }
        }
    }
    // The same round trip from C, through mh.h only.
    failed += cbench::run();
    // Last: it parks up to a thousand processes and devices.
    failed += scale::run();
    println!("bench done");
    if failed == 0 { 0 } else { 1 }
}

/// A note in the serial log (not a `bench` line: xtask does not show it).
pub fn note(args: core::fmt::Arguments<'_>) {
    println!("mhbench: {args}");
}

/// Writes one byte (volatile: the write must happen, and fault, here).
fn poke(addr: u64) {
    // SAFETY: callers pass pages they mapped or that libmh maps on demand.
    unsafe { (addr as *mut u8).write_volatile(1) }
}

fn null_syscall() -> Result<(u64, u64), Fail> {
    const N: u64 = 20_000;
    let per = measure::run(N, 100, &mut |_| {
        core::hint::black_box(process::getpid());
        Ok(())
    })?;
    Ok((per, N))
}

fn yield_alone() -> Result<(u64, u64), Fail> {
    const N: u64 = 10_000;
    let per = measure::run(N, 100, &mut |_| {
        process::yield_now();
        Ok(())
    })?;
    Ok((per, N))
}

fn irq_raise_wait() -> Result<(u64, u64), Fail> {
    const N: u64 = 10_000;
    let per = measure::run(N, 100, &mut |_| {
        process::irq_raise(3)?;
        process::irq_wait(1 << 3)?;
        Ok(())
    })?;
    Ok((per, N))
}

fn vm_map_unmap() -> Result<(u64, u64), Fail> {
    const N: u64 = 2_000;
    // The warm-up also builds the page tables above MAP_AREA, which stay.
    let per = measure::run(N, 10, &mut |_| {
        vm::map(MAP_AREA, P, vm::PROT_RW)?;
        vm::unmap(MAP_AREA, P)?;
        Ok(())
    })?;
    Ok((per, N))
}

/// Checks that the runtime did `n` more of something than `before`.
fn check_grew(what: &'static str, before: u64, after: u64, n: u64) -> Result<(), Fail> {
    let grew = after.wrapping_sub(before);
    if grew == n {
        Ok(())
    } else {
        Err(Fail::Check(what, grew as i64))
    }
}

fn page_fault_demand_zero() -> Result<(u64, u64), Fail> {
    const N: u64 = FAULT_PAGES;
    let touch = &mut |i: u64| {
        poke(HEAP_AREA + i * P);
        Ok(())
    };
    // An unmeasured first round builds the page tables, which stay.
    measure::batch(N, touch)?;
    let mut best = u64::MAX;
    for _ in 0..REPS {
        vm::unmap(HEAP_AREA, N * P)?;
        let before = rt::stats().demand_maps;
        best = best.min(measure::batch(N, touch)?);
        let after = rt::stats().demand_maps;
        check_grew("demand maps differ from pages", before, after, N)?;
    }
    vm::unmap(HEAP_AREA, N * P)?;
    Ok((measure::per_op(best, measure::empty(N), N), N))
}

/// The part of `cow_fault` that runs in the child: its writes to the
/// pages it shares with its parent are the COW faults. Returns the best
/// batch's ticks, or a negative count of unexpected copies.
fn cow_child(n: u64) -> i64 {
    // The first COW fault of a new child also copies the pages the runtime
    // itself writes (its counters, its handler stack) and the stack pages
    // `batch` uses: take it on a spare page, through the same call path,
    // before counting.
    if measure::batch(1, &mut |_| {
        poke(COW_AREA + n * P);
        Ok(())
    })
    .is_err()
    {
        return -1;
    }
    let before = rt::stats().cow_copies;
    let ticks = measure::batch(n, &mut |i| {
        poke(COW_AREA + i * P);
        Ok(())
    });
    let copies = rt::stats().cow_copies.wrapping_sub(before);
    match ticks {
        Ok(t) if copies == n => t as i64,
        _ => -(copies as i64) - 1,
    }
}

/// One COW fault, resolved by libmh (copy into a scratch page, move it
/// over). The parent touches the pages, then for each batch forks a child
/// that writes one byte to each and reports its timing as its exit
/// status; the parent sleeps in `wait_child` meanwhile, so the pages stay
/// shared and every write is a real copy. (Measuring in the parent would
/// need a child that never exits, to keep the pages shared.)
fn cow_fault() -> Result<(u64, u64), Fail> {
    const N: u64 = FAULT_PAGES;
    vm::map(COW_AREA, (N + 1) * P, vm::PROT_RW)?;
    for i in 0..=N {
        poke(COW_AREA + i * P);
    }
    let mut best = u64::MAX;
    for _ in 0..REPS {
        if process::fork()? == 0 {
            process::exit(cow_child(N));
        }
        let st = process::wait_child()?;
        if st.kind != ExitKind::Exited as u32 || st.code < 0 {
            let copies = -st.code - 1;
            return Err(Fail::Check("cow_copies did not grow by the pages", copies));
        }
        best = best.min(st.code as u64);
    }
    vm::unmap(COW_AREA, (N + 1) * P)?;
    Ok((measure::per_op(best, measure::empty(N), N), N))
}

/// Checks that a child exited with status 0.
fn exited_ok(st: ExitStatus) -> Result<(), Fail> {
    if st.kind == ExitKind::Exited as u32 && st.code == 0 {
        Ok(())
    } else {
        Err(Fail::Check("a child did not exit with 0", st.code))
    }
}

/// fork; the child exits at once; the parent reaps it.
fn fork_exit_wait_once(_: u64) -> Result<(), Fail> {
    if process::fork()? == 0 {
        process::exit(0);
    }
    exited_ok(process::wait_child()?)
}

fn fork_exit_wait() -> Result<(u64, u64), Fail> {
    const N: u64 = 200;
    Ok((measure::run(N, 10, &mut fork_exit_wait_once)?, N))
}

fn fork_exit_wait_1mib() -> Result<(u64, u64), Fail> {
    const N: u64 = 200;
    const PAGES: u64 = 256;
    vm::map(MIB_AREA, PAGES * P, vm::PROT_RW)?;
    for i in 0..PAGES {
        poke(MIB_AREA + i * P);
    }
    let per = measure::run(N, 10, &mut fork_exit_wait_once)?;
    vm::unmap(MIB_AREA, PAGES * P)?;
    Ok((per, N))
}

fn exec_tiny() -> Result<(u64, u64), Fail> {
    const N: u64 = 100;
    let image = tiny::elf();
    let per = measure::run(N, 5, &mut |_| {
        if process::fork()? == 0 {
            // Only returns on failure; 127 then fails the check below.
            let _ = process::exec(&image, "tiny");
            process::exit(127);
        }
        exited_ok(process::wait_child()?)
    })?;
    Ok((per, N))
}

//! The disk (`disk0`, servers/virtio-blk): a SYNC round trip through the
//! disk server (its request path, no device), and 4 KiB reads and writes
//! through libmh::disk (the whole path: the client's exports and request,
//! the server's copies and the virtio request, which QEMU completes on its
//! I/O thread while the driver polls). mhbench starts the driver from
//! bootfs (module `virtio-blk` of `bench.toml`) and kills it afterwards,
//! outside the measured batches.

use crate::measure::{self, Fail};
use crate::servers::{open_when_up, spawn, stop};
use abi::disk::{DISK_IO_RESULT, DISK_PORT_SYNC};
use libmh::disk::Disk;

/// `with_disk` with the timer server up first (and held open: it exits
/// when idle), so the driver takes its completions by MSI-X (it needs the
/// timer for its watchdog).
fn with_disk_interrupts(f: impl FnOnce(&Disk) -> Result<u64, Fail>) -> Result<u64, Fail> {
    let pid = spawn("timer")?;
    let timer = open_when_up("the timer server ended early", || {
        libmh::timer::Timer::open(50, 51)
    })?;
    let r = with_disk(|d| {
        if d.flags() & abi::disk::DISK_FLAG_INTERRUPTS == 0 {
            return Err(Fail::Check("the driver is not on interrupts", 0));
        }
        f(d)
    });
    stop(pid)?;
    let _ = timer.close();
    r
}

/// Runs `f` with the driver up and disk0 open, then kills the driver.
fn with_disk(f: impl FnOnce(&Disk) -> Result<u64, Fail>) -> Result<u64, Fail> {
    let pid = spawn("virtio-blk")?;
    let disk = open_when_up("the disk driver ended early", Disk::open)?;
    let result = f(&disk);
    disk.close()?;
    stop(pid)?;
    result
}

/// A SYNC request and its completion: `port_out_wait` + `port_in`.
pub fn sync_round_trip() -> Result<(u64, u64), Fail> {
    const N: u64 = 2_000;
    let per = with_disk(|d| {
        let h = d.handle();
        let mask = 1 << libmh::disk::DEFAULT_VECTOR;
        measure::run(N, 50, &mut |i| {
            h.port_out_wait(DISK_PORT_SYNC, 8, i + 1, mask)?;
            core::hint::black_box(h.port_in(DISK_IO_RESULT, 8)?);
            Ok(())
        })
    })?;
    Ok((per, N))
}

/// `Disk::read` of 4 KiB (sector `i * 8` of the first MiB).
pub fn read_4k() -> Result<(u64, u64), Fail> {
    const N: u64 = 200;
    let per = with_disk(|d| {
        let mut buf = [0u8; 4096];
        measure::run(N, 10, &mut |i| {
            d.read(i % 256 * 8, &mut buf)?;
            Ok(())
        })
    })?;
    Ok((per, N))
}

/// `Disk::write` of 4 KiB.
pub fn write_4k() -> Result<(u64, u64), Fail> {
    const N: u64 = 200;
    let per = with_disk(|d| {
        let buf = [0x5au8; 4096];
        measure::run(N, 10, &mut |i| {
            d.write(i % 256 * 8, &buf)?;
            Ok(())
        })
    })?;
    Ok((per, N))
}

/// `Disk::read` of 4 KiB with the driver on MSI-X: instructions run by
/// everyone (client, kernel, driver), the CPU's idle time while QEMU does
/// the I/O excluded.
pub fn read_4k_irq() -> Result<(u64, u64), Fail> {
    const N: u64 = 200;
    let per = with_disk_interrupts(|d| {
        let mut buf = [0u8; 4096];
        measure::run_busy(N, 10, &mut |i| {
            d.read(i % 256 * 8, &mut buf)?;
            Ok(())
        })
    })?;
    Ok((per, N))
}

/// `Disk::write` of 4 KiB, as `read_4k_irq`.
pub fn write_4k_irq() -> Result<(u64, u64), Fail> {
    const N: u64 = 200;
    let per = with_disk_interrupts(|d| {
        let buf = [0x5au8; 4096];
        measure::run_busy(N, 10, &mut |i| {
            d.write(i % 256 * 8, &buf)?;
            Ok(())
        })
    })?;
    Ok((per, N))
}

/// 1 MiB read sequentially in 64 KiB requests, as `read_4k_irq`: per MiB.
pub fn read_1mib_seq_irq() -> Result<(u64, u64), Fail> {
    const N: u64 = 10;
    let per = with_disk_interrupts(|d| {
        let mut buf = alloc::vec![0u8; 65536];
        measure::run_busy(N, 1, &mut |_| {
            for chunk in 0..16u64 {
                d.read(chunk * 128, &mut buf)?;
            }
            Ok(())
        })
    })?;
    Ok((per, N))
}

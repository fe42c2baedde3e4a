//! The disk driver (servers/virtio-blk) and its device, disk0, on the test
//! image's blank virtio-blk disk: the runner starts the driver itself
//! (`start = false` module), then checks the disk's shape, data written
//! and read back by several clients at once (random sizes and places from
//! a fixed PRNG), that every malformed request — beyond the disk, zero,
//! partial or oversized, bad buffers, bad blocks — is refused with its
//! error, that a handle without WRITE cannot write, that a client dying
//! mid-request harms no one, the C example, and what a restart does:
//! flushed data survives it, and a driver killed mid-request twenty times
//! leaves its clients with `DeviceGone`, comes back, serves again and
//! leaks no frame.

use crate::disk_util::*;
use crate::suite::Suite;
use crate::util::free_frames;
use crate::{ensure, ensure_eq};
use abi::Error;
use abi::disk::*;
use abi::kdev::PLATFORM_PORT_QUARANTINED;
use libmh::dev::{self, REGISTRY};
use libmh::disk::{self, Disk};
use libmh::{process, vm};

/// The test image's disk: 4 MiB.
const CAPACITY: u64 = 8192;
/// Where the restart tests keep data that must survive.
const DURABLE: u64 = 6000;
/// Where the tests of refusals and rights write.
const SCRATCH: u64 = 5000;
/// How often the kill test kills the driver.
const KILLS: u32 = 20;

pub fn run(s: &mut Suite) {
    let mut timer = None;
    let mut driver = match start_driver() {
        Ok(pid) => pid,
        Err(f) => {
            s.run("disk_driver_starts", || Err(f));
            return;
        }
    };

    s.run("disk0_publishes_its_shape", || {
        let d = Disk::open().map_err(fail)?;
        ensure_eq!(d.capacity(), CAPACITY);
        ensure_eq!(d.sector_size(), DISK_SECTOR_SIZE);
        ensure_eq!(d.transfer_max(), DISK_TRANSFER_MAX);
        ensure_eq!(d.serial(), "disk0");
        ensure!(
            d.flags() & DISK_FLAG_FLUSH != 0,
            "QEMU's disk has a write cache"
        );
        ensure_eq!(d.flags() & DISK_FLAG_READ_ONLY, 0);
        d.close().map_err(fail)
    });

    s.run("disk_data_survives_several_clients_at_once", || {
        // Four clients at once, each in its own region: two attach disk0
        // themselves, two use the handle they inherit (a CLONE).
        let parent = Disk::open().map_err(fail)?;
        for k in 0..4u64 {
            match process::fork() {
                Ok(0) => {
                    let d = if k % 2 == 0 {
                        Disk::open()
                    } else {
                        Disk::from_handle(parent.handle(), disk::DEFAULT_VECTOR)
                    };
                    process::exit(d.map_or(9, |d| workload(&d, k, 24)) as i64)
                }
                Ok(_) => {}
                Err(e) => return Err(fail(e)),
            }
        }
        for st in reap(4)? {
            ensure_eq!((st.kind, st.code), (0, 0), "client pid {}", st.pid);
        }
        // What they wrote is there for another client too: no region is
        // as blank as the disk started.
        let region = buffer(0, REGION * SECTOR).map_err(fail)?;
        for k in 0..4 {
            parent.read(k * REGION, region).map_err(fail)?;
            ensure!(region.iter().any(|&b| b != 0), "region {k} is blank");
        }
        vm::unmap(VA, REGION * SECTOR).map_err(fail)?;
        parent.close().map_err(fail)
    });

    s.run(
        "disk_requests_beyond_the_disk_or_malformed_are_refused",
        || {
            let d = Disk::open().map_err(fail)?;
            let mut one = [0u8; 1024];
            // libmh's own checks, with the server's function.
            ensure_eq!(d.read(CAPACITY, &mut one[..512]), Err(Error::NotFound));
            ensure_eq!(d.write(CAPACITY - 1, &one), Err(Error::NotFound));
            ensure_eq!(d.read(0, &mut one[..0]), Err(Error::InvalidArgument));
            ensure_eq!(d.read(0, &mut one[..100]), Err(Error::InvalidArgument));
            // The server's, without libmh in between.
            let buf = buffer(0, DISK_TRANSFER_MAX + 4096).map_err(fail)?;
            let iova = d.handle().export(buf).map_err(fail)?;
            let cases: [(u64, u32, Error); 9] = [
                (CAPACITY, 512, Error::NotFound),
                (CAPACITY - 1, 1024, Error::NotFound),
                (u64::MAX, 512, Error::NotFound),
                (u64::MAX - 1, 1024, Error::NotFound),
                (0, 0, Error::InvalidArgument),
                (0, 100, Error::InvalidArgument),
                (0, 513, Error::InvalidArgument),
                (0, DISK_TRANSFER_MAX as u32 + 512, Error::InvalidArgument),
                (
                    SCRATCH,
                    DISK_TRANSFER_MAX as u32 * 2,
                    Error::InvalidArgument,
                ),
            ];
            for (i, (sector, len, want)) in cases.into_iter().enumerate() {
                let tag = 100 + i as u32;
                for port in [DISK_PORT_READ, DISK_PORT_WRITE] {
                    let block = DiskRequest {
                        sector,
                        buffer: iova,
                        len,
                        tag,
                    };
                    let got = raw(&d, port, &block).map_err(fail)?;
                    ensure_eq!(
                        got,
                        (tag, Err(want)),
                        "port {port}, sector {sector}, {len} bytes"
                    );
                }
            }
            // The largest transfer, at the very end, is fine.
            let last = DiskRequest {
                sector: CAPACITY - DISK_TRANSFER_MAX / 512,
                buffer: iova,
                len: DISK_TRANSFER_MAX as u32,
                tag: 7,
            };
            ensure_eq!(raw(&d, DISK_PORT_READ, &last), Ok((7, Ok(()))));
            // Other ports and sizes.
            ensure_eq!(
                raw_out(d.handle(), 9, 8, 0),
                Ok((0, Err(Error::NotSupported)))
            );
            ensure_eq!(
                raw_out(d.handle(), DISK_PORT_FLUSH, 4, 5),
                Ok((0, Err(Error::InvalidArgument)))
            );
            ensure_eq!(raw_out(d.handle(), DISK_PORT_FLUSH, 8, 5), Ok((5, Ok(()))));
            ensure_eq!(raw_out(d.handle(), DISK_PORT_SYNC, 8, 6), Ok((6, Ok(()))));
            d.handle().unexport(iova).map_err(fail)?;
            vm::unmap(VA, DISK_TRANSFER_MAX + 4096).map_err(fail)?;
            d.close().map_err(fail)
        },
    );

    s.run("disk_requests_with_bad_buffers_are_refused", || {
        let d = Disk::open().map_err(fail)?;
        let h = d.handle();
        let buf = buffer(0, 8192).map_err(fail)?;
        let (small, rest) = buf.split_at_mut(1024);
        let iova = h.export(small).map_err(fail)?;
        let ro = h.export_read_only(&rest[..512]).map_err(fail)?;
        let block = |buffer, len| DiskRequest {
            sector: SCRATCH,
            buffer,
            len,
            tag: 3,
        };
        // Outside any export, across its end, and a read into memory the
        // client lent read-only: the kernel's copy refuses them.
        for b in [block(iova + 4096, 512), block(iova + 512, 1024)] {
            for port in [DISK_PORT_READ, DISK_PORT_WRITE] {
                ensure_eq!(raw(&d, port, &b), Ok((3, Err(Error::AccessDenied))));
            }
        }
        ensure_eq!(
            raw(&d, DISK_PORT_READ, &block(ro, 512)),
            Ok((3, Err(Error::AccessDenied))),
            "a read into a read-only export"
        );
        ensure_eq!(raw(&d, DISK_PORT_WRITE, &block(ro, 512)), Ok((3, Ok(()))));
        // A request block outside any export: its tag is unknown.
        ensure_eq!(
            raw_out(h, DISK_PORT_READ, 8, iova + 64 * 4096),
            Ok((0, Err(Error::AccessDenied)))
        );
        ensure_eq!(raw(&d, DISK_PORT_READ, &block(iova, 1024)), Ok((3, Ok(()))));
        h.unexport(iova).map_err(fail)?;
        h.unexport(ro).map_err(fail)?;
        vm::unmap(VA, 8192).map_err(fail)?;
        d.close().map_err(fail)
    });

    s.run("a_disk_handle_without_write_cannot_write", || {
        let d = Disk::open().map_err(fail)?;
        let before = [0x5au8; 512];
        d.write(SCRATCH, &before).map_err(fail)?;
        // Attached without WRITE: the shape is readable, no request goes.
        let rights = dev::RIGHT_READ | dev::RIGHT_DMA | dev::RIGHT_IRQ;
        let h = dev::attach(REGISTRY, disk::NAME, rights).map_err(fail)?;
        let ro = Disk::from_handle(h, 61).map_err(fail)?;
        ensure_eq!(ro.capacity(), CAPACITY);
        let mut other = [0xa5u8; 512];
        ensure_eq!(ro.write(SCRATCH, &other), Err(Error::AccessDenied));
        ensure_eq!(ro.read(SCRATCH, &mut other), Err(Error::AccessDenied));
        ro.close().map_err(fail)?;
        // WRITE given up after attaching: the same.
        let h = dev::attach(REGISTRY, disk::NAME, disk::RIGHTS).map_err(fail)?;
        let rw = Disk::from_handle(h, 61).map_err(fail)?;
        h.restrict(rights).map_err(fail)?;
        ensure_eq!(rw.write(SCRATCH, &other), Err(Error::AccessDenied));
        rw.close().map_err(fail)?;
        let mut now = [0u8; 512];
        d.read(SCRATCH, &mut now).map_err(fail)?;
        ensure!(now == before, "the sector changed");
        d.close().map_err(fail)
    });

    s.run("a_read_only_disk_client_reads_and_cannot_write", || {
        let d = Disk::open().map_err(fail)?;
        let before = [0x3cu8; 512];
        d.write(SCRATCH + 1, &before).map_err(fail)?;
        let ro = Disk::open_read_only().map_err(fail)?;
        ensure!(
            ro.flags() & DISK_FLAG_READ_ONLY != 0,
            "not marked read-only"
        );
        ensure!(
            d.flags() & DISK_FLAG_READ_ONLY == 0,
            "disk0 marked read-only"
        );
        ensure_eq!(ro.capacity(), CAPACITY);
        let mut back = [0u8; 512];
        ro.read(SCRATCH + 1, &mut back).map_err(fail)?;
        ensure!(back == before, "the read-only client read something else");
        // The server refuses its writes (libmh sends them as asked).
        ensure_eq!(
            ro.write(SCRATCH + 1, &[0xc3u8; 512]),
            Err(Error::AccessDenied)
        );
        ensure_eq!(ro.flush(), Ok(()));
        d.read(SCRATCH + 1, &mut back).map_err(fail)?;
        ensure!(back == before, "the sector changed");
        ro.close().map_err(fail)?;
        d.close().map_err(fail)
    });

    s.run("a_client_dying_mid_request_harms_no_one", || {
        for (i, port) in [DISK_PORT_READ, DISK_PORT_WRITE, DISK_PORT_READ]
            .into_iter()
            .enumerate()
        {
            let child = process::fork().map_err(fail)?;
            if child == 0 {
                // A 64 KiB request, and gone before its completion.
                let Ok(d) = Disk::open() else {
                    process::exit(1)
                };
                let Ok(buf) = buffer(0, DISK_TRANSFER_MAX) else {
                    process::exit(2)
                };
                let Ok(iova) = d.handle().export(buf) else {
                    process::exit(3)
                };
                let block = DiskRequest {
                    sector: SHARED_END + 64 * i as u64,
                    buffer: iova,
                    len: DISK_TRANSFER_MAX as u32,
                    tag: 1,
                };
                // SAFETY: DiskRequest is repr(C) plain integers; the view
                // lives as long as the process.
                let bytes =
                    unsafe { core::slice::from_raw_parts((&raw const block).cast::<u8>(), 24) };
                let Ok(at) = d.handle().export_read_only(bytes) else {
                    process::exit(4)
                };
                let sent = d.handle().port_out(port, 8, at);
                process::exit(sent.is_err() as i64)
            }
            let st = reap(1)?;
            ensure_eq!((st[0].kind, st[0].code), (0, 0));
            // Everyone else carries on.
            let d = Disk::open().map_err(fail)?;
            let mut back = [0u8; 4096];
            d.write(SCRATCH, &[i as u8; 4096]).map_err(fail)?;
            d.read(SCRATCH, &mut back).map_err(fail)?;
            ensure!(back == [i as u8; 4096], "round {i}: read back wrong");
            d.close().map_err(fail)?;
        }
        Ok(())
    });

    s.run("disk_c_example_writes_and_reads_a_sector", || {
        let fs = libmh::bootfs::Bootfs::open().map_err(fail)?;
        let index = fs.find("disk-c").map_err(fail)?;
        ensure!(index.is_some(), "no disk-c module");
        let pid = fs.spawn(index.unwrap_or(0)).map_err(fail)?;
        let _ = fs.0.detach();
        let st = reap(1)?;
        ensure_eq!((st[0].pid, st[0].kind, st[0].code), (pid, 0, 0));
        Ok(())
    });

    s.run("flushed_writes_survive_a_driver_restart", || {
        let d = Disk::open().map_err(fail)?;
        let mut data = [0u8; 32768];
        Rng(42).fill(&mut data);
        d.write(DURABLE, &data).map_err(fail)?;
        d.flush().map_err(fail)?;
        stop_driver(driver)?;
        // The old handle only says the device is gone.
        ensure_eq!(d.read(DURABLE, &mut [0u8; 512]), Err(Error::DeviceGone));
        ensure_eq!(d.flush(), Err(Error::DeviceGone));
        d.close().map_err(fail)?;
        // The tests so far ran the driver polling (no timer for its
        // watchdog); from here on it takes completions by MSI-X, through
        // the interrupt remapping table.
        timer = Some(crate::t_timer::start()?);
        driver = start_driver()?;
        let d = Disk::open().map_err(fail)?;
        ensure!(
            d.flags() & DISK_FLAG_INTERRUPTS != 0,
            "the restarted driver does not take interrupts"
        );
        let mut back = [0u8; 32768];
        d.read(DURABLE, &mut back).map_err(fail)?;
        ensure!(back == data, "the data did not survive the restart");
        d.close().map_err(fail)
    });

    s.run("a_driver_killed_mid_request_comes_back_clean", || {
        let plat = dev::attach(REGISTRY, "platform", dev::RIGHT_READ).map_err(fail)?;
        let quarantined = || {
            plat.port_in(PLATFORM_PORT_QUARANTINED, 8)
                .unwrap_or(u64::MAX)
        };
        let mut baseline = (0, 0);
        let mut mid_transfer = 0;
        for i in 0..=KILLS {
            // The first round only warms up (page tables, heap) so that
            // the baseline counts what could leak.
            if i == 1 {
                baseline = (free_frames(), quarantined());
            }
            let client = process::fork().map_err(fail)?;
            if client == 0 {
                process::exit(hammer(SHARED_END + 16 * u64::from(i % 8)) as i64)
            }
            // Once the client is attached, a few more turns, so that the
            // kill comes at different points of its requests.
            let mut turns = 0;
            while clients() == 0 && turns < 100_000 {
                process::yield_now();
                turns += 1;
            }
            for _ in 0..2 + i % 7 * 3 {
                process::yield_now();
            }
            kill(driver)?;
            let mut codes = [(0, 0, 0); 2];
            for (slot, st) in codes.iter_mut().zip(reap(2)?) {
                *slot = (st.pid, st.kind, st.code);
            }
            codes.sort_by_key(|&(pid, ..)| pid != client);
            ensure!(
                codes[0].0 == client && codes[0].1 == 0 && codes[0].2 <= 1,
                "round {i}: the client ended {:?}",
                codes[0]
            );
            mid_transfer += (i > 0 && codes[0].2 == 0) as u32;
            ensure_eq!(codes[1].0, driver, "round {i}");
            driver = start_driver()?;
        }
        let d = Disk::open().map_err(fail)?;
        let mut back = [0u8; 32768];
        d.read(DURABLE, &mut back).map_err(fail)?;
        let mut data = [0u8; 32768];
        Rng(42).fill(&mut data);
        ensure!(back == data, "data written before the kills changed");
        d.close().map_err(fail)?;
        // Most kills must come while a transfer is under way, not while a
        // client opens.
        libmh::println!("t_disk: {mid_transfer} of {KILLS} kills came mid-transfer");
        ensure!(
            mid_transfer > KILLS / 2,
            "only {mid_transfer} of {KILLS} kills came mid-transfer"
        );
        ensure_eq!(
            quarantined(),
            baseline.1,
            "quarantine after {KILLS} restarts"
        );
        ensure_eq!(
            free_frames(),
            baseline.0,
            "free frames after {KILLS} restarts"
        );
        plat.detach().map_err(fail)
    });

    s.run("disk_driver_stops", || stop_driver(driver));
    if let Some((pid, t)) = timer.take() {
        let _ = t.close();
        s.run("disk_timer_stops", || stop_idle_exiting(pid));
    }
}

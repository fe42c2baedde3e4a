//! The bus: handles, rights, the registry and bootfs, inheritance across
//! fork and exec. Most of these are refusals: forged, stale and detached
//! handles, missing rights, rights that would grow, bad names, ports and
//! exports.

use crate::suite::{Fail, Suite};
use crate::util::in_child;
use crate::{ensure, ensure_eq};
use abi::kdev::*;
use abi::{Error, Sysno};
use libmh::dev::{self, Handle, REGISTRY};
use libmh::process;
use libmh::raw::syscall6;

fn raw(n: Sysno, a: [u64; 6]) -> Result<usize, Error> {
    // SAFETY: arguments may lie on purpose; the kernel checks them.
    Error::decode(unsafe { syscall6(n as u64, a[0], a[1], a[2], a[3], a[4], a[5]) })
}

fn fail(e: Error) -> Fail {
    Fail::new(format_args!("{e}"))
}

const BOOTFS_RIGHTS: u32 = dev::RIGHT_READ | dev::RIGHT_WRITE | dev::RIGHT_DMA | dev::RIGHT_CLONE;

fn bootfs() -> Result<Handle, Fail> {
    dev::attach(REGISTRY, "bootfs", BOOTFS_RIGHTS).map_err(fail)
}

/// How many handles the runner holds (only the registry, between tests).
fn handles_in_use() -> usize {
    process::sys_info().map_or(0, |i| i.handles as usize)
}

pub fn run(s: &mut Suite) {
    let handles = handles_in_use();

    s.run("registry_is_handle_zero_with_every_right", || {
        let info = REGISTRY.info().map_err(fail)?;
        ensure!(
            info.name.starts_with(b"registry\0"),
            "name {:?}",
            &info.name[..9]
        );
        ensure_eq!(info.kind, dev::DEVICE_KIND_KERNEL);
        let want = dev::RIGHT_LOOKUP
            | dev::RIGHT_REGISTER
            | dev::RIGHT_SYSTEM
            | dev::RIGHT_READ
            | dev::RIGHT_WRITE
            | dev::RIGHT_CLONE;
        ensure_eq!(info.rights, want);
        Ok(())
    });

    s.run("attach_a_kernel_device_by_name", || {
        let h = bootfs()?;
        let info = h.info().map_err(fail)?;
        ensure_eq!(&info.name[..6], b"bootfs");
        ensure_eq!(info.rights, BOOTFS_RIGHTS);
        ensure_eq!(h.detach(), Ok(()));
        Ok(())
    });

    s.run("attach_refuses_unknown_and_bad_names", || {
        ensure_eq!(
            dev::attach(REGISTRY, "no-such-device", 0),
            Err(Error::NotFound)
        );
        ensure_eq!(dev::attach(REGISTRY, "", 0), Err(Error::InvalidArgument));
        let long = "x".repeat_fixed();
        ensure_eq!(dev::attach(REGISTRY, long, 0), Err(Error::InvalidArgument));
        ensure_eq!(
            raw(Sysno::Attach, [0, 0, 6, 0, 0, 0]),
            Err(Error::BadAddress)
        );
        ensure_eq!(
            raw(Sysno::Attach, [0, 0xffff_8000_0000_0000, 6, 0, 0, 0]),
            Err(Error::BadAddress)
        );
        let bad = [0xffu8, 0xfe, 0x41];
        ensure_eq!(
            raw(Sysno::Attach, [0, bad.as_ptr() as u64, 3, 0, 0, 0]),
            Err(Error::InvalidArgument)
        );
        Ok(())
    });

    s.run("attach_refuses_rights_the_device_has_not", || {
        ensure_eq!(
            dev::attach(REGISTRY, "bootfs", dev::RIGHT_IRQ),
            Err(Error::AccessDenied)
        );
        ensure_eq!(
            dev::attach(REGISTRY, "bootfs", dev::RIGHT_SERVE),
            Err(Error::AccessDenied)
        );
        ensure_eq!(
            dev::attach(REGISTRY, "bootfs", 1 << 20),
            Err(Error::InvalidArgument)
        );
        Ok(())
    });

    s.run("attach_needs_a_registry_handle_with_lookup", || {
        let reg2 =
            dev::attach(REGISTRY, "registry", dev::RIGHT_READ | dev::RIGHT_LOOKUP).map_err(fail)?;
        ensure!(
            dev::attach(reg2, "bootfs", dev::RIGHT_READ).is_ok_and(|h| h.detach().is_ok()),
            "second registry"
        );
        ensure_eq!(reg2.restrict(dev::RIGHT_READ), Ok(()));
        ensure_eq!(
            dev::attach(reg2, "bootfs", dev::RIGHT_READ),
            Err(Error::AccessDenied)
        );
        let b = bootfs()?;
        ensure_eq!(
            dev::attach(b, "bootfs", dev::RIGHT_READ),
            Err(Error::AccessDenied)
        );
        ensure_eq!((reg2.detach(), b.detach()), (Ok(()), Ok(())));
        Ok(())
    });

    s.run("forged_handles_are_refused", || {
        for h in [0x123u64, 255, 0x1_0000, 1 << 31, u64::MAX, 0x7fff_ff00] {
            ensure!(
                Handle(h).port_in(0, 4) == Err(Error::BadHandle),
                "handle {h:#x}"
            );
            ensure!(Handle(h).detach() == Err(Error::BadHandle), "detach {h:#x}");
        }
        Ok(())
    });

    s.run("detached_and_stale_handles_are_refused", || {
        let a = bootfs()?;
        ensure_eq!(a.detach(), Ok(()));
        ensure_eq!(a.port_in(BOOTFS_PORT_COUNT, 4), Err(Error::BadHandle));
        ensure_eq!(a.detach(), Err(Error::BadHandle));
        ensure_eq!(a.info().err(), Some(Error::BadHandle));
        // Free slots are reused oldest first: attach until one lands in
        // a's slot (it must, within the bus's 256), then a stays dead.
        let mut held = alloc::vec::Vec::new();
        let mut reused = None;
        for _ in 0..dev::BUS_SLOTS {
            let Ok(b) = bootfs() else { break };
            if b.0 & 0xff == a.0 & 0xff {
                reused = Some(b);
                break;
            }
            held.push(b);
        }
        for h in held {
            let _ = h.detach();
        }
        let b = reused.ok_or_else(|| Fail::new(format_args!("a's slot was never reused")))?;
        ensure!(b != a, "slot reused with a new generation");
        ensure_eq!(a.port_in(BOOTFS_PORT_COUNT, 4), Err(Error::BadHandle));
        ensure!(
            b.port_in(BOOTFS_PORT_COUNT, 4).is_ok(),
            "the new handle works"
        );
        ensure_eq!(b.detach(), Ok(()));
        Ok(())
    });

    s.run("privileged_devices_need_the_system_right", || {
        let st = in_child(|| {
            let Ok(info) = REGISTRY.info() else { return 1 };
            if info.rights & dev::RIGHT_SYSTEM == 0 {
                return 2; // the runner (init) must hold it
            }
            if REGISTRY.restrict(info.rights & !dev::RIGHT_SYSTEM).is_err() {
                return 3;
            }
            let denied = |name: &str, rights: u32| {
                dev::attach(REGISTRY, name, rights).map(|_| ()) == Err(Error::AccessDenied)
            };
            let checks = [
                denied("platform", dev::RIGHT_READ),
                denied("mempool", dev::RIGHT_READ),
                // Nor can the registry be looked up again with more rights
                // than the handle used.
                denied("registry", dev::RIGHT_LOOKUP | dev::RIGHT_SYSTEM),
                // Restricting never gives the right back.
                REGISTRY.restrict(info.rights) == Err(Error::AccessDenied),
                // Ordinary devices are still there.
                dev::attach(REGISTRY, "klog", dev::RIGHT_READ).is_ok_and(|h| h.detach().is_ok()),
                dev::attach(REGISTRY, "registry", dev::RIGHT_LOOKUP)
                    .is_ok_and(|h| h.detach().is_ok()),
            ];
            match checks.iter().position(|ok| !ok) {
                None => 0,
                Some(i) => 10 + i as i32,
            }
        })?;
        ensure_eq!(st.code, 0);
        // A handle without REGISTER cannot win it back through lookup.
        let st = in_child(|| {
            let Ok(info) = REGISTRY.info() else { return 1 };
            if REGISTRY
                .restrict(info.rights & !dev::RIGHT_REGISTER)
                .is_err()
            {
                return 2;
            }
            let again = dev::attach(
                REGISTRY,
                "registry",
                dev::RIGHT_LOOKUP | dev::RIGHT_REGISTER,
            );
            (again.map(|_| ()) != Err(Error::AccessDenied)) as i32 * 3
        })?;
        ensure_eq!(st.code, 0);
        Ok(())
    });

    s.run("restrict_only_shrinks_rights", || {
        let h = bootfs()?;
        ensure_eq!(h.restrict(dev::RIGHT_READ | dev::RIGHT_DMA), Ok(()));
        ensure_eq!(
            h.restrict(dev::RIGHT_READ | dev::RIGHT_WRITE),
            Err(Error::AccessDenied)
        );
        ensure_eq!(h.restrict(1 << 25), Err(Error::InvalidArgument));
        ensure_eq!(
            h.info().map(|i| i.rights),
            Ok(dev::RIGHT_READ | dev::RIGHT_DMA)
        );
        ensure_eq!(Handle(0xdead).restrict(0), Err(Error::BadHandle));
        ensure_eq!(h.detach(), Ok(()));
        Ok(())
    });

    s.run("each_right_is_enforced", || {
        let h = bootfs()?;
        ensure_eq!(h.restrict(dev::RIGHT_WRITE), Ok(()));
        ensure_eq!(h.port_in(BOOTFS_PORT_COUNT, 4), Err(Error::AccessDenied));
        let mut buf = [0u8; 64];
        ensure_eq!(h.export(&mut buf), Err(Error::AccessDenied));
        ensure_eq!(h.restrict(0), Ok(()));
        ensure_eq!(
            h.port_out(BOOTFS_PORT_SELECT, 4, 0),
            Err(Error::AccessDenied)
        );
        ensure_eq!(h.irq_map(0, 1), Err(Error::AccessDenied));
        ensure_eq!(h.detach(), Ok(()));
        Ok(())
    });

    s.run("registry_lists_the_devices", || {
        let count = REGISTRY.port_in(REGISTRY_PORT_COUNT, 4).map_err(fail)?;
        ensure!(count >= 2, "count {count}");
        let mut names_seen = 0;
        for i in 0..count {
            REGISTRY
                .port_out(REGISTRY_PORT_SELECT, 4, i)
                .map_err(fail)?;
            let mut name = [0u8; 32];
            for k in 0..8 {
                let w = REGISTRY.port_in(REGISTRY_PORT_NAME + k, 4).map_err(fail)? as u32;
                name[4 * k as usize..4 * k as usize + 4].copy_from_slice(&w.to_le_bytes());
            }
            if name.starts_with(b"registry\0") || name.starts_with(b"bootfs\0") {
                names_seen += 1;
                ensure_eq!(
                    REGISTRY.port_in(REGISTRY_PORT_KIND, 4),
                    Ok(dev::DEVICE_KIND_KERNEL as u64)
                );
            }
        }
        ensure_eq!(names_seen, 2);
        Ok(())
    });

    s.run("registry_port_errors", || {
        ensure_eq!(REGISTRY.port_in(99, 4), Err(Error::InvalidArgument));
        ensure_eq!(
            REGISTRY.port_in(REGISTRY_PORT_COUNT, 1),
            Err(Error::InvalidArgument)
        );
        ensure_eq!(
            REGISTRY.port_out(REGISTRY_PORT_COUNT, 4, 0),
            Err(Error::InvalidArgument)
        );
        REGISTRY
            .port_out(REGISTRY_PORT_SELECT, 4, 9999)
            .map_err(fail)?;
        ensure_eq!(
            REGISTRY.port_in(REGISTRY_PORT_NAME, 4),
            Err(Error::NotFound)
        );
        ensure_eq!(REGISTRY.port_in(0, 8).map(|_| ()), Ok(()));
        Ok(())
    });

    s.run("bootfs_serves_the_modules", || {
        let h = bootfs()?;
        let count = h.port_in(BOOTFS_PORT_COUNT, 4).map_err(fail)?;
        ensure!(count >= 8, "modules {count}");
        h.port_out(BOOTFS_PORT_SELECT, 4, 0).map_err(fail)?;
        let size = h.port_in(BOOTFS_PORT_SIZE, 4).map_err(fail)?;
        let mut buf = [0u8; 64];
        let iova = h.export(&mut buf).map_err(fail)?;
        h.port_out(BOOTFS_PORT_LEN, 4, 64).map_err(fail)?;
        h.port_out(BOOTFS_PORT_READ, 8, iova).map_err(fail)?;
        ensure_eq!(h.port_in(BOOTFS_PORT_DONE, 4), Ok(64));
        ensure_eq!(&buf[..4], &[0x7f, b'E', b'L', b'F']);
        // The end of the module: a short read.
        h.port_out(BOOTFS_PORT_OFFSET, 8, size - 10).map_err(fail)?;
        h.port_out(BOOTFS_PORT_READ, 8, iova).map_err(fail)?;
        ensure_eq!(h.port_in(BOOTFS_PORT_DONE, 4), Ok(10));
        h.port_out(BOOTFS_PORT_OFFSET, 8, 0).map_err(fail)?;
        h.port_out(BOOTFS_PORT_READ_CMDLINE, 8, iova)
            .map_err(fail)?;
        let n = h.port_in(BOOTFS_PORT_DONE, 4).map_err(fail)? as usize;
        // `cargo xtask test` adds the pass (`mhtest runner pass=smp4`).
        let line = &buf[..n];
        ensure!(
            line == b"mhtest runner" || line.starts_with(b"mhtest runner pass="),
            "module 0's command line is {:?}",
            core::str::from_utf8(line)
        );
        ensure_eq!(h.detach(), Ok(()));
        Ok(())
    });

    s.run("bootfs_reads_only_into_exports", || {
        let h = bootfs()?;
        let mut buf = [0u8; 4096];
        h.port_out(BOOTFS_PORT_LEN, 4, 64).map_err(fail)?;
        ensure_eq!(
            h.port_out(BOOTFS_PORT_READ, 8, buf.as_ptr() as u64),
            Err(Error::AccessDenied)
        );
        let iova = h.export(&mut buf[..100]).map_err(fail)?;
        h.port_out(BOOTFS_PORT_LEN, 4, 200).map_err(fail)?;
        ensure_eq!(
            h.port_out(BOOTFS_PORT_READ, 8, iova),
            Err(Error::AccessDenied)
        );
        ensure_eq!(
            h.port_out(BOOTFS_PORT_READ, 4, iova),
            Err(Error::InvalidArgument)
        );
        ensure_eq!(
            h.port_out(BOOTFS_PORT_READ, 8, u64::MAX - 8),
            Err(Error::InvalidArgument)
        );
        h.port_out(BOOTFS_PORT_SELECT, 4, 999).map_err(fail)?;
        ensure_eq!(h.port_in(BOOTFS_PORT_SIZE, 4), Err(Error::NotFound));
        ensure_eq!(h.port_out(BOOTFS_PORT_READ, 8, iova), Err(Error::NotFound));
        ensure_eq!(h.unexport(iova), Ok(()));
        ensure_eq!(h.unexport(iova), Err(Error::NotFound));
        ensure_eq!(h.detach(), Ok(()));
        Ok(())
    });

    s.run("export_errors", || {
        let h = bootfs()?;
        ensure_eq!(
            raw(Sysno::Export, [h.0, 0xffff_8000_0000_0000, 16, 0, 0, 0]),
            Err(Error::BadAddress)
        );
        // An empty range, wherever it is.
        ensure_eq!(
            raw(Sysno::Export, [h.0, 0x1000, 0, 0, 0, 0]),
            Err(Error::InvalidArgument)
        );
        // Unknown flags; a page list outside user memory.
        let mut one = [0u8; 8];
        let va = one.as_mut_ptr() as u64;
        ensure_eq!(
            raw(Sysno::Export, [h.0, va, 8, 1 << 5, 0, 0]),
            Err(Error::InvalidArgument)
        );
        ensure_eq!(
            raw(Sysno::Export, [h.0, va, 8, 0, 0xffff_8000_0000_0000, 8]),
            Err(Error::BadAddress)
        );
        let mut buf = [0u8; 256];
        ensure!(h.export(&mut buf[..64]).is_ok(), "first export");
        ensure_eq!(h.export(&mut buf[32..96]), Err(Error::AlreadyExists));
        for i in 1..8 {
            ensure!(
                h.export(&mut buf[64 + 16 * i..64 + 16 * i + 8]).is_ok(),
                "export {i}"
            );
        }
        ensure_eq!(h.export(&mut buf[250..]), Err(Error::LimitReached));
        ensure_eq!(h.detach(), Ok(()));
        Ok(())
    });

    s.run("info_errors", || {
        ensure_eq!(raw(Sysno::Info, [0, 0, 0, 0, 0, 0]), Err(Error::BadAddress));
        // A pointer outside the user half is refused before the handle is
        // looked up; a user pointer with a dead handle is BadHandle.
        ensure_eq!(
            raw(Sysno::Info, [0x4321, 0x1000, 0, 0, 0, 0]),
            Err(Error::BadAddress)
        );
        let mut info = abi::DeviceInfo::default();
        ensure_eq!(
            raw(Sysno::Info, [0x4321, &raw mut info as u64, 0, 0, 0, 0]),
            Err(Error::BadHandle)
        );
        Ok(())
    });

    s.run("a_full_bus_is_limit_reached", || {
        let mut made = [Handle(0); 256];
        let mut got = 0;
        let err = loop {
            match dev::attach(REGISTRY, "bootfs", dev::RIGHT_READ) {
                Ok(h) if got < made.len() => {
                    made[got] = h;
                    got += 1;
                }
                Ok(_) => break Error::InvalidArgument,
                Err(e) => break e,
            }
        };
        let full = handles_in_use();
        for h in &made[..got] {
            let _ = h.detach();
        }
        ensure_eq!(err, Error::LimitReached);
        ensure_eq!(full, 256);
        Ok(())
    });

    s.run("fork_inherits_only_clone_handles", || {
        let keep = bootfs()?;
        let lose = dev::attach(REGISTRY, "bootfs", dev::RIGHT_READ).map_err(fail)?;
        let st = in_child(|| {
            let a = keep.port_in(BOOTFS_PORT_COUNT, 4).is_ok();
            let b = lose.port_in(BOOTFS_PORT_COUNT, 4) == Err(Error::BadHandle);
            (!a) as i32 | ((!b) as i32) << 1
        })?;
        ensure_eq!(st.code, 0);
        ensure_eq!((keep.detach(), lose.detach()), (Ok(()), Ok(())));
        Ok(())
    });

    s.run("exec_keeps_handles_unless_close_on_exec", || {
        let keep = bootfs()?;
        let drop = dev::attach(
            REGISTRY,
            "bootfs",
            BOOTFS_RIGHTS | dev::ATTACH_CLOSE_ON_EXEC,
        )
        .map_err(fail)?;
        let count = keep.port_in(BOOTFS_PORT_COUNT, 4).map_err(fail)? as i64;
        for (h, want) in [(keep, count), (drop, Error::BadHandle.to_ret() as i64)] {
            let mut code = crate::t_exec::PORT_IN_CODE;
            code[1..5].copy_from_slice(&(h.0 as u32).to_le_bytes());
            let image = crate::t_exec::tiny_elf_with(&code);
            let st =
                in_child(|| crate::helpers::report_exec_failure(process::exec(&image, "porty")))?;
            ensure!(
                st.code == want,
                "handle {:#x}: child exited {} (want {want})",
                h.0,
                st.code
            );
        }
        ensure_eq!((keep.detach(), drop.detach()), (Ok(()), Ok(())));
        Ok(())
    });

    s.run("klog_reads_the_log_by_dma", || {
        use abi::kdev::*;
        let h = dev::attach(
            REGISTRY,
            "klog",
            dev::RIGHT_READ | dev::RIGHT_WRITE | dev::RIGHT_DMA,
        )
        .map_err(fail)?;
        let written = h.port_in(KLOG_PORT_WRITTEN, 8).map_err(fail)?;
        ensure!(written > 100, "written {written}");
        let mut buf = [0u8; 1024];
        let iova = h.export(&mut buf).map_err(fail)?;
        h.port_out(KLOG_PORT_POS, 8, 0).map_err(fail)?;
        h.port_out(KLOG_PORT_LEN, 4, 1024).map_err(fail)?;
        h.port_out(KLOG_PORT_READ, 8, iova).map_err(fail)?;
        ensure_eq!(h.port_in(KLOG_PORT_DONE, 4), Ok(1024));
        let lost = h.port_in(KLOG_PORT_LOST, 8).map_err(fail)?;
        ensure_eq!(h.port_in(KLOG_PORT_POS_NOW, 8), Ok(lost + 1024));
        if lost == 0 {
            // Position 0 is the kernel's first boot line.
            ensure!(
                buf.starts_with(b"[kernel] ") || buf.starts_with(b"MH kernel"),
                "the log does not start with a kernel line"
            );
        }
        // Reading at the end copies nothing.
        h.port_out(KLOG_PORT_POS, 8, u64::MAX / 2).map_err(fail)?;
        h.port_out(KLOG_PORT_READ, 8, iova).map_err(fail)?;
        ensure_eq!(h.port_in(KLOG_PORT_DONE, 4), Ok(0));
        ensure_eq!(h.detach(), Ok(()));
        Ok(())
    });

    s.run("klog_mark_is_shared_between_handles", || {
        use abi::kdev::*;
        let rights = dev::RIGHT_READ | dev::RIGHT_WRITE;
        let a = dev::attach(REGISTRY, "klog", rights).map_err(fail)?;
        let b = dev::attach(REGISTRY, "klog", dev::RIGHT_READ).map_err(fail)?;
        let before = a.port_in(KLOG_PORT_MARK, 8).map_err(fail)?;
        ensure_eq!(a.port_out(KLOG_PORT_MARK, 8, 12_345), Ok(()));
        ensure_eq!(b.port_in(KLOG_PORT_MARK, 8), Ok(12_345));
        ensure_eq!(
            a.port_out(KLOG_PORT_MARK, 4, 1),
            Err(Error::InvalidArgument)
        );
        ensure_eq!(a.port_in(KLOG_PORT_MARK, 4), Err(Error::InvalidArgument));
        ensure_eq!(b.port_out(KLOG_PORT_MARK, 8, 1), Err(Error::AccessDenied));
        ensure_eq!(a.port_out(KLOG_PORT_MARK, 8, before), Ok(()));
        ensure_eq!(a.detach(), Ok(()));
        ensure_eq!(b.detach(), Ok(()));
        Ok(())
    });

    s.run("klog_irq_fires_when_the_log_grows", || {
        use abi::kdev::*;
        let h = dev::attach(REGISTRY, "klog", dev::RIGHT_READ | dev::RIGHT_IRQ).map_err(fail)?;
        ensure_eq!(h.irq_map(1, 30), Err(Error::InvalidArgument));
        ensure_eq!(h.irq_map(KLOG_IRQ_DATA, 63), Err(Error::InvalidArgument));
        ensure_eq!(h.irq_map(KLOG_IRQ_DATA, 30), Ok(()));
        libmh::println!("mhtest: a line for the klog listener");
        ensure_eq!(process::irq_wait(1 << 30), Ok(1 << 30));
        ensure_eq!(h.detach(), Ok(()));
        // Detached: no more IRQs.
        libmh::println!("mhtest: a line nobody listens to");
        ensure_eq!(process::irq_raise(31), Ok(()));
        ensure_eq!(process::irq_wait((1 << 30) | (1 << 31)), Ok(1 << 31));
        Ok(())
    });

    s.run("klog_refusals", || {
        use abi::kdev::*;
        let h = dev::attach(
            REGISTRY,
            "klog",
            dev::RIGHT_READ | dev::RIGHT_WRITE | dev::RIGHT_DMA,
        )
        .map_err(fail)?;
        let mut buf = [0u8; 64];
        h.port_out(KLOG_PORT_LEN, 4, 64).map_err(fail)?;
        ensure_eq!(
            h.port_out(KLOG_PORT_READ, 8, buf.as_ptr() as u64),
            Err(Error::AccessDenied)
        );
        let iova = h.export(&mut buf).map_err(fail)?;
        h.port_out(KLOG_PORT_LEN, 4, 65).map_err(fail)?;
        ensure_eq!(
            h.port_out(KLOG_PORT_READ, 8, iova),
            Err(Error::AccessDenied)
        );
        ensure_eq!(h.port_out(KLOG_PORT_POS, 4, 0), Err(Error::InvalidArgument));
        ensure_eq!(h.port_in(9, 4), Err(Error::InvalidArgument));
        ensure_eq!(h.irq_map(0, 3), Err(Error::AccessDenied));
        ensure_eq!(h.detach(), Ok(()));
        Ok(())
    });

    s.run("bus_group_leaves_no_handle_behind", || {
        ensure_eq!(handles_in_use(), handles);
        Ok(())
    });
}

/// A 33-byte name, one too long.
trait Long {
    fn repeat_fixed(&self) -> &'static str;
}
impl Long for &str {
    fn repeat_fixed(&self) -> &'static str {
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
    }
}

//! User devices, the IPC: round trips (plain and fused), order, DMA both
//! ways, the server's checked calls, clients forking and leaving, a full
//! queue, and servers that go away.

use crate::echo::{self, CHECKS};
use crate::suite::{Fail, Suite};
use crate::util::{free_frames, in_child};
use crate::{ensure, ensure_eq};
use abi::userdev::REQUEST_OUT;
use abi::{DeviceConfig, Error, Sysno};
use libmh::dev::{self, Handle, REGISTRY};
use libmh::process;

const NAME: &str = "t-echo";
const RIGHTS: u32 =
    dev::RIGHT_READ | dev::RIGHT_WRITE | dev::RIGHT_DMA | dev::RIGHT_IRQ | dev::RIGHT_CLONE;
/// The vector the runner maps the device's line 0 to.
const V: u32 = 20;

fn fail(e: Error) -> Fail {
    Fail::new(format_args!("{e}"))
}

fn start_server(name: &'static str) -> Result<u32, Fail> {
    match process::fork().map_err(fail)? {
        0 => process::exit(echo::serve(name) as i64),
        pid => Ok(pid),
    }
}

fn call(h: Handle, port: u32, value: u64) -> Result<(), Fail> {
    let got = h.port_out_wait(port, 8, value, 1 << V).map_err(fail)?;
    if got != 1 << V {
        return Err(Fail::new(format_args!("woke with {got:#x}")));
    }
    Ok(())
}

fn raw(n: Sysno, a: [u64; 6]) -> Result<usize, Error> {
    // SAFETY: arguments may lie on purpose; the kernel checks them.
    Error::decode(unsafe { libmh::raw::syscall6(n as u64, a[0], a[1], a[2], a[3], a[4], a[5]) })
}

pub fn run(s: &mut Suite) {
    crate::util::warm_up();
    let frames = free_frames();
    let handles = process::sys_info().map_or(0, |i| i.handles);
    let server = match start_server(NAME) {
        Ok(pid) => pid,
        Err(_) => return,
    };
    let h = match echo::attach_when_ready(NAME, RIGHTS) {
        Ok(h) => h,
        Err(e) => {
            s.run("userdev_server_registers", || Err(fail(e)));
            return;
        }
    };
    let _ = h.irq_map(0, V);

    s.run("userdev_info_names_the_server", || {
        let info = h.info().map_err(fail)?;
        ensure_eq!(
            (info.kind, info.server_pid),
            (dev::DEVICE_KIND_USER, server)
        );
        ensure_eq!((info.irq_lines, info.iospace_size), (2, 64));
        ensure_eq!(info.rights, RIGHTS);
        Ok(())
    });

    s.run("userdev_round_trip_fused", || {
        call(h, 0, 41)?;
        ensure_eq!(h.port_in(0, 8), Ok(42));
        Ok(())
    });

    s.run("userdev_round_trip_plain", || {
        h.port_out(0, 8, 99).map_err(fail)?;
        ensure_eq!(process::irq_wait(1 << V), Ok(1 << V));
        ensure_eq!(h.port_in(0, 8), Ok(100));
        ensure_eq!(h.port_in(0, 4), Ok(100));
        Ok(())
    });

    s.run("userdev_requests_keep_their_order", || {
        for i in 0..200 {
            call(h, 3, i)?;
            ensure!(h.port_in(0, 8) == Ok(i), "request {i} out of order");
        }
        Ok(())
    });

    s.run("userdev_dma_both_ways", || {
        let mut buf = *b"hello, dma!";
        let iova = h.export(&mut buf).map_err(fail)?;
        h.port_out(2, 8, iova).map_err(fail)?;
        call(h, 1, buf.len() as u64)?;
        ensure_eq!(&buf, b"HELLO, DMA!");
        let sum: u64 = b"HELLO, DMA!".iter().map(|&b| b as u64).sum();
        ensure_eq!(h.port_in(8, 8), Ok(sum));
        ensure_eq!(h.unexport(iova), Ok(()));
        // Unexported: the server's read is refused now.
        call(h, 1, 4)?;
        ensure_eq!(
            h.port_in(8, 8),
            Ok(1_000_000 + Error::AccessDenied.code() as u64)
        );
        Ok(())
    });

    s.run("userdev_read_only_export_is_not_written", || {
        let mut buf = *b"read only!";
        let iova = h.export_read_only(&buf).map_err(fail)?;
        h.port_out(2, 8, iova).map_err(fail)?;
        // The server reads it (the sum is of the upper-cased bytes) but
        // its write back is refused: the client's bytes stay.
        call(h, 1, buf.len() as u64)?;
        let sum: u64 = b"READ ONLY!".iter().map(|&b| b as u64).sum();
        ensure_eq!(h.port_in(8, 8), Ok(sum));
        ensure_eq!(&buf, b"read only!");
        ensure_eq!(h.unexport(iova), Ok(()));
        buf[0] = b'R';
        ensure_eq!(buf[0], b'R');
        Ok(())
    });

    for (k, (what, want)) in CHECKS.iter().enumerate() {
        let mut name = arrayvec::ArrayString::<64>::new();
        let _ = core::fmt::write(&mut name, format_args!("userdev_server_{what}"));
        s.run(&name, || {
            let mut buf = [0u8; 4096];
            let iova = h.export(&mut buf).map_err(fail)?;
            h.port_out(2, 8, iova).map_err(fail)?;
            call(h, 10 + k as u32, 0)?;
            let _ = h.unexport(iova);
            let got = h.port_in(8, 8).map_err(fail)?;
            ensure!(
                got == want.code() as u64,
                "{what}: error code {got}, expected {}",
                want.code()
            );
            Ok(())
        });
    }

    s.run("userdev_client_port_errors", || {
        ensure_eq!(h.port_in(64, 1), Err(Error::InvalidArgument));
        ensure_eq!(h.port_in(60, 8), Err(Error::InvalidArgument));
        ensure_eq!(h.port_in(0, 3), Err(Error::InvalidArgument));
        ensure_eq!(h.port_out(0, 5, 1), Err(Error::InvalidArgument));
        ensure_eq!(h.port_out_wait(0, 8, 1, 0), Err(Error::InvalidArgument));
        Ok(())
    });

    s.run("userdev_irq_map_errors", || {
        ensure_eq!(h.irq_map(2, V), Err(Error::InvalidArgument));
        ensure_eq!(h.irq_map(0, 63), Err(Error::InvalidArgument));
        ensure_eq!(h.irq_ack(5), Err(Error::InvalidArgument));
        ensure_eq!(h.irq_ack(0), Ok(()));
        Ok(())
    });

    s.run("userdev_poll_needs_a_serving_handle", || {
        let mut r = abi::Request::default();
        ensure_eq!(
            raw(Sysno::DevPoll, [h.0, &raw mut r as u64, 1, 0, 0, 0]),
            Err(Error::AccessDenied)
        );
        ensure_eq!(
            raw(Sysno::DevWriteIospace, [h.0, 0, 0, 1, 0, 0]),
            Err(Error::AccessDenied)
        );
        ensure_eq!(
            raw(Sysno::DevPoll, [0xabcd, &raw mut r as u64, 1, 0, 0, 0]),
            Err(Error::BadHandle)
        );
        Ok(())
    });

    s.run("userdev_create_refuses_bad_configs", || {
        let bad = |f: fn(&mut DeviceConfig)| {
            let mut c = DeviceConfig {
                name_len: 3,
                irq_lines: 1,
                iospace_size: 8,
                vector: 1,
                ..DeviceConfig::default()
            };
            c.name[..3].copy_from_slice(b"bad");
            f(&mut c);
            raw(
                Sysno::DevCreate,
                [REGISTRY.0, &raw const c as u64, 0, 0, 0, 0],
            )
        };
        ensure_eq!(bad(|c| c.name_len = 0), Err(Error::InvalidArgument));
        ensure_eq!(bad(|c| c.name_len = 33), Err(Error::InvalidArgument));
        ensure_eq!(bad(|c| c.irq_lines = 17), Err(Error::InvalidArgument));
        ensure_eq!(bad(|c| c.iospace_size = 257), Err(Error::InvalidArgument));
        ensure_eq!(bad(|c| c.vector = 63), Err(Error::InvalidArgument));
        ensure_eq!(bad(|c| c.name[1] = b' '), Err(Error::InvalidArgument));
        ensure_eq!(
            raw(Sysno::DevCreate, [REGISTRY.0, 0x10, 0, 0, 0, 0]),
            Err(Error::BadAddress)
        );
        // The registry handle is named, not looked for: a handle that is
        // not a registry, or none at all, is refused.
        let c = DeviceConfig {
            name_len: 3,
            vector: 1,
            ..DeviceConfig::default()
        };
        ensure_eq!(
            raw(Sysno::DevCreate, [h.0, &raw const c as u64, 0, 0, 0, 0]),
            Err(Error::AccessDenied)
        );
        ensure_eq!(
            raw(
                Sysno::DevCreate,
                [0xdead_0000, &raw const c as u64, 0, 0, 0, 0]
            ),
            Err(Error::BadHandle)
        );
        ensure_eq!(
            dev::create(dev::REGISTRY, NAME, 0, 0, 1).map(|_| ()),
            Err(Error::AlreadyExists)
        );
        Ok(())
    });

    s.run("userdev_create_needs_the_register_right", || {
        let st = in_child(|| {
            let _ = REGISTRY.restrict(dev::RIGHT_LOOKUP | dev::RIGHT_CLONE);
            (dev::create(dev::REGISTRY, "t-norights", 0, 0, 1).map(|_| ())
                != Err(Error::AccessDenied)) as i32
        })?;
        ensure_eq!(st.code, 0);
        Ok(())
    });

    s.run("userdev_export_needs_the_dma_right", || {
        let h2 = dev::attach(REGISTRY, NAME, dev::RIGHT_READ | dev::RIGHT_WRITE).map_err(fail)?;
        let mut buf = [0u8; 8];
        ensure_eq!(h2.export(&mut buf), Err(Error::AccessDenied));
        ensure_eq!(h2.irq_map(0, V), Err(Error::AccessDenied));
        ensure_eq!(h2.detach(), Ok(()));
        Ok(())
    });

    s.run("userdev_fork_clones_and_exit_closes", || {
        call(h, 4, 0)?;
        let (o, c, x) = (h.port_in(16, 8), h.port_in(24, 8), h.port_in(32, 8));
        let st = in_child(|| {
            // The child's handle is its own client, with the IRQ map copied.
            (call(h, 0, 7).is_err() || h.port_in(0, 8) != Ok(8)) as i32
        })?;
        ensure_eq!(st.code, 0);
        call(h, 4, 0)?;
        ensure_eq!(h.port_in(16, 8), o);
        ensure_eq!(h.port_in(24, 8), c.map(|n| n + 1));
        ensure_eq!(h.port_in(32, 8), x.map(|n| n + 1));
        Ok(())
    });

    s.run("userdev_attach_opens_and_detach_closes", || {
        call(h, 4, 0)?;
        let (o, x) = (
            h.port_in(16, 8).map_err(fail)?,
            h.port_in(32, 8).map_err(fail)?,
        );
        let h2 = dev::attach(REGISTRY, NAME, dev::RIGHT_READ).map_err(fail)?;
        ensure_eq!(h2.detach(), Ok(()));
        call(h, 4, 0)?;
        ensure_eq!((h.port_in(16, 8), h.port_in(32, 8)), (Ok(o + 1), Ok(x + 1)));
        Ok(())
    });

    s.run("userdev_full_queue_is_busy", || {
        let d = dev::create(dev::REGISTRY, "t-flood", 0, 0, 3).map_err(fail)?;
        let st = in_child(|| {
            let Ok(c) = dev::attach(REGISTRY, "t-flood", dev::RIGHT_WRITE) else {
                return 1;
            };
            for _ in 0..abi::userdev::QUEUE_PER_CLIENT_DEFAULT {
                if c.port_out(0, 1, 1).is_err() {
                    return 2;
                }
            }
            (c.port_out(0, 1, 1) != Err(Error::Busy)) as i32 * 3
        })?;
        ensure_eq!(st.code, 0);
        let mut outs = 0;
        while let Ok(r) = d.try_poll() {
            outs += (r.kind == REQUEST_OUT) as u32;
        }
        ensure_eq!(outs, abi::userdev::QUEUE_PER_CLIENT_DEFAULT);
        ensure_eq!(d.destroy(), Ok(()));
        Ok(())
    });

    s.run("userdev_poll_into_memory_and_bad_buffers", || {
        // libmh polls with a null pointer (the request comes back in
        // registers); C programs may pass a buffer instead. A bad buffer
        // fails the poll and leaves the request queued.
        let d = dev::create(dev::REGISTRY, "t-mempoll", 0, 0, 3).map_err(fail)?;
        let c = dev::attach(REGISTRY, "t-mempoll", dev::RIGHT_WRITE).map_err(fail)?;
        let open = d.try_poll().map_err(fail)?;
        ensure_eq!(open.kind, abi::userdev::REQUEST_OPEN);
        c.port_out(5, 4, 0x1234_5678).map_err(fail)?;
        let mut r = abi::Request::default();
        let poll = |out: u64| raw(Sysno::DevPoll, [d.0.0, out, 1, 0, 0, 0]);
        ensure_eq!(poll(0x10), Err(Error::BadAddress));
        ensure_eq!(poll(0xffff_8000_0000_0000), Err(Error::BadAddress));
        ensure_eq!(poll(&raw mut r as u64), Ok(open.client as usize));
        let want = abi::Request {
            kind: REQUEST_OUT,
            client: open.client,
            pid: process::getpid(),
            port: 5,
            size: 4,
            value: 0x1234_5678,
        };
        ensure_eq!(r, want);
        ensure_eq!(poll(&raw mut r as u64), Err(Error::WouldBlock));
        ensure_eq!(c.detach(), Ok(()));
        ensure_eq!(d.destroy(), Ok(()));
        Ok(())
    });

    s.run(
        "userdev_destroy_frees_the_name_and_clients_see_gone",
        || {
            let d = dev::create(dev::REGISTRY, "t-tmp", 1, 8, 3).map_err(fail)?;
            let c =
                dev::attach(REGISTRY, "t-tmp", dev::RIGHT_READ | dev::RIGHT_WRITE).map_err(fail)?;
            ensure_eq!(d.destroy(), Ok(()));
            ensure_eq!(c.port_in(0, 1), Err(Error::DeviceGone));
            ensure_eq!(c.port_out(0, 1, 1), Err(Error::DeviceGone));
            ensure_eq!(c.info().err(), Some(Error::DeviceGone));
            ensure_eq!(c.detach(), Ok(()));
            let d2 = dev::create(dev::REGISTRY, "t-tmp", 1, 8, 3).map_err(fail)?;
            ensure_eq!(d2.destroy(), Ok(()));
            Ok(())
        },
    );

    s.run("userdev_server_death_wakes_waiting_client", || {
        let pid = start_server("t-fragile")?;
        let f = echo::attach_when_ready("t-fragile", RIGHTS).map_err(fail)?;
        f.irq_map(0, V).map_err(fail)?;
        // Port 9 makes the server exit without answering: the wait ends
        // with DeviceGone, and so does every later operation.
        ensure_eq!(f.port_out_wait(9, 8, 0, 1 << V), Err(Error::DeviceGone));
        ensure_eq!(f.port_in(0, 8), Err(Error::DeviceGone));
        ensure_eq!(f.port_out(0, 8, 1), Err(Error::DeviceGone));
        let st = process::wait_child().map_err(fail)?;
        ensure_eq!((st.pid, st.code), (pid, 0));
        // A new server under the same name: the old handle stays dead, a
        // new attach works.
        start_server("t-fragile")?;
        let g = echo::attach_when_ready("t-fragile", RIGHTS).map_err(fail)?;
        g.irq_map(0, V).map_err(fail)?;
        ensure_eq!(f.port_in(0, 8), Err(Error::DeviceGone));
        call(g, 0, 1)?;
        ensure_eq!(g.port_in(0, 8), Ok(2));
        let _ = g.port_out(0, 9, 0).or(g.port_out(9, 8, 0));
        let _ = process::wait_child();
        ensure_eq!((f.detach(), g.detach()), (Ok(()), Ok(())));
        Ok(())
    });

    // Stop the echo server and check the group left nothing behind.
    let _ = h.port_out(9, 8, 0);
    let _ = process::wait_child();
    let _ = h.detach();
    s.run("userdev_group_gives_back_frames_and_handles", || {
        ensure_eq!(process::sys_info().map_or(0, |i| i.handles), handles);
        ensure_eq!(free_frames(), frames);
        Ok(())
    });
}

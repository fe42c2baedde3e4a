//! Device benchmarks: the user-device round trip (the IPC; fused and
//! plain), a round trip carrying a 4 KiB DMA read, `port_in` on a kernel
//! device, and attach + detach.
//!
//! The echo server is a forked child. It answers each OUT with `value + 1`
//! in the client's I/O space and an IRQ on line 0, using the fused
//! `dev_reply_poll` (one call per request), or for port 2 the plain calls
//! (`dev_write_iospace`, `dev_irq`, `dev_poll`). Port 1 first reads 4 KiB
//! from the client's export at iova `value` by DMA. Port 9 stops it.

use crate::measure::{self, Fail};
use abi::userdev::REQUEST_OUT;
use libmh::dev::{self, Handle, REGISTRY};
use libmh::process;

const NAME: &str = "bench-echo";
const V: u32 = 20;

fn serve() -> i32 {
    let Ok(d) = dev::create(dev::REGISTRY, NAME, 1, 8, 1) else {
        return 1;
    };
    let mut buf = [0u8; 4096];
    let mut next = d.poll();
    loop {
        let Ok(r) = next else { return 2 };
        next = match (r.kind, r.port) {
            (REQUEST_OUT, 9) => return 0,
            (REQUEST_OUT, 2) => {
                let _ = d.write_iospace(r.client, 0, 8, r.value + 1);
                let _ = d.irq(r.client, 0);
                d.poll()
            }
            (REQUEST_OUT, p) => {
                if p == 1 {
                    let _ = d.dma_read(r.client, r.value, &mut buf);
                }
                d.reply_poll(r.client, 0, 8, r.value + 1, Some(0))
            }
            _ => d.poll(),
        };
    }
}

/// Runs `f` with a client handle to a freshly forked echo server, then
/// stops and reaps the server.
fn with_server(f: impl FnOnce(Handle) -> Result<(u64, u64), Fail>) -> Result<(u64, u64), Fail> {
    let pid = process::fork()?;
    if pid == 0 {
        process::exit(serve() as i64);
    }
    let mut h = Err(abi::Error::NotFound);
    for _ in 0..1000 {
        h = dev::attach(
            REGISTRY,
            NAME,
            dev::RIGHT_WRITE | dev::RIGHT_READ | dev::RIGHT_IRQ | dev::RIGHT_DMA,
        );
        if h.is_ok() {
            break;
        }
        process::yield_now();
    }
    let h = h?;
    h.irq_map(0, V)?;
    let result = f(h);
    let _ = h.port_out(9, 8, 0);
    let _ = h.detach();
    process::wait_child()?;
    result
}

fn check_echo(h: Handle, value: u64) -> Result<(), Fail> {
    let got = h.port_in(0, 8)?;
    if got != value + 1 {
        return Err(Fail::Check("echo answered wrongly", got as i64));
    }
    Ok(())
}

/// Client `port_out_wait`, server `dev_reply_poll`: two system calls and
/// two switches per round trip.
pub fn round_trip_fused() -> Result<(u64, u64), Fail> {
    const N: u64 = 5_000;
    with_server(|h| {
        let per = measure::run(N, 50, &mut |i| {
            h.port_out_wait(0, 8, i, 1 << V)?;
            Ok(())
        })?;
        check_echo(h, N - 1)?;
        Ok((per, N))
    })
}

/// The same with separate calls on both sides: client `port_out` +
/// `irq_wait`; server `dev_write_iospace` + `dev_irq` + `dev_poll`.
pub fn round_trip_plain() -> Result<(u64, u64), Fail> {
    const N: u64 = 5_000;
    with_server(|h| {
        let per = measure::run(N, 50, &mut |i| {
            h.port_out(2, 8, i)?;
            process::irq_wait(1 << V)?;
            Ok(())
        })?;
        check_echo(h, N - 1)?;
        Ok((per, N))
    })
}

/// A fused round trip in which the server reads 4 KiB from the client by
/// DMA first.
pub fn round_trip_dma_4k() -> Result<(u64, u64), Fail> {
    const N: u64 = 1_000;
    with_server(|h| {
        let mut buf = [7u8; 4096];
        let iova = h.export(&mut buf)?;
        let per = measure::run(N, 20, &mut |_| {
            h.port_out_wait(1, 8, iova, 1 << V)?;
            Ok(())
        })?;
        h.unexport(iova)?;
        Ok((per, N))
    })
}

/// `port_in` on a kernel device (bootfs's module count).
pub fn port_in_kernel() -> Result<(u64, u64), Fail> {
    const N: u64 = 10_000;
    let h = dev::attach(REGISTRY, "bootfs", dev::RIGHT_READ)?;
    let per = measure::run(N, 100, &mut |_| {
        core::hint::black_box(h.port_in(abi::kdev::BOOTFS_PORT_COUNT, 4)?);
        Ok(())
    })?;
    h.detach()?;
    Ok((per, N))
}

/// `attach` of a kernel device by name, then `detach`.
pub fn attach_detach() -> Result<(u64, u64), Fail> {
    const N: u64 = 2_000;
    let per = measure::run(N, 20, &mut |_| {
        dev::attach(REGISTRY, "bootfs", dev::RIGHT_READ)?.detach()?;
        Ok(())
    })?;
    Ok((per, N))
}

/// IRQ delivery to a waiting process, both ways: the parent raises a line
/// on the child (`dev_irq` on a device it serves) and waits; the child,
/// woken in `irq_wait`, raises a line on the parent through its own device
/// and waits again. One operation is the whole ping-pong: two deliveries,
/// four system calls, two switches.
pub fn irq_ping_pong() -> Result<(u64, u64), Fail> {
    const N: u64 = 5_000;
    const VP: u32 = 22;
    const VC: u32 = 23;
    let rights = dev::RIGHT_READ | dev::RIGHT_IRQ;
    let ping = dev::create(dev::REGISTRY, "bench-ping", 1, 8, 4)?;
    let child = process::fork()?;
    if child == 0 {
        let run = || -> Result<(), abi::Error> {
            let pong = dev::create(dev::REGISTRY, "bench-pong", 1, 8, 4)?;
            let h = dev::attach(REGISTRY, "bench-ping", rights)?;
            h.irq_map(0, VC)?;
            // The parent's client id on our device: its OPEN.
            let parent = loop {
                let r = pong.poll()?;
                if r.kind == abi::userdev::REQUEST_OPEN {
                    break r.client;
                }
            };
            loop {
                process::irq_wait(1 << VC)?;
                if h.port_in(0, 8)? == 1 {
                    return Ok(());
                }
                pong.irq(parent, 0)?;
            }
        };
        process::exit(run().is_err() as i64);
    }
    let mut pong = Err(abi::Error::NotFound);
    for _ in 0..10_000 {
        pong = dev::attach(REGISTRY, "bench-pong", rights);
        if pong.is_ok() {
            break;
        }
        process::yield_now();
    }
    let pong = pong?;
    pong.irq_map(0, VP)?;
    let child_client = loop {
        match ping.try_poll() {
            Ok(r) if r.kind == abi::userdev::REQUEST_OPEN => break r.client,
            Ok(_) => {}
            Err(abi::Error::WouldBlock) => process::yield_now(),
            Err(e) => return Err(e.into()),
        }
    };
    let per = measure::run(N, 50, &mut |_| {
        ping.irq(child_client, 0)?;
        process::irq_wait(1 << VP)?;
        Ok(())
    })?;
    ping.write_iospace(child_client, 0, 8, 1)?;
    ping.irq(child_client, 0)?;
    let st = process::wait_child()?;
    let _ = pong.detach();
    let _ = ping.destroy();
    if st.code != 0 {
        return Err(Fail::Check("the pong side failed", st.code));
    }
    Ok((per, N))
}

//! The NIC tests: servers/virtio-net (a `start = false` module of the test
//! image, on QEMU's user network) and its `net0` device, driven with raw
//! frames by `libmh::nic` as a protocol server would. QEMU's user network
//! answers ARP and ICMP echo for its gateway, 10.0.2.2, by itself, so
//! frames really go out and come back.
//!
//! Rules: every wait for a frame is bounded by time (the network is QEMU's
//! and the host may be slow), never by a count of yields; frames are built
//! here byte by byte, so that what the driver is given is exactly what
//! the test means.

use crate::disk_util::{fail, kill, reap, stop_driver};
use crate::helpers::{seconds_passed, ticks_now};
use crate::suite::{Fail, Suite};
use crate::{ensure, ensure_eq};
use abi::Error;
use abi::net::NET_PORT_STATUS;
use abi::nic::*;
use alloc::vec::Vec;
use libmh::bootfs::Bootfs;
use libmh::dev::{self, REGISTRY};
use libmh::net::{Net, TcpStream};
use libmh::nic::{self, Nic, Vectors};
use libmh::process;

/// Where the tests map their NIC areas (each process its own).
const VA: u64 = 0x5800_0000_0000;
const VECTORS: Vectors = Vectors {
    sent: 44,
    rx: 45,
    post_failed: 46,
};
/// The `net` client's completion and readiness vectors, and its socket
/// area.
const NET_VECTOR: u32 = 47;
const READY_VECTOR: u32 = 48;
const SOCKET_AREA: u64 = 0x5900_0000_0000;
/// The test image's forward loop: connecting to the host's 47080 through
/// the gateway comes back into the guest's port 8080.
const LOOP_HOST: ([u8; 4], u16) = ([10, 0, 2, 2], 47080);
const LOOP_GUEST_PORT: u16 = 8080;
const GUEST_IP: [u8; 4] = [10, 0, 2, 15];
const GATEWAY_IP: [u8; 4] = [10, 0, 2, 2];
const ETHERTYPE_ARP: [u8; 2] = [0x08, 0x06];
const ETHERTYPE_IPV4: [u8; 2] = [0x08, 0x00];

/// Starts the driver module and waits (10 s at most) until `net0` is
/// registered; its pid.
fn start_driver() -> Result<u32, Fail> {
    start_module("virtio-net", nic::NAME)
}

/// Starts boot module `module`; its pid.
fn spawn_module(module: &str) -> Result<u32, Fail> {
    let fs = Bootfs::open().map_err(fail)?;
    let index = fs.find(module).map_err(fail)?;
    let Some(index) = index else {
        return Err(Fail::new(format_args!("no '{module}' module in the image")));
    };
    let pid = fs.spawn(index).map_err(fail)?;
    let _ = fs.0.detach();
    Ok(pid)
}

/// Starts boot module `module` and waits (10 s at most) until `name` is
/// registered; its pid.
fn start_module(module: &str, name: &str) -> Result<u32, Fail> {
    let pid = spawn_module(module)?;
    let start = ticks_now();
    while !seconds_passed(start, 10) {
        match dev::attach(REGISTRY, name, dev::RIGHT_READ) {
            // A handle that sends nothing owns nothing: it only proves the
            // name is there.
            Ok(h) => {
                let _ = h.detach();
                return Ok(pid);
            }
            Err(Error::NotFound) => {
                if let Ok(st) = process::try_wait_child() {
                    return Err(Fail::new(format_args!(
                        "pid {} ended (kind {}, code {}) before {name} was there",
                        st.pid, st.kind, st.code
                    )));
                }
                process::yield_now();
            }
            Err(e) => return Err(Fail::new(format_args!("attaching {name}: {e}"))),
        }
    }
    Err(Fail::new(format_args!("{name} never appeared")))
}

/// An ARP request from `mac` (at 10.0.2.15) for the gateway's address,
/// padded to Ethernet's 60-byte minimum.
fn arp_request(mac: [u8; 6]) -> [u8; 60] {
    let mut f = [0u8; 60];
    f[..6].fill(0xff);
    f[6..12].copy_from_slice(&mac);
    f[12..14].copy_from_slice(&ETHERTYPE_ARP);
    // Ethernet, IPv4, 6-byte and 4-byte addresses, a request.
    f[14..22].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    f[22..28].copy_from_slice(&mac);
    f[28..32].copy_from_slice(&GUEST_IP);
    f[38..42].copy_from_slice(&GATEWAY_IP);
    f
}

/// The Internet checksum of `bytes`.
fn checksum(bytes: &[u8]) -> u16 {
    let mut sum = 0u32;
    for pair in bytes.chunks(2) {
        let hi = u32::from(pair[0]) << 8;
        sum += hi | pair.get(1).map_or(0, |&b| u32::from(b));
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An ICMP echo request from `mac`/10.0.2.15 to the gateway at `to`, with
/// `id` and `seq` and a 32-byte payload derived from them.
fn echo_request(mac: [u8; 6], to: [u8; 6], id: u16, seq: u16) -> [u8; 74] {
    let mut f = [0u8; 74];
    f[..6].copy_from_slice(&to);
    f[6..12].copy_from_slice(&mac);
    f[12..14].copy_from_slice(&ETHERTYPE_IPV4);
    let ip = &mut f[14..34];
    // Version 4, 20-byte header; 60 bytes in all; TTL 64, ICMP.
    ip[..4].copy_from_slice(&[0x45, 0, 0, 60]);
    ip[4..6].copy_from_slice(&id.to_be_bytes());
    ip[8] = 64;
    ip[9] = 1;
    ip[12..16].copy_from_slice(&GUEST_IP);
    ip[16..20].copy_from_slice(&GATEWAY_IP);
    let sum = checksum(ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    let icmp = &mut f[34..74];
    icmp[0] = 8;
    icmp[4..6].copy_from_slice(&id.to_be_bytes());
    icmp[6..8].copy_from_slice(&seq.to_be_bytes());
    for (i, b) in icmp[8..].iter_mut().enumerate() {
        *b = (i as u8) ^ (seq as u8);
    }
    let sum = checksum(icmp);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    f
}

/// Receives frames for at most `secs` seconds until `want` accepts one;
/// what `want` made of it.
fn wait_for<T>(
    n: &mut Nic,
    secs: u64,
    mut want: impl FnMut(&[u8]) -> Option<T>,
) -> Result<Option<T>, Fail> {
    let mut buf = [0u8; NIC_FRAME_MAX as usize];
    let start = ticks_now();
    while !seconds_passed(start, secs) {
        match n.try_recv(&mut buf).map_err(fail)? {
            Some(len) => {
                if let Some(t) = want(&buf[..len]) {
                    return Ok(Some(t));
                }
            }
            None => process::yield_now(),
        }
    }
    Ok(None)
}

/// Opens the interface with its area at `va`, runs `test` on it and
/// closes it whatever `test` said (a failed test must not leave the
/// interface owned, or its area mapped, for the next).
fn with_nic(va: u64, test: impl FnOnce(&mut Nic) -> Result<(), Fail>) -> Result<(), Fail> {
    let mut n = Nic::open(va, VECTORS).map_err(fail)?;
    let result = test(&mut n);
    let closed = n.close();
    result?;
    closed.map_err(fail)
}

/// Asks for the gateway's MAC address (ARP), retrying once a second.
fn gateway_mac(n: &mut Nic) -> Result<[u8; 6], Fail> {
    let mac = n.mac();
    for _ in 0..5 {
        n.send(&arp_request(mac)).map_err(fail)?;
        let reply = wait_for(n, 1, |f| {
            let is_reply = f.len() >= 42
                && f[12..14] == ETHERTYPE_ARP
                && f[20..22] == [0, 2]
                && f[28..32] == GATEWAY_IP
                && f[32..38] == mac;
            is_reply.then(|| core::array::from_fn(|i| f[22 + i]))
        })?;
        if let Some(gw) = reply {
            return Ok(gw);
        }
    }
    Err(Fail::new(format_args!("no ARP reply from 10.0.2.2 in 5 s")))
}

pub fn run(s: &mut Suite) {
    let driver = match start_driver() {
        Ok(pid) => pid,
        Err(f) => {
            s.run("nic_driver_starts", || Err(f));
            return;
        }
    };

    s.run("nic_gives_its_address_and_the_gateway_answers_arp", || {
        let mut n = Nic::open(VA, VECTORS).map_err(fail)?;
        let mac = n.mac();
        ensure_eq!(
            &mac[..3],
            &[0x52, 0x54, 0x00],
            "QEMU's prefix, as the manifest sets it"
        );
        let gw = gateway_mac(&mut n)?;
        ensure!(gw != [0; 6] && gw != mac, "the gateway's address {gw:x?}");
        n.close().map_err(fail)
    });

    s.run("nic_icmp_echo_of_the_gateway_comes_back", || {
        with_nic(VA, |n| {
            let mac = n.mac();
            let gw = gateway_mac(n)?;
            for seq in 1..=3u16 {
                let request = echo_request(mac, gw, 0x4d48, seq);
                n.send(&request).map_err(fail)?;
                let reply = wait_for(n, 3, |f| {
                    let ok = f.len() >= 74
                        && f[12..14] == ETHERTYPE_IPV4
                        && f[23] == 1
                        && f[26..30] == GATEWAY_IP
                        && f[34] == 0
                        && f[38..40] == 0x4d48u16.to_be_bytes()
                        && f[40..42] == seq.to_be_bytes();
                    ok.then(|| f[42..74] == request[42..74])
                })?;
                ensure_eq!(reply, Some(true), "echo reply {seq} with the same payload");
            }
            Ok(())
        })
    });

    s.run(
        "nic_refuses_bad_frames_and_buffers_with_their_errors",
        || {
            let n = Nic::open(VA, VECTORS).map_err(fail)?;
            let h = n.handle();
            let iova = n.area_iova();
            let short = nic_buffer_word(iova, NIC_FRAME_MIN - 1).unwrap_or(0);
            let long = nic_buffer_word(iova, NIC_FRAME_MAX + 1).unwrap_or(0);
            ensure_eq!(n.send_word(short), Err(Error::InvalidArgument));
            ensure_eq!(n.send_word(long), Err(Error::InvalidArgument));
            // Not in any export of this client's.
            let outside = nic_buffer_word(0x7700_0000_0000, 64).unwrap_or(0);
            ensure_eq!(n.send_word(outside), Err(Error::AccessDenied));
            // An unknown port, and a request of the wrong size.
            h.port_out_wait(9, 8, 0, 1 << VECTORS.sent).map_err(fail)?;
            ensure_eq!(
                nic_decode_result(h.port_in(NIC_IO_SEND_RESULT, 8).map_err(fail)?).1,
                Err(Error::NotSupported)
            );
            h.port_out_wait(NIC_PORT_SEND, 4, 0, 1 << VECTORS.sent)
                .map_err(fail)?;
            ensure_eq!(
                nic_decode_result(h.port_in(NIC_IO_SEND_RESULT, 8).map_err(fail)?).1,
                Err(Error::InvalidArgument)
            );
            // A receive buffer too small for a frame, then more buffers than
            // the server keeps (the client has RX_BUFFERS posted already).
            let small = nic_buffer_word(iova, NIC_RX_BUFFER_MIN - 1).unwrap_or(0);
            ensure_eq!(post_result(h, small)?, Err(Error::InvalidArgument));
            let big = nic_buffer_word(iova, NIC_RX_BUFFER_MIN).unwrap_or(0);
            for _ in nic::RX_BUFFERS..NIC_RX_POSTED_MAX {
                h.port_out(NIC_PORT_RX_POST, 8, big).map_err(fail)?;
            }
            ensure_eq!(post_result(h, big)?, Err(Error::LimitReached));
            n.close().map_err(fail)
        },
    );

    s.run("a_second_nic_client_is_busy_until_the_owner_leaves", || {
        let owner = Nic::open(VA, VECTORS).map_err(fail)?;
        // The second client cannot even set up: its SYNC is refused.
        ensure_eq!(
            Nic::open(VA + 0x100_0000, VECTORS).map(|_| ()),
            Err(Error::Busy)
        );
        owner.close().map_err(fail)?;
        let mut next = Nic::open(VA + 0x100_0000, VECTORS).map_err(fail)?;
        gateway_mac(&mut next)?;
        next.close().map_err(fail)
    });

    s.run("a_dying_nic_owner_frees_the_interface", || {
        let st = crate::util::in_child(|| match Nic::open(VA, VECTORS) {
            // Exits owning it, its buffers posted.
            Ok(_) => 0,
            Err(_) => 1,
        })?;
        ensure_eq!(st.code, 0);
        with_nic(VA, |n| gateway_mac(n).map(|_| ()))
    });

    let mut driver = driver;
    s.run(
        "a_killed_nic_driver_comes_back_and_frames_flow_again",
        || {
            let mut n = Nic::open(VA, VECTORS).map_err(fail)?;
            gateway_mac(&mut n)?;
            kill(driver)?;
            let st = reap(1)?;
            ensure_eq!(st[0].pid, driver);
            ensure_eq!(n.send(&arp_request(n.mac())), Err(Error::DeviceGone));
            let _ = n.close();
            driver = start_driver()?;
            let mut again = Nic::open(VA, VECTORS).map_err(fail)?;
            gateway_mac(&mut again)?;
            again.close().map_err(fail)
        },
    );

    net_server_tests(s);
    s.run("nic_driver_stops", || stop_driver(driver));
}

/// The TCP/IP server on the interface: its configuration (QEMU's DHCP
/// server leases 10.0.2.15), pings, refusals, and a restart.
fn net_server_tests(s: &mut Suite) {
    let (timer_pid, timer) = match crate::t_timer::start() {
        Ok(t) => t,
        Err(f) => {
            s.run("net_timer_starts", || Err(f));
            return;
        }
    };
    let mut server = None;
    s.run("net_server_starts_and_gets_its_address_by_dhcp", || {
        server = Some(start_module("net", libmh::net::NAME)?);
        let n = Net::open(NET_VECTOR).map_err(fail)?;
        // The lease takes a few round trips with QEMU's DHCP server.
        let start = ticks_now();
        let mut st = n.status().map_err(fail)?;
        while st.address.is_none() && !seconds_passed(start, 10) {
            process::yield_now();
            st = n.status().map_err(fail)?;
        }
        ensure_eq!(st.address, Some((GUEST_IP, 24, libmh::net::Config::Dhcp)));
        ensure_eq!(st.gateway, Some(GATEWAY_IP));
        ensure_eq!(&st.mac[..3], &[0x52, 0x54, 0x00]);
        ensure!(st.rx_frames > 0 && st.tx_frames > 0, "frames {st:?}");
        n.close().map_err(fail)
    });
    let Some(mut server) = server else {
        let _ = timer.close();
        let _ = crate::disk_util::stop_idle_exiting(timer_pid);
        return;
    };

    s.run(
        "net_pings_the_gateway_and_times_out_on_a_silent_address",
        || {
            let n = Net::open(NET_VECTOR).map_err(fail)?;
            for _ in 0..3 {
                let us = n.ping(GATEWAY_IP).map_err(fail)?;
                ensure!(us < 2_000_000, "a reply after {us} us, past the deadline");
            }
            // Nobody has 10.0.2.99 on QEMU's network: ARP gets no answer.
            ensure_eq!(n.ping([10, 0, 2, 99]), Err(Error::TimedOut));
            n.close().map_err(fail)
        },
    );

    s.run("net_refuses_bad_requests_with_their_errors", || {
        let n = Net::open(NET_VECTOR).map_err(fail)?;
        ensure_eq!(n.ping([0, 0, 0, 0]), Err(Error::InvalidArgument));
        ensure_eq!(n.ping([255, 255, 255, 255]), Err(Error::InvalidArgument));
        ensure_eq!(n.request(9, 8, 5, 5), Err(Error::NotSupported));
        ensure_eq!(
            n.request(NET_PORT_STATUS, 4, 0, 0),
            Err(Error::InvalidArgument)
        );
        n.close().map_err(fail)
    });

    s.run(
        "tcp_listen_accept_and_data_both_ways_through_the_forward_loop",
        || {
            let n = Net::open(NET_VECTOR)
                .and_then(|n| n.with_sockets(SOCKET_AREA, READY_VECTOR))
                .map_err(fail)?;
            let result = loop_round_trips(&n);
            let closed = n.close();
            result?;
            closed.map_err(fail)
        },
    );

    s.run(
        "tcp_to_a_closed_port_is_reset_and_socket_errors_are_named",
        || {
            let n = Net::open(NET_VECTOR)
                .and_then(|n| n.with_sockets(SOCKET_AREA, READY_VECTOR))
                .map_err(fail)?;
            let result = socket_errors(&n);
            let closed = n.close();
            result?;
            closed.map_err(fail)
        },
    );

    s.run("a_client_killed_with_open_sockets_frees_them", || {
        // Clients in turn, each leaving a full table of sockets open as it
        // exits: more in all than the server has, so the last ones could
        // not have theirs if the earlier ones' were not freed.
        let rounds = abi::net::NET_SOCKETS_MAX / abi::net::NET_SOCKETS_PER_CLIENT + 1;
        for round in 0..rounds {
            let st = crate::util::in_child(|| {
                let Ok(n) =
                    Net::open(NET_VECTOR).and_then(|n| n.with_sockets(SOCKET_AREA, READY_VECTOR))
                else {
                    return 1;
                };
                let mut open = 0;
                let mut kept = alloc::vec::Vec::new();
                for _ in 0..abi::net::NET_SOCKETS_PER_CLIENT {
                    match n.udp_bind(0) {
                        Ok(u) => {
                            open += 1;
                            kept.push(u);
                        }
                        Err(_) => break,
                    }
                }
                core::mem::forget(kept);
                // Exits with its sockets open (and its handle attached).
                if open == abi::net::NET_SOCKETS_PER_CLIENT {
                    0
                } else {
                    2
                }
            })?;
            ensure_eq!(st.code, 0, "round {round}: a full table of sockets");
        }
        Ok(())
    });

    s.run("httpd_serves_the_status_page_and_refuses_bad_http", || {
        let httpd = spawn_module("httpd")?;
        let n = Net::open(NET_VECTOR)
            .and_then(|n| n.with_sockets(SOCKET_AREA, READY_VECTOR))
            .map_err(fail)?;
        let result = httpd_checks(&n);
        let closed = n.close();
        let stopped = stop_driver(httpd);
        result?;
        closed.map_err(fail)?;
        stopped
    });

    s.run(
        "a_killed_net_server_is_gone_for_its_clients_and_comes_back",
        || {
            let n = Net::open(NET_VECTOR).map_err(fail)?;
            n.status().map_err(fail)?;
            kill(server)?;
            let st = reap(1)?;
            ensure_eq!(st[0].pid, server);
            ensure_eq!(n.status().map(|_| ()), Err(Error::DeviceGone));
            let _ = n.close();
            // The interface is free again once the old server's handle went.
            server = start_module("net", libmh::net::NAME)?;
            let again = Net::open(NET_VECTOR).map_err(fail)?;
            let start = ticks_now();
            let mut answered = again.ping(GATEWAY_IP);
            while answered.is_err() && !seconds_passed(start, 10) {
                // No address yet (DHCP again): pings fail until there is one.
                process::yield_now();
                answered = again.ping(GATEWAY_IP);
            }
            ensure!(
                answered.is_ok(),
                "no ping through the new server: {answered:?}"
            );
            again.close().map_err(fail)
        },
    );

    s.run("net_server_stops", || stop_driver(server));
    let _ = timer.close();
    s.run("net_timer_stops", || {
        crate::disk_util::stop_idle_exiting(timer_pid)
    });
}

/// Posts `word`, then a SYNC (the server takes a client's requests in
/// order, so after it the post has been answered), and reads what the
/// server said of the post.
fn post_result(h: dev::Handle, word: u64) -> Result<Result<(), Error>, Fail> {
    h.port_out(NIC_PORT_RX_POST, 8, word).map_err(fail)?;
    h.port_out_wait(NIC_PORT_SYNC, 8, 77, 1 << VECTORS.sent)
        .map_err(fail)?;
    let (tag, synced) = nic_decode_result(h.port_in(NIC_IO_SEND_RESULT, 8).map_err(fail)?);
    ensure_eq!((tag, synced), (77, Ok(())));
    Ok(nic_decode_result(h.port_in(NIC_IO_POST_RESULT, 8).map_err(fail)?).1)
}

/// Retries `op` while it says `WouldBlock`, yielding, for at most `secs`
/// seconds (then `TimedOut`): the tests never wait without a bound.
fn within<T>(secs: u64, mut op: impl FnMut() -> Result<T, Error>) -> Result<T, Error> {
    let start = ticks_now();
    loop {
        match op() {
            Err(Error::WouldBlock) if !seconds_passed(start, secs) => process::yield_now(),
            Err(Error::WouldBlock) => return Err(Error::TimedOut),
            other => return other,
        }
    }
}

/// Whether socket `s` of `n` is writable (connected, or failed).
fn writable(n: &Net, s: u32) -> Result<bool, Error> {
    Ok(n.handle().port_in(abi::net::NET_IO_WRITABLE, 8)? & 1 << s != 0)
}

/// Three connections around the forward loop: the guest listens, connects
/// to itself through QEMU and the host's loopback, accepts, and sends a
/// pattern each way in pieces, the last larger than a socket's buffers.
fn loop_round_trips(n: &Net) -> Result<(), Fail> {
    let listener = n.tcp_listen(LOOP_GUEST_PORT).map_err(fail)?;
    let result = (|| {
        for (round, total) in [(1u8, 64usize), (2, 3000), (3, 40_000)] {
            let c = n.tcp_connect(LOOP_HOST).map_err(fail)?;
            let (a, peer) = within(10, || listener.try_accept())
                .map_err(|e| Fail::new(format_args!("round {round}: accept: {e}")))?;
            // QEMU's side of the loop connects from the gateway's address.
            ensure_eq!(peer.0, GATEWAY_IP, "round {round}: the peer");
            within(10, || {
                if writable(n, c.number())? {
                    Ok(())
                } else {
                    Err(Error::WouldBlock)
                }
            })
            .map_err(|e| Fail::new(format_args!("round {round}: connect: {e}")))?;
            stream_both_ways(&c, &a, round, total)?;
            c.close().map_err(fail)?;
            // The accepted end sees the close as the end of its stream.
            let mut rest = [0u8; 16];
            let eof = within(10, || a.try_read(&mut rest));
            ensure_eq!(eof, Ok(0), "round {round}: the end of the stream");
            a.close().map_err(fail)?;
        }
        Ok(())
    })();
    let closed = listener.close();
    result?;
    closed.map_err(fail)
}

/// Sends `total` bytes of a pattern from `c` to `a` and the same back,
/// interleaved, checking every byte; 20 s at most.
fn stream_both_ways(c: &TcpStream, a: &TcpStream, round: u8, total: usize) -> Result<(), Fail> {
    let byte = |i: usize| (i as u8).wrapping_mul(31).wrapping_add(round);
    // (sent by c, got by a, sent back by a, got back by c)
    let (mut sent, mut got, mut back, mut home) = (0, 0, 0, 0);
    let mut buf = [0u8; 1500];
    let start = ticks_now();
    while home < total {
        ensure!(
            !seconds_passed(start, 20),
            "round {round}: {sent} sent, {got} arrived, {back} sent back, {home} home in 20 s"
        );
        let mut moved = false;
        if sent < total {
            let k = (total - sent).min(buf.len());
            for (j, b) in buf[..k].iter_mut().enumerate() {
                *b = byte(sent + j);
            }
            match c.try_write(&buf[..k]) {
                Ok(m) => (sent, moved) = (sent + m, true),
                Err(Error::WouldBlock) => {}
                Err(e) => return Err(Fail::new(format_args!("round {round}: send: {e}"))),
            }
        }
        // The accepted end checks what it gets and sends it straight back.
        if back == got {
            match a.try_read(&mut buf) {
                Ok(0) => return Err(Fail::new(format_args!("round {round}: closed at {got}"))),
                Ok(m) => {
                    for (j, &b) in buf[..m].iter().enumerate() {
                        ensure_eq!(b, byte(got + j), "round {round}: byte {} there", got + j);
                    }
                    got += m;
                    moved = true;
                }
                Err(Error::WouldBlock) => {}
                Err(e) => return Err(Fail::new(format_args!("round {round}: recv: {e}"))),
            }
        }
        if back < got {
            for (j, b) in buf[..got - back].iter_mut().enumerate() {
                *b = byte(back + j);
            }
            match a.try_write(&buf[..got - back]) {
                Ok(m) => (back, moved) = (back + m, true),
                Err(Error::WouldBlock) => {}
                Err(e) => return Err(Fail::new(format_args!("round {round}: send back: {e}"))),
            }
        }
        let mut home_buf = [0u8; 2048];
        match c.try_read(&mut home_buf) {
            Ok(0) => {
                return Err(Fail::new(format_args!(
                    "round {round}: closed at {home} home"
                )));
            }
            Ok(m) => {
                for (j, &b) in home_buf[..m].iter().enumerate() {
                    ensure_eq!(b, byte(home + j), "round {round}: byte {} home", home + j);
                }
                home += m;
                moved = true;
            }
            Err(Error::WouldBlock) => {}
            Err(e) => return Err(Fail::new(format_args!("round {round}: recv home: {e}"))),
        }
        if !moved {
            process::yield_now();
        }
    }
    Ok(())
}

/// A raw SOCKET request of `op` on `socket`.
fn raw(n: &Net, op: u32, socket: u32) -> Result<(), Error> {
    n.socket_request(abi::net::NetRequest {
        op,
        socket,
        ..Default::default()
    })
    .map(|_| ())
}

fn socket_errors(n: &Net) -> Result<(), Fail> {
    use abi::net::*;
    // Nothing listens on the host's port 1: QEMU's connect is refused, and
    // it resets the guest's connection.
    let refused = n.tcp_connect(([10, 0, 2, 2], 1)).map_err(fail)?;
    let outcome = within(10, || {
        if !writable(n, refused.number())? {
            return Err(Error::WouldBlock);
        }
        refused.try_write(b"x")
    });
    ensure_eq!(outcome, Err(Error::ConnectionReset));
    refused.close().map_err(fail)?;
    // A socket number that is not open, one outside the table, an
    // operation that does not exist.
    ensure_eq!(raw(n, NET_OP_RECV, 9), Err(Error::BadHandle));
    ensure_eq!(raw(n, NET_OP_RECV, 99), Err(Error::BadHandle));
    ensure_eq!(raw(n, 99, 0), Err(Error::NotSupported));
    let listener = n.tcp_listen(7000).map_err(fail)?;
    ensure_eq!(n.tcp_listen(7000).map(|_| ()), Err(Error::AlreadyExists));
    ensure_eq!(listener.try_accept().map(|_| ()), Err(Error::WouldBlock));
    ensure_eq!(n.tcp_listen(0).map(|_| ()), Err(Error::InvalidArgument));
    ensure_eq!(
        raw(n, NET_OP_SEND, 0),
        Err(Error::InvalidArgument),
        "SEND on a listener"
    );
    listener.close().map_err(fail)?;
    ensure_eq!(
        n.tcp_connect(([0, 0, 0, 0], 80)).map(|_| ()),
        Err(Error::InvalidArgument)
    );
    // UDP: a port taken twice, a datagram too long, nothing to receive.
    let u = n.udp_bind(5353).map_err(fail)?;
    ensure_eq!(n.udp_bind(5353).map(|_| ()), Err(Error::AlreadyExists));
    ensure_eq!(
        u.send_to(&[0; 1473], ([10, 0, 2, 2], 9)),
        Err(Error::InvalidArgument)
    );
    ensure_eq!(
        u.send_to(b"to the discard port", ([10, 0, 2, 2], 9)),
        Ok(())
    );
    let mut buf = [0u8; 64];
    ensure_eq!(
        u.try_recv_from(&mut buf).map(|_| ()),
        Err(Error::WouldBlock)
    );
    // A data buffer outside the client's exports.
    let bad = n.socket_request(NetRequest {
        op: NET_OP_SENDTO,
        socket: u.number(),
        address: 0x0a00_0202,
        port: 9,
        buffer: 0x7700_0000_0000,
        len: 16,
        ..Default::default()
    });
    ensure_eq!(bad.map(|_| ()), Err(Error::AccessDenied));
    u.close().map_err(fail)?;
    // A full table of sockets a client, no more.
    let mut open = alloc::vec::Vec::new();
    for _ in 0..NET_SOCKETS_PER_CLIENT {
        open.push(n.udp_bind(0).map_err(fail)?);
    }
    ensure_eq!(n.udp_bind(0).map(|_| ()), Err(Error::LimitReached));
    for u in open {
        u.close().map_err(fail)?;
    }
    Ok(())
}

/// A connection around the forward loop to whoever listens on the guest's
/// 8080, retrying (10 s) while nobody does yet (the SYN is reset).
fn connect_loop(n: &Net) -> Result<TcpStream<'_>, Fail> {
    let start = ticks_now();
    loop {
        let c = n.tcp_connect(LOOP_HOST).map_err(fail)?;
        let made = within(10, || {
            if writable(n, c.number())? {
                c.try_write(&[]).map(|_| ())
            } else {
                Err(Error::WouldBlock)
            }
        });
        match made {
            Ok(()) => return Ok(c),
            Err(Error::ConnectionReset) if !seconds_passed(start, 10) => {
                let _ = c.close();
                process::yield_now();
            }
            Err(e) => return Err(Fail::new(format_args!("connecting to httpd: {e}"))),
        }
    }
}

/// Sends `request` on `c` and reads one response: (status line, body).
/// The body is read to its Content-Length, or to the close.
fn exchange(c: &TcpStream, request: &[u8]) -> Result<(alloc::string::String, Vec<u8>), Fail> {
    within(10, || c.try_write(request).map(|_| ())).map_err(fail)?;
    let mut got = Vec::new();
    let mut buf = [0u8; 2048];
    let start = ticks_now();
    loop {
        ensure!(
            !seconds_passed(start, 10),
            "no whole response in 10 s ({} bytes)",
            got.len()
        );
        let closed = match c.try_read(&mut buf) {
            Ok(0) => true,
            Ok(k) => {
                got.extend_from_slice(&buf[..k]);
                false
            }
            Err(Error::WouldBlock) => {
                process::yield_now();
                false
            }
            Err(Error::ConnectionReset) => true,
            Err(e) => return Err(fail(e)),
        };
        let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") else {
            ensure!(!closed, "closed before a whole head");
            continue;
        };
        let head = core::str::from_utf8(&got[..end])
            .map_err(|_| Fail::new(format_args!("a head not UTF-8")))?;
        let status = head.lines().next().unwrap_or("").into();
        let length = head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        });
        let body = &got[end + 4..];
        match length {
            Some(len) if body.len() >= len => return Ok((status, body[..len].to_vec())),
            None if closed => return Ok((status, body.to_vec())),
            _ => ensure!(!closed, "closed mid-body"),
        }
    }
}

fn httpd_checks(n: &Net) -> Result<(), Fail> {
    // Until httpd listens, QEMU's end of the loop is made and then closed
    // (the guest resets it): try again, for 10 s.
    let start = ticks_now();
    let (c, status, body) = loop {
        let c = connect_loop(n)?;
        match exchange(&c, b"GET / HTTP/1.1\r\nHost: mh\r\n\r\n") {
            Ok((status, body)) => break (c, status, body),
            Err(f) if seconds_passed(start, 10) => return Err(f),
            Err(_) => {
                let _ = c.close();
                process::yield_now();
            }
        }
    };
    ensure_eq!(status.as_str(), "HTTP/1.1 200 OK");
    let page = core::str::from_utf8(&body).unwrap_or("");
    ensure!(
        page.contains("<h1>MH</h1>") && page.contains("httpd"),
        "the page: {}",
        &page[..page.len().min(120)]
    );
    // The same connection (keep-alive): the JSON, then a missing page.
    let (status, body) = exchange(&c, b"GET /status.json HTTP/1.1\r\n\r\n")?;
    ensure_eq!(status.as_str(), "HTTP/1.1 200 OK");
    let json = core::str::from_utf8(&body).unwrap_or("");
    ensure!(
        json.starts_with("{\"uptime_ms\":")
            && json.contains("\"name\":\"net\"")
            && json.ends_with("]}\n"),
        "the JSON: {}",
        &json[..json.len().min(120)]
    );
    let (status, _) = exchange(&c, b"GET /nothing HTTP/1.1\r\n\r\n")?;
    ensure_eq!(status.as_str(), "HTTP/1.1 404 Not Found");
    let (status, _) = exchange(&c, b"POST / HTTP/1.1\r\n\r\n")?;
    ensure_eq!(status.as_str(), "HTTP/1.1 405 Method Not Allowed");
    // Malformed: 400, and the connection is closed.
    let (status, _) = exchange(&c, b"this is not http\r\n\r\n")?;
    ensure_eq!(status.as_str(), "HTTP/1.1 400 Bad Request");
    let mut rest = [0u8; 16];
    ensure_eq!(
        within(10, || c.try_read(&mut rest)),
        Ok(0),
        "closed after the 400"
    );
    c.close().map_err(fail)?;
    // A new connection still works: the server lives on.
    let again = connect_loop(n)?;
    let (status, _) = exchange(&again, b"GET / HTTP/1.0\r\n\r\n")?;
    ensure_eq!(status.as_str(), "HTTP/1.1 200 OK");
    again.close().map_err(fail)
}

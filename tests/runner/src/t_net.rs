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
use libmh::bootfs::Bootfs;
use libmh::dev::{self, REGISTRY};
use libmh::net::Net;
use libmh::nic::{self, Nic, Vectors};
use libmh::process;

/// Where the tests map their NIC areas (each process its own).
const VA: u64 = 0x5800_0000_0000;
const VECTORS: Vectors = Vectors {
    sent: 44,
    rx: 45,
    post_failed: 46,
};
/// The `net` client's completion vector.
const NET_VECTOR: u32 = 47;
const GUEST_IP: [u8; 4] = [10, 0, 2, 15];
const GATEWAY_IP: [u8; 4] = [10, 0, 2, 2];
const ETHERTYPE_ARP: [u8; 2] = [0x08, 0x06];
const ETHERTYPE_IPV4: [u8; 2] = [0x08, 0x00];

/// Starts the driver module and waits (10 s at most) until `net0` is
/// registered; its pid.
fn start_driver() -> Result<u32, Fail> {
    start_module("virtio-net", nic::NAME)
}

/// Starts boot module `module` and waits (10 s at most) until `name` is
/// registered; its pid.
fn start_module(module: &str, name: &str) -> Result<u32, Fail> {
    let fs = Bootfs::open().map_err(fail)?;
    let index = fs.find(module).map_err(fail)?;
    let Some(index) = index else {
        return Err(Fail::new(format_args!("no '{module}' module in the image")));
    };
    let pid = fs.spawn(index).map_err(fail)?;
    let _ = fs.0.detach();
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

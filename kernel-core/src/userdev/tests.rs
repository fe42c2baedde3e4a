//! User-device state: every check, the request order, quotas and
//! round-robin fairness, and refunds.

use super::*;
use crate::testrng::Rng;

fn config(name: &str, lines: u32, io: u32) -> DeviceConfig {
    let mut c = DeviceConfig {
        name: [0; 32],
        name_len: name.len() as u32,
        irq_lines: lines,
        iospace_size: io,
        vector: 5,
        queue_per_client: 0,
    };
    c.name[..name.len()].copy_from_slice(name.as_bytes());
    c
}

fn dev() -> UserDevice {
    UserDevice::new(&config("echo", 2, 16), 10).unwrap()
}

/// A charge naming the client's pid as its reserve, so tests can see whose
/// refund comes back.
fn charge(pid: u32) -> Refund {
    Refund {
        reserve: pid as u64,
        bytes: 100,
    }
}

fn open(d: &mut UserDevice, pid: u32) -> ClientId {
    d.open(pid, charge(pid)).unwrap()
}

/// Takes every waiting request, in the order the server would.
fn drain(d: &mut UserDevice) -> Vec<(u32, ClientId)> {
    core::iter::from_fn(|| {
        let peeked = d.peek();
        let taken = d.take().map(|(r, _)| r);
        assert_eq!(peeked, taken, "peek shows what take takes");
        taken
    })
    .map(|r| (r.kind, r.client))
    .collect()
}

#[test]
fn config_is_validated() {
    assert!(UserDevice::new(&config("", 0, 0), 1).is_err());
    assert!(UserDevice::new(&config("a b", 0, 0), 1).is_err());
    assert!(UserDevice::new(&config("x", 17, 0), 1).is_err());
    assert!(UserDevice::new(&config("x", 0, 257), 1).is_err());
    let mut c = config("x", 0, 0);
    c.name_len = 33;
    assert!(UserDevice::new(&c, 1).is_err());
    c = config("x", 0, 0);
    c.vector = 63;
    assert!(UserDevice::new(&c, 1).is_err());
    c = config("x", 0, 0);
    c.name[0] = 0xff;
    assert!(UserDevice::new(&c, 1).is_err());
    c = config("x", 0, 0);
    c.queue_per_client = QUEUE_PER_CLIENT_MAX + 1;
    assert!(UserDevice::new(&c, 1).is_err());
    c.queue_per_client = 0;
    assert_eq!(
        UserDevice::new(&c, 1).unwrap().queue_per_client,
        QUEUE_PER_CLIENT_DEFAULT
    );
    assert_eq!(
        UserDevice::new(&config("console", 16, 256), 1)
            .unwrap()
            .name
            .as_str(),
        "console"
    );
}

#[test]
fn each_clients_requests_come_out_in_order() {
    let mut d = dev();
    let a = open(&mut d, 20);
    let b = open(&mut d, 21);
    d.out(a, 0, 4, 7).unwrap();
    d.out(b, 4, 1, 0x1ff).unwrap();
    let c = d.clone_client(a, 22, charge(22)).unwrap();
    d.close(a);
    assert_eq!(
        drain(&mut d),
        vec![
            (REQUEST_OPEN, a),
            (REQUEST_OPEN, b),
            (REQUEST_CLONE, c),
            (REQUEST_OUT, a),
            (REQUEST_OUT, b),
            (REQUEST_CLOSE, a)
        ]
    );
}

#[test]
fn clone_names_the_parent_in_value() {
    let mut d = dev();
    let a = open(&mut d, 1);
    let c = d.clone_client(a, 2, charge(2)).unwrap();
    drain(&mut d);
    let _ = c;
    let c2 = d.clone_client(a, 3, charge(3)).unwrap();
    let (r, _) = d.take().unwrap();
    assert_eq!(
        (r.kind, r.client, r.pid, r.parent_client()),
        (REQUEST_CLONE, c2, 3, a)
    );
}

#[test]
fn a_flooding_client_waits_its_turn_and_others_do_not() {
    let mut d = dev();
    let flood = open(&mut d, 1);
    let quiet = open(&mut d, 2);
    drain(&mut d);
    for _ in 0..QUEUE_PER_CLIENT_DEFAULT {
        d.out(flood, 0, 1, 0).unwrap();
    }
    assert_eq!(d.out(flood, 0, 1, 0), Err(Error::Busy), "the quota is full");
    d.out(quiet, 0, 1, 1).unwrap();
    let newcomer = open(&mut d, 3);
    // Round-robin: the flood gets one request in, then the quiet client,
    // then the newcomer's OPEN — not after sixteen OUTs.
    let order = drain(&mut d);
    assert_eq!(order[0], (REQUEST_OUT, flood));
    assert_eq!(order[1], (REQUEST_OUT, quiet));
    assert_eq!(order[2], (REQUEST_OPEN, newcomer));
    assert_eq!(order.len(), QUEUE_PER_CLIENT_DEFAULT as usize + 2);
}

#[test]
fn close_always_fits_even_with_the_quota_full() {
    let mut d = dev();
    let a = open(&mut d, 1);
    drain(&mut d);
    for _ in 0..QUEUE_PER_CLIENT_DEFAULT {
        d.out(a, 0, 1, 0).unwrap();
    }
    d.close(a);
    assert_eq!(d.pending_requests(), QUEUE_PER_CLIENT_DEFAULT as usize + 1);
    let order = drain(&mut d);
    assert_eq!(order.last(), Some(&(REQUEST_CLOSE, a)));
}

#[test]
fn the_record_and_its_charge_stay_until_close_is_taken() {
    let mut d = dev();
    let a = open(&mut d, 1);
    drain(&mut d);
    d.close(a);
    assert_eq!(d.client_count(), 0);
    assert_eq!(d.out(a, 0, 1, 0), Err(Error::NotFound));
    assert_eq!(d.write_iospace(a, 0, 1, 0), Err(Error::NotFound));
    let (r, refund) = d.take().unwrap();
    assert_eq!(r.kind, REQUEST_CLOSE);
    assert_eq!(refund, Some(charge(1)));
    assert_eq!(d.take(), None);
}

#[test]
fn a_second_close_does_nothing() {
    let mut d = dev();
    let a = open(&mut d, 1);
    d.close(a);
    d.close(a);
    assert_eq!(
        drain(&mut d),
        vec![(REQUEST_OPEN, a), (REQUEST_CLOSE, a)],
        "the server sees every request, then one CLOSE"
    );
}

#[test]
fn out_masks_the_value_to_its_size() {
    let mut d = dev();
    let a = open(&mut d, 1);
    drain(&mut d);
    d.out(a, 3, 1, 0x1ff).unwrap();
    let (r, _) = d.take().unwrap();
    assert_eq!((r.port, r.size, r.value, r.pid), (3, 1, 0xff, 1));
    assert_eq!(d.out(a, 0, 3, 0), Err(Error::InvalidArgument));
    assert_eq!(d.out(a, 1 << 33, 4, 0), Err(Error::InvalidArgument));
    assert_eq!(d.out(99, 0, 4, 0), Err(Error::NotFound));
}

#[test]
fn iospace_bounds_and_values() {
    let mut d = dev();
    let a = open(&mut d, 1);
    d.write_iospace(a, 0, 8, 0x1122_3344_5566_7788).unwrap();
    assert_eq!(d.read_iospace(a, 0, 4), Ok(0x5566_7788));
    assert_eq!(d.read_iospace(a, 6, 2), Ok(0x1122));
    assert_eq!(d.read_iospace(a, 8, 8), Ok(0));
    assert_eq!(d.read_iospace(a, 9, 8), Err(Error::InvalidArgument));
    assert_eq!(d.read_iospace(a, 16, 1), Err(Error::InvalidArgument));
    assert_eq!(d.read_iospace(a, u64::MAX, 8), Err(Error::InvalidArgument));
    assert_eq!(d.write_iospace(a, 15, 2, 0), Err(Error::InvalidArgument));
    assert_eq!(d.write_iospace(a, 0, 0, 0), Err(Error::InvalidArgument));
    // Client ids from the server are checked, out of range and closed ones.
    assert_eq!(d.write_iospace(5, 0, 1, 0), Err(Error::NotFound));
    assert_eq!(d.write_iospace(u64::MAX, 0, 1, 0), Err(Error::NotFound));
    d.take();
    d.close(a);
    assert_eq!(d.write_iospace(a, 0, 1, 0), Err(Error::NotFound));
    assert_eq!(d.read_iospace(a, 0, 1), Err(Error::NotFound));
}

#[test]
fn clone_copies_iospace_and_irqs_not_exports() {
    let mut d = dev();
    let a = open(&mut d, 1);
    d.write_iospace(a, 0, 1, 9).unwrap();
    d.irq_map(a, 1, vector(40)).unwrap();
    d.export(a, 0x1000, 0x2000, true).unwrap();
    let c = d.clone_client(a, 2, charge(2)).unwrap();
    assert_eq!(d.read_iospace(c, 0, 1), Ok(9));
    assert_eq!(d.irq_target(c, 1), Ok(Some((2, 40))));
    assert_eq!(d.dma_target(c, 0x1000, 1, false), Err(Error::AccessDenied));
    assert_eq!(d.clone_client(77, 3, charge(3)), Err(Error::NotFound));
}

#[test]
fn irq_map_and_targets() {
    let mut d = dev();
    let a = open(&mut d, 1);
    assert_eq!(d.irq_target(a, 0), Ok(None));
    assert_eq!(d.irq_map(a, 2, vector(3)), Err(Error::InvalidArgument));
    d.irq_map(a, 0, vector(62)).unwrap();
    assert_eq!(d.irq_target(a, 0), Ok(Some((1, 62))));
    assert_eq!(d.irq_target(a, 2), Err(Error::InvalidArgument));
    assert_eq!(d.irq_target(3, 0), Err(Error::NotFound));
}

#[test]
fn dma_only_inside_an_export_of_that_client() {
    let mut d = dev();
    let a = open(&mut d, 1);
    let b = open(&mut d, 2);
    assert_eq!(d.export(a, 0x10_0000, 0x3000, true), Ok(0x10_0000));
    assert_eq!(d.dma_target(a, 0x10_0000, 0x3000, false), Ok(1));
    assert_eq!(d.dma_target(a, 0x10_1000, 0x10, false), Ok(1));
    assert_eq!(
        d.dma_target(a, 0x10_2fff, 2, false),
        Err(Error::AccessDenied)
    );
    assert_eq!(
        d.dma_target(a, 0xf_ffff, 2, false),
        Err(Error::AccessDenied)
    );
    assert_eq!(
        d.dma_target(a, u64::MAX, 2, false),
        Err(Error::InvalidArgument)
    );
    assert_eq!(
        d.dma_target(b, 0x10_0000, 1, false),
        Err(Error::AccessDenied)
    );
    assert_eq!(
        d.export(a, 0x10_2000, 0x2000, true),
        Err(Error::AlreadyExists)
    );
    assert_eq!(d.export(a, 0x20_0000, 0, true), Err(Error::InvalidArgument));
    assert_eq!(d.export(a, u64::MAX, 2, true), Err(Error::InvalidArgument));
    assert_eq!(d.unexport(a, 0x10_1000), Err(Error::NotFound));
    d.unexport(a, 0x10_0000).unwrap();
    assert_eq!(
        d.dma_target(a, 0x10_0000, 1, false),
        Err(Error::AccessDenied)
    );
    for i in 0..EXPORTS_MAX as u64 {
        d.export(a, 0x100_0000 + i * 0x1000, 0x1000, true).unwrap();
    }
    assert_eq!(
        d.export(a, 0x200_0000, 0x1000, true),
        Err(Error::LimitReached)
    );
}

#[test]
fn ids_are_never_reissued() {
    let mut d = dev();
    let mut seen = std::collections::HashSet::new();
    for pid in 0..5000 {
        let id = open(&mut d, pid);
        assert!(seen.insert(id), "client id {id:#x} issued twice");
        drain(&mut d);
        d.close(id);
        drain(&mut d);
        assert_eq!(d.write_iospace(id, 0, 1, 0), Err(Error::NotFound));
    }
}

#[test]
fn in_flight_names_the_last_request_taken_until_answered() {
    let mut d = dev();
    let a = open(&mut d, 7);
    let b = open(&mut d, 8);
    drain(&mut d);
    d.out(a, 0, 1, 0).unwrap();
    d.take();
    assert_eq!(d.in_flight(), Some((a, 7)));
    d.write_iospace(b, 0, 1, 0).unwrap();
    assert_eq!(d.in_flight(), Some((a, 7)), "answering b clears nothing");
    d.write_iospace(a, 0, 1, 0).unwrap();
    assert_eq!(d.in_flight(), None);
    d.out(b, 0, 1, 0).unwrap();
    d.take();
    d.answered(b);
    assert_eq!(d.in_flight(), None);
}

#[test]
fn destroying_the_device_refunds_every_client() {
    let mut d = dev();
    for pid in 1..=5 {
        open(&mut d, pid);
    }
    let a = open(&mut d, 6);
    drain(&mut d);
    d.close(a);
    let mut refunds: Vec<u64> = d.into_refunds().map(|r| r.reserve).collect();
    refunds.sort();
    assert_eq!(refunds, vec![1, 2, 3, 4, 5, 6]);
}

/// Random opens, clones, outs, closes and takes: the pending count is
/// exact, every charge comes back exactly once (at a take of CLOSE, a
/// close of an unseen client or the device's end), and a client's
/// requests keep their order.
#[test]
fn model_refunds_and_order() {
    let mut rng = Rng(0x5eed_cafe_f00d_0001);
    let mut d = dev();
    let mut live: Vec<ClientId> = Vec::new();
    let mut charged: std::collections::HashMap<u64, u32> = Default::default();
    let mut refunded: Vec<u64> = Vec::new();
    let mut next_value: std::collections::HashMap<ClientId, u64> = Default::default();
    let mut last_seen: std::collections::HashMap<ClientId, u64> = Default::default();
    let mut pending = 0usize;
    for step in 0..20_000u64 {
        match rng.below(6) {
            0 => {
                let reserve = 1000 + step;
                let c = Refund { reserve, bytes: 1 };
                let id = if live.is_empty() || rng.below(2) == 0 {
                    d.open(7, c).unwrap()
                } else {
                    let parent = live[rng.below(live.len() as u64) as usize];
                    d.clone_client(parent, 8, c).unwrap()
                };
                charged.insert(reserve, 1);
                live.push(id);
                pending += 1;
            }
            1 | 2 if !live.is_empty() => {
                let id = live[rng.below(live.len() as u64) as usize];
                let v = next_value.entry(id).or_insert(0);
                match d.out(id, 0, 8, *v) {
                    Ok(()) => {
                        *v += 1;
                        pending += 1;
                    }
                    Err(e) => assert_eq!(e, Error::Busy),
                }
            }
            3 if !live.is_empty() => {
                let i = rng.below(live.len() as u64) as usize;
                let id = live.swap_remove(i);
                d.close(id);
                pending += 1;
            }
            _ => {
                if let Some((r, refund)) = d.take() {
                    pending -= 1;
                    if r.kind == REQUEST_OUT {
                        let last = last_seen.insert(r.client, r.value);
                        assert!(last.is_none_or(|l| l + 1 == r.value), "out of order");
                    }
                    if let Some(refund) = refund {
                        assert_eq!(r.kind, REQUEST_CLOSE);
                        refunded.push(refund.reserve);
                    }
                } else {
                    assert_eq!(pending, 0);
                }
            }
        }
        assert_eq!(d.pending_requests(), pending, "step {step}");
        assert_eq!(d.client_count(), live.len());
    }
    refunded.extend(d.into_refunds().map(|r| r.reserve));
    refunded.sort();
    let mut all: Vec<u64> = charged.keys().copied().collect();
    all.sort();
    assert_eq!(refunded, all, "every charge comes back exactly once");
}

fn vector(v: u64) -> crate::syscall::decode::Vector {
    crate::syscall::decode::Vector::new(v).unwrap()
}

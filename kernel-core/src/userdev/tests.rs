//! User-device state: every check, and the request order.

use super::*;

fn config(name: &str, lines: u32, io: u32) -> DeviceConfig {
    let mut c = DeviceConfig {
        name: [0; 32],
        name_len: name.len() as u32,
        irq_lines: lines,
        iospace_size: io,
        vector: 5,
    };
    c.name[..name.len()].copy_from_slice(name.as_bytes());
    c
}

fn dev() -> UserDevice {
    UserDevice::new(&config("echo", 2, 16), 10).unwrap()
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
    assert_eq!(
        UserDevice::new(&config("console", 16, 256), 1)
            .unwrap()
            .name
            .as_str(),
        "console"
    );
}

#[test]
fn requests_come_out_in_order() {
    let mut d = dev();
    let a = d.open(20).unwrap();
    let b = d.open(21).unwrap();
    d.out(a, 0, 4, 7).unwrap();
    d.out(b, 4, 1, 0x1ff).unwrap();
    let c = d.clone_client(a, 22).unwrap();
    d.close(a);
    let kinds: Vec<(u32, u32)> = core::iter::from_fn(|| d.poll())
        .map(|r| (r.kind, r.client))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (REQUEST_OPEN, a),
            (REQUEST_OPEN, b),
            (REQUEST_OUT, a),
            (REQUEST_OUT, b),
            (REQUEST_CLONE, c),
            (REQUEST_CLOSE, a)
        ]
    );
}

#[test]
fn out_masks_the_value_to_its_size() {
    let mut d = dev();
    let a = d.open(1).unwrap();
    d.poll();
    d.out(a, 3, 1, 0x1ff).unwrap();
    let r = d.poll().unwrap();
    assert_eq!((r.port, r.size, r.value, r.pid), (3, 1, 0xff, 1));
    assert_eq!(d.out(a, 0, 3, 0), Err(Error::InvalidArgument));
    assert_eq!(d.out(a, 1 << 33, 4, 0), Err(Error::InvalidArgument));
    assert_eq!(d.out(99, 0, 4, 0), Err(Error::NotFound));
}

#[test]
fn iospace_bounds_and_values() {
    let mut d = dev();
    let a = d.open(1).unwrap();
    d.write_iospace(a as u64, 0, 8, 0x1122_3344_5566_7788)
        .unwrap();
    assert_eq!(d.read_iospace(a, 0, 4), Ok(0x5566_7788));
    assert_eq!(d.read_iospace(a, 6, 2), Ok(0x1122));
    assert_eq!(d.read_iospace(a, 8, 8), Ok(0));
    assert_eq!(d.read_iospace(a, 9, 8), Err(Error::InvalidArgument));
    assert_eq!(d.read_iospace(a, 16, 1), Err(Error::InvalidArgument));
    assert_eq!(d.read_iospace(a, u64::MAX, 8), Err(Error::InvalidArgument));
    assert_eq!(
        d.write_iospace(a as u64, 15, 2, 0),
        Err(Error::InvalidArgument)
    );
    assert_eq!(
        d.write_iospace(a as u64, 0, 0, 0),
        Err(Error::InvalidArgument)
    );
    // Client ids from the server are checked, out of range and closed ones.
    assert_eq!(d.write_iospace(5, 0, 1, 0), Err(Error::NotFound));
    assert_eq!(d.write_iospace(u64::MAX, 0, 1, 0), Err(Error::NotFound));
    d.close(a);
    assert_eq!(d.write_iospace(a as u64, 0, 1, 0), Err(Error::NotFound));
    assert_eq!(d.read_iospace(a, 0, 1), Err(Error::NotFound));
}

#[test]
fn clone_copies_iospace_and_irqs_not_exports() {
    let mut d = dev();
    let a = d.open(1).unwrap();
    d.write_iospace(a as u64, 0, 1, 9).unwrap();
    d.irq_map(a, 1, 40).unwrap();
    d.export(a, 0x1000, 0x2000).unwrap();
    let c = d.clone_client(a, 2).unwrap();
    assert_eq!(d.read_iospace(c, 0, 1), Ok(9));
    assert_eq!(d.irq_target(c as u64, 1), Ok(Some((2, 40))));
    assert_eq!(d.dma_target(c as u64, 0x1000, 1), Err(Error::AccessDenied));
    assert_eq!(d.clone_client(77, 3), Err(Error::NotFound));
}

#[test]
fn irq_map_and_targets() {
    let mut d = dev();
    let a = d.open(1).unwrap();
    assert_eq!(d.irq_target(a as u64, 0), Ok(None));
    assert_eq!(d.irq_map(a, 2, 3), Err(Error::InvalidArgument));
    assert_eq!(d.irq_map(a, 0, 63), Err(Error::InvalidArgument));
    d.irq_map(a, 0, 62).unwrap();
    assert_eq!(d.irq_target(a as u64, 0), Ok(Some((1, 62))));
    assert_eq!(d.irq_target(a as u64, 2), Err(Error::InvalidArgument));
    assert_eq!(d.irq_target(3, 0), Err(Error::NotFound));
}

#[test]
fn dma_only_inside_an_export_of_that_client() {
    let mut d = dev();
    let a = d.open(1).unwrap();
    let b = d.open(2).unwrap();
    assert_eq!(d.export(a, 0x10_0000, 0x3000), Ok(0x10_0000));
    assert_eq!(d.dma_target(a as u64, 0x10_0000, 0x3000), Ok(1));
    assert_eq!(d.dma_target(a as u64, 0x10_1000, 0x10), Ok(1));
    assert_eq!(
        d.dma_target(a as u64, 0x10_2fff, 2),
        Err(Error::AccessDenied)
    );
    assert_eq!(
        d.dma_target(a as u64, 0xf_ffff, 2),
        Err(Error::AccessDenied)
    );
    assert_eq!(
        d.dma_target(a as u64, u64::MAX, 2),
        Err(Error::InvalidArgument)
    );
    assert_eq!(
        d.dma_target(b as u64, 0x10_0000, 1),
        Err(Error::AccessDenied)
    );
    assert_eq!(d.export(a, 0x10_2000, 0x2000), Err(Error::AlreadyExists));
    assert_eq!(d.export(a, 0x20_0000, 0), Err(Error::InvalidArgument));
    assert_eq!(d.export(a, u64::MAX, 2), Err(Error::InvalidArgument));
    assert_eq!(d.unexport(a, 0x10_1000), Err(Error::NotFound));
    d.unexport(a, 0x10_0000).unwrap();
    assert_eq!(
        d.dma_target(a as u64, 0x10_0000, 1),
        Err(Error::AccessDenied)
    );
    for i in 0..EXPORTS_MAX as u64 {
        d.export(a, 0x100_0000 + i * 0x1000, 0x1000).unwrap();
    }
    assert_eq!(d.export(a, 0x200_0000, 0x1000), Err(Error::LimitReached));
}

#[test]
fn queue_limit_is_busy_but_close_still_gets_in() {
    let mut d = dev();
    let a = d.open(1).unwrap();
    while d.pending_requests() < REQUEST_QUEUE_MAX as usize {
        d.out(a, 0, 1, 0).unwrap();
    }
    assert_eq!(d.out(a, 0, 1, 0), Err(Error::Busy));
    assert_eq!(d.open(2), Err(Error::Busy));
    assert_eq!(
        d.client_count(),
        1,
        "a refused open leaves no client behind"
    );
    d.close(a);
    assert_eq!(d.pending_requests(), REQUEST_QUEUE_MAX as usize + 1);
}

#[test]
fn client_limit_and_id_reuse() {
    let mut d = dev();
    for pid in 0..USER_CLIENTS_MAX {
        d.open(pid).unwrap();
        d.poll();
    }
    assert_eq!(d.open(5000), Err(Error::LimitReached));
    d.close(7);
    assert_eq!(
        d.poll().map(|r| (r.kind, r.client)),
        Some((REQUEST_CLOSE, 7))
    );
    // The slot serves a new client under a new id; the old id stays dead.
    let new = d.open(5000).unwrap();
    assert_eq!(new & 0x3ff, 7);
    assert_ne!(new, 7);
    assert_eq!(d.client(new as u64).unwrap().pid, 5000);
    assert_eq!(d.write_iospace(7, 0, 1, 0), Err(Error::NotFound));
    assert!(new < 1 << 31);
}

#[test]
fn unpoll_puts_the_request_back_first() {
    let mut d = dev();
    let a = d.open(1).unwrap();
    d.out(a, 0, 1, 1).unwrap();
    let r = d.poll().unwrap();
    d.unpoll(r);
    assert_eq!(d.poll(), Some(r));
}

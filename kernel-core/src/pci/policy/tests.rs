//! The mediation policy, access by access over all of configuration
//! space, for the model devices and for power-management and PCI Express
//! capabilities; and writes made through it.

use super::*;
use crate::pci::caps::{Capability, capabilities};
use crate::pci::describe;
use crate::pci::fake::{FakeFunction, Op};
use crate::pci::models;

fn access(offset: u16, size: u64) -> ConfigAccess {
    ConfigAccess::new(offset.into(), size).unwrap()
}

/// Every access of every width in `range`.
fn accesses(range: core::ops::Range<u16>) -> impl Iterator<Item = ConfigAccess> {
    [1u64, 2, 4].into_iter().flat_map(move |size| {
        range
            .clone()
            .filter(move |o| u64::from(*o) % size == 0)
            .map(move |o| access(o, size))
    })
}

fn policy_of(f: &mut FakeFunction) -> ConfigPolicy {
    describe(f).unwrap().policy()
}

#[test]
fn every_valid_read_is_allowed() {
    let p = policy_of(&mut models::virtio_net());
    for at in accesses(0..4096) {
        assert_eq!(p.read(at), Ok(()));
    }
}

#[test]
fn the_header_is_written_only_through_the_command_mask() {
    let p = ConfigPolicy::new(&Capabilities::default());
    assert_eq!(p.write(access(4, 2)), Ok(Write::Masked(0x0400)));
    assert_eq!(p.write(access(5, 1)), Ok(Write::Masked(0x04)));
    for at in accesses(0..0x40) {
        if at != access(4, 2) && at != access(5, 1) {
            assert_eq!(p.write(at), Err(Error::AccessDenied), "{at:?}");
        }
    }
}

#[test]
fn extended_space_is_read_only() {
    let p = ConfigPolicy::new(&Capabilities::default());
    for at in accesses(0x100..4096) {
        assert_eq!(p.write(at), Err(Error::AccessDenied), "{at:?}");
    }
    // With no capabilities, all of 0x40..0x100 is the driver's.
    for at in accesses(0x40..0x100) {
        assert_eq!(p.write(at), Ok(Write::Direct), "{at:?}");
    }
}

#[test]
fn edu_msi_is_the_kernels() {
    let p = policy_of(&mut models::edu());
    for at in accesses(0x40..0x100) {
        let want = if at.offset() < 0x50 {
            Err(Error::AccessDenied)
        } else {
            Ok(Write::Direct)
        };
        assert_eq!(p.write(at), want, "{at:?}");
    }
}

#[test]
fn virtio_msix_and_capability_headers_are_the_kernels() {
    let p = policy_of(&mut models::virtio_net());
    let owned = |b: u16| {
        (0x98..0xa4).contains(&b)
            || [0x40, 0x50, 0x60, 0x70, 0x84]
                .iter()
                .any(|&c| b == c || b == c + 1)
    };
    for at in accesses(0x40..0x100) {
        let want = if (at.offset()..at.end()).any(owned) {
            Err(Error::AccessDenied)
        } else {
            Ok(Write::Direct)
        };
        assert_eq!(p.write(at), want, "{at:?}");
    }
    // The PCI configuration access capability's window registers.
    for at in [
        access(0x88, 1),
        access(0x8c, 4),
        access(0x90, 4),
        access(0x94, 2),
    ] {
        assert_eq!(p.write(at), Ok(Write::Direct));
    }
}

#[test]
fn power_management_and_pci_express_are_the_kernels() {
    let mut f = FakeFunction::endpoint(1, 2);
    f.caps(&[
        (0x40, 0x01, &[0x03, 0x00]),
        (0x48, 0x09, &[4, 0]),
        (0x4c, 0x10, &[0x02, 0x00]),
    ]);
    let caps = capabilities(&mut f, &[]).unwrap();
    let p = ConfigPolicy::new(&caps);
    for at in accesses(0x40..0x100) {
        let direct =
            (0x4a..0x4c).contains(&at.offset()) && at.end() <= 0x4c || at.offset() >= 0x4c + 0x3c;
        assert_eq!(p.write(at).is_ok(), direct, "{at:?}");
    }
    // A PCI Express capability near the end is clipped, not overflowed.
    let mut caps = Capabilities::default();
    caps.list.push(Capability {
        id: 0x10,
        offset: 0xfc,
    });
    let p = ConfigPolicy::new(&caps);
    assert_eq!(p.write(access(0xf8, 4)), Ok(Write::Direct));
    assert_eq!(p.write(access(0xfc, 4)), Err(Error::AccessDenied));
}

#[test]
fn an_msi_entry_without_its_description_is_protected_at_full_size() {
    let mut caps = Capabilities::default();
    caps.list.push(Capability {
        id: 0x05,
        offset: 0x40,
    });
    let p = ConfigPolicy::new(&caps);
    assert_eq!(p.write(access(0x54, 4)), Err(Error::AccessDenied));
    assert_eq!(p.write(access(0x58, 4)), Ok(Write::Direct));
}

#[test]
fn command_writes_through_reach_only_intx_disable() {
    let mut f = models::edu();
    let p = policy_of(&mut f);
    f.set16(reg::COMMAND, 0x0006); // the kernel gave it memory and DMA
    p.write_through(&mut f, access(4, 2), 0xffff).unwrap();
    assert_eq!(f.peek(reg::COMMAND, 2), 0x0406);
    p.write_through(&mut f, access(4, 2), 0x0000).unwrap();
    assert_eq!(f.peek(reg::COMMAND, 2), 0x0006);
    p.write_through(&mut f, access(5, 1), 0xff).unwrap();
    assert_eq!(f.peek(reg::COMMAND, 2), 0x0406);
    // Asking to turn decode and bus mastering off changes nothing either.
    p.write_through(&mut f, access(4, 2), 0x0400).unwrap();
    assert_eq!(f.peek(reg::COMMAND, 2), 0x0406);
}

#[test]
fn refused_writes_touch_nothing() {
    let mut f = models::edu();
    let p = policy_of(&mut f);
    f.log.clear();
    for (off, size) in [(0x10, 4), (0x04, 4), (0x3c, 1), (0x42, 2), (0x100, 4)] {
        assert_eq!(
            p.write_through(&mut f, access(off, size), u32::MAX),
            Err(Error::AccessDenied)
        );
    }
    assert!(f.log.is_empty());
    // Allowed ones are made as asked, truncated to their width.
    p.write_through(&mut f, access(0x50, 2), 0x1234_5678)
        .unwrap();
    assert_eq!(
        f.log,
        [Op::Write {
            offset: 0x50,
            width: 2,
            value: 0x5678
        }]
    );
    assert_eq!(p.read_through(&mut f, access(0x10, 4)), Ok(0xfea0_0000));
}

//! Whole functions: probing, describing and claiming the model devices,
//! and the functions that are refused (absent, bridges, changing under
//! the probe, refusing to stop mastering the bus).

use super::config::reg;
use super::fake::{self, FakeFunction, assert_restored};
use super::models::{self, EDU_DEVICE, EDU_VENDOR, VIRTIO_NET_MODERN, VIRTIO_VENDOR};
use super::*;

#[test]
fn probe_edu_and_virtio() {
    let h = probe(&mut models::edu()).unwrap();
    assert_eq!(
        h,
        Header {
            vendor: EDU_VENDOR,
            device: EDU_DEVICE,
            revision: 0x10,
            prog_if: 0,
            subclass: 0,
            class: 0xff,
            header_type: 0,
            multifunction: false,
            has_capabilities: true,
            interrupt_pin: Some(1),
            interrupt_line: 11,
            subsystem: Some((0x1af4, 0x1100)),
        }
    );
    let h = probe_endpoint(&mut models::virtio_net()).unwrap();
    assert_eq!((h.vendor, h.device), (VIRTIO_VENDOR, VIRTIO_NET_MODERN));
    assert_eq!((h.class, h.subclass, h.revision), (0x02, 0x00, 0x01));
}

#[test]
fn absent_functions_are_not_found() {
    for vendor in [0xffff, 0x0000] {
        let mut f = FakeFunction::empty();
        f.set16(reg::VENDOR_ID, vendor);
        assert_eq!(probe(&mut f), Err(PciError::Absent));
        assert_eq!(describe(&mut f), Err(PciError::Absent));
        assert_eq!(abi::Error::from(PciError::Absent), abi::Error::NotFound);
    }
}

#[test]
fn bridges_are_described_but_not_claimable() {
    for ty in [0x01, 0x81, 0x02, 0x7f] {
        let mut f = FakeFunction::endpoint(0x8086, 0x29c1);
        f.class(0x06, 0x04, 0x00, 0x02);
        f.set8(reg::HEADER_TYPE, ty);
        let h = probe(&mut f).unwrap();
        assert_eq!(
            (h.header_type, h.multifunction),
            (ty & 0x7f, ty & 0x80 != 0)
        );
        assert_eq!(h.subsystem, None);
        let e = PciError::NotEndpoint {
            header_type: ty & 0x7f,
        };
        assert_eq!(probe_endpoint(&mut f), Err(e));
        assert_eq!(describe(&mut f), Err(e));
        assert_eq!(e.error(), abi::Error::NotSupported);
    }
}

#[test]
fn probe_reports_the_multifunction_bit_and_reserved_pins() {
    let mut f = models::edu();
    f.set8(reg::HEADER_TYPE, 0x80);
    f.set8(reg::INTERRUPT + 1, 5);
    let h = probe_endpoint(&mut f).unwrap();
    assert!(h.multifunction && h.is_endpoint());
    assert_eq!(h.interrupt_pin, None);
}

#[test]
fn a_function_that_changes_under_probe_is_unstable() {
    let mut f = models::edu();
    f.glitches.push(fake::Glitch {
        offset: 0,
        width: 4,
        from: 1,
        xor: 0xffff,
    });
    assert_eq!(probe(&mut f), Err(PciError::Unstable { offset: 0 }));
}

#[test]
fn describe_and_claim_edu() {
    let mut f = models::edu();
    let func = describe(&mut f).unwrap();
    assert_eq!(func.bars.len(), 1);
    assert_eq!(func.caps.msi.unwrap().vectors, 1);
    assert_restored(&f.log);
    assert_eq!(f.writes_while_decoding, 0);
    // The kernel's claim: memory decode and bus mastering for this
    // function, INTx off while MSI is set up.
    let now = update_command(&mut f, |c| {
        c.with_memory_decode(true)
            .with_bus_master(true)
            .with_intx_disabled(true)
    })
    .unwrap();
    assert_eq!(now.bits(), 0x0406);
    assert_eq!(f.peek(reg::COMMAND, 2), 0x0406);
    // Release: bus mastering off first.
    let now = update_command(&mut f, |c| c.with_bus_master(false)).unwrap();
    assert_eq!(now.bits(), 0x0402);
}

#[test]
fn a_device_that_refuses_bus_mastering_off_is_unstable() {
    let mut f = models::edu();
    f.set16(reg::COMMAND, 0x0006);
    f.set_writable(reg::COMMAND, 2, 0x0543); // bus master stuck on
    assert_eq!(
        update_command(&mut f, |c| c.with_bus_master(false)),
        Err(PciError::Unstable {
            offset: reg::COMMAND
        })
    );
    // Read-only bits the kernel does not own are not checked.
    let mut f = models::edu();
    f.set_writable(reg::COMMAND, 2, 0x0007); // no INTx disable
    assert_eq!(
        update_command(&mut f, |c| c.with_intx_disabled(true))
            .unwrap()
            .bits(),
        0x0002
    );
}

#[test]
fn describe_virtio() {
    let mut f = models::virtio_net();
    let func = describe(&mut f).unwrap();
    assert_eq!(func.bars.len(), 2);
    assert_eq!(func.caps.msix.unwrap().table_size, 3);
    assert_eq!(func.caps.vendor().count(), 5);
    assert_restored(&f.log);
    assert_eq!(f.peek(reg::COMMAND, 2), 0x0006);
}

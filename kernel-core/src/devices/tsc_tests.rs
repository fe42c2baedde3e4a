//! The system's TSC rate through platform (`PLATFORM_PORT_TSC_HZ`) on the
//! fake machine: the boot estimate until a plausible measurement replaces
//! it, which the log records; implausible ones and wrong sizes refused.

use super::kdev::platform::tsc_rate_plausible;
use super::pci_tests::{machine, port_in, port_out};
use crate::fake::{self, FAKE_TSC_BOOT_HZ};
use abi::Error;
use abi::kdev::PLATFORM_PORT_TSC_HZ;

#[test]
fn a_rate_is_plausible_within_a_factor_of_two_of_the_estimate() {
    let boot = 2_000_000_000;
    assert!(tsc_rate_plausible(boot, 1_995_784_000));
    assert!(tsc_rate_plausible(boot, boot / 2));
    assert!(tsc_rate_plausible(boot, boot * 2));
    assert!(!tsc_rate_plausible(boot, boot / 2 - 1));
    assert!(!tsc_rate_plausible(boot, boot * 2 + 1));
    assert!(!tsc_rate_plausible(boot, 0));
    assert!(!tsc_rate_plausible(boot, u64::MAX));
    // No estimate (assumed at boot): anything a CPU could run at.
    assert!(tsc_rate_plausible(0, 1_000_000));
    assert!(tsc_rate_plausible(0, 1_000_000_000_000));
    assert!(!tsc_rate_plausible(0, 999_999));
    assert!(!tsc_rate_plausible(0, 0));
}

#[test]
fn a_measured_rate_replaces_the_estimate_and_is_logged() {
    let (mut k, plat) = machine(false);
    assert_eq!(
        port_in(&mut k, plat, PLATFORM_PORT_TSC_HZ, 8),
        Ok(FAKE_TSC_BOOT_HZ)
    );
    let measured = 1_995_784_123;
    assert_eq!(
        port_out(&mut k, plat, PLATFORM_PORT_TSC_HZ, 8, measured),
        Ok(())
    );
    assert_eq!(
        port_in(&mut k, plat, PLATFORM_PORT_TSC_HZ, 8),
        Ok(1_995_784_000)
    );
    let log = fake::with(|s| String::from_utf8_lossy(&s.log).into_owned());
    assert!(
        log.contains("[kernel] TSC rate: 1995784 kHz from now on, measured by a system server (the kernel's own estimate was 2000000 kHz)"),
        "{log}"
    );
}

#[test]
fn implausible_rates_and_wrong_sizes_are_refused_and_change_nothing() {
    let (mut k, plat) = machine(false);
    for bad in [0, 1, FAKE_TSC_BOOT_HZ * 3, u64::MAX] {
        assert_eq!(
            port_out(&mut k, plat, PLATFORM_PORT_TSC_HZ, 8, bad),
            Err(Error::InvalidArgument),
            "{bad}"
        );
    }
    assert_eq!(
        port_out(&mut k, plat, PLATFORM_PORT_TSC_HZ, 4, FAKE_TSC_BOOT_HZ),
        Err(Error::InvalidArgument)
    );
    assert_eq!(
        port_in(&mut k, plat, PLATFORM_PORT_TSC_HZ, 8),
        Ok(FAKE_TSC_BOOT_HZ)
    );
}

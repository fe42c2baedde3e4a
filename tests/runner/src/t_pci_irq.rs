//! Interrupts of claimed PCI functions, driven with QEMU's edu (see
//! `t_pci`): DMA faults reported to the driver, MSI delivered to the
//! line's owner on the CPU it is bound to, and the interrupt window (0xFEEx_xxxx) a hostile driver
//! aims its device at.

use crate::suite::{Fail, Suite};
use crate::t_pci::*;
use crate::{ensure, ensure_eq};
use abi::Error;
use libmh::dev::{self, REGISTRY};
use libmh::pci::Function;
use libmh::process;

pub fn run(s: &mut Suite) {
    s.run("an_msi_goes_to_the_cpu_its_driver_is_bound_to", || {
        let moved = msi_follows_the_binding();
        // Whatever happened, the runner is free to run anywhere again.
        let _ = process::set_affinity(0, 0);
        moved
    });
    s.run("dma_faults_are_reported_to_the_driver", || {
        let e = Edu::open()?;
        let f = Function(e.h);
        let b = buffers(0, 1, 0x42)?;
        let ib = e.h.export(b).map_err(fail)?;
        ensure_eq!(
            e.h.irq_map(abi::hw::HW_LINE_DMA_FAULT, FAULT_VECTOR),
            Ok(())
        );
        let before = f.dma_faults().map_err(fail)?;
        // A write to an iova nothing is mapped at.
        let target = ib + 40 * PAGE;
        e.copy(ib, target + 0x10)?;
        let got = process::irq_wait(1 << FAULT_VECTOR).map_err(fail)?;
        ensure_eq!(got & (1 << FAULT_VECTOR), 1 << FAULT_VECTOR);
        ensure!(f.dma_faults().map_err(fail)? > before, "no fault counted");
        let newest = f.dma_fault(0).map_err(fail)?;
        let Some((iova, reason, write)) = newest else {
            return Err(Fail::new(format_args!("no fault record")));
        };
        ensure_eq!((iova, write), (target, true));
        ensure!(reason != 0, "no reason");
        // A read of one: the newest record says read.
        e.copy(target, ib)?;
        let newest = f.dma_fault(0).map_err(fail)?.map(|(i, _, w)| (i, w));
        ensure_eq!(newest, Some((target, false)));
        ensure_eq!(
            f.dma_fault(abi::hw::HW_DMA_FAULT_RECORDS),
            Err(Error::InvalidArgument)
        );
        // Only one handle hears the faults.
        let other = dev::attach(REGISTRY, EDU, ALL).map_err(fail)?;
        ensure_eq!(
            other.irq_map(abi::hw::HW_LINE_DMA_FAULT, FAULT_VECTOR),
            Err(Error::Busy)
        );
        ensure_eq!(other.detach(), Ok(()));
        ensure_eq!(e.h.unexport(ib), Ok(()));
        unmap(0, 1)?;
        e.close()
    });

    s.run("msi_is_delivered_to_the_line_owner", || {
        let e = Edu::open()?;
        let f = Function(e.h);
        ensure_eq!(e.h.info().map(|i| i.irq_lines), Ok(1));
        ensure_eq!(e.h.irq_map(1, MSI_VECTOR), Err(Error::InvalidArgument));
        ensure_eq!(e.h.irq_ack(0), Err(Error::NotFound));
        ensure_eq!(e.h.irq_map(0, MSI_VECTOR), Ok(()));
        // The kernel programmed and enabled edu's MSI capability (at
        // 0x40): an address in the interrupt window.
        let control = f.config_read(0x42, 2).map_err(fail)?;
        let address = f.config_read(0x44, 4).map_err(fail)?;
        ensure!(
            control & 1 == 1 && address >> 20 == 0xfee,
            "MSI control {control:#x} address {address:#x}"
        );
        let other = dev::attach(REGISTRY, EDU, ALL).map_err(fail)?;
        ensure_eq!(other.irq_map(0, MSI_VECTOR), Err(Error::Busy));
        ensure_eq!(other.irq_ack(0), Err(Error::NotFound));
        for round in 0..3u32 {
            // SAFETY: REGS maps edu's registers: 0x60 raises its
            // interrupt, 0x64 acknowledges it.
            unsafe { reg32(0x60).write_volatile(1 << round) };
            let got = process::irq_wait(1 << MSI_VECTOR).map_err(fail)?;
            ensure_eq!(got, 1 << MSI_VECTOR);
            // SAFETY: as above.
            unsafe { reg32(0x64).write_volatile(1 << round) };
            ensure_eq!(e.h.irq_ack(0), Ok(()));
        }
        // The owner's handle gone, the message is off.
        e.close()?;
        let f = Function(other);
        ensure_eq!(f.config_read(0x42, 2).map(|c| c & 1), Ok(0));
        ensure_eq!(other.detach(), Ok(()));
        Ok(())
    });

    s.run(
        "a_driver_cannot_forge_interrupts_through_absent_entries",
        || {
            let e = Edu::open()?;
            let f = Function(e.h);
            ensure_eq!(e.h.irq_map(0, MSI_VECTOR), Ok(()));
            let address = f.config_read(0x44, 4).map_err(fail)?;
            ensure!(
                address & 0x10 != 0,
                "edu's message {address:#x} is not remapped"
            );
            let own = (address >> 5) & 0x7fff;
            let zeros = buffers(0, 1, 0)?;
            zeros.fill(0);
            let iz = e.h.export(zeros).map_err(fail)?;
            e.dma(iz, EDU_BUFFER, 4, false)?;
            let forge = |handle: u32| {
                e.dma(
                    EDU_BUFFER,
                    0xfee0_0000 | u64::from(handle) << 5 | 0x18,
                    4,
                    true,
                )
            };
            // The path works: a DMA write of edu's own message raises its own
            // vector (so the refusals below are the kernel's tables at work).
            forge(own)?;
            ensure_eq!(process::irq_wait(1 << MSI_VECTOR), Ok(1 << MSI_VECTOR));
            // Entries no one was given are not present: nothing arrives. Then
            // a real interrupt of edu's shows only its own vector was raised.
            for handle in [own + 1, own + 7, 200, 255, 256, 0x7fff] {
                forge(handle)?;
            }
            // SAFETY: REGS maps edu's registers (0x60 raises, 0x64 acks).
            unsafe { reg32(0x60).write_volatile(1) };
            let got = process::irq_wait(1 << MSI_VECTOR | 1 << FORGED_VECTOR).map_err(fail)?;
            // SAFETY: as above.
            unsafe { reg32(0x64).write_volatile(1) };
            ensure_eq!(got, 1 << MSI_VECTOR);
            ensure_eq!(e.h.unexport(iz), Ok(()));
            unmap(0, 1)?;
            e.close()
        },
    );
}

/// Binds the runner to the last CPU, maps edu's line there, then to CPU
/// 0 and maps it again: each time the kernel says where the line goes and
/// the interrupt is taken on that CPU. On one CPU both are CPU 0.
fn msi_follows_the_binding() -> crate::suite::TestResult {
    use abi::hw::{HW_IRQ_NO_CPU, HW_PORT_IRQ_CPU, HW_PORT_IRQ_LAST_CPU};
    let (_, cpus) = process::cpu();
    let last = cpus.saturating_sub(1);
    let e = Edu::open()?;
    ensure_eq!(e.h.port_in(HW_PORT_IRQ_CPU, 8), Ok(HW_IRQ_NO_CPU));
    ensure_eq!(
        e.h.port_in(HW_PORT_IRQ_CPU + 8, 8),
        Err(Error::InvalidArgument)
    );
    ensure_eq!(
        e.h.port_in(HW_PORT_IRQ_CPU + 4, 8),
        Err(Error::InvalidArgument)
    );
    for (round, cpu) in [last, 0].into_iter().enumerate() {
        ensure_eq!(process::set_affinity(0, 1 << cpu), Ok(()));
        ensure_eq!(e.h.irq_map(0, MSI_VECTOR), Ok(()));
        ensure_eq!(e.h.port_in(HW_PORT_IRQ_CPU, 8), Ok(u64::from(cpu)));
        if round == 0 {
            ensure_eq!(e.h.port_in(HW_PORT_IRQ_LAST_CPU, 8), Ok(HW_IRQ_NO_CPU));
        }
        // SAFETY: REGS maps edu's registers: 0x60 raises its interrupt,
        // 0x64 acknowledges it.
        unsafe { reg32(0x60).write_volatile(1) };
        ensure_eq!(process::irq_wait(1 << MSI_VECTOR), Ok(1 << MSI_VECTOR));
        // SAFETY: as above.
        unsafe { reg32(0x64).write_volatile(1) };
        ensure_eq!(e.h.irq_ack(0), Ok(()));
        ensure_eq!(e.h.port_in(HW_PORT_IRQ_LAST_CPU, 8), Ok(u64::from(cpu)));
    }
    e.close()
}

//! The 16550 UART at COM1, claimed from the platform as a hardware device
//! and driven with the `uart_16550` crate through a backend whose register
//! accesses are `port_in`/`port_out` system calls on that device.
//!
//! Rules: the kernel checks every access against the device's port range,
//! so a wrong offset is an error from the kernel, never a stray port
//! write; sending waits for the transmitter (polling), so a write is on
//! the line when `send` returns.

use abi::HwDeviceSpec;
use abi::hw::{HW_IRQ_ISA, HwIrq, HwPortRange};
use libmh::Error;
use libmh::dev::{self, Handle, REGISTRY};
use uart_16550::backend::Backend;
use uart_16550::spec::registers::{FifoTriggerLevel, IER};
use uart_16550::{Config, Uart16550};

/// COM1's first port, its ports, and its ISA interrupt (IRQ 4: the kernel
/// routes it where the firmware's MADT says, GSI 4 on QEMU's boards).
const COM1_BASE: u16 = 0x3f8;
const COM1_PORTS: u16 = 8;
const COM1_ISA_IRQ: u32 = 4;
/// The name the hardware device is registered under.
pub const HW_NAME: &str = "com1";

/// Register access through the hardware device's ports.
pub struct SyscallPorts(Handle);

impl Backend for SyscallPorts {
    unsafe fn read(&mut self, register_offset: u8) -> u8 {
        // A failed read (which the kernel's range check makes impossible
        // for offsets 0..8) reads as 0: no data, nothing ready.
        self.0
            .port_in(u32::from(COM1_BASE) + u32::from(register_offset), 1)
            .unwrap_or(0) as u8
    }

    unsafe fn write(&mut self, register_offset: u8, value: u8) {
        let _ = self.0.port_out(
            u32::from(COM1_BASE) + u32::from(register_offset),
            1,
            u64::from(value),
        );
    }
}

pub struct Uart {
    dev: Handle,
    uart: Uart16550<SyscallPorts>,
}

impl Uart {
    /// Claims COM1 (or attaches the claim an earlier console left), sets
    /// the UART up with receive interrupts, and delivers them as `vector`.
    /// From the claim on, the kernel stops writing to the UART itself.
    pub fn claim(vector: u32) -> Result<Uart, Error> {
        match dev::attach(
            REGISTRY,
            HW_NAME,
            dev::RIGHT_READ | dev::RIGHT_WRITE | dev::RIGHT_IRQ,
        ) {
            Ok(h) => return Uart::start(h, vector),
            Err(Error::NotFound) => {}
            Err(e) => return Err(e),
        }
        let platform = dev::attach(
            REGISTRY,
            "platform",
            dev::RIGHT_READ | dev::RIGHT_WRITE | dev::RIGHT_DMA,
        )?;
        let mut spec = HwDeviceSpec {
            name_len: HW_NAME.len() as u32,
            port_count: 1,
            irq_count: 1,
            ..HwDeviceSpec::default()
        };
        spec.name[..HW_NAME.len()].copy_from_slice(HW_NAME.as_bytes());
        spec.ports[0] = HwPortRange {
            base: COM1_BASE,
            len: COM1_PORTS,
        };
        spec.irqs[0] = HwIrq {
            gsi: COM1_ISA_IRQ,
            flags: HW_IRQ_ISA,
        };
        let made = dev::create_hardware(platform, &spec);
        let _ = platform.detach();
        made?;
        let h = dev::attach(
            REGISTRY,
            HW_NAME,
            dev::RIGHT_READ | dev::RIGHT_WRITE | dev::RIGHT_IRQ,
        )?;
        Uart::start(h, vector)
    }

    fn start(dev: Handle, vector: u32) -> Result<Uart, Error> {
        // SAFETY: the backend reaches exactly COM1's eight registers, which
        // this process's hardware device holds.
        let mut uart = unsafe { Uart16550::new_with_backend(SyscallPorts(dev)) };
        let config = Config {
            interrupts: IER::DATA_READY,
            fifo_trigger_level: Some(FifoTriggerLevel::One),
            ..Config::DEFAULT
        };
        uart.init(config).map_err(|_| Error::NotSupported)?;
        dev.irq_map(0, vector)?;
        Ok(Uart { dev, uart })
    }

    /// Writes all of `bytes`, turning "\n" into "\r\n" for terminals.
    pub fn send(&mut self, bytes: &[u8]) {
        for line in bytes.split_inclusive(|&b| b == b'\n') {
            match line.strip_suffix(b"\n") {
                Some(text) => {
                    self.uart.send_bytes_exact(text);
                    self.uart.send_bytes_exact(b"\r\n");
                }
                None => self.uart.send_bytes_exact(line),
            }
        }
    }

    /// The next received byte, if any.
    pub fn receive(&mut self) -> Option<u8> {
        self.uart.try_receive_byte().ok()
    }

    /// Acknowledges the interrupt line (edge-triggered: a no-op the kernel
    /// accepts, kept so a level-triggered setup would work too).
    pub fn ack(&mut self) {
        let _ = self.dev.irq_ack(0);
    }
}

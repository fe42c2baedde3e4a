//! virtio-blk: the disk driver. It finds the first modern virtio-blk PCI
//! function (1af4:1042), claims it through `platform` as the hardware
//! device `disk0-pci` (or attaches the claim a previous instance left),
//! drives it with a virtio layer of its own (`transport`, `queue`,
//! `device`), and serves the `disk0` user device (`abi::disk`,
//! docs/devices/disk.md; the request handling is in `disk`).
//!
//! Start-up order, which is what makes a restart after a crash safe:
//! register `disk0` first (a second driver stops there, before it could
//! touch the device under the first), then reset the device — so that it
//! no longer uses anything a dead predecessor gave it — then release the
//! quarantine the kernel kept for that predecessor's exports, and only then
//! export the new driver's own memory and set the device up.
//!
//! Completions are taken by the queue's MSI-X interrupt when the kernel
//! gives the function interrupt lines and the timer device is there for
//! the watchdog, and by polling the used ring otherwise (`wait::Mode`).
//!
//! Exit statuses: 2 a bad argument, 3 no virtio-blk function (or it cannot
//! be claimed), 4 `disk0` cannot be registered, 5 the device cannot be set
//! up (or set up again after it failed).
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

mod arena;
mod device;
mod disk;
mod wait;

use abi::Error;
use abi::disk::{DISK_FLAG_FLUSH, DISK_IOSPACE_SIZE, DISK_IRQ_LINES};
use device::Blk;
use libmh::dev::{self, Handle, REGISTRY};
use libmh::pci::Function;
use libmh::timer::Timer;
use libmh::{Args, println};
use libvirtio::{NO_VECTOR, Transport};
use wait::{Mode, V_DEVICE, V_FAULT, V_TIMER_REPLY, V_WATCHDOG};

/// The user device this driver serves.
pub const DISK_NAME: &str = "disk0";
/// The same disk for clients that may only read: the authority to write
/// is which of the two names a program may attach (its name scope).
pub const DISK_RO_NAME: &str = "disk0-ro";
/// The hardware device its PCI function becomes.
pub const HW_NAME: &str = "disk0-pci";
/// virtio's modern (non-transitional) block device.
const VIRTIO_BLK_MODERN: u16 = 0x1042;
/// Raised when a request is queued on `disk0`, and on `disk0-ro`.
const V_REQUEST: u32 = 1;
const V_REQUEST_RO: u32 = 6;

libmh::entry!(main);

fn main(args: Args) -> i32 {
    if let Some(word) = args.iter().next() {
        println!("virtio-blk: unknown argument '{word}' (it takes none)");
        return 2;
    }
    let dev = match dev::create(
        REGISTRY,
        DISK_NAME,
        DISK_IRQ_LINES,
        DISK_IOSPACE_SIZE,
        V_REQUEST,
    ) {
        Ok(d) => d,
        Err(e) => {
            println!("virtio-blk: cannot register '{DISK_NAME}': {e}");
            return 4;
        }
    };
    let (hw, platform) = match libvirtio::claim("virtio-blk", HW_NAME, VIRTIO_BLK_MODERN) {
        Ok(x) => x,
        Err(e) => {
            println!("virtio-blk: no virtio-blk function to drive: {e}");
            return 3;
        }
    };
    let mut disk = match start(hw, platform) {
        Ok(d) => d,
        Err(e) => {
            println!("virtio-blk: cannot set the device up: {e}");
            return disk::EXIT_DEVICE_LOST;
        }
    };
    disk.read_serial();
    // The read-only face: a driver whose scope does not allow the name
    // serves the read-write one only.
    let mut devices = [(dev, V_REQUEST), (dev, V_REQUEST_RO)];
    let mut count = 1;
    match dev::create(
        REGISTRY,
        DISK_RO_NAME,
        DISK_IRQ_LINES,
        DISK_IOSPACE_SIZE,
        V_REQUEST_RO,
    ) {
        Ok(ro) => {
            disk.set_read_only(ro);
            devices[1].0 = ro;
            count = 2;
        }
        Err(e) => println!("virtio-blk: '{DISK_RO_NAME}' not served: {e}"),
    }
    let extra = disk_vectors(&disk);
    match libmh::server::serve_many(&devices[..count], extra, &mut disk) {
        Ok(code) => code,
        Err(e) => {
            println!("virtio-blk: stopped: {e}");
            1
        }
    }
}

fn disk_vectors(disk: &disk::Disk) -> u64 {
    disk.mode_vectors() | 1 << V_FAULT
}

/// Reset, quarantine release, interrupts, and the device's set-up.
fn start(hw: Handle, platform: Handle) -> Result<disk::Disk, Error> {
    let f = Function(hw);
    let t = Transport::open("virtio-blk", f)?;
    // Before anything of this driver's is exported: the device stops using
    // what a dead predecessor gave it, and only then may the kernel reuse
    // the iovas (or frames) it kept for that.
    t.reset()?;
    dev::release_quarantine(platform, HW_NAME)?;
    let _ = platform.detach();
    // Completions come by MSI-X or by polling, never by INTx: a level line
    // nobody acknowledges would only disturb whoever shares it.
    let command = f.config_read(4, 2)?;
    f.config_write(4, 2, command | 0x400)?;
    let mut mode = interrupt_mode(hw).unwrap_or(Mode::Poll);
    let vector = if mode.interrupts() { 0 } else { NO_VECTOR };
    let (blk, taken) = Blk::start(hw, t, vector)?;
    if mode.interrupts() && !taken {
        println!("virtio-blk: the device refused MSI-X vector 0; polling");
        mode = Mode::Poll;
    }
    // Faults are worth a line in the log; not having the line is not fatal.
    let _ = hw.irq_map(abi::hw::HW_LINE_DMA_FAULT, V_FAULT);
    let g = blk.geo;
    println!(
        "virtio-blk: {} sectors of {} bytes ({} KiB){}, {} slots of {} KiB, {}; serving '{DISK_NAME}'",
        g.capacity,
        g.sector_size,
        g.capacity * g.sector_size / 1024,
        if g.flags & DISK_FLAG_FLUSH != 0 {
            ", write cache"
        } else {
            ""
        },
        g.slots,
        g.transfer_max / 1024,
        if mode.interrupts() {
            "interrupts"
        } else {
            "polling"
        },
    );
    Ok(disk::Disk::new(f, blk, mode, V_REQUEST))
}

/// Interrupt mode, if the function has a line the kernel maps and the
/// timer is there for the watchdog.
fn interrupt_mode(hw: Handle) -> Option<Mode> {
    if hw.info().ok()?.irq_lines == 0 {
        return None;
    }
    hw.irq_map(0, V_DEVICE).ok()?;
    let timer = Timer::open(V_TIMER_REPLY, V_WATCHDOG).ok()?;
    Some(Mode::Interrupt { timer, armed: None })
}

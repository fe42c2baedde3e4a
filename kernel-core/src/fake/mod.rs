//! A fake machine for host tests of the kernel's objects: frames with
//! real contents and reference counts, address spaces on the real
//! `PageTree`, registers, a log, ports, interrupt routing, a clock and a
//! preemption flag, all in thread-local state, so tests run in parallel,
//! each on a machine of its own.
//!
//! Rules: test-only; everything the kernel does to the machine is
//! observable here (`with`), so tests check frames conserved, the log, the
//! installed frame and the active space; a frame limit makes allocation
//! fail on demand.
//!
//! This file holds the machine's state (`State`, one per thread, reached
//! through `with`), the boot modules and a tiny ELF image for tests to
//! boot; `machine` implements the kernel's `Machine` trait on it, `space`
//! the address spaces (the real `PageTree` over per-space tables) and
//! `registers` the saved user registers.

mod machine;
pub mod pci;
mod registers;
mod space;

pub use self::registers::FakeFrame;
pub use self::space::{FakeSpace, PfnHasher, TablesOf, WalkError};
use crate::machine::Module;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

const PAGE: usize = 4096;
/// The TSC rate the fake kernel "measured" at boot: 2 GHz.
pub const FAKE_TSC_BOOT_HZ: u64 = 2_000_000_000;

/// The fake machine.
pub struct Fake;

/// One frame: its references and bytes.
struct FrameData {
    refs: u32,
    bytes: Box<[u8; PAGE]>,
}

/// Everything the fake machine holds.
pub struct State {
    frames: BTreeMap<u64, FrameData>,
    /// References to every frame together (kept as they change, so a
    /// model test can check conservation after every step cheaply).
    refs: u64,
    /// The frames whose references changed since `take_dirty` (`None`:
    /// too many to list, no one having asked).
    dirty: Option<Vec<u64>>,
    free: Vec<u64>,
    next_pfn: u64,
    /// Low frames left behind by `new_frames_from`, for `alloc_frame_below`.
    low_next: u64,
    low_end: u64,
    /// `alloc_frame_below` finds nothing (as if low memory were all used).
    pub refuse_below: bool,
    /// Frames the machine has (allocated + free).
    pub total: u64,
    pub log: Vec<u8>,
    pub log_grew: bool,
    pub now: u64,
    pub ticks: u64,
    /// The TSC rate the kernel converts with (`Machine::tsc_hz`).
    pub tsc_hz: u64,
    /// Whether a tick is pending (long calls stop at it).
    pub preempt: bool,
    pub ports: HashMap<u16, u64>,
    pub routes: HashMap<u32, (bool, bool, bool)>,
    /// The frame `install` made current, and the space's root.
    pub installed: Option<(usize, Option<u64>)>,
    pub active_root: Option<u64>,
    pub powered_off: Option<u8>,
    pub serial_stopped: bool,
    pub modules: &'static [Module],
    /// PCI functions, by address.
    pub pci: HashMap<crate::acpi::PciFunction, crate::pci::fake::FakeFunction>,
    /// The I/O MMU, if the test installed one.
    pub iommu: Option<pci::FakeIommu>,
    /// Device memory the kernel wrote (MSI-X tables), by address.
    pub mmio: HashMap<u64, u32>,
    /// The CPU each line was last routed to: I/O APIC lines by GSI, and
    /// messages by the kernel's MSI slot.
    pub irq_cpus: HashMap<u32, usize>,
    pub msi_cpus: HashMap<u8, usize>,
    /// Messages routed, by (function, slot): the remapping handle.
    pub msi_routes: HashMap<(crate::acpi::PciFunction, u8), u16>,
    /// Remapping handles the machine has (so that running out is
    /// testable).
    pub msi_handles: u16,
    /// The CPU the kernel code runs on (tests of several CPUs switch it).
    pub cpu: usize,
    /// CPUs kicked and evicted, in order.
    pub kicks: Vec<usize>,
    pub evictions: Vec<usize>,
}

impl State {
    fn new(total: u64) -> State {
        State {
            frames: BTreeMap::new(),
            refs: 0,
            dirty: Some(Vec::new()),
            free: Vec::new(),
            next_pfn: 0x100,
            low_next: 0,
            low_end: 0,
            refuse_below: false,
            total,
            log: Vec::new(),
            log_grew: false,
            now: 0,
            ticks: 0,
            tsc_hz: FAKE_TSC_BOOT_HZ,
            preempt: false,
            ports: HashMap::new(),
            routes: HashMap::new(),
            irq_cpus: HashMap::new(),
            msi_cpus: HashMap::new(),
            installed: None,
            active_root: None,
            powered_off: None,
            serial_stopped: false,
            modules: &[],
            pci: HashMap::new(),
            iommu: None,
            mmio: HashMap::new(),
            msi_routes: HashMap::new(),
            msi_handles: 64,
            cpu: 0,
            kicks: Vec::new(),
            evictions: Vec::new(),
        }
    }

    /// Makes frames never used before come from `pfn` up (above 4 GiB,
    /// say), keeping those between for `alloc_frame_below`.
    pub fn new_frames_from(&mut self, pfn: u64) {
        self.low_next = self.next_pfn;
        self.low_end = pfn;
        self.next_pfn = pfn;
    }

    /// Records frame `pfn` as newly allocated, zeroed, with one reference.
    fn take(&mut self, pfn: u64) -> crate::frame::Frame {
        self.frames.insert(
            pfn,
            FrameData {
                refs: 1,
                bytes: Box::new([0; PAGE]),
            },
        );
        self.refs += 1;
        self.touched(pfn);
        crate::frame::Frame::from_pfn(pfn)
    }

    /// Frames in use (referenced).
    pub fn used(&self) -> u64 {
        self.frames.len() as u64
    }

    /// References to all frames in use, summed.
    pub fn total_refs(&self) -> u64 {
        self.refs
    }

    /// The frames whose references changed since the last call (`None`:
    /// more than this keeps a list of; any may have).
    pub fn take_dirty(&mut self) -> Option<Vec<u64>> {
        self.dirty.replace(Vec::new())
    }

    fn touched(&mut self, pfn: u64) {
        match &mut self.dirty {
            Some(d) if d.len() < 1 << 16 => d.push(pfn),
            _ => self.dirty = None,
        }
    }

    /// The references to frame `pfn` (0: free).
    pub fn refs_of(&self, pfn: u64) -> u32 {
        self.frames.get(&pfn).map_or(0, |f| f.refs)
    }

    /// Every frame in use and its references, by pfn.
    pub fn frame_refs(&self) -> impl Iterator<Item = (u64, u32)> + '_ {
        self.frames.iter().map(|(&pfn, f)| (pfn, f.refs))
    }

    /// Every frame in use: its references and contents, by pfn (to compare
    /// two machines).
    pub fn frames_copy(&self) -> Vec<(u64, u32, Box<[u8; PAGE]>)> {
        self.frames
            .iter()
            .map(|(&pfn, f)| (pfn, f.refs, f.bytes.clone()))
            .collect()
    }

    /// The log as text.
    pub fn log_text(&self) -> String {
        String::from_utf8_lossy(&self.log).into_owned()
    }

    fn frame(&mut self, pfn: u64) -> &mut FrameData {
        self.frames
            .get_mut(&pfn)
            .unwrap_or_else(|| panic!("the kernel touched frame {pfn:#x}, which it does not hold"))
    }
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State::new(1 << 16));
    /// The last `FakeSpace::id` given out (never reset: ids stay unique).
    static NEXT_SPACE: core::cell::Cell<u64> = const { core::cell::Cell::new(0) };
}

/// Runs `f` on this thread's machine.
pub fn with<R>(f: impl FnOnce(&mut State) -> R) -> R {
    STATE.with(|s| f(&mut s.borrow_mut()))
}

/// A fresh machine with `frames` frames for this thread.
pub fn reset(frames: u64) {
    STATE.with(|s| *s.borrow_mut() = State::new(frames));
}

/// Puts `image` in memory as boot modules would be, with command lines.
pub fn set_modules(modules: &[(&[u8], &str)]) {
    let mut list = Vec::new();
    for (image, cmdline) in modules {
        let pages = image.len().div_ceil(PAGE).max(1);
        let first = with(|s| {
            let first = s.next_pfn;
            s.next_pfn += pages as u64;
            for i in 0..pages {
                let mut bytes = Box::new([0u8; PAGE]);
                let at = i * PAGE;
                let n = image.len().saturating_sub(at).min(PAGE);
                bytes[..n].copy_from_slice(&image[at..at + n]);
                // Reserved for good: a reference no one drops.
                s.frames
                    .insert(first + i as u64, FrameData { refs: 1, bytes });
                s.refs += 1;
                s.total += 1;
            }
            first
        });
        list.push(Module {
            phys: first * PAGE as u64,
            len: image.len() as u64,
            cmdline: arrayvec::ArrayString::from(cmdline).expect("a short command line"),
        });
    }
    let leaked: &'static [Module] = Box::leak(list.into_boxed_slice());
    with(|s| s.modules = leaked);
}

/// What `power_off` unwinds with.
#[derive(Debug)]
pub struct PoweredOff(pub u8);

/// A minimal static x86-64 executable: one R+X segment at 0x40_0000
/// holding the headers and `code` (which the fake machine never runs).
pub fn tiny_elf(code: &[u8]) -> Vec<u8> {
    const BASE: u64 = 0x40_0000;
    let (ehdr, phdr) = (64usize, 56usize);
    let len = ehdr + phdr + code.len();
    let mut b = vec![0u8; len];
    let put = |b: &mut Vec<u8>, at: usize, v: &[u8]| b[at..at + v.len()].copy_from_slice(v);
    put(&mut b, 0, b"\x7fELF");
    b[4] = 2; // 64-bit
    b[5] = 1; // little endian
    b[6] = 1; // version
    put(&mut b, 16, &2u16.to_le_bytes()); // ET_EXEC
    put(&mut b, 18, &62u16.to_le_bytes()); // x86-64
    put(&mut b, 20, &1u32.to_le_bytes());
    put(&mut b, 24, &(BASE + (ehdr + phdr) as u64).to_le_bytes()); // entry
    put(&mut b, 32, &(ehdr as u64).to_le_bytes()); // phoff
    put(&mut b, 52, &(ehdr as u16).to_le_bytes());
    put(&mut b, 54, &(phdr as u16).to_le_bytes());
    put(&mut b, 56, &1u16.to_le_bytes()); // phnum
    let p = ehdr;
    put(&mut b, p, &1u32.to_le_bytes()); // PT_LOAD
    put(&mut b, p + 4, &5u32.to_le_bytes()); // R+X
    put(&mut b, p + 16, &BASE.to_le_bytes()); // vaddr
    put(&mut b, p + 24, &BASE.to_le_bytes()); // paddr
    put(&mut b, p + 32, &(len as u64).to_le_bytes()); // filesz
    put(&mut b, p + 40, &(len as u64).to_le_bytes()); // memsz
    put(&mut b, p + 48, &4096u64.to_le_bytes()); // align
    b[ehdr + phdr..].copy_from_slice(code);
    b
}

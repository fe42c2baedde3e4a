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

use crate::frame::Frame;
use crate::machine::{AddressSpace, Machine, Module, UserFrame};
use crate::pagetable::{ENTRIES, PageTree, TableFrames, TableMemory, USER_ROOT_SLOTS};
use crate::vm::{Codec, PageTableOps};
use abi::IntFrame;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::fmt;

const PAGE: usize = 4096;

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
    /// Frames the machine has (allocated + free).
    pub total: u64,
    pub log: Vec<u8>,
    pub log_grew: bool,
    pub now: u64,
    pub ticks: u64,
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
}

impl State {
    fn new(total: u64) -> State {
        State {
            frames: BTreeMap::new(),
            refs: 0,
            dirty: Some(Vec::new()),
            free: Vec::new(),
            next_pfn: 0x100,
            total,
            log: Vec::new(),
            log_grew: false,
            now: 0,
            ticks: 0,
            preempt: false,
            ports: HashMap::new(),
            routes: HashMap::new(),
            installed: None,
            active_root: None,
            powered_off: None,
            serial_stopped: false,
            modules: &[],
        }
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

impl Machine for Fake {
    type Space = FakeSpace;
    type Frame = FakeFrame;

    fn alloc_frame() -> Option<Frame> {
        with(|s| {
            if s.used() >= s.total {
                return None;
            }
            let pfn = s.free.pop().unwrap_or_else(|| {
                s.next_pfn += 1;
                s.next_pfn - 1
            });
            s.frames.insert(
                pfn,
                FrameData {
                    refs: 1,
                    bytes: Box::new([0; PAGE]),
                },
            );
            s.refs += 1;
            s.touched(pfn);
            Some(Frame::from_pfn(pfn))
        })
    }

    fn release_frame(frame: Frame) -> bool {
        with(|s| {
            let f = s.frame(frame.pfn());
            assert!(f.refs > 0, "frame {:#x} released twice", frame.pfn());
            f.refs -= 1;
            let last = f.refs == 0;
            s.refs -= 1;
            s.touched(frame.pfn());
            if last {
                s.frames.remove(&frame.pfn());
                s.free.push(frame.pfn());
                true
            } else {
                false
            }
        })
    }

    fn add_ref(frame: Frame) {
        with(|s| {
            s.frame(frame.pfn()).refs += 1;
            s.refs += 1;
            s.touched(frame.pfn());
        })
    }

    fn refcount(frame: Frame) -> u32 {
        with(|s| s.frames.get(&frame.pfn()).map_or(0, |f| f.refs))
    }

    fn free_frames() -> u64 {
        with(|s| s.total - s.used())
    }

    fn managed_frames() -> u64 {
        with(|s| s.total)
    }

    fn heap_frames() -> u64 {
        0
    }

    fn read_phys(addr: u64, out: &mut [u8]) {
        with(|s| {
            let mut done = 0;
            while done < out.len() {
                let at = addr as usize + done;
                let (pfn, off) = ((at / PAGE) as u64, at % PAGE);
                let n = (PAGE - off).min(out.len() - done);
                out[done..done + n].copy_from_slice(&s.frame(pfn).bytes[off..off + n]);
                done += n;
            }
        })
    }

    fn write_phys(addr: u64, data: &[u8]) {
        with(|s| {
            let mut done = 0;
            while done < data.len() {
                let at = addr as usize + done;
                let (pfn, off) = ((at / PAGE) as u64, at % PAGE);
                let n = (PAGE - off).min(data.len() - done);
                s.frame(pfn).bytes[off..off + n].copy_from_slice(&data[done..done + n]);
                done += n;
            }
        })
    }

    fn copy_phys(dst: u64, src: u64, len: usize) {
        let mut buf = vec![0u8; len];
        Self::read_phys(src, &mut buf);
        Self::write_phys(dst, &buf);
    }

    fn codec() -> Codec {
        Codec { nx: true }
    }

    fn new_space(frames: &mut impl TableFrames) -> Option<FakeSpace> {
        let root = frames.alloc_table()?;
        let id = NEXT_SPACE.with(|n| {
            n.set(n.get() + 1);
            n.get()
        });
        Some(FakeSpace {
            tree: PageTree::new(root),
            mem: TablesOf::default(),
            id,
        })
    }

    fn now() -> u64 {
        with(|s| {
            s.now += 1;
            s.now
        })
    }

    fn half_tick() -> u64 {
        1000
    }

    fn tick_hz() -> u64 {
        100
    }

    fn ticks() -> u64 {
        with(|s| s.ticks)
    }

    fn preempt_due() -> bool {
        with(|s| s.preempt)
    }

    const SERIAL_PORTS: (u32, u32) = (0x3f8, 0x400);

    fn port_read(port: u16, _size: u64) -> u64 {
        with(|s| s.ports.get(&port).copied().unwrap_or(0))
    }

    fn port_write(port: u16, _size: u64, value: u64) {
        with(|s| s.ports.insert(port, value));
    }

    fn irq_route(gsi: u32, level: bool, active_low: bool) {
        with(|s| s.routes.insert(gsi, (level, active_low, true)));
    }

    fn irq_mask(gsi: u32) {
        with(|s| {
            if let Some(r) = s.routes.get_mut(&gsi) {
                r.2 = false;
            }
        })
    }

    fn irq_unmask(gsi: u32) {
        with(|s| {
            if let Some(r) = s.routes.get_mut(&gsi) {
                r.2 = true;
            }
        })
    }

    fn log(args: fmt::Arguments<'_>) {
        Self::log_bytes(args.to_string().as_bytes())
    }

    fn log_bytes(bytes: &[u8]) {
        with(|s| {
            s.log.extend_from_slice(bytes);
            s.log_grew = true;
        })
    }

    fn log_read(pos: u64, out: &mut [u8]) -> (usize, u64, u64) {
        with(|s| {
            let pos = (pos as usize).min(s.log.len());
            let n = out.len().min(s.log.len() - pos);
            out[..n].copy_from_slice(&s.log[pos..pos + n]);
            (n, (pos + n) as u64, 0)
        })
    }

    fn log_written() -> u64 {
        with(|s| s.log.len() as u64)
    }

    const LOG_RING_SIZE: usize = 64 * 1024;

    fn log_grew() -> bool {
        with(|s| s.log_grew)
    }

    fn take_log_grew() -> bool {
        with(|s| core::mem::take(&mut s.log_grew))
    }

    fn stop_serial() {
        with(|s| s.serial_stopped = true)
    }

    fn cpu_index() -> usize {
        0
    }

    fn install(frame: *mut FakeFrame, space: Option<&FakeSpace>) {
        let root = space.map(|sp| sp.tree.root().addr());
        with(|s| {
            s.installed = Some((frame as usize, root));
            if root.is_some() {
                s.active_root = root;
            }
        })
    }

    fn leave_space() {
        with(|s| s.active_root = None)
    }

    fn exception_name(_vector: u64) -> &'static str {
        "fake exception"
    }

    fn power_off(code: u8) -> ! {
        with(|s| s.powered_off = Some(code));
        // A test that ends init catches this (see `PoweredOff`).
        std::panic::panic_any(PoweredOff(code))
    }

    fn modules() -> &'static [Module] {
        with(|s| s.modules)
    }
}

/// What `power_off` unwinds with.
#[derive(Debug)]
pub struct PoweredOff(pub u8);

/// Hashes a pfn with one multiplication: the tables' maps are looked up on
/// every entry read and written, and SipHash would cost more than the rest.
#[derive(Default)]
pub struct PfnHasher(u64);

impl std::hash::Hasher for PfnHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (n ^ self.0).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

type PfnMap<V> = HashMap<u64, V, std::hash::BuildHasherDefault<PfnHasher>>;

/// The page tables of one fake address space: pfn → entries.
#[derive(Default)]
pub struct TablesOf {
    tables: PfnMap<Box<[u64; ENTRIES]>>,
    /// Entries written so far.
    writes: u64,
}

impl TableMemory for TablesOf {
    fn read(&self, table: Frame, index: usize) -> u64 {
        self.tables.get(&table.pfn()).map_or(0, |t| t[index])
    }

    fn write(&mut self, table: Frame, index: usize, value: u64) {
        self.writes += 1;
        self.tables
            .entry(table.pfn())
            .or_insert_with(|| Box::new([0; ENTRIES]))[index] = value;
    }

    fn entries(&self, table: Frame) -> &[u64; ENTRIES] {
        static EMPTY: [u64; ENTRIES] = [0; ENTRIES];
        self.tables.get(&table.pfn()).map_or(&EMPTY, |t| t)
    }
}

/// A fake address space: the real `PageTree` over per-space tables.
pub struct FakeSpace {
    tree: PageTree,
    mem: TablesOf,
    /// Which space this is (unique on this thread).
    id: u64,
}

impl PageTableOps for FakeSpace {
    fn entry(&mut self, va: u64) -> u64 {
        self.tree.entry(&self.mem, va)
    }

    fn prepare(&mut self, frames: &mut impl TableFrames, va: u64) -> Result<(), abi::Error> {
        self.tree.prepare(&mut self.mem, frames, va)
    }

    fn set(&mut self, frames: &mut impl TableFrames, va: u64, pte: u64) {
        self.tree.set(&mut self.mem, frames, va, pte)
    }

    fn flush(&mut self, _va: u64) {}

    fn next_entry(&mut self, va: u64, end: u64) -> Option<u64> {
        self.tree.next_entry(&self.mem, va, end)
    }

    fn set_new(
        &mut self,
        frames: &mut impl TableFrames,
        va: u64,
        pte: u64,
    ) -> Result<(), abi::Error> {
        self.tree.set_new(&mut self.mem, frames, va, pte)
    }

    fn settle_empty(&mut self, frames: &mut impl TableFrames, va: u64) {
        self.tree.settle_empty(&mut self.mem, frames, va)
    }
}

/// What `FakeSpace::walk` found wrong in a tree's structure.
pub type WalkError = String;

impl FakeSpace {
    /// The root table's pfn.
    pub fn root_pfn(&self) -> u64 {
        self.tree.root().pfn()
    }

    /// Which space this is and how many entries its tables have had
    /// written: while both stay the same, so does everything it maps.
    pub fn version(&self) -> (u64, u64) {
        (self.id, self.mem.writes)
    }

    /// Walks the user half from the root: `table` gets every table frame
    /// linked in the tree (root included, spares not: they are unlinked),
    /// `leaf` every non-zero leaf entry with its page address. Checks on the
    /// way that a non-leaf entry is a table or 0 and, if `exhaustive`, that
    /// each table's count (kept in its parent entry) is the number of its
    /// non-zero entries; otherwise the walk of a table stops at its count.
    pub fn walk(
        &self,
        exhaustive: bool,
        table: &mut dyn FnMut(u64),
        leaf: &mut dyn FnMut(u64, u64),
    ) -> Result<(), WalkError> {
        use crate::paging::PTE_ADDR_MASK;
        const SPAN: [u64; 4] = [1 << 39, 1 << 30, 1 << 21, 1 << 12];
        const COUNT_SHIFT: u32 = 52;
        const COUNT_MASK: u64 = 0x3ff << COUNT_SHIFT;
        #[allow(clippy::too_many_arguments)]
        fn level(
            mem: &TablesOf,
            exhaustive: bool,
            pfn: u64,
            depth: usize,
            base: u64,
            count: Option<u64>,
            table: &mut dyn FnMut(u64),
            leaf: &mut dyn FnMut(u64, u64),
        ) -> Result<(), WalkError> {
            table(pfn);
            let n = if depth == 0 { USER_ROOT_SLOTS } else { ENTRIES };
            let mut used = 0u64;
            if let Some(t) = mem.tables.get(&pfn) {
                let mut i = 0;
                while i < n {
                    if !exhaustive && count == Some(used) {
                        break;
                    }
                    // Eight empty entries at a time (this runs in debug
                    // builds, often).
                    if i % 8 == 0 {
                        let c = &t[i..i + 8];
                        if c[0] | c[1] | c[2] | c[3] | c[4] | c[5] | c[6] | c[7] == 0 {
                            i += 8;
                            continue;
                        }
                    }
                    let e = t[i];
                    i += 1;
                    if e == 0 {
                        continue;
                    }
                    used += 1;
                    let va = base + (i as u64 - 1) * SPAN[depth];
                    if depth == 3 {
                        leaf(va, e);
                    } else if e & 1 != 0 && e & (1 << 7) == 0 {
                        let below = (e & COUNT_MASK) >> COUNT_SHIFT;
                        let child = (e & PTE_ADDR_MASK) >> 12;
                        level(
                            mem,
                            exhaustive,
                            child,
                            depth + 1,
                            va,
                            Some(below),
                            table,
                            leaf,
                        )?;
                    } else {
                        return Err(format!(
                            "table {pfn:#x} entry {} (level {depth}) is neither a table nor 0: {e:#x}",
                            i - 1
                        ));
                    }
                }
            }
            match count {
                Some(c) if c != used => Err(format!(
                    "table {pfn:#x} (level {depth}) counts {c} entries in its parent, holds {used}"
                )),
                _ => Ok(()),
            }
        }
        level(
            &self.mem,
            exhaustive,
            self.root_pfn(),
            0,
            0,
            None,
            table,
            leaf,
        )
    }
}

impl AddressSpace for FakeSpace {
    fn lookup(&self, va: u64) -> Option<u64> {
        let e = self.tree.entry(&self.mem, va);
        (e & 1 != 0).then_some(e)
    }

    fn fork_into(
        &mut self,
        child: &mut FakeSpace,
        child_frames: &mut impl TableFrames,
        f: &mut dyn FnMut(u64) -> Result<(u64, u64), abi::Error>,
    ) -> Result<(), abi::Error> {
        // The two spaces' tables are apart (each has its own map); copy
        // the parent's into the child's map as the tree walks.
        let mut both = Both {
            parent: &mut self.mem,
            child: &mut child.mem,
        };
        self.tree
            .fork_into(&mut both, &mut child.tree, child_frames, f)
    }

    fn destroy(mut self, frames: &mut impl TableFrames, mut leaf: impl FnMut(u64)) {
        self.tree.destroy(&mut self.mem, frames, &mut leaf)
    }

    fn table_frames(&self) -> u64 {
        self.tree.table_frames()
    }

    fn spare_tables(&self) -> u64 {
        self.tree.empty_tables(&self.mem)
    }

    fn is_active(&self) -> bool {
        with(|s| s.active_root == Some(self.tree.root().addr()))
    }

    fn activate(&self) {
        let root = self.tree.root().addr();
        with(|s| s.active_root = Some(root))
    }
}

/// Fork's view of two spaces' tables: a table is the parent's if the
/// parent's map has it, else the child's (the child's tables are new
/// frames, never in the parent's map).
struct Both<'a> {
    parent: &'a mut TablesOf,
    child: &'a mut TablesOf,
}

impl TableMemory for Both<'_> {
    fn read(&self, table: Frame, index: usize) -> u64 {
        if self.parent.tables.contains_key(&table.pfn()) {
            self.parent.read(table, index)
        } else {
            self.child.read(table, index)
        }
    }

    fn write(&mut self, table: Frame, index: usize, value: u64) {
        if self.parent.tables.contains_key(&table.pfn()) {
            self.parent.write(table, index, value)
        } else {
            self.child.write(table, index, value)
        }
    }

    fn entries(&self, table: Frame) -> &[u64; ENTRIES] {
        if self.parent.tables.contains_key(&table.pfn()) {
            self.parent.entries(table)
        } else {
            self.child.entries(table)
        }
    }
}

/// Fake saved registers: the ABI's, by name.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FakeFrame {
    pub rax: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub r10: u64,
    pub r8: u64,
    pub r9: u64,
    pub rip: u64,
    pub rsp: u64,
    pub rflags: u64,
}

impl FakeFrame {
    /// A frame making system call `number` with `args`.
    pub fn call(number: u64, args: [u64; 6]) -> FakeFrame {
        FakeFrame {
            rax: number,
            rdi: args[0],
            rsi: args[1],
            rdx: args[2],
            r10: args[3],
            r8: args[4],
            r9: args[5],
            ..FakeFrame::default()
        }
    }
}

impl UserFrame for FakeFrame {
    fn start(entry: u64, stack_top: u64, arg0: u64, arg1: u64) -> FakeFrame {
        FakeFrame {
            rip: entry,
            rsp: stack_top,
            rdi: arg0,
            rsi: arg1,
            rflags: 0x202,
            ..FakeFrame::default()
        }
    }

    fn syscall(&self) -> (u64, [u64; 6]) {
        (
            self.rax,
            [self.rdi, self.rsi, self.rdx, self.r10, self.r8, self.r9],
        )
    }

    fn result(&self) -> u64 {
        self.rax
    }

    fn set_result(&mut self, value: u64) {
        self.rax = value;
    }

    fn set_request_words(&mut self, [w0, w1, w2, w3]: [u64; 4]) {
        self.rdi = w0;
        self.rsi = w1;
        self.rdx = w2;
        self.r10 = w3;
    }

    fn back_over_syscall(&mut self) {
        self.rip -= 2;
    }

    fn pc(&self) -> u64 {
        self.rip
    }

    fn sp(&self) -> u64 {
        self.rsp
    }

    fn snapshot(&self) -> IntFrame {
        IntFrame {
            rax: self.rax,
            rdi: self.rdi,
            rsi: self.rsi,
            rdx: self.rdx,
            r10: self.r10,
            r8: self.r8,
            r9: self.r9,
            rip: self.rip,
            rsp: self.rsp,
            rflags: self.rflags,
            ..IntFrame::default()
        }
    }

    fn restore(&mut self, f: &IntFrame) {
        self.rax = f.rax;
        self.rdi = f.rdi;
        self.rsi = f.rsi;
        self.rdx = f.rdx;
        self.r10 = f.r10;
        self.r8 = f.r8;
        self.r9 = f.r9;
        self.rip = f.rip;
        self.rsp = f.rsp;
        self.rflags = (f.rflags & 0x0cd5) | 0x202;
    }

    fn enter_handler(&mut self, pc: u64, sp: u64, arg: u64) {
        self.rip = pc;
        self.rsp = sp;
        self.rdi = arg;
        self.rflags = 0x202;
    }
}

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

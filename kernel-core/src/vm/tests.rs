//! Every page-state transition, with the frame counts checked after each.

use super::codec::*;
use super::*;
use crate::frame::{FrameInfo, FrameTable};
use crate::paging::PteFlags;
use abi::vm::{PROT_EXEC, PROT_READ, PROT_WRITE, VM_ALLOW_WX};
use std::collections::{HashMap, HashSet};

pub(super) const BASE: u64 = 0x40_0000;
pub(super) const P: u64 = 4096;

/// A page table as a map, with a switch to make table creation fail.
#[derive(Default)]
pub(super) struct FakePt {
    pub(super) entries: HashMap<u64, u64>,
    pub(super) tables: HashSet<u64>,
    pub(super) fail_prepare: bool,
    flushes: usize,
}

impl PageTableOps for FakePt {
    fn entry(&mut self, va: u64) -> u64 {
        self.entries.get(&va).copied().unwrap_or(0)
    }
    fn next_entry(&mut self, va: u64, end: u64) -> Option<u64> {
        self.entries
            .iter()
            .filter(|&(&k, &e)| k >= va && k < end && e != 0)
            .map(|(&k, _)| k)
            .min()
    }
    fn prepare(&mut self, _frames: &mut impl TableFrames, va: u64) -> Result<(), Error> {
        if self.fail_prepare && !self.tables.contains(&(va >> 21)) {
            return Err(Error::OutOfMemory);
        }
        self.tables.insert(va >> 21);
        Ok(())
    }
    fn set(&mut self, _frames: &mut impl TableFrames, va: u64, pte: u64) {
        assert!(
            self.tables.contains(&(va >> 21)),
            "set without tables at {va:#x}"
        );
        if pte == 0 {
            self.entries.remove(&va);
        } else {
            self.entries.insert(va, pte);
        }
    }
    fn flush(&mut self, _va: u64) {
        self.flushes += 1;
    }
}

/// Frames from a real FrameTable, with contents.
pub(super) struct FakeFrames {
    pub(super) table: FrameTable<'static>,
    pub(super) data: HashMap<u64, Vec<u8>>,
}

impl FakeFrames {
    pub(super) fn new(n: usize) -> FakeFrames {
        let infos: &'static mut [FrameInfo] =
            Box::leak(vec![FrameInfo::RESERVED; n].into_boxed_slice());
        let mut table = FrameTable::new(infos, 0x100);
        table.free_range(Frame::from_pfn(0x100), Frame::from_pfn(0x100 + n as u64));
        FakeFrames {
            table,
            data: HashMap::new(),
        }
    }
    /// `low` frames from pfn 0x100 and `high` from 4 GiB up, in two
    /// segments; new pages come from the high one first.
    pub(super) fn split(low: u64, high: u64) -> FakeFrames {
        use crate::frame::Segment;
        let infos: &'static mut [FrameInfo] =
            Box::leak(vec![FrameInfo::RESERVED; (low + high) as usize].into_boxed_slice());
        let segs = [
            Segment {
                first_pfn: 0x100,
                frames: low,
            },
            Segment {
                first_pfn: 1 << 20,
                frames: high,
            },
        ];
        let mut table = FrameTable::with_segments(infos, &segs).unwrap();
        table.free_range(Frame::from_pfn(0), Frame::from_pfn(u64::MAX));
        FakeFrames {
            table,
            data: HashMap::new(),
        }
    }
    pub(super) fn free(&self) -> usize {
        self.table.free_count()
    }
    pub(super) fn write(&mut self, f: Frame, byte: u8) {
        self.data.insert(f.pfn(), vec![byte; 4096]);
    }
    pub(super) fn byte(&self, f: Frame) -> u8 {
        self.data.get(&f.pfn()).map_or(0, |d| d[0])
    }
}

/// The fake page table keeps its tables itself: no table frames move.
impl TableFrames for FakeFrames {
    fn alloc_table(&mut self) -> Option<Frame> {
        None
    }
    fn free_table(&mut self, _frame: Frame) {}
}

impl FrameOps for FakeFrames {
    fn alloc_zeroed(&mut self) -> Option<Frame> {
        let f = self.table.alloc()?;
        self.data.insert(f.pfn(), vec![0; 4096]);
        Some(f)
    }
    fn alloc_zeroed_below(&mut self, limit: u64) -> Option<Frame> {
        let f = self.table.alloc_below(limit)?;
        self.data.insert(f.pfn(), vec![0; 4096]);
        Some(f)
    }
    fn copy(&mut self, dst: Frame, src: Frame) {
        let d = self
            .data
            .get(&src.pfn())
            .cloned()
            .unwrap_or_else(|| vec![0; 4096]);
        self.data.insert(dst.pfn(), d);
    }
    fn add_ref(&mut self, frame: Frame) {
        self.table
            .add_ref(frame)
            .expect("add_ref on an allocated frame");
    }
    fn release(&mut self, frame: Frame) -> bool {
        self.table
            .release(frame)
            .expect("release of an allocated frame")
    }
    fn refcount(&self, frame: Frame) -> u32 {
        self.table.refcount(frame).unwrap_or(0)
    }
}

pub(super) const CODEC: Codec = Codec { nx: true };

pub(super) fn vm<'a>(pt: &'a mut FakePt, fr: &'a mut FakeFrames) -> Vm<'a, FakePt, FakeFrames> {
    Vm {
        pt,
        frames: fr,
        codec: CODEC,
    }
}

pub(super) const RW: u64 = PROT_READ | PROT_WRITE;

/// Forks `parent` into a new table the way the kernel does.
pub(super) fn fork(parent: &mut FakePt, fr: &mut FakeFrames) -> FakePt {
    let mut child = FakePt::default();
    let vas: Vec<u64> = parent.entries.keys().copied().collect();
    for va in vas {
        let entry = vm(parent, fr).fork_entry(va).unwrap();
        if let Some(pte) = entry {
            child.prepare(fr, va).unwrap();
            child.set(fr, va, pte);
        }
    }
    child
}

/// Tears an address space down the way exit does.
pub(super) fn destroy(pt: &mut FakePt, fr: &mut FakeFrames) {
    let vas: Vec<u64> = pt.entries.keys().copied().collect();
    for va in vas {
        vm(pt, fr).release(va);
    }
}

#[test]
fn prot_decoding() {
    assert_eq!(Prot::from_abi(0), Ok(Prot::NONE));
    assert_eq!(Prot::from_abi(PROT_READ), Ok(Prot::R));
    assert_eq!(Prot::from_abi(PROT_READ | PROT_EXEC), Ok(Prot::RX));
    assert_eq!(Prot::from_abi(PROT_EXEC), Ok(Prot::RX));
    assert_eq!(Prot::from_abi(RW), Ok(Prot::RW));
    assert_eq!(Prot::from_abi(PROT_WRITE), Ok(Prot::RW));
    assert_eq!(Prot::from_abi(RW | PROT_EXEC), Err(Error::InvalidArgument));
    assert_eq!(Prot::from_abi(RW | PROT_EXEC | VM_ALLOW_WX), Ok(Prot::RWX));
    assert_eq!(Prot::from_abi(8), Err(Error::InvalidArgument));
    assert_eq!(Prot::from_abi(1 << 40), Err(Error::InvalidArgument));
}

#[test]
fn codec_round_trips_every_state() {
    for nx in [true, false] {
        let codec = Codec { nx };
        let f = Frame::from_pfn(0x1234);
        for kind in [Kind::Private, Kind::Cow, Kind::Io] {
            for prot in [Prot::NONE, Prot::R, Prot::RX, Prot::RW, Prot::RWX] {
                for was_writable in [false, true] {
                    for wires in [0, 1, MAX_WIRES] {
                        let mut m = Mapping {
                            frame: f,
                            kind,
                            prot,
                            was_writable,
                            wires,
                        };
                        if !nx && m.prot.read {
                            // Without NX every readable page is executable.
                            m.prot.exec = true;
                        }
                        let pte = codec.encode(&m);
                        assert_eq!(codec.decode(pte), Some(m), "{m:?}");
                        assert_eq!(pte & PteFlags::USER.bits(), PteFlags::USER.bits());
                        if !nx {
                            assert_eq!(pte & PteFlags::NO_EXECUTE.bits(), 0);
                        }
                    }
                }
            }
        }
    }
    assert_eq!(CODEC.decode(0), None);
}

#[test]
fn map_new_gives_zeroed_private_pages_and_counts_frames() {
    let (mut pt, mut fr) = (FakePt::default(), FakeFrames::new(64));
    let before = fr.free();
    vm(&mut pt, &mut fr).map_new(BASE, 3 * P, RW).unwrap();
    assert_eq!(fr.free(), before - 3);
    for i in 0..3 {
        let m = vm(&mut pt, &mut fr).mapping(BASE + i * P).unwrap();
        assert_eq!((m.kind, m.prot, m.wires), (Kind::Private, Prot::RW, 0));
        assert_eq!(fr.refcount(m.frame), 1);
        assert_eq!(fr.byte(m.frame), 0);
    }
    vm(&mut pt, &mut fr).unmap(BASE, 3 * P).unwrap();
    assert_eq!(fr.free(), before);
    assert!(pt.entries.is_empty());
}

#[test]
fn map_new_refuses_bad_arguments_and_mapped_pages() {
    let (mut pt, mut fr) = (FakePt::default(), FakeFrames::new(16));
    let mut v = vm(&mut pt, &mut fr);
    assert_eq!(v.map_new(BASE + 1, P, RW), Err(Error::InvalidArgument));
    assert_eq!(v.map_new(BASE, 0, RW), Err(Error::InvalidArgument));
    assert_eq!(v.map_new(BASE, 100, RW), Err(Error::InvalidArgument));
    assert_eq!(v.map_new(0, P, RW), Err(Error::BadAddress));
    assert_eq!(
        v.map_new(0xffff_8000_0000_0000, P, RW),
        Err(Error::BadAddress)
    );
    assert_eq!(
        v.map_new(abi::layout::USER_END - P, 2 * P, RW),
        Err(Error::BadAddress)
    );
    assert_eq!(
        v.map_new(BASE, P, RW | PROT_EXEC),
        Err(Error::InvalidArgument)
    );
    v.map_new(BASE + P, P, RW).unwrap();
    // One page of the range is mapped: nothing happens at all.
    let free = v.frames.free();
    assert_eq!(v.map_new(BASE, 3 * P, RW), Err(Error::AlreadyExists));
    assert_eq!(v.frames.free(), free);
    assert!(v.mapping(BASE).is_none());
}

#[test]
fn map_new_rolls_back_when_frames_run_out() {
    let (mut pt, mut fr) = (FakePt::default(), FakeFrames::new(4));
    let before = fr.free();
    assert_eq!(
        vm(&mut pt, &mut fr).map_new(BASE, 8 * P, RW),
        Err(Error::OutOfMemory)
    );
    assert_eq!(fr.free(), before);
    assert!(pt.entries.is_empty());
}

#[test]
fn map_new_rolls_back_when_tables_run_out() {
    let (mut pt, mut fr) = (FakePt::default(), FakeFrames::new(16));
    let before = fr.free();
    // The range crosses into a second 2 MiB table that cannot be made.
    vm(&mut pt, &mut fr).map_new(BASE, P, RW).unwrap();
    pt.fail_prepare = true;
    let r = vm(&mut pt, &mut fr).map_new(BASE + 0x20_0000 - P, 2 * P, RW);
    assert_eq!(r, Err(Error::OutOfMemory));
    assert_eq!(fr.free(), before - 1);
    assert_eq!(pt.entries.len(), 1);
}

#[test]
fn protect_changes_rights_and_refuses_unmapped() {
    let (mut pt, mut fr) = (FakePt::default(), FakeFrames::new(16));
    let mut v = vm(&mut pt, &mut fr);
    v.map_new(BASE, 2 * P, RW).unwrap();
    v.protect(BASE, 2 * P, PROT_READ).unwrap();
    assert_eq!(v.mapping(BASE).unwrap().prot, Prot::R);
    v.protect(BASE, P, 0).unwrap();
    assert_eq!(v.mapping(BASE).unwrap().prot, Prot::NONE);
    v.protect(BASE, P, PROT_READ | PROT_EXEC).unwrap();
    assert_eq!(v.mapping(BASE).unwrap().prot, Prot::RX);
    assert_eq!(v.protect(BASE, 3 * P, PROT_READ), Err(Error::NotFound));
    assert_eq!(
        v.protect(BASE, P, RW | PROT_EXEC),
        Err(Error::InvalidArgument)
    );
    v.protect(BASE, P, RW | PROT_EXEC | VM_ALLOW_WX).unwrap();
    assert_eq!(v.mapping(BASE).unwrap().prot, Prot::RWX);
}

#[test]
fn no_access_pages_keep_their_frame() {
    let (mut pt, mut fr) = (FakePt::default(), FakeFrames::new(16));
    vm(&mut pt, &mut fr).map_new(BASE, P, RW).unwrap();
    let f = vm(&mut pt, &mut fr).mapping(BASE).unwrap().frame;
    fr.write(f, 9);
    vm(&mut pt, &mut fr).protect(BASE, P, 0).unwrap();
    assert_eq!(pt.entries[&BASE] & PteFlags::PRESENT.bits(), 0);
    assert_eq!(
        vm(&mut pt, &mut fr).fault(BASE, false, false),
        Fault::Deliver(FAULT_PRESENT)
    );
    vm(&mut pt, &mut fr).protect(BASE, P, RW).unwrap();
    let m = vm(&mut pt, &mut fr).mapping(BASE).unwrap();
    assert_eq!((m.frame, fr.byte(m.frame)), (f, 9));
}

#[test]
fn unmap_skips_holes_and_frees_frames() {
    let (mut pt, mut fr) = (FakePt::default(), FakeFrames::new(16));
    let before = fr.free();
    vm(&mut pt, &mut fr).map_new(BASE + P, P, RW).unwrap();
    vm(&mut pt, &mut fr).unmap(BASE, 4 * P).unwrap();
    assert_eq!(fr.free(), before);
    assert_eq!(
        vm(&mut pt, &mut fr).unmap(BASE, 3),
        Err(Error::InvalidArgument)
    );
}

#[test]
fn move_replaces_destination_and_frees_its_frame() {
    let (mut pt, mut fr) = (FakePt::default(), FakeFrames::new(16));
    let mut v = vm(&mut pt, &mut fr);
    v.map_new(BASE, P, RW).unwrap();
    v.map_new(BASE + 0x10_0000, P, PROT_READ).unwrap();
    let src_frame = v.mapping(BASE + 0x10_0000).unwrap().frame;
    let free = v.frames.free();
    v.move_pages(BASE, BASE + 0x10_0000, P).unwrap();
    assert_eq!(v.frames.free(), free + 1);
    let m = v.mapping(BASE).unwrap();
    assert_eq!((m.frame, m.prot), (src_frame, Prot::R));
    assert!(v.mapping(BASE + 0x10_0000).is_none());
    assert_eq!(v.frames.refcount(src_frame), 1);
}

#[test]
fn move_onto_itself_changes_nothing() {
    let (mut pt, mut fr) = (FakePt::default(), FakeFrames::new(16));
    vm(&mut pt, &mut fr).map_new(BASE, 2 * P, RW).unwrap();
    let before = (pt.entries.clone(), fr.free());
    vm(&mut pt, &mut fr).move_pages(BASE, BASE, 2 * P).unwrap();
    assert_eq!((pt.entries.clone(), fr.free()), before);
    let f = vm(&mut pt, &mut fr).mapping(BASE).unwrap().frame;
    assert_eq!(fr.refcount(f), 1);
}

#[test]
fn move_errors() {
    let (mut pt, mut fr) = (FakePt::default(), FakeFrames::new(16));
    let mut v = vm(&mut pt, &mut fr);
    v.map_new(BASE, 2 * P, RW).unwrap();
    assert_eq!(
        v.move_pages(BASE + P, BASE, 2 * P),
        Err(Error::InvalidArgument)
    );
    assert_eq!(
        v.move_pages(BASE + 0x10_0000, BASE + 4 * P, P),
        Err(Error::NotFound)
    );
    assert_eq!(
        v.move_pages(0xffff_8000_0000_0000, BASE, P),
        Err(Error::BadAddress)
    );
    assert_eq!(
        v.move_pages(BASE + 0x10_0000, BASE + 1, P),
        Err(Error::InvalidArgument)
    );
    // A failed move leaves everything in place.
    assert!(v.mapping(BASE).is_some() && v.mapping(BASE + P).is_some());
}

#[test]
fn move_rolls_nothing_when_tables_run_out() {
    let (mut pt, mut fr) = (FakePt::default(), FakeFrames::new(16));
    vm(&mut pt, &mut fr).map_new(BASE, P, RW).unwrap();
    pt.fail_prepare = true;
    let r = vm(&mut pt, &mut fr).move_pages(BASE + 0x40_0000, BASE, P);
    assert_eq!(r, Err(Error::OutOfMemory));
    assert!(vm(&mut pt, &mut fr).mapping(BASE).is_some());
}

#[test]
fn faults_on_kernel_addresses_are_delivered_never_retried() {
    let (mut pt, mut fr) = (FakePt::default(), FakeFrames::new(4));
    // Even an entry that reads as a present, writable page (as the
    // kernel's own pages do) does not make a kernel address retryable.
    for va in [
        0xffff_8000_0000_1000u64,
        0xffff_ffff_8000_0000,
        0xffff_ff80_0000_0000,
    ] {
        pt.tables.insert(va >> 21);
        pt.entries.insert(va, 0x1000 | 7);
        assert_eq!(
            vm(&mut pt, &mut fr).fault(va, false, false),
            Fault::Deliver(0)
        );
        assert_eq!(
            vm(&mut pt, &mut fr).fault(va, true, false),
            Fault::Deliver(FAULT_WRITE)
        );
    }
}

#[test]
fn a_map_that_cannot_fit_fails_before_any_work() {
    struct Stingy;
    impl TableFrames for Stingy {
        fn alloc_table(&mut self) -> Option<Frame> {
            None
        }
        fn free_table(&mut self, _frame: Frame) {}
    }
    impl FrameOps for Stingy {
        fn alloc_zeroed(&mut self) -> Option<Frame> {
            panic!("no page may be made")
        }
        fn copy(&mut self, _dst: Frame, _src: Frame) {}
        fn add_ref(&mut self, _frame: Frame) {}
        fn release(&mut self, _frame: Frame) -> bool {
            false
        }
        fn refcount(&self, _frame: Frame) -> u32 {
            0
        }
        fn can_take(&self, n: u64) -> bool {
            n <= 2
        }
    }
    let mut pt = FakePt::default();
    let mut fr = Stingy;
    let mut v = Vm {
        pt: &mut pt,
        frames: &mut fr,
        codec: CODEC,
    };
    assert_eq!(v.map_new(BASE, 3 * P, RW), Err(Error::OutOfMemory));
    // Bad arguments are still reported as such, before the charge.
    assert_eq!(v.map_new(BASE + 1, 3 * P, RW), Err(Error::InvalidArgument));
    assert_eq!(
        v.map_new(0xffff_8000_0000_0000, 3 * P, RW),
        Err(Error::BadAddress)
    );
    assert!(pt.entries.is_empty());
}

#[test]
fn long_operations_stop_at_preemption_points_and_resume() {
    let (mut pt, mut fr) = (FakePt::default(), FakeFrames::new(1024));
    let len = 300 * P;
    let mut from = 0;
    let mut stops = 0;
    loop {
        match vm(&mut pt, &mut fr)
            .map_new_from(BASE, len, RW, from, &mut || true)
            .unwrap()
        {
            Step::Done => break,
            Step::Paused(n) => {
                assert_eq!(n % 64, 0);
                assert!(n > from);
                from = n;
                stops += 1;
            }
        }
    }
    assert_eq!(stops, 4);
    assert_eq!(pt.entries.len(), 300);
    let (mut from, mut stops) = (0, 0);
    while let Step::Paused(n) = vm(&mut pt, &mut fr)
        .protect_from(BASE, len, PROT_READ, from, &mut || true)
        .unwrap()
    {
        from = n;
        stops += 1;
    }
    assert_eq!(stops, 4);
    assert!((0..300).all(|i| vm(&mut pt, &mut fr).mapping(BASE + i * P).unwrap().prot == Prot::R));
    let mut stops = 0;
    while vm(&mut pt, &mut fr)
        .unmap_step(BASE, len, &mut || true)
        .unwrap()
        != Step::Done
    {
        stops += 1;
    }
    assert_eq!(stops, 4);
    assert!(pt.entries.is_empty());
    assert_eq!(fr.free(), 1024);
}

#[test]
fn a_resumed_map_that_fails_undoes_every_piece() {
    let (mut pt, mut fr) = (FakePt::default(), FakeFrames::new(100));
    // 200 pages do not fit in 100 frames; can_take says yes (the fake
    // frames do not know), so the map fails part way, in its second piece.
    let first = vm(&mut pt, &mut fr)
        .map_new_from(BASE, 200 * P, RW, 0, &mut || true)
        .unwrap();
    assert_eq!(first, Step::Paused(64));
    assert_eq!(
        vm(&mut pt, &mut fr).map_new_from(BASE, 200 * P, RW, 64, &mut || false),
        Err(Error::OutOfMemory)
    );
    assert!(pt.entries.is_empty(), "the first piece went too");
    assert_eq!(fr.free(), 100);
}

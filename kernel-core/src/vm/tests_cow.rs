//! The VM model tests, part two: fork and copy-on-write, wiring for DMA,
//! device memory, faults, randomized reference counts and huge ranges.

use super::codec::*;
use super::tests::*;
use super::*;
use crate::testrng::Rng;
use abi::vm::{PROT_EXEC, PROT_READ};
use std::collections::HashMap;

#[test]
fn fork_shares_every_private_page_copy_on_write() {
    let (mut pt, mut fr) = (FakePt::default(), FakeFrames::new(32));
    vm(&mut pt, &mut fr)
        .map_new(BASE, P, PROT_READ | PROT_EXEC)
        .unwrap();
    vm(&mut pt, &mut fr).map_new(BASE + P, P, RW).unwrap();
    let free = fr.free();
    let mut child = fork(&mut pt, &mut fr);
    assert_eq!(fr.free(), free, "fork copies no page");
    for (va, exec, was_writable) in [(BASE, true, false), (BASE + P, false, true)] {
        let p = vm(&mut pt, &mut fr).mapping(va).unwrap();
        let c = vm(&mut child, &mut fr).mapping(va).unwrap();
        assert_eq!(p, c);
        assert_eq!(p.kind, Kind::Cow);
        assert!(!p.prot.write);
        assert_eq!((p.prot.exec, p.was_writable), (exec, was_writable));
        assert_eq!(fr.refcount(p.frame), 2);
    }
    destroy(&mut child, &mut fr);
    destroy(&mut pt, &mut fr);
    assert_eq!(fr.free(), free + 2);
}

#[test]
fn cow_write_fault_is_delivered_while_shared() {
    let (mut pt, mut fr) = (FakePt::default(), FakeFrames::new(32));
    vm(&mut pt, &mut fr).map_new(BASE, P, RW).unwrap();
    let _child = fork(&mut pt, &mut fr);
    let r = vm(&mut pt, &mut fr).fault(BASE + 8, true, false);
    assert_eq!(
        r,
        Fault::Deliver(FAULT_PRESENT | FAULT_WRITE | FAULT_COW | FAULT_WAS_WRITABLE)
    );
    // A read of a COW page is allowed: only a stale TLB could fault.
    assert_eq!(vm(&mut pt, &mut fr).fault(BASE, false, false), Fault::Retry);
}

#[test]
fn user_style_cow_copy_then_move_over() {
    // What libmh does: map a scratch page, copy, move it over the COW page.
    let (mut pt, mut fr) = (FakePt::default(), FakeFrames::new(32));
    vm(&mut pt, &mut fr).map_new(BASE, P, RW).unwrap();
    let shared = vm(&mut pt, &mut fr).mapping(BASE).unwrap().frame;
    fr.write(shared, 5);
    let mut child = fork(&mut pt, &mut fr);
    let scratch = BASE + 0x100_0000;
    vm(&mut child, &mut fr).map_new(scratch, P, RW).unwrap();
    let copy = vm(&mut child, &mut fr).mapping(scratch).unwrap().frame;
    fr.copy(copy, shared);
    vm(&mut child, &mut fr)
        .move_pages(BASE, scratch, P)
        .unwrap();
    let c = vm(&mut child, &mut fr).mapping(BASE).unwrap();
    assert_eq!(
        (c.kind, c.prot, fr.byte(c.frame)),
        (Kind::Private, Prot::RW, 5)
    );
    assert_eq!(fr.refcount(shared), 1, "the child's reference went away");
}

#[test]
fn last_sharer_gets_the_page_back_private_read_only() {
    let (mut pt, mut fr) = (FakePt::default(), FakeFrames::new(32));
    vm(&mut pt, &mut fr).map_new(BASE, P, RW).unwrap();
    let mut child = fork(&mut pt, &mut fr);
    destroy(&mut child, &mut fr);
    let f = vm(&mut pt, &mut fr).mapping(BASE).unwrap().frame;
    assert_eq!(fr.refcount(f), 1);
    // The write fault finds the frame unshared: private, still read-only,
    // and the process is told the page was writable.
    let r = vm(&mut pt, &mut fr).fault(BASE, true, false);
    assert_eq!(
        r,
        Fault::Deliver(FAULT_PRESENT | FAULT_WRITE | FAULT_WAS_WRITABLE)
    );
    let m = vm(&mut pt, &mut fr).mapping(BASE).unwrap();
    assert_eq!((m.kind, m.prot, m.frame), (Kind::Private, Prot::R, f));
    vm(&mut pt, &mut fr).protect(BASE, P, RW).unwrap();
    assert_eq!(vm(&mut pt, &mut fr).fault(BASE, true, false), Fault::Retry);
}

#[test]
fn protect_on_cow_pages() {
    let (mut pt, mut fr) = (FakePt::default(), FakeFrames::new(32));
    vm(&mut pt, &mut fr).map_new(BASE, P, RW).unwrap();
    let mut child = fork(&mut pt, &mut fr);
    // Still shared: write is refused, narrower rights are fine and the page
    // stays COW.
    assert_eq!(vm(&mut pt, &mut fr).protect(BASE, P, RW), Err(Error::Busy));
    vm(&mut pt, &mut fr).protect(BASE, P, 0).unwrap();
    let m = vm(&mut pt, &mut fr).mapping(BASE).unwrap();
    assert_eq!(
        (m.kind, m.prot, m.was_writable),
        (Kind::Cow, Prot::NONE, true)
    );
    // Once the child is gone, write makes it private.
    destroy(&mut child, &mut fr);
    vm(&mut pt, &mut fr).protect(BASE, P, RW).unwrap();
    assert_eq!(
        vm(&mut pt, &mut fr).mapping(BASE).unwrap().kind,
        Kind::Private
    );
}

#[test]
fn cow_chains_fork_of_a_fork() {
    let (mut a, mut fr) = (FakePt::default(), FakeFrames::new(32));
    vm(&mut a, &mut fr).map_new(BASE, P, RW).unwrap();
    let f = vm(&mut a, &mut fr).mapping(BASE).unwrap().frame;
    let free = fr.free();
    let mut b = fork(&mut a, &mut fr);
    let mut c = fork(&mut b, &mut fr);
    assert_eq!(fr.refcount(f), 3);
    vm(&mut b, &mut fr).break_cow(BASE).unwrap();
    assert_eq!(fr.refcount(f), 2);
    destroy(&mut a, &mut fr);
    assert_eq!(fr.refcount(f), 1);
    destroy(&mut c, &mut fr);
    destroy(&mut b, &mut fr);
    assert_eq!(fr.free(), free + 1, "every frame came back, none twice");
}

#[test]
fn break_cow_copies_only_while_shared() {
    let (mut pt, mut fr) = (FakePt::default(), FakeFrames::new(32));
    vm(&mut pt, &mut fr).map_new(BASE, P, RW).unwrap();
    let f = vm(&mut pt, &mut fr).mapping(BASE).unwrap().frame;
    fr.write(f, 3);
    let mut child = fork(&mut pt, &mut fr);
    vm(&mut child, &mut fr).break_cow(BASE + 100).unwrap();
    let c = vm(&mut child, &mut fr).mapping(BASE).unwrap();
    assert_ne!(c.frame, f);
    assert_eq!(
        (c.kind, c.prot, fr.byte(c.frame)),
        (Kind::Private, Prot::RW, 3)
    );
    // The parent is now the only sharer: no copy needed.
    vm(&mut pt, &mut fr).break_cow(BASE).unwrap();
    let p = vm(&mut pt, &mut fr).mapping(BASE).unwrap();
    assert_eq!((p.frame, p.kind, p.prot), (f, Kind::Private, Prot::RW));
}

#[test]
fn break_cow_refuses_pages_that_were_never_writable() {
    let (mut pt, mut fr) = (FakePt::default(), FakeFrames::new(32));
    vm(&mut pt, &mut fr)
        .map_new(BASE, P, PROT_READ | PROT_EXEC)
        .unwrap();
    let _child = fork(&mut pt, &mut fr);
    assert_eq!(vm(&mut pt, &mut fr).break_cow(BASE), Err(Error::BadAddress));
    assert_eq!(
        vm(&mut pt, &mut fr).break_cow(BASE + P),
        Err(Error::BadAddress)
    );
    let r = vm(&mut pt, &mut fr).fault(BASE, true, false);
    assert_eq!(r, Fault::Deliver(FAULT_PRESENT | FAULT_WRITE | FAULT_COW));
}

#[test]
fn break_cow_out_of_memory_changes_nothing() {
    let (mut pt, mut fr) = (FakePt::default(), FakeFrames::new(2));
    vm(&mut pt, &mut fr).map_new(BASE, 2 * P, RW).unwrap();
    let _child = fork(&mut pt, &mut fr);
    let before = pt.entries.clone();
    assert_eq!(
        vm(&mut pt, &mut fr).break_cow(BASE),
        Err(Error::OutOfMemory)
    );
    assert_eq!(pt.entries, before);
}

fn wire(pt: &mut FakePt, va: u64, wires: u8) {
    let mut m = CODEC.decode(pt.entry(va)).unwrap();
    m.wires = wires;
    pt.set(&mut FakeFrames::new(0), va, CODEC.encode(&m));
}

#[test]
fn wired_pages_refuse_unmap_move_protect() {
    let (mut pt, mut fr) = (FakePt::default(), FakeFrames::new(32));
    vm(&mut pt, &mut fr).map_new(BASE, 2 * P, RW).unwrap();
    wire(&mut pt, BASE, 1);
    let mut v = vm(&mut pt, &mut fr);
    assert_eq!(v.unmap(BASE, 2 * P), Err(Error::Busy));
    assert_eq!(v.protect(BASE, P, PROT_READ), Err(Error::Busy));
    assert_eq!(v.move_pages(BASE + 0x10_0000, BASE, P), Err(Error::Busy));
    assert_eq!(v.move_pages(BASE, BASE + P, P), Err(Error::Busy));
    // Nothing was half-done.
    assert!(v.mapping(BASE + P).is_some());
}

#[test]
fn fork_copies_wired_pages_and_release_reports_them() {
    let (mut pt, mut fr) = (FakePt::default(), FakeFrames::new(32));
    vm(&mut pt, &mut fr).map_new(BASE, P, RW).unwrap();
    let f = vm(&mut pt, &mut fr).mapping(BASE).unwrap().frame;
    fr.write(f, 7);
    wire(&mut pt, BASE, 2);
    let mut child = fork(&mut pt, &mut fr);
    let c = vm(&mut child, &mut fr).mapping(BASE).unwrap();
    assert_ne!(c.frame, f);
    assert_eq!(
        (c.kind, c.prot, c.wires, fr.byte(c.frame)),
        (Kind::Private, Prot::RW, 0, 7)
    );
    let p = vm(&mut pt, &mut fr).mapping(BASE).unwrap();
    assert_eq!((p.kind, p.wires, fr.refcount(f)), (Kind::Private, 2, 1));
    assert_eq!(vm(&mut pt, &mut fr).release(BASE), Released::StillWired(f));
    assert_eq!(fr.refcount(f), 1, "the caller quarantines it");
}

#[test]
fn io_mappings_are_not_refcounted_nor_inherited() {
    let (mut pt, mut fr) = (FakePt::default(), FakeFrames::new(8));
    let io = Mapping {
        frame: Frame::from_pfn(0xfee00),
        kind: Kind::Io,
        prot: Prot::RW,
        was_writable: false,
        wires: 0,
    };
    pt.prepare(&mut fr, BASE).unwrap();
    pt.set(&mut fr, BASE, CODEC.encode(&io));
    let mut child = fork(&mut pt, &mut fr);
    assert!(child.entries.is_empty());
    assert_eq!(vm(&mut pt, &mut fr).unmap(BASE, P), Err(Error::Busy));
    assert_eq!(vm(&mut pt, &mut fr).release(BASE), Released::Nothing);
    assert_eq!(
        release_entry(CODEC, &mut fr, CODEC.encode(&io)),
        Released::Nothing
    );
    destroy(&mut child, &mut fr);
}

#[test]
fn faults_on_unmapped_and_protected_pages() {
    let (mut pt, mut fr) = (FakePt::default(), FakeFrames::new(8));
    let mut v = vm(&mut pt, &mut fr);
    assert_eq!(v.fault(BASE, false, false), Fault::Deliver(0));
    assert_eq!(v.fault(BASE, true, false), Fault::Deliver(FAULT_WRITE));
    assert_eq!(v.fault(BASE, false, true), Fault::Deliver(FAULT_EXEC));
    v.map_new(BASE, P, PROT_READ).unwrap();
    assert_eq!(
        v.fault(BASE, true, false),
        Fault::Deliver(FAULT_PRESENT | FAULT_WRITE)
    );
    assert_eq!(
        v.fault(BASE, false, true),
        Fault::Deliver(FAULT_PRESENT | FAULT_EXEC)
    );
    assert_eq!(v.fault(BASE, false, false), Fault::Retry);
}

/// A random sequence of operations over three address spaces; after every
/// step each frame's reference count must equal the number of entries that
/// map it, and at the end every frame must be free again.
#[test]
fn randomized_refcounts_stay_exact() {
    let mut fr = FakeFrames::new(48);
    let total = fr.free();
    let mut spaces: Vec<FakePt> = (0..3).map(|_| FakePt::default()).collect();
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let steps = if cfg!(miri) { 300 } else { 5_000 };
    for _ in 0..steps {
        let s = rng.below(3) as usize;
        let page = BASE + rng.below(8) * P;
        let other = BASE + rng.below(8) * P;
        let n = 1 + rng.below(2);
        match rng.below(9) {
            0 | 1 => {
                let _ = vm(&mut spaces[s], &mut fr).map_new(page, n * P, RW);
            }
            2 => {
                let _ = vm(&mut spaces[s], &mut fr).unmap(page, n * P);
            }
            3 => {
                let prot = [0, PROT_READ, RW, PROT_READ | PROT_EXEC][rng.below(4) as usize];
                let _ = vm(&mut spaces[s], &mut fr).protect(page, P, prot);
            }
            4 => {
                let _ = vm(&mut spaces[s], &mut fr).move_pages(page, other, P);
            }
            5 => {
                let _ = vm(&mut spaces[s], &mut fr).break_cow(page);
            }
            6 => {
                let _ = vm(&mut spaces[s], &mut fr).fault(page, rng.below(2) == 0, false);
            }
            7 => {
                let t = (s + 1 + rng.below(2) as usize) % 3;
                destroy(&mut spaces[t], &mut fr);
                spaces[t] = fork(&mut spaces[s], &mut fr);
            }
            _ => destroy(&mut spaces[s], &mut fr),
        }
        let mut counts: HashMap<u64, u32> = HashMap::new();
        for sp in &spaces {
            for &pte in sp.entries.values() {
                let m = CODEC.decode(pte).unwrap();
                *counts.entry(m.frame.pfn()).or_default() += 1;
                if m.kind == Kind::Private {
                    assert!(!m.was_writable || !m.prot.write);
                }
                if m.kind == Kind::Cow {
                    assert!(!m.prot.write, "a COW page is never writable");
                }
            }
        }
        for (&pfn, &n) in &counts {
            assert_eq!(fr.refcount(Frame::from_pfn(pfn)), n, "frame {pfn:#x}");
            let m = spaces
                .iter()
                .flat_map(|sp| sp.entries.values())
                .map(|&p| CODEC.decode(p).unwrap())
                .find(|m| m.frame.pfn() == pfn)
                .unwrap();
            if m.kind == Kind::Private {
                assert_eq!(n, 1, "a private page is not shared");
            }
        }
        let mapped: u32 = counts.len() as u32;
        assert_eq!(fr.free() + mapped as usize, total);
    }
    for sp in &mut spaces {
        destroy(sp, &mut fr);
    }
    assert_eq!(fr.free(), total);
}

#[test]
fn wire_pins_and_unwire_releases() {
    let (mut pt, mut fr) = (FakePt::default(), FakeFrames::new(16));
    vm(&mut pt, &mut fr).map_new(BASE, P, RW).unwrap();
    let f = vm(&mut pt, &mut fr).mapping(BASE).unwrap().frame;
    assert_eq!(
        vm(&mut pt, &mut fr).wire(BASE + 0x123, true),
        Ok(f.addr() + 0x123)
    );
    assert_eq!(vm(&mut pt, &mut fr).wire(BASE, true), Ok(f.addr()));
    assert_eq!(vm(&mut pt, &mut fr).mapping(BASE).unwrap().wires, 2);
    assert_eq!(vm(&mut pt, &mut fr).unmap(BASE, P), Err(Error::Busy));
    vm(&mut pt, &mut fr).unwire(BASE).unwrap();
    vm(&mut pt, &mut fr).unwire(BASE).unwrap();
    assert_eq!(vm(&mut pt, &mut fr).unwire(BASE), Err(Error::NotFound));
    assert_eq!(vm(&mut pt, &mut fr).unmap(BASE, P), Ok(()));
}

#[test]
fn wire_refuses_what_cannot_be_pinned() {
    let (mut pt, mut fr) = (FakePt::default(), FakeFrames::new(16));
    let mut v = vm(&mut pt, &mut fr);
    assert_eq!(v.wire(BASE, true), Err(Error::BadAddress), "unmapped");
    assert_eq!(
        v.wire(0xffff_8000_0000_0000, true),
        Err(Error::BadAddress),
        "kernel half"
    );
    v.map_new(BASE, P, 0).unwrap();
    assert_eq!(v.wire(BASE, true), Err(Error::BadAddress), "no access");
    v.protect(BASE, P, RW).unwrap();
    for _ in 0..MAX_WIRES {
        v.wire(BASE, true).unwrap();
    }
    assert_eq!(v.wire(BASE, true), Err(Error::LimitReached));
}

#[test]
fn wiring_a_shared_page_breaks_the_sharing_first() {
    let (mut pt, mut fr) = (FakePt::default(), FakeFrames::new(16));
    vm(&mut pt, &mut fr).map_new(BASE, P, RW).unwrap();
    let shared = vm(&mut pt, &mut fr).mapping(BASE).unwrap().frame;
    fr.write(shared, 4);
    let mut child = fork(&mut pt, &mut fr);
    let phys = vm(&mut child, &mut fr).wire(BASE, true).unwrap();
    let c = vm(&mut child, &mut fr).mapping(BASE).unwrap();
    assert_ne!(
        c.frame, shared,
        "the device must not write the parent's page"
    );
    assert_eq!(
        (phys, c.kind, c.prot, c.wires, fr.byte(c.frame)),
        (c.frame.addr(), Kind::Private, Prot::RW, 1, 4)
    );
    assert_eq!(fr.refcount(shared), 1);
}

#[test]
fn io_mappings_come_and_go_without_touching_frames() {
    let (mut pt, mut fr) = (FakePt::default(), FakeFrames::new(8));
    let free = fr.free();
    vm(&mut pt, &mut fr).map_new(BASE + P, P, RW).unwrap();
    assert_eq!(
        vm(&mut pt, &mut fr).map_io(BASE, 0xb8000, 2 * P),
        Err(Error::AlreadyExists)
    );
    assert_eq!(
        vm(&mut pt, &mut fr).map_io(BASE, 0xb8001, P),
        Err(Error::InvalidArgument)
    );
    vm(&mut pt, &mut fr)
        .map_io(BASE + 0x10_0000, 0xb8000, 2 * P)
        .unwrap();
    let m = vm(&mut pt, &mut fr).mapping(BASE + 0x10_1000).unwrap();
    assert_eq!(
        (m.kind, m.frame.addr(), m.prot),
        (Kind::Io, 0xb9000, Prot::RW)
    );
    assert_eq!(
        vm(&mut pt, &mut fr).wire(BASE + 0x10_0000, true),
        Err(Error::BadAddress)
    );
    assert_eq!(vm(&mut pt, &mut fr).unmap_io(BASE, 0x20_0000), Ok(2));
    assert!(
        vm(&mut pt, &mut fr).mapping(BASE + P).is_some(),
        "memory pages stay"
    );
    vm(&mut pt, &mut fr).unmap(BASE + P, P).unwrap();
    assert_eq!(fr.free(), free);
}

/// A huge, almost empty range: unmap visits only what is mapped (the real
/// table skips missing tables; the fake lists its entries), and map refuses
/// at once because a page inside is taken.
#[test]
fn huge_sparse_ranges_are_cheap_and_exact() {
    let mut pt = FakePt::default();
    let mut frames = FakeFrames::new(16);
    let mut vm = vm(&mut pt, &mut frames);
    let far = 0x4000_0000_0000;
    vm.map_new(0x10_0000, PAGE, RW).unwrap();
    vm.map_new(far, 2 * PAGE, RW).unwrap();
    let huge = 0x7000_0000_0000 - 0x1_0000;
    assert_eq!(vm.map_new(0x1_0000, huge, RW), Err(Error::AlreadyExists));
    vm.unmap(0x1_0000, huge).unwrap();
    assert!(vm.mapping(0x10_0000).is_none());
    assert!(vm.mapping(far).is_none() && vm.mapping(far + PAGE).is_none());
    let _ = vm;
    assert_eq!(frames.free(), 16);
}

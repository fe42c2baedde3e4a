//! Wiring below an address (`Vm::wire_below`, for devices that see
//! physical addresses and reach only 32 bits of them): pages above move
//! below with their contents, once; what cannot move is refused and left
//! as it was.

use super::tests::*;
use super::*;

const LIMIT: u64 = 1 << 32;

fn below(f: Frame) -> bool {
    f.addr() + P <= LIMIT
}

#[test]
fn a_page_above_the_limit_moves_below_with_its_contents() {
    let (mut pt, mut fr) = (FakePt::default(), FakeFrames::split(8, 8));
    vm(&mut pt, &mut fr).map_new(BASE, P, RW).unwrap();
    let high = vm(&mut pt, &mut fr).mapping(BASE).unwrap().frame;
    assert!(!below(high), "new pages come from the high segment first");
    fr.write(high, 0x5a);
    let free = fr.free();
    let phys = vm(&mut pt, &mut fr)
        .wire_below(BASE + 0x10, true, LIMIT)
        .unwrap();
    let m = vm(&mut pt, &mut fr).mapping(BASE).unwrap();
    assert!(below(m.frame));
    assert_eq!(phys, m.frame.addr() + 0x10);
    assert_eq!((m.kind, m.prot, m.wires), (Kind::Private, Prot::RW, 1));
    assert_eq!(fr.byte(m.frame), 0x5a);
    assert_eq!(fr.refcount(high), 0, "the old frame is free again");
    assert_eq!(fr.free(), free);
    // Wired below already: a second wire keeps the frame.
    assert_eq!(
        vm(&mut pt, &mut fr).wire_below(BASE, false, LIMIT),
        Ok(m.frame.addr())
    );
    // Without a limit nothing moves.
    vm(&mut pt, &mut fr).map_new(BASE + P, P, RW).unwrap();
    let f = vm(&mut pt, &mut fr).mapping(BASE + P).unwrap().frame;
    assert_eq!(vm(&mut pt, &mut fr).wire(BASE + P, true), Ok(f.addr()));
}

#[test]
fn a_shared_page_is_copied_below_once() {
    let (mut pt, mut fr) = (FakePt::default(), FakeFrames::split(8, 8));
    vm(&mut pt, &mut fr).map_new(BASE, P, RW).unwrap();
    let shared = vm(&mut pt, &mut fr).mapping(BASE).unwrap().frame;
    fr.write(shared, 7);
    let mut child = fork(&mut pt, &mut fr);
    let free = fr.free();
    vm(&mut pt, &mut fr).wire_below(BASE, true, LIMIT).unwrap();
    let m = vm(&mut pt, &mut fr).mapping(BASE).unwrap();
    assert!(below(m.frame));
    assert_eq!(
        (m.kind, m.prot.write, fr.byte(m.frame)),
        (Kind::Private, true, 7)
    );
    assert_eq!(fr.free(), free - 1, "one copy, straight below");
    assert_eq!(fr.refcount(shared), 1, "the child keeps the original");
    destroy(&mut child, &mut fr);
}

#[test]
fn what_cannot_move_is_refused_and_left_alone() {
    let (mut pt, mut fr) = (FakePt::default(), FakeFrames::split(1, 8));
    vm(&mut pt, &mut fr).map_new(BASE, 2 * P, RW).unwrap();
    // Wired above for a device that reaches everything: it cannot move.
    let high = vm(&mut pt, &mut fr).mapping(BASE).unwrap().frame;
    vm(&mut pt, &mut fr).wire(BASE, true).unwrap();
    assert_eq!(
        vm(&mut pt, &mut fr).wire_below(BASE, true, LIMIT),
        Err(Error::Busy)
    );
    let m = vm(&mut pt, &mut fr).mapping(BASE).unwrap();
    assert_eq!((m.frame, m.wires), (high, 1));
    // The one low frame taken, the next page finds none: OutOfMemory,
    // and the page stays unwired where it was.
    fr.table.alloc_below(LIMIT).unwrap();
    let other = vm(&mut pt, &mut fr).mapping(BASE + P).unwrap();
    let free = fr.free();
    assert_eq!(
        vm(&mut pt, &mut fr).wire_below(BASE + P, true, LIMIT),
        Err(Error::OutOfMemory)
    );
    assert_eq!(vm(&mut pt, &mut fr).mapping(BASE + P), Some(other));
    assert_eq!(fr.free(), free);
    assert_eq!(vm(&mut pt, &mut fr).unmap(BASE + P, P), Ok(()));
}

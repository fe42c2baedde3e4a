use super::*;
use crate::iommu::testframes::{Frames, Mem};

#[test]
fn root_entry_bits() {
    // Present (bit 0) and the table's address in bits 63:12; high word 0.
    let e = root_entry(Frame::from_pfn(0x12345));
    assert_eq!(e, [0x0000_0000_1234_5001, 0]);
    assert_eq!(decode_root(e), Some(Frame::from_pfn(0x12345)));
    assert_eq!(decode_root([0x1234_5000, 0]), None, "not present");
    assert_eq!(decode_root([0, 0]), None);
}

#[test]
fn context_entry_bits() {
    // Low: SLPTPTR 0x7654_3000, TT 00, FPD 0, present. High: DID 0xbeef
    // in bits 23:8, AW 1 (39-bit, 3 levels) in bits 2:0.
    let e = ContextEntry {
        domain_id: 0xbeef,
        slpt_root: Frame::from_pfn(0x76543),
        agaw: Agaw::Bits39,
    };
    assert_eq!(e.encode(), [0x0000_0000_7654_3001, 0x0000_0000_00be_ef01]);
    assert_eq!(ContextEntry::decode(e.encode()), Some(e));
    // AW 2 (48-bit, 4 levels); a high address; DID 1.
    let e = ContextEntry {
        domain_id: 1,
        slpt_root: Frame::from_pfn(0xf_ffff_ffff),
        agaw: Agaw::Bits48,
    };
    assert_eq!(e.encode(), [0x0000_ffff_ffff_f001, 0x0000_0000_0000_0102]);
    assert_eq!(ContextEntry::decode(e.encode()), Some(e));
}

#[test]
fn context_entries_not_of_this_form_decode_to_none() {
    let good = [0x7654_3001, 0x0000_0000_00be_ef01];
    assert!(ContextEntry::decode(good).is_some());
    assert_eq!(
        ContextEntry::decode([0x7654_3000, good[1]]),
        None,
        "not present"
    );
    assert_eq!(
        ContextEntry::decode([0x7654_3003, good[1]]),
        None,
        "FPD set"
    );
    assert_eq!(
        ContextEntry::decode([0x7654_3009, good[1]]),
        None,
        "pass-through TT"
    );
    assert_eq!(
        ContextEntry::decode([0x7654_3005, good[1]]),
        None,
        "device-TLB TT"
    );
    assert_eq!(
        ContextEntry::decode([good[0], 0xbeef03]),
        None,
        "57-bit AGAW"
    );
    assert_eq!(ContextEntry::decode([good[0], 0xbeef00]), None, "AW 0");
}

fn table(frames: &mut Frames) -> RootTable {
    RootTable::new(frames, 39).unwrap()
}

#[test]
fn nothing_is_present_by_default() {
    let (mem, mut f) = (Mem::default(), Frames::new(0x100));
    let t = table(&mut f);
    assert_eq!(t.table_frames(), 1);
    for bus in [0u8, 1, 255] {
        for devfn in [0u8, 8, 255] {
            assert_eq!(t.lookup(&mem, bus, devfn), None);
        }
    }
    assert!(mem.entries(t.root()).iter().all(|&w| w == 0));
}

#[test]
fn attach_writes_the_root_and_context_entries() {
    let (mut mem, mut f) = (Mem::default(), Frames::new(0x100));
    let mut t = table(&mut f);
    let slpt = Frame::from_pfn(0x4000);
    // Bus 3, device 2 function 1 (devfn 0x11), domain 7.
    t.attach(&mut mem, &mut f, 3, 0x11, 7, slpt, Agaw::Bits39)
        .unwrap();
    assert_eq!(t.table_frames(), 2);
    let ctx = decode_root([mem.read(t.root(), 6), mem.read(t.root(), 7)]).unwrap();
    assert_eq!(mem.read(t.root(), 6), ctx.addr() | 1);
    assert_eq!(mem.read(t.root(), 7), 0);
    assert_eq!(mem.read(ctx, 0x22), 0x0400_0001);
    assert_eq!(mem.read(ctx, 0x23), 0x0701);
    // Every other word of both tables is zero.
    let used_root = mem.entries(t.root()).iter().filter(|&&w| w != 0).count();
    let used_ctx = mem.entries(ctx).iter().filter(|&&w| w != 0).count();
    assert_eq!((used_root, used_ctx), (1, 2));
    assert_eq!(
        t.lookup(&mem, 3, 0x11),
        Some(ContextEntry {
            domain_id: 7,
            slpt_root: slpt,
            agaw: Agaw::Bits39
        })
    );
    assert_eq!(t.lookup(&mem, 3, 0x10), None);
    assert_eq!(t.lookup(&mem, 2, 0x11), None);
    // A second function on the same bus shares its context table.
    t.attach(&mut mem, &mut f, 3, 0x12, 8, slpt, Agaw::Bits39)
        .unwrap();
    assert_eq!((t.table_frames(), t.attached()), (2, 2));
}

#[test]
fn attach_refuses_and_changes_nothing() {
    let (mut mem, mut f) = (Mem::default(), Frames::new(0x100));
    let mut t = table(&mut f);
    let slpt = Frame::from_pfn(0x4000);
    assert_eq!(
        t.attach(&mut mem, &mut f, 0, 8, 0, slpt, Agaw::Bits39),
        Err(Error::InvalidArgument),
        "domain 0 is reserved"
    );
    let high = Frame::containing(1 << 39);
    assert_eq!(
        t.attach(&mut mem, &mut f, 0, 8, 1, high, Agaw::Bits39),
        Err(Error::BadAddress)
    );
    t.attach(&mut mem, &mut f, 0, 8, 1, slpt, Agaw::Bits39)
        .unwrap();
    assert_eq!(
        t.attach(&mut mem, &mut f, 0, 8, 2, slpt, Agaw::Bits48),
        Err(Error::AlreadyExists)
    );
    assert_eq!(t.lookup(&mem, 0, 8).unwrap().domain_id, 1);
    f.budget = Some(0);
    assert_eq!(
        t.attach(&mut mem, &mut f, 1, 8, 1, slpt, Agaw::Bits39),
        Err(Error::OutOfMemory)
    );
    assert_eq!(t.lookup(&mem, 1, 8), None);
    assert_eq!(mem.read(t.root(), 2), 0);
    assert_eq!((t.table_frames(), t.attached(), f.live.len()), (2, 1, 2));
}

#[test]
fn table_frames_beyond_the_host_width_are_refused() {
    let (mut mem, mut f) = (Mem::default(), Frames::new((1 << 27) - 1));
    // The root gets the last frame below 2^39; the next is above.
    let mut t = table(&mut f);
    assert_eq!(
        t.attach(&mut mem, &mut f, 0, 0, 1, Frame::from_pfn(5), Agaw::Bits39),
        Err(Error::NotSupported)
    );
    assert_eq!(f.live.len(), 1, "the refused frame went back");
    let mut f = Frames::new(1 << 27);
    assert_eq!(RootTable::new(&mut f, 39).unwrap_err(), Error::NotSupported);
    assert!(f.live.is_empty());
    assert_eq!(
        RootTable::new(&mut f, 12).unwrap_err(),
        Error::InvalidArgument
    );
    assert_eq!(
        RootTable::new(&mut f, 53).unwrap_err(),
        Error::InvalidArgument
    );
    f.budget = Some(0);
    assert_eq!(RootTable::new(&mut f, 39).unwrap_err(), Error::OutOfMemory);
}

#[test]
fn detach_clears_and_says_what_to_invalidate() {
    let (mut mem, mut f) = (Mem::default(), Frames::new(0x100));
    let mut t = table(&mut f);
    let slpt = Frame::from_pfn(0x4000);
    assert_eq!(t.detach(&mut mem, 0, 0), None, "no context table");
    t.attach(&mut mem, &mut f, 0x80, 0xfa, 0x1234, slpt, Agaw::Bits48)
        .unwrap();
    assert_eq!(t.detach(&mut mem, 0x80, 0xf9), None, "not attached");
    assert_eq!(
        t.detach(&mut mem, 0x80, 0xfa),
        Some(Detached {
            source_id: 0x80fa,
            domain_id: 0x1234
        })
    );
    assert_eq!(t.lookup(&mem, 0x80, 0xfa), None);
    assert_eq!(t.detach(&mut mem, 0x80, 0xfa), None, "twice");
    let ctx = decode_root([mem.read(t.root(), 0x100), 0]).unwrap();
    assert!(mem.entries(ctx).iter().all(|&w| w == 0));
    // The context table stays for the next attach; none is made for it.
    assert_eq!((t.table_frames(), t.attached()), (2, 0));
    t.attach(&mut mem, &mut f, 0x80, 0xfa, 2, slpt, Agaw::Bits48)
        .unwrap();
    assert_eq!((t.table_frames(), f.allocated), (2, 2));
}

#[test]
fn destroy_gives_every_frame_back() {
    let (mut mem, mut f) = (Mem::default(), Frames::new(0x100));
    let mut t = table(&mut f);
    let slpt = Frame::from_pfn(0x4000);
    for bus in [0u8, 1, 17, 255] {
        for devfn in [0u8, 9, 255] {
            t.attach(
                &mut mem,
                &mut f,
                bus,
                devfn,
                1 + u16::from(devfn),
                slpt,
                Agaw::Bits39,
            )
            .unwrap();
        }
    }
    t.detach(&mut mem, 17, 9).unwrap();
    assert_eq!((t.table_frames(), t.attached()), (5, 11));
    assert_eq!(f.live.len(), 5);
    t.destroy(&mut mem, &mut f);
    assert!(f.live.is_empty());
    assert_eq!(f.freed, 5);
}

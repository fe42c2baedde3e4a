use super::*;
use crate::iommu::testframes::{Frames, Mem};
use crate::testrng::Rng;
use std::collections::VecDeque;

/// QEMU 7.2's CAP: PSI, MAMV 18, read and write draining.
const QEMU_CAP: Cap = Cap(0x00d2_008c_2226_0206);

/// Whether QEMU processes a descriptor rather than stopping the queue
/// with an invalidation queue error (or aborting): its reserved-bit and
/// field checks, as its source has them (the 7.x masks; newer releases
/// only free bits 11:9 and add the interrupt entry cache check).
fn qemu_processes(d: Descriptor) -> bool {
    let [lo, hi] = d.words();
    match lo & 0xf {
        0x1 => lo & 0xfffc_0000_0000_ffc0 == 0 && hi == 0 && (lo >> 4) & 3 != 0,
        0x2 => {
            lo & 0xffff_ffff_0000_ff00 == 0
                && hi & 0xf80 == 0
                && (lo >> 4) & 3 != 0
                && ((lo >> 4) & 3 != 3 || hi & 0x3f <= 18)
        }
        // 7.x checks nothing here; later releases refuse these bits.
        0x4 => lo & 0xffff_0000_07ff_f1e0 == 0 && hi == 0,
        0x5 => {
            let (sw, interrupt) = (lo & 1 << 5 != 0, lo & 1 << 4 != 0);
            lo & 0xffff_ff80 == 0 && hi & 3 == 0 && (sw || interrupt) && !(sw && interrupt)
        }
        _ => false,
    }
}

#[test]
fn context_cache_descriptors() {
    assert_eq!(Descriptor::context_global().words(), [0x11, 0]);
    assert_eq!(Descriptor::context_domain(0x1234).words(), [0x1234_0021, 0]);
    // Domain 7, source 03:03.0 (0x0318), function mask 0.
    let d = Descriptor::context_device(7, 0x0318);
    assert_eq!(d.words(), [0x0000_0318_0007_0031, 0]);
    assert_eq!(Descriptor::context_devices(7, 0x0318, 0), Ok(d));
    assert_eq!(
        Descriptor::context_devices(7, 0x0318, 3).map(|d| d.words()),
        Ok([0x0003_0318_0007_0031, 0])
    );
    assert_eq!(
        Descriptor::context_devices(7, 0x0318, 4),
        Err(Error::InvalidArgument)
    );
    assert_eq!(d.kind(), 1);
}

#[test]
fn iotlb_descriptors() {
    assert_eq!(Descriptor::iotlb_global(Drain::empty()).words(), [0x12, 0]);
    assert_eq!(Descriptor::iotlb_global(Drain::all()).words(), [0xd2, 0]);
    assert_eq!(
        Descriptor::iotlb_domain(5, Drain::READS).words(),
        [0x0005_00a2, 0]
    );
    assert_eq!(
        Descriptor::iotlb_domain(0xffff, Drain::WRITES).words(),
        [0xffff_0062, 0]
    );
    // One page, leaf only (hint, bit 6 of the high word).
    let d = Descriptor::iotlb_pages(5, 0x1234_5000, 0, true, Drain::empty()).unwrap();
    assert_eq!(d.words(), [0x0005_0032, 0x1234_5040]);
    // 512 pages (am 9) at 2 MiB, hint clear, both drains.
    let d = Descriptor::iotlb_pages(9, 0x20_0000, 9, false, Drain::all()).unwrap();
    assert_eq!(d.words(), [0x0009_00f2, 0x0020_0009]);
    assert_eq!(d.kind(), 2);
    // The address must be aligned to the block; the mask fit the field.
    for (address, mask) in [(0x20_1000, 9), (0x1234_5001, 0), (0x1000, 1), (0, 52)] {
        assert_eq!(
            Descriptor::iotlb_pages(1, address, mask, true, Drain::empty()),
            Err(Error::InvalidArgument),
            "{address:#x} am {mask}"
        );
    }
    assert!(Descriptor::iotlb_pages(1, 1 << 63, 51, false, Drain::empty()).is_ok());
}

#[test]
fn interrupt_entry_cache_descriptors() {
    assert_eq!(Descriptor::interrupt_cache_global().words(), [0x4, 0]);
    assert_eq!(
        Descriptor::interrupt_cache_entry(0x1234).words(),
        [0x0000_1234_0000_0014, 0]
    );
    assert_eq!(
        Descriptor::interrupt_cache_entries(0x40, 3).map(|d| d.words()),
        Ok([0x0000_0040_1800_0014, 0])
    );
    assert_eq!(
        Descriptor::interrupt_cache_entries(0x1234, 0),
        Ok(Descriptor::interrupt_cache_entry(0x1234))
    );
    assert!(Descriptor::interrupt_cache_entries(0, 16).is_ok());
    for (index, mask) in [(0x41, 3), (0x8000, 16), (0, 17)] {
        assert_eq!(
            Descriptor::interrupt_cache_entries(index, mask),
            Err(Error::InvalidArgument)
        );
    }
}

#[test]
fn wait_descriptors() {
    let d = Descriptor::wait(0x1000_0040, 0xabcd_ef01, false).unwrap();
    assert_eq!(d.words(), [0xabcd_ef01_0000_0025, 0x1000_0040]);
    let d = Descriptor::wait(0x1000_0044, 1, true).unwrap();
    assert_eq!(d.words(), [0x0000_0001_0000_0065, 0x1000_0044]);
    assert_eq!(d.kind(), 5);
    for bad in [0x1000_0041, 0x1000_0042, 0x1000_0043] {
        assert_eq!(Descriptor::wait(bad, 1, false), Err(Error::InvalidArgument));
    }
}

#[test]
fn drains_follow_the_capabilities() {
    assert_eq!(Drain::supported_by(QEMU_CAP), Drain::all());
    assert_eq!(Drain::supported_by(Cap(0)), Drain::empty());
    assert_eq!(Drain::supported_by(Cap(1 << 54)), Drain::WRITES);
    assert_eq!(Drain::supported_by(Cap(1 << 55)), Drain::READS);
}

#[test]
fn random_descriptors_never_set_bits_qemu_refuses() {
    let mut rng = Rng(0x0091_0001);
    for _ in 0..20_000 {
        let did = rng.next() as u16;
        let drain = Drain::from_bits_truncate(rng.next());
        let d = match rng.below(10) {
            0 => Descriptor::context_global(),
            1 => Descriptor::context_domain(did),
            2 => match Descriptor::context_devices(did, rng.next() as u16, rng.below(6) as u8) {
                Ok(d) => d,
                Err(_) => continue,
            },
            3 => Descriptor::iotlb_global(drain),
            4 => Descriptor::iotlb_domain(did, drain),
            5 => {
                let mask = rng.below(19) as u8;
                let address = rng.next() & !((PAGE << mask) - 1);
                Descriptor::iotlb_pages(did, address, mask, rng.next() & 1 == 0, drain).unwrap()
            }
            6 => Descriptor::interrupt_cache_global(),
            7 => Descriptor::interrupt_cache_entry(rng.next() as u16),
            8 => {
                let mask = rng.below(17) as u8;
                let index = (rng.next() as u16) & !((1u32 << mask) - 1) as u16;
                let d = Descriptor::interrupt_cache_entries(index, mask).unwrap();
                // The specification's reserved bits: 26:5 and 63:48.
                assert_eq!(d.words()[0] & 0xffff_0000_07ff_ffe0, 0);
                d
            }
            _ => Descriptor::wait(rng.next() & !3, rng.next() as u32, rng.next() & 1 == 0).unwrap(),
        };
        assert!(qemu_processes(d), "{d:x?}");
        // Bits 11:9 (the type's high bits) stay clear everywhere.
        assert_eq!(d.words()[0] & 0xe00, 0);
    }
}

fn flush_of(pages: &[u64], tables: bool) -> Flush {
    let mut f = Flush::NONE;
    for &p in pages {
        f.merge(Flush::page(p * PAGE, tables));
    }
    f
}

#[test]
fn a_single_page_flush_is_page_selective() {
    let all = Drain::all();
    let d = iotlb_for_flush(&Flush::page(0x5000, false), 3, QEMU_CAP).unwrap();
    assert_eq!(d, Descriptor::iotlb_pages(3, 0x5000, 0, true, all).unwrap());
    assert_eq!(d.words(), [0x0003_00f2, 0x5040]);
    // Tables were unlinked too: the hint is clear.
    let d = iotlb_for_flush(&Flush::page(0x5000, true), 3, QEMU_CAP).unwrap();
    assert_eq!(d.words(), [0x0003_00f2, 0x5000]);
    assert_eq!(iotlb_for_flush(&Flush::NONE, 3, QEMU_CAP), None);
}

#[test]
fn an_aligned_block_is_one_page_selective_invalidation() {
    // 16 pages from 0x10000: am 4.
    let f = flush_of(&(0x10..0x20).collect::<Vec<_>>(), false);
    let d = iotlb_for_flush(&f, 1, QEMU_CAP).unwrap();
    assert_eq!(d.words(), [0x0001_00f2, 0x1_0044]);
    // Pages 1 and 2 straddle a 2-page boundary: the aligned block of 4.
    let d = iotlb_for_flush(&flush_of(&[1, 2], true), 1, QEMU_CAP).unwrap();
    assert_eq!(d.words(), [0x0001_00f2, 0x0002]);
    // The largest block QEMU takes: 2^18 pages.
    let d = iotlb_for_flush(&flush_of(&[0, (1 << 18) - 1], false), 1, QEMU_CAP).unwrap();
    assert_eq!(d.words()[1], 0x52);
}

#[test]
fn beyond_mamv_or_without_psi_the_whole_domain_is_invalidated() {
    let domain = Descriptor::iotlb_domain(1, Drain::all());
    let wide = flush_of(&[0, 1 << 18], false);
    assert_eq!(wide.page_selective(), Some((0, 19)));
    assert_eq!(iotlb_for_flush(&wide, 1, QEMU_CAP), Some(domain));
    let no_psi = Cap(QEMU_CAP.0 & !(1 << 39));
    assert_eq!(
        iotlb_for_flush(&Flush::page(0x5000, false), 1, no_psi),
        Some(domain)
    );
    // A unit that drains nothing gets no drain bits.
    let plain = Cap(QEMU_CAP.0 & !(3 << 54));
    assert_eq!(
        iotlb_for_flush(&wide, 1, plain).unwrap().words(),
        [0x0001_0022, 0]
    );
}

#[test]
fn a_detach_invalidates_the_context_then_the_domain() {
    let d = Detached {
        source_id: 0x0318,
        domain_id: 7,
    };
    let [cc, tlb] = detach_invalidations(&d, QEMU_CAP);
    assert_eq!(cc.words(), [0x0000_0318_0007_0031, 0]);
    assert_eq!(tlb.words(), [0x0007_00e2, 0]);
}

fn queue(f: &mut Frames) -> InvalidationQueue {
    InvalidationQueue::new(f, 39).unwrap()
}

fn nth(n: u64) -> Descriptor {
    Descriptor::interrupt_cache_entry(n as u16)
}

fn at(mem: &Mem, q: &InvalidationQueue, slot: usize) -> [u64; 2] {
    [
        mem.read(q.frame(), 2 * slot),
        mem.read(q.frame(), 2 * slot + 1),
    ]
}

#[test]
fn making_a_queue() {
    let mut f = Frames::new(0x100);
    let q = queue(&mut f);
    assert_eq!(q.iqa(), 0x10_0000, "DW 0, QS 0: 256 descriptors");
    assert_eq!(
        (q.tail_register(), q.pending(), q.free_slots()),
        (0, 0, 255)
    );
    q.destroy(&mut f);
    assert!(f.live.is_empty());
    for bits in [0, 12, 53] {
        assert_eq!(
            InvalidationQueue::new(&mut f, bits).unwrap_err(),
            Error::InvalidArgument
        );
    }
    let mut high = Frames::new(1 << 27);
    assert_eq!(
        InvalidationQueue::new(&mut high, 39).unwrap_err(),
        Error::NotSupported
    );
    assert!(high.live.is_empty());
}

#[test]
fn a_full_queue_is_refused() {
    let (mut mem, mut f) = (Mem::default(), Frames::new(0x100));
    let mut q = queue(&mut f);
    for n in 0..255 {
        q.push(&mut mem, nth(n)).unwrap();
    }
    assert_eq!(
        (q.pending(), q.free_slots(), q.tail_register()),
        (255, 0, 0xff0)
    );
    assert_eq!(q.push(&mut mem, nth(255)), Err(Error::LimitReached));
    assert_eq!(at(&mem, &q, 255), [0, 0], "nothing written");
    let frame = q.frame();
    assert_eq!(
        q.submit(&mut mem, 0, &[], frame.addr()),
        Err(Error::LimitReached),
        "not even a lone wait fits"
    );
    // The unit fetched 0x50 of them.
    q.set_head(0x50 << 4).unwrap();
    assert_eq!(q.free_slots(), 0x50);
    q.push(&mut mem, nth(255)).unwrap();
    assert_eq!(q.tail_register(), 0);
}

#[test]
fn heads_outside_what_was_given_are_refused() {
    let (mut mem, mut f) = (Mem::default(), Frames::new(0x100));
    let mut q = queue(&mut f);
    for n in 0..10 {
        q.push(&mut mem, nth(n)).unwrap();
    }
    q.set_head(4 << 4).unwrap();
    for bad in [3 << 4, 11 << 4, 255 << 4, 256 << 4, (4 << 4) | 1, 1 << 40] {
        assert_eq!(q.set_head(bad), Err(Error::InvalidArgument), "{bad:#x}");
    }
    assert_eq!(q.pending(), 6, "nothing changed");
    q.set_head(10 << 4).unwrap();
    assert_eq!(q.pending(), 0);
    q.set_head(10 << 4).unwrap();
}

#[test]
fn the_tail_wraps() {
    let (mut mem, mut f) = (Mem::default(), Frames::new(0x100));
    let mut q = queue(&mut f);
    for n in 0..200 {
        q.push(&mut mem, nth(n)).unwrap();
    }
    q.set_head(200 << 4).unwrap();
    for n in 200..300 {
        q.push(&mut mem, nth(n)).unwrap();
    }
    assert_eq!(q.tail_register(), 44 << 4);
    assert_eq!(q.pending(), 100);
    for n in 200..300u64 {
        assert_eq!(at(&mem, &q, n as usize % 256), nth(n).words());
    }
}

#[test]
fn a_batch_ends_with_a_wait_for_a_fresh_status() {
    let (mut mem, mut f) = (Mem::default(), Frames::new(0x100));
    let mut q = queue(&mut f);
    let status_word = 0x7000_0010;
    let cc = Descriptor::context_global();
    let tlb = Descriptor::iotlb_global(Drain::all());
    let b = q.submit(&mut mem, 0, &[cc, tlb], status_word).unwrap();
    assert_eq!(
        b,
        Batch {
            tail: 0x30,
            status: 1
        }
    );
    assert_eq!(at(&mem, &q, 0), cc.words());
    assert_eq!(at(&mem, &q, 1), tlb.words());
    assert_eq!(at(&mem, &q, 2), [0x0000_0001_0000_0025, status_word]);
    assert!(b.completed(1) && !b.completed(0));
    // The unit fetched all three; the next batch gets the next status.
    let b = q.submit(&mut mem, 3 << 4, &[], status_word).unwrap();
    assert_eq!(
        b,
        Batch {
            tail: 0x40,
            status: 2
        }
    );
    assert_eq!(at(&mem, &q, 3), [0x0000_0002_0000_0025, status_word]);
    // The status never comes round to 0.
    q.next_status = u32::MAX;
    assert_eq!(
        q.submit(&mut mem, 4 << 4, &[], status_word).unwrap().status,
        u32::MAX
    );
    assert_eq!(
        q.submit(&mut mem, 5 << 4, &[], status_word).unwrap().status,
        1
    );
}

#[test]
fn a_batch_that_cannot_go_changes_nothing() {
    let (mut mem, mut f) = (Mem::default(), Frames::new(0x100));
    let mut q = queue(&mut f);
    for n in 0..252 {
        q.push(&mut mem, nth(n)).unwrap();
    }
    let before = *mem.entries(q.frame());
    let tail = q.tail_register();
    let two = [nth(1000), nth(1001)];
    let status = 0x7000_0010;
    // Three slots left: two descriptors and their wait fit; three do not.
    assert_eq!(
        q.submit(&mut mem, 0, &[nth(1); 3], status),
        Err(Error::LimitReached)
    );
    assert_eq!(
        q.submit(&mut mem, 0, &two, status + 2),
        Err(Error::InvalidArgument)
    );
    assert_eq!(
        q.submit(&mut mem, 0, &two, 1 << 39),
        Err(Error::InvalidArgument)
    );
    assert_eq!(
        q.submit(&mut mem, 253 << 4, &two, status),
        Err(Error::InvalidArgument)
    );
    assert_eq!(*mem.entries(q.frame()), before);
    assert_eq!((q.tail_register(), q.pending()), (tail, 252));
    assert_eq!(q.submit(&mut mem, 0, &two, status).unwrap().status, 1);
    assert_eq!(q.free_slots(), 0);
}

#[test]
fn a_random_workload_against_a_simulated_unit() {
    let mut rng = Rng(0x0091_0002);
    let (mut mem, mut f) = (Mem::default(), Frames::new(0x100));
    let mut q = queue(&mut f);
    // What the unit has been given and not fetched, in order; its head.
    let mut given: VecDeque<[u64; 2]> = VecDeque::new();
    let mut head = 0usize;
    let mut statuses = Vec::new();
    let status_word = 0x7000_0010;
    let mut n = 0u64;
    for _ in 0..20_000 {
        if rng.below(3) == 0 {
            // The unit fetches some of what it was given, checking each
            // descriptor is the next one submitted.
            let take = rng.below(given.len() as u64 + 1) as usize;
            for _ in 0..take {
                assert_eq!(
                    [
                        mem.read(q.frame(), 2 * head),
                        mem.read(q.frame(), 2 * head + 1)
                    ],
                    given.pop_front().unwrap()
                );
                head = (head + 1) % QUEUE_ENTRIES;
            }
        }
        let batch: Vec<Descriptor> = (0..rng.below(12)).map(|k| nth(n + k)).collect();
        let room = QUEUE_ENTRIES - 1 - given.len();
        match q.submit(&mut mem, (head as u64) << 4, &batch, status_word) {
            Ok(b) => {
                assert!(batch.len() < room);
                given.extend(batch.iter().map(|d| d.words()));
                given.push_back(
                    Descriptor::wait(status_word, b.status, false)
                        .unwrap()
                        .words(),
                );
                assert_eq!(b.tail, ((head + given.len()) % QUEUE_ENTRIES) as u64 * 16);
                assert_ne!(b.status, 0);
                statuses.push(b.status);
                n += batch.len() as u64;
            }
            Err(e) => assert_eq!((e, batch.len() >= room), (Error::LimitReached, true)),
        }
        assert_eq!(q.pending(), given.len());
        assert!(q.pending() < QUEUE_ENTRIES);
    }
    // Every batch got its own status, counting up.
    assert!(statuses.windows(2).all(|w| w[0] < w[1]));
    assert!(statuses.len() > 1000);
}

use super::*;

/// A queue with links for slots `0..n`, where slot `s` carries id `s + 1000`.
fn queue<const L: usize>(n: usize) -> RunQueue<L> {
    let mut q = RunQueue::<L>::new();
    q.reserve(n).unwrap();
    q
}

#[test]
fn round_robin_within_a_level() {
    let mut q = queue::<4>(8);
    for s in 1..=3 {
        assert!(q.push(s, s as u32 + 1000, 2));
    }
    assert_eq!(q.pop(), Some(1001));
    q.push(1, 1001, 2);
    assert_eq!(q.pop(), Some(1002));
    assert_eq!(q.pop(), Some(1003));
    assert_eq!(q.pop(), Some(1001));
    assert_eq!(q.pop(), None);
    assert!(q.is_empty());
}

#[test]
fn urgent_levels_first_and_clamping() {
    let mut q = queue::<4>(16);
    q.push(10, 10, 3);
    q.push(11, 11, 200); // clamped to level 3
    q.push(12, 12, 0);
    assert!(q.has_at_least(0));
    assert_eq!(q.pop(), Some(12));
    assert!(!q.has_at_least(2));
    assert!(q.has_at_least(3));
    assert_eq!(q.pop(), Some(10));
    assert_eq!(q.pop(), Some(11));
}

#[test]
fn remove_contains_and_double_push() {
    let mut q = queue::<2>(8);
    q.push(5, 5, 0);
    q.push(6, 6, 1);
    assert!(q.push(5, 5, 1), "already queued: stays");
    assert_eq!(q.len(), 2);
    assert!(q.contains(5));
    assert!(q.remove(6));
    assert_eq!(q.len(), 1);
    assert!(q.remove(5));
    assert!(!q.remove(5));
    assert!(!q.contains(5));
    assert!(!q.remove(usize::MAX), "a slot without a link is not queued");
    assert_eq!(q.len(), 0);
    assert_eq!(q.pop(), None);
    assert!(!q.has_at_least(7));
}

#[test]
fn an_unreserved_slot_is_refused_not_grown() {
    let mut q = queue::<2>(4);
    assert!(!q.push(4, 4, 0));
    assert_eq!(q.slots(), 4);
    assert!(q.is_empty());
    q.reserve(2).unwrap();
    assert_eq!(q.slots(), 4, "reserve never shrinks");
}

#[test]
fn removing_from_the_middle_keeps_the_order() {
    let mut q = queue::<1>(8);
    for s in 0..5 {
        q.push(s, s as u32, 0);
    }
    assert!(q.remove(2));
    assert!(q.remove(0));
    assert!(q.remove(4));
    assert_eq!(q.pop(), Some(1));
    assert_eq!(q.pop(), Some(3));
    assert_eq!(q.pop(), None);
}

/// Random pushes, pops and removals against a plain model: the same
/// order out, and `has_at_least` and `has_more_urgent_than` always agree
/// with the levels.
#[test]
fn agrees_with_a_model_under_random_operations() {
    use crate::testrng::Rng;
    const SLOTS: usize = 64;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut q = queue::<8>(SLOTS);
    let mut model: [alloc::vec::Vec<usize>; 8] = Default::default();
    let mut ids = [0u32; SLOTS];
    for step in 0..40_000u32 {
        match rng.below(4) {
            0 | 1 => {
                let slot = rng.below(SLOTS as u64) as usize;
                let prio = rng.below(10) as u8;
                let queued = model.iter().any(|l| l.contains(&slot));
                assert!(q.push(slot, step, prio));
                if !queued {
                    ids[slot] = step;
                    model[(prio as usize).min(7)].push(slot);
                }
            }
            2 => {
                let want = model
                    .iter_mut()
                    .find(|l| !l.is_empty())
                    .map(|l| ids[l.remove(0)]);
                assert_eq!(q.pop(), want, "step {step}");
            }
            _ => {
                let slot = rng.below(SLOTS as u64) as usize;
                let mut was = false;
                for l in &mut model {
                    if let Some(i) = l.iter().position(|&s| s == slot) {
                        l.remove(i);
                        was = true;
                    }
                }
                assert_eq!(q.remove(slot), was, "step {step}");
            }
        }
        for p in 0..10u8 {
            let want = model[..=(p as usize).min(7)].iter().any(|l| !l.is_empty());
            assert_eq!(q.has_at_least(p), want, "step {step} priority {p}");
            let more = model[..(p as usize).min(8)].iter().any(|l| !l.is_empty());
            assert_eq!(q.has_more_urgent_than(p), more, "step {step} priority {p}");
        }
        assert_eq!(q.len(), model.iter().map(|l| l.len()).sum::<usize>());
    }
}

use super::*;
use crate::testrng::Rng;
use std::collections::HashMap;

const SMALL: IdShape = IdShape {
    slot_bits: 3,
    gen_bits: 40,
    wraps: false,
    grow_first: false,
};

/// A test table's shape, by value.
macro_rules! shape {
    ($name:ident = $value:expr) => {
        struct $name;
        impl Shape for $name {
            const SHAPE: IdShape = $value;
        }
    };
}

shape!(Small = SMALL);

#[test]
fn ids_are_never_resolved_after_removal() {
    let mut t: GenTable<u32, Small> = GenTable::new();
    let a = t.insert(1).unwrap();
    assert_eq!(a, 0, "the first id is slot 0, generation 0");
    assert_eq!(t.get(a), Some(&1));
    assert_eq!(t.remove(a), Some(1));
    assert_eq!(t.get(a), None);
    assert_eq!(t.remove(a), None);
    // Only slot 0 exists and is free: it is reused, with a new generation.
    let b = t.insert(2).unwrap();
    assert_eq!(SMALL.slot(b), 0);
    assert_ne!(a, b);
    assert_eq!(t.get(a), None, "the old id stays dead");
    for forged in [b + 1, b + (1 << 3), u64::MAX, 1 << 60, 7] {
        assert_eq!(t.get(forged), None, "{forged:#x}");
    }
}

#[test]
fn free_slots_are_reused_oldest_first() {
    let mut t: GenTable<u32, Small> = GenTable::new();
    let ids: Vec<u64> = (0..4).map(|i| t.insert(i).unwrap()).collect();
    t.remove(ids[2]);
    t.remove(ids[0]);
    t.remove(ids[3]);
    let slots: Vec<usize> = (0..3)
        .map(|i| SMALL.slot(t.insert(10 + i).unwrap()))
        .collect();
    assert_eq!(slots, vec![2, 0, 3]);
}

#[test]
fn a_full_table_is_limit_reached() {
    let mut t: GenTable<u32, Small> = GenTable::new();
    for i in 0..8 {
        t.insert(i).unwrap();
    }
    assert_eq!(t.insert(9), Err((Error::LimitReached, 9)));
    assert_eq!(t.growth_bytes(), 0);
}

#[test]
fn slots_retire_instead_of_wrapping() {
    shape!(
        Tiny = IdShape {
            slot_bits: 1,
            gen_bits: 2,
            wraps: false,
            grow_first: false,
        }
    );
    let mut t: GenTable<u8, Tiny> = GenTable::new();
    let mut seen = std::collections::HashSet::new();
    // Two slots, four generations each: eight ids, then the table is spent.
    for _ in 0..8 {
        let id = t.insert(0).unwrap();
        assert!(seen.insert(id), "id {id} issued twice");
        t.remove(id);
    }
    assert_eq!(t.insert(0), Err((Error::LimitReached, 0)));
}

#[test]
fn wrapping_tables_reuse_ids_only_after_a_full_cycle() {
    shape!(
        Wrapping = IdShape {
            slot_bits: 2,
            gen_bits: 2,
            wraps: true,
            grow_first: true,
        }
    );
    let mut t: GenTable<u8, Wrapping> = GenTable::new();
    let mut last_seen: HashMap<u64, usize> = HashMap::new();
    for step in 0..200 {
        let id = t.insert(0).unwrap();
        if let Some(at) = last_seen.insert(id, step) {
            // 4 slots × 4 generations: an id recurs after 16 issues.
            assert_eq!(step - at, 16, "id {id} recurred early");
        }
        t.remove(id);
    }
}

#[test]
fn a_grow_first_table_keeps_its_slots_so_ids_recur_only_after_a_full_cycle() {
    shape!(
        Pids = IdShape {
            slot_bits: 5,
            gen_bits: 3,
            wraps: true,
            grow_first: true,
        }
    );
    let mut t: GenTable<u8, Pids> = GenTable::new();
    // Fill every slot, then empty the table: a trim here would let later
    // inserts cycle through a few slots (and their generations) quickly.
    let ids: Vec<u64> = (0..32).map(|_| t.insert(0).unwrap()).collect();
    for id in ids {
        t.remove(id);
    }
    assert_eq!(t.slots_made(), 32);
    let mut last_seen: HashMap<u64, usize> = HashMap::new();
    for step in 0..1000 {
        let id = t.insert(0).unwrap();
        if let Some(at) = last_seen.insert(id, step) {
            // 32 slots × 8 generations.
            assert_eq!(step - at, 256, "id {id} recurred early");
        }
        t.remove(id);
    }
}

#[test]
fn pairs_are_two_live_different_objects() {
    let mut t: GenTable<u8, Small> = GenTable::new();
    let a = t.insert(1).unwrap();
    let b = t.insert(2).unwrap();
    let (x, y) = t.get_pair_mut(a, b).unwrap();
    (*x, *y) = (*y, *x);
    assert_eq!((t.get(a), t.get(b)), (Some(&2), Some(&1)));
    let (y, x) = t.get_pair_mut(b, a).unwrap();
    assert_eq!((*x, *y), (2, 1));
    assert!(t.get_pair_mut(a, a).is_none(), "the same object twice");
    t.remove(b);
    assert!(t.get_pair_mut(a, b).is_none(), "a dead id");
    let c = t.insert(3).unwrap();
    assert!(
        t.get_pair_mut(a, c + (1 << 40)).is_none(),
        "a stale generation"
    );
    assert!(t.get_pair_mut(a, 7).is_none(), "a slot never made");
}

#[test]
fn insert_at_reproduces_ids_and_refuses_stale_or_taken_ones() {
    let mut parent: GenTable<u8, Small> = GenTable::new();
    let a = parent.insert(1).unwrap();
    parent.remove(a);
    let b = parent.insert(2).unwrap();
    let c = parent.insert(3).unwrap();
    let mut child: GenTable<u8, Small> = GenTable::new();
    for (id, v) in parent.iter() {
        child.insert_at(id, *v).unwrap();
    }
    assert_eq!(child.get(b), Some(&2));
    assert_eq!(child.get(c), Some(&3));
    assert_eq!(child.get(a), None);
    assert_eq!(child.insert_at(b, 9).unwrap_err().0, InsertAtError::Taken);
    assert_eq!(
        child.insert_at(1 << 62, 9).unwrap_err().0,
        InsertAtError::BadId
    );
    // The child's next insert must not take a slot fork filled.
    let d = child.insert(4).unwrap();
    assert!(![b, c].contains(&d));
    child.remove(b);
    assert_eq!(child.insert_at(b, 5).unwrap_err().0, InsertAtError::Stale);
}

#[test]
fn growth_bytes_predicts_the_storage_added() {
    let mut t: GenTable<[u64; 5], Small> = GenTable::new();
    for i in 0..8 {
        let before = t.storage_bytes();
        let predicted = t.growth_bytes();
        t.insert([i; 5]).unwrap();
        assert_eq!(t.storage_bytes() - before, predicted, "insert {i}");
    }
}

/// A random walk over insert, insert_at, remove and lookups, checked
/// against a map after every step.
#[test]
fn model() {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    shape!(
        Model = IdShape {
            slot_bits: 4,
            gen_bits: 3,
            wraps: false,
            grow_first: false,
        }
    );
    let mut t: GenTable<u64, Model> = GenTable::new();
    let mut model: HashMap<u64, u64> = HashMap::new();
    let mut dead: Vec<u64> = Vec::new();
    for step in 0..20_000u64 {
        match rng.below(4) {
            0 | 1 => match t.insert(step) {
                Ok(id) => {
                    assert!(!model.contains_key(&id));
                    assert!(!dead.contains(&id), "a dead id came back");
                    model.insert(id, step);
                }
                Err((e, v)) => {
                    assert_eq!(v, step);
                    assert_eq!(e, Error::LimitReached);
                }
            },
            2 => {
                let keys: Vec<u64> = model.keys().copied().collect();
                if let Some(&id) = keys.get(rng.below(keys.len().max(1) as u64) as usize) {
                    assert_eq!(t.remove(id), model.remove(&id));
                    dead.push(id);
                }
            }
            _ => {
                let id = if rng.below(2) == 0 {
                    dead.get(rng.below(dead.len().max(1) as u64) as usize)
                        .copied()
                        .unwrap_or(0)
                } else {
                    rng.next() & 0x7f
                };
                assert_eq!(t.get(id), model.get(&id), "lookup {id:#x}");
            }
        }
        assert_eq!(t.len(), model.len());
    }
    let listed: HashMap<u64, u64> = t.iter().map(|(id, v)| (id, *v)).collect();
    assert_eq!(listed, model);
}

#[test]
fn trimmed_tables_give_storage_back_and_ids_stay_dead() {
    shape!(
        Big = IdShape {
            slot_bits: 12,
            gen_bits: 40,
            wraps: false,
            grow_first: false,
        }
    );
    let mut t: GenTable<u64, Big> = GenTable::new();
    let ids: Vec<u64> = (0..1000).map(|i| t.insert(i).unwrap()).collect();
    let full = t.storage_bytes();
    for &id in &ids[1..] {
        t.remove(id);
    }
    assert!(
        t.storage_bytes() * 8 < full,
        "{} of {full}",
        t.storage_bytes()
    );
    assert_eq!(t.get(ids[0]), Some(&0));
    let mut again = std::collections::HashSet::new();
    for i in 0..2000 {
        let id = t.insert(i).unwrap();
        assert!(!ids[1..].contains(&id), "id {id:#x} recurred after a trim");
        again.insert(id);
    }
    assert_eq!(again.len(), 2000);
}

#[test]
fn a_grow_first_table_issues_ids_in_order_and_reserve_one_does_not_skip() {
    shape!(
        GrowFirst = IdShape {
            slot_bits: 4,
            gen_bits: 4,
            wraps: true,
            grow_first: true,
        }
    );
    let mut t: GenTable<u8, GrowFirst> = GenTable::new();
    t.reserve_one().unwrap();
    let ids: Vec<u64> = (0..5).map(|_| t.insert(0).unwrap()).collect();
    assert_eq!(ids, vec![0, 1, 2, 3, 4]);
    t.remove(1);
    t.reserve_one().unwrap();
    assert_eq!(t.insert(0).unwrap(), 5, "a new slot before the freed one");
}

use super::*;

#[test]
fn a_posted_request_is_taken_done_and_published() {
    let m = Mailbox::new();
    assert!(m.is_quiet());
    let g = m.post(0b101);
    assert_eq!(g, 1);
    assert!(!m.is_quiet());
    assert!(!m.is_done(g));
    let mut seen = 0;
    m.service(|kinds| seen = kinds);
    assert_eq!(seen, 0b101);
    assert!(m.is_done(g));
    assert!(m.is_quiet());
}

#[test]
fn requests_before_a_pass_are_merged_into_it() {
    let m = Mailbox::new();
    let a = m.post(1);
    let b = m.post(2);
    assert_eq!((a, b), (1, 2));
    let mut passes = Vec::new();
    m.service(|kinds| passes.push(kinds));
    m.service(|kinds| passes.push(kinds));
    assert_eq!(passes, [3], "one pass takes both, the second finds nothing");
    assert!(m.is_done(a) && m.is_done(b));
}

#[test]
fn kinds_taken_before_their_generation_are_published_by_the_next_pass() {
    // A post whose OR lands between a pass's generation load and its take:
    // that pass does the kinds, the next one publishes the generation.
    let m = Mailbox::new();
    let first = m.post(1);
    let generation = m.requested.load(Ordering::Acquire);
    m.kinds.fetch_or(2, Ordering::AcqRel);
    let kinds = m.kinds.swap(0, Ordering::AcqRel);
    assert_eq!(kinds, 3);
    m.finish(generation);
    let late = m.requested.fetch_add(1, Ordering::AcqRel) + 1;
    assert!(m.is_done(first) && !m.is_done(late));
    assert!(!m.is_quiet(), "the late generation is still owed");
    let mut again = None;
    m.service(|kinds| again = Some(kinds));
    assert_eq!(again, Some(0), "nothing left to do but publish");
    assert!(m.is_done(late) && m.is_quiet());
}

#[test]
fn wait_services_until_done() {
    let m = Mailbox::new();
    let g = m.post(4);
    let mut turns = 0;
    m.wait(g, || {
        turns += 1;
        m.service(|_| {});
    });
    assert_eq!(turns, 1);
    assert!(m.is_done(g));
}

//! loom models of the cross-CPU protocols: each test is a few threads
//! standing for CPUs, run by loom through every interleaving (and every
//! value a weak memory order lets a load see), or every one within a
//! preemption bound where there are too many ([`Bound`]).
//!
//! Rules: a model runs the kernel's own protocol code where it is in
//! kernel-core (`smp::mailbox::Mailbox`, here on loom's atomics) and
//! spells out, as a small stand-in, whatever it assumes of the hardware or
//! of the rest of the kernel (IPI delivery, `sti; hlt`, the kernel lock);
//! each model has a deliberately broken twin marked `should_panic`, so a
//! model that could no longer fail would show. Built only with `--cfg
//! loom` (without it this file is empty), as `cargo xtask test` does:
//! `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p
//! kernel-core --profile loom --test loom_smp`.
#![cfg(loom)]

mod mailbox;
mod wakeup;

/// How far loom goes with a model.
#[derive(Clone, Copy)]
enum Bound {
    /// Every interleaving: the two-CPU models, whose every wait blocks
    /// until something changes, are finite and take a second or two.
    Exhaustive,
    /// Schedules with at most this many preemptions: three CPUs make too
    /// many interleavings to try them all on every test run (2 is ~10^5
    /// executions, ~10 s; 3 is ~10^6, ~75 s), and each bug the broken twins
    /// carry is found within 1.
    Preemptions(usize),
}

/// Runs `model` under loom within `bound` (`LOOM_MAX_PREEMPTIONS`, if
/// set, wins: a deeper run by hand). With `--nocapture` it says how many
/// executions it explored.
fn check(bound: Bound, model: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none()
        && let Bound::Preemptions(n) = bound
    {
        builder.preemption_bound = Some(n);
    }
    let runs = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = runs.clone();
    builder.check(move || {
        counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        model()
    });
    eprintln!(
        "loom explored {} executions",
        runs.load(std::sync::atomic::Ordering::Relaxed)
    );
}

//! Deliberate kernel failures, selected on the kernel command line, so the
//! test suite can check that the kernel's own fault reporting works
//! (`selftest=kernel-fault`, `selftest=stack-overflow`) and that the
//! checked build catches a lock taken out of order (`selftest=lock-order`;
//! see the
//! `tools/images/selftest-*.toml` images).
//!
//! Rules: nothing here runs unless the command line asks for it; user
//! programs cannot reach it.

/// Runs the self-test named on the command line, if any.
pub fn run(cmdline: &str) {
    for word in cmdline.split_whitespace() {
        match word.strip_prefix("selftest=") {
            Some("kernel-fault") => kernel_fault(),
            Some("stack-overflow") => {
                crate::kprintln!("[kernel] selftest: overflowing the kernel stack");
                recurse(0);
            }
            Some("lock-order") => lock_order(),
            Some(other) => crate::kprintln!("[kernel] unknown selftest '{other}' ignored"),
            None => {}
        }
    }
}

fn kernel_fault() {
    crate::kprintln!("[kernel] selftest: reading an unmapped kernel address");
    // An address in the kernel half that nothing maps.
    let p = core::hint::black_box(0xffff_ffff_0000_0000u64) as *const u64;
    // SAFETY: deliberately invalid; the page-fault handler reports it and
    // stops the machine.
    let v = unsafe { p.read_volatile() };
    core::hint::black_box(v);
}

#[inline(never)]
#[allow(unconditional_recursion)] // the point: it only ends in a fault
fn recurse(depth: u64) -> u64 {
    let pad = core::hint::black_box([depth; 64]);
    recurse(depth + 1) + pad[7]
}

/// Takes two locks against the order: the frame table's rank, then the
/// heap's (locks of their own, so no real state is touched). The checked
/// kernel stops there; the release kernel does not check and says so.
fn lock_order() {
    use crate::arch::ordered::Ordered;
    use kernel_core::lockorder::Rank;
    static INNER: Ordered<()> = Ordered::new(Rank::Frames, ());
    static OUTER: Ordered<()> = Ordered::new(Rank::HeapSmall, ());
    crate::kprintln!("[kernel] selftest: taking the heap's rank while holding the frames'");
    let inner = INNER.lock();
    let outer = OUTER.lock();
    drop((outer, inner));
    crate::kprintln!("[kernel] selftest: this kernel does not check the lock order");
}

//! Unit tests of the test-output parsers: the guest protocol, cargo's
//! summaries, and the extra failures a broken run must produce.

use super::*;

fn ok(name: &str) -> Option<TestLine> {
    Some(TestLine {
        name: name.into(),
        verdict: Verdict::Ok,
    })
}

fn failed(name: &str, reason: &str) -> Option<TestLine> {
    Some(TestLine {
        name: name.into(),
        verdict: Verdict::Failed(reason.into()),
    })
}

#[test]
fn test_lines_plain_and_prefixed() {
    assert_eq!(
        parse_test_line("test ipc_roundtrip ... ok"),
        ok("ipc_roundtrip")
    );
    assert_eq!(
        parse_test_line("[mhtest 1] test fork_cow ... ok\r"),
        ok("fork_cow")
    );
    assert_eq!(
        parse_test_line("[mhtest 1] test bad_port ... FAILED: expected Err(NoDevice), got Ok(0)"),
        failed("bad_port", "expected Err(NoDevice), got Ok(0)")
    );
    assert_eq!(parse_test_line("test x::y ... FAILED"), failed("x::y", ""));
    assert_eq!(
        parse_test_line("test slow ... ignored"),
        Some(TestLine {
            name: "slow".into(),
            verdict: Verdict::Ignored
        })
    );
}

#[test]
fn non_test_lines_do_not_match() {
    for line in [
        "",
        "test result: ok. 3 passed; 0 failed; 0 ignored",
        "running 3 tests",
        "[mhtest 1] starting",
        "latest foo ... ok",
        "test  ... ok",
        "test foo ... maybe",
        "test foo... ok",
    ] {
        assert_eq!(parse_test_line(line), None, "{line:?}");
    }
}

#[test]
fn suite_done_is_found_anywhere() {
    assert_eq!(
        parse_suite_done("[mhtest 1] suite done: total=3 ok=2 failed=1"),
        Some(SuiteDone {
            total: 3,
            ok: 2,
            failed: 1,
            skipped: None,
        })
    );
    assert_eq!(
        parse_suite_done("suite done: total=3 ok=3 failed=0 skipped=2").and_then(|d| d.skipped),
        Some(2)
    );
    assert_eq!(parse_suite_done("suite done: total=3"), None);
    assert_eq!(parse_suite_done("suite done: total=x ok=1 failed=0"), None);
}

fn guest(lines: &[&str], outcome: Outcome) -> Tally {
    let mut run = GuestRun::default();
    for line in lines {
        run.feed(line);
    }
    run.finish(outcome)
}

#[test]
fn complete_clean_suite() {
    let tally = guest(
        &[
            "[kernel] booting",
            "[mhtest 1] test a ... ok",
            "[mhtest 1] test b ... FAILED: boom",
            "[mhtest 1] suite done: total=2 ok=1 failed=1",
        ],
        Outcome::Clean,
    );
    assert_eq!(tally.passed, 1);
    assert_eq!(
        tally.failed,
        vec![Failed {
            name: "b".into(),
            reason: "boom".into()
        }]
    );
}

#[test]
fn missing_summary_is_one_failure_named_after_the_cause() {
    let tally = guest(&["test a ... ok"], Outcome::TimedOut(120));
    assert_eq!(tally.passed, 1);
    assert_eq!(tally.failed.len(), 1);
    assert_eq!(
        tally.failed[0].reason,
        "qemu suite did not complete: timed out after 120 s"
    );

    let panic = guest(
        &["test a ... ok", "KERNEL PANIC at kernel/src/x.rs:1: oops"],
        Outcome::KernelPanic,
    );
    assert_eq!(panic.failed.len(), 1);
    assert!(panic.failed[0].reason.contains("kernel panic"));
    assert!(panic.failed[0].reason.contains("oops"));

    let reset = guest(&[], Outcome::Reset);
    assert!(reset.failed[0].reason.contains("triple fault (status 0)"));

    let early = guest(&["test a ... ok"], Outcome::Clean);
    assert!(early.failed[0].reason.contains("did not complete"));
}

#[test]
fn skipped_tests_count_neither_way() {
    assert_eq!(
        parse_test_line("[mhtest 1] test fuzz ... skipped in this pass (heavy: runs in pass smp4)"),
        Some(TestLine {
            name: "fuzz".into(),
            verdict: Verdict::Skipped
        })
    );
    let tally = guest(
        &[
            "test a ... ok",
            "test fuzz ... skipped in this pass",
            "suite done: total=1 ok=1 failed=0 skipped=1",
        ],
        Outcome::Clean,
    );
    assert_eq!(tally.passed, 1);
    assert_eq!(tally.failed, []);
    assert_eq!(tally.skipped, ["fuzz"]);
    let wrong = guest(
        &[
            "test a ... ok",
            "suite done: total=1 ok=1 failed=0 skipped=1",
        ],
        Outcome::Clean,
    );
    assert_eq!(wrong.failed.len(), 1);
    assert!(wrong.failed[0].reason.contains("0 skipped"), "{wrong:?}");
}

#[test]
fn a_labelled_run_names_its_failures_after_the_pass() {
    let mut run = GuestRun::labelled("smp4");
    for line in ["test a ... FAILED: boom", "test b ... ok"] {
        run.feed(line);
    }
    let tally = run.finish(Outcome::InitFailed);
    let names: Vec<&str> = tally.failed.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["a [smp4]", "qemu [smp4]"]);
}

#[test]
fn disagreeing_summary_is_a_failure() {
    let tally = guest(
        &["test a ... ok", "suite done: total=2 ok=2 failed=0"],
        Outcome::Clean,
    );
    assert_eq!(tally.passed, 1);
    assert_eq!(tally.failed.len(), 1);
    assert!(tally.failed[0].reason.contains("total=2 ok=2 failed=0"));
}

#[test]
fn unclean_exit_fails_even_when_all_ok() {
    let tally = guest(
        &["test a ... ok", "suite done: total=1 ok=1 failed=0"],
        Outcome::InitFailed,
    );
    assert_eq!(tally.passed, 1);
    assert_eq!(tally.failed.len(), 1);
    assert!(
        tally.failed[0]
            .reason
            .contains("init exited with a failure status")
    );
}

#[test]
fn cargo_summaries() {
    assert_eq!(
        parse_cargo_summary(
            "test result: ok. 12 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.01s"
        ),
        Some((12, 0))
    );
    assert_eq!(
        parse_cargo_summary("test result: FAILED. 3 passed; 2 failed; 1 ignored"),
        Some((3, 2))
    );
    assert_eq!(parse_cargo_summary("test foo ... ok"), None);
    assert_eq!(parse_cargo_summary("test result: garbage"), None);
}

fn host(lines: &[&str], success: bool) -> Tally {
    let mut run = HostRun::default();
    for line in lines {
        run.feed(line);
    }
    run.finish(success, "exit status: 101")
}

#[test]
fn host_tally_sums_every_summary() {
    let tally = host(
        &[
            "running 2 tests",
            "test a ... ok",
            "test b ... FAILED",
            "test result: FAILED. 1 passed; 1 failed; 0 ignored",
            "test result: ok. 4 passed; 0 failed; 0 ignored",
        ],
        false,
    );
    assert_eq!(tally.passed, 5);
    assert_eq!(tally.failed.len(), 1);
    assert_eq!(tally.failed[0].name, "b");
}

#[test]
fn host_build_error_counts_as_one_failure() {
    let none = host(&["error[E0425]: cannot find value `x`"], false);
    assert_eq!((none.passed, none.failed.len()), (0, 1));
    assert!(none.failed[0].reason.contains("no test summary"));

    let partial = host(&["test result: ok. 2 passed; 0 failed; 0 ignored"], false);
    assert_eq!((partial.passed, partial.failed.len()), (2, 1));
    assert!(partial.failed[0].reason.contains("without a failing test"));

    let clean = host(&["test result: ok. 2 passed; 0 failed; 0 ignored"], true);
    assert_eq!((clean.passed, clean.failed.len()), (2, 0));
}

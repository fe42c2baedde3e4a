//! The bench report: parsing lines, tables, verdicts.

use super::*;

fn result(name: &str, value: u64, iterations: u64) -> Option<BenchLine> {
    Some(BenchLine::Result {
        name: name.to_string(),
        value,
        iterations,
    })
}

#[test]
fn result_lines_with_and_without_a_log_prefix() {
    assert_eq!(
        parse_line("bench null_syscall 236 20000"),
        result("null_syscall", 236, 20000)
    );
    assert_eq!(
        parse_line("[mhbench 1] bench cow_fault 5507 256\r"),
        result("cow_fault", 5507, 256)
    );
    assert_eq!(parse_line("[mhbench 1] bench done"), Some(BenchLine::Done));
}

#[test]
fn failed_lines_keep_their_reason() {
    assert_eq!(
        parse_line("bench cow_fault FAILED cow_copies did not grow (got 3)"),
        Some(BenchLine::Failed {
            name: "cow_fault".to_string(),
            reason: "cow_copies did not grow (got 3)".to_string(),
        })
    );
    assert_eq!(
        parse_line("bench exec_tiny FAILED"),
        Some(BenchLine::Failed {
            name: "exec_tiny".to_string(),
            reason: String::new(),
        })
    );
}

#[test]
fn other_lines_are_not_bench_lines() {
    for line in [
        "",
        "[mhbench 1] hello",
        "mhbench 1 2",
        "bench",
        "bench x",
        "bench x 1",
        "bench x 1 2 3",
        "bench x -1 2",
        "bench x 1.5 2",
        "bench done now",
        "workbench x 1 2",
    ] {
        assert_eq!(parse_line(line), None, "{line:?}");
    }
}

#[test]
fn a_later_occurrence_is_found() {
    assert_eq!(
        parse_line("[bench 1] bench yield_alone 396 10000"),
        result("yield_alone", 396, 10000)
    );
}

#[test]
fn a_clean_complete_run_has_no_problems() {
    let mut r = Report::default();
    for line in ["boot", "bench null_syscall 236 20000", "bench done"] {
        r.feed(line);
    }
    assert_eq!(r.results, [("null_syscall".to_string(), 236, 20000)]);
    assert!(r.problems(Outcome::Clean).is_empty());
    assert_eq!(
        r.machine_lines(Duration::from_millis(1234)),
        "null_syscall 236\ntcg_wall_ms 1234\n"
    );
}

#[test]
fn failures_missing_done_and_bad_ends_are_problems() {
    let mut r = Report::default();
    r.feed("bench cow_fault FAILED nope");
    let problems = r.problems(Outcome::InitFailed);
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert!(problems[0].contains("cow_fault FAILED: nope"));
    assert!(problems[1].contains("bench done"));
    assert!(problems[2].contains("init exited"));
}

#[test]
fn a_missed_goal_is_not_a_problem() {
    let mut r = Report::default();
    r.feed("bench null_syscall 999999 10");
    r.feed("bench done");
    assert!(r.problems(Outcome::Clean).is_empty());
    assert!(r.table().contains("(not yet)"));
}

#[test]
fn table_shows_references_ratios_and_the_ipc_row() {
    let mut r = Report::default();
    r.feed("bench null_syscall 169 20000");
    r.feed("bench yield_alone 396 10000");
    r.feed("bench ipc_round_trip 600 5000");
    let table = r.table();
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 4, "{table}");
    assert!(lines[0].starts_with("benchmark"));
    assert!(lines[1].contains("Linux 6.1 338"), "{table}");
    assert!(lines[1].contains("0.50"), "{table}");
    assert!(lines[1].contains("<= 120 (not yet)"), "{table}");
    assert!(!lines[2].contains("Linux"), "{table}");
    assert!(lines[3].contains("seL4 Call+ReplyRecv 415"), "{table}");
    assert!(lines[3].contains("<= 620 (met)"), "{table}");
}

#[test]
fn scaling_results_get_their_own_table() {
    let mut r = Report::default();
    for line in [
        "bench null_syscall 150 20000",
        "bench scale_fork_exit_wait_n1 50000 50",
        "bench scale_fork_exit_wait_n10 50100 50",
        "bench scale_fork_exit_wait_n100 50200 50",
        "bench scale_fork_exit_wait_n1000 55000 50",
        "bench scale_dev_create_destroy_n1 2500 500",
        "bench scale_dev_create_destroy_n1000 FAILED no memory",
        "bench scale_teardown_no_devices 15000 1",
        "bench scale_teardown_per_device_n1 600 1",
        "bench scale_teardown_per_device_n250 780 250",
    ] {
        r.feed(line);
    }
    let main = r.table();
    assert!(!main.contains("scale_"), "{main}");
    let table = r.scaling_table();
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].contains("N=1000") && lines[0].contains("n1000/n1"),
        "{table}"
    );
    assert!(lines[1].starts_with("fork+exit+wait"), "{table}");
    assert!(
        lines[1].contains("50,100") && lines[1].contains("55,000"),
        "{table}"
    );
    assert!(lines[1].ends_with("1.10"), "{table}");
    assert!(
        lines[2].contains("FAILED") && lines[2].ends_with('-'),
        "{table}"
    );
    assert!(
        lines[3].starts_with("attach+detach") && lines[3].ends_with('-'),
        "{table}"
    );
    assert!(lines[4].contains("780 (N=250)"), "{table}");
    assert!(lines[4].ends_with("1.30 (n250/n1)"), "{table}");
    assert!(table.contains("N=250 instead of 1000"), "{table}");
    assert!(table.contains("the same with none, 15,000"), "{table}");
}

#[test]
fn no_scaling_results_no_scaling_table() {
    let mut r = Report::default();
    r.feed("bench null_syscall 150 20000");
    assert_eq!(r.scaling_table(), "");
}

#[test]
fn ratios_keep_small_values_readable() {
    assert_eq!(ratio(169, 338), "0.50");
    assert_eq!(ratio(20_651_602, 1_700_000_000), "0.0121");
    assert_eq!(ratio(5, 0), "5.00");
}

#[test]
fn thousands_separators() {
    assert_eq!(thousands(0), "0");
    assert_eq!(thousands(999), "999");
    assert_eq!(thousands(1000), "1,000");
    assert_eq!(thousands(465_250), "465,250");
    assert_eq!(thousands(1_700_000_000), "1,700,000,000");
}

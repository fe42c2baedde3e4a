//! `cargo xtask bench`: boots the `bench` image (mhbench as init) headless
//! under QEMU `-icount`, reads its `bench` lines and prints guest
//! instructions per operation next to the reference figures of other
//! kernels measured on the same QEMU (docs/benchmarks.md).
//!
//! Rules: benchmarks are not tests, so a figure that misses its goal never
//! fails the command; it fails (status 1, or 2 for a kernel panic) only
//! when the run itself went wrong: the image did not end cleanly, a
//! benchmark printed `FAILED`, or `bench done` never came. The protocol
//! mhbench follows: `bench <name> <instructions> <iterations>`, `bench
//! <name> FAILED <reason>`, `bench done`, each possibly after a kernel log
//! prefix such as `[mhbench 1] `. Results also go to target/mh/bench.txt as
//! `<name> <value>` lines, the serial log to target/mh/bench-serial.log.
//! Results named `scale_*` (the same operation with N processes or devices
//! already there) go to a table of their own, one row per operation and
//! one column per N.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use crate::error::{Result, io_failure};
use crate::qemu::{self, Outcome, Serial, Stream};
use crate::{Args, build, paths, prereq, progress};

/// The image the benchmarks run in.
const BENCH_IMAGE: &str = "bench";
/// Makes the guest TSC count instructions: one tick per instruction
/// (shift=0), never synchronised with host time (align=off), and idle time
/// skipped rather than slept (sleep=off).
const ICOUNT: [&str; 2] = ["-icount", "shift=0,align=off,sleep=off"];
/// How much of the serial log to show when the run goes wrong.
const TAIL_LINES: usize = 40;

/// [`ICOUNT`] as QEMU arguments.
pub fn icount_args() -> Vec<String> {
    ICOUNT.iter().map(|s| s.to_string()).collect()
}

/// A figure from another kernel, measured in guest instructions on the
/// same QEMU, and MH's goal for the same operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reference {
    /// The mhbench benchmark it compares with.
    pub bench: &'static str,
    /// Whose figure: kernel and operation.
    pub source: &'static str,
    pub value: u64,
    /// MH's goal (at most this many instructions), if it has one.
    pub goal: Option<u64>,
}

/// The references, from the project brief (see docs/benchmarks.md).
pub const REFERENCES: [Reference; 7] = [
    Reference {
        bench: "null_syscall",
        source: "Linux 6.1",
        value: 338,
        goal: Some(120),
    },
    Reference {
        bench: "fork_exit_wait_1mib",
        source: "Linux 6.1",
        value: 465_250,
        goal: Some(230_000),
    },
    Reference {
        bench: "cow_fault",
        source: "Linux 6.1",
        value: 11_250,
        goal: Some(11_250),
    },
    Reference {
        bench: "ipc_round_trip",
        source: "seL4 Call+ReplyRecv",
        value: 415,
        goal: Some(620),
    },
    Reference {
        bench: "ipc_round_trip_c",
        source: "seL4 Call+ReplyRecv",
        value: 415,
        goal: Some(620),
    },
    Reference {
        bench: "boot_to_init",
        source: "Linux 6.1 (approx.)",
        value: 1_700_000_000,
        goal: None,
    },
    Reference {
        bench: "boot_to_shell",
        source: "Linux 6.1 to init (approx.)",
        value: 1_700_000_000,
        goal: None,
    },
];

/// The rows of the scaling table: the name mhbench prints before `_n<N>`
/// and what the row measures.
pub const SCALE_ROWS: [(&str, &str); 4] = [
    ("scale_fork_exit_wait", "fork+exit+wait, N processes live"),
    ("scale_dev_create_destroy", "dev_create+destroy, N devices"),
    ("scale_attach_detach", "attach+detach, N devices"),
    ("scale_teardown_per_device", "teardown per device owned"),
];
/// The scaling table's columns.
pub const SCALE_SIZES: [u64; 4] = [1, 10, 100, 1000];
/// The prefix that puts a result in the scaling table rather than the main
/// one.
const SCALE_PREFIX: &str = "scale_";
/// The teardown of a child owning no device, which the per-device
/// teardown figures have subtracted.
const SCALE_TEARDOWN_BASE: &str = "scale_teardown_no_devices";

/// The goal for the wall time from starting QEMU to the shell's banner.
const BOOT_WALL_GOAL: Duration = Duration::from_millis(300);

/// One parsed `bench` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BenchLine {
    /// `bench <name> <instructions> <iterations>`.
    Result {
        name: String,
        value: u64,
        iterations: u64,
    },
    /// `bench <name> FAILED <reason>`.
    Failed { name: String, reason: String },
    /// `bench done`.
    Done,
}

/// Finds a `bench …` line. `bench` must start a word (so the log prefix
/// `[mhbench 1]` does not match) and every occurrence is tried, because
/// the prefix may itself contain the word. Anything that does not follow
/// the protocol exactly is not a bench line.
pub fn parse_line(line: &str) -> Option<BenchLine> {
    crate::harness::after_word(line, "bench ").find_map(parse_words)
}

fn parse_words(rest: &str) -> Option<BenchLine> {
    let mut words = rest.split_whitespace();
    let name = words.next()?;
    let second = words.next();
    if name == "done" && second.is_none() {
        return Some(BenchLine::Done);
    }
    if second == Some("FAILED") {
        let reason = rest.trim().split_once("FAILED").map_or("", |(_, r)| r);
        return Some(BenchLine::Failed {
            name: name.to_string(),
            reason: reason.trim().to_string(),
        });
    }
    let value = second?.parse().ok()?;
    let iterations = words.next()?.parse().ok()?;
    if words.next().is_some() {
        return None;
    }
    Some(BenchLine::Result {
        name: name.to_string(),
        value,
        iterations,
    })
}

/// Everything a run printed that matters.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// (name, instructions, iterations), in the order printed.
    pub results: Vec<(String, u64, u64)>,
    /// (name, reason).
    pub failed: Vec<(String, String)>,
    pub done: bool,
}

impl Report {
    /// Takes one serial line; returns the bench line it held, if any.
    pub fn feed(&mut self, line: &str) -> Option<BenchLine> {
        let parsed = parse_line(line)?;
        match &parsed {
            BenchLine::Result {
                name,
                value,
                iterations,
            } => self.results.push((name.clone(), *value, *iterations)),
            BenchLine::Failed { name, reason } => self.failed.push((name.clone(), reason.clone())),
            BenchLine::Done => self.done = true,
        }
        Some(parsed)
    }

    /// What went wrong with the run, if anything (never a missed goal).
    pub fn problems(&self, outcome: Outcome) -> Vec<String> {
        let mut problems: Vec<String> = self
            .failed
            .iter()
            .map(|(name, reason)| format!("benchmark {name} FAILED: {reason}"))
            .collect();
        if !self.done {
            problems.push("mhbench never printed `bench done`".to_string());
        }
        if !outcome.is_clean() {
            problems.push(format!(
                "the image did not end cleanly: {}",
                outcome.describe()
            ));
        }
        problems
    }

    /// The machine-readable results: `<name> <value>` per line, then the
    /// run's wall time in milliseconds.
    pub fn machine_lines(&self, wall: Duration) -> String {
        let mut out = String::new();
        for (name, value, _) in &self.results {
            let _ = writeln!(out, "{name} {value}");
        }
        let _ = writeln!(out, "tcg_wall_ms {}", wall.as_millis());
        out
    }

    /// The human-readable table, one row per result plus the reference
    /// that has no MH benchmark yet.
    pub fn table(&self) -> String {
        let mut rows = vec![[
            "benchmark".to_string(),
            "instructions".to_string(),
            "iters".to_string(),
            "reference".to_string(),
            "MH/ref".to_string(),
            "goal".to_string(),
        ]];
        for (name, value, iterations) in &self.results {
            if name.starts_with(SCALE_PREFIX) {
                continue;
            }
            let reference = REFERENCES.iter().find(|r| r.bench == name);
            let (source, ratio, goal) = match reference {
                None => (String::new(), String::new(), String::new()),
                Some(r) => (
                    format!("{} {}", r.source, thousands(r.value)),
                    ratio(*value, r.value),
                    r.goal.map_or(String::new(), |g| {
                        let verdict = if *value <= g { "met" } else { "not yet" };
                        format!("<= {} ({verdict})", thousands(g))
                    }),
                ),
            };
            rows.push([
                name.clone(),
                thousands(*value),
                iterations.to_string(),
                source,
                ratio,
                goal,
            ]);
        }
        layout(&rows, |i| i == 1 || i == 2 || i == 4)
    }

    /// The figure printed as `name`, if any.
    fn value(&self, name: &str) -> Option<u64> {
        self.results
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|&(_, v, _)| v)
    }

    fn has_failed(&self, name: &str) -> bool {
        self.failed.iter().any(|(n, _)| n == name)
    }

    /// The scaling table: one row per [`SCALE_ROWS`] entry, one column per
    /// N, and the ratio of the largest N's figure to N=1's. A row that
    /// cannot reach N=1000 (one process owns at most 255 devices) shows
    /// its largest N in that column, marked. Empty if mhbench printed no
    /// scaling figure at all.
    pub fn scaling_table(&self) -> String {
        let any = |p: &str| {
            self.results.iter().any(|(n, _, _)| n.starts_with(p))
                || self.failed.iter().any(|(n, _)| n.starts_with(p))
        };
        if !any(SCALE_PREFIX) {
            return String::new();
        }
        let last = SCALE_SIZES[SCALE_SIZES.len() - 1];
        let mut header = vec!["operation (instructions each)".to_string()];
        header.extend(SCALE_SIZES.iter().map(|n| format!("N={n}")));
        header.push(format!("n{last}/n1"));
        let mut rows = vec![header];
        let mut notes = Vec::new();
        for (prefix, what) in SCALE_ROWS {
            let mut row = vec![what.to_string()];
            for n in SCALE_SIZES {
                let name = format!("{prefix}_n{n}");
                let cell = match self.value(&name) {
                    Some(v) => thousands(v),
                    None if self.has_failed(&name) => "FAILED".to_string(),
                    None => "-".to_string(),
                };
                row.push(cell);
            }
            // The largest N printed for this row, if past the columns
            // before the last.
            let prev = SCALE_SIZES[SCALE_SIZES.len() - 2];
            let largest = self
                .results
                .iter()
                .filter_map(|(name, v, _)| {
                    let n: u64 = name
                        .strip_prefix(prefix)?
                        .strip_prefix("_n")?
                        .parse()
                        .ok()?;
                    Some((n, *v))
                })
                .filter(|&(n, _)| n > prev)
                .max();
            let first = self.value(&format!("{prefix}_n1"));
            let ratio_cell = match (largest, first) {
                (Some((n, v)), Some(v1)) => {
                    let r = ratio(v, v1);
                    if n == last {
                        r
                    } else {
                        format!("{r} (n{n}/n1)")
                    }
                }
                _ => "-".to_string(),
            };
            if let Some((n, v)) = largest
                && n != last
                && row[SCALE_SIZES.len()] == "-"
            {
                row[SCALE_SIZES.len()] = format!("{} (N={n})", thousands(v));
                notes.push(format!(
                    "{what}: N={n} instead of {last}: one process holds at most 256 handles \
                     (abi::bus::BUS_SLOTS), one of them its registry handle"
                ));
            }
            row.push(ratio_cell);
            rows.push(row);
        }
        let mut out = layout(&rows, |i| i > 0);
        if let Some(base) = self.value(SCALE_TEARDOWN_BASE) {
            notes.push(format!(
                "teardown per device: (kill + reap of a child owning N devices - the same \
                 with none, {}) / N",
                thousands(base)
            ));
        }
        for note in notes {
            let _ = writeln!(out, "  {note}");
        }
        out
    }
}

/// Lays rows out in columns two spaces apart: numbers (the columns
/// `right` says) right-aligned, the rest left.
fn layout<R: AsRef<[String]>>(rows: &[R], right: impl Fn(usize) -> bool) -> String {
    let mut widths = Vec::new();
    for row in rows {
        for (i, cell) in row.as_ref().iter().enumerate() {
            if widths.len() <= i {
                widths.push(0);
            }
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, (cell, &w)) in row.as_ref().iter().zip(&widths).enumerate() {
            if right(i) {
                let _ = write!(line, "{cell:>w$}  ");
            } else {
                let _ = write!(line, "{cell:<w$}  ");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `value / reference` with two significant decimals, more when small
/// (boot_to_init is a hundredth of Linux's).
pub fn ratio(value: u64, reference: u64) -> String {
    let r = value as f64 / reference.max(1) as f64;
    if r >= 0.1 {
        format!("{r:.2}")
    } else {
        format!("{r:.4}")
    }
}

/// 1234567 → "1,234,567".
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `cargo xtask bench`.
pub fn command(args: Args) -> Result<i32> {
    args.finish()?;
    prereq::rust_target()?;
    prereq::host_tool(prereq::QEMU)?;
    let image = build::image(BENCH_IMAGE)?;
    let log = paths::mh_dir().join("bench-serial.log");
    let timeout = image.manifest.timeout_secs;
    progress(&format!(
        "booting the bench image under -icount (time limit {timeout} s, serial log in {})…",
        paths::display(&log)
    ));
    let cmd = qemu::command(&image, &Serial::Stdio, &icount_args())?;
    let mut report = Report::default();
    let started = Instant::now();
    let run =
        qemu::run_headless(
            cmd,
            Duration::from_secs(timeout),
            &log,
            |stream, line| match stream {
                Stream::Qemu => println!("  [qemu] {line}"),
                Stream::Serial => {
                    if report.feed(line).is_some() || line.contains("KERNEL PANIC") {
                        println!("  {}", line.trim());
                    }
                }
            },
        )?;
    let wall = started.elapsed();
    progress(&format!("QEMU: {}", run.outcome.describe()));
    let boot = crate::bootbench::measure()?;
    if let Some(n) = boot.instructions {
        report.results.push(("boot_to_shell".to_string(), n, 1));
    }
    let smp = crate::smpbench::measure()?;

    let results = paths::mh_dir().join("bench.txt");
    let mut lines = report.machine_lines(wall);
    if let Some(w) = boot.wall {
        let _ = writeln!(lines, "boot_to_shell_wall_ms {}", w.as_millis());
    }
    if let Some(r) = boot.scan_mib_per_s() {
        let _ = writeln!(lines, "disk_scan_wall_mib_per_s {r:.0}");
    }
    lines.push_str(&smp.machine_lines());
    std::fs::write(&results, lines).map_err(|e| io_failure("cannot write", &results, &e))?;
    println!();
    print!("{}", report.table());
    let scaling = report.scaling_table();
    if !scaling.is_empty() {
        println!();
        println!("scaling: the same operation with N processes or devices already there");
        print!("{scaling}");
    }
    println!();
    println!(
        "guest instructions per operation (QEMU -icount: not hardware cycles); TCG wall time of the whole run: {:.1} s",
        wall.as_secs_f64()
    );
    if let Some(w) = boot.wall {
        let verdict = if w < BOOT_WALL_GOAL { "met" } else { "not yet" };
        println!(
            "boot to the shell's banner under plain TCG: {} ms wall, from starting QEMU, median of {} runs (goal < {} ms: {verdict})",
            w.as_millis(),
            boot.walls.len(),
            BOOT_WALL_GOAL.as_millis()
        );
    }
    if let (Some(r), Some(kib)) = (boot.scan_mib_per_s(), boot.scan_kib) {
        let runs: Vec<String> = boot
            .scans
            .iter()
            .map(|d| format!("{} ms", d.as_millis()))
            .collect();
        println!(
            "sequential disk read (shell `disk scan`, {} KiB) under plain TCG: {r:.0} MiB/s wall, median of {} runs ({})",
            kib,
            boot.scans.len(),
            runs.join(", ")
        );
    }
    println!();
    print!("{}", smp.report());
    progress(&format!("results in {}", paths::display(&results)));

    let mut problems = report.problems(run.outcome);
    problems.extend(boot.problems);
    problems.extend(smp.problems);
    if problems.is_empty() {
        return Ok(0);
    }
    let skip = run.serial.len().saturating_sub(TAIL_LINES);
    println!(
        "[xtask] last {} serial lines (all of them in {}):",
        run.serial.len() - skip,
        paths::display(&log)
    );
    for line in &run.serial[skip..] {
        println!("  | {line}");
    }
    for problem in &problems {
        eprintln!("error: {problem}");
    }
    Ok(match run.outcome.exit_code() {
        0 => 1,
        code => code,
    })
}

#[cfg(test)]
mod tests;

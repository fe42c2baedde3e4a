//! Reading test output: the guest test runner's serial lines and the host's
//! `cargo test` output, each turned into a tally of passes and failures.
//!
//! Rules (the protocol the guest runner follows):
//! - one line per test, `test <name> ... ok`, `test <name> ... FAILED:
//!   <reason>` or `test <name> ... skipped in this pass` (a heavy test,
//!   run in another pass of `cargo xtask test`), possibly after a kernel
//!   log prefix such as `[mhtest 1] `, so the `test ` word is searched
//!   anywhere in the line;
//! - a final `suite done: total=<N> ok=<K> failed=<M>`, then optionally
//!   ` skipped=<S>`; skipped tests are not in the total;
//! - a kernel panic prints a line containing `KERNEL PANIC`.
//!
//! Guest tests are counted from the per-test lines; skipped ones count
//! neither as passed nor failed. A missing `suite done`, a summary that
//! disagrees with the lines, or a QEMU exit other than clean each add one
//! failure, so a run that died early is never reported as green. A run
//! with a label (the pass: `smp4`) names its failures `<name> [smp4]`.
//! Host tests are counted from cargo's `test result:` summaries; a cargo
//! failure without any failing test (a compile error) counts as one failure.

use crate::qemu::Outcome;

/// A failed test (or a failure of the run itself), for the final list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failed {
    pub name: String,
    pub reason: String,
}

/// Passes and failures of one side (host or guest).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub passed: u64,
    pub failed: Vec<Failed>,
    /// The tests skipped in this pass, by their own (unlabelled) names.
    pub skipped: Vec<String>,
}

impl Tally {
    pub fn failed_count(&self) -> u64 {
        self.failed.len() as u64
    }

    fn fail(&mut self, name: impl Into<String>, reason: impl Into<String>) {
        self.failed.push(Failed {
            name: name.into(),
            reason: reason.into(),
        });
    }
}

/// The verdict of one test line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    Failed(String),
    Ignored,
    /// Not run in this pass (`skipped in this pass`).
    Skipped,
}

/// A parsed `test <name> ... <verdict>` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestLine {
    pub name: String,
    pub verdict: Verdict,
}

/// What follows each occurrence of `word` in `line` that starts a word
/// (is not preceded by a letter, digit or `_`), in order: the guest's
/// protocol lines may come after a log prefix that itself contains the
/// word (`[mhtest 1] test …`), so every occurrence is a candidate.
pub fn after_word<'a>(line: &'a str, word: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    line.match_indices(word).filter_map(move |(start, _)| {
        let word_start = line[..start]
            .chars()
            .next_back()
            .is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
        word_start.then(|| &line[start + word.len()..])
    })
}

/// Finds `test <name> ... <verdict>` in a line. `test ` must start a word
/// (so `mhtest 1]` does not match) and be followed by a name without spaces
/// and " ... "; every occurrence is tried because a log prefix may itself
/// contain the word.
pub fn parse_test_line(line: &str) -> Option<TestLine> {
    const SEP: &str = " ... ";
    for rest in after_word(line, "test ") {
        let name_len = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let (name, after) = rest.split_at(name_len);
        let Some(verdict) = after.strip_prefix(SEP) else {
            continue;
        };
        if name.is_empty() {
            continue;
        }
        let verdict = verdict.trim();
        let verdict = if verdict == "ok" {
            Verdict::Ok
        } else if let Some(reason) = verdict.strip_prefix("FAILED") {
            Verdict::Failed(reason.trim_start_matches(':').trim().to_string())
        } else if verdict.starts_with("ignored") {
            Verdict::Ignored
        } else if verdict.starts_with("skipped") {
            Verdict::Skipped
        } else {
            continue;
        };
        return Some(TestLine {
            name: name.to_string(),
            verdict,
        });
    }
    None
}

/// The runner's closing `suite done: total=N ok=K failed=M` line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SuiteDone {
    pub total: u64,
    pub ok: u64,
    pub failed: u64,
    /// `skipped=S`, which a runner without passes does not print.
    pub skipped: Option<u64>,
}

pub fn parse_suite_done(line: &str) -> Option<SuiteDone> {
    let rest = &line[line.find("suite done:")? + "suite done:".len()..];
    let mut words = rest.split_whitespace();
    let mut field = |key: &str| -> Option<u64> { words.next()?.strip_prefix(key)?.parse().ok() };
    Some(SuiteDone {
        total: field("total=")?,
        ok: field("ok=")?,
        failed: field("failed=")?,
        skipped: field("skipped="),
    })
}

/// Collects the guest's serial lines as they arrive.
#[derive(Debug, Default)]
pub struct GuestRun {
    tally: Tally,
    counted_ok: u64,
    done: Option<SuiteDone>,
    panic_line: Option<String>,
    /// The pass, appended to failure names (`name [smp4]`).
    label: Option<String>,
}

impl GuestRun {
    /// A run whose failures are named `<name> [<label>]`.
    pub fn labelled(label: &str) -> GuestRun {
        GuestRun {
            label: Some(label.to_string()),
            ..GuestRun::default()
        }
    }

    /// A failure's name as the final list shows it.
    fn name(&self, name: &str) -> String {
        match &self.label {
            Some(label) => format!("{name} [{label}]"),
            None => name.to_string(),
        }
    }

    fn fail(&mut self, name: &str, reason: String) {
        let name = self.name(name);
        self.tally.fail(name, reason);
    }

    /// Takes one serial line; returns the test line it held, if any, so the
    /// caller can echo progress.
    pub fn feed(&mut self, line: &str) -> Option<TestLine> {
        if line.contains("KERNEL PANIC") && self.panic_line.is_none() {
            self.panic_line = Some(line.trim().to_string());
        }
        if let Some(done) = parse_suite_done(line) {
            self.done = Some(done);
            return None;
        }
        let test = parse_test_line(line)?;
        match &test.verdict {
            Verdict::Ok => {
                self.tally.passed += 1;
                self.counted_ok += 1;
            }
            Verdict::Failed(reason) => self.fail(&test.name, reason.clone()),
            Verdict::Ignored => {}
            Verdict::Skipped => self.tally.skipped.push(test.name.clone()),
        }
        Some(test)
    }

    /// The tally once QEMU has ended with `outcome`.
    pub fn finish(mut self, outcome: Outcome) -> Tally {
        let counted_failed = self.tally.failed_count();
        match self.done {
            None => {
                let mut cause = outcome.describe();
                if outcome.is_clean() {
                    cause = "the image powered off before the runner finished".to_string();
                }
                if let Some(panic) = &self.panic_line {
                    cause = format!("{cause} ({panic})");
                }
                self.fail("qemu", format!("qemu suite did not complete: {cause}"));
            }
            Some(done) => {
                let counted_skipped = self.tally.skipped.len() as u64;
                if done.total != self.counted_ok + counted_failed
                    || done.ok != self.counted_ok
                    || done.failed != counted_failed
                    || done.skipped.is_some_and(|s| s != counted_skipped)
                {
                    let skipped = done
                        .skipped
                        .map_or(String::new(), |s| format!(" skipped={s}"));
                    self.fail(
                        "suite summary",
                        format!(
                            "the runner reported total={} ok={} failed={}{skipped}, but the serial log has {} ok, {} failed and {counted_skipped} skipped test lines",
                            done.total, done.ok, done.failed, self.counted_ok, counted_failed
                        ),
                    );
                }
                if !outcome.is_clean() {
                    let mut cause = outcome.describe();
                    if let Some(panic) = &self.panic_line {
                        cause = format!("{cause} ({panic})");
                    }
                    self.fail("qemu", format!("the image did not end cleanly: {cause}"));
                }
            }
        }
        self.tally
    }
}

/// `test result: ok. 3 passed; 0 failed; …` → (3, 0).
pub fn parse_cargo_summary(line: &str) -> Option<(u64, u64)> {
    let rest = line.trim().strip_prefix("test result: ")?;
    // Skip the "ok." / "FAILED." word.
    let (_, counts) = rest.split_once(". ")?;
    let mut passed = None;
    let mut failed = None;
    for part in counts.split(';') {
        let mut words = part.split_whitespace();
        let (Some(n), Some(what)) = (words.next(), words.next()) else {
            continue;
        };
        match what {
            "passed" => passed = n.parse().ok(),
            "failed" => failed = n.parse().ok(),
            _ => {}
        }
    }
    Some((passed?, failed?))
}

/// Collects `cargo test`'s stdout.
#[derive(Debug, Default)]
pub struct HostRun {
    passed: u64,
    failed: u64,
    summaries: u64,
    failed_names: Vec<String>,
}

impl HostRun {
    pub fn feed(&mut self, line: &str) {
        if let Some((passed, failed)) = parse_cargo_summary(line) {
            self.passed += passed;
            self.failed += failed;
            self.summaries += 1;
        } else if let Some(TestLine {
            name,
            verdict: Verdict::Failed(_),
        }) = parse_test_line(line)
        {
            self.failed_names.push(name);
        }
    }

    /// The tally once cargo has exited (`success` = its exit status was 0).
    pub fn finish(self, success: bool, status: &str) -> Tally {
        let mut tally = Tally {
            passed: self.passed,
            ..Tally::default()
        };
        // Name the failures cargo printed; if the summaries count more than
        // were named, the rest are listed generically so the count holds.
        let mut named = 0;
        for name in self.failed_names.into_iter().take(self.failed as usize) {
            tally.fail(name, "see its output above");
            named += 1;
        }
        for _ in named..self.failed {
            tally.fail("(unnamed)", "a host test failed; see the output above");
        }
        if self.summaries == 0 {
            tally.fail(
                "cargo test",
                format!("no test summary in cargo's output ({status}); see the output above"),
            );
        } else if !success && self.failed == 0 {
            tally.fail(
                "cargo test",
                format!("cargo test failed ({status}) without a failing test: a build error? see the output above"),
            );
        }
        tally
    }
}

#[cfg(test)]
mod tests;

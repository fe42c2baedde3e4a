//! Self-test images: images whose manifest has an `[expect]` section (by
//! convention named `selftest-*`), booted by `cargo xtask test` after the
//! main suite. Each is one guest test: it passes when QEMU ends the way the
//! manifest says and the serial output contains every expected line. Each
//! boots once, on its manifest's `cpus` (`selftest-smp16`: 16).
//!
//! A program init started that ends badly (`endings`) fails the image
//! unless one of its `[expect]` output lines names init's report of it.
//!
//! They exist for what the in-guest runner cannot check from user space,
//! such as the kernel's own fault report (a kernel fault must stop the
//! machine, so no user program survives to report on it).

use std::time::Duration;

use crate::harness::{Failed, Tally};
use crate::manifest::{self, Expect, ExpectedOutcome};
use crate::qemu::{self, Outcome, Serial, Stream};
use crate::{build, endings};

/// Whether a run matched its expectation; the reason when it did not.
pub fn judge(expect: &Expect, outcome: Outcome, serial: &[String]) -> Result<(), String> {
    let wanted = match expect.outcome {
        ExpectedOutcome::Clean => Outcome::Clean,
        ExpectedOutcome::InitFailed => Outcome::InitFailed,
        ExpectedOutcome::KernelPanic => Outcome::KernelPanic,
    };
    if outcome != wanted {
        return Err(format!(
            "expected {:?}, but {}",
            expect.outcome,
            outcome.describe()
        ));
    }
    for needle in &expect.output {
        if !serial.iter().any(|line| line.contains(needle.as_str())) {
            return Err(format!("the serial output never contained '{needle}'"));
        }
    }
    Ok(())
}

/// Boots every self-test image; one test each.
pub fn run_all() -> Tally {
    let mut tally = Tally::default();
    let names = manifest::available()
        .into_iter()
        .filter(|n| n.starts_with("selftest-"));
    for name in names {
        let result = run_one(&name);
        match result {
            Ok(()) => {
                println!("  test {name} ... ok");
                tally.passed += 1;
            }
            Err(reason) => {
                println!("  test {name} ... FAILED: {reason}");
                tally.failed.push(Failed { name, reason });
            }
        }
    }
    tally
}

fn run_one(name: &str) -> Result<(), String> {
    let image = build::image(name).map_err(|e| e.message)?;
    let expect = image
        .manifest
        .expect
        .clone()
        .ok_or_else(|| format!("{name} has no [expect] section"))?;
    let log = crate::paths::mh_dir().join(format!("{name}-serial.log"));
    let cmd = qemu::command(&image, &Serial::Stdio, &[]).map_err(|e| e.message)?;
    let timeout = Duration::from_secs(image.manifest.timeout_secs);
    let run = qemu::run_headless_typing(cmd, timeout, &log, &expect.input, |stream, line| {
        if stream == Stream::Qemu {
            println!("  [qemu] {line}");
        }
    })
    .map_err(|e| e.message)?;
    judge(&expect, run.outcome, &run.serial)?;
    if !run.host_failures.is_empty() {
        return Err(run.host_failures.join("; "));
    }
    // A program's bad ending the image does not expect fails it too.
    let bad = endings::bad_endings(&image.manifest.modules, &run.serial, &expect.output);
    if bad.is_empty() {
        return Ok(());
    }
    let named: Vec<String> = bad.iter().map(endings::BadEnding::describe).collect();
    Err(format!(
        "programs ended badly, which [expect] does not name: {}",
        named.join("; ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expect(outcome: ExpectedOutcome, output: &[&str]) -> Expect {
        Expect {
            outcome,
            output: output.iter().map(|s| s.to_string()).collect(),
            input: Vec::new(),
        }
    }

    #[test]
    fn matching_outcome_and_output_passes() {
        let e = expect(ExpectedOutcome::KernelPanic, &["KERNEL PANIC", "backtrace"]);
        let serial = vec![
            "x KERNEL PANIC: #PF".to_string(),
            "  backtrace (..)".to_string(),
        ];
        assert_eq!(judge(&e, Outcome::KernelPanic, &serial), Ok(()));
    }

    #[test]
    fn wrong_outcome_fails() {
        let e = expect(ExpectedOutcome::KernelPanic, &[]);
        let err = judge(&e, Outcome::Reset, &[]).unwrap_err();
        assert!(err.contains("KernelPanic"), "{err}");
    }

    #[test]
    fn missing_line_fails() {
        let e = expect(ExpectedOutcome::Clean, &["needle"]);
        let err = judge(&e, Outcome::Clean, &["hay".to_string()]).unwrap_err();
        assert!(err.contains("needle"), "{err}");
    }
}

//! The guest side of `cargo xtask test`: the `test` image booted once per
//! pass, each pass on its own number of CPUs, and the runner's report of
//! each read into one tally.
//!
//! Rules: every pass overrides the image's `cpus` and adds `pass=<label>`
//! to the runner's arguments (`mhtest runner pass=smp4`), so the runner
//! knows which pass it is in: its heavy tests run in one pass only (see
//! tests/runner/src/suite.rs) and print `skipped in this pass` in the
//! others, which counts neither as passed nor failed. A test skipped in
//! every pass is a failure, so a renamed pass cannot silently drop the
//! fuzzer. Test names carry the pass (`test fork_cow [smp4] ... ok`,
//! failures `fork_cow [smp4]`), each pass has its own serial log
//! (`target/mh/test-<label>-serial.log`), and its wall time is printed.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::error::Failure;
use crate::harness::{Failed, GuestRun, Tally, Verdict};
use crate::image::Image;
use crate::qemu::{self, Serial, Stream};
use crate::run::cpus_phrase;
use crate::{build, paths, progress};

/// The image the guest tests run in.
const TEST_IMAGE: &str = "test";
/// How much of the serial log to show when a pass fails.
const TAIL_LINES: usize = 40;

/// One boot of the test image.
#[derive(Clone, Copy, Debug)]
pub struct Pass {
    /// Its name: the runner's `pass=` argument, the suffix of its test
    /// names and part of its log's name.
    pub label: &'static str,
    /// The CPUs it boots on, whatever test.toml says.
    pub cpus: u32,
}

/// The passes, in order: on one CPU (the kernel as it has always run),
/// then on four with multi-threaded TCG, where CPUs really run at once.
/// The runner's `HEAVY_PASS` names the second.
pub const PASSES: [Pass; 2] = [
    Pass {
        label: "smp1",
        cpus: 1,
    },
    Pass {
        label: "smp4",
        cpus: 4,
    },
];

/// What the passes found, and how long each took.
#[derive(Debug, Default)]
pub struct Passes {
    pub tally: Tally,
    /// Each pass's label and wall time (boot to power-off).
    pub times: Vec<(&'static str, Duration)>,
}

/// Builds the test image and boots it once per pass.
pub fn run_all() -> Passes {
    let mut out = Passes::default();
    let mut image = match build::image(TEST_IMAGE) {
        Ok(image) => image,
        Err(e) => {
            out.tally.failed.push(failed_before_boot("guest build", &e));
            return out;
        }
    };
    let runner_args = image.manifest.modules[0].args.clone();
    // Tests that ran (passed or failed) in some pass, and how many passes
    // skipped each skipped test.
    let mut ran = BTreeSet::new();
    let mut skipped: BTreeMap<String, usize> = BTreeMap::new();
    for pass in PASSES {
        image.manifest.cpus = pass.cpus;
        image.manifest.modules[0].args = runner_args.clone();
        if let Err(e) = image
            .manifest
            .push_init_arg(&format!("pass={}", pass.label))
        {
            let name = format!("pass {}", pass.label);
            out.tally.failed.push(failed_before_boot(&name, &e));
            continue;
        }
        let started = Instant::now();
        let tally = one_pass(&image, pass, &mut ran);
        let took = started.elapsed();
        progress(&format!(
            "pass {} ({}): {} passed, {} failed, {} skipped in this pass; {:.1} s",
            pass.label,
            cpus_phrase(pass.cpus),
            tally.passed,
            tally.failed.len(),
            tally.skipped.len(),
            took.as_secs_f64()
        ));
        out.times.push((pass.label, took));
        out.tally.passed += tally.passed;
        out.tally.failed.extend(tally.failed);
        for name in tally.skipped {
            *skipped.entry(name).or_default() += 1;
        }
    }
    // Only a test every pass skipped: one a crashed pass never reached is
    // already counted in that pass's failure.
    let everywhere = skipped
        .into_iter()
        .filter(|(name, n)| *n == PASSES.len() && !ran.contains(name));
    for (name, _) in everywhere {
        out.tally.failed.push(Failed {
            name,
            reason: format!(
                "skipped in every pass: the runner's HEAVY_PASS (tests/runner/src/suite.rs) \
                 must name one of xtask's passes ({})",
                PASSES.map(|p| p.label).join(", ")
            ),
        });
    }
    out
}

/// Boots the image for one pass and reads the runner's report; adds the
/// names of the tests that ran to `ran`.
fn one_pass(image: &Image, pass: Pass, ran: &mut BTreeSet<String>) -> Tally {
    let label = pass.label;
    let log = paths::mh_dir().join(format!("test-{label}-serial.log"));
    let timeout = image.manifest.timeout_secs;
    progress(&format!(
        "pass {label}: booting the test image on {} (time limit {timeout} s, serial log in {})…",
        cpus_phrase(pass.cpus),
        paths::display(&log)
    ));
    let cmd = match qemu::command(image, &Serial::Stdio, &[]) {
        Ok(cmd) => cmd,
        Err(e) => return failed_pass(&format!("guest disks [{label}]"), &e),
    };
    let mut run = GuestRun::labelled(label);
    let headless =
        qemu::run_headless(
            cmd,
            Duration::from_secs(timeout),
            &log,
            |stream, line| match stream {
                Stream::Qemu => println!("  [qemu] {line}"),
                Stream::Serial => {
                    if let Some(test) = run.feed(line) {
                        let name = &test.name;
                        match &test.verdict {
                            Verdict::Ok => println!("  test {name} [{label}] ... ok"),
                            Verdict::Failed(reason) => {
                                println!("  test {name} [{label}] ... FAILED: {reason}")
                            }
                            Verdict::Ignored => println!("  test {name} [{label}] ... ignored"),
                            Verdict::Skipped => {
                                println!("  test {name} [{label}] ... skipped in this pass")
                            }
                        }
                        if matches!(test.verdict, Verdict::Ok | Verdict::Failed(_)) {
                            ran.insert(test.name);
                        }
                    } else if line.contains("suite done:") || line.contains("KERNEL PANIC") {
                        println!("  {}", line.trim());
                    }
                }
            },
        );
    let headless = match headless {
        Ok(headless) => headless,
        Err(e) => return failed_pass(&format!("qemu [{label}]"), &e),
    };
    progress(&format!("QEMU: {}", headless.outcome.describe()));
    let tally = run.finish(headless.outcome);
    if !tally.failed.is_empty() {
        let serial = &headless.serial;
        let skip = serial.len().saturating_sub(TAIL_LINES);
        println!(
            "[xtask] last {} serial lines of pass {label} (all of them in {}):",
            serial.len() - skip,
            paths::display(&log)
        );
        for line in &serial[skip..] {
            println!("  | {line}");
        }
    }
    tally
}

/// A failure before any test could run, reported at once.
fn failed_before_boot(name: &str, e: &Failure) -> Failed {
    eprintln!("error: {e}");
    Failed {
        name: name.to_string(),
        reason: e.message.clone(),
    }
}

/// A pass's tally when it could not boot at all: one failure.
fn failed_pass(name: &str, e: &Failure) -> Tally {
    Tally {
        failed: vec![failed_before_boot(name, e)],
        ..Tally::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_passes_are_one_cpu_then_four() {
        let passes: Vec<(&str, u32)> = PASSES.iter().map(|p| (p.label, p.cpus)).collect();
        assert_eq!(passes, [("smp1", 1), ("smp4", 4)]);
        for pass in PASSES {
            assert!(crate::manifest::check_cpus(pass.cpus.into()).is_ok());
        }
    }

    #[test]
    fn the_runner_s_heavy_pass_is_one_of_them() {
        // The runner's source names the pass its heavy tests run in; were
        // it none of these, the fuzzer would be skipped in every pass (a
        // failure at run time, caught here before a boot).
        let source = std::fs::read_to_string(paths::root().join("tests/runner/src/suite.rs"))
            .expect("tests/runner/src/suite.rs");
        let heavy = source
            .lines()
            .find_map(|l| l.strip_prefix("pub const HEAVY_PASS: &str = \""))
            .and_then(|rest| rest.strip_suffix("\";"))
            .expect("a `pub const HEAVY_PASS: &str = \"…\";` line");
        assert!(PASSES.iter().any(|p| p.label == heavy), "{heavy}");
    }

    #[test]
    fn the_pass_fits_on_the_runner_s_command_line() {
        let mut m = crate::manifest::load(TEST_IMAGE).unwrap();
        for pass in PASSES {
            let mut m = m.clone();
            m.push_init_arg(&format!("pass={}", pass.label)).unwrap();
            assert!(
                m.initrd()
                    .starts_with(&format!("mhtest runner pass={},", pass.label))
            );
        }
        assert!(m.push_init_arg("pass=smp4").is_ok());
    }
}

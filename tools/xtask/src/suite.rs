//! `cargo xtask test`: the host unit tests and the C header's staleness
//! check, then the `test` image booted headless, then one verdict line.
//!
//! Rules: whatever goes wrong after the arguments are accepted (a missing
//! tool, a build error, a hung guest) is counted as a failure, so the output
//! always ends with exactly `N passed, M failed` as its last line and the
//! exit status is 0 iff M is 0. Output is streamed as it comes so a long run
//! shows progress; the full serial log is kept in target/mh/test-serial.log.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::thread;
use std::time::Duration;

use crate::error::{Failure, Result, spawn_failure};
use crate::harness::{Failed, GuestRun, HostRun, Tally, Verdict};
use crate::qemu::{self, Serial, Stream};
use crate::{Args, build, header, paths, prereq, progress};

/// The image the guest tests run in.
const TEST_IMAGE: &str = "test";
/// How much of the serial log to show when the guest side fails.
const TAIL_LINES: usize = 40;

/// `cargo xtask test`.
pub fn command(args: Args) -> Result<i32> {
    args.finish()?;
    let mut host = Tally::default();
    let mut guest = Tally::default();

    let setup = prereq::rust_target().and_then(|()| prereq::host_tool(prereq::QEMU));
    match setup {
        Err(e) => {
            eprintln!("error: {e}");
            guest.failed.push(failure("setup", &e));
        }
        Ok(()) => {
            host = host_tests();
            header_test(&mut host);
            guest = guest_tests();
            progress("booting the self-test images (expected kernel failures)…");
            let selftests = crate::selftest::run_all();
            guest.passed += selftests.passed;
            guest.failed.extend(selftests.failed);
        }
    }

    let failed = host.failed_count() + guest.failed_count();
    if failed > 0 {
        println!();
        println!("failures:");
        for (side, tally) in [("host", &host), ("guest", &guest)] {
            for f in &tally.failed {
                println!("  {side}: {}: {}", f.name, f.reason);
            }
        }
    }
    // Every child (cargo, QEMU) has exited and its output threads are
    // joined, so nothing can print after this line.
    println!("{} passed, {failed} failed", host.passed + guest.passed);
    Ok(if failed == 0 { 0 } else { 1 })
}

fn failure(name: &str, e: &Failure) -> Failed {
    Failed {
        name: name.to_string(),
        reason: e.message.clone(),
    }
}

/// Runs `cargo test` (the workspace's default members: the host-buildable
/// crates), streaming its output and reading its summaries.
fn host_tests() -> Tally {
    progress("running host unit tests (cargo test)…");
    match run_cargo_test() {
        Ok(tally) => tally,
        Err(e) => {
            eprintln!("error: {e}");
            let mut tally = Tally::default();
            tally.failed.push(failure("cargo test", &e));
            tally
        }
    }
}

fn run_cargo_test() -> Result<Tally> {
    let cargo = build::cargo();
    // --no-fail-fast: a failure in one crate must not hide the counts of
    // the others.
    let mut child = Command::new(&cargo)
        .args(["test", "--no-fail-fast"])
        .current_dir(paths::root())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| spawn_failure(&cargo, &e))?;

    // stderr (compiler messages) is passed through from its own thread so
    // neither pipe can fill up and stall cargo.
    let stderr = child.stderr.take().map(|pipe| {
        thread::spawn(move || {
            for line in BufReader::new(pipe)
                .lines()
                .map_while(std::result::Result::ok)
            {
                eprintln!("{line}");
            }
        })
    });
    let mut run = HostRun::default();
    if let Some(pipe) = child.stdout.take() {
        let mut reader = BufReader::new(pipe);
        let mut buf = Vec::new();
        while matches!(reader.read_until(b'\n', &mut buf), Ok(n) if n > 0) {
            let line = String::from_utf8_lossy(&buf);
            let line = line.trim_end_matches(['\n', '\r']);
            println!("{line}");
            run.feed(line);
            buf.clear();
        }
    }
    if let Some(thread) = stderr {
        let _ = thread.join();
    }
    let status = child
        .wait()
        .map_err(|e| Failure::new(format!("waiting for cargo test failed: {e}")))?;
    Ok(run.finish(status.success(), &status.to_string()))
}

/// `cargo xtask header --check`, counted as one host test: a stale mh.h
/// would let C programs compile against numbers the kernel no longer uses.
fn header_test(tally: &mut Tally) {
    const NAME: &str = "abi/include/mh.h is up to date";
    progress("checking the generated C header (cargo xtask header --check)…");
    match header::check() {
        Ok(()) => {
            println!("test {NAME} ... ok");
            tally.passed += 1;
        }
        Err(e) => {
            println!("test {NAME} ... FAILED: {e}");
            tally.failed.push(failure("header", &e));
        }
    }
}

/// Builds and boots the test image and reads the runner's report.
fn guest_tests() -> Tally {
    let image = match build::image(TEST_IMAGE) {
        Ok(image) => image,
        Err(e) => return failed_before_boot("guest build", &e),
    };
    let log = paths::mh_dir().join("test-serial.log");
    let timeout = image.manifest.timeout_secs;
    progress(&format!(
        "booting test image (time limit {timeout} s, serial log in {})…",
        paths::display(&log)
    ));
    let cmd = match qemu::command(&image, &Serial::Stdio, &[]) {
        Ok(cmd) => cmd,
        Err(e) => return failed_before_boot("guest disks", &e),
    };
    let mut run = GuestRun::default();
    let headless =
        qemu::run_headless(
            cmd,
            Duration::from_secs(timeout),
            &log,
            |stream, line| match stream {
                Stream::Qemu => println!("  [qemu] {line}"),
                Stream::Serial => {
                    if let Some(test) = run.feed(line) {
                        match test.verdict {
                            Verdict::Ok => println!("  test {} ... ok", test.name),
                            Verdict::Failed(reason) => {
                                println!("  test {} ... FAILED: {reason}", test.name)
                            }
                            Verdict::Ignored => println!("  test {} ... ignored", test.name),
                        }
                    } else if line.contains("suite done:") || line.contains("KERNEL PANIC") {
                        println!("  {}", line.trim());
                    }
                }
            },
        );
    let headless = match headless {
        Ok(headless) => headless,
        Err(e) => return failed_before_boot("qemu", &e),
    };
    progress(&format!("QEMU: {}", headless.outcome.describe()));
    let tally = run.finish(headless.outcome);
    if !tally.failed.is_empty() {
        let serial = &headless.serial;
        let skip = serial.len().saturating_sub(TAIL_LINES);
        println!(
            "[xtask] last {} serial lines (all of them in {}):",
            serial.len() - skip,
            paths::display(&log)
        );
        for line in &serial[skip..] {
            println!("  | {line}");
        }
    }
    tally
}

/// The guest side's tally when it could not boot at all: one failure,
/// reported at once.
fn failed_before_boot(name: &str, e: &Failure) -> Tally {
    eprintln!("error: {e}");
    let mut tally = Tally::default();
    tally.failed.push(failure(name, e));
    tally
}

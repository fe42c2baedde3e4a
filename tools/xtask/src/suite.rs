//! `cargo xtask test`: the host unit tests, the loom models of the
//! cross-CPU protocols and the C header's staleness check, then the `test` image booted headless once per pass (on 1 CPU,
//! then on 4: see `passes`), then the self-test images, then one verdict
//! line.
//!
//! Rules: whatever goes wrong after the arguments are accepted (a missing
//! tool, a build error, a hung guest) is counted as a failure, so the output
//! always ends with exactly `N passed, M failed` as its last line and the
//! exit status is 0 iff M is 0. Output is streamed as it comes so a long run
//! shows progress; the full serial log of each pass is kept in
//! target/mh/test-<pass>-serial.log.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::Instant;

use crate::error::{Failure, Result, spawn_failure};
use crate::harness::{Failed, HostRun, Tally};
use crate::{Args, build, header, paths, prereq, progress};

/// `cargo xtask test`.
pub fn command(args: Args) -> Result<i32> {
    args.finish()?;
    let mut host = Tally::default();
    let mut guest = Tally::default();
    let mut times = Vec::new();

    let setup = prereq::rust_target().and_then(|()| prereq::host_tool(prereq::QEMU));
    match setup {
        Err(e) => {
            eprintln!("error: {e}");
            guest.failed.push(failure("setup", &e));
        }
        Ok(()) => {
            host = host_tests();
            let loom = loom_tests();
            host.passed += loom.passed;
            host.failed.extend(loom.failed);
            header_test(&mut host);
            let passes = crate::passes::run_all();
            guest = passes.tally;
            progress("booting the self-test images (each once, on its own cpus)…");
            let started = Instant::now();
            let selftests = crate::selftest::run_all();
            times = passes.times;
            times.push(("self-tests", started.elapsed()));
            guest.passed += selftests.passed;
            guest.failed.extend(selftests.failed);
        }
    }
    if !times.is_empty() {
        let times: Vec<String> = times
            .iter()
            .map(|(what, took)| format!("{what} {:.1} s", took.as_secs_f64()))
            .collect();
        progress(&format!("guest wall times: {}", times.join(", ")));
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
    // --no-fail-fast: a failure in one crate must not hide the counts of
    // the others.
    counted(
        "cargo test",
        run_cargo_test(&["test", "--no-fail-fast"], None),
    )
}

/// The loom models of the TLB mailbox and the idle CPU's wake-up
/// (kernel-core/tests/loom_smp): `--cfg loom` switches kernel-core's
/// protocol atomics to loom's, so they are built apart, in
/// `target/loom` with the `loom` profile (optimized, no LTO).
fn loom_tests() -> Tally {
    progress("running the loom models of the cross-CPU protocols…");
    let args = [
        "test",
        "-p",
        "kernel-core",
        "--profile",
        "loom",
        "--test",
        "loom_smp",
    ];
    counted(
        "loom models",
        run_cargo_test(&args, Some(&paths::loom_target_dir())),
    )
}

/// A run's tally, or one failure named `name` if cargo could not run.
fn counted(name: &str, run: Result<Tally>) -> Tally {
    run.unwrap_or_else(|e| {
        eprintln!("error: {e}");
        let mut tally = Tally::default();
        tally.failed.push(failure(name, &e));
        tally
    })
}

/// Runs cargo with `args` (a `cargo test`), streaming its output and
/// reading its summaries; with `loom_dir`, as a `--cfg loom` build in
/// that target directory.
fn run_cargo_test(args: &[&str], loom_dir: Option<&Path>) -> Result<Tally> {
    let cargo = build::cargo();
    let mut command = Command::new(&cargo);
    command.args(args);
    if let Some(dir) = loom_dir {
        // The encoded form wins over RUSTFLAGS and any configured flags,
        // so nothing in the caller's environment can drop the cfg.
        command
            .arg("--target-dir")
            .arg(dir)
            .env("CARGO_ENCODED_RUSTFLAGS", "--cfg\u{1f}loom");
    }
    let mut child = command
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

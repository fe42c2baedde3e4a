//! The wall-time figures of several CPUs in `cargo xtask bench`, under
//! multi-threaded TCG (QEMU refuses it with `-icount`, so these are host
//! time, noisy, and reported as medians of several boots): the
//! `bench-smp` image's round trips (one pair against two pairs on two
//! CPUs, and across CPUs), and the boot to the shell's banner of the
//! `bench-boot` image on 1, 2 and 4 CPUs with 256 MiB, and on 2 CPUs with
//! 8 GiB.
//!
//! Rules: as every benchmark, a figure that misses its goal never fails
//! the command; a boot that does not end cleanly or prints no figure is a
//! problem, reported with its log. Both configurations of a comparison
//! are booted in each round, one after the other, so a host that gets
//! busier part way through disturbs both alike.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use crate::bootbench::{BANNER, median};
use crate::error::Result;
use crate::image::Image;
use crate::manifest::Input;
use crate::qemu::{self, Serial, Stream};
use crate::{build, paths, progress};

/// Boots of `bench-smp` (and rounds of boot timings).
pub const RUNS: usize = 5;
/// The boot configurations timed: (CPUs, MiB of RAM).
pub const BOOTS: [(u32, u32); 4] = [(1, 256), (2, 256), (4, 256), (2, 8192)];
/// The goal for two pairs against one on two CPUs (thousandths).
pub const SPEEDUP_GOAL_MILLI: u64 = 1700;

/// What the boots measured.
#[derive(Debug, Default)]
pub struct SmpFigures {
    /// Each `smp <name> <value>` figure, one value per boot.
    pub values: BTreeMap<String, Vec<u64>>,
    /// Wall time to the banner per boot configuration, one per round.
    pub boots: BTreeMap<(u32, u32), Vec<Duration>>,
    pub problems: Vec<String>,
}

/// Boots everything and collects the figures.
pub fn measure() -> Result<SmpFigures> {
    let mut figures = SmpFigures::default();
    let smp = build::image("bench-smp")?;
    for run in 1..=RUNS {
        progress(&format!(
            "booting bench-smp under multi-threaded TCG ({run} of {RUNS}: round trips on 2 CPUs)…"
        ));
        figures.smp_boot(&smp, run)?;
    }
    let boot = build::image("bench-boot")?;
    for run in 1..=RUNS {
        progress(&format!(
            "booting bench-boot on 1, 2, 4 CPUs and with 8 GiB ({run} of {RUNS}: wall time to the shell)…"
        ));
        for (cpus, mib) in BOOTS {
            figures.timed_boot(&boot, cpus, mib, run)?;
        }
    }
    Ok(figures)
}

impl SmpFigures {
    fn smp_boot(&mut self, image: &Image, run: usize) -> Result<()> {
        let cmd = qemu::command(image, &Serial::Stdio, &[])?;
        let log = paths::mh_dir().join(format!("bench-smp-{run}.log"));
        let timeout = Duration::from_secs(image.manifest.timeout_secs);
        let mut done = false;
        let mut values = Vec::new();
        let mut failed = Vec::new();
        let outcome = qemu::run_headless(cmd, timeout, &log, |stream, line| {
            if stream != Stream::Serial {
                return;
            }
            let Some(rest) = line.split("smp ").nth(1) else {
                return;
            };
            let words: Vec<&str> = rest.split_whitespace().collect();
            match words.as_slice() {
                ["done"] => done = true,
                [name, "FAILED", ..] => failed.push(format!("smp {name} FAILED")),
                [name, value] => {
                    if let Ok(v) = value.parse::<u64>() {
                        values.push((name.to_string(), v));
                    }
                }
                _ => {}
            }
        })?
        .outcome;
        for (name, v) in values {
            self.values.entry(name).or_default().push(v);
        }
        let shown = paths::display(&log);
        self.problems
            .extend(failed.into_iter().map(|f| format!("{f} (log: {shown})")));
        if !done || !outcome.is_clean() {
            self.problems.push(format!(
                "bench-smp run {run} did not finish cleanly: {} (log: {shown})",
                outcome.describe()
            ));
        }
        Ok(())
    }

    fn timed_boot(&mut self, image: &Image, cpus: u32, mib: u32, run: usize) -> Result<()> {
        let mut image = image.clone();
        image.manifest.cpus = cpus;
        image.manifest.memory_mib = mib;
        let cmd = qemu::command(&image, &Serial::Stdio, &[])?;
        let log = paths::mh_dir().join(format!("bench-boot-smp{cpus}-{mib}m-{run}.log"));
        let timeout = Duration::from_secs(image.manifest.timeout_secs);
        let input = [Input {
            after: BANNER.to_string(),
            bytes: b"exit\n".to_vec(),
            host: None,
        }];
        let started = Instant::now();
        let mut banner_at = None;
        let outcome = qemu::run_headless_typing(cmd, timeout, &log, &input, |stream, line| {
            if stream == Stream::Serial && banner_at.is_none() && line.contains(BANNER) {
                banner_at = Some(started.elapsed());
            }
        })?
        .outcome;
        match banner_at {
            Some(t) if outcome.is_clean() => self.boots.entry((cpus, mib)).or_default().push(t),
            _ => self.problems.push(format!(
                "bench-boot on {cpus} CPUs with {mib} MiB: no banner or no clean end: {} (log: {})",
                outcome.describe(),
                paths::display(&log)
            )),
        }
        Ok(())
    }

    /// The median of figure `name`.
    pub fn median_of(&self, name: &str) -> Option<u64> {
        let mut v = self.values.get(name)?.clone();
        v.sort_unstable();
        v.get(v.len().saturating_sub(1) / 2).copied()
    }

    fn boot_median(&self, key: (u32, u32)) -> Option<Duration> {
        median(&mut self.boots.get(&key)?.clone())
    }

    /// `<name> <value>` lines for bench.txt.
    pub fn machine_lines(&self) -> String {
        let mut out = String::new();
        for name in self.values.keys() {
            if let Some(v) = self.median_of(name) {
                let _ = writeln!(out, "smp_{name} {v}");
            }
        }
        for (cpus, mib) in BOOTS {
            if let Some(t) = self.boot_median((cpus, mib)) {
                let _ = writeln!(out, "boot_wall_ms_smp{cpus}_{mib}mib {}", t.as_millis());
            }
        }
        out
    }

    /// The human-readable report.
    pub fn report(&self) -> String {
        let mut out = String::new();
        let all = |name: &str| {
            self.values.get(name).map_or(String::new(), |v| {
                let v: Vec<String> = v.iter().map(u64::to_string).collect();
                v.join(", ")
            })
        };
        let _ = writeln!(
            out,
            "several CPUs, multi-threaded TCG on this host (wall time; medians of {RUNS} boots):"
        );
        let row = |out: &mut String, what: &str, name: &str, unit: &str| {
            if let Some(m) = self.median_of(name) {
                let _ = writeln!(out, "  {what}: {m} {unit} (runs: {})", all(name));
            }
        };
        row(
            &mut out,
            "one pair on CPU 0, per round trip",
            "one_pair_ns_per_round_trip",
            "ns",
        );
        row(
            &mut out,
            "two pairs, one per CPU, per round trip of either",
            "two_pairs_ns_per_round_trip",
            "ns",
        );
        if let Some(s) = self.median_of("two_pairs_speedup_milli") {
            let verdict = if s >= SPEEDUP_GOAL_MILLI {
                "met"
            } else {
                "not yet"
            };
            let _ = writeln!(
                out,
                "  throughput of two pairs over one: {}.{:03}x (goal >= {}.{:03}x: {verdict}; runs: {})",
                s / 1000,
                s % 1000,
                SPEEDUP_GOAL_MILLI / 1000,
                SPEEDUP_GOAL_MILLI % 1000,
                all("two_pairs_speedup_milli")
            );
        }
        row(
            &mut out,
            "client on CPU 0, server on CPU 1, per round trip",
            "cross_cpu_round_trip_ns",
            "ns",
        );
        for (cpus, mib) in BOOTS {
            if let Some(t) = self.boot_median((cpus, mib)) {
                let runs: Vec<String> = self.boots[&(cpus, mib)]
                    .iter()
                    .map(|d| d.as_millis().to_string())
                    .collect();
                let _ = writeln!(
                    out,
                    "  boot to the shell's banner, {cpus} CPU(s), {mib} MiB: {} ms (runs: {} ms)",
                    t.as_millis(),
                    runs.join(", ")
                );
            }
        }
        out
    }
}

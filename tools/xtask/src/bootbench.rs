//! The boot-to-shell figures of `cargo xtask bench`: the `bench-boot`
//! image (the everyday servers, with the shell told to report) is booted
//! once under `-icount`, where the shell's `bench boot_to_shell <TSC> 1`
//! line gives the guest instructions from power-on to its prompt, and
//! [`WALL_RUNS`] times under plain TCG, where the host times QEMU's start
//! to the shell's banner and then the shell's `disk scan` of the whole
//! disk (its "scanning" line to its "scanned" line: the sequential read
//! throughput); medians are reported. Each run then types `exit`, so the
//! image powers off cleanly.
//!
//! Rules: like every benchmark, a slow boot never fails the command; a
//! run that does not reach the banner, does not end cleanly or (under
//! -icount) prints no figure is a problem, reported with the run's log.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::error::Result;
use crate::manifest::Input;
use crate::qemu::{self, Outcome, Serial, Stream};
use crate::{build, paths, progress};

/// The image booted.
const IMAGE: &str = "bench-boot";
/// The first line the shell writes once its console is open.
pub const BANNER: &str = "MH shell: type 'help' for the commands";

/// Boots under plain TCG: wall times are noisy, so the median is taken.
pub const WALL_RUNS: usize = 3;

/// What the boots measured.
#[derive(Debug, Default)]
pub struct BootFigures {
    /// Guest instructions from power-on to the shell's prompt.
    pub instructions: Option<u64>,
    /// Host wall time from starting QEMU to the banner, under plain TCG
    /// (the median of the runs).
    pub wall: Option<Duration>,
    /// Each run's wall time to the banner.
    pub walls: Vec<Duration>,
    /// The disk scan: KiB read, and each run's wall time for it.
    pub scan_kib: Option<u64>,
    pub scans: Vec<Duration>,
    /// What went wrong, if anything.
    pub problems: Vec<String>,
}

/// Boots the image twice and collects the figures.
pub fn measure() -> Result<BootFigures> {
    let image = build::image(IMAGE)?;
    let timeout = Duration::from_secs(image.manifest.timeout_secs);
    let input = [Input {
        after: BANNER.to_string(),
        bytes: b"exit\n".to_vec(),
        host: None,
    }];
    let mut figures = BootFigures::default();

    progress("booting the bench-boot image under -icount (instructions to the shell)…");
    let cmd = qemu::command(&image, &Serial::Stdio, &crate::bench::icount_args())?;
    let log = paths::mh_dir().join("bench-boot-icount.log");
    let mut report = crate::bench::Report::default();
    let run = qemu::run_headless_typing(cmd, timeout, &log, &input, |stream, line| {
        if stream == Stream::Serial {
            report.feed(line);
        }
    })?;
    figures.instructions = report
        .results
        .iter()
        .find(|(name, _, _)| name == "boot_to_shell")
        .map(|&(_, value, _)| value);
    figures.judge(
        figures.instructions.is_some(),
        "the shell never reported boot_to_shell",
        "-icount",
        &log,
        run.outcome,
    );

    let scan_input = [
        Input {
            after: BANNER.to_string(),
            bytes: b"disk scan\n".to_vec(),
            host: None,
        },
        Input {
            after: SCANNED.to_string(),
            bytes: b"exit\n".to_vec(),
            host: None,
        },
    ];
    for run_no in 1..=WALL_RUNS {
        progress(&format!(
            "booting it under plain TCG ({run_no} of {WALL_RUNS}: wall time to the shell, then a disk scan)…"
        ));
        let cmd = qemu::command(&image, &Serial::Stdio, &[])?;
        let log = paths::mh_dir().join(format!("bench-boot-tcg-{run_no}.log"));
        let started = Instant::now();
        let (mut banner_at, mut scan_from, mut scan_to) = (None, None, None);
        let mut kib = None;
        let run = qemu::run_headless_typing(cmd, timeout, &log, &scan_input, |stream, line| {
            if stream != Stream::Serial {
                return;
            }
            if banner_at.is_none() && line.contains(BANNER) {
                banner_at = Some(started.elapsed());
            } else if let Some(rest) = line.split(SCANNING).nth(1) {
                scan_from = Some(Instant::now());
                kib = rest
                    .split_whitespace()
                    .next()
                    .and_then(|w| w.parse::<u64>().ok());
            } else if line.contains(SCANNED) {
                scan_to = Some(Instant::now());
            }
        })?;
        if let Some(b) = banner_at {
            figures.walls.push(b);
        }
        if let (Some(a), Some(b)) = (scan_from, scan_to) {
            figures.scans.push(b.duration_since(a));
            figures.scan_kib = kib;
        }
        figures.judge(
            banner_at.is_some(),
            "the shell's banner never came",
            "TCG",
            &log,
            run.outcome,
        );
        if scan_to.is_none() {
            figures.problems.push(format!(
                "the shell's disk scan never finished under TCG (log: {})",
                paths::display(&log)
            ));
        }
    }
    figures.wall = median(&mut figures.walls.clone());
    Ok(figures)
}

/// The shell's line before and after `disk scan`.
const SCANNING: &str = "disk: scanning ";
const SCANNED: &str = "disk: scanned ";

/// The median of `v` (the lower of the middle two for an even count).
pub fn median(v: &mut [Duration]) -> Option<Duration> {
    v.sort();
    v.get(v.len().saturating_sub(1) / 2).copied()
}

impl BootFigures {
    /// The disk scan's throughput, median of the runs: MiB/s.
    pub fn scan_mib_per_s(&self) -> Option<f64> {
        let kib = self.scan_kib? as f64;
        let t = median(&mut self.scans.clone())?.as_secs_f64();
        (t > 0.0).then(|| kib / 1024.0 / t)
    }

    /// Records what went wrong with one boot: no figure (`missing`), or
    /// an unclean end.
    fn judge(&mut self, got: bool, missing: &str, how: &str, log: &Path, outcome: Outcome) {
        if !got {
            self.problems.push(format!(
                "{missing} under {how} (log: {})",
                paths::display(log)
            ));
        }
        if !outcome.is_clean() {
            self.problems.push(format!(
                "bench-boot under {how} did not end cleanly: {}",
                outcome.describe()
            ));
        }
    }
}

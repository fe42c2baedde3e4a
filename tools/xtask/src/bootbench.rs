//! The boot-to-shell figures of `cargo xtask bench`: the `bench-boot`
//! image (the everyday servers, with the shell told to report) is booted
//! twice. Under `-icount` the shell's `bench boot_to_shell <TSC> 1` line
//! gives the guest instructions from power-on to its prompt; under plain
//! TCG the host times QEMU's start to the shell's banner. Each run then
//! types `exit`, so the image powers off cleanly.
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

/// What the two boots measured.
#[derive(Debug, Default)]
pub struct BootFigures {
    /// Guest instructions from power-on to the shell's prompt.
    pub instructions: Option<u64>,
    /// Host wall time from starting QEMU to the banner, under plain TCG.
    pub wall: Option<Duration>,
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

    progress("booting it again under plain TCG (wall time to the shell)…");
    let cmd = qemu::command(&image, &Serial::Stdio, &[])?;
    let log = paths::mh_dir().join("bench-boot-tcg.log");
    let started = Instant::now();
    let mut banner_at = None;
    let run = qemu::run_headless_typing(cmd, timeout, &log, &input, |stream, line| {
        if stream == Stream::Serial && banner_at.is_none() && line.contains(BANNER) {
            banner_at = Some(started.elapsed());
        }
    })?;
    figures.wall = banner_at;
    figures.judge(
        banner_at.is_some(),
        "the shell's banner never came",
        "TCG",
        &log,
        run.outcome,
    );
    Ok(figures)
}

impl BootFigures {
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

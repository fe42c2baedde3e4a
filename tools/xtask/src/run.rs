//! `cargo xtask run`: build an image and boot it with the console on this
//! terminal.
//!
//! Rules: with a terminal on stdin the serial port is multiplexed with the
//! QEMU monitor (`mon:stdio`), so Ctrl-C reaches the guest and Ctrl-A X quits;
//! without one (pipes, CI) standard input is read to its end first and typed
//! into the serial line once the console server says it is ready, followed
//! by Ctrl-D, so the shell sees the end of input and the image powers off:
//! `printf 'ps\nuptime\n' | cargo xtask run` is a scriptable session. The
//! manifest's `timeout_secs` limits such a run.
//! The exit status reports how the image ended (see `qemu::Outcome`); a
//! piped run whose programs did not all end well (`endings`: an exit
//! with a code other than 0, a fault, a kill) ends with status 1 and one
//! `error:` line per such program, even when init powered off cleanly.
//! An interactive run cannot tell: its serial line goes straight to the
//! terminal.

use std::io::{IsTerminal, Read};
use std::time::Duration;

use crate::error::{Failure, Result};
use crate::image::Image;
use crate::manifest::Input;
use crate::qemu::{self, Outcome, Serial, Stream};
use crate::{Args, build, endings, prereq, progress};

/// `cargo xtask run [--image NAME] [--smp N] [-- extra qemu args]`.
pub fn command(mut args: Args) -> Result<i32> {
    let name = args.image()?;
    let smp = args.smp()?;
    let extra = args.take_extra();
    args.finish()?;
    prereq::rust_target()?;
    prereq::host_tool(prereq::QEMU)?;
    let mut image = build::image(&name)?;
    if let Some(cpus) = smp {
        image.manifest.cpus = cpus;
    }
    let what = format!("image '{name}' on {}", cpus_phrase(image.manifest.cpus));

    let interactive = std::io::stdin().is_terminal();
    let serial = if interactive {
        Serial::MonitorStdio
    } else {
        Serial::Stdio
    };
    if interactive {
        progress(&format!(
            "booting {what} (press Ctrl-A then X to quit QEMU)…"
        ));
    } else {
        progress(&format!("booting {what}…"));
    }
    let (outcome, bad) = if interactive {
        let outcome = qemu::run_foreground(qemu::command(&image, &serial, &extra)?)?;
        (outcome, Vec::new())
    } else {
        let run = run_piped(&image, &extra)?;
        let bad = endings::bad_endings(&image.manifest.modules, &run.serial, &[]);
        (run.outcome, bad)
    };
    match outcome {
        Outcome::Clean if !bad.is_empty() => {
            eprintln!("error: init powered off cleanly, but not every program ended well:")
        }
        Outcome::Clean => progress(&outcome.describe()),
        // Ctrl-A X also ends QEMU with status 0, so do not blame the guest
        // alone when the user may simply have quit.
        Outcome::Reset if interactive => eprintln!(
            "error: QEMU exited with status 0: you quit it (Ctrl-A X), or the guest reset or triple-faulted"
        ),
        _ => eprintln!("error: {}", outcome.describe()),
    }
    for b in &bad {
        eprintln!("error: program {}", b.describe());
    }
    Ok(run_status(outcome, &bad))
}

/// The status `run` exits with: the outcome's, but never 0 when a program
/// ended badly.
fn run_status(outcome: Outcome, bad: &[endings::BadEnding]) -> i32 {
    match outcome.exit_code() {
        0 if !bad.is_empty() => 1,
        code => code,
    }
}

/// "1 CPU", "4 CPUs".
pub fn cpus_phrase(cpus: u32) -> String {
    if cpus == 1 {
        "1 CPU".to_string()
    } else {
        format!("{cpus} CPUs")
    }
}

/// The line the console server prints once it owns the UART: from then on
/// typed input reaches the guest's line discipline intact.
pub const CONSOLE_READY: &str = "console: ready";
/// End of input for the console's line discipline.
const CTRL_D: u8 = 0x04;

/// A non-interactive run: stdin (to its end) plus Ctrl-D is typed once the
/// console is ready; the serial output is passed through line by line.
fn run_piped(image: &Image, extra: &[String]) -> Result<qemu::Headless> {
    let mut bytes = Vec::new();
    std::io::stdin()
        .read_to_end(&mut bytes)
        .map_err(|e| Failure::new(format!("cannot read standard input: {e}")))?;
    bytes.push(CTRL_D);
    let input = Input {
        after: CONSOLE_READY.to_string(),
        bytes,
        host: None,
    };
    let log = crate::paths::mh_dir().join("run-serial.log");
    let timeout = Duration::from_secs(image.manifest.timeout_secs);
    let cmd = qemu::command(image, &Serial::Stdio, extra)?;
    let run = qemu::run_headless_typing(
        cmd,
        timeout,
        &log,
        std::slice::from_ref(&input),
        |stream, line| match stream {
            Stream::Serial => println!("{line}"),
            Stream::Qemu => eprintln!("[qemu] {line}"),
        },
    )?;
    Ok(run)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_ending_makes_a_clean_run_fail_but_keeps_a_worse_status() {
        let bad = vec![endings::BadEnding {
            name: "hello".to_string(),
            module: 2,
            pid: 3,
            how: "exited with code 1".to_string(),
        }];
        assert_eq!(run_status(Outcome::Clean, &[]), 0);
        assert_eq!(run_status(Outcome::Clean, &bad), 1);
        assert_eq!(run_status(Outcome::KernelPanic, &bad), 2);
        assert_eq!(run_status(Outcome::InitFailed, &[]), 1);
    }
}

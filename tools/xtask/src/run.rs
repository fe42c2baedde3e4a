//! `cargo xtask run`: build an image and boot it with the console on this
//! terminal.
//!
//! Rules: with a terminal on stdin the serial port is multiplexed with the
//! QEMU monitor (`mon:stdio`), so Ctrl-C reaches the guest and Ctrl-A X quits;
//! without one (pipes, CI) plain `stdio` passes stdin through to the guest.
//! The exit status reports how the image ended (see `qemu::Outcome`).

use std::io::IsTerminal;

use crate::error::Result;
use crate::qemu::{self, Outcome, Serial};
use crate::{Args, build, prereq, progress};

/// `cargo xtask run [--image NAME] [-- extra qemu args]`.
pub fn command(mut args: Args) -> Result<i32> {
    let name = args.image()?;
    let extra = args.take_extra();
    args.finish()?;
    prereq::rust_target()?;
    prereq::host_tool(prereq::QEMU)?;
    let image = build::image(&name)?;

    let interactive = std::io::stdin().is_terminal();
    let serial = if interactive {
        Serial::MonitorStdio
    } else {
        Serial::Stdio
    };
    if interactive {
        progress(&format!(
            "booting image '{name}' (press Ctrl-A then X to quit QEMU)…"
        ));
    } else {
        progress(&format!("booting image '{name}'…"));
    }
    let outcome = qemu::run_foreground(qemu::command(&image, &serial, &extra))?;
    match outcome {
        Outcome::Clean => progress(&outcome.describe()),
        // Ctrl-A X also ends QEMU with status 0, so do not blame the guest
        // alone when the user may simply have quit.
        Outcome::Reset if interactive => eprintln!(
            "error: QEMU exited with status 0: you quit it (Ctrl-A X), or the guest reset or triple-faulted"
        ),
        _ => eprintln!("error: {}", outcome.describe()),
    }
    Ok(outcome.exit_code())
}

//! Prerequisites checked before anything is built or booted: the rustup
//! target for the guest, QEMU, gcc (when there are C programs) and (for
//! `gdb`) GDB.
//!
//! Rules: a fresh Debian machine with rustup must need nothing else, so a
//! missing target is added with rustup and a missing QEMU/gcc/GDB is installed
//! with apt-get when we are root. Otherwise each check fails with one line
//! that says what to install. apt-get never prompts (CI has no stdin).

use std::env;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::error::{Failure, Result, bail, spawn_failure};
use crate::paths::{self, GUEST_TARGET};
use crate::progress;

/// A host tool xtask runs, and the Debian package that provides it.
#[derive(Clone, Copy, Debug)]
pub struct Tool {
    pub program: &'static str,
    pub package: &'static str,
}

pub const QEMU: Tool = Tool {
    program: "qemu-system-x86_64",
    package: "qemu-system-x86",
};

/// For C programs (examples/NAME/*.c, see `cprog`).
pub const GCC: Tool = Tool {
    program: "gcc",
    package: "gcc",
};

pub const GDB: Tool = Tool {
    program: "gdb",
    package: "gdb",
};

/// Makes sure the guest target is installed for the pinned toolchain.
pub fn rust_target() -> Result<()> {
    // Run in the root so rust-toolchain.toml selects the pinned toolchain:
    // the target must be installed for that one, not for rustup's default.
    let output = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .current_dir(paths::root())
        .stdin(Stdio::null())
        .output()
        .map_err(|e| rustup_failure(&e))?;
    if !output.status.success() {
        bail!(
            "`rustup target list --installed` failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let installed = String::from_utf8_lossy(&output.stdout);
    if installed.lines().any(|l| l.trim() == GUEST_TARGET) {
        return Ok(());
    }
    progress(&format!(
        "the rustup target {GUEST_TARGET} is missing; running `rustup target add {GUEST_TARGET}`…"
    ));
    let status = Command::new("rustup")
        .args(["target", "add", GUEST_TARGET])
        .current_dir(paths::root())
        .stdin(Stdio::null())
        .status()
        .map_err(|e| rustup_failure(&e))?;
    if !status.success() {
        bail!("`rustup target add {GUEST_TARGET}` failed ({status})");
    }
    Ok(())
}

fn rustup_failure(err: &std::io::Error) -> Failure {
    if err.kind() == std::io::ErrorKind::NotFound {
        Failure::new(
            "rustup not found: MH needs rustup (https://rustup.rs) to provide the pinned \
             toolchain and its x86_64-unknown-none target",
        )
    } else {
        spawn_failure("rustup", err)
    }
}

/// Makes sure `tool` is on PATH, installing its Debian package when we are
/// root and it is missing.
pub fn host_tool(tool: Tool) -> Result<()> {
    if find_on_path(tool.program).is_some() {
        return Ok(());
    }
    if !is_root() {
        bail!(
            "{} not found: install Debian's {} (sudo apt-get install {})",
            tool.program,
            tool.package,
            tool.package
        );
    }
    progress(&format!(
        "{} not found; installing Debian's {} with apt-get (running as root)…",
        tool.program, tool.package
    ));
    apt_get(tool, &["update"])?;
    apt_get(
        tool,
        &["install", "-y", "--no-install-recommends", tool.package],
    )?;
    if find_on_path(tool.program).is_none() {
        bail!(
            "installed {} but {} is still not on PATH",
            tool.package,
            tool.program
        );
    }
    Ok(())
}

fn apt_get(tool: Tool, args: &[&str]) -> Result<()> {
    progress(&format!("apt-get {}", args.join(" ")));
    let status = Command::new("apt-get")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .status()
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Failure::new(format!(
                    "{} not found and apt-get is missing: install it with your system's package manager",
                    tool.program
                ))
            } else {
                spawn_failure("apt-get", &e)
            }
        })?;
    if !status.success() {
        bail!("`apt-get {}` failed ({status})", args.join(" "));
    }
    Ok(())
}

/// Whether we run as root, by `id -u` (no libc dependency needed for one
/// number). If `id` cannot run we assume not root: the caller then prints the
/// manual install hint, which is always safe.
fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// The first executable file called `program` in PATH.
pub fn find_on_path(program: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = env::var_os("PATH")?;
    env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| {
            candidate
                .metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

//! The guest build (`cargo build --release --target x86_64-unknown-none` of
//! every workspace crate but xtask, then the C programs of `cprog`) and the
//! `build` subcommand.
//!
//! Rules: the build uses the cargo that runs xtask (the `CARGO` variable), so
//! the toolchain pinned in rust-toolchain.toml builds host and guest alike.
//! The whole workspace is built, so a new server crate is picked up without
//! touching xtask. The manifest is read before building: a typo in it should
//! not cost a build first.

use std::env;
use std::process::{Command, Stdio};

use crate::error::{Result, bail, spawn_failure};
use crate::image::{self, Image};
use crate::manifest;
use crate::paths::{self, GUEST_TARGET};
use crate::{Args, cprog, prereq, progress};

/// The cargo that runs xtask, or plain `cargo` when started some other way.
pub fn cargo() -> String {
    env::var("CARGO").unwrap_or_else(|_| "cargo".to_string())
}

/// Builds the kernel and all user programs (release).
pub fn guest() -> Result<()> {
    progress("building kernel and user programs (release)…");
    let cargo = cargo();
    let status = Command::new(&cargo)
        .args(["build", "--release", "--target", GUEST_TARGET])
        .args(["--workspace", "--exclude", "xtask"])
        .current_dir(paths::root())
        .stdin(Stdio::null())
        .status()
        .map_err(|e| spawn_failure(&cargo, &e))?;
    if !status.success() {
        bail!("the guest build failed ({status}); see cargo's errors above");
    }
    cprog::build_all()
}

/// Builds the checked kernel (feature `lock-check`) in a target directory
/// of its own, so that switching between images that boot either build
/// never rebuilds the other.
pub fn checked_kernel() -> Result<()> {
    progress("building the checked kernel (lock order checked at run time)…");
    let cargo = cargo();
    let status = Command::new(&cargo)
        .args(["build", "--release", "--target", GUEST_TARGET])
        .args(["-p", "kernel", "--features", "lock-check", "--target-dir"])
        .arg(paths::checked_target_dir())
        .current_dir(paths::root())
        .stdin(Stdio::null())
        .status()
        .map_err(|e| spawn_failure(&cargo, &e))?;
    if !status.success() {
        bail!("the checked kernel's build failed ({status}); see cargo's errors above");
    }
    Ok(())
}

/// Reads image `name`'s manifest, builds, and assembles the image.
pub fn image(name: &str) -> Result<Image> {
    let manifest = manifest::load(name)?;
    guest()?;
    if manifest.kernel == manifest::KernelBuild::Checked {
        checked_kernel()?;
    }
    progress(&format!(
        "assembling image '{name}' in {}",
        paths::display(&paths::mh_dir().join("image").join(name))
    ));
    image::assemble(manifest)
}

/// `cargo xtask build [--image NAME]`.
pub fn command(mut args: Args) -> Result<i32> {
    let name = args.image()?;
    args.finish()?;
    prereq::rust_target()?;
    image(&name)?;
    Ok(0)
}

//! Where things live: the workspace root, the guest build's artifacts and
//! xtask's own output directory (`target/mh`), disk image files included.
//!
//! Rules: every path is derived from the workspace root, which is found from
//! xtask's own manifest directory at compile time, so `cargo xtask` works from
//! any subdirectory. The target directory is the workspace's `target/`
//! (xtask does not follow `CARGO_TARGET_DIR`: the docs and gdbinit name
//! `target/` literally).

use std::path::{Path, PathBuf};

/// The rustc target every guest binary (kernel and user programs) is built for.
pub const GUEST_TARGET: &str = "x86_64-unknown-none";

/// The name of the kernel's binary target.
pub const KERNEL_BINARY: &str = "kernel";

/// The workspace root (where the top-level Cargo.toml and
/// rust-toolchain.toml are).
pub fn root() -> PathBuf {
    // tools/xtask → the root is two levels up.
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .ancestors()
        .nth(2)
        .unwrap_or(manifest_dir)
        .to_path_buf()
}

/// The directory of release binaries built for the guest.
pub fn guest_release_dir() -> PathBuf {
    root().join("target").join(GUEST_TARGET).join("release")
}

/// Where the checked kernel (feature `lock-check`) is built.
pub fn checked_target_dir() -> PathBuf {
    root().join("target").join("checked")
}

/// Where the loom models (`--cfg loom`) are built: a flag of their own
/// would otherwise rebuild the host tests' cache every time.
pub fn loom_target_dir() -> PathBuf {
    root().join("target").join("loom")
}

/// The checked kernel's binary.
pub fn checked_kernel() -> PathBuf {
    checked_target_dir()
        .join(GUEST_TARGET)
        .join("release")
        .join(KERNEL_BINARY)
}

/// The path of a guest binary (kernel or user program) by its target name.
pub fn guest_binary(name: &str) -> PathBuf {
    guest_release_dir().join(name)
}

/// xtask's own output: assembled images, serial logs, gdbinit.
pub fn mh_dir() -> PathBuf {
    root().join("target").join("mh")
}

/// The directory of image `image`'s disk image files (`[[disk]]`, see
/// `disk_image`): beside the image directory, not inside it, because
/// assembling the image wipes that one and a `persist` disk must outlive it.
pub fn disks_dir(image: &str) -> PathBuf {
    mh_dir().join("disks").join(image)
}

/// The directory of image manifests.
pub fn images_dir() -> PathBuf {
    root().join("tools").join("images")
}

/// `path` relative to the workspace root when it is inside it (for messages:
/// short and copy-pasteable from the root), otherwise unchanged.
pub fn display(path: &Path) -> String {
    let root = root();
    path.strip_prefix(&root)
        .unwrap_or(path)
        .display()
        .to_string()
}

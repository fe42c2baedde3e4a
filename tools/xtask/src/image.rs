//! Assembling a built image: the kernel plus each module's ELF copied into
//! `target/mh/image/<name>/`, the directory QEMU runs in.
//!
//! Rules: QEMU's `-initrd` list names module files relative to its working
//! directory, because an absolute path with spaces or commas would break the
//! list's syntax; so every module is copied under its binary name into one
//! directory and QEMU is started there. The directory is rebuilt from scratch
//! each time so a stale module from an older manifest cannot linger.

use std::fs;
use std::path::PathBuf;

use crate::error::{Result, bail, io_failure};
use crate::manifest::Manifest;
use crate::paths::{self, KERNEL_BINARY};

/// A built, assembled image, ready to boot.
#[derive(Clone, Debug)]
pub struct Image {
    pub manifest: Manifest,
    /// The absolute path of the kernel ELF (QEMU's `-kernel`).
    pub kernel: PathBuf,
    /// The directory holding the modules (QEMU's working directory).
    pub dir: PathBuf,
}

/// Checks the build's artifacts against the manifest, copies the modules
/// into the image directory and prints the sizes.
pub fn assemble(manifest: Manifest) -> Result<Image> {
    let kernel = match manifest.kernel {
        crate::manifest::KernelBuild::Release => paths::guest_binary(KERNEL_BINARY),
        crate::manifest::KernelBuild::Checked => paths::checked_kernel(),
    };
    if !kernel.is_file() {
        bail!(
            "no kernel binary {} (the guest build should have produced it: is the `kernel` crate's binary still called `kernel`?)",
            paths::display(&kernel)
        );
    }
    let binaries = manifest.binaries();
    // Errors name the manifest and the field, as parsing's do.
    let file = paths::display(&crate::manifest::path_of(&manifest.name));
    for (i, m) in manifest.modules.iter().enumerate() {
        let path = paths::guest_binary(&m.binary);
        if !path.is_file() {
            bail!(
                "{file}: module[{i}].binary: no program '{}' was built ({} is missing): is there a crate with [[bin]] name = \"{}\", or a C program in examples/{}/?",
                m.binary,
                paths::display(&path),
                m.binary,
                m.binary
            );
        }
    }
    // The loader's rules, checked here so that a program linked the wrong
    // way is a build error naming it, not a process that dies at boot.
    for binary in &binaries {
        let path = paths::guest_binary(binary);
        let bytes = fs::read(&path).map_err(|e| io_failure("cannot read", &path, &e))?;
        if let Err(why) = crate::elf::check_user_program(&bytes) {
            bail!(
                "module '{binary}' ({}): {why}. A Rust program needs a build.rs that links it with libmh/user.ld as a non-PIE executable (copy examples/hello/build.rs; see docs/writing-a-server.md)",
                paths::display(&path)
            );
        }
    }
    for (i, m) in manifest.modules.iter().enumerate() {
        if let Some(kib) = m.memory_limit_kib {
            let size = fs::metadata(paths::guest_binary(&m.binary)).map_or(0, |meta| meta.len());
            check_memory_limit(&file, i, &m.binary, kib, size)?;
        }
    }

    let dir = paths::mh_dir().join("image").join(&manifest.name);
    if dir.exists() {
        fs::remove_dir_all(&dir).map_err(|e| io_failure("cannot clear", &dir, &e))?;
    }
    fs::create_dir_all(&dir).map_err(|e| io_failure("cannot create", &dir, &e))?;

    println!(
        "  {:<12} {:>10}  {}",
        "kernel",
        size_of(&kernel),
        paths::display(&kernel)
    );
    for binary in &binaries {
        let from = paths::guest_binary(binary);
        let to = dir.join(binary);
        fs::copy(&from, &to).map_err(|e| io_failure("cannot copy module to", &to, &e))?;
        println!(
            "  {:<12} {:>10}  {}",
            binary,
            size_of(&to),
            paths::display(&to)
        );
    }
    Ok(Image {
        manifest,
        kernel,
        dir,
    })
}

/// The least a memory limit must leave beyond the binary's file size. The
/// limit takes effect at the module's exec, so it must hold the program
/// exec maps (no more pages than the file has bytes) with its stack and
/// page tables, and what it allocates as it starts.
const LOAD_MARGIN_KIB: u64 = 256;

/// A module's memory limit must cover its start-up (see LOAD_MARGIN_KIB).
fn check_memory_limit(
    file: &str,
    index: usize,
    binary: &str,
    kib: u64,
    file_bytes: u64,
) -> Result<()> {
    let need = file_bytes.div_ceil(1024) + LOAD_MARGIN_KIB;
    if kib < need {
        bail!(
            "{file}: module[{index}].memory_limit_kib ({binary}): {kib} cannot even start it: loading needs about {need} KiB (the {} binary plus {LOAD_MARGIN_KIB} KiB); raise the limit",
            format_size(file_bytes)
        );
    }
    Ok(())
}

/// A file's size for the build summary, in KiB for readability.
fn size_of(path: &std::path::Path) -> String {
    match fs::metadata(path) {
        Ok(meta) => format_size(meta.len()),
        Err(_) => "?".to_string(),
    }
}

fn format_size(bytes: u64) -> String {
    if bytes < 1024 {
        format!("{bytes} B")
    } else {
        // Integer arithmetic: one decimal is plenty and avoids float casts.
        let tenths = bytes * 10 / 1024;
        format!("{}.{} KiB", tenths / 10, tenths % 10)
    }
}

#[cfg(test)]
mod tests {
    use super::{check_memory_limit, format_size};

    #[test]
    fn memory_limits_must_cover_loading() {
        assert!(check_memory_limit("t.toml", 1, "s", 2048, 800 * 1024).is_ok());
        let e = check_memory_limit("t.toml", 2, "srv", 512, 800 * 1024)
            .unwrap_err()
            .message;
        assert!(
            e.starts_with("t.toml: module[2].memory_limit_kib (srv): 512"),
            "{e}"
        );
        assert!(e.contains("1056 KiB"), "{e}");
    }

    #[test]
    fn sizes_are_readable() {
        assert_eq!(format_size(10), "10 B");
        assert_eq!(format_size(1024), "1.0 KiB");
        assert_eq!(format_size(15 * 1024 + 512), "15.5 KiB");
    }
}

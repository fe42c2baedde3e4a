//! The image files behind an image's disks (the manifest's `[[disk]]`), made
//! before every boot as `target/mh/disks/<image>/<disk>.img`, raw and of
//! exactly the disk's size.
//!
//! Rules: a disk without `persist` gets a new file at every boot — zeros,
//! or its `from` file padded with zeros — so no run depends on what an
//! earlier one wrote. A `persist` disk's file is made the same way once and
//! then kept as the guest left it; a later change to `from` does not reach
//! it, and a kept file whose size is not the disk's is an error, never
//! silently cut or grown. A file is written under a temporary name and
//! renamed into place, so an interrupted xtask never leaves a half-made
//! image for a `persist` disk to keep, and a QEMU still running on the old
//! file keeps that file (and its lock) to itself. The files stay after the
//! run, to be looked at.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::error::{Failure, Result, bail, io_failure};
use crate::manifest::{self, Disk, Manifest, describe_size};
use crate::{paths, progress};

/// A disk's image file, ready for QEMU.
#[derive(Debug)]
pub struct DiskFile {
    pub path: PathBuf,
    pub origin: Origin,
}

/// Where a disk's image file came from this boot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Made anew for this boot (`persist = false`).
    Fresh,
    /// Made now, and kept from now on (`persist = true`, no file yet).
    Created,
    /// Kept from an earlier boot (`persist = true`).
    Kept,
}

/// Makes (or keeps) the image file of each of `manifest`'s disks, in
/// order, and says which is which.
pub fn prepare(manifest: &Manifest) -> Result<Vec<DiskFile>> {
    if manifest.disks.is_empty() {
        return Ok(Vec::new());
    }
    // Errors name the manifest and the field, as parsing's do.
    let file = paths::display(&manifest::path_of(&manifest.name));
    let files = prepare_in(&paths::disks_dir(&manifest.name), &file, &manifest.disks)?;
    for (disk, made) in manifest.disks.iter().zip(&files) {
        let how = match made.origin {
            Origin::Fresh => "fresh for this boot",
            Origin::Created => "made now, kept across boots (persist)",
            Origin::Kept => "kept from an earlier boot (persist)",
        };
        progress(&format!(
            "disk '{}' ({}): {}, {how}",
            disk.name,
            describe_size(disk.bytes),
            paths::display(&made.path)
        ));
    }
    Ok(files)
}

/// `prepare` for disks whose files go in `dir`; `file` names the manifest
/// in messages.
pub fn prepare_in(dir: &Path, file: &str, disks: &[Disk]) -> Result<Vec<DiskFile>> {
    fs::create_dir_all(dir).map_err(|e| io_failure("cannot create", dir, &e))?;
    disks
        .iter()
        .enumerate()
        .map(|(index, disk)| prepare_one(dir, file, index, disk))
        .collect()
}

fn prepare_one(dir: &Path, file: &str, index: usize, disk: &Disk) -> Result<DiskFile> {
    let path = dir.join(format!("{}.img", disk.name));
    if disk.persist {
        match fs::metadata(&path) {
            Ok(meta) if !meta.is_file() => bail!(
                "{file}: disk[{index}]: {} is not a regular file; remove it",
                paths::display(&path)
            ),
            Ok(meta) if meta.len() != disk.bytes => bail!(
                "{file}: disk[{index}].size: the kept image {} is {}, not the disk's {}: \
                 delete it to make it anew (what the guest wrote is lost), or give back \
                 the size it was made with",
                paths::display(&path),
                describe_size(meta.len()),
                describe_size(disk.bytes)
            ),
            Ok(_) => {
                return Ok(DiskFile {
                    path,
                    origin: Origin::Kept,
                });
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(disk_failure(file, index, "read", &path, &e)),
        }
    }
    // The temporary name has xtask's pid, so two xtasks making the same
    // disk at once do not write into one file.
    let temp = dir.join(format!(".{}.img.{}.tmp", disk.name, std::process::id()));
    let made = write_image(&temp, file, index, disk).and_then(|()| {
        fs::rename(&temp, &path).map_err(|e| disk_failure(file, index, "make", &path, &e))
    });
    if made.is_err() {
        // Whatever was half-written must not linger.
        let _ = fs::remove_file(&temp);
    }
    made?;
    Ok(DiskFile {
        path,
        origin: if disk.persist {
            Origin::Created
        } else {
            Origin::Fresh
        },
    })
}

/// Writes `disk`'s initial image to `path`: its `from` file, then zeros up
/// to its size (a sparse tail: a 4 GiB disk costs nothing until written).
fn write_image(path: &Path, file: &str, index: usize, disk: &Disk) -> Result<()> {
    let mut out = File::create(path).map_err(|e| disk_failure(file, index, "create", path, &e))?;
    if let Some(from) = &disk.from {
        let input = File::open(from).map_err(|e| {
            Failure::new(format!(
                "{file}: disk[{index}].from: cannot read {}: {e}",
                paths::display(from)
            ))
        })?;
        // One byte more than fits is enough to tell that it does not.
        let copied = io::copy(&mut input.take(disk.bytes + 1), &mut out)
            .map_err(|e| disk_failure(file, index, "write", path, &e))?;
        if copied > disk.bytes {
            bail!(
                "{file}: disk[{index}].from: {} is now larger than the disk ({}): it grew \
                 after the manifest was checked",
                paths::display(from),
                describe_size(disk.bytes)
            );
        }
    }
    out.set_len(disk.bytes)
        .map_err(|e| disk_failure(file, index, "size", path, &e))
}

fn disk_failure(file: &str, index: usize, what: &str, path: &Path, err: &io::Error) -> Failure {
    Failure::new(format!(
        "{file}: disk[{index}]: cannot {what} {}: {err}",
        paths::display(path)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdir::TestDir;

    const SIZE: u64 = 64 * 1024;

    fn disk(persist: bool, from: Option<PathBuf>) -> Disk {
        Disk {
            name: "d".to_string(),
            bytes: SIZE,
            from,
            persist,
        }
    }

    fn prepare_one_disk(dir: &TestDir, disk: &Disk) -> DiskFile {
        let mut files = prepare_in(dir.path(), "t.toml", std::slice::from_ref(disk)).unwrap();
        assert_eq!(files.len(), 1);
        files.remove(0)
    }

    /// Writes `bytes` at the start of the file, as a guest would.
    fn scribble(path: &Path, bytes: &[u8]) {
        let mut image = fs::read(path).unwrap();
        image[..bytes.len()].copy_from_slice(bytes);
        fs::write(path, image).unwrap();
    }

    #[test]
    fn a_fresh_disk_is_made_anew_at_every_boot() {
        let dir = TestDir::new("fresh");
        let fresh = disk(false, None);
        let first = prepare_one_disk(&dir, &fresh);
        assert_eq!(first.origin, Origin::Fresh);
        assert_eq!(first.path, dir.path().join("d.img"));
        assert_eq!(fs::read(&first.path).unwrap(), vec![0; SIZE as usize]);
        scribble(&first.path, b"left by an earlier run");
        let again = prepare_one_disk(&dir, &fresh);
        assert_eq!(again.origin, Origin::Fresh);
        assert_eq!(fs::read(&again.path).unwrap(), vec![0; SIZE as usize]);
        // Nothing but the image is left behind (no temporary file).
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().flatten().collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn a_persistent_disk_keeps_what_was_written() {
        let dir = TestDir::new("persist");
        let kept = disk(true, None);
        let first = prepare_one_disk(&dir, &kept);
        assert_eq!(first.origin, Origin::Created);
        scribble(&first.path, b"written by the guest");
        let again = prepare_one_disk(&dir, &kept);
        assert_eq!(again.origin, Origin::Kept);
        let image = fs::read(&again.path).unwrap();
        assert!(image.starts_with(b"written by the guest"));
        assert_eq!(image.len() as u64, SIZE);
    }

    #[test]
    fn from_is_copied_and_padded_with_zeros() {
        let dir = TestDir::new("from");
        let source = dir.path().join("source.bin");
        fs::write(&source, b"MH disk").unwrap();
        let made = prepare_one_disk(&dir, &disk(false, Some(source)));
        let image = fs::read(&made.path).unwrap();
        assert_eq!(image.len() as u64, SIZE);
        assert!(image.starts_with(b"MH disk"));
        assert!(image[7..].iter().all(|&b| b == 0));
    }

    #[test]
    fn a_kept_image_of_another_size_is_an_error() {
        let dir = TestDir::new("resized");
        prepare_one_disk(&dir, &disk(true, None));
        let bigger = Disk {
            bytes: 2 * SIZE,
            ..disk(true, None)
        };
        let e = prepare_in(dir.path(), "t.toml", &[bigger])
            .unwrap_err()
            .message;
        assert!(e.starts_with("t.toml: disk[0].size: the kept image"), "{e}");
        assert!(e.contains("is 64 KiB, not the disk's 128 KiB"), "{e}");
        // The kept image is untouched.
        assert_eq!(fs::metadata(dir.path().join("d.img")).unwrap().len(), SIZE);
    }

    #[test]
    fn a_from_file_that_grew_since_the_check_is_an_error() {
        let dir = TestDir::new("grew");
        let source = dir.path().join("source.bin");
        fs::write(&source, vec![1; SIZE as usize + 1]).unwrap();
        let e = prepare_in(dir.path(), "t.toml", &[disk(false, Some(source))])
            .unwrap_err()
            .message;
        assert!(e.starts_with("t.toml: disk[0].from:"), "{e}");
        assert!(!dir.path().join("d.img").exists());
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().flatten().collect();
        assert_eq!(names.len(), 1, "only the source is left: {names:?}");
    }
}

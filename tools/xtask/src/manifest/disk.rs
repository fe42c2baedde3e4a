//! The manifest's `[[disk]]` entries: virtio-blk disks QEMU gives the image,
//! each backed by a raw image file on the host.
//!
//! Rules: like the rest of the manifest, a disk is checked before anything
//! is built and every error names its field (`disk[1].size`). A size is
//! whole 512-byte sectors, 64 KiB to 4 GiB, written as bytes or with a
//! binary unit ("16 MiB"); a name is a QEMU identifier (it becomes the
//! drive's `id`) and a file name; a `from` file is found relative to the
//! manifest's directory and must fit the disk. Making the image files is
//! `disk_image`'s work, at every boot.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::FieldResult;
use crate::paths;

/// A disk sector: the unit virtio-blk counts in, so a disk's size is a
/// whole number of them.
pub const SECTOR_BYTES: u64 = 512;
const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;
/// The smallest disk: below this a size is more likely a unit mistake
/// ("16" meant as MiB) than a useful disk.
pub const MIN_DISK_BYTES: u64 = 64 * KIB;
/// The largest disk: enough for any test, and small enough that a `from`
/// copy or a kept file never fills the host by accident.
pub const MAX_DISK_BYTES: u64 = 4 * GIB;
/// The most disks an image may have: each is a PCI function on bus 0, and
/// a handful is all a driver's tests need.
pub const MAX_DISKS: usize = 4;
/// The longest disk name: short enough for virtio-blk's 20-byte serial.
const NAME_MAX: usize = 16;

/// A `[[disk]]` table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDisk {
    name: Option<String>,
    /// An integer (bytes) or a string with a unit: checked by hand, so the
    /// error names the field instead of serde's "did not match any variant".
    size: Option<toml::Value>,
    from: Option<String>,
    #[serde(default)]
    persist: bool,
}

/// A validated disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Disk {
    /// Its name: QEMU's drive id, the device's virtio-blk serial (what a
    /// driver reads to tell disks apart) and its image file's name.
    pub name: String,
    /// Its size in bytes, a multiple of [`SECTOR_BYTES`].
    pub bytes: u64,
    /// The host file its image starts as, resolved against the manifest's
    /// directory; the rest of the disk is zeros.
    pub from: Option<PathBuf>,
    /// Whether its image file is kept across boots (`false`: made afresh
    /// at every boot, so no run depends on an earlier one).
    pub persist: bool,
}

impl Disk {
    /// QEMU's arguments for this disk, backed by `image_file`.
    ///
    /// The device is the same on both machines. `disable-legacy=on` leaves
    /// only the virtio 1.x (modern) interface, PCI id 1af4:1042, so a
    /// driver has one interface to speak. `iommu_platform=on` offers
    /// VIRTIO_F_ACCESS_PLATFORM, which a driver must accept (QEMU fails the
    /// device otherwise): its DMA then goes through the platform's address
    /// translation. On q35 that is the Intel I/O MMU, so the disk reaches
    /// only the memory the kernel maps for it; without the flag QEMU's
    /// virtio would bypass the I/O MMU. On `pc` there is no I/O MMU and
    /// QEMU 7.2 accepts the flag anyway (checked: the device appears as
    /// 1af4:1042 and still offers the feature), DMA addresses being
    /// physical ones; keeping it means a driver negotiates the same
    /// features on both boards. The default cache mode (writeback) and
    /// image locking stay: a fresh disk is a new file at every boot, so two
    /// runs never share one, and two runs of a `persist` disk should fail
    /// on QEMU's lock rather than corrupt it.
    pub fn qemu_args(&self, image_file: &Path) -> [String; 4] {
        // QEMU splits option values at commas and reads ",," as one.
        let file = image_file.to_string_lossy().replace(',', ",,");
        let name = &self.name;
        [
            "-drive".to_string(),
            format!("file={file},if=none,id={name},format=raw"),
            "-device".to_string(),
            format!(
                "virtio-blk-pci,drive={name},serial={name},disable-legacy=on,iommu_platform=on"
            ),
        ]
    }
}

/// Checks the `[[disk]]` entries; `manifest_dir` is where `from` paths
/// start. On failure: the field and what is wrong with it.
pub(super) fn parse_disks(raw: Vec<RawDisk>, manifest_dir: &Path) -> FieldResult<Vec<Disk>> {
    if raw.len() > MAX_DISKS {
        return Err((
            "disk".to_string(),
            format!(
                "{} [[disk]] entries; an image has at most {MAX_DISKS}",
                raw.len()
            ),
        ));
    }
    let mut disks: Vec<Disk> = Vec::with_capacity(raw.len());
    for (i, d) in raw.into_iter().enumerate() {
        let field = |name: &str| format!("disk[{i}].{name}");
        let named = d.name.is_some();
        let name = d.name.unwrap_or_else(|| format!("disk{i}"));
        if let Err(why) = check_name(&name) {
            return Err((field("name"), format!("'{name}' {why}")));
        }
        if let Some(j) = disks.iter().position(|o| o.name == name) {
            let whose = if named { "" } else { " (its default name)" };
            return Err((
                field("name"),
                format!("'{name}'{whose} is already disk[{j}]'s name"),
            ));
        }
        let size = match &d.size {
            None => None,
            Some(value) => Some(
                parse_size(value)
                    .and_then(|bytes| check_size(bytes).map(|()| bytes))
                    .map_err(|why| (field("size"), why))?,
            ),
        };
        let from = match &d.from {
            None => None,
            Some(text) => Some(check_from(text, manifest_dir).map_err(|why| (field("from"), why))?),
        };
        let bytes = match (size, &from) {
            (Some(size), Some((path, len))) if *len > size => {
                return Err((
                    field("from"),
                    format!(
                        "{} is {len} bytes, larger than the disk's size ({})",
                        paths::display(path),
                        describe_size(size)
                    ),
                ));
            }
            (Some(size), _) => size,
            (None, Some((path, len))) => {
                check_size(*len).map_err(|why| {
                    (
                        field("from"),
                        format!(
                            "{} sets the disk's size, as `size` is not given: {why} \
                             (with `size`, a smaller file is padded with zeros)",
                            paths::display(path)
                        ),
                    )
                })?;
                *len
            }
            (None, None) => {
                return Err((
                    field("size"),
                    "is missing: give the disk's size (\"16 MiB\"), or `from`, a file \
                     whose size it takes"
                        .to_string(),
                ));
            }
        };
        disks.push(Disk {
            name,
            bytes,
            from: from.map(|(path, _)| path),
            persist: d.persist,
        });
    }
    Ok(disks)
}

/// Checks a disk name: 1 to 16 of a-z, 0-9 and '-', starting with a letter
/// (QEMU refuses an id that does not).
fn check_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() || name.len() > NAME_MAX {
        return Err("is not 1 to 16 characters long");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err("may only have a-z, 0-9 and '-'");
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err("does not start with a letter (QEMU ids must)");
    }
    Ok(())
}

/// A size as written: an integer of bytes, or a string of a whole number
/// and an optional unit, KiB, MiB or GiB (powers of 1024).
fn parse_size(value: &toml::Value) -> Result<u64, String> {
    let text = match value {
        toml::Value::Integer(n) => {
            return u64::try_from(*n).map_err(|_| format!("{n} is negative"));
        }
        toml::Value::String(text) => text,
        other => {
            return Err(format!(
                "is a {}, not a size: write bytes (65536) or a string such as \"16 MiB\"",
                other.type_str()
            ));
        }
    };
    let not_a_size = || {
        format!(
            "{text:?} is not a size: write bytes (65536) or a whole number of KiB, MiB or GiB (\"16 MiB\")"
        )
    };
    let trimmed = text.trim();
    let digits = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(digits);
    let scale = match unit.trim_start() {
        "" => 1,
        "KiB" => KIB,
        "MiB" => MIB,
        "GiB" => GIB,
        _ => return Err(not_a_size()),
    };
    let number: u64 = number.parse().map_err(|_| not_a_size())?;
    number
        .checked_mul(scale)
        .ok_or_else(|| format!("{text:?} is out of range (64 KiB to 4 GiB)"))
}

/// A disk's size must be whole sectors, from 64 KiB to 4 GiB.
fn check_size(bytes: u64) -> Result<(), String> {
    if !(MIN_DISK_BYTES..=MAX_DISK_BYTES).contains(&bytes) {
        return Err(format!(
            "{} is out of range (64 KiB to 4 GiB)",
            describe_size(bytes)
        ));
    }
    if !bytes.is_multiple_of(SECTOR_BYTES) {
        return Err(format!(
            "{bytes} bytes is not a whole number of {SECTOR_BYTES}-byte sectors"
        ));
    }
    Ok(())
}

/// The `from` file: it must exist and be a regular file. Returns its path
/// (resolved against `manifest_dir`) and its size.
fn check_from(text: &str, manifest_dir: &Path) -> Result<(PathBuf, u64), String> {
    if text.is_empty() {
        return Err("is empty: name a file, relative to the manifest's directory".to_string());
    }
    let path = manifest_dir.join(text);
    match std::fs::metadata(&path) {
        Ok(meta) if meta.is_file() => Ok((path, meta.len())),
        Ok(_) => Err(format!("{} is not a regular file", paths::display(&path))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(format!(
            "{} does not exist (`from` is relative to the manifest's directory)",
            paths::display(&path)
        )),
        Err(e) => Err(format!("cannot read {}: {e}", paths::display(&path))),
    }
}

/// A size for messages: in the largest binary unit that divides it.
pub fn describe_size(bytes: u64) -> String {
    match bytes {
        0 => "0 bytes".to_string(),
        b if b.is_multiple_of(GIB) => format!("{} GiB", b / GIB),
        b if b.is_multiple_of(MIB) => format!("{} MiB", b / MIB),
        b if b.is_multiple_of(KIB) => format!("{} KiB", b / KIB),
        b => format!("{b} bytes"),
    }
}

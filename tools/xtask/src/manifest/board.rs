//! The `[image]` fields that choose what boots: the board QEMU emulates
//! (`machine`) and the build of the kernel (`kernel`).
//!
//! Rules: each field has one default (`q35`, `release`) and every other
//! value is refused with the list of those allowed.

/// The board an image boots on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Machine {
    /// QEMU's q35 (PCI Express, ECAM) with an Intel I/O MMU (DMA and
    /// interrupt remapping): the default.
    Q35,
    /// QEMU's i440FX `pc`, without an I/O MMU: the fallback, kept tested.
    Pc,
}

impl Machine {
    /// QEMU's arguments for it.
    pub fn qemu_args(self) -> &'static [&'static str] {
        match self {
            Machine::Q35 => &["-M", "q35", "-device", "intel-iommu,intremap=on"],
            Machine::Pc => &["-M", "pc"],
        }
    }
}

/// The kernel builds an image can boot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelBuild {
    /// The release kernel: what `run` and the benchmarks boot.
    Release,
    /// The release kernel with its run-time checks on (feature
    /// `lock-check`: the lock order), for the test images.
    Checked,
}

/// `image.machine`: the board; the reason when the value names none.
pub fn machine(value: Option<&str>) -> Result<Machine, String> {
    match value {
        None | Some("q35") => Ok(Machine::Q35),
        Some("pc") => Ok(Machine::Pc),
        Some(other) => Err(format!(
            "{other:?} is not a machine: \"q35\" (the default, with an I/O MMU) or \"pc\" (without)"
        )),
    }
}

/// `image.kernel`: the kernel build; the reason when the value names none.
pub fn kernel(value: Option<&str>) -> Result<KernelBuild, String> {
    match value {
        None | Some("release") => Ok(KernelBuild::Release),
        Some("checked") => Ok(KernelBuild::Checked),
        Some(other) => Err(format!(
            "{other:?} is not a kernel build: \"release\" (the default) or \"checked\" (lock order checked at run time)"
        )),
    }
}

//! Image manifests: `tools/images/<name>.toml`, which name the boot modules
//! of an image (in boot order, the first is init), their arguments, a few
//! machine settings, its disks (`disk`) and network interfaces (`nic`).
//!
//! Rules: unknown fields are errors (a typo must not be silently ignored) and
//! every error names the file and the field. Validation here covers what can
//! be checked without a build; that each module's binary exists is checked by
//! `image` after the build. The `-initrd` string is built here because its
//! escaping rules follow from what a manifest may contain.

use std::fs;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Failure, Result, bail, io_failure};
use crate::paths;

mod board;
mod cpus;
mod devices;
mod disk;
mod expect;
mod nic;
pub use board::{KernelBuild, Machine};
use cpus::check_module_cpus;
use devices::{check_device_name, check_device_sources, check_devices};
pub use disk::{Disk, describe_size};
pub use expect::{Expect, ExpectedOutcome, HostCheck, Input};
pub use nic::Nic;

/// The memory size when the manifest names none.
const DEFAULT_MEMORY_MIB: u32 = 256;
/// The host-side limit for headless runs when the manifest names none.
pub const DEFAULT_TIMEOUT_SECS: u64 = 300;
/// The CPUs of an image whose manifest names none: one, so that an image
/// (a benchmark above all) only runs on several CPUs when it says so.
const DEFAULT_CPUS: u32 = 1;
/// The most CPUs an image may have: the SMP kernel's limit (issue 12).
pub const MAX_CPUS: u32 = 16;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    image: RawImage,
    #[serde(default)]
    module: Vec<RawModule>,
    #[serde(default)]
    disk: Vec<disk::RawDisk>,
    #[serde(default)]
    nic: Vec<nic::RawNic>,
    expect: Option<expect::RawExpect>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawImage {
    description: String,
    timeout_secs: Option<u64>,
    kernel_args: Option<String>,
    memory_mib: Option<u32>,
    // A TOML value rather than a number, so that `cpus = "4"` gets this
    // file's message naming the field, not serde's type error.
    cpus: Option<toml::Value>,
    machine: Option<String>,
    kernel: Option<String>,
    #[serde(default)]
    pci: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModule {
    binary: String,
    #[serde(default)]
    args: Vec<String>,
    priority: Option<u8>,
    cpus: Option<Vec<u32>>,
    memory_limit_kib: Option<u64>,
    processes: Option<u32>,
    registers: Option<String>,
    #[serde(default)]
    also_registers: Vec<String>,
    #[serde(default)]
    restart: bool,
    start: Option<bool>,
    #[serde(default)]
    system: bool,
    devices: Option<Vec<String>>,
}

/// A validated image manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    /// The image name (the file stem).
    pub name: String,
    pub description: String,
    pub timeout_secs: u64,
    pub kernel_args: Option<String>,
    pub memory_mib: u32,
    /// The CPUs QEMU gives the machine (`-smp`), 1 to [`MAX_CPUS`].
    pub cpus: u32,
    /// The board QEMU emulates.
    pub machine: Machine,
    /// Which build of the kernel boots.
    pub kernel: KernelBuild,
    /// Extra PCI devices on it (QEMU models from [`PCI_MODELS`]).
    pub pci: Vec<String>,
    /// Boot modules in boot order; never empty.
    pub modules: Vec<Module>,
    /// The virtio-blk disks, in PCI order (after `pci`'s devices).
    pub disks: Vec<Disk>,
    /// The network interfaces, in PCI order (after the disks).
    pub nics: Vec<Nic>,
    /// For self-test images: how the run must end.
    pub expect: Option<Expect>,
}

/// The PCI devices an image may add: QEMU's `edu` is a small test device
/// with a DMA engine and MSI, for exercising drivers and the I/O MMU.
pub const PCI_MODELS: [&str; 1] = ["edu"];

/// QEMU's `-device` value for PCI model `model` (one of [`PCI_MODELS`]).
/// edu drives only 28 address bits unless told otherwise; the I/O MMU
/// tests need it to reach any address, as a hostile device would (the
/// interrupt window at 0xFEEx_xxxx above all).
pub fn pci_device_arg(model: &str) -> &str {
    match model {
        "edu" => "edu,dma_mask=0xffffffffffffffff",
        other => other,
    }
}

/// One boot module: a user ELF by its binary name and its arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Module {
    pub binary: String,
    pub args: Vec<String>,
    /// The scheduling priority init gives it (0 most urgent .. 7), if any.
    pub priority: Option<u8>,
    /// The CPUs it may run on (indices), if bound; on a machine without
    /// one of them it runs anywhere (init says so).
    pub cpus: Option<Vec<u32>>,
    /// The most memory it and the processes it forks may hold together, in
    /// KiB (init gives it a reserve of its own with this limit), if limited.
    pub memory_limit_kib: Option<u64>,
    /// The most processes it and those it forks may be at once (zombies
    /// included); libmh's default (32) if not given.
    pub processes: Option<u32>,
    /// The device name it registers: init waits for that name before
    /// starting the next module.
    pub registers: Option<String>,
    /// Other device names it registers (init does not wait for them), so
    /// that other modules may list them in `devices`.
    pub also_registers: Vec<String>,
    /// Whether init starts it again (with backoff) when it dies.
    pub restart: bool,
    /// Whether init starts it at boot (`false`: it is in the image for the
    /// shell's `run`).
    pub start: bool,
    /// Whether it keeps RIGHT_SYSTEM (platform, mempool, hardware devices):
    /// for drivers and the memory server.
    pub system: bool,
    /// The only device names it may attach or register (init narrows its
    /// name scope to these before its program starts); `None`: whatever
    /// its starter may use.
    pub devices: Option<Vec<String>>,
}

/// The kernel's own devices: always registered.
pub const KERNEL_DEVICES: [&str; 6] = ["registry", "bootfs", "klog", "platform", "mempool", "proc"];

/// The most processes the kernel's table holds at once.
const MAX_PROCESSES: u32 = 4096;

/// The longest module command line the kernel keeps (kernel_core::bootinfo).
const CMDLINE_MAX: usize = 255;

impl Module {
    /// Whether it registers `name` (as `registers` or `also_registers`).
    pub fn registers_name(&self, name: &str) -> bool {
        self.registers.as_deref() == Some(name) || self.also_registers.iter().any(|n| n == name)
    }

    /// Its boot command line as the kernel and init see it: the binary,
    /// the loader options (marked with '@'; libmh's spawn applies and
    /// strips them), then the arguments.
    pub fn command_line(&self) -> String {
        let mut line = self.binary.clone();
        if let Some(p) = self.priority {
            line.push_str(&format!(" @priority={p}"));
        }
        if let Some(cpus) = &self.cpus {
            let list: Vec<String> = cpus.iter().map(u32::to_string).collect();
            line.push_str(&format!(" @cpus={}", list.join(",")));
        }
        if let Some(kib) = self.memory_limit_kib {
            line.push_str(&format!(" @memory_kib={kib}"));
        }
        if let Some(n) = self.processes {
            line.push_str(&format!(" @processes={n}"));
        }
        if let Some(name) = &self.registers {
            line.push_str(&format!(" @registers={name}"));
        }
        if self.restart {
            line.push_str(" @restart");
        }
        if !self.start {
            line.push_str(" @nostart");
        }
        if self.system {
            line.push_str(" @system");
        }
        if let Some(devices) = &self.devices {
            line.push_str(&format!(" @devices={}", devices.join(",")));
        }
        for arg in &self.args {
            line.push(' ');
            line.push_str(arg);
        }
        line
    }
}

/// A check's verdict: on failure, the field and what is wrong with it.
type FieldResult<T = ()> = std::result::Result<T, (String, String)>;

/// The smallest memory limit a module may have: below this not even a
/// small program's stack and heap fit.
const MIN_MEMORY_LIMIT_KIB: u64 = 64;

/// The manifest file of image `name`.
pub fn path_of(name: &str) -> PathBuf {
    paths::images_dir().join(format!("{name}.toml"))
}

/// Loads and validates the manifest of image `name`.
pub fn load(name: &str) -> Result<Manifest> {
    // The name becomes a path component and a directory under target/mh:
    // keep it to a plain word so it cannot point elsewhere.
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        bail!("bad image name '{name}': use letters, digits, '-' and '_' only");
    }
    let path = path_of(name);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!(
                "no image '{name}': {} does not exist (available: {})",
                paths::display(&path),
                available().join(", ")
            )
        }
        Err(e) => return Err(io_failure("cannot read", &path, &e)),
    };
    parse(name, &path, &text)
}

/// The names of all images under tools/images, sorted.
pub fn available() -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(paths::images_dir())
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let path = entry.path();
            (path.extension()? == "toml").then_some(())?;
            Some(path.file_stem()?.to_string_lossy().into_owned())
        })
        .collect();
    names.sort();
    names
}

/// Parses and validates manifest text read from `path`, which messages name
/// and `[[disk]]` `from` paths are relative to.
pub fn parse(name: &str, path: &Path, text: &str) -> Result<Manifest> {
    let file = &paths::display(path);
    let raw: RawManifest = toml::from_str(text)
        .map_err(|e| Failure::new(format!("{file}: {}", e.to_string().trim_end())))?;
    let err = |field: &str, what: String| Failure::new(format!("{file}: {field}: {what}"));

    if raw.module.is_empty() {
        return Err(err(
            "module",
            "no [[module]] entries: an image needs at least init".into(),
        ));
    }
    if raw.image.description.trim().is_empty() {
        return Err(err(
            "image.description",
            "is empty: say in one line what the image is for".into(),
        ));
    }
    let timeout_secs = match raw.image.timeout_secs {
        Some(0) => return Err(err("image.timeout_secs", "must be at least 1".into())),
        Some(secs) => secs,
        None => DEFAULT_TIMEOUT_SECS,
    };
    let memory_mib = match raw.image.memory_mib {
        // Below a few MiB the kernel and modules would not even load; catch a
        // unit mistake (bytes or GiB) early with a clear message.
        Some(m) if !(16..=65536).contains(&m) => {
            return Err(err(
                "image.memory_mib",
                format!("{m} is out of range (16 to 65536 MiB)"),
            ));
        }
        Some(m) => m,
        None => DEFAULT_MEMORY_MIB,
    };
    let cpus = match &raw.image.cpus {
        None => DEFAULT_CPUS,
        Some(toml::Value::Integer(n)) => check_cpus(*n).map_err(|w| err("image.cpus", w))?,
        Some(other) => {
            let shown = match other {
                toml::Value::String(s) => format!("{s:?}"),
                toml::Value::Float(f) => f.to_string(),
                v => format!("a {}", v.type_str()),
            };
            return Err(err(
                "image.cpus",
                format!("{shown} is not a CPU count: a whole number from 1 to {MAX_CPUS}"),
            ));
        }
    };
    let machine =
        board::machine(raw.image.machine.as_deref()).map_err(|w| err("image.machine", w))?;
    let kernel = board::kernel(raw.image.kernel.as_deref()).map_err(|w| err("image.kernel", w))?;
    for (i, model) in raw.image.pci.iter().enumerate() {
        if !PCI_MODELS.contains(&model.as_str()) {
            return Err(err(
                &format!("image.pci[{i}]"),
                format!("{model:?} is not a PCI device xtask knows: {PCI_MODELS:?}"),
            ));
        }
    }
    if let Some(args) = &raw.image.kernel_args
        && args.contains(['\n', '\r'])
    {
        return Err(err("image.kernel_args", "must be a single line".into()));
    }
    let manifest_dir = path.parent().unwrap_or(Path::new(""));
    let disks = disk::parse_disks(raw.disk, manifest_dir).map_err(|(f, w)| err(&f, w))?;
    let nics = nic::parse_nics(raw.nic).map_err(|(f, w)| err(&f, w))?;

    let mut modules = Vec::with_capacity(raw.module.len());
    for (i, m) in raw.module.into_iter().enumerate() {
        let field = format!("module[{i}]");
        // The binary name is the module's file name in the image directory
        // and the first word of its QEMU module string.
        if m.binary.is_empty()
            || m.binary
                .contains(|c: char| c.is_whitespace() || c == '/' || c == ',')
        {
            return Err(err(
                &format!("{field}.binary"),
                format!(
                    "'{}' is not a binary name (no spaces, '/' or ',')",
                    m.binary
                ),
            ));
        }
        for (j, arg) in m.args.iter().enumerate() {
            // QEMU splits a module string at spaces only for the file name;
            // the kernel splits the command line at whitespace, so an arg
            // with whitespace would silently become two, and an empty one
            // would vanish.
            if arg.is_empty() {
                return Err(err(&format!("{field}.args[{j}]"), "is empty".into()));
            }
            if arg.contains(char::is_whitespace) {
                return Err(err(
                    &format!("{field}.args[{j}]"),
                    format!("'{arg}' contains whitespace (each arg must be one word)"),
                ));
            }
            if arg.starts_with('@') {
                return Err(err(
                    &format!("{field}.args[{j}]"),
                    format!("'{arg}' starts with '@', which marks loader options"),
                ));
            }
        }
        if let Some(p) = m.priority
            && p > 7
        {
            return Err(err(
                &format!("{field}.priority"),
                format!("{p} is not a priority (0..=7)"),
            ));
        }
        if let Some(cpus) = &m.cpus {
            check_module_cpus(&format!("{field}.cpus"), cpus).map_err(|(f, w)| err(&f, w))?;
        }
        let is_init = i == 0;
        if is_init
            && (m.memory_limit_kib.is_some()
                || m.cpus.is_some()
                || m.processes.is_some()
                || m.registers.is_some()
                || m.restart
                || m.system
                || m.devices.is_some())
        {
            return Err(err(
                &field,
                "is init, which the kernel starts (with every right): memory_limit_kib, \
                 cpus, processes, registers, restart, system and devices apply to the \
                 modules init starts"
                    .into(),
            ));
        }
        let start = m.start.unwrap_or(true);
        if !start && (is_init || m.restart) {
            return Err(err(
                &format!("{field}.start"),
                "false does not go with init or restart (init would never start it)".into(),
            ));
        }
        if let Some(devices) = &m.devices {
            check_devices(&format!("{field}.devices"), devices).map_err(|(f, w)| err(&f, w))?;
        }
        if let Some(kib) = m.memory_limit_kib {
            let most = u64::from(memory_mib) * 1024;
            if !(MIN_MEMORY_LIMIT_KIB..=most).contains(&kib) {
                return Err(err(
                    &format!("{field}.memory_limit_kib"),
                    format!(
                        "{kib} is out of range ({MIN_MEMORY_LIMIT_KIB} KiB to the machine's {most} KiB)"
                    ),
                ));
            }
        }
        if let Some(n) = m.processes
            && !(1..=MAX_PROCESSES).contains(&n)
        {
            return Err(err(
                &format!("{field}.processes"),
                format!("{n} is out of range (1 to {MAX_PROCESSES}, the kernel's table)"),
            ));
        }
        if let Some(name) = &m.registers {
            if let Err(why) = check_device_name(name) {
                return Err(err(
                    &format!("{field}.registers"),
                    format!("'{name}' {why}"),
                ));
            }
            if let Some(j) = modules.iter().position(|o: &Module| o.registers_name(name)) {
                return Err(err(
                    &format!("{field}.registers"),
                    format!("'{name}' is already registered by module[{j}]"),
                ));
            }
        }
        for (k, name) in m.also_registers.iter().enumerate() {
            let taken = modules.iter().any(|o: &Module| o.registers_name(name))
                || m.registers.as_deref() == Some(name.as_str())
                || m.also_registers[..k].contains(name);
            let why = check_device_name(name)
                .err()
                .map(str::to_string)
                .or_else(|| taken.then(|| "is registered by another module, or twice".to_string()));
            if let Some(why) = why {
                return Err(err(
                    &format!("{field}.also_registers[{k}]"),
                    format!("'{name}' {why}"),
                ));
            }
        }
        modules.push(Module {
            binary: m.binary,
            args: m.args,
            priority: m.priority,
            cpus: m.cpus,
            memory_limit_kib: m.memory_limit_kib,
            processes: m.processes,
            registers: m.registers,
            also_registers: m.also_registers,
            restart: m.restart,
            start,
            system: m.system,
            devices: m.devices,
        });
    }
    check_device_sources(&modules).map_err(|(f, w)| err(&f, w))?;
    for (i, m) in modules.iter().enumerate() {
        let line = m.command_line();
        if line.len() > CMDLINE_MAX {
            return Err(err(
                &format!("module[{i}]"),
                format!(
                    "its command line '{line}' is {} bytes; the kernel keeps at most \
                     {CMDLINE_MAX} (shorten args or devices)",
                    line.len()
                ),
            ));
        }
    }

    let expect = match raw.expect {
        None => None,
        Some(e) => Some(expect::parse(e).map_err(|(f, w)| err(&f, w))?),
    };

    Ok(Manifest {
        name: name.to_string(),
        description: raw.image.description,
        timeout_secs,
        kernel_args: raw.image.kernel_args,
        memory_mib,
        cpus,
        machine,
        kernel,
        pci: raw.image.pci,
        modules,
        disks,
        nics,
        expect,
    })
}

/// Checks a CPU count, the manifest's `cpus` or an `--smp` override; the
/// reason when it is not one.
pub fn check_cpus(n: i64) -> std::result::Result<u32, String> {
    match u32::try_from(n) {
        Ok(n) if (1..=MAX_CPUS).contains(&n) => Ok(n),
        _ => Err(format!("{n} is out of range (1 to {MAX_CPUS} CPUs)")),
    }
}

impl Manifest {
    /// Adds `arg` to init's arguments (module 0), as `cargo xtask test`
    /// does to tell the runner which pass it is in; checked like the
    /// manifest's own arguments, the command line's length included.
    pub fn push_init_arg(&mut self, arg: &str) -> Result<()> {
        if arg.is_empty() || arg.contains(char::is_whitespace) || arg.starts_with('@') {
            bail!("'{arg}' cannot be an argument of init (one word, not starting with '@')");
        }
        let init = &mut self.modules[0];
        init.args.push(arg.to_string());
        let line = init.command_line();
        if line.len() > CMDLINE_MAX {
            init.args.pop();
            bail!(
                "{}: module[0]: with '{arg}' added, its command line '{line}' would be {} bytes; \
                 the kernel keeps at most {CMDLINE_MAX}",
                paths::display(&path_of(&self.name)),
                line.len()
            );
        }
        Ok(())
    }

    /// The value of QEMU's `-initrd`: modules joined with ",", each
    /// "<binary> <args…>". QEMU splits the list at single commas and reads a
    /// doubled comma as a literal one, so commas are doubled here.
    pub fn initrd(&self) -> String {
        self.modules
            .iter()
            .map(|m| m.command_line().replace(',', ",,"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The distinct binaries of the image, in first-use order.
    pub fn binaries(&self) -> Vec<&str> {
        let mut seen: Vec<&str> = Vec::new();
        for m in &self.modules {
            if !seen.contains(&m.binary.as_str()) {
                seen.push(&m.binary);
            }
        }
        seen
    }
}

#[cfg(test)]
mod tests;

//! The boot modules, through the `bootfs` kernel device, and starting
//! them as processes (fork + exec).
//!
//! Rules: the image is read by the child, into pages it maps for the
//! purpose just before `exec` replaces them, so the parent's memory is
//! never touched and no allocator is needed.

use crate::dev::{self, Handle, REGISTRY};
use crate::process;
use crate::vm;
use abi::Error;
use abi::kdev::*;

/// Where a child reads the image it is about to exec.
const LOAD_AREA: u64 = 0x0000_7e00_0000_0000;
const PAGE: u64 = 4096;

/// The status a spawned child exits with when the module's rights or
/// device scope could not be applied: its program never ran.
pub const SPAWN_REFUSED: i64 = 126;
/// The status a spawned child exits with when the module could not be
/// loaded (read or exec failed): its program never ran.
pub const SPAWN_FAILED: i64 = 127;

/// A bootfs handle.
#[derive(Clone, Copy, Debug)]
pub struct Bootfs(pub Handle);

impl Bootfs {
    /// Attaches bootfs through the registry (needs LOOKUP; bootfs is for
    /// init and whoever it hands a handle to). The handle passes to a
    /// forked child (which reads the image) but not across exec (the
    /// started program has no business with bootfs).
    pub fn open() -> Result<Bootfs, Error> {
        let rights = dev::RIGHT_READ | dev::RIGHT_WRITE | dev::RIGHT_DMA | dev::RIGHT_CLONE;
        dev::attach(REGISTRY, "bootfs", rights | dev::ATTACH_CLOSE_ON_EXEC).map(Bootfs)
    }

    pub fn count(self) -> Result<u32, Error> {
        self.0.port_in(BOOTFS_PORT_COUNT, 4).map(|n| n as u32)
    }

    /// Module `index`'s size in bytes.
    pub fn size(self, index: u32) -> Result<u64, Error> {
        self.0.port_out(BOOTFS_PORT_SELECT, 4, index as u64)?;
        self.0.port_in(BOOTFS_PORT_SIZE, 4)
    }

    /// Copies module `index`'s command line into `buf`; returns it.
    pub fn cmdline(self, index: u32, buf: &mut [u8]) -> Result<&str, Error> {
        self.0.port_out(BOOTFS_PORT_SELECT, 4, index as u64)?;
        let iova = self.0.export(buf)?;
        let read = (|| {
            self.0.port_out(BOOTFS_PORT_OFFSET, 8, 0)?;
            self.0.port_out(BOOTFS_PORT_LEN, 8, buf.len() as u64)?;
            self.0.port_out(BOOTFS_PORT_READ_CMDLINE, 8, iova)?;
            self.0.port_in(BOOTFS_PORT_DONE, 4)
        })();
        self.0.unexport(iova)?;
        let n = read? as usize;
        core::str::from_utf8(&buf[..n]).map_err(|_| Error::BadImage)
    }

    /// Reads all of module `index` into `buf` (at least its size).
    pub fn read(self, index: u32, buf: &mut [u8]) -> Result<usize, Error> {
        self.0.port_out(BOOTFS_PORT_SELECT, 4, index as u64)?;
        let iova = self.0.export(buf)?;
        let read = (|| {
            self.0.port_out(BOOTFS_PORT_OFFSET, 8, 0)?;
            self.0.port_out(BOOTFS_PORT_LEN, 8, buf.len() as u64)?;
            self.0.port_out(BOOTFS_PORT_READ, 8, iova)?;
            self.0.port_in(BOOTFS_PORT_DONE, 4)
        })();
        self.0.unexport(iova)?;
        read.map(|n| n as usize)
    }

    /// The index of the first module whose binary (the first word of its
    /// command line) is `name`.
    pub fn find(self, name: &str) -> Result<Option<u32>, Error> {
        for index in 0..self.count()? {
            let mut buf = [0u8; 256];
            if self.cmdline(index, &mut buf)?.split_whitespace().next() == Some(name) {
                return Ok(Some(index));
            }
        }
        Ok(None)
    }

    /// Starts module `index` as a child with its boot command line
    /// (`binary args…`, as the manifest wrote it); returns the child's pid.
    /// The child exits with [`SPAWN_FAILED`] if it cannot load the image.
    pub fn spawn(self, index: u32) -> Result<u32, Error> {
        self.spawn_with(index, None)
    }

    /// `spawn`, but with `args` (words separated by spaces) instead of the
    /// arguments on the module's boot command line; its loader options
    /// (priority, memory limit) still apply. `InvalidArgument` if the name
    /// and `args` do not fit in 255 bytes; `AccessDenied` (nothing is
    /// started) if the module has a memory or process limit and the caller
    /// cannot attach mempool to apply it. A child that cannot take the
    /// module's rights or device scope exits with [`SPAWN_REFUSED`] before
    /// its program runs; one that cannot load it, with [`SPAWN_FAILED`].
    pub fn spawn_with(self, index: u32, args: Option<&str>) -> Result<u32, Error> {
        if let Some(a) = args
            && a.len() + 33 > 255
        {
            return Err(Error::InvalidArgument);
        }
        let size = self.size(index)?;
        let mut cmd = [0u8; 256];
        let cmdline = self.cmdline(index, &mut cmd)?;
        let options = Options::parse(cmdline);
        // The module's reserve is made with it, at fork: it never runs on
        // the spawner's. A module that cannot have its reserve does not
        // start.
        stage_reserve(&options)?;
        match process::fork()? {
            0 => {
                if !options.system
                    && let Err(e) = drop_system_right()
                {
                    crate::println!("spawn: module {index}: cannot drop RIGHT_SYSTEM: {e}");
                    process::exit(SPAWN_REFUSED)
                }
                if let Some(list) = options.devices
                    && let Err(e) =
                        dev::restrict_names_raw(list.split(',').filter(|n| !n.is_empty()))
                {
                    // AccessDenied: the list names a device the spawner
                    // may not use itself, which it cannot hand down.
                    crate::println!(
                        "spawn: module {index}: cannot limit its devices to '{list}': {e}"
                    );
                    process::exit(SPAWN_REFUSED)
                }
                let e = self.load_and_exec(index, size, args);
                crate::println!("spawn: module {index} could not start: {e}");
                process::exit(SPAWN_FAILED)
            }
            pid => {
                // fork returns to the parent first, so unless a timer tick
                // falls in between these are set before the child's exec:
                // the priority holds at once, a memory limit from the exec
                // (one set after it still holds from then on).
                if let Some(p) = options.priority {
                    process::set_priority(pid, p)?;
                }
                if let Some(mask) = options.cpus
                    && let Err(e) = process::set_affinity(pid, mask)
                {
                    // A CPU the machine does not have: it runs anywhere.
                    crate::println!("spawn: module {index}: cannot bind it to CPUs {mask:#x}: {e}");
                }
                if let Some(kib) = options.memory_kib
                    && let Err(e) = supervise_memory(pid, kib, size)
                {
                    crate::println!("spawn: module {index}: cannot tell mem its ceiling: {e}");
                }
                Ok(pid)
            }
        }
    }

    /// The loader options of module `index`; `buf` receives its command
    /// line (256 bytes hold anything xtask writes).
    pub fn options<'b>(self, index: u32, buf: &'b mut [u8]) -> Result<Options<'b>, Error> {
        Ok(Options::parse(self.cmdline(index, buf)?))
    }

    /// In the child: map room, read the image, exec it.
    fn load_and_exec(self, index: u32, size: u64, args: Option<&str>) -> Error {
        // An empty module is a packaging mistake, not a bad buffer: say so
        // rather than let exec refuse a zero-length image.
        if size == 0 {
            return Error::BadImage;
        }
        let len = size.div_ceil(PAGE).max(1) * PAGE;
        if let Err(e) = vm::map(LOAD_AREA, len, vm::PROT_RW) {
            return e;
        }
        // SAFETY: the range was just mapped read-write for this purpose and
        // nothing else refers to it.
        let image = unsafe { core::slice::from_raw_parts_mut(LOAD_AREA as *mut u8, size as usize) };
        if let Err(e) = self.read(index, image) {
            return e;
        }
        let mut cmd = [0u8; 256];
        let mut rest = [0u8; 256];
        match self.cmdline(index, &mut cmd) {
            Ok(cmdline) => {
                // The program sees its name and arguments, not the loader
                // options.
                let (_, mut program) = split_options(cmdline);
                let name = program.next();
                let rest_words: &mut dyn Iterator<Item = &str> = match args {
                    None => &mut program,
                    Some(a) => &mut a.split_whitespace(),
                };
                let mut n = 0;
                for part in name.into_iter().chain(rest_words) {
                    let sep = (n > 0) as usize;
                    if n + sep + part.len() > rest.len() {
                        break;
                    }
                    if sep == 1 {
                        rest[n] = b' ';
                    }
                    rest[n + sep..n + sep + part.len()].copy_from_slice(part.as_bytes());
                    n += sep + part.len();
                }
                process::exec(image, core::str::from_utf8(&rest[..n]).unwrap_or(""))
            }
            Err(e) => e,
        }
    }
}

/// `0,2,3` as a mask (bit i: CPU i); None if any entry is not a CPU
/// number below 64.
fn parse_cpus(list: &str) -> Option<u64> {
    list.split(',').try_fold(0u64, |mask, n| {
        let cpu: u32 = n.parse().ok()?;
        (cpu < 64).then(|| mask | 1 << cpu)
    })
}

/// The loader options of a boot module: the `@` words right after its
/// name on the command line, written by xtask from the image manifest
/// (docs/manifest.md). Unknown options are ignored (xtask refuses them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Options<'a> {
    /// `@priority=N`: its scheduling priority.
    pub priority: Option<u8>,
    /// `@cpus=0,2`: the CPUs it may run on, as a mask (bit i: CPU i).
    pub cpus: Option<u64>,
    /// `@memory_kib=N`: the most memory it and what it forks may hold.
    pub memory_kib: Option<u64>,
    /// `@processes=N`: the most processes it and what it forks may be.
    pub processes: Option<u32>,
    /// `@registers=NAME`: the device it registers once ready.
    pub registers: Option<&'a str>,
    /// `@restart`: start it again when it dies.
    pub restart: bool,
    /// `@nostart`: not started at boot (the shell runs it by name).
    pub no_start: bool,
    /// `@system`: keeps RIGHT_SYSTEM on its registry handle (drivers, mem);
    /// every other module loses it before its program starts.
    pub system: bool,
    /// `@devices=a,b,c`: the only device names it may attach or register
    /// (`restrict_names`, set before its program starts); `@devices=`
    /// leaves none. Without it, the spawner's own scope passes on whole.
    pub devices: Option<&'a str>,
}

impl<'a> Options<'a> {
    /// Whether the module has a memory or process limit of its own, which
    /// only a spawner that can stage reserves (through mempool) can apply.
    pub fn has_limits(&self) -> bool {
        self.memory_kib.is_some() || self.processes.is_some()
    }

    pub fn parse(cmdline: &'a str) -> Options<'a> {
        let mut o = Options::default();
        for word in split_options(cmdline).0 {
            let (key, value) = word.split_once('=').unwrap_or((word, ""));
            match key {
                "@priority" => o.priority = value.parse().ok(),
                "@cpus" => o.cpus = parse_cpus(value),
                "@memory_kib" => o.memory_kib = value.parse().ok(),
                "@processes" => o.processes = value.parse().ok(),
                "@registers" if !value.is_empty() => o.registers = Some(value),
                "@restart" => o.restart = true,
                "@nostart" => o.no_start = true,
                "@system" => o.system = true,
                "@devices" => o.devices = Some(value),
                _ => {}
            }
        }
        o
    }
}

/// Takes RIGHT_SYSTEM off this process's registry handle (a module the
/// manifest does not mark `system` must not reach platform, mempool or
/// hardware devices).
fn drop_system_right() -> Result<(), Error> {
    let rights = REGISTRY.info()?.rights;
    if rights & dev::RIGHT_SYSTEM == 0 {
        return Ok(());
    }
    REGISTRY.restrict(rights & !dev::RIGHT_SYSTEM)
}

/// Stages the reserve of the module about to be forked: its memory limit
/// (`@memory_kib`, none without it) and its process limit (`@processes`,
/// `DEFAULT_PROCESSES` without it). Without mempool (a spawner that is
/// not a system module) the child shares the spawner's reserve — unless
/// the module has a limit of its own, which could then not hold: such a
/// module is not started (`AccessDenied`), rather than run unlimited.
fn stage_reserve(options: &Options<'_>) -> Result<(), Error> {
    let pool = match crate::mempool::Pool::open() {
        Ok(pool) => pool,
        Err(e @ (Error::AccessDenied | Error::NotFound)) => {
            return if options.has_limits() { Err(e) } else { Ok(()) };
        }
        Err(e) => return Err(e),
    };
    let limit = options.memory_kib.map(|kib| kib.div_ceil(4));
    let processes = options.processes.unwrap_or(DEFAULT_PROCESSES);
    let staged = pool.stage_child(limit, Some(processes));
    let _ = pool.close();
    staged
}

/// The process limit of a module whose manifest names none: itself and
/// what it forks, zombies included.
pub const DEFAULT_PROCESSES: u32 = 32;

/// The module `pid` was forked with a reserve of `kib` KiB (from its
/// exec on). If a mem server takes the caller as its supervisor, `kib`
/// becomes the module's ceiling there and its reserve shrinks to what
/// starting needs — its image (`size` bytes: more than it loads) and 256
/// KiB — so that it holds only what it uses and grows by grants. (Limits
/// set before the module's exec take effect at it, so this may run
/// before or after.)
fn supervise_memory(pid: u32, kib: u64, size: u64) -> Result<(), Error> {
    let ceiling = kib.div_ceil(4);
    let start = size.div_ceil(PAGE) + START_SLACK_FRAMES;
    let supervised = crate::mem::with_connection(|m| {
        m.set_ceiling(pid, ceiling)?;
        m.set_limit(pid, start.min(ceiling))
    });
    match supervised {
        // No mem server, or it is not ours to tell: the limit stays.
        Ok(_) | Err(Error::NotFound) | Err(Error::AccessDenied) => Ok(()),
        Err(e) => Err(e),
    }
}

/// The reserve a supervised module starts with beyond its image (256 KiB:
/// its stack, page tables and first allocations).
const START_SLACK_FRAMES: u64 = 64;

/// A boot command line is `binary [@option ...] args...`: the loader
/// options (`@priority=N`) come right after the name. Returns the options,
/// and the name followed by the arguments.
fn split_options(cmdline: &str) -> (impl Iterator<Item = &str>, impl Iterator<Item = &str>) {
    let options = cmdline
        .split_whitespace()
        .skip(1)
        .take_while(|w| w.starts_with('@'));
    let name = cmdline.split_whitespace().take(1);
    let args = cmdline
        .split_whitespace()
        .skip(1)
        .skip_while(|w| w.starts_with('@'));
    (options, name.chain(args))
}

/// Starts every boot module after the first (which is the caller, init),
/// in order; returns how many started, and reports the ones that did not.
pub fn spawn_boot_modules() -> Result<u32, Error> {
    let fs = Bootfs::open()?;
    let mut started = 0;
    for index in 1..fs.count()? {
        match fs.spawn(index) {
            Ok(_) => started += 1,
            Err(e) => crate::println!("spawn: module {index}: {e}"),
        }
    }
    fs.0.detach()?;
    Ok(started)
}

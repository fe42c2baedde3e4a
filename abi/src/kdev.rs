//! Port maps of the kernel devices (one page each in docs/devices/).
//!
//! Names carry their device (`BOOTFS_PORT_READ`): C has one namespace,
//! and the generated header must not merge two devices' ports. All ports
//! take size 4 (or 8) unless noted; a port that does not exist, or an
//! access in the wrong direction, is `InvalidArgument`.

// ---- registry ----
// `registry`: the name space. Attach by name through it (LOOKUP right);
// user devices register their names in it (REGISTER right, at
// `dev_create`). Its ports list the registered devices.

/// in: how many devices are registered.
pub const REGISTRY_PORT_COUNT: u32 = 0;
/// out: select, for the ports below, the first device at or after
/// position n of the device table. A walk selects 0, reads the device and
/// its `REGISTRY_PORT_POSITION`, selects that plus one, and so on until
/// the ports say `NotFound`; each step costs the same however many
/// devices there are.
pub const REGISTRY_PORT_SELECT: u32 = 1;
/// in: bytes 4k..4k+4 of the selected name, for k in 0..8 (port
/// `PORT_NAME + k`); unused bytes are 0.
pub const REGISTRY_PORT_NAME: u32 = 2;
/// in: the selected device's kind (`DEVICE_KIND_*`).
pub const REGISTRY_PORT_KIND: u32 = 10;
/// in: its clients now.
pub const REGISTRY_PORT_CLIENTS: u32 = 11;
/// in: its server's pid (user devices), else 0.
pub const REGISTRY_PORT_SERVER: u32 = 12;
/// in: its position in the device table (select one past it for the next).
pub const REGISTRY_PORT_POSITION: u32 = 13;

// ---- bootfs ----
// `bootfs`: the boot modules and their command lines, read by DMA into
// memory the client exported to the device.

/// in: how many modules there are.
pub const BOOTFS_PORT_COUNT: u32 = 0;
/// out: select module n for the ports below.
pub const BOOTFS_PORT_SELECT: u32 = 1;
/// in: its size in bytes.
pub const BOOTFS_PORT_SIZE: u32 = 2;
/// in: the length of its command line.
pub const BOOTFS_PORT_CMDLINE_LEN: u32 = 3;
/// out (size 4 or 8): where in the module the next read starts.
pub const BOOTFS_PORT_OFFSET: u32 = 4;
/// out (size 4 or 8): how many bytes the next read copies at most.
pub const BOOTFS_PORT_LEN: u32 = 5;
/// out (size 8): copy module bytes to this iova (inside an export).
pub const BOOTFS_PORT_READ: u32 = 6;
/// out (size 8): copy the command line to this iova.
pub const BOOTFS_PORT_READ_CMDLINE: u32 = 7;
/// in: how many bytes the last read copied.
pub const BOOTFS_PORT_DONE: u32 = 8;

// ---- klog ----
// `klog`: the kernel log (a 64 KiB ring of every line the kernel and
// `log_write` produced), read by DMA into an export. IRQ line 0 fires when
// new bytes arrive (map it with `irq_map`).

/// in (size 8): bytes ever written to the log.
pub const KLOG_PORT_WRITTEN: u32 = 0;
/// out (size 8): the absolute position the next read starts at.
pub const KLOG_PORT_POS: u32 = 1;
/// out (size 4 or 8): the most bytes the next read copies.
pub const KLOG_PORT_LEN: u32 = 2;
/// out (size 8): copy log bytes from the position to this iova (inside
/// an export); the position moves past them.
pub const KLOG_PORT_READ: u32 = 3;
/// in: bytes the last read copied.
pub const KLOG_PORT_DONE: u32 = 4;
/// in (size 8): bytes the last read skipped because the ring had
/// already overwritten them.
pub const KLOG_PORT_LOST: u32 = 5;
/// in (size 8): the current position.
pub const KLOG_PORT_POS_NOW: u32 = 6;
/// in/out (size 8): the shared mark — one position for the whole system,
/// which the console server sets to what it has shown, so that a restarted
/// console goes on from there instead of losing what was logged while it
/// was down. 0 until someone sets it.
pub const KLOG_PORT_MARK: u32 = 7;
/// The IRQ line raised when the log grows.
pub const KLOG_IRQ_DATA: u32 = 0;

// ---- platform ----
// `platform`: makes hardware devices (init holds it). Each port takes,
// at an iova inside an export, an `HwDeviceSpec`.

/// out (size 8): create and register the hardware device described at
/// this iova. Refused if a resource overlaps another device's, is one
/// the kernel drives itself, is RAM presented as MMIO, or an interrupt
/// line that does not exist.
pub const PLATFORM_PORT_CREATE: u32 = 0;
/// out (size 8): give back the frames quarantined for the device named
/// in the spec at this iova (do it after resetting the hardware, so it
/// no longer writes them).
pub const PLATFORM_PORT_RELEASE_QUARANTINE: u32 = 1;
/// in (size 8): pages in quarantine (frames, and I/O virtual addresses a
/// dead driver's device may still use), all devices together.
pub const PLATFORM_PORT_QUARANTINED: u32 = 2;
/// out (size 8): claim the PCI function named by the `PciClaimSpec` at
/// this iova as a hardware device: its BARs become its port and memory
/// ranges (the MSI-X table excluded), it gets an empty I/O MMU domain,
/// and bus mastering is on while a driver holds it. `NotFound` if no
/// function answers there, `NotSupported` if it is not an endpoint the
/// kernel can claim (a bridge, a malformed one), `Busy` if claimed
/// already or a resource is another device's, `AccessDenied` for a
/// function the kernel drives itself.
pub const PLATFORM_PORT_CLAIM_PCI: u32 = 3;
/// out (size 8): select the PCI function `segment << 16 | bus << 8 |
/// devfn` for `PLATFORM_PORT_PCI_ID` (`InvalidArgument` above 2^32).
pub const PLATFORM_PORT_PCI_SELECT: u32 = 4;
/// in (size 8): the selected function's identity, `vendor | device << 16
/// | class << 32 | subclass << 40 | prog_if << 48`, or 0 if nothing
/// answers there (or no configuration window covers it): how a
/// supervisor finds the function a driver is for.
pub const PLATFORM_PORT_PCI_ID: u32 = 5;
/// in (size 8): the TSC rate, in Hz (kept to the kHz), that the kernel
/// converts TSC ticks with: its own estimate from boot (measured against the PIT over a few
/// milliseconds, or assumed where it cannot measure) until a better
/// measurement is written. out (size 8): that measurement (the timer
/// server's, against the HPET), which the kernel uses from then on, so
/// the whole system has one rate; `InvalidArgument` unless it is within
/// a factor of 2 of the boot estimate (or, with no estimate, from 1 MHz
/// to 1 THz).
pub const PLATFORM_PORT_TSC_HZ: u32 = 6;

// ---- mempool ----
// `mempool`: frame reserves. A reserve is shared by a process and every
// process it forks (a module's processes draw on one budget), and it is
// charged for everything the kernel holds for them: their pages (one per
// page-table reference), their page tables, and their kernel objects
// (process records, bus tables, user devices, client records), in frames.
// Beyond its limit a process gets `OutOfMemory` (and, past the process
// limit, fork gets `LimitReached`); no one else is affected. The holders
// (init, the mem server) make the reserves and set the limits.

/// out: select process `pid` for the ports below.
pub const MEMPOOL_PORT_SELECT: u32 = 0;
/// out (size 8): set the selected process's reserve's limit, in frames
/// (`MEMPOOL_UNLIMITED` for none).
pub const MEMPOOL_PORT_LIMIT: u32 = 1;
/// in (size 8): frames the selected process's reserve holds now.
pub const MEMPOOL_PORT_USED: u32 = 2;
/// in (size 8): its limit (`MEMPOOL_UNLIMITED` for none).
pub const MEMPOOL_PORT_LIMIT_NOW: u32 = 3;
/// in (size 8): frames free in the system.
pub const MEMPOOL_PORT_FREE: u32 = 4;
/// out (size 8): give the selected process a reserve of its own with this
/// limit (`MEMPOOL_UNLIMITED` for none) and its old reserve's process
/// limit; what it holds moves with it (`OutOfMemory` if that is more than
/// the limit). The processes it forks from then on share the new one.
pub const MEMPOOL_PORT_NEW_RESERVE: u32 = 5;
/// out (size 4 or 8): set the most processes (zombies included) the
/// selected process's reserve may count.
pub const MEMPOOL_PORT_PROCESS_LIMIT: u32 = 6;
/// in: how many processes its reserve counts now.
pub const MEMPOOL_PORT_PROCESSES: u32 = 7;
/// in: its process limit.
pub const MEMPOOL_PORT_PROCESS_LIMIT_NOW: u32 = 8;
/// out (size 8): the caller's next `fork` puts its child in a new reserve
/// of its own, made as the child is (so the child never runs on the
/// caller's reserve), with this limit (`MEMPOOL_UNLIMITED` for none). The
/// limit takes effect at the child's first `exec` (the program it then
/// runs must fit it): until then the child runs the spawner's own code on
/// the spawner's pages. A limit set meanwhile (`MEMPOOL_PORT_LIMIT`, the
/// mem server's) waits for that exec too, and the tighter of the two holds
/// from it.
/// Used once, by that fork, whatever its outcome.
pub const MEMPOOL_PORT_CHILD_RESERVE: u32 = 9;
/// out (size 4 or 8): the process limit of the reserve the next fork makes
/// (without it, the caller's reserve's).
pub const MEMPOOL_PORT_CHILD_PROCESSES: u32 = 10;
/// The limit value meaning "no limit".
pub const MEMPOOL_UNLIMITED: u64 = 0x4000_0000_0000_0000;

// ---- proc ----
// `proc`: the process table (READ and WRITE: select and read), plus
// `PROC_PORT_KILL` (RIGHT_KILL), which ends a process — only one the caller
// is an ancestor of (its child, grandchild, ...: init's whole tree for
// init). Processes are selected by pid; `PROC_PORT_NEXT` walks the table.

/// The most processes that exist at once, zombies included (a walk with
/// `PROC_PORT_NEXT` takes at most this many steps).
pub const PROCESSES_MAX: u32 = 4096;

/// in: how many processes exist (zombies included).
pub const PROC_PORT_COUNT: u32 = 0;
/// out: select the process with this pid for the ports below.
pub const PROC_PORT_SELECT: u32 = 1;
/// in: the pid of the process after the selected one in the process
/// table, or 0 if none (select 0 and read this to start a walk; each step
/// costs the same however many processes there are). Table order is not
/// pid order; a walk can continue from a pid that has gone.
pub const PROC_PORT_NEXT: u32 = 2;
/// in: the selected process's parent pid.
pub const PROC_PORT_PARENT: u32 = 3;
/// in: its state (`PROC_STATE_*`).
pub const PROC_PORT_STATE: u32 = 4;
/// in: its scheduling priority.
pub const PROC_PORT_PRIORITY: u32 = 5;
/// in (size 8): frames it holds: its pages, page tables and kernel
/// objects (its share of its reserve).
pub const PROC_PORT_FRAMES: u32 = 6;
/// in: the CPU running it now (index), or [`PROC_CPU_NONE`].
pub const PROC_PORT_CPU: u32 = 7;
/// in (size 8): the CPUs it may run on (bit i: CPU i; 0: every CPU).
pub const PROC_PORT_AFFINITY: u32 = 19;
/// [`PROC_PORT_CPU`]: not running (ready, asleep or ended).
pub const PROC_CPU_NONE: u32 = u32::MAX;
/// in: bytes 4k..4k+4 of its name, for k in 0..8 (port `PROC_PORT_NAME +
/// k`); unused bytes are 0.
pub const PROC_PORT_NAME: u32 = 8;
/// out (value ignored): end the selected process (`ExitKind::KilledBy`);
/// its children go to init. Needs RIGHT_KILL and that the caller is an
/// ancestor of it, or is it.
pub const PROC_PORT_KILL: u32 = 16;
/// out (value ignored): end the selected process and every process below
/// it (its children, theirs, ...), deepest first, each `KilledBy` the
/// caller; the same rights as `PROC_PORT_KILL`. A large tree is killed in
/// steps: the call gives way to other processes at timer ticks and picks
/// up where it stopped, so it takes as long as the tree needs without
/// holding the machine. A caller inside the tree ends last.
pub const PROC_PORT_KILL_TREE: u32 = 17;
/// out: the value is a handle on the caller's bus; the selected process
/// may no longer attach or register devices of that handle's device's name
/// (its name scope loses it for good, and the processes it forks from then
/// on inherit that). What a supervisor does to a client that keeps
/// crashing a server (docs/devices/init.md). The same rights as
/// `PROC_PORT_KILL`; `BadHandle` for a bad handle, `DeviceGone` if its
/// device went away, `LimitReached` if the scope cannot hold another
/// revoked name.
pub const PROC_PORT_REVOKE: u32 = 18;

/// [`PROC_PORT_STATE`]: ready or running.
pub const PROC_STATE_RUNNABLE: u32 = 0;
/// Sleeping in a system call.
pub const PROC_STATE_BLOCKED: u32 = 1;
/// Ended, waiting for its parent to reap it.
pub const PROC_STATE_ZOMBIE: u32 = 2;

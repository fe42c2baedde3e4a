//! How a process ended, as reported to its parent by `wait_child`.

/// Why a process ended.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitKind {
    /// It called `exit(code)`.
    Exited = 0,
    /// The kernel killed it for a CPU fault it had no handler for;
    /// `code` is the x86 vector, `fault_addr` the faulting address (CR2 for
    /// page faults, 0 otherwise) and `fault_ip` the faulting instruction.
    Faulted = 1,
    /// The kernel ended it for another reason: `code` is an `Error` code
    /// saying why (e.g. `LimitReached`: its handler stack was full when
    /// interrupts had to be delivered).
    Killed = 2,
    /// Another process (an ancestor) ended it through the `proc` device's
    /// `PROC_PORT_KILL`; `code` is that process's pid.
    KilledBy = 3,
}

/// One reaped child: filled in by `wait_child`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExitStatus {
    /// The child's process id.
    pub pid: u32,
    /// An [`ExitKind`] value.
    pub kind: u32,
    /// The exit code (`Exited`) or the CPU vector (`Faulted`).
    pub code: i64,
    /// The faulting address (`Faulted`), else 0.
    pub fault_addr: u64,
    /// The faulting instruction pointer (`Faulted`), else 0.
    pub fault_ip: u64,
    /// The CPU error code pushed with the fault (`Faulted`), else 0.
    pub fault_error: u64,
    /// For a process that served user devices: the pid of the client whose
    /// request it took last and had not answered when it ended — the one to
    /// suspect if it died of it — or 0.
    pub culprit: u32,
    pub reserved: u32,
}

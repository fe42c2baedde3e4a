//! `sys_info`: counters for tests, benchmarks and tools.

/// Filled in by `sys_info`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SysInfo {
    /// Frames of RAM free right now.
    pub free_frames: u64,
    /// Frames of RAM the kernel manages (free + in use).
    pub total_frames: u64,
    /// Processes in the table (zombies included).
    pub processes: u64,
    /// Preemption ticks since boot.
    pub ticks: u64,
    /// Preemption ticks per second.
    pub tick_hz: u64,
    /// Handles on the caller's bus.
    pub handles: u64,
    /// Frames the kernel heap holds (kernel objects: process records,
    /// tables, queues; and the kernel's page tables for its heap and for
    /// device memory). `free_frames + heap_frames` moves only when pages
    /// or page tables are taken or given back, so tests compare it against
    /// a baseline without tripping over heap fragmentation.
    pub heap_frames: u64,
    /// Page-table frames of the caller's address space that map nothing:
    /// spare and idle tables kept for its next maps and the tables above
    /// idle ones (at most twelve, charged to it): counted with
    /// `free_frames` by tests that compare against a baseline.
    pub spare_tables: u64,
    /// TSC cycles the CPU has spent idle (halted, waiting for an
    /// interrupt) since boot. Under QEMU's `-icount`, where the TSC counts
    /// instructions and a halted CPU jumps the clock ahead, the TSC minus
    /// this is the instructions run: how benchmarks that wait for a
    /// device count only work.
    pub idle_cycles: u64,
    /// The CPU the caller runs on (index, 0 is the boot CPU) as it made
    /// the call.
    pub cpu: u32,
    /// CPUs running processes.
    pub cpus: u32,
}

//! System-call numbers and the register convention.
//!
//! `syscall` instruction; number in `rax`; arguments in `rdi`, `rsi`, `rdx`,
//! `r10`, `r8`, `r9`; result in `rax` (see [`crate::error`] for its sign
//! convention). `rcx` and `r11` are clobbered by the instruction itself; all
//! other registers are preserved.

/// System-call numbers. Stable: append only.
#[repr(u64)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sysno {
    /// `log_write(ptr, len) -> len`: append bytes to the kernel log.
    LogWrite = 1,
    /// `exit(status) -> !`: end the calling process.
    Exit = 2,
    /// `getpid() -> pid`.
    GetPid = 3,
    /// `yield() -> 0`: give the CPU to the next runnable process of the
    /// same priority.
    Yield = 4,
    /// `wait_child(&mut ExitStatus, flags) -> pid`: reap one exited child.
    WaitChild = 5,
    /// `log_read(pos, buf, len) -> n`: copy kernel-log bytes starting at
    /// absolute position `pos` (the log is a ring: `NotFound` if `pos` has
    /// been overwritten already).
    LogRead = 6,
    /// `fork() -> pid` in the parent, `0` in the child.
    Fork = 7,
    /// `exec(image, image_len, cmdline, cmdline_len) -> !`: replace the
    /// caller's program with the ELF image in its memory.
    Exec = 8,
    /// `vm_map(va, len, prot) -> 0`: fresh zeroed pages.
    VmMap = 9,
    /// `vm_protect(va, len, prot) -> 0`.
    VmProtect = 10,
    /// `vm_unmap(va, len) -> 0`.
    VmUnmap = 11,
    /// `vm_move(dst, src, len) -> 0`: move mappings, replacing `dst`.
    VmMove = 12,
    /// `set_handler(entry, stack_base, stack_size) -> 0`.
    SetHandler = 13,
    /// `int_return(&IntFrame) -> !`: resume the context a handler got.
    IntReturn = 14,
    /// `int_enable(on) -> was_on`: allow or hold interrupt delivery.
    IntEnable = 15,
    /// `irq_wait(mask) -> vectors`: sleep until a vector in `mask` is
    /// pending; take and return those pending vectors.
    IrqWait = 16,
    /// `irq_raise(vector) -> 0`: make a vector pending on the caller.
    IrqRaise = 17,
    /// `set_priority(pid, priority) -> 0`.
    SetPriority = 18,
    /// `sys_info(&mut SysInfo) -> 0`: counters for tests and tools.
    SysInfo = 19,
    /// `attach(registry, name, name_len, rights) -> handle`.
    Attach = 20,
    /// `detach(handle) -> 0`.
    Detach = 21,
    /// `info(handle, &mut DeviceInfo) -> 0`.
    Info = 22,
    /// `restrict(handle, rights) -> 0`: keep only `rights`.
    Restrict = 23,
    /// `port_in(handle, port, size) -> value`.
    PortIn = 24,
    /// `port_out(handle, port, size, value) -> 0`.
    PortOut = 25,
    /// `export(handle, va, len, flags, pages, pages_len) -> iova`: let the
    /// device reach these pages (`flags`: `hw::EXPORT_*`; `pages`, for a
    /// device that sees physical addresses, receives each page's).
    Export = 26,
    /// `unexport(handle, iova) -> 0`.
    Unexport = 27,
    /// `irq_map(handle, line, vector) -> 0`: deliver `line` as `vector`.
    IrqMap = 28,
    /// `irq_ack(handle, line) -> 0`.
    IrqAck = 29,
    /// `dev_create(registry, &DeviceConfig) -> handle`: serve a new user
    /// device, registered through `registry` (REGISTER right).
    DevCreate = 30,
    /// `dev_poll(dev, &mut Request or null, flags) -> client` (null: the
    /// request comes back in rdi, rsi, rdx, r10; see `Request::to_words`).
    DevPoll = 31,
    /// `dev_write_iospace(dev, client, port, size, value) -> 0`.
    DevWriteIospace = 32,
    /// `dev_irq(dev, client, line) -> 0`.
    DevIrq = 33,
    /// `dev_dma_read(dev, client, iova, buf, len) -> 0`: client to server.
    DevDmaRead = 34,
    /// `dev_dma_write(dev, client, buf, len, iova) -> 0`: server to client.
    DevDmaWrite = 35,
    /// `port_out_wait(handle, port, size, value, mask) -> vectors`:
    /// `port_out` then `irq_wait(mask)`, in one call.
    PortOutWait = 36,
    /// `dev_reply_poll(dev, client, port_size, value, line, &mut Request)
    /// -> client`: `dev_write_iospace` (unless `port_size` is 0), `dev_irq`
    /// (unless `line` is `u64::MAX`) and `dev_poll`, in one call.
    DevReplyPoll = 37,
    /// `iomap(handle, va, phys, len) -> 0`: map device memory at `va`.
    IoMap = 38,
    /// `iounmap(handle, va, len) -> 0`.
    IoUnmap = 39,
    /// `restrict_names(list, len) -> 0`: narrow the device names the
    /// caller may attach or register to those in `list` (names separated
    /// by NUL bytes). Names only ever go: naming one outside the current
    /// scope is `AccessDenied`. Inherited by fork, kept by exec.
    RestrictNames = 40,
    /// `set_affinity(pid, mask) -> 0`: the CPUs `pid` (0: the caller, or a
    /// child of it) may run on, bit i for CPU i; 0 means every CPU.
    /// `InvalidArgument` if the mask names no running CPU.
    SetAffinity = 41,
}

impl Sysno {
    /// Every system call, in number order.
    pub const ALL: [Sysno; 41] = [
        Sysno::LogWrite,
        Sysno::Exit,
        Sysno::GetPid,
        Sysno::Yield,
        Sysno::WaitChild,
        Sysno::LogRead,
        Sysno::Fork,
        Sysno::Exec,
        Sysno::VmMap,
        Sysno::VmProtect,
        Sysno::VmUnmap,
        Sysno::VmMove,
        Sysno::SetHandler,
        Sysno::IntReturn,
        Sysno::IntEnable,
        Sysno::IrqWait,
        Sysno::IrqRaise,
        Sysno::SetPriority,
        Sysno::SysInfo,
        Sysno::Attach,
        Sysno::Detach,
        Sysno::Info,
        Sysno::Restrict,
        Sysno::PortIn,
        Sysno::PortOut,
        Sysno::Export,
        Sysno::Unexport,
        Sysno::IrqMap,
        Sysno::IrqAck,
        Sysno::DevCreate,
        Sysno::DevPoll,
        Sysno::DevWriteIospace,
        Sysno::DevIrq,
        Sysno::DevDmaRead,
        Sysno::DevDmaWrite,
        Sysno::PortOutWait,
        Sysno::DevReplyPoll,
        Sysno::IoMap,
        Sysno::IoUnmap,
        Sysno::RestrictNames,
        Sysno::SetAffinity,
    ];

    /// The system call with this number, if any.
    pub const fn from_raw(raw: u64) -> Option<Sysno> {
        if raw >= 1 && raw as usize <= Self::ALL.len() {
            Some(Self::ALL[raw as usize - 1])
        } else {
            None
        }
    }
}

/// Largest byte count one `log_write` accepts; longer writes are an error,
/// not a truncation, so a caller never loses bytes silently.
pub const LOG_WRITE_MAX: usize = 4096;

/// `wait_child` flag: return `WouldBlock` instead of sleeping.
pub const WAIT_NOHANG: u64 = 1;

/// `dev_poll` flag: return `WouldBlock` instead of sleeping.
pub const POLL_NOWAIT: u64 = 1;

/// Largest ELF image `exec` accepts.
pub const EXEC_IMAGE_MAX: usize = 16 << 20;

/// Most memory the segments of an image `exec` accepts may take, page
/// rounded (bss included): exec fills it before it returns, so this bound
/// keeps every exec short. A program that needs more maps it at run time.
pub const EXEC_MEMORY_MAX: usize = 64 << 20;

/// Largest command line `exec` accepts (and the kernel passes on).
pub const CMDLINE_MAX: usize = 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_dense() {
        for (i, s) in Sysno::ALL.iter().enumerate() {
            assert_eq!(*s as u64, i as u64 + 1);
            assert_eq!(Sysno::from_raw(*s as u64), Some(*s));
        }
        assert_eq!(Sysno::from_raw(0), None);
        assert_eq!(Sysno::from_raw(u64::MAX), None);
    }
}

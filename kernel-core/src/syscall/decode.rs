//! Decoding: a system call's number and six argument words become a
//! [`Call`], every argument checked as far as it can be without the
//! kernel's state (numbers in range, sizes, lengths and their limits,
//! flags, vector masks, user ranges). What needs the state (a handle's
//! slot and rights, a device, a client, the pages behind a user range)
//! is checked by the call itself, before it changes anything.
//!
//! Rules: decoding reads nothing but the six words and writes nothing;
//! every malformed argument is an `Error` here, so no call downstream
//! checks its arguments' shape again; the error order within one call
//! is the documented one (syscalls.md).

use crate::usercopy::{USlice, UserPtr};
use crate::vm::Prot;
use abi::bus::{ATTACH_CLOSE_ON_EXEC, DEVICE_NAME_MAX, NAME_LIST_MAX, RIGHTS_ALL};
use abi::interrupt::VECTOR_COUNT;
use abi::syscall::{CMDLINE_MAX, EXEC_IMAGE_MAX, LOG_WRITE_MAX, POLL_NOWAIT, WAIT_NOHANG};
use abi::userdev::Request;
use abi::{DeviceConfig, DeviceInfo, Error, ExitStatus, IntFrame, SysInfo, Sysno};

/// A handle value (resolved against the caller's bus by the call).
pub type Handle = u64;

/// Interrupt vectors 0..63 (`VECTOR_COUNT`), a non-empty set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VectorMask(u64);

impl VectorMask {
    pub fn new(mask: u64) -> Result<VectorMask, Error> {
        let all = (1u64 << VECTOR_COUNT) - 1;
        if mask == 0 || mask & !all != 0 {
            return Err(Error::InvalidArgument);
        }
        Ok(VectorMask(mask))
    }

    pub fn bits(self) -> u64 {
        self.0
    }
}

/// One interrupt vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vector(u32);

impl Vector {
    pub fn new(v: u64) -> Result<Vector, Error> {
        if v >= u64::from(VECTOR_COUNT) {
            return Err(Error::InvalidArgument);
        }
        Ok(Vector(v as u32))
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

/// A port access: a 32-bit port number and a size of 1, 2, 4 or 8 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Port {
    pub port: u32,
    pub size: u64,
}

impl Port {
    pub fn new(port: u64, size: u64) -> Result<Port, Error> {
        if !matches!(size, 1 | 2 | 4 | 8) {
            return Err(Error::InvalidArgument);
        }
        let port = u32::try_from(port).map_err(|_| Error::InvalidArgument)?;
        Ok(Port { port, size })
    }
}

/// A page-aligned, non-empty range of user pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pages {
    pub va: u64,
    pub len: u64,
}

impl Pages {
    pub fn new(va: u64, len: u64) -> Result<Pages, Error> {
        if len == 0 || !va.is_multiple_of(4096) || !len.is_multiple_of(4096) {
            return Err(Error::InvalidArgument);
        }
        if !crate::paging::is_user_range(va, len) {
            return Err(Error::BadAddress);
        }
        Ok(Pages { va, len })
    }
}

/// Attachment rights (`abi::bus::RIGHTS_ALL` bits only).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rights(pub u32);

impl Rights {
    pub fn new(rights: u64) -> Result<Rights, Error> {
        if rights & !u64::from(RIGHTS_ALL) != 0 {
            return Err(Error::InvalidArgument);
        }
        Ok(Rights(rights as u32))
    }
}

/// A system call with checked arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    LogWrite(USlice),
    /// Read from absolute log position `pos` into `buf` (at most 4 KiB).
    LogRead {
        pos: u64,
        buf: USlice,
    },
    Exit(i64),
    GetPid,
    Yield,
    WaitChild {
        out: UserPtr<ExitStatus>,
        nohang: bool,
    },
    Fork,
    Exec {
        image: USlice,
        cmdline: USlice,
    },
    /// Pid 0 is the caller.
    SetPriority {
        pid: u64,
        priority: u8,
    },
    SysInfo(UserPtr<SysInfo>),
    VmMap {
        pages: Pages,
        prot: u64,
    },
    VmProtect {
        pages: Pages,
        prot: u64,
    },
    VmUnmap(Pages),
    VmMove {
        dst: u64,
        src: u64,
        len: u64,
    },
    /// `entry` 0 removes the handler (and `base` and `size` are 0).
    SetHandler {
        entry: u64,
        base: u64,
        size: u64,
    },
    IntReturn(UserPtr<IntFrame>),
    IntEnable(bool),
    IrqWait(VectorMask),
    IrqRaise(Vector),
    Attach {
        registry: Handle,
        name: USlice,
        rights: Rights,
        close_on_exec: bool,
    },
    Detach(Handle),
    Info {
        h: Handle,
        out: UserPtr<DeviceInfo>,
    },
    Restrict {
        h: Handle,
        rights: Rights,
    },
    PortIn {
        h: Handle,
        port: Port,
    },
    PortOut {
        h: Handle,
        port: Port,
        value: u64,
    },
    PortOutWait {
        h: Handle,
        port: Port,
        value: u64,
        mask: VectorMask,
    },
    Export {
        h: Handle,
        va: u64,
        len: u64,
        /// Whether the device may write the pages (no
        /// `EXPORT_DEVICE_READS_ONLY`).
        device_writes: bool,
        /// Where the physical page addresses go, for a device without an
        /// I/O MMU (may be empty).
        pages: USlice,
    },
    Unexport {
        h: Handle,
        iova: u64,
    },
    IrqMap {
        h: Handle,
        line: u64,
        vector: Vector,
    },
    IrqAck {
        h: Handle,
        line: u64,
    },
    DevCreate {
        registry: Handle,
        config: UserPtr<DeviceConfig>,
    },
    /// `out` None: the request comes back in registers.
    DevPoll {
        dev: Handle,
        out: Option<UserPtr<Request>>,
        nowait: bool,
    },
    DevWriteIospace {
        dev: Handle,
        client: u64,
        port: Port,
        value: u64,
    },
    DevIrq {
        dev: Handle,
        client: u64,
        line: u64,
    },
    DevDma {
        dev: Handle,
        client: u64,
        iova: u64,
        buf: USlice,
        to_client: bool,
    },
    /// `answer`: an I/O-space write first; `line`: an IRQ to raise.
    DevReplyPoll {
        dev: Handle,
        client: u64,
        answer: Option<(Port, u64)>,
        line: Option<u64>,
        out: Option<UserPtr<Request>>,
    },
    IoMap {
        h: Handle,
        va: u64,
        phys: u64,
        len: u64,
    },
    IoUnmap {
        h: Handle,
        va: u64,
        len: u64,
    },
    RestrictNames(USlice),
    /// Pid 0 is the caller.
    SetAffinity {
        pid: u64,
        mask: u64,
    },
}

/// The most bytes one `dev_dma_read`/`dev_dma_write` moves.
pub const DMA_MAX: u64 = 1 << 20;

/// An optional out-pointer: 0 means none.
fn out_ptr<T: crate::usercopy::Pod>(addr: u64) -> Result<Option<UserPtr<T>>, Error> {
    if addr == 0 {
        return Ok(None);
    }
    UserPtr::new(addr).map(Some)
}

/// A call's six argument words, read where decoding needs each one. The
/// kernel's system-call path passes its saved registers, so an arm reads
/// only the registers its call takes (a `getpid` reads none) instead of
/// all six before the dispatch; tests pass an array.
pub trait Words: Copy {
    /// Word `i` (0 to 5).
    fn word(self, i: usize) -> u64;
}

impl Words for [u64; 6] {
    #[inline(always)]
    fn word(self, i: usize) -> u64 {
        self[i]
    }
}

/// Decodes call `number` with argument words `a`, and hands the call to
/// `then` (see [`decode`]). The system-call path passes `invoke`: the
/// compiler then sees a known variant in each arm and goes straight from
/// the decoded words to the call's code, with no `Call` built in memory
/// and no second dispatch on it.
#[inline(always)]
pub fn decode_then<T: Then>(number: Sysno, a: impl Words, then: T) -> Result<T::Out, Error> {
    use Sysno::*;
    Ok(match number {
        LogWrite => then.then(Call::LogWrite(USlice::new(
            a.word(0),
            a.word(1),
            LOG_WRITE_MAX as u64,
        )?)),
        LogRead => then.then(Call::LogRead {
            pos: a.word(0),
            buf: USlice::new(
                a.word(1),
                a.word(2).min(LOG_WRITE_MAX as u64),
                LOG_WRITE_MAX as u64,
            )?,
        }),
        Exit => then.then(Call::Exit(a.word(0) as i64)),
        GetPid => then.then(Call::GetPid),
        Yield => then.then(Call::Yield),
        WaitChild => {
            if a.word(1) & !WAIT_NOHANG != 0 {
                return Err(Error::InvalidArgument);
            }
            then.then(Call::WaitChild {
                out: UserPtr::new(a.word(0))?,
                nohang: a.word(1) & WAIT_NOHANG != 0,
            })
        }
        Fork => then.then(Call::Fork),
        Exec => {
            if a.word(1) == 0 {
                return Err(Error::InvalidArgument);
            }
            then.then(Call::Exec {
                image: USlice::new(a.word(0), a.word(1), EXEC_IMAGE_MAX as u64)?,
                cmdline: USlice::new(a.word(2), a.word(3), CMDLINE_MAX as u64)?,
            })
        }
        SetPriority => {
            if a.word(1) >= crate::process::PRIORITY_LEVELS as u64 {
                return Err(Error::InvalidArgument);
            }
            then.then(Call::SetPriority {
                pid: a.word(0),
                priority: a.word(1) as u8,
            })
        }
        SysInfo => then.then(Call::SysInfo(UserPtr::new(a.word(0))?)),
        VmMap | VmProtect => {
            let pages = Pages::new(a.word(0), a.word(1))?;
            Prot::from_abi(a.word(2))?;
            if number == VmMap {
                then.then(Call::VmMap {
                    pages,
                    prot: a.word(2),
                })
            } else {
                then.then(Call::VmProtect {
                    pages,
                    prot: a.word(2),
                })
            }
        }
        VmUnmap => then.then(Call::VmUnmap(Pages::new(a.word(0), a.word(1))?)),
        VmMove => then.then(Call::VmMove {
            dst: a.word(0),
            src: a.word(1),
            len: a.word(2),
        }),
        SetHandler => then.then(Call::SetHandler {
            entry: a.word(0),
            base: a.word(1),
            size: a.word(2),
        }),
        IntReturn => then.then(Call::IntReturn(UserPtr::new(a.word(0))?)),
        IntEnable => match a.word(0) {
            0 => then.then(Call::IntEnable(false)),
            1 => then.then(Call::IntEnable(true)),
            _ => return Err(Error::InvalidArgument),
        },
        IrqWait => then.then(Call::IrqWait(VectorMask::new(a.word(0))?)),
        IrqRaise => then.then(Call::IrqRaise(Vector::new(a.word(0))?)),
        Attach => {
            if a.word(2) == 0 || a.word(2) > DEVICE_NAME_MAX as u64 {
                return Err(Error::InvalidArgument);
            }
            let close_on_exec = a.word(3) & u64::from(ATTACH_CLOSE_ON_EXEC) != 0;
            then.then(Call::Attach {
                registry: a.word(0),
                rights: Rights::new(a.word(3) & !u64::from(ATTACH_CLOSE_ON_EXEC))?,
                name: USlice::new(a.word(1), a.word(2), DEVICE_NAME_MAX as u64)?,
                close_on_exec,
            })
        }
        Detach => then.then(Call::Detach(a.word(0))),
        Info => then.then(Call::Info {
            h: a.word(0),
            out: UserPtr::new(a.word(1))?,
        }),
        Restrict => then.then(Call::Restrict {
            h: a.word(0),
            rights: Rights::new(a.word(1))?,
        }),
        PortIn => then.then(Call::PortIn {
            h: a.word(0),
            port: Port::new(a.word(1), a.word(2))?,
        }),
        PortOut => then.then(Call::PortOut {
            h: a.word(0),
            port: Port::new(a.word(1), a.word(2))?,
            value: a.word(3),
        }),
        PortOutWait => then.then(Call::PortOutWait {
            h: a.word(0),
            mask: VectorMask::new(a.word(4))?,
            port: Port::new(a.word(1), a.word(2))?,
            value: a.word(3),
        }),
        Export => {
            if a.word(2) == 0 {
                return Err(Error::InvalidArgument);
            }
            if !crate::paging::is_user_range(a.word(1), a.word(2)) {
                return Err(Error::BadAddress);
            }
            if a.word(3) & !abi::hw::EXPORT_FLAGS != 0 {
                return Err(Error::InvalidArgument);
            }
            let pages = USlice::new(a.word(4), a.word(5), abi::hw::HW_DMA_WINDOW_PAGES * 8)?;
            then.then(Call::Export {
                h: a.word(0),
                va: a.word(1),
                len: a.word(2),
                device_writes: a.word(3) & abi::hw::EXPORT_DEVICE_READS_ONLY == 0,
                pages,
            })
        }
        Unexport => then.then(Call::Unexport {
            h: a.word(0),
            iova: a.word(1),
        }),
        IrqMap => then.then(Call::IrqMap {
            h: a.word(0),
            line: a.word(1),
            vector: Vector::new(a.word(2))?,
        }),
        IrqAck => then.then(Call::IrqAck {
            h: a.word(0),
            line: a.word(1),
        }),
        DevCreate => then.then(Call::DevCreate {
            registry: a.word(0),
            config: UserPtr::new(a.word(1))?,
        }),
        DevPoll => {
            if a.word(2) & !POLL_NOWAIT != 0 {
                return Err(Error::InvalidArgument);
            }
            then.then(Call::DevPoll {
                dev: a.word(0),
                out: out_ptr(a.word(1))?,
                nowait: a.word(2) & POLL_NOWAIT != 0,
            })
        }
        DevWriteIospace => then.then(Call::DevWriteIospace {
            dev: a.word(0),
            client: a.word(1),
            port: Port::new(a.word(2), a.word(3))?,
            value: a.word(4),
        }),
        DevIrq => then.then(Call::DevIrq {
            dev: a.word(0),
            client: a.word(1),
            line: a.word(2),
        }),
        DevDmaRead | DevDmaWrite => {
            // dev_dma_read(dev, client, iova, buf, len);
            // dev_dma_write(dev, client, buf, len, iova).
            let to_client = number == DevDmaWrite;
            let (iova, buf, len) = if to_client {
                (a.word(4), a.word(2), a.word(3))
            } else {
                (a.word(2), a.word(3), a.word(4))
            };
            if buf.checked_add(len).is_none() {
                return Err(Error::InvalidArgument);
            }
            then.then(Call::DevDma {
                dev: a.word(0),
                client: a.word(1),
                iova,
                buf: USlice::new(buf, len, DMA_MAX)?,
                to_client,
            })
        }
        DevReplyPoll => then.then(Call::DevReplyPoll {
            dev: a.word(0),
            client: a.word(1),
            answer: match a.word(2) {
                0 => None,
                ps => Some((Port::new(ps >> 8, ps & 0xff)?, a.word(3))),
            },
            line: (a.word(4) != u64::MAX).then_some(a.word(4)),
            out: out_ptr(a.word(5))?,
        }),
        IoMap => then.then(Call::IoMap {
            h: a.word(0),
            va: a.word(1),
            phys: a.word(2),
            len: a.word(3),
        }),
        IoUnmap => then.then(Call::IoUnmap {
            h: a.word(0),
            va: a.word(1),
            len: a.word(2),
        }),
        RestrictNames => then.then(Call::RestrictNames(USlice::new(
            a.word(0),
            a.word(1),
            NAME_LIST_MAX as u64,
        )?)),
        SetAffinity => {
            // Bits above the most CPUs the kernel runs name no CPU.
            if a.word(1) >> crate::kernel::MAX_CPUS != 0 {
                return Err(Error::InvalidArgument);
            }
            then.then(Call::SetAffinity {
                pid: a.word(0),
                mask: a.word(1),
            })
        }
    })
}

/// What is done with a decoded call. (A trait rather than a closure, so
/// that the system-call path can ask for it to be inlined into every arm.)
pub trait Then {
    type Out;
    fn then(self, call: Call) -> Self::Out;
}

/// Keeps the call: what [`decode`] does with it.
struct Keep;

impl Then for Keep {
    type Out = Call;
    fn then(self, call: Call) -> Call {
        call
    }
}

/// Decodes call `number` with argument words `a`.
pub fn decode(number: Sysno, a: [u64; 6]) -> Result<Call, Error> {
    decode_then(number, a, Keep)
}

#[cfg(test)]
mod tests;

//! The `bootfs` kernel device: the boot modules (programs and their
//! command lines), read by DMA into memory the caller exported to its
//! bootfs handle.
//!
//! Rules: a read copies only into one export of the handle, only from the
//! selected module's own bytes (offset and length are clamped to them),
//! and reports what it copied in `BOOTFS_PORT_DONE`; the modules' frames
//! are reserved at boot and never handed out, so reading them needs no
//! lock and no check beyond the bounds.

use super::{KernelDevice, SIZE_4_8, SIZE_8, parts, require_size};
use crate::devices::calls::Out;
use crate::kernel::Kernel;
use crate::machine::Machine;
use crate::syscall::decode::Handle;
use abi::Error;
use abi::kdev::*;

/// What a bootfs handle selected and set up for its next read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cursor {
    /// The module (an index; a bad one is `NotFound` when used).
    pub module: u64,
    pub offset: u64,
    pub len: u64,
    /// Bytes the last read copied.
    pub done: u64,
}

super::attachment_state!(Cursor, Bootfs);

pub struct Bootfs;

impl KernelDevice for Bootfs {
    type State = Cursor;

    fn port_in<M: Machine>(
        _k: &mut Kernel<M>,
        cursor: Cursor,
        port: u32,
        size: u64,
    ) -> Result<u64, Error> {
        require_size(size, SIZE_4_8)?;
        if port == BOOTFS_PORT_COUNT {
            return Ok(M::modules().len() as u64);
        }
        if port == BOOTFS_PORT_DONE {
            return Ok(cursor.done);
        }
        let m = module::<M>(cursor.module)?;
        match port {
            BOOTFS_PORT_SIZE => Ok(m.len),
            BOOTFS_PORT_CMDLINE_LEN => Ok(m.cmdline.len() as u64),
            _ => Err(Error::InvalidArgument),
        }
    }

    fn port_out<M: Machine>(
        k: &mut Kernel<M>,
        h: Handle,
        port: u32,
        size: u64,
        value: u64,
    ) -> Result<Out, Error> {
        let at = parts::<Bootfs, M>(k, h)?;
        match port {
            BOOTFS_PORT_SELECT | BOOTFS_PORT_OFFSET | BOOTFS_PORT_LEN => {
                require_size(size, SIZE_4_8)?;
                let field = match port {
                    BOOTFS_PORT_SELECT => &mut at.state.module,
                    BOOTFS_PORT_OFFSET => &mut at.state.offset,
                    _ => &mut at.state.len,
                };
                *field = value;
            }
            BOOTFS_PORT_READ | BOOTFS_PORT_READ_CMDLINE => {
                require_size(size, SIZE_8)?;
                let m = module::<M>(at.state.module)?;
                let cmdline = (port == BOOTFS_PORT_READ_CMDLINE).then_some(m.cmdline.as_bytes());
                let len = cmdline.map_or(m.len as usize, <[u8]>::len);
                let start = (at.state.offset as usize).min(len);
                let n = (at.state.len as usize).min(len - start);
                crate::export::check_writable(at.exports.iter(), value, n as u64)?;
                // In pieces, so that a large read needs no large buffer.
                let mut chunk = [0u8; 1024];
                let mut done = 0;
                while done < n {
                    let piece = (n - done).min(chunk.len());
                    let from = start + done;
                    match cmdline {
                        Some(c) => chunk[..piece].copy_from_slice(&c[from..from + piece]),
                        None => M::read_phys(m.phys + from as u64, &mut chunk[..piece]),
                    }
                    crate::usercopy::copy_to_user::<M>(
                        at.space,
                        value + done as u64,
                        &chunk[..piece],
                    )?;
                    done += piece;
                }
                at.state.done = n as u64;
            }
            _ => return Err(Error::InvalidArgument),
        }
        Ok(Out::Done)
    }
}

/// Boot module `index`.
fn module<M: Machine>(index: u64) -> Result<&'static crate::machine::Module, Error> {
    let index = usize::try_from(index).map_err(|_| Error::NotFound)?;
    M::modules().get(index).ok_or(Error::NotFound)
}

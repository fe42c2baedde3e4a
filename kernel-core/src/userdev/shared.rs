//! What a client shares with its server: its I/O space (the server
//! writes, the client reads), its IRQ lines (the client maps them, the
//! server raises them) and its exports (the client offers pages, the
//! server reaches them by DMA).
//!
//! Rules: every port, size, line and range is checked against the
//! device's configuration; a client's exports never overlap and DMA must
//! lie inside one of them; exec forgets a client's exports (their
//! addresses would name the new program's pages).

use super::{ClientId, Export, UserDevice, port_range};
use crate::syscall::decode::Vector;
use abi::Error;

impl UserDevice {
    /// `port_in` from a client: reads its I/O space (little-endian).
    pub fn read_iospace(&self, id: ClientId, port: u64, size: u64) -> Result<u64, Error> {
        let (a, b) = port_range(port, size, self.iospace_size as usize)?;
        let c = self.client(id)?;
        let mut v = [0u8; 8];
        v[..b - a].copy_from_slice(&c.iospace[a..b]);
        Ok(u64::from_le_bytes(v))
    }

    /// `dev_write_iospace` from the server.
    pub fn write_iospace(
        &mut self,
        id: ClientId,
        port: u64,
        size: u64,
        value: u64,
    ) -> Result<(), Error> {
        self.client_mut(id)?.write_iospace(port, size, value)?;
        self.answered(id);
        Ok(())
    }

    /// `irq_map` from a client: deliver `line` as its `vector`.
    pub fn irq_map(&mut self, id: ClientId, line: u64, vector: Vector) -> Result<(), Error> {
        if line >= self.irq_lines as u64 {
            return Err(Error::InvalidArgument);
        }
        // A vector is below VECTOR_COUNT (64): it fits a byte.
        self.client_mut(id)?.irq_vectors[line as usize] = Some(vector.get() as u8);
        Ok(())
    }

    /// `dev_irq` from the server: where to raise `line` of client `id`
    /// (`None` if the client has not mapped it, which is not an error).
    pub fn irq_target(&self, id: ClientId, line: u64) -> Result<Option<(u32, u32)>, Error> {
        if line >= self.irq_lines as u64 {
            return Err(Error::InvalidArgument);
        }
        let c = self.client(id)?;
        Ok(c.irq_vector(line).map(|v| (c.pid, v)))
    }

    /// `export` from a client: the server may now reach `[va, va+len)`
    /// (which the caller has checked is the client's user memory). The
    /// iova is the client's address.
    pub fn export(
        &mut self,
        id: ClientId,
        va: u64,
        len: u64,
        device_writes: bool,
    ) -> Result<u64, Error> {
        let c = self.client_mut(id)?;
        let export = Export::new_in(&c.exports, va, len, device_writes)?;
        c.exports
            .try_push(export)
            .map_err(|_| Error::LimitReached)?;
        Ok(va)
    }

    /// Forgets every export of client `id` (its program was replaced by
    /// exec: the addresses mean nothing now).
    pub fn clear_exports(&mut self, id: ClientId) {
        if let Ok(c) = self.client_mut(id) {
            c.exports.clear();
        }
    }

    /// `unexport` from a client.
    pub fn unexport(&mut self, id: ClientId, iova: u64) -> Result<(), Error> {
        let c = self.client_mut(id)?;
        let i = crate::export::position(&c.exports, iova)?;
        c.exports.remove(i);
        Ok(())
    }

    /// For `dev_dma_read/write`: the client's process, if `[iova,
    /// iova+len)` lies inside one export of client `id` to this device
    /// (one the device may write, for `write`).
    pub fn dma_target(&self, id: ClientId, iova: u64, len: u64, write: bool) -> Result<u32, Error> {
        let c = self.client(id)?;
        if write {
            crate::export::check_writable(&c.exports, iova, len)?;
        } else {
            crate::export::check_covered(&c.exports, iova, len)?;
        }
        Ok(c.pid)
    }
}

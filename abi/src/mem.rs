//! The `mem` device class: the user device served by `servers/mem`
//! (docs/devices/mem.md), the memory-allocation device. It holds the
//! kernel's `mempool` device and hands out frame reserves: a process's
//! reserve **limit** (what the kernel lets it hold, see `MEMPOOL_*` in
//! `abi::kdev`) grows by grants, up to its **ceiling** (the most it may
//! ever hold, set by the supervisor from the manifest's
//! `memory_limit_kib`).
//!
//! Protocol: every `port_out` (size 8) is one request and gets exactly one
//! reply: the server writes a result word at `MEM_IO_RESULT` — a count, or
//! `MEM_RESULT_ERROR | code` with an `Error` code (bit 62: `port_in`
//! cannot return words with bit 63 set) — refreshes the usage fields, and
//! raises `MEM_IRQ_REPLY`. A client uses `port_out_wait` on the vector it
//! mapped that line to, then reads the result with one `port_in`.
//!
//! Rules: a client is always the process named by the request's pid (the
//! kernel's word, never the client's); grants never take a limit above
//! the ceiling; only the server's supervisor (its parent, init) may use
//! the `MEM_PORT_SELECT`/`MEM_PORT_CEILING`/`MEM_PORT_LIMIT` ports, so no
//! client can raise its own ceiling. All sizes and limits are in frames
//! (4 KiB pages). The numbers are stable.

/// out: raise the caller's reserve limit by `value` frames
/// (1..=`MEM_GRANT_MAX`), or by as many as its ceiling and the free
/// memory allow. Result: the new limit. `OutOfMemory` if not one frame
/// can be granted; `NotSupported` if the caller has no limit (nothing to
/// grant: the kernel refuses it nothing but what the system lacks).
pub const MEM_PORT_GRANT: u32 = 0;
/// out (value ignored): publish the caller's usage in its I/O space.
/// Result: the frames it holds.
pub const MEM_PORT_USAGE: u32 = 1;
/// out, supervisor only: select process `value` for the two ports below.
/// Result: 0.
pub const MEM_PORT_SELECT: u32 = 2;
/// out, supervisor only: set the selected process's ceiling to `value`
/// frames (below `MEMPOOL_UNLIMITED`; 0 clears it, so the process falls
/// back to its ancestors' or the default). Its limit is not changed.
/// Result: the ceiling. `LimitReached` when the server's table of
/// ceilings is full of live processes.
pub const MEM_PORT_CEILING: u32 = 3;
/// out, supervisor only: set the selected process's reserve limit to
/// `value` frames, at most its ceiling. Result: the limit.
pub const MEM_PORT_LIMIT: u32 = 4;

/// I/O space (u64): the result of the client's last request.
pub const MEM_IO_RESULT: u32 = 0;
/// I/O space (u64): frames the client held at its last request.
pub const MEM_IO_USED: u32 = 8;
/// I/O space (u64): its reserve limit then (`MEMPOOL_UNLIMITED`: none).
pub const MEM_IO_LIMIT: u32 = 16;
/// I/O space (u64): its ceiling then.
pub const MEM_IO_CEILING: u32 = 24;
/// Bytes of I/O space per client.
pub const MEM_IOSPACE_SIZE: u32 = 32;

/// IRQ line raised after each reply.
pub const MEM_IRQ_REPLY: u32 = 0;
/// IRQ lines the device has.
pub const MEM_IRQ_LINES: u32 = 1;

/// Set in a result word when it carries an `Error` code, not a count.
pub const MEM_RESULT_ERROR: u64 = 0x4000_0000_0000_0000;
/// The most frames one grant may ask for (4 GiB).
pub const MEM_GRANT_MAX: u64 = 1 << 20;
/// The ceiling of a process the supervisor gave none to, nor to any of
/// its ancestors: 16 MiB.
pub const MEM_DEFAULT_CEILING: u64 = 4096;
/// Free frames the server never grants away (1 MiB), so that processes
/// that need no grant (and the kernel's own objects) can still get
/// memory when every reserve is full.
pub const MEM_FREE_FLOOR: u64 = 256;

/// A result word of the I/O space as a result.
pub const fn mem_decode_result(word: u64) -> Result<u64, crate::Error> {
    if word & MEM_RESULT_ERROR == 0 {
        return Ok(word);
    }
    match crate::Error::from_code((word & 0xffff_ffff) as u32) {
        Some(e) => Err(e),
        None => Err(crate::Error::InvalidArgument),
    }
}

/// The result word carrying `result`.
pub const fn mem_encode_result(result: Result<u64, crate::Error>) -> u64 {
    match result {
        Ok(n) => n & !MEM_RESULT_ERROR,
        Err(e) => MEM_RESULT_ERROR | e.code() as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;

    #[test]
    fn results_round_trip() {
        for n in [0, 1, 4096, MEM_GRANT_MAX, MEM_RESULT_ERROR - 1] {
            assert_eq!(mem_decode_result(mem_encode_result(Ok(n))), Ok(n));
        }
        for e in Error::ALL {
            assert_eq!(mem_decode_result(mem_encode_result(Err(e))), Err(e));
        }
        assert_eq!(
            mem_decode_result(MEM_RESULT_ERROR | 9999),
            Err(Error::InvalidArgument)
        );
        // Every word is readable with port_in (below 2^63).
        assert!(mem_encode_result(Err(Error::NotSupported)) < 1 << 63);
    }

    #[test]
    fn the_io_space_fits_a_user_device() {
        const { assert!(MEM_IOSPACE_SIZE <= crate::userdev::IOSPACE_MAX) };
        const { assert!(MEM_IRQ_LINES <= crate::userdev::USER_IRQ_LINES_MAX) };
        const { assert!(MEM_IO_CEILING + 8 == MEM_IOSPACE_SIZE) };
    }
}

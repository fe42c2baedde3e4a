//! The client of init's `init` device (`servers/init`, abi::init,
//! docs/devices/init.md): asking init to stop a module it supervises,
//! which its restart policy then applies to.
//!
//! Rules: init answers only the programs it started itself (the shell);
//! anyone else gets `AccessDenied`, whatever it asks. A call attaches,
//! asks and detaches again, so holding the device costs nothing between
//! calls and a restarted init is found by name.

use crate::typed::{Handle, Init, ReadWriteIrq};
use abi::Error;
use abi::init::INIT_RESULT_ERROR;

/// Asks init to stop module process `pid`; the answer arrives on
/// `vector` (one the caller does not otherwise use). `NotFound` from the
/// attach means there is no init device (no supervisor to ask).
pub fn stop(pid: u32, vector: u32) -> Result<(), Error> {
    let h: Handle<Init, ReadWriteIrq> = Handle::attach()?;
    let asked = h
        .map_line(Init::DONE, vector)
        .and_then(|()| h.write_wait(Init::STOP, u64::from(pid), 1 << vector))
        .and_then(|_| h.read(Init::RESULT));
    let _ = h.detach();
    decode(asked?)
}

/// init's answer word (`INIT_IO_RESULT`) as a result.
pub fn decode(word: u64) -> Result<(), Error> {
    if word & INIT_RESULT_ERROR == 0 {
        return Ok(());
    }
    Err(Error::from_code((word & 0xffff_ffff) as u32).unwrap_or(Error::NotSupported))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_decode() {
        assert_eq!(decode(0), Ok(()));
        let denied = INIT_RESULT_ERROR | u64::from(Error::AccessDenied.code());
        assert_eq!(decode(denied), Err(Error::AccessDenied));
        assert_eq!(decode(INIT_RESULT_ERROR | 0xffff), Err(Error::NotSupported));
    }
}

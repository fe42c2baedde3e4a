//! Completion words: how the device classes served by MH's servers (disk,
//! NIC, net) report a request's end in one `u64` of the client's I/O
//! space — the status (0, or an `Error` code) in bits 0–31 and the
//! request's tag in bits 32–62 — so that a client can tell its answer
//! from an older one.
//!
//! Rules: the word stays below 2^63 (the largest `port_in` returns); a
//! client decodes an unknown status as `InvalidArgument` (a server is not
//! trusted to send only codes that exist).

use crate::Error;

/// The bits of a tag that a completion carries.
pub const TAG_MASK: u32 = 0x7fff_ffff;

/// The completion word for the request tagged `tag`.
pub const fn result_word(tag: u32, result: Result<(), Error>) -> u64 {
    let status = match result {
        Ok(()) => 0,
        Err(e) => e.code() as u64,
    };
    status | ((tag & TAG_MASK) as u64) << 32
}

/// A completion word as (tag, result).
pub const fn decode_result(word: u64) -> (u32, Result<(), Error>) {
    let tag = (word >> 32) as u32 & TAG_MASK;
    let status = word as u32;
    if status == 0 {
        return (tag, Ok(()));
    }
    match Error::from_code(status) {
        Some(e) => (tag, Err(e)),
        None => (tag, Err(Error::InvalidArgument)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip_and_stay_below_2_to_the_63() {
        for e in Error::ALL {
            let w = result_word(u32::MAX, Err(e));
            assert!(w < 1 << 63);
            assert_eq!(decode_result(w), (TAG_MASK, Err(e)));
        }
        assert_eq!(decode_result(result_word(5, Ok(()))), (5, Ok(())));
        assert_eq!(decode_result(0xffff_fff0), (0, Err(Error::InvalidArgument)));
    }
}

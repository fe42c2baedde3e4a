//! The `nic` device class: an Ethernet interface served as a user device
//! (`net0`, by `servers/virtio-net`; docs/devices/nic.md). Its one client
//! at a time — the protocol server — sends frames from memory it exports
//! to the device and receives frames into buffers it posts.
//!
//! Protocol: the first client to send a request while the interface is
//! free owns it until it detaches or exits; every request of another
//! client is answered `Busy` (a second protocol server would only take
//! frames from the first). Attaching alone owns nothing. A
//! frame or buffer is named by one word, [`nic_buffer_word`]: an iova
//! inside an export of the client's to the device in bits 0–47 and a
//! length in bits 48–63.
//!
//! - SEND copies one frame out of the client's memory at once and queues
//!   it for the wire; the completion (the result word at
//!   [`NIC_IO_SEND_RESULT`], raised on [`NIC_IRQ_SENT`]) says it was
//!   taken, and the memory is the client's again.
//! - RX_POST lends the driver one receive buffer of at least
//!   [`NIC_RX_BUFFER_MIN`] bytes. Buffers are filled in the order they
//!   were posted, one frame each: a [`NicRxHeader`] at its start, the
//!   frame after it. [`NIC_IO_RX_FILLED`] counts the buffers filled since
//!   the client attached, and [`NIC_IRQ_RX`] is raised after each batch;
//!   a frame that arrives when no buffer is posted is dropped (and
//!   counted at [`NIC_IO_RX_DROPPED`]).
//! - SYNC does nothing but complete like SEND (with its value's low 31
//!   bits as the tag); a client's first SYNC makes it the owner, and after
//!   it the interface's address is in the I/O space.
//!
//! Rules: the numbers are stable; every word of the I/O space stays below
//! 2^63; a frame is [`NIC_FRAME_MIN`] ..= [`NIC_FRAME_MAX`] bytes (the
//! Ethernet header and payload, no checksum); every refusal is an `Error`
//! code in the result word, never a silent drop of a client's request.

use crate::Error;
use crate::completion::TAG_MASK;

/// out (size 8): send the frame [`nic_buffer_word`] `value` names.
pub const NIC_PORT_SEND: u32 = 0;
/// out (size 8): post the receive buffer `value` names.
pub const NIC_PORT_RX_POST: u32 = 1;
/// out (size 8): complete at once with tag `value & NIC_TAG_MASK`.
pub const NIC_PORT_SYNC: u32 = 2;

/// I/O space (u64): the last SEND's or SYNC's completion,
/// [`nic_result_word`].
pub const NIC_IO_SEND_RESULT: u32 = 0;
/// I/O space (u64): the interface's MAC address in bits 0–47 (the first
/// byte on the wire in bits 0–7).
pub const NIC_IO_MAC: u32 = 8;
/// I/O space (u64): receive buffers filled since the client attached.
pub const NIC_IO_RX_FILLED: u32 = 16;
/// I/O space (u64): frames dropped because no buffer was posted.
pub const NIC_IO_RX_DROPPED: u32 = 24;
/// I/O space (u64): frames sent since the client attached.
pub const NIC_IO_TX_SENT: u32 = 32;
/// I/O space (u64): the result of the last RX_POST that failed
/// ([`nic_result_word`], tag 0), or 0. A post that succeeds raises
/// nothing and writes nothing; one that fails raises
/// [`NIC_IRQ_POST_FAILED`].
pub const NIC_IO_POST_RESULT: u32 = 40;
/// Bytes of I/O space per client.
pub const NIC_IOSPACE_SIZE: u32 = 48;

/// IRQ line raised after a SEND or SYNC completes.
pub const NIC_IRQ_SENT: u32 = 0;
/// IRQ line raised when receive buffers were filled.
pub const NIC_IRQ_RX: u32 = 1;
/// IRQ line raised when an RX_POST was refused ([`NIC_IO_POST_RESULT`]
/// says why).
pub const NIC_IRQ_POST_FAILED: u32 = 2;
/// IRQ lines the device has.
pub const NIC_IRQ_LINES: u32 = 3;

/// The shortest frame: an Ethernet header.
pub const NIC_FRAME_MIN: u32 = 14;
/// The longest frame: a 1500-byte payload and its header.
pub const NIC_FRAME_MAX: u32 = 1514;
/// A receive buffer holds a header and the longest frame.
pub const NIC_RX_BUFFER_MIN: u32 = NIC_RX_HEADER_SIZE + NIC_FRAME_MAX;
/// Bytes of [`NicRxHeader`].
pub const NIC_RX_HEADER_SIZE: u32 = 8;
/// Receive buffers one client may have posted at once.
pub const NIC_RX_POSTED_MAX: u32 = 64;
/// The most requests a client may have waiting for the server (its
/// `port_out` says `Busy` beyond): every buffer it may post, and a few
/// more for SEND and SYNC.
pub const NIC_QUEUE_PER_CLIENT: u32 = NIC_RX_POSTED_MAX + 8;
/// The bits of a tag that a completion carries.
pub const NIC_TAG_MASK: u32 = TAG_MASK;

/// What the driver writes at the start of a receive buffer it fills.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NicRxHeader {
    /// The frame's length (it follows this header).
    pub len: u32,
    /// The buffer's number among those filled for the client, from 1
    /// (the value [`NIC_IO_RX_FILLED`] had once it was filled): a buffer
    /// whose header still says 0, or an older number, was not filled.
    pub seq: u32,
}

/// The word naming `len` bytes at iova `iova`; `None` if the iova does
/// not fit in 48 bits or the length in 16.
pub const fn nic_buffer_word(iova: u64, len: u32) -> Option<u64> {
    if iova >> 48 != 0 || len > 0xffff {
        return None;
    }
    Some(iova | (len as u64) << 48)
}

/// A buffer word as (iova, length).
pub const fn nic_buffer_of(word: u64) -> (u64, u32) {
    (word & ((1 << 48) - 1), (word >> 48) as u32)
}

/// The result word for the completion tagged `tag`.
pub const fn nic_result_word(tag: u32, result: Result<(), Error>) -> u64 {
    crate::completion::result_word(tag, result)
}

/// A result word as (tag, result); an unknown status is `InvalidArgument`
/// (a server is not trusted to send only codes that exist).
pub const fn nic_decode_result(word: u64) -> (u32, Result<(), Error>) {
    crate::completion::decode_result(word)
}

/// Whether a SEND of `len` bytes may go out: `InvalidArgument` otherwise.
pub const fn nic_check_frame(len: u32) -> Result<(), Error> {
    if len < NIC_FRAME_MIN || len > NIC_FRAME_MAX {
        return Err(Error::InvalidArgument);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffer_words_round_trip_and_refuse_what_does_not_fit() {
        let w = nic_buffer_word(0x1234_5678_9000, 1522).unwrap();
        assert_eq!(nic_buffer_of(w), (0x1234_5678_9000, 1522));
        assert_eq!(nic_buffer_word(1 << 48, 64), None);
        assert_eq!(nic_buffer_word(0, 0x1_0000), None);
        assert_eq!(
            nic_buffer_of(nic_buffer_word(0, 0xffff).unwrap()),
            (0, 0xffff)
        );
    }

    #[test]
    fn result_words_round_trip() {
        let w = nic_result_word(7, Err(Error::Busy));
        assert_eq!(nic_decode_result(w), (7, Err(Error::Busy)));
        assert_eq!(
            nic_decode_result(nic_result_word(u32::MAX, Ok(()))),
            (NIC_TAG_MASK, Ok(()))
        );
        assert_eq!(
            nic_decode_result(0xffff_fff0),
            (0, Err(Error::InvalidArgument))
        );
    }

    #[test]
    fn frames_between_a_header_and_1514_bytes() {
        assert_eq!(nic_check_frame(13), Err(Error::InvalidArgument));
        assert_eq!(nic_check_frame(14), Ok(()));
        assert_eq!(nic_check_frame(1514), Ok(()));
        assert_eq!(nic_check_frame(1515), Err(Error::InvalidArgument));
        assert_eq!(size_of::<NicRxHeader>() as u32, NIC_RX_HEADER_SIZE);
    }
}

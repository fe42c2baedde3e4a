//! Primary fault logging (VT-d sections 7.2 and 11.4.14): what a
//! remapping unit records when it blocks a request, where it keeps the
//! records, how they are read and cleared, and what the kernel keeps of a
//! device's faults to decide when to cut the device off.
//!
//! The unit has CAP.NFR plus one fault recording registers of 128 bits
//! each, the first at CAP.FRO × 16 from the register base, each read as
//! two 64-bit words, low then high:
//! - low word: bits 63:12 the page address of the faulted request (for an
//!   interrupt-remapping fault, bits 63:48 the interrupt index and 47:12
//!   zero); bits 11:0 reserved;
//! - high word (bits 127:64 of the record): 15:0 the source id (bus << 8
//!   | devfn), 31 PASID present, 59:40 the PASID, 39:32 the fault reason,
//!   61:60 the address type, 62 the type (0: write, 1: read), 63 F, set
//!   once the rest is valid and cleared by writing 1 to it.
//!
//! The fault status register (FSTS) says whether records are pending
//! (PPF), whether one was lost because the next register was still full
//! (PFO), and which record is the first pending one (FRI, bits 15:8).
//!
//! Rules: decoding is total (every pair of words decodes; a record whose
//! F bit is clear is no record); a register index is checked against the
//! unit's count before an offset is made from it, and a bogus FRI from
//! the hardware is taken modulo the count; a device's log is fixed-size
//! (no allocation) and its storm policy depends only on the times it is
//! given, so a clock that jumps backwards cannot make it panic.

use super::caps::Cap;
use abi::Error;
use arrayvec::ArrayVec;

/// Bytes one fault recording register takes.
pub const RECORD_BYTES: u64 = 16;

/// The value that clears a record's F bit when written (as one 64-bit
/// write) to the record's high word, at its offset + 8. Every other bit
/// of that word is read-only, so nothing else is disturbed.
pub const CLEAR_FAULT: u64 = 1 << 63;

const F: u64 = 1 << 63;
const TYPE_READ: u64 = 1 << 62;
const AT_SHIFT: u32 = 60;
const PASID_SHIFT: u32 = 40;
const PASID_MASK: u64 = 0xf_ffff;
const REASON_SHIFT: u32 = 32;
const PASID_PRESENT: u64 = 1 << 31;
const PAGE_ADDR: u64 = !0xfff;
const INTERRUPT_INDEX_SHIFT: u32 = 48;

/// The fault reasons a legacy-mode unit reports (VT-d appendix A): DMA
/// remapping faults below 0x20, interrupt remapping faults from 0x20.
pub mod reason {
    pub const ROOT_NOT_PRESENT: u8 = 0x01;
    pub const CONTEXT_NOT_PRESENT: u8 = 0x02;
    pub const CONTEXT_INVALID: u8 = 0x03;
    pub const BEYOND_ADDRESS_WIDTH: u8 = 0x04;
    pub const WRITE_DENIED: u8 = 0x05;
    pub const READ_DENIED: u8 = 0x06;
    pub const PAGE_TABLE_UNREADABLE: u8 = 0x07;
    pub const ROOT_TABLE_UNREADABLE: u8 = 0x08;
    pub const CONTEXT_TABLE_UNREADABLE: u8 = 0x09;
    pub const ROOT_RESERVED_BIT: u8 = 0x0a;
    pub const CONTEXT_RESERVED_BIT: u8 = 0x0b;
    pub const PAGE_ENTRY_RESERVED_BIT: u8 = 0x0c;
    pub const TRANSLATION_TYPE_BLOCKED: u8 = 0x0d;
    pub const INTERRUPT_REQUEST_RESERVED_BIT: u8 = 0x20;
    pub const INTERRUPT_INDEX_BEYOND_TABLE: u8 = 0x21;
    pub const INTERRUPT_ENTRY_NOT_PRESENT: u8 = 0x22;
    pub const INTERRUPT_TABLE_UNREADABLE: u8 = 0x23;
    pub const INTERRUPT_ENTRY_RESERVED_BIT: u8 = 0x24;
    pub const COMPATIBILITY_INTERRUPT_BLOCKED: u8 = 0x25;
    pub const INTERRUPT_SOURCE_MISMATCH: u8 = 0x26;
}

/// Whether `reason` is an interrupt-remapping fault (0x20..=0x2f): the
/// record then holds an interrupt index, not an address, and its type bit
/// means nothing.
pub const fn is_interrupt_reason(reason: u8) -> bool {
    reason & 0xf0 == 0x20
}

/// What a fault reason means, for the kernel log.
pub const fn reason_text(reason: u8) -> &'static str {
    use reason::*;
    match reason {
        ROOT_NOT_PRESENT => "root entry not present (no context table for the bus)",
        CONTEXT_NOT_PRESENT => "context entry not present (the function is not attached)",
        CONTEXT_INVALID => "context entry programmed with a width or type the unit lacks",
        BEYOND_ADDRESS_WIDTH => "address beyond the domain's address width",
        WRITE_DENIED => "write to a page the device may not write",
        READ_DENIED => "read of a page the device may not read",
        PAGE_TABLE_UNREADABLE => "a second-level page table could not be read",
        ROOT_TABLE_UNREADABLE => "the root table could not be read",
        CONTEXT_TABLE_UNREADABLE => "a context table could not be read",
        ROOT_RESERVED_BIT => "reserved bit set in a present root entry",
        CONTEXT_RESERVED_BIT => "reserved bit set in a present context entry",
        PAGE_ENTRY_RESERVED_BIT => "reserved bit set in a present second-level entry",
        TRANSLATION_TYPE_BLOCKED => "translation request blocked by the context entry's type",
        INTERRUPT_REQUEST_RESERVED_BIT => "interrupt request with a reserved field set",
        INTERRUPT_INDEX_BEYOND_TABLE => "interrupt index beyond the remapping table",
        INTERRUPT_ENTRY_NOT_PRESENT => "interrupt remapping entry not present",
        INTERRUPT_TABLE_UNREADABLE => "the interrupt remapping table could not be read",
        INTERRUPT_ENTRY_RESERVED_BIT => "reserved bit set in a present interrupt remapping entry",
        COMPATIBILITY_INTERRUPT_BLOCKED => "compatibility-format interrupt blocked",
        INTERRUPT_SOURCE_MISMATCH => "interrupt from a source its entry does not name",
        0x30..=0x9f => "scalable-mode fault (the kernel runs the unit in legacy mode)",
        _ => "reserved fault reason",
    }
}

/// One decoded fault record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FaultRecord {
    /// The requester: (bus, devfn).
    pub source: (u8, u8),
    /// The page address of the faulted request (0 for an interrupt fault).
    pub iova: u64,
    /// The request was a write (false for a read, and for an interrupt
    /// fault, where the type is not recorded).
    pub write: bool,
    /// See [`reason`] and [`reason_text`].
    pub reason: u8,
    /// For an interrupt-remapping fault, the index of the entry used.
    pub interrupt_index: Option<u16>,
    /// The PASID the request carried, if any (never, in legacy mode).
    pub pasid: Option<u32>,
    /// The request's PCIe address type (0: untranslated).
    pub address_type: u8,
}

impl FaultRecord {
    /// The record a register's two words (low, high) hold; `None` if its
    /// F bit is clear (nothing recorded there).
    pub const fn decode(words: [u64; 2]) -> Option<FaultRecord> {
        let [lo, hi] = words;
        if hi & F == 0 {
            return None;
        }
        let reason = (hi >> REASON_SHIFT) as u8;
        let interrupt = is_interrupt_reason(reason);
        let pasid = if hi & PASID_PRESENT != 0 {
            Some(((hi >> PASID_SHIFT) & PASID_MASK) as u32)
        } else {
            None
        };
        Some(FaultRecord {
            source: ((hi >> 8) as u8, hi as u8),
            iova: if interrupt { 0 } else { lo & PAGE_ADDR },
            write: !interrupt && hi & TYPE_READ == 0,
            reason,
            interrupt_index: if interrupt {
                Some((lo >> INTERRUPT_INDEX_SHIFT) as u16)
            } else {
                None
            },
            pasid,
            address_type: ((hi >> AT_SHIFT) & 0b11) as u8,
        })
    }

    /// Bus << 8 | devfn.
    pub const fn source_id(&self) -> u16 {
        (self.source.0 as u16) << 8 | self.source.1 as u16
    }

    /// Whether this is an interrupt-remapping fault.
    pub const fn is_interrupt(&self) -> bool {
        is_interrupt_reason(self.reason)
    }
}

/// The fault status register (FSTS).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FaultStatus(pub u32);

impl FaultStatus {
    /// PFO (bit 0, write 1 to clear): a fault was dropped because the
    /// next recording register was still full.
    pub const OVERFLOW: u32 = 1 << 0;
    /// PPF (bit 1, read-only): some record has its F bit set; it clears
    /// itself when the last F bit is cleared.
    pub const PENDING: u32 = 1 << 1;
    /// IQE (bit 4, write 1 to clear): the invalidation queue stopped at a
    /// descriptor it could not process.
    pub const QUEUE_ERROR: u32 = 1 << 4;
    /// ICE (bit 5, write 1 to clear): a device-TLB invalidation completion
    /// was unexpected.
    pub const COMPLETION_ERROR: u32 = 1 << 5;
    /// ITE (bit 6, write 1 to clear): a device-TLB invalidation timed out.
    pub const TIMEOUT_ERROR: u32 = 1 << 6;
    const WRITE_ONE_TO_CLEAR: u32 =
        Self::OVERFLOW | Self::QUEUE_ERROR | Self::COMPLETION_ERROR | Self::TIMEOUT_ERROR;

    pub const fn overflow(self) -> bool {
        self.0 & Self::OVERFLOW != 0
    }

    pub const fn pending(self) -> bool {
        self.0 & Self::PENDING != 0
    }

    pub const fn queue_error(self) -> bool {
        self.0 & Self::QUEUE_ERROR != 0
    }

    /// FRI (bits 15:8): the first pending record, when `pending`.
    pub const fn first_record(self) -> u32 {
        (self.0 >> 8) & 0xff
    }

    /// The value to write back to FSTS to acknowledge exactly the
    /// write-1-to-clear conditions this reading shows (and no condition
    /// that arose since).
    pub const fn acknowledgement(self) -> u32 {
        self.0 & Self::WRITE_ONE_TO_CLEAR
    }
}

/// The offset from the register base of fault recording register `index`
/// (CAP.FRO × 16 + index × 16): `InvalidArgument` unless `index` is below
/// the unit's count (CAP.NFR + 1).
pub const fn record_offset(cap: Cap, index: u32) -> Result<u64, Error> {
    let (first, count) = cap.fault_records();
    if index >= count {
        return Err(Error::InvalidArgument);
    }
    Ok(first + index as u64 * RECORD_BYTES)
}

/// Where the fault recording registers lie: `[first byte, one past the
/// last)` from the register base, for the arch side to check against the
/// register space it mapped. At most 0x3ff0 + 256 × 16 = 0x4ff0.
pub const fn records_span(cap: Cap) -> (u64, u64) {
    let (first, count) = cap.fault_records();
    (first, first + count as u64 * RECORD_BYTES)
}

/// The write that clears record `index`: `(offset of its high word,
/// value)`, a 64-bit write. `InvalidArgument` for an index beyond the
/// unit's count.
pub const fn clear_write(cap: Cap, index: u32) -> Result<(u64, u64), Error> {
    match record_offset(cap, index) {
        Ok(offset) => Ok((offset + 8, CLEAR_FAULT)),
        Err(e) => Err(e),
    }
}

/// The record indices to read, in the order the unit filled them: from
/// FRI round the ring, each once. The reader stops at the first record
/// whose F bit is clear (the unit fills them in order).
pub fn scan_order(status: FaultStatus, cap: Cap) -> impl Iterator<Item = u32> {
    let (_, count) = cap.fault_records();
    let start = status.first_record() % count;
    (0..count).map(move |k| (start + k) % count)
}

/// Records a device's log keeps.
pub const RECENT: usize = 8;

/// A device faulting more than this many times within [`STORM_TICKS`] is
/// storming. A correct driver never faults; one with a bug hits a few
/// pages a few times. 64 in a second (at 100 ticks a second) is far past
/// that, yet each fault costs an interrupt and a few register accesses,
/// so a storm is stopped before it costs more than a sliver of a CPU.
pub const STORM_FAULTS: usize = 64;

/// The storm window: one second at the kernel's 100 Hz tick.
pub const STORM_TICKS: u64 = 100;

/// What to do with a device after one more fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Let it carry on.
    Keep,
    /// It is storming: cut its DMA off.
    Stop,
}

/// A fault and when it was logged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Logged {
    pub at: u64,
    pub record: FaultRecord,
}

/// One device's faults: the last [`RECENT`] records, how many there have
/// been, and the times of the last [`STORM_FAULTS`], for the storm
/// policy (under 1 KiB in all, fixed).
#[derive(Clone, Debug)]
pub struct FaultLog {
    recent: ArrayVec<Logged, RECENT>,
    /// Where the next record goes once `recent` is full (its oldest).
    next: usize,
    total: u64,
    /// `times[n % STORM_FAULTS]` is the time of fault `n`, for the last
    /// `STORM_FAULTS` faults.
    times: [u64; STORM_FAULTS],
}

impl Default for FaultLog {
    fn default() -> Self {
        Self::new()
    }
}

impl FaultLog {
    pub const fn new() -> FaultLog {
        FaultLog {
            recent: ArrayVec::new_const(),
            next: 0,
            total: 0,
            times: [0; STORM_FAULTS],
        }
    }

    /// Logs `record`, seen at tick `now_ticks`, and says whether the
    /// device is storming: `Stop` if this fault and the `STORM_FAULTS`
    /// before it all fell within `STORM_TICKS` ticks (the span from the
    /// first of them to this one is less than `STORM_TICKS`), else
    /// `Keep`. A time earlier than the last one counts as no time at all.
    pub fn record(&mut self, now_ticks: u64, record: FaultRecord) -> Verdict {
        let logged = Logged {
            at: now_ticks,
            record,
        };
        if self.recent.is_full() {
            self.recent[self.next] = logged;
            self.next = (self.next + 1) % RECENT;
        } else {
            self.recent.push(logged);
        }
        let slot = (self.total % STORM_FAULTS as u64) as usize;
        let storming = self.total >= STORM_FAULTS as u64
            && now_ticks.saturating_sub(self.times[slot]) < STORM_TICKS;
        self.times[slot] = now_ticks;
        self.total = self.total.saturating_add(1);
        if storming {
            Verdict::Stop
        } else {
            Verdict::Keep
        }
    }

    /// Faults logged in all.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The last [`RECENT`] faults, oldest first.
    pub fn recent(&self) -> impl Iterator<Item = &Logged> {
        let (newer, older) = self.recent.split_at(self.next);
        older.iter().chain(newer)
    }

    /// The latest fault.
    pub fn last(&self) -> Option<&Logged> {
        self.recent().last()
    }

    /// Forgets everything (the device was given a fresh start).
    pub fn clear(&mut self) {
        *self = FaultLog::new();
    }
}

#[cfg(test)]
mod tests;

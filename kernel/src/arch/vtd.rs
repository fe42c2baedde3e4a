//! An Intel VT-d remapping unit's registers: reading its capabilities,
//! installing a root table, global invalidation and turning DMA
//! translation on (register-based invalidation; the tables themselves are
//! built by `kernel_core::iommu`).
//!
//! Rules: every wait for the hardware is bounded (a unit that does not
//! answer is an error for the caller, never a hang); GCMD is written
//! whole from the persistent bits of GSTS plus the one command being
//! given, as the specification requires (QEMU turns off whatever a write
//! leaves out); register accesses are volatile, aligned and of each
//! register's own width (QEMU aborts on a 64-bit access to a 32-bit one);
//! invalidation is register-based, which works only while queued
//! invalidation is off.

use kernel_core::iommu::caps::{Cap, Ecap};
use kernel_core::iommu::fault::{self, FaultStatus};

const CAP: usize = 0x08;
const ECAP: usize = 0x10;
const GCMD: usize = 0x18;
const GSTS: usize = 0x1c;
const RTADDR: usize = 0x20;
const CCMD: usize = 0x28;
const FSTS: usize = 0x34;
const IQH: usize = 0x80;
const IQT: usize = 0x88;
const IQA: usize = 0x90;
const IRTA: usize = 0xb8;
const FECTL: usize = 0x38;
const FEDATA: usize = 0x3c;
const FEADDR: usize = 0x40;
const FEUADDR: usize = 0x44;

/// The vector the units' fault events arrive on (an interrupt the units
/// send themselves, in compatibility format: interrupt remapping does not
/// apply to it).
pub const FAULT_VECTOR: u8 = 0xf0;

/// GCMD/GSTS bits.
const TE: u32 = 1 << 31;
const SRTP: u32 = 1 << 30;
const SFL: u32 = 1 << 29;
const WBF: u32 = 1 << 27;
const SIRTP: u32 = 1 << 24;
const QIE: u32 = 1 << 26;
const IRE: u32 = 1 << 25;
/// FSTS: invalidation queue error (the unit stopped at a bad descriptor).
const IQE: u32 = 1 << 4;
/// The GSTS bits that are carried into GCMD when another command is
/// given: everything but the one-shot commands (a GCMD write sets every
/// persistent feature to what it says: TE, EAFL, QIE, IRE, CFI).
const PERSISTENT: u32 = !(SRTP | SFL | WBF | SIRTP);

/// CCMD: invalidate, global or domain granularity (DID in bits 15:0).
const CCMD_ICC: u64 = 1 << 63;
const CCMD_GLOBAL: u64 = 1 << 61;
const CCMD_DOMAIN: u64 = 2 << 61;
/// The IOTLB invalidate register (at ECAP.IRO + 8): invalidate, global
/// granularity, drain reads and writes.
const IOTLB_IVT: u64 = 1 << 63;
const IOTLB_GLOBAL: u64 = 1 << 60;
/// Domain-selective (DID in bits 47:32) and page-selective (DID, and the
/// address register at ECAP.IRO) granularity.
const IOTLB_DOMAIN: u64 = 2 << 60;
const IOTLB_PAGE: u64 = 3 << 60;
const IOTLB_DID_SHIFT: u32 = 32;
/// IAIG (bits 58:57): the granularity the unit actually used; 0 means it
/// did not invalidate.
const IOTLB_AIG_SHIFT: u32 = 57;
const IOTLB_DRAIN: u64 = (1 << 49) | (1 << 48);
/// IVA_REG: the invalidation hint (bit 6: leaf entries only changed).
const IVA_HINT_LEAF: u64 = 1 << 6;

/// The most register space mapped for one unit: every register the
/// kernel uses lies in the first pages (a DMAR may claim up to 128 MiB).
const MAX_MAPPED: u64 = 0x1_0000;

/// How many times a status register is read before the unit is given up.
const SPINS: u32 = 1_000_000;

/// Why a unit could not be brought up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VtdError {
    /// Its registers could not be mapped.
    Unmapped,
    /// It says a register lies beyond the register range the firmware
    /// gave it.
    RegistersOutOfRange,
    /// It did not finish a command: which one.
    Timeout(&'static str),
}

/// One remapping unit, its registers mapped.
pub struct Unit {
    regs: *mut u8,
    /// The IOTLB invalidate register's offset (checked inside the range).
    iotlb: usize,
    /// Whether the fault-recording registers lie inside the range.
    records_mapped: bool,
    pub cap: Cap,
    pub ecap: Ecap,
}

// SAFETY: the registers are device memory reached only with the kernel's
// locks held; the pointer is not tied to a CPU.
unsafe impl Send for Unit {}

impl Unit {
    /// Maps the unit whose `size` bytes of registers are at `base` (as
    /// the DMAR says) and reads what it can do. Translation stays as the
    /// firmware left it (off).
    pub fn open(base: u64, size: u64) -> Result<Unit, VtdError> {
        if size < 0x1000 {
            return Err(VtdError::RegistersOutOfRange);
        }
        let size = size.min(MAX_MAPPED);
        let regs = super::paging::map_mmio(base, size).map_err(|_| VtdError::Unmapped)?;
        let mut unit = Unit {
            regs,
            iotlb: 0,
            records_mapped: false,
            cap: Cap(0),
            ecap: Ecap(0),
        };
        unit.cap = Cap(unit.read64(CAP));
        unit.ecap = Ecap(unit.read64(ECAP));
        // A unit's word is not trusted to reach outside its registers.
        let iotlb = unit.ecap.iotlb_offset() + 8;
        if iotlb + 8 > size {
            return Err(VtdError::RegistersOutOfRange);
        }
        unit.iotlb = iotlb as usize;
        unit.records_mapped = fault::records_span(unit.cap).1 <= size;
        Ok(unit)
    }

    fn read32(&self, offset: usize) -> u32 {
        // SAFETY: `offset` is one of the register offsets above or the
        // IOTLB register checked in `open`, inside the mapped registers,
        // aligned.
        unsafe { core::ptr::read_volatile(self.regs.add(offset).cast::<u32>()) }
    }

    fn write32(&self, offset: usize, value: u32) {
        // SAFETY: as in `read32`.
        unsafe { core::ptr::write_volatile(self.regs.add(offset).cast::<u32>(), value) }
    }

    fn read64(&self, offset: usize) -> u64 {
        // SAFETY: as in `read32`, 8-byte aligned.
        unsafe { core::ptr::read_volatile(self.regs.add(offset).cast::<u64>()) }
    }

    fn write64(&self, offset: usize, value: u64) {
        // SAFETY: as in `read64`.
        unsafe { core::ptr::write_volatile(self.regs.add(offset).cast::<u64>(), value) }
    }

    /// Waits until `done` says the unit finished command `what`.
    fn wait(&self, what: &'static str, done: impl Fn(&Unit) -> bool) -> Result<(), VtdError> {
        for _ in 0..SPINS {
            if done(self) {
                return Ok(());
            }
            core::hint::spin_loop();
        }
        Err(VtdError::Timeout(what))
    }

    /// Gives the one-shot or persistent command `bit`, keeping the
    /// persistent state, and waits for its status bit.
    fn command(&self, what: &'static str, bit: u32) -> Result<(), VtdError> {
        let keep = self.read32(GSTS) & PERSISTENT;
        self.write32(GCMD, keep | bit);
        self.wait(what, |u| u.read32(GSTS) & bit != 0)
    }

    /// Installs the root table at physical address `root` (legacy mode),
    /// invalidates every cached context and translation, and turns DMA
    /// translation on: from then on a device reaches only what the
    /// tables map.
    pub fn enable_translation(&self, root: u64) -> Result<(), VtdError> {
        self.write64(RTADDR, root & !0xfff);
        self.command("set root table pointer", SRTP)?;
        self.invalidate_all()?;
        self.command("enable translation", TE)
    }

    /// Global context-cache and IOTLB invalidation, waited for.
    pub fn invalidate_all(&self) -> Result<(), VtdError> {
        self.write64(CCMD, CCMD_ICC | CCMD_GLOBAL);
        self.wait("context-cache invalidation", |u| {
            u.read64(CCMD) & CCMD_ICC == 0
        })?;
        self.write64(self.iotlb, IOTLB_IVT | IOTLB_GLOBAL | IOTLB_DRAIN);
        self.wait("IOTLB invalidation", |u| u.read64(u.iotlb) & IOTLB_IVT == 0)
    }

    /// Invalidates every cached context of domain `did` (after its
    /// functions' context entries changed), waited for.
    pub fn invalidate_context_domain(&self, did: u16) -> Result<(), VtdError> {
        self.write64(CCMD, CCMD_ICC | CCMD_DOMAIN | u64::from(did));
        self.wait("context-cache invalidation", |u| {
            u.read64(CCMD) & CCMD_ICC == 0
        })
    }

    /// Invalidates domain `did`'s IOTLB entries: the naturally aligned
    /// block of `2^am` pages at `addr` if `page` says so and the unit can,
    /// else the whole domain (and, should the unit refuse that too,
    /// everything). `leaf_only`: only leaf entries changed. Reads and
    /// writes in flight are drained before it completes. Waited for.
    pub fn invalidate_iotlb(
        &self,
        did: u16,
        page: Option<(u64, u8)>,
        leaf_only: bool,
    ) -> Result<(), VtdError> {
        let did_bits = u64::from(did) << IOTLB_DID_SHIFT;
        let psi =
            page.filter(|&(_, am)| self.cap.page_selective() && am <= self.cap.max_address_mask());
        let command = match psi {
            Some((addr, am)) => {
                let hint = if leaf_only { IVA_HINT_LEAF } else { 0 };
                self.write64(self.iotlb - 8, (addr & !0xfff) | hint | u64::from(am));
                IOTLB_PAGE | did_bits
            }
            None => IOTLB_DOMAIN | did_bits,
        };
        self.write64(self.iotlb, IOTLB_IVT | IOTLB_DRAIN | command);
        self.wait("IOTLB invalidation", |u| u.read64(u.iotlb) & IOTLB_IVT == 0)?;
        if (self.read64(self.iotlb) >> IOTLB_AIG_SHIFT) & 3 == 0 {
            self.write64(self.iotlb, IOTLB_IVT | IOTLB_GLOBAL | IOTLB_DRAIN);
            self.wait("IOTLB invalidation", |u| u.read64(u.iotlb) & IOTLB_IVT == 0)?;
        }
        Ok(())
    }

    /// Sends fault events to `vector` on the CPU whose local APIC id is
    /// `apic_id` (xAPIC, physical destination) and unmasks them. `false`
    /// if the unit's fault records cannot be read (they lie outside its
    /// registers), so the events stay masked.
    pub fn enable_fault_events(&self, vector: u8, apic_id: u32) -> bool {
        if !self.records_mapped {
            return false;
        }
        self.write32(FEDATA, u32::from(vector));
        self.write32(FEADDR, 0xfee0_0000 | (apic_id & 0xff) << 12);
        self.write32(FEUADDR, 0);
        // IM (bit 31) clear: events are sent.
        self.write32(FECTL, 0);
        true
    }

    /// Reads and clears every pending primary fault record, handing each
    /// to `each` as its two words; then clears the overflow status. At
    /// most one pass over the records (a device that keeps faulting
    /// cannot keep the kernel here).
    pub fn take_faults(&self, each: &mut dyn FnMut([u64; 2])) {
        if !self.records_mapped {
            return;
        }
        let status = FaultStatus(self.read32(FSTS));
        if status.pending() {
            for i in fault::scan_order(status, self.cap) {
                let Ok(at) = fault::record_offset(self.cap, i) else {
                    break;
                };
                let at = at as usize;
                let hi = self.read64(at + 8);
                if hi & fault::CLEAR_FAULT == 0 {
                    continue;
                }
                let lo = self.read64(at);
                self.write64(at + 8, fault::CLEAR_FAULT);
                each([lo, hi]);
            }
        }
        let ack = FaultStatus(self.read32(FSTS)).acknowledgement();
        if ack != 0 {
            self.write32(FSTS, ack);
        }
    }

    /// Turns queued invalidation on with the queue IQA describes. From
    /// then on the register-based invalidations must not be used.
    pub fn enable_queue(&self, iqa: u64) -> Result<(), VtdError> {
        self.write64(IQT, 0);
        self.write64(IQA, iqa);
        self.command("enable queued invalidation", QIE)
    }

    /// The queue's head register (IQH): how far the unit has fetched.
    pub fn queue_head(&self) -> u64 {
        self.read64(IQH)
    }

    /// Hands the descriptors up to `tail` (an IQT value) to the unit.
    pub fn queue_tail(&self, tail: u64) {
        self.write64(IQT, tail);
    }

    /// Whether the unit stopped at a descriptor it refused; clears the
    /// report.
    pub fn take_queue_error(&self) -> bool {
        let failed = self.read32(FSTS) & IQE != 0;
        if failed {
            self.write32(FSTS, IQE);
        }
        failed
    }

    /// Waits (bounded) until `done` is true, for the queue's `what`.
    pub fn wait_queue(&self, what: &'static str, done: impl Fn() -> bool) -> Result<(), VtdError> {
        self.wait(what, |_| done())
    }

    /// Installs the interrupt remapping table IRTA describes.
    pub fn set_interrupt_table(&self, irta: u64) -> Result<(), VtdError> {
        self.write64(IRTA, irta);
        self.command("set interrupt remapping table pointer", SIRTP)
    }

    /// Turns interrupt remapping on (compatibility-format interrupts stay
    /// blocked: CFI is never set).
    pub fn enable_interrupt_remapping(&self) -> Result<(), VtdError> {
        self.command("enable interrupt remapping", IRE)
    }

    /// Whether DMA translation is on.
    pub fn translating(&self) -> bool {
        self.read32(GSTS) & TE != 0
    }
}

const _: () = assert!(
    super::lapic::MSI_VECTOR_BASE as usize + kernel_core::devices::msi::MSI_VECTORS
        <= FAULT_VECTOR as usize
);

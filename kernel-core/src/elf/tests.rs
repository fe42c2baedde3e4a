//! Host tests for ELF validation: one valid image built here, then crafted
//! malformed variants, each expecting its specific error.

use super::*;

#[derive(Clone, Copy)]
struct Ph {
    p_type: u32,
    flags: u32,
    offset: u64,
    vaddr: u64,
    filesz: u64,
    memsz: u64,
}

const TEXT: u64 = 0x40_0000;
const DATA: u64 = 0x40_2000;

fn load(flags: SegFlags, offset: u64, vaddr: u64, filesz: u64, memsz: u64) -> Ph {
    Ph {
        p_type: PT_LOAD,
        flags: flags.bits(),
        offset,
        vaddr,
        filesz,
        memsz,
    }
}

/// A valid image: text (R+X) at 0x400000 from offset 0, data (R+W) with bss
/// at 0x402000 from offset 0x1000, plus a PT_GNU_STACK-like ignored header.
fn phdrs() -> Vec<Ph> {
    vec![
        load(SegFlags::R | SegFlags::X, 0, TEXT, 0x1000, 0x1000),
        load(SegFlags::R | SegFlags::W, 0x1000, DATA, 0x100, 0x3000),
        Ph {
            p_type: 0x6474_e551,
            flags: 6,
            offset: 0,
            vaddr: 0,
            filesz: 0,
            memsz: 0,
        },
    ]
}

fn build(entry: u64, phs: &[Ph]) -> Vec<u8> {
    let mut v = vec![0u8; 0x1100];
    v[..4].copy_from_slice(b"\x7fELF");
    v[4] = 2;
    v[5] = 1;
    v[6] = 1;
    v[16..18].copy_from_slice(&ET_EXEC.to_le_bytes());
    v[18..20].copy_from_slice(&EM_X86_64.to_le_bytes());
    v[20..24].copy_from_slice(&1u32.to_le_bytes());
    v[24..32].copy_from_slice(&entry.to_le_bytes());
    v[32..40].copy_from_slice(&64u64.to_le_bytes());
    v[52..54].copy_from_slice(&64u16.to_le_bytes());
    v[54..56].copy_from_slice(&56u16.to_le_bytes());
    v[56..58].copy_from_slice(&(phs.len() as u16).to_le_bytes());
    let need = 64 + phs.len() * 56;
    if v.len() < need {
        v.resize(need, 0);
    }
    for (i, p) in phs.iter().enumerate() {
        let h = &mut v[64 + i * 56..64 + (i + 1) * 56];
        h[0..4].copy_from_slice(&p.p_type.to_le_bytes());
        h[4..8].copy_from_slice(&p.flags.to_le_bytes());
        h[8..16].copy_from_slice(&p.offset.to_le_bytes());
        h[16..24].copy_from_slice(&p.vaddr.to_le_bytes());
        h[24..32].copy_from_slice(&p.vaddr.to_le_bytes());
        h[32..40].copy_from_slice(&p.filesz.to_le_bytes());
        h[40..48].copy_from_slice(&p.memsz.to_le_bytes());
        h[48..56].copy_from_slice(&0x1000u64.to_le_bytes());
    }
    v
}

fn good() -> Vec<u8> {
    build(TEXT + 0x10, &phdrs())
}

fn parse_default(image: &[u8]) -> Result<ElfImage, ElfError> {
    parse(image, &ElfLimits::DEFAULT)
}

/// Parses the good image with its program headers edited by `f`.
fn with_phdrs(f: impl FnOnce(&mut Vec<Ph>)) -> Result<ElfImage, ElfError> {
    let mut phs = phdrs();
    f(&mut phs);
    parse_default(&build(TEXT + 0x10, &phs))
}

/// Parses the good image with its bytes edited by `f`.
fn with_bytes(f: impl FnOnce(&mut Vec<u8>)) -> Result<ElfImage, ElfError> {
    let mut v = good();
    f(&mut v);
    parse_default(&v)
}

#[test]
fn valid_image() {
    let img = parse_default(&good()).unwrap();
    assert_eq!(img.entry, TEXT + 0x10);
    assert_eq!(
        img.segments.as_slice(),
        &[
            Segment {
                vaddr: TEXT,
                memsz: 0x1000,
                offset: 0,
                filesz: 0x1000,
                flags: SegFlags::R | SegFlags::X
            },
            Segment {
                vaddr: DATA,
                memsz: 0x3000,
                offset: 0x1000,
                filesz: 0x100,
                flags: SegFlags::R | SegFlags::W
            },
        ]
    );
}

#[test]
fn segments_are_sorted_and_empty_ones_dropped() {
    let img = with_phdrs(|p| {
        p.swap(0, 1);
        p.push(load(SegFlags::R, 0, 0x50_0000, 0, 0));
    })
    .unwrap();
    assert_eq!(img.segments.len(), 2);
    assert_eq!(img.segments[0].vaddr, TEXT);
    assert_eq!(img.segments[1].vaddr, DATA);
}

#[test]
fn header_errors() {
    assert_eq!(parse_default(&[]).unwrap_err(), ElfError::TooShort);
    assert_eq!(
        parse_default(&good()[..63]).unwrap_err(),
        ElfError::TooShort
    );
    assert_eq!(with_bytes(|v| v[0] = 0x7e).unwrap_err(), ElfError::BadMagic);
    assert_eq!(with_bytes(|v| v[4] = 1).unwrap_err(), ElfError::NotElf64);
    assert_eq!(
        with_bytes(|v| v[5] = 2).unwrap_err(),
        ElfError::NotLittleEndian
    );
    assert_eq!(with_bytes(|v| v[6] = 0).unwrap_err(), ElfError::BadVersion);
    assert_eq!(with_bytes(|v| v[20] = 2).unwrap_err(), ElfError::BadVersion);
    assert_eq!(
        with_bytes(|v| v[16] = 3).unwrap_err(),
        ElfError::NotExecutable
    ); // ET_DYN (PIE)
    assert_eq!(
        with_bytes(|v| v[16] = 1).unwrap_err(),
        ElfError::NotExecutable
    ); // ET_REL
    assert_eq!(
        with_bytes(|v| v[18] = 3).unwrap_err(),
        ElfError::WrongMachine
    ); // i386
    assert_eq!(
        with_bytes(|v| v[52] = 52).unwrap_err(),
        ElfError::BadHeaderSize
    );
}

#[test]
fn program_header_table_errors() {
    assert_eq!(
        with_bytes(|v| v[54] = 32).unwrap_err(),
        ElfError::BadProgramHeaders
    );
    // phoff beyond the file, and phoff so large that adding overflows.
    assert_eq!(
        with_bytes(|v| v[32..40].copy_from_slice(&0x10_0000u64.to_le_bytes())).unwrap_err(),
        ElfError::BadProgramHeaders
    );
    assert_eq!(
        with_bytes(|v| v[32..40].copy_from_slice(&u64::MAX.to_le_bytes())).unwrap_err(),
        ElfError::BadProgramHeaders
    );
    assert_eq!(
        with_bytes(|v| v[32..40].copy_from_slice(&(u64::MAX - 10).to_le_bytes())).unwrap_err(),
        ElfError::BadProgramHeaders
    );
    // phnum larger than the file holds, and PN_XNUM.
    assert_eq!(
        with_bytes(|v| v[56..58].copy_from_slice(&1000u16.to_le_bytes())).unwrap_err(),
        ElfError::BadProgramHeaders
    );
    assert_eq!(
        with_bytes(|v| v[56..58].copy_from_slice(&0xffffu16.to_le_bytes())).unwrap_err(),
        ElfError::BadProgramHeaders
    );
    // No program headers at all.
    assert_eq!(
        with_bytes(|v| v[56..58].copy_from_slice(&0u16.to_le_bytes())).unwrap_err(),
        ElfError::NoLoadableSegments
    );
}

#[test]
fn too_many_segments() {
    let err = with_phdrs(|p| {
        p.clear();
        for i in 0..17 {
            p.push(load(
                SegFlags::R | SegFlags::X,
                0,
                TEXT + i * 0x1000,
                0x10,
                0x20,
            ));
        }
    });
    assert_eq!(err.unwrap_err(), ElfError::TooManySegments);
    let ok = with_phdrs(|p| {
        p.clear();
        for i in 0..16 {
            p.push(load(
                SegFlags::R | SegFlags::X,
                0,
                TEXT + i * 0x1000,
                0x10,
                0x20,
            ));
        }
    });
    assert_eq!(ok.unwrap().segments.len(), 16);
}

#[test]
fn dynamic_not_supported() {
    for t in [PT_INTERP, PT_DYNAMIC] {
        let err = with_phdrs(|p| {
            p.push(Ph {
                p_type: t,
                flags: 4,
                offset: 0x100,
                vaddr: TEXT + 0x100,
                filesz: 0x10,
                memsz: 0x10,
            })
        });
        assert_eq!(err.unwrap_err(), ElfError::DynamicNotSupported);
    }
}

#[test]
fn segment_outside_file() {
    assert_eq!(
        with_phdrs(|p| p[1].filesz = 0x101).unwrap_err(),
        ElfError::SegmentOutsideFile { index: 1 }
    );
    assert_eq!(
        with_phdrs(|p| p[1].offset = u64::MAX).unwrap_err(),
        ElfError::SegmentOutsideFile { index: 1 }
    );
    assert_eq!(
        with_phdrs(|p| {
            p[0].offset = u64::MAX - 0xfff;
            p[0].vaddr = 0x40_0000;
        })
        .unwrap_err(),
        ElfError::SegmentOutsideFile { index: 0 }
    );
}

#[test]
fn filesz_exceeds_memsz() {
    assert_eq!(
        with_phdrs(|p| p[1].memsz = 0x80).unwrap_err(),
        ElfError::FileSizeExceedsMemSize { index: 1 }
    );
    assert_eq!(
        with_phdrs(|p| p[1].memsz = 0).unwrap_err(),
        ElfError::FileSizeExceedsMemSize { index: 1 }
    );
}

#[test]
fn outside_user_space() {
    let cases: [(u64, u64); 5] = [
        (0, 0x1000),                     // null page
        (USER_MIN - 0x1000, 0x1000),     // just below
        (USER_END - 0x1000, 0x2000),     // runs past the top
        (0xffff_ffff_8000_0000, 0x1000), // kernel half
        (!0xfff, 0x2000),                // overflowing end
    ];
    for (vaddr, memsz) in cases {
        let err = with_phdrs(|p| {
            p[1].vaddr = vaddr;
            p[1].offset = 0x1000;
            p[1].memsz = memsz;
        });
        assert_eq!(
            err.unwrap_err(),
            ElfError::SegmentOutsideUserSpace { index: 1 },
            "{vaddr:#x}"
        );
    }
    // Custom, tighter limits apply too.
    let limits = ElfLimits {
        user_min: 0x40_0000,
        user_end: 0x40_4000,
        max_total_memsz: 1 << 30,
    };
    assert_eq!(
        parse(&good(), &limits).unwrap_err(),
        ElfError::SegmentOutsideUserSpace { index: 1 }
    );
}

#[test]
fn misaligned_segment() {
    assert_eq!(
        with_phdrs(|p| p[1].vaddr = DATA + 0x10).unwrap_err(),
        ElfError::MisalignedSegment { index: 1 }
    );
    // Same offset within the page is fine.
    let img = with_phdrs(|p| {
        p[1].vaddr = DATA + 0x10;
        p[1].offset = 0x1010;
        p[1].filesz = 0x10;
    })
    .unwrap();
    assert_eq!(img.segments[1].vaddr, DATA + 0x10);
}

#[test]
fn overlapping_segments() {
    // Direct overlap.
    assert_eq!(
        with_phdrs(|p| p[1].vaddr = TEXT).unwrap_err(),
        ElfError::OverlappingSegments { index: 1 }
    );
    // Different bytes but the same page: text ends at 0x400800, data starts at 0x400900.
    let err = with_phdrs(|p| {
        p[0].filesz = 0x800;
        p[0].memsz = 0x800;
        p[1].vaddr = TEXT + 0x900;
        p[1].offset = 0x900;
        p[1].filesz = 0x10;
    });
    assert_eq!(err.unwrap_err(), ElfError::OverlappingSegments { index: 1 });
    // Touching at a page boundary is fine; reported index follows header order.
    let ok = with_phdrs(|p| p[1].vaddr = TEXT + 0x1000);
    assert!(ok.is_ok());
    let err = with_phdrs(|p| {
        p.swap(0, 1);
        p[0].vaddr = TEXT + 0x800;
        p[0].offset = 0x800;
        p[0].filesz = 0;
    });
    assert_eq!(err.unwrap_err(), ElfError::OverlappingSegments { index: 0 });
}

#[test]
fn writable_and_executable() {
    let err = with_phdrs(|p| p[0].flags = (SegFlags::R | SegFlags::W | SegFlags::X).bits());
    assert_eq!(
        err.unwrap_err(),
        ElfError::WritableAndExecutable { index: 0 }
    );
}

#[test]
fn image_too_large() {
    assert_eq!(
        with_phdrs(|p| p[1].memsz = abi::syscall::EXEC_MEMORY_MAX as u64 + 1).unwrap_err(),
        ElfError::ImageTooLarge
    );
    let limits = ElfLimits {
        max_total_memsz: 0x3000,
        ..ElfLimits::DEFAULT
    };
    assert_eq!(
        parse(&good(), &limits).unwrap_err(),
        ElfError::ImageTooLarge
    );
    let limits = ElfLimits {
        max_total_memsz: 0x4000,
        ..ElfLimits::DEFAULT
    };
    assert!(parse(&good(), &limits).is_ok());
}

#[test]
fn entry_not_executable() {
    for entry in [0, TEXT - 1, TEXT + 0x1000, DATA, DATA + 0x10, u64::MAX] {
        assert_eq!(
            parse_default(&build(entry, &phdrs())).unwrap_err(),
            ElfError::EntryNotExecutable,
            "{entry:#x}"
        );
    }
    assert!(parse_default(&build(TEXT, &phdrs())).is_ok());
    assert!(parse_default(&build(TEXT + 0xfff, &phdrs())).is_ok());
}

#[test]
fn no_loadable_segments() {
    assert_eq!(
        with_phdrs(|p| p.truncate(0)).unwrap_err(),
        ElfError::NoLoadableSegments
    );
    assert_eq!(
        with_phdrs(|p| {
            p[0].filesz = 0;
            p[0].memsz = 0;
            p[1].filesz = 0;
            p[1].memsz = 0;
        })
        .unwrap_err(),
        ElfError::NoLoadableSegments
    );
}

#[test]
fn random_corruption_never_panics() {
    let base = good();
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for _ in 0..5000 {
        let mut v = base.clone();
        for _ in 0..4 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let at = (x % (64 + 3 * 56)) as usize;
            v[at] = (x >> 32) as u8;
        }
        if x.is_multiple_of(7) {
            v.truncate((x >> 40) as usize % v.len());
        }
        if let Ok(img) = parse_default(&v) {
            for s in &img.segments {
                assert!(s.vaddr >= USER_MIN && s.vaddr + s.memsz <= USER_END);
                assert!(s.offset + s.filesz <= v.len() as u64);
                assert!(!s.flags.contains(SegFlags::W | SegFlags::X));
            }
        }
    }
}

#[test]
fn errors_display() {
    assert_eq!(
        ElfError::WritableAndExecutable { index: 2 }.to_string(),
        "segment 2 is both writable and executable"
    );
    assert!(!ElfError::TooShort.to_string().is_empty());
}

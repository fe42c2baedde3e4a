//! Host tests for multiboot1 parsing over crafted fake physical memory.

use super::*;
use crate::testmem::FakeMem;

const BASE: u64 = 0x10_0000;
const INFO: u64 = BASE;
const CMD: u64 = BASE + 0x100;
const MODS: u64 = BASE + 0x200;
const MOD_STR: u64 = BASE + 0x300;
const MMAP: u64 = BASE + 0x400;

fn mmap_entry(size: u32, base: u64, len: u64, kind: u32) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&size.to_le_bytes());
    v.extend_from_slice(&base.to_le_bytes());
    v.extend_from_slice(&len.to_le_bytes());
    v.extend_from_slice(&kind.to_le_bytes());
    v.resize(4 + size.max(20) as usize, 0);
    v
}

fn set_mmap(m: &mut FakeMem, entries: &[Vec<u8>]) {
    let bytes: Vec<u8> = entries.concat();
    m.put(MMAP, &bytes);
    m.put_u32(INFO + 44, bytes.len() as u32);
    m.put_u32(INFO + 48, MMAP as u32);
}

/// A well-formed info block: cmdline, two modules, a four-entry memory map.
fn good() -> FakeMem {
    let mut m = FakeMem::new(BASE, 0x1000);
    m.put_u32(INFO, FLAG_CMDLINE | FLAG_MODS | FLAG_MMAP | 1);
    m.put_u32(INFO + 16, CMD as u32);
    m.put(CMD, b"console=serial debug\0");
    m.put_u32(INFO + 20, 2);
    m.put_u32(INFO + 24, MODS as u32);
    for (i, (s, e, str)) in [
        (0x20_0000u32, 0x20_1234u32, MOD_STR as u32),
        (0x30_0000, 0x30_0000, 0),
    ]
    .into_iter()
    .enumerate()
    {
        let a = MODS + i as u64 * 16;
        m.put_u32(a, s);
        m.put_u32(a + 4, e);
        m.put_u32(a + 8, str);
    }
    m.put(MOD_STR, b"init arg\0");
    set_mmap(
        &mut m,
        &[
            mmap_entry(20, 0, 0x9fc00, 1),
            mmap_entry(20, 0x9fc00, 0x400, 2),
            mmap_entry(24, 0x10_0000, 0x7ee_0000, 1), // larger entry size is allowed
            mmap_entry(20, 0xfec0_0000, 0, 2),        // zero length: skipped
            mmap_entry(20, 0x7fe_0000, 0x2_0000, 3),
        ],
    );
    m
}

fn parse(m: &FakeMem) -> Result<BootInfo, BootError> {
    parse_multiboot1(m, MULTIBOOT1_BOOTLOADER_MAGIC, INFO)
}

#[test]
fn parses_good_info() {
    let info = parse(&good()).unwrap();
    assert_eq!(info.cmdline.as_str(), "console=serial debug");
    assert_eq!(info.modules.len(), 2);
    assert_eq!(
        (info.modules[0].start, info.modules[0].end),
        (0x20_0000, 0x20_1234)
    );
    assert_eq!(info.modules[0].cmdline.as_str(), "init arg");
    assert_eq!(info.modules[1].cmdline.as_str(), "");
    assert_eq!(
        info.memory.as_slice(),
        &[
            MemRegion {
                start: 0,
                end: 0x9fc00,
                kind: MemKind::Usable
            },
            MemRegion {
                start: 0x9fc00,
                end: 0xa0000,
                kind: MemKind::Reserved
            },
            MemRegion {
                start: 0x10_0000,
                end: 0x7fe_0000,
                kind: MemKind::Usable
            },
            MemRegion {
                start: 0x7fe_0000,
                end: 0x800_0000,
                kind: MemKind::AcpiReclaimable
            },
        ]
    );
}

#[test]
fn memory_kinds() {
    let mut m = good();
    let entries: Vec<Vec<u8>> = (1..=7)
        .map(|k| mmap_entry(20, k as u64 * 0x1000, 0x1000, k))
        .collect();
    set_mmap(&mut m, &entries);
    let kinds: Vec<MemKind> = parse(&m).unwrap().memory.iter().map(|r| r.kind).collect();
    use MemKind::*;
    assert_eq!(
        kinds,
        [
            Usable,
            Reserved,
            AcpiReclaimable,
            AcpiNvs,
            Bad,
            Other(6),
            Other(7)
        ]
    );
}

#[test]
fn optional_parts_absent() {
    let mut m = good();
    m.put_u32(INFO, FLAG_MMAP);
    let info = parse(&m).unwrap();
    assert_eq!(info.cmdline.as_str(), "");
    assert!(info.modules.is_empty());
    // Flag set but null pointer: empty command line.
    let mut m = good();
    m.put_u32(INFO + 16, 0);
    assert_eq!(parse(&m).unwrap().cmdline.as_str(), "");
}

#[test]
fn bad_magic() {
    assert_eq!(
        parse_multiboot1(&good(), 0x36d7_6289, INFO).unwrap_err(),
        BootError::BadMagic(0x36d7_6289)
    );
}

#[test]
fn info_outside_memory() {
    let m = good();
    assert!(matches!(
        parse_multiboot1(&m, MULTIBOOT1_BOOTLOADER_MAGIC, 0x1000),
        Err(BootError::Unreadable { addr: 0x1000, .. })
    ));
    assert!(matches!(
        parse_multiboot1(&m, MULTIBOOT1_BOOTLOADER_MAGIC, u64::MAX - 3),
        Err(BootError::Unreadable { .. })
    ));
    // The last bytes of memory cannot hold the 52-byte structure.
    assert!(matches!(
        parse_multiboot1(&m, MULTIBOOT1_BOOTLOADER_MAGIC, BASE + 0x1000 - 40),
        Err(BootError::Unreadable { .. })
    ));
}

#[test]
fn no_memory_map() {
    let mut m = good();
    m.put_u32(INFO, FLAG_CMDLINE | FLAG_MODS);
    assert_eq!(parse(&m).unwrap_err(), BootError::NoMemoryMap);
}

#[test]
fn mmap_entry_size_zero_or_small() {
    for size in [0, 4, 19] {
        let mut m = good();
        let mut e = mmap_entry(20, 0, 0x1000, 1);
        e[..4].copy_from_slice(&u32::to_le_bytes(size));
        set_mmap(&mut m, &[mmap_entry(20, 0, 0x1000, 1), e]);
        assert_eq!(
            parse(&m).unwrap_err(),
            BootError::BadMemoryMapEntry { offset: 24 }
        );
    }
}

#[test]
fn mmap_entry_past_length() {
    let mut m = good();
    set_mmap(
        &mut m,
        &[
            mmap_entry(20, 0, 0x1000, 1),
            mmap_entry(20, 0x1000, 0x1000, 1),
        ],
    );
    m.put_u32(INFO + 44, 24 + 10);
    assert_eq!(
        parse(&m).unwrap_err(),
        BootError::BadMemoryMapEntry { offset: 24 }
    );
    m.put_u32(INFO + 44, 24 + 2);
    assert_eq!(
        parse(&m).unwrap_err(),
        BootError::BadMemoryMapEntry { offset: 24 }
    );
    // A huge size must not overflow the offset arithmetic.
    let mut m = good();
    set_mmap(&mut m, &[mmap_entry(20, 0, 0x1000, 1)]);
    m.put_u32(MMAP, u32::MAX);
    assert_eq!(
        parse(&m).unwrap_err(),
        BootError::BadMemoryMapEntry { offset: 0 }
    );
}

#[test]
fn mmap_base_plus_len_overflows() {
    let mut m = good();
    set_mmap(&mut m, &[mmap_entry(20, u64::MAX - 0xfff, 0x1000, 1)]);
    assert_eq!(
        parse(&m).unwrap_err(),
        BootError::BadMemoryMapEntry { offset: 0 }
    );
    set_mmap(&mut m, &[mmap_entry(20, u64::MAX - 0xfff, 0xfff, 1)]);
    assert_eq!(parse(&m).unwrap().memory.len(), 1);
}

#[test]
fn mmap_outside_memory() {
    let mut m = good();
    m.put_u32(INFO + 48, 0x5000);
    assert!(matches!(
        parse(&m).unwrap_err(),
        BootError::Unreadable {
            what: "memory map",
            addr: 0x5000
        }
    ));
    // Length runs off the end of readable memory.
    let mut m = good();
    let last = BASE + 0x1000 - 24;
    m.put(last, &mmap_entry(20, 0, 0x1000, 1));
    m.put_u32(INFO + 48, last as u32);
    m.put_u32(INFO + 44, 48);
    assert!(matches!(
        parse(&m).unwrap_err(),
        BootError::Unreadable { what: "memory map", addr } if addr == BASE + 0x1000
    ));
}

#[test]
fn too_many_regions() {
    let mut m = FakeMem::new(BASE, 0x2000);
    m.put_u32(INFO, FLAG_MMAP);
    let entries: Vec<Vec<u8>> = (0..65)
        .map(|i| mmap_entry(20, i * 0x1000, 0x1000, 1))
        .collect();
    set_mmap(&mut m, &entries);
    assert_eq!(parse(&m).unwrap_err(), BootError::TooManyMemoryRegions);
    set_mmap(&mut m, &entries[..64]);
    assert_eq!(parse(&m).unwrap().memory.len(), 64);
}

#[test]
fn too_many_modules() {
    let mut m = good();
    m.put_u32(INFO + 20, 0xffff_ffff);
    assert_eq!(
        parse(&m).unwrap_err(),
        BootError::TooManyModules(0xffff_ffff)
    );
    m.put_u32(INFO + 20, 33);
    assert_eq!(parse(&m).unwrap_err(), BootError::TooManyModules(33));
}

#[test]
fn module_list_outside_memory() {
    let mut m = good();
    m.put_u32(INFO + 24, 0xffff_fff0);
    assert!(matches!(
        parse(&m).unwrap_err(),
        BootError::Unreadable {
            what: "module list",
            ..
        }
    ));
    // The first module fits at the very end of memory, the second does not.
    let mut m = good();
    m.put_u32(INFO + 24, (BASE + 0x1000 - 16) as u32);
    assert!(matches!(
        parse(&m).unwrap_err(),
        BootError::Unreadable { what: "module list", addr } if addr == BASE + 0x1000
    ));
}

#[test]
fn bad_modules() {
    let mut m = good();
    m.put_u32(MODS + 16 + 4, 0x2f_f000); // module 1 ends before it starts
    assert!(matches!(
        parse(&m).unwrap_err(),
        BootError::BadModule { index: 1, .. }
    ));
    let mut m = good();
    m.put_u32(MODS, 0x20_0010); // module 0 unaligned
    assert!(matches!(
        parse(&m).unwrap_err(),
        BootError::BadModule { index: 0, .. }
    ));
}

#[test]
fn cmdline_unterminated_and_too_long() {
    let mut m = good();
    m.put(CMD, &[b'a'; 256]);
    assert_eq!(
        parse(&m).unwrap_err(),
        BootError::CmdlineTooLong { index: None }
    );
    // Exactly 255 bytes plus NUL is fine.
    m.put(CMD + 255, &[0]);
    assert_eq!(parse(&m).unwrap().cmdline.len(), 255);
    // A module command line running into unreadable memory.
    let mut m = good();
    let end = BASE + 0x1000;
    m.put(end - 5, b"abcde");
    m.put_u32(MODS + 8, (end - 5) as u32);
    assert!(matches!(
        parse(&m).unwrap_err(),
        BootError::Unreadable { what: "module command line", addr } if addr == end
    ));
    // ...but one ending just before unreadable memory is fine.
    m.put(end - 1, &[0]);
    assert_eq!(parse(&m).unwrap().modules[0].cmdline.as_str(), "abcd");
}

#[test]
fn cmdline_not_utf8() {
    let mut m = good();
    m.put(MOD_STR, b"\xff\xfe\0");
    assert_eq!(
        parse(&m).unwrap_err(),
        BootError::CmdlineNotUtf8 { index: Some(0) }
    );
    let mut m = good();
    m.put(CMD, b"ok \xc3\0");
    assert_eq!(
        parse(&m).unwrap_err(),
        BootError::CmdlineNotUtf8 { index: None }
    );
}

#[test]
fn cmdline_outside_memory() {
    let mut m = good();
    m.put_u32(INFO + 16, 0x500);
    assert!(matches!(
        parse(&m).unwrap_err(),
        BootError::Unreadable {
            what: "command line",
            addr: 0x500
        }
    ));
}

#[test]
fn errors_display() {
    let all = [
        BootError::BadMagic(1),
        BootError::Unreadable {
            what: "memory map",
            addr: 0x10,
        },
        BootError::NoMemoryMap,
        BootError::BadMemoryMapEntry { offset: 24 },
        BootError::TooManyMemoryRegions,
        BootError::TooManyModules(40),
        BootError::BadModule {
            index: 2,
            reason: "it ends before it starts",
        },
        BootError::CmdlineTooLong { index: None },
        BootError::CmdlineNotUtf8 { index: Some(3) },
    ];
    for e in all {
        let s = e.to_string();
        assert!(s.len() > 10, "{s}");
    }
    assert_eq!(
        BootError::CmdlineNotUtf8 { index: Some(3) }.to_string(),
        "the command line of module 3 is not valid UTF-8"
    );
}

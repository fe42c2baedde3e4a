//! A check of a user program's ELF before it goes into an image: the
//! properties the kernel's loader relies on, verified on the host so that a
//! bad linker script shows up as a build error naming the file rather than
//! as a process that dies at boot.
//!
//! Rules: only what the header and program headers say is read (no section
//! parsing, no dependency); every violation is reported, one per line, with
//! the segment it concerns. The properties: a little-endian x86_64
//! `ET_EXEC`; every `PT_LOAD` non-empty, inside
//! `[USER_IMAGE_BASE, USER_END)`, with `vaddr % 4096 == offset % 4096`,
//! `filesz <= memsz`, not writable and executable at once, and on pages of
//! its own (the loader maps each segment with one protection); the entry
//! point inside an executable segment.

use abi::layout::{PAGE_SIZE, USER_END, USER_IMAGE_BASE};

const PT_LOAD: u32 = 1;
const PF_X: u32 = 1;
const PF_W: u32 = 2;
const ET_EXEC: u16 = 2;
const EM_X86_64: u16 = 62;
const EHDR_SIZE: usize = 64;
const PHDR_SIZE: usize = 56;

/// One loadable segment, as its program header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    pub flags: u32,
    pub offset: u64,
    pub vaddr: u64,
    pub filesz: u64,
    pub memsz: u64,
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

fn flags_text(flags: u32) -> String {
    let mut s = String::new();
    s.push(if flags & 4 != 0 { 'R' } else { '-' });
    s.push(if flags & PF_W != 0 { 'W' } else { '-' });
    s.push(if flags & PF_X != 0 { 'X' } else { '-' });
    s
}

/// Reads the entry point and the `PT_LOAD` segments, or says why the bytes
/// are not a 64-bit little-endian x86_64 executable.
pub fn load_segments(b: &[u8]) -> Result<(u64, Vec<Segment>), String> {
    if b.len() < EHDR_SIZE || &b[..4] != b"\x7fELF" {
        return Err("not an ELF file".to_string());
    }
    if b[4] != 2 || b[5] != 1 {
        return Err("not a 64-bit little-endian ELF".to_string());
    }
    let short = || "truncated ELF header".to_string();
    let e_type = u16_at(b, 16).ok_or_else(short)?;
    let machine = u16_at(b, 18).ok_or_else(short)?;
    if e_type != ET_EXEC {
        return Err(format!(
            "ELF type {e_type}, not ET_EXEC (2): link with -static -no-pie"
        ));
    }
    if machine != EM_X86_64 {
        return Err(format!("ELF machine {machine}, not x86_64 (62)"));
    }
    let entry = u64_at(b, 24).ok_or_else(short)?;
    let phoff = u64_at(b, 32).ok_or_else(short)?;
    let phentsize = u16_at(b, 54).ok_or_else(short)?;
    let phnum = u16_at(b, 56).ok_or_else(short)?;
    if usize::from(phentsize) != PHDR_SIZE {
        return Err(format!("program header size {phentsize}, not {PHDR_SIZE}"));
    }
    let mut segments = Vec::new();
    for i in 0..usize::from(phnum) {
        let at = usize::try_from(phoff)
            .ok()
            .and_then(|off| off.checked_add(i * PHDR_SIZE))
            .ok_or_else(|| "program headers out of range".to_string())?;
        let ph = b
            .get(at..at + PHDR_SIZE)
            .ok_or_else(|| "program headers run past the end of the file".to_string())?;
        let field = |off| u64_at(ph, off).unwrap_or(0);
        if u32_at(ph, 0) == Some(PT_LOAD) {
            segments.push(Segment {
                flags: u32_at(ph, 4).unwrap_or(0),
                offset: field(8),
                vaddr: field(16),
                filesz: field(32),
                memsz: field(40),
            });
        }
    }
    Ok((entry, segments))
}

/// Every way `(entry, segments)` breaks the loader's rules; empty if none.
pub fn problems(entry: u64, segments: &[Segment]) -> Vec<String> {
    let mut out = Vec::new();
    if segments.is_empty() {
        out.push("no PT_LOAD segment".to_string());
    }
    for (i, s) in segments.iter().enumerate() {
        let name = format!(
            "PT_LOAD #{i} ({} at {:#x}, {:#x} bytes)",
            flags_text(s.flags),
            s.vaddr,
            s.memsz
        );
        if s.memsz == 0 {
            out.push(format!(
                "{name} is empty (GNU ld makes one for an unused PHDRS entry)"
            ));
            continue;
        }
        let end = s.vaddr.checked_add(s.memsz);
        if s.vaddr < USER_IMAGE_BASE || end.is_none_or(|e| e > USER_END) {
            out.push(format!(
                "{name} lies outside user memory [{USER_IMAGE_BASE:#x}, {USER_END:#x})"
            ));
        }
        if s.vaddr % PAGE_SIZE != s.offset % PAGE_SIZE {
            out.push(format!(
                "{name}: vaddr and file offset {:#x} differ modulo the page size",
                s.offset
            ));
        }
        if s.filesz > s.memsz {
            out.push(format!("{name}: file size exceeds memory size"));
        }
        if s.flags & PF_W != 0 && s.flags & PF_X != 0 {
            out.push(format!("{name} is writable and executable"));
        }
    }
    // Page ranges must not overlap: the loader gives each page the
    // protection of one segment.
    let pages = |s: &Segment| {
        let first = s.vaddr / PAGE_SIZE;
        let last = s.vaddr.saturating_add(s.memsz.max(1) - 1) / PAGE_SIZE;
        (first, last)
    };
    for (i, a) in segments.iter().enumerate() {
        for (j, b) in segments.iter().enumerate().skip(i + 1) {
            let (a0, a1) = pages(a);
            let (b0, b1) = pages(b);
            if a.memsz > 0 && b.memsz > 0 && a0 <= b1 && b0 <= a1 {
                out.push(format!("PT_LOAD #{i} and #{j} share a page"));
            }
        }
    }
    let in_text = segments
        .iter()
        .any(|s| s.flags & PF_X != 0 && entry >= s.vaddr && entry - s.vaddr < s.memsz);
    if !in_text {
        out.push(format!(
            "the entry point {entry:#x} is not in an executable segment"
        ));
    }
    out
}

/// Checks an ELF file's bytes; the error lists every problem.
pub fn check_user_program(bytes: &[u8]) -> Result<(), String> {
    let (entry, segments) = load_segments(bytes)?;
    let found = problems(entry, &segments);
    if found.is_empty() {
        Ok(())
    } else {
        Err(found.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(flags: u32, vaddr: u64, offset: u64, memsz: u64) -> Segment {
        Segment {
            flags,
            offset,
            vaddr,
            filesz: memsz,
            memsz,
        }
    }

    const R: u32 = 4;
    const RX: u32 = 5;
    const RW: u32 = 6;

    fn good() -> Vec<Segment> {
        vec![
            seg(RX, 0x40_0000, 0x1000, 0x300),
            seg(R, 0x40_1000, 0x2000, 0x80),
            seg(RW, 0x40_2000, 0x3000, 0x10),
        ]
    }

    #[test]
    fn a_good_layout_passes() {
        assert_eq!(problems(0x40_0000, &good()), Vec::<String>::new());
    }

    #[test]
    fn each_rule_is_reported() {
        let mut s = good();
        s.push(seg(RW, 0, 0, 0));
        let p = problems(0x40_0000, &s);
        assert!(p.iter().any(|m| m.contains("is empty")), "{p:?}");

        let mut s = good();
        s[2].flags = 7;
        assert!(problems(0x40_0000, &s)[0].contains("writable and executable"));

        let mut s = good();
        s[1].offset = 0x2010;
        assert!(problems(0x40_0000, &s)[0].contains("modulo the page size"));

        let mut s = good();
        s[1].vaddr = 0x40_0800;
        s[1].offset = 0x1800;
        assert!(problems(0x40_0000, &s)[0].contains("share a page"));

        let s = vec![seg(RX, 0x1000, 0x1000, 0x10)];
        assert!(problems(0x1000, &s)[0].contains("outside user memory"));

        assert!(problems(0x40_1000, &good())[0].contains("entry point"));
        assert!(problems(0, &[])[0].contains("no PT_LOAD"));
    }

    #[test]
    fn headers_are_parsed() {
        let mut b = vec![0u8; EHDR_SIZE + PHDR_SIZE];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2;
        b[5] = 1;
        b[16..18].copy_from_slice(&ET_EXEC.to_le_bytes());
        b[18..20].copy_from_slice(&EM_X86_64.to_le_bytes());
        b[24..32].copy_from_slice(&0x40_0000u64.to_le_bytes());
        b[32..40].copy_from_slice(&(EHDR_SIZE as u64).to_le_bytes());
        b[54..56].copy_from_slice(&(PHDR_SIZE as u16).to_le_bytes());
        b[56..58].copy_from_slice(&1u16.to_le_bytes());
        let ph = EHDR_SIZE;
        b[ph..ph + 4].copy_from_slice(&PT_LOAD.to_le_bytes());
        b[ph + 4..ph + 8].copy_from_slice(&RX.to_le_bytes());
        b[ph + 16..ph + 24].copy_from_slice(&0x40_0000u64.to_le_bytes());
        b[ph + 32..ph + 40].copy_from_slice(&0x40u64.to_le_bytes());
        b[ph + 40..ph + 48].copy_from_slice(&0x40u64.to_le_bytes());
        assert_eq!(check_user_program(&b), Ok(()));

        b[16] = 3; // ET_DYN: a PIE
        assert!(check_user_program(&b).unwrap_err().contains("ET_EXEC"));
        assert!(check_user_program(b"nope").is_err());
        assert!(check_user_program(&b[..EHDR_SIZE]).is_err());
    }
}

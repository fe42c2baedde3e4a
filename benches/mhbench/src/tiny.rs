//! The smallest program `exec` accepts, built in memory for `exec_tiny`:
//! one read+execute segment holding the ELF header, its program header and
//! three instructions that exit with status 0.
//!
//! Rules: the image is the same builder as the test suite's
//! (tests/runner/src/t_exec.rs), cut down to what a valid image needs; it
//! is linked at the usual `USER_IMAGE_BASE`, so exec replaces the whole
//! program as it would a real one.

use abi::layout::USER_IMAGE_BASE;

const EHDR: usize = 64;
const PHDR: usize = 56;
const CODE_AT: usize = EHDR + PHDR;

/// xor edi, edi; mov eax, 2 (exit); syscall; ud2
const CODE: [u8; 11] = [
    0x31, 0xff, 0xb8, 0x02, 0x00, 0x00, 0x00, 0x0f, 0x05, 0x0f, 0x0b,
];

/// The image's size in bytes.
pub const LEN: usize = CODE_AT + CODE.len();

fn put(b: &mut [u8], at: usize, bytes: &[u8]) {
    b[at..at + bytes.len()].copy_from_slice(bytes);
}

/// A minimal static x86-64 executable that exits with status 0.
pub fn elf() -> [u8; LEN] {
    let mut b = [0u8; LEN];
    // Identification: magic, 64-bit, little endian, version 1.
    put(&mut b, 0, b"\x7fELF\x02\x01\x01");
    put(&mut b, 16, &2u16.to_le_bytes()); // ET_EXEC
    put(&mut b, 18, &62u16.to_le_bytes()); // x86-64
    put(&mut b, 20, &1u32.to_le_bytes()); // version
    put(
        &mut b,
        24,
        &(USER_IMAGE_BASE + CODE_AT as u64).to_le_bytes(),
    ); // entry
    put(&mut b, 32, &(EHDR as u64).to_le_bytes()); // phoff
    put(&mut b, 52, &(EHDR as u16).to_le_bytes()); // ehsize
    put(&mut b, 54, &(PHDR as u16).to_le_bytes()); // phentsize
    put(&mut b, 56, &1u16.to_le_bytes()); // phnum
    let p = EHDR;
    put(&mut b, p, &1u32.to_le_bytes()); // PT_LOAD
    put(&mut b, p + 4, &5u32.to_le_bytes()); // R+X
    put(&mut b, p + 8, &0u64.to_le_bytes()); // offset
    put(&mut b, p + 16, &USER_IMAGE_BASE.to_le_bytes()); // vaddr
    put(&mut b, p + 24, &USER_IMAGE_BASE.to_le_bytes()); // paddr
    put(&mut b, p + 32, &(LEN as u64).to_le_bytes()); // filesz
    put(&mut b, p + 40, &(LEN as u64).to_le_bytes()); // memsz
    put(&mut b, p + 48, &4096u64.to_le_bytes()); // align
    put(&mut b, CODE_AT, &CODE);
    b
}

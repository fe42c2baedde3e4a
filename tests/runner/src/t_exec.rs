//! exec: a valid image built here, in memory (it exits with
//! `getpid() + (args_len << 16)`, proving the pid is kept and the arguments
//! arrive), and malformed ones, each refused with a clean error that leaves
//! the caller running unchanged.

use crate::suite::Suite;
use crate::util::{free_frames, in_child};
use crate::{ensure, ensure_eq};
use abi::{Error, ExitKind, Sysno};
use libmh::process;
use libmh::raw::syscall6;

const BASE: u64 = 0x40_0000;
const EHDR: usize = 64;
const PHDR: usize = 56;
const CODE_AT: usize = EHDR + PHDR;

/// mov r12, rsi; mov eax, 3 (getpid); syscall; shl r12, 16; add rax, r12;
/// mov rdi, rax; mov eax, 2 (exit); syscall; ud2
pub const CODE: [u8; 31] = [
    0x49, 0x89, 0xf4, 0xb8, 0x03, 0x00, 0x00, 0x00, 0x0f, 0x05, 0x49, 0xc1, 0xe4, 0x10, 0x4c, 0x01,
    0xe0, 0x48, 0x89, 0xc7, 0xb8, 0x02, 0x00, 0x00, 0x00, 0x0f, 0x05, 0x0f, 0x0b, 0x90, 0x90,
];
const LEN: usize = CODE_AT + CODE.len();

/// A program that exits with `port_in(handle, 0, 4)` (its value, or the
/// error as a negative number): `handle` is patched in at byte 1.
/// mov edi, imm32; xor esi, esi; mov edx, 4; mov eax, 24 (port_in);
/// syscall; mov rdi, rax; mov eax, 2 (exit); syscall; ud2; padding
pub const PORT_IN_CODE: [u8; 31] = [
    0xbf, 0, 0, 0, 0, 0x31, 0xf6, 0xba, 0x04, 0x00, 0x00, 0x00, 0xb8, 0x18, 0x00, 0x00, 0x00, 0x0f,
    0x05, 0x48, 0x89, 0xc7, 0xb8, 0x02, 0x00, 0x00, 0x00, 0x0f, 0x05, 0x0f, 0x0b,
];

fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
}
fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}
fn put64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// Sets the memory size of `image`'s one segment (its bss is the rest).
pub fn set_memsz(image: &mut [u8; LEN], memsz: u64) {
    put64(image, EHDR + 40, memsz);
}

/// A minimal static x86-64 executable: one R+X segment holding it all.
fn tiny_elf() -> [u8; LEN] {
    tiny_elf_with(&CODE)
}

/// The same executable around other code of the same length.
pub fn tiny_elf_with(code: &[u8; 31]) -> [u8; LEN] {
    let mut b = [0u8; LEN];
    b[..4].copy_from_slice(b"\x7fELF");
    b[4] = 2; // 64-bit
    b[5] = 1; // little endian
    b[6] = 1; // version
    put16(&mut b, 16, 2); // ET_EXEC
    put16(&mut b, 18, 62); // x86-64
    put32(&mut b, 20, 1);
    put64(&mut b, 24, BASE + CODE_AT as u64); // entry
    put64(&mut b, 32, EHDR as u64); // phoff
    put16(&mut b, 52, EHDR as u16);
    put16(&mut b, 54, PHDR as u16);
    put16(&mut b, 56, 1); // phnum
    let p = EHDR;
    put32(&mut b, p, 1); // PT_LOAD
    put32(&mut b, p + 4, 5); // R+X
    put64(&mut b, p + 8, 0); // offset
    put64(&mut b, p + 16, BASE); // vaddr
    put64(&mut b, p + 24, BASE); // paddr
    put64(&mut b, p + 32, LEN as u64); // filesz
    put64(&mut b, p + 40, LEN as u64); // memsz
    put64(&mut b, p + 48, 4096); // align
    b[CODE_AT..].copy_from_slice(code);
    b
}

fn exec_raw(image: u64, len: u64, cmd: u64, cmd_len: u64) -> Error {
    // SAFETY: pointers may lie on purpose; the kernel checks them.
    let r = unsafe { syscall6(Sysno::Exec as u64, image, len, cmd, cmd_len, 0, 0) };
    Error::decode(r).err().unwrap_or(Error::InvalidArgument)
}

/// Breaks a good image one way.
type Breaker = fn(&mut [u8; LEN]);

/// Malformed variants: (what, how to break the good image).
const BROKEN: [(&str, Breaker); 14] = [
    ("bad magic", |b| b[1] = b'X'),
    ("32-bit class", |b| b[4] = 1),
    ("big endian", |b| b[5] = 2),
    ("bad version", |b| b[6] = 9),
    ("shared object", |b| put16(b, 16, 3)),
    ("wrong machine", |b| put16(b, 18, 40)),
    ("program headers out of the file", |b| {
        put64(b, 32, 0x10_0000)
    }),
    ("absurd segment count", |b| put16(b, 56, 0xffff)),
    ("segment beyond the file", |b| {
        put64(b, EHDR + 32, 0x10_0000)
    }),
    ("file size above memory size", |b| put64(b, EHDR + 40, 8)),
    ("segment in the kernel half", |b| {
        put64(b, EHDR + 16, 0xffff_ffff_8000_0000)
    }),
    ("writable and executable", |b| put32(b, EHDR + 4, 7)),
    ("entry outside the code", |b| put64(b, 24, 0x90_0000)),
    ("dynamic interpreter", |b| put32(b, EHDR, 3)),
];

pub fn run(s: &mut Suite) {
    crate::util::warm_up();
    let baseline = free_frames();

    s.run("exec_runs_a_valid_image_keeping_pid_and_args", || {
        let image = tiny_elf();
        let st = in_child(|| {
            let e = process::exec(&image, "tiny hello world");
            crate::helpers::report_exec_failure(e)
        })?;
        ensure_eq!(st.kind, ExitKind::Exited as u32);
        // The program exits with its pid plus its argument length << 16.
        ensure_eq!(
            st.code,
            st.pid as i64 + (("hello world".len() as i64) << 16)
        );
        Ok(())
    });

    s.run("exec_refuses_14_malformed_images", || {
        for (what, breakit) in BROKEN {
            let mut image = tiny_elf();
            breakit(&mut image);
            let e = process::exec(&image, "broken");
            ensure!(
                e == Error::BadImage,
                "{what}: exec gave {e:?}, expected BadImage"
            );
        }
        // The caller is still itself.
        ensure_eq!(process::getpid(), 1);
        Ok(())
    });

    s.run("exec_argument_errors", || {
        let image = tiny_elf();
        let ptr = image.as_ptr() as u64;
        ensure_eq!(exec_raw(ptr, 0, 0, 0), Error::InvalidArgument);
        ensure_eq!(exec_raw(ptr, 10, 0, 0), Error::BadImage);
        ensure_eq!(exec_raw(ptr, 17 << 20, 0, 0), Error::InvalidArgument);
        ensure_eq!(exec_raw(0, LEN as u64, 0, 0), Error::BadAddress);
        ensure_eq!(
            exec_raw(0xffff_8000_0000_0000, LEN as u64, 0, 0),
            Error::BadAddress
        );
        ensure_eq!(exec_raw(ptr, LEN as u64, 0, 5), Error::BadAddress);
        ensure_eq!(exec_raw(ptr, LEN as u64, ptr, 2000), Error::InvalidArgument);
        let bad_utf8 = [0xffu8, 0xfe];
        ensure_eq!(
            exec_raw(ptr, LEN as u64, bad_utf8.as_ptr() as u64, 2),
            Error::InvalidArgument
        );
        Ok(())
    });

    s.run("exec_group_gives_back_every_frame", || {
        ensure_eq!(free_frames(), baseline);
        Ok(())
    });
}

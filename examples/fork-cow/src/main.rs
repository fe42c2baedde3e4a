//! fork-cow: after `fork`, parent and child share their pages read-only;
//! the first write to one of them is a copy-on-write fault that libmh's
//! handler resolves in user space (a private copy, then the write runs
//! again). The child changes a buffer; the parent still sees its own.
#![no_std]
#![no_main]

use libmh::{Args, println, process, rt};

libmh::entry!(main);

/// 16 pages, so the child's writes make several copies.
static mut BUFFER: [u8; 16 * 4096] = [b'p'; 16 * 4096];

fn buffer() -> &'static mut [u8; 16 * 4096] {
    // SAFETY: single-threaded program; each process has its own copy after
    // fork, and no other reference is held across calls.
    unsafe { &mut *(&raw mut BUFFER) }
}

fn main(_args: Args) -> i32 {
    buffer()[0] = b'p';
    let before = rt::stats().cow_copies;
    match process::fork() {
        Ok(0) => {
            for page in buffer().chunks_mut(4096) {
                // Volatile: the write must happen here, before the count
                // below is read.
                // SAFETY: a valid, exclusive byte of our own buffer.
                unsafe { (&raw mut page[0]).write_volatile(b'c') };
            }
            let copies = rt::stats().cow_copies - before;
            println!("fork-cow: child wrote 16 pages: {copies} copy-on-write copies");
            process::exit(if copies >= 16 { 0 } else { 1 })
        }
        Ok(child) => {
            let status = process::wait_child();
            let mine = buffer().chunks(4096).all(|p| p[0] == b'p');
            println!("fork-cow: parent's pages unchanged: {mine}");
            match status {
                Ok(st) if st.pid == child && st.code == 0 && mine => {
                    println!("fork-cow: ok");
                    0
                }
                _ => {
                    println!("fork-cow: FAILED");
                    1
                }
            }
        }
        Err(e) => {
            println!("fork-cow: fork failed: {e}");
            1
        }
    }
}

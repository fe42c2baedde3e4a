//! fork-cow: after `fork`, parent and child share their pages read-only;
//! the first write to one of them is a copy-on-write fault that libmh's
//! handler resolves in user space (a private copy, then the write runs
//! again). The child changes a buffer; the parent still sees its own.
#![no_std]
#![no_main]

use libmh::{Args, println, process, rt, vm};

libmh::entry!(main);

/// 16 pages at a free spot of the address space, so the child's writes
/// make several copies.
const AREA: u64 = 0x5000_0000_0000;
const PAGES: u64 = 16;

fn page(i: u64) -> *mut u8 {
    (AREA + i * 4096) as *mut u8
}

fn write(i: u64, value: u8) {
    // SAFETY: the area was mapped read-write by `main`; volatile, so each
    // write happens here (and faults here), before anything that follows.
    unsafe { page(i).write_volatile(value) }
}

fn read(i: u64) -> u8 {
    // SAFETY: as in `write`.
    unsafe { page(i).read_volatile() }
}

fn main(_args: Args) -> i32 {
    if let Err(e) = vm::map(AREA, PAGES * 4096, vm::PROT_RW) {
        println!("fork-cow: cannot map the area: {e}");
        return 1;
    }
    for i in 0..PAGES {
        write(i, b'p');
    }
    let before = rt::stats().cow_copies;
    match process::fork() {
        Ok(0) => {
            for i in 0..PAGES {
                write(i, b'c');
            }
            let copies = rt::stats().cow_copies - before;
            println!("fork-cow: child wrote {PAGES} pages: {copies} copy-on-write copies");
            process::exit(if copies >= PAGES { 0 } else { 1 })
        }
        Ok(child) => {
            let status = process::wait_child();
            let mine = (0..PAGES).all(|i| read(i) == b'p');
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

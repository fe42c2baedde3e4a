//! `disk info`, `disk read <sector>`, `disk write <sector> <text>`,
//! `disk scan`: the disk (`disk0`, libmh::disk) from the prompt (`scan`
//! reads it all, in order: what `cargo xtask bench` times for the
//! sequential read throughput). Each opens the disk, does
//! its one thing and closes it again, so the shell holds no disk handle
//! between commands (a restarted driver is simply found again).

use crate::say;
use abi::disk::{DISK_FLAG_FLUSH, DISK_FLAG_INTERRUPTS, DISK_FLAG_READ_ONLY};
use libmh::console::Console;
use libmh::dev::REGISTRY;
use libmh::disk::{self, Disk};

/// The vector the disk's completions come on (the shell's others are
/// 1–5).
const V_DISK: u32 = 6;
/// Bytes one sector may have here (the buffer on the stack): the largest
/// sector the driver publishes.
const SECTOR_MAX: usize = 4096;

const USAGE: &str =
    "usage: disk info | disk read <sector> | disk write <sector> <text> | disk scan";
/// Bytes `disk scan` reads per request (a stack buffer).
const SCAN_CHUNK: usize = 16384;

pub fn run(c: &Console, args: &str) {
    let (what, rest) = args.split_once(' ').unwrap_or((args, ""));
    let rest = rest.trim();
    let d = match what {
        "info" | "read" | "write" | "scan" => {
            match Disk::open_with(REGISTRY, disk::NAME, V_DISK, disk::RIGHTS) {
                Ok(d) => d,
                Err(e) => return say!(c, "disk: cannot open '{}': {e}\n", disk::NAME),
            }
        }
        _ => return say!(c, "{USAGE}\n"),
    };
    match what {
        "info" => info(c, &d),
        "read" => read(c, &d, rest),
        "scan" => scan(c, &d),
        _ => write(c, &d, rest),
    }
    let _ = d.close();
}

fn info(c: &Console, d: &Disk) {
    let bytes = d.capacity() * d.sector_size();
    let f = d.flags();
    say!(
        c,
        "{}: {} sectors of {} bytes ({} KiB), serial '{}', up to {} KiB a request{}{}{}\n",
        disk::NAME,
        d.capacity(),
        d.sector_size(),
        bytes / 1024,
        d.serial(),
        d.transfer_max() / 1024,
        if f & DISK_FLAG_FLUSH != 0 {
            ", write cache"
        } else {
            ""
        },
        if f & DISK_FLAG_READ_ONLY != 0 {
            ", read-only"
        } else {
            ""
        },
        if f & DISK_FLAG_INTERRUPTS != 0 {
            ", interrupts"
        } else {
            ", polled"
        },
    );
}

/// Reads the whole disk in order; prints its size before and a checksum
/// after (the two lines the bench times).
fn scan(c: &Console, d: &Disk) {
    let total = d.capacity() * d.sector_size();
    let chunk = (SCAN_CHUNK as u64).min(d.transfer_max()) / d.sector_size() * d.sector_size();
    if chunk == 0 {
        return say!(c, "disk: sectors too large to scan\n");
    }
    say!(c, "disk: scanning {} KiB\n", total / 1024);
    let mut buf = [0u8; SCAN_CHUNK];
    let mut sum = 0u64;
    let mut at = 0;
    while at < total {
        let len = chunk.min(total - at) as usize;
        if let Err(e) = d.read(at / d.sector_size(), &mut buf[..len]) {
            return say!(c, "disk: scan at byte {at}: {e}\n");
        }
        sum = buf[..len]
            .iter()
            .fold(sum, |s, &b| s.rotate_left(1) ^ u64::from(b));
        at += len as u64;
    }
    say!(c, "disk: scanned {} KiB, checksum {sum:#x}\n", total / 1024);
}

fn sector_arg(c: &Console, word: &str) -> Option<u64> {
    let parsed = match word.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => word.parse().ok(),
    };
    if parsed.is_none() {
        say!(c, "disk: '{word}' is not a sector number\n{USAGE}\n");
    }
    parsed
}

/// One sector as a hex dump: 16 bytes a line, offset, hex, ASCII.
fn read(c: &Console, d: &Disk, arg: &str) {
    let Some(sector) = sector_arg(c, arg) else {
        return;
    };
    let n = d.sector_size() as usize;
    if n > SECTOR_MAX {
        return say!(c, "disk: sectors of {n} bytes are too big for the shell\n");
    }
    let mut buf = [0u8; SECTOR_MAX];
    if let Err(e) = d.read(sector, &mut buf[..n]) {
        return say!(c, "disk: read sector {sector}: {e}\n");
    }
    for (i, line) in buf[..n].chunks(16).enumerate() {
        let mut hex = libmh::print::FixedBuf::<64>::new();
        let mut text = [b'.'; 16];
        for (j, b) in line.iter().enumerate() {
            let _ = core::fmt::Write::write_fmt(&mut hex, format_args!("{b:02x} "));
            if b.is_ascii_graphic() || *b == b' ' {
                text[j] = *b;
            }
        }
        let text = core::str::from_utf8(&text[..line.len()]).unwrap_or("");
        let hex = core::str::from_utf8(hex.bytes()).unwrap_or("");
        say!(c, "{:04x}  {hex:<48} {text}\n", i * 16);
    }
}

/// The text (zero-padded to a sector) at `sector`, then a flush.
fn write(c: &Console, d: &Disk, args: &str) {
    let (word, text) = args.split_once(' ').unwrap_or((args, ""));
    let Some(sector) = sector_arg(c, word) else {
        return;
    };
    let n = d.sector_size() as usize;
    if n > SECTOR_MAX || text.len() > n {
        return say!(c, "disk: the text does not fit one sector of {n} bytes\n");
    }
    let mut buf = [0u8; SECTOR_MAX];
    buf[..text.len()].copy_from_slice(text.as_bytes());
    match d.write(sector, &buf[..n]).and_then(|()| d.flush()) {
        Ok(()) => say!(c, "disk: wrote {} bytes to sector {sector}\n", text.len()),
        Err(e) => say!(c, "disk: write sector {sector}: {e}\n"),
    }
}

//! The files `cargo xtask new` writes, as text with `@NAME@` (the name
//! given) and `@BIN@` (the binary: the name, or `<name>-c` for C) to fill
//! in.
//!
//! Rules: each template is the smallest thing that builds, runs in its
//! self-test image and points at the docs that explain it; the generated
//! code follows the workspace's conventions (`//!` docs, comments that say
//! why) so it can be kept as the start of the real thing.

/// Fills in a template.
pub fn fill(template: &str, name: &str, bin: &str) -> String {
    template.replace("@NAME@", name).replace("@BIN@", bin)
}

/// build.rs of every generated Rust crate: the same as the other user
/// crates' (servers and examples sit two levels below the root alike).
pub const BUILD_RS: &str = r#"//! Links this program with libmh's user linker script, as a non-PIE ELF.
fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    println!("cargo:rustc-link-arg-bins=-T{dir}/../../libmh/user.ld");
    println!("cargo:rustc-link-arg-bins=--no-pie");
    println!("cargo:rerun-if-changed=../../libmh/user.ld");
}
"#;

pub const SERVER_CARGO: &str = r#"# servers/@NAME@: a user device server made by `cargo xtask new --server`;
# see docs/writing-a-server.md. build.rs links it with libmh/user.ld.
[package]
name = "@NAME@"
description = "The @NAME@ user device"
edition.workspace = true
license.workspace = true
version.workspace = true
publish = false

[[bin]]
name = "@NAME@"
test = false
bench = false

[dependencies]
abi.workspace = true
libmh.workspace = true
"#;

pub const SERVER_MAIN: &str = r#"//! @NAME@: a user device server (made by `cargo xtask new --server`; see
//! docs/writing-a-server.md). It registers `@NAME@`; a value written to
//! port 0 comes back plus one at offset 0 of the writer's I/O space, with
//! IRQ line 0 raised.
//!
//! With the argument `check` the same binary is a client instead: it
//! attaches `@NAME@`, makes one round trip and prints `@NAME@: check ok`,
//! which tools/images/selftest-@NAME@.toml expects.
#![no_std]
#![no_main]

use abi::Error;
use abi::userdev::REQUEST_OUT;
use libmh::dev::{self, REGISTRY, Request, Served};
use libmh::server::{self, Reply, Server};
use libmh::{Args, println, process};

libmh::entry!(main);

/// The device name, as the manifest's `registers` and `devices` say it.
const NAME: &str = "@NAME@";
/// Port 0: answer the value plus one.
const PORT_ANSWER: u32 = 0;
/// The server's own vector (the framework waits on it).
const VECTOR: u32 = 1;
/// The vector the check client takes the device's IRQ line 0 as.
const CLIENT_VECTOR: u32 = 5;

struct Device;

impl Server for Device {
    fn request(&mut self, _dev: Served, r: &Request) -> Reply {
        match (r.kind, r.port) {
            // Answer at I/O-space offset 0, announced on line 0.
            (REQUEST_OUT, PORT_ANSWER) => Reply::word(0, r.value.wrapping_add(1), 0),
            // Opens, closes, forks and unknown ports need no answer.
            _ => Reply::None,
        }
    }
}

fn serve() -> i32 {
    // One IRQ line, 8 bytes of I/O space per client.
    let device = match dev::create(REGISTRY, NAME, 1, 8, VECTOR) {
        Ok(d) => d,
        Err(e) => {
            println!("{NAME}: cannot register '{NAME}': {e}");
            return 1;
        }
    };
    match server::serve(device, VECTOR, 0, &mut Device) {
        Ok(code) => code,
        Err(e) => {
            println!("{NAME}: stopped: {e}");
            2
        }
    }
}

/// The client side: one round trip through the device.
fn check() -> Result<u64, Error> {
    let rights = dev::RIGHT_READ | dev::RIGHT_WRITE | dev::RIGHT_IRQ;
    // init starts this only once the name is registered, but a restarting
    // server is briefly absent: look for it a while before giving up.
    let mut tries = 0;
    let h = loop {
        match dev::attach(REGISTRY, NAME, rights) {
            Ok(h) => break h,
            Err(Error::NotFound) if tries < 100_000 => tries += 1,
            Err(e) => return Err(e),
        }
        process::yield_now();
    };
    h.irq_map(0, CLIENT_VECTOR)?;
    h.port_out_wait(PORT_ANSWER, 8, 41, 1 << CLIENT_VECTOR)?;
    let answer = h.port_in(0, 8)?;
    h.detach()?;
    Ok(answer)
}

fn main(args: Args) -> i32 {
    if args.as_str() != "check" {
        return serve();
    }
    match check() {
        Ok(42) => {
            println!("{NAME}: check ok");
            0
        }
        Ok(other) => {
            println!("{NAME}: check FAILED: 41 came back as {other}");
            1
        }
        Err(e) => {
            println!("{NAME}: check FAILED: {e}");
            1
        }
    }
}
"#;

pub const PROGRAM_CARGO: &str = r#"# examples/@NAME@: a program made by `cargo xtask new --program`; see
# docs/getting-started.md. build.rs links it with libmh/user.ld.
[package]
name = "@NAME@"
description = "The @NAME@ program"
edition.workspace = true
license.workspace = true
version.workspace = true
publish = false

[[bin]]
name = "@NAME@"
test = false
bench = false

[dependencies]
libmh.workspace = true
"#;

pub const PROGRAM_MAIN: &str = r#"//! @NAME@: a program (made by `cargo xtask new --program`; see
//! docs/getting-started.md). It prints one line with its pid and arguments
//! and exits 0; tools/images/selftest-@NAME@.toml expects the line, and the
//! shell runs it with `run @NAME@ [words]`.
#![no_std]
#![no_main]

use libmh::{Args, println, process};

libmh::entry!(main);

fn main(args: Args) -> i32 {
    println!(
        "@NAME@: hello from pid {}, arguments '{}'",
        process::getpid(),
        args.as_str()
    );
    0
}
"#;

pub const C_MAIN: &str = r#"/*
 * @BIN@: a C program made by `cargo xtask new --c`, built by `cargo xtask
 * build` with gcc against abi/include/mh.h alone (no libc); see docs/c.md
 * and examples/hello-c for more. It prints one line and exits 0;
 * tools/images/selftest-@NAME@.toml expects the line.
 */
#include <mh.h>

/*
 * The entry point: the kernel enters _start(args, args_len) (rdi, rsi).
 * In asm so the stack alignment the C ABI wants is forced, not trusted;
 * .text._start is what the linker script places first.
 */
__asm__(".section .text._start, \"ax\", @progbits\n"
        ".globl _start\n"
        ".type _start, @function\n"
        "_start:\n"
        "  xor %ebp, %ebp\n"
        "  and $-16, %rsp\n"
        "  call program_main\n"
        "  ud2\n"
        ".size _start, . - _start\n"
        ".text\n");

__attribute__((noreturn)) void program_main(const char *args, size_t args_len);

void program_main(const char *args, size_t args_len) {
    (void)args;
    (void)args_len;
    /* One log_write per line, so no other process's output cuts into it. */
    static const char line[] = "@BIN@: hello from C\n";
    (void)mh_log_write(line, sizeof line - 1);
    mh_exit(0);
}
"#;

/// The default image's entry for a server: before the shell, so init has
/// it registered by the time the session starts.
pub const SERVER_MODULE: &str = r#"[[module]]                 # servers/@NAME@: the `@NAME@` user device
binary = "@NAME@"
devices = ["@NAME@"]
registers = "@NAME@"
restart = true
"#;

pub const PROGRAM_MODULE: &str = r#"[[module]]                 # examples/@NAME@: `run @NAME@ [words]`
binary = "@BIN@"
devices = []
start = false
"#;

pub const C_MODULE: &str = r#"[[module]]                 # examples/@BIN@: a C program, `run @BIN@`
binary = "@BIN@"
devices = []
start = false
"#;

pub const SERVER_SELFTEST: &str = r#"# A self-test image for servers/@NAME@ (made by `cargo xtask new`): init
# starts the server, waits for it to register `@NAME@`, then starts the same
# binary as a client (`check`), which makes one round trip. Booted by
# `cargo xtask test`.
[image]
description = "Self-test: the @NAME@ server answers"
timeout_secs = 60

[[module]]
binary = "init"

[[module]]
binary = "@NAME@"
devices = ["@NAME@"]
registers = "@NAME@"
restart = true             # a server: init powers off once the programs are done

[[module]]
binary = "@NAME@"
args = ["check"]
devices = ["@NAME@"]

[expect]
outcome = "clean"
output = [
    "init: @NAME@ registered '@NAME@'",
    "@NAME@: check ok",
    "init: no program left; goodbye",
]
"#;

pub const PROGRAM_SELFTEST: &str = r#"# A self-test image for @BIN@ (made by `cargo xtask new`): init runs the
# program, which must print its line, and powers off when it has ended.
# Booted by `cargo xtask test`.
[image]
description = "Self-test: @BIN@ runs and prints its line"
timeout_secs = 60

[[module]]
binary = "init"

[[module]]
binary = "@BIN@"
args = ["self-test"]
devices = []

[expect]
outcome = "clean"
output = [
    "@LINE@",
    "init: no program left; goodbye",
]
"#;

/// What the program's self-test expects it to print.
pub const PROGRAM_LINE: &str = "@NAME@: hello from pid";
pub const C_LINE: &str = "@BIN@: hello from C";

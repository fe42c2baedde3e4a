//! `cargo xtask`: MH's build, run, test and debug driver. This file parses
//! the command line, dispatches to a subcommand and turns every failure into
//! one `error:` line and an exit status.
//!
//! Rules: arguments are parsed by hand (no clap: a handful of options does
//! not justify the dependency); every subcommand checks its prerequisites up
//! front; progress lines start with `[xtask]` so they stand out from cargo's
//! and QEMU's output; user errors never end in a panic.

mod bench;
mod bootbench;
mod build;
mod cprog;
mod disk_image;
mod elf;
mod endings;
mod error;
mod gdb;
mod harness;
mod header;
mod image;
mod manifest;
mod nettest;
mod new;
mod passes;
mod paths;
mod prereq;
mod qemu;
mod run;
mod selftest;
mod smpbench;
mod suite;
#[cfg(test)]
mod testdir;

use error::{Result, bail};

const USAGE: &str = "\
cargo xtask: build, run, test and debug MH

USAGE:
    cargo xtask build [--image NAME]
        Build the kernel and all user programs (release, x86_64-unknown-none)
        and assemble the image in target/mh/image/NAME/; prints the sizes.
    cargo xtask run [--image NAME] [--smp N] [-- QEMU ARGS...]
        Build, then boot the image in QEMU with the console on this terminal
        (Ctrl-A X quits), on the manifest's `cpus` CPUs (the default image:
        2) or N. Extra QEMU arguments go after `--`, e.g.
        `cargo xtask run -- -d int,cpu_reset -D target/mh/qemu.log`.
    cargo xtask test
        Run the host unit tests (cargo test), then boot the `test` image
        headless twice, on 1 CPU and on 4 (pass smp1, then smp4; heavy tests
        such as the fuzzer run in smp4 only), and check the guest test
        runner's reports, then boot each selftest-* image once. Ends with
        the line `N passed, M failed`; the serial logs are in
        target/mh/test-smp1-serial.log and test-smp4-serial.log.
    cargo xtask bench
        Boot the `bench` image headless under QEMU -icount, where the guest
        TSC counts instructions, and print guest instructions per operation
        next to reference figures (Linux, seL4) and the TCG wall time. Results
        go to target/mh/bench.txt (`name value` lines), the serial log to
        target/mh/bench-serial.log; see docs/benchmarks.md.
    cargo xtask gdb [--image NAME] [--smp N] [--program BINARY]
        Build, start QEMU halted with a gdb stub on :1234 (serial output in
        target/mh/gdb-serial.log) and run gdb with the kernel's symbols;
        --program also loads one user program's symbols. Use `hbreak` for
        breakpoints in early boot code. Each CPU is a gdb thread
        (`info threads`, `thread N`).
    cargo xtask header [--check]
        Regenerate the C header abi/include/mh.h from the abi crate; with
        --check, only compare and fail if the committed file is stale.
    cargo xtask new NAME --server | --program | --c
        Start a new server (servers/NAME), Rust program (examples/NAME) or
        C program (examples/NAME-c): the code, its workspace membership, a
        module in default.toml and bench-boot.toml, and a self-test image
        tools/images/selftest-NAME.toml, so `cargo xtask test` covers it at
        once. NAME is [a-z][a-z0-9-]*, at most 24 characters, and not taken.
    cargo xtask help
        Show this text.

Images are described by tools/images/NAME.toml (default: `default`).
C programs (examples/NAME/*.c, no Cargo.toml) are built with gcc against
mh.h as binary NAME, see docs/c.md. Missing pieces are installed on first
use: the rustup target x86_64-unknown-none, and QEMU, gcc or gdb through
apt-get when run as root.

Exit status: 0 on success. `run` reports how the image ended: 0 clean
power-off, 1 init failed (or any other failure), 2 kernel panic. `test`
exits 0 only when nothing failed. `bench` exits 0 when the image ended
cleanly and no benchmark failed (a figure that misses its goal is not a
failure).
See docs/getting-started.md, docs/debugging.md, docs/c.md and
docs/benchmarks.md.";

/// Prints a progress line.
pub fn progress(message: &str) {
    println!("[xtask] {message}");
}

/// The arguments after the subcommand name: options before `--`, and
/// everything after it (passed through to QEMU by `run`).
pub struct Args {
    command: &'static str,
    options: Vec<String>,
    extra: Option<Vec<String>>,
}

impl Args {
    fn new(command: &'static str, args: Vec<String>) -> Args {
        let mut options = args;
        let extra = options
            .iter()
            .position(|a| a == "--")
            .map(|i| options.split_off(i).split_off(1));
        Args {
            command,
            options,
            extra,
        }
    }

    /// Takes `NAME value` or `NAME=value` out of the options.
    pub fn option(&mut self, name: &str) -> Result<Option<String>> {
        let Some(i) = self
            .options
            .iter()
            .position(|a| a == name || a.starts_with(&format!("{name}=")))
        else {
            return Ok(None);
        };
        let arg = self.options.remove(i);
        let value = match arg.split_once('=') {
            Some((_, value)) => value.to_string(),
            None => {
                if i >= self.options.len() || self.options[i].starts_with("--") {
                    bail!("{name} needs a value (see `cargo xtask help`)");
                }
                self.options.remove(i)
            }
        };
        if value.is_empty() {
            bail!("{name} needs a value (see `cargo xtask help`)");
        }
        if self
            .options
            .iter()
            .any(|a| a == name || a.starts_with(&format!("{name}=")))
        {
            bail!("{name} given more than once");
        }
        Ok(Some(value))
    }

    /// Takes a boolean flag (`--check`) out of the options; true if given.
    pub fn flag(&mut self, name: &str) -> bool {
        let before = self.options.len();
        self.options.retain(|a| a != name);
        self.options.len() != before
    }

    /// Takes the first argument that is not an option (`new NAME`).
    pub fn positional(&mut self) -> Option<String> {
        let i = self.options.iter().position(|a| !a.starts_with('-'))?;
        Some(self.options.remove(i))
    }

    /// `--image NAME`, or the default image.
    pub fn image(&mut self) -> Result<String> {
        Ok(self
            .option("--image")?
            .unwrap_or_else(|| "default".to_string()))
    }

    /// `--smp N`: boot on N CPUs instead of the manifest's `cpus`.
    pub fn smp(&mut self) -> Result<Option<u32>> {
        let Some(value) = self.option("--smp")? else {
            return Ok(None);
        };
        let Ok(n) = value.parse::<i64>() else {
            bail!(
                "--smp: '{value}' is not a CPU count: a whole number from 1 to {}",
                manifest::MAX_CPUS
            );
        };
        match manifest::check_cpus(n) {
            Ok(n) => Ok(Some(n)),
            Err(why) => bail!("--smp: {why}"),
        }
    }

    /// The arguments after `--`.
    pub fn take_extra(&mut self) -> Vec<String> {
        self.extra.take().unwrap_or_default()
    }

    /// Fails on anything the subcommand did not take.
    pub fn finish(self) -> Result<()> {
        if let Some(arg) = self.options.first() {
            bail!(
                "unexpected argument '{arg}' for `cargo xtask {}` (see `cargo xtask help`)",
                self.command
            );
        }
        if self.extra.is_some() {
            bail!(
                "`cargo xtask {}` takes no arguments after `--` (only `run` passes them to QEMU)",
                self.command
            );
        }
        Ok(())
    }
}

fn dispatch(mut argv: Vec<String>) -> Result<i32> {
    if argv.is_empty() {
        println!("{USAGE}");
        return Ok(0);
    }
    let command = argv.remove(0);
    match command.as_str() {
        "build" => build::command(Args::new("build", argv)),
        "run" => run::command(Args::new("run", argv)),
        "test" => suite::command(Args::new("test", argv)),
        "bench" => bench::command(Args::new("bench", argv)),
        "gdb" => gdb::command(Args::new("gdb", argv)),
        "header" => header::command(Args::new("header", argv)),
        "new" => new::command(Args::new("new", argv)),
        "help" | "--help" | "-h" => {
            println!("{USAGE}");
            Ok(0)
        }
        other => {
            eprintln!("error: unknown subcommand '{other}'\n");
            eprintln!("{USAGE}");
            Ok(1)
        }
    }
}

fn main() {
    let argv: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let code = match dispatch(argv) {
        Ok(code) => code,
        Err(failure) => {
            eprintln!("error: {failure}");
            failure.code
        }
    };
    std::process::exit(code);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Args {
        Args::new("t", list.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn options_in_both_spellings() {
        let mut a = args(&["--image", "test"]);
        assert_eq!(a.image().unwrap(), "test");
        assert!(a.finish().is_ok());
        let mut b = args(&["--image=test", "--program", "init"]);
        assert_eq!(b.image().unwrap(), "test");
        assert_eq!(b.option("--program").unwrap().as_deref(), Some("init"));
        assert!(b.finish().is_ok());
        assert_eq!(args(&[]).image().unwrap(), "default");
    }

    #[test]
    fn bad_options_are_errors() {
        assert!(args(&["--image"]).image().is_err());
        assert!(args(&["--image", "--program"]).image().is_err());
        assert!(args(&["--image=a", "--image=b"]).image().is_err());
        let mut extra = args(&["--bogus"]);
        assert!(extra.image().is_ok());
        assert!(extra.finish().unwrap_err().message.contains("--bogus"));
    }

    #[test]
    fn flags() {
        let mut a = args(&["--check"]);
        assert!(a.flag("--check"));
        assert!(a.finish().is_ok());
        let mut b = args(&[]);
        assert!(!b.flag("--check"));
        let mut c = args(&["--check=yes"]);
        assert!(!c.flag("--check"));
        assert!(c.finish().is_err());
    }

    #[test]
    fn smp_is_a_cpu_count() {
        assert_eq!(args(&[]).smp().unwrap(), None);
        assert_eq!(args(&["--smp", "4"]).smp().unwrap(), Some(4));
        assert_eq!(args(&["--smp=16"]).smp().unwrap(), Some(16));
        let zero = args(&["--smp", "0"]).smp().unwrap_err().message;
        assert_eq!(zero, "--smp: 0 is out of range (1 to 16 CPUs)");
        let word = args(&["--smp", "two"]).smp().unwrap_err().message;
        assert!(
            word.starts_with("--smp: 'two' is not a CPU count"),
            "{word}"
        );
    }

    #[test]
    fn extra_args_after_double_dash() {
        let mut a = args(&["--image", "x", "--", "-d", "int", "--image"]);
        assert_eq!(a.image().unwrap(), "x");
        assert_eq!(a.take_extra(), ["-d", "int", "--image"]);
        assert!(a.finish().is_ok());
        let b = args(&["--", "-s"]);
        assert!(b.finish().is_err());
    }
}

//! `cargo xtask gdb`: boot an image halted at the first instruction with
//! QEMU's gdb stub on :1234, and run gdb attached to it with the kernel's
//! symbols (and optionally one user program's). The machine has the
//! manifest's `cpus` (or `--smp N`); QEMU's stub shows each vCPU to gdb as
//! a thread (`info threads`, `thread N`).
//!
//! Rules: the gdb commands are written to target/mh/gdbinit so they can be
//! reused by hand (`gdb -x target/mh/gdbinit`). QEMU runs in its own process
//! group and xtask ignores SIGINT while gdb runs, so the Ctrl-C that
//! interrupts the guest in gdb kills neither; QEMU is killed when gdb exits.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use crate::error::{Failure, Result, bail, io_failure, spawn_failure};
use crate::qemu::{self, Serial};
use crate::{Args, build, paths, prereq, progress};

/// QEMU's default gdb stub port (`-s`).
const GDB_PORT: u16 = 1234;

/// `cargo xtask gdb [--image NAME] [--smp N] [--program BINARY]`.
pub fn command(mut args: Args) -> Result<i32> {
    let name = args.image()?;
    let smp = args.smp()?;
    let program = args.option("--program")?;
    args.finish()?;
    prereq::rust_target()?;
    prereq::host_tool(prereq::QEMU)?;
    prereq::host_tool(prereq::GDB)?;
    if port_listening(GDB_PORT) {
        bail!("port {GDB_PORT} is already in use (another `cargo xtask gdb` or QEMU with -s?)");
    }
    let mut image = build::image(&name)?;
    if let Some(cpus) = smp {
        image.manifest.cpus = cpus;
    }
    let cpus = image.manifest.cpus;

    // User programs are all linked at 0x400000, so only one program's
    // symbols can be loaded without clashing.
    let program_path = match &program {
        None => None,
        Some(p) => Some(user_program(p)?),
    };
    let gdbinit = paths::mh_dir().join("gdbinit");
    fs::write(
        &gdbinit,
        gdbinit_text(&image.kernel, program_path.as_deref()),
    )
    .map_err(|e| io_failure("cannot write", &gdbinit, &e))?;

    let serial_log = paths::mh_dir().join("gdb-serial.log");
    progress(&format!(
        "starting QEMU halted on {}, gdb stub on :{GDB_PORT}; the guest's serial output goes to {}",
        crate::run::cpus_phrase(cpus),
        paths::display(&serial_log)
    ));
    let extra = ["-s".to_string(), "-S".to_string()];
    let mut qemu =
        qemu::spawn_background(qemu::command(&image, &Serial::File(serial_log), &extra)?)?;
    if let Err(e) = wait_for_stub(&mut qemu) {
        let _ = qemu.kill();
        let _ = qemu.wait();
        return Err(e);
    }

    println!(
        "[xtask] gdb is attached and the guest is halted before its first instruction.\n\
         [xtask]   hbreak <function>   break early (a hardware breakpoint works before paging is set up)\n\
         [xtask]   continue            boot; Ctrl-C interrupts the guest\n\
         [xtask]   quit                leave gdb; xtask then stops QEMU\n\
         [xtask] commands in {}; --program NAME adds a user program's symbols",
        paths::display(&gdbinit)
    );
    if cpus > 1 {
        println!(
            "[xtask] each of the {cpus} CPUs is a gdb thread: `info threads` lists them, \
             `thread N` switches to CPU N-1 (docs/debugging.md)"
        );
    }
    let gdb = Command::new(prereq::GDB.program)
        .arg("-x")
        .arg("target/mh/gdbinit")
        .current_dir(paths::root())
        .spawn();
    let result = match gdb {
        Ok(mut gdb) => {
            ignore_sigint();
            gdb.wait()
                .map_err(|e| Failure::new(format!("waiting for gdb failed: {e}")))
        }
        Err(e) => Err(spawn_failure(prereq::GDB.program, &e)),
    };
    // QEMU may already be gone (the guest powered off): ignore that error.
    let _ = qemu.kill();
    let _ = qemu.wait();
    let status = result?;
    Ok(if status.success() { 0 } else { 1 })
}

/// The gdb commands, for the image's `kernel` (the release or the checked
/// build). Paths are relative to the workspace root, where gdb runs, so
/// the file stays valid if the checkout moves.
fn gdbinit_text(kernel: &Path, program: Option<&Path>) -> String {
    let mut text = String::from("# Written by `cargo xtask gdb`; run from the workspace root.\n");
    // QEMU's x86_64 stub always sends 64-bit registers, even while the CPU
    // is still in real or protected mode; gdb must not guess i386 from it.
    text.push_str("set architecture i386:x86-64\n");
    text.push_str(&format!("file {}\n", paths::display(kernel)));
    if let Some(program) = program {
        text.push_str(&format!("add-symbol-file {}\n", paths::display(program)));
    }
    // `count-path`: instruction counts of one CPU (docs/debugging.md).
    text.push_str("source tools/gdb/count_path.py\n");
    text.push_str(&format!("target remote :{GDB_PORT}\n"));
    text
}

/// A user program by binary name (or path to an ELF).
fn user_program(name: &str) -> Result<std::path::PathBuf> {
    let built = paths::guest_binary(name);
    if built.is_file() {
        return Ok(built);
    }
    let given = Path::new(name);
    if given.is_file() {
        return Ok(given.canonicalize().unwrap_or_else(|_| given.to_path_buf()));
    }
    bail!(
        "--program {name}: no binary {} (is there a crate with [[bin]] name = \"{name}\"?)",
        paths::display(&built)
    )
}

/// Waits until QEMU listens on the gdb port, without connecting to it: the
/// stub serves one client at a time and treats every connection as a
/// debugger attaching, so a probe connection could only disturb it.
fn wait_for_stub(qemu: &mut std::process::Child) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(Some(status)) = qemu.try_wait() {
            bail!("QEMU exited before gdb could attach ({status}); see its message above");
        }
        if port_listening(GDB_PORT) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("QEMU did not open its gdb stub on :{GDB_PORT} within 10 s");
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// Whether some socket listens on TCP `port`, from /proc/net/tcp{,6}
/// (xtask targets Linux hosts, like the rest of the tooling).
fn port_listening(port: u16) -> bool {
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .any(|file| fs::read_to_string(file).is_ok_and(|text| listens_on(&text, port)))
}

/// Parses /proc/net/tcp text: local address "IP:PORT" in hex, state 0A is
/// LISTEN.
fn listens_on(proc_net_tcp: &str, port: u16) -> bool {
    let wanted = format!("{port:04X}");
    proc_net_tcp.lines().skip(1).any(|line| {
        let mut fields = line.split_whitespace();
        let local = fields.nth(1);
        let state = fields.nth(1);
        state == Some("0A") && local.and_then(|l| l.rsplit(':').next()) == Some(wanted.as_str())
    })
}

/// Makes xtask ignore SIGINT from here on: the terminal sends Ctrl-C to the
/// whole foreground process group, and xtask must outlive it to stop QEMU
/// after gdb exits. Called after gdb is spawned, so gdb starts with the
/// default disposition.
fn ignore_sigint() {
    const SIGINT: i32 = 2;
    const SIG_IGN: usize = 1;
    unsafe extern "C" {
        // From the C library std already links; declared here to avoid a
        // libc dependency for one call.
        fn signal(signum: i32, handler: usize) -> usize;
    }
    // SAFETY: setting SIGINT's disposition to SIG_IGN installs no Rust code
    // as a handler and has no memory-safety requirements.
    unsafe {
        signal(SIGINT, SIG_IGN);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_net_tcp_listen_detection() {
        let text = "  sl  local_address rem_address   st tx_queue rx_queue\n   \
             0: 00000000:04D2 00000000:0000 0A 00000000:00000000 00:00000000 00000000  0 0 1 1\n   \
             1: 0100007F:1F90 0100007F:04D2 01 00000000:00000000 00:00000000 00000000  0 0 2 1\n";
        assert!(listens_on(text, 1234));
        assert!(!listens_on(text, 8080));
    }

    #[test]
    fn gdbinit_names_kernel_and_program() {
        let text = gdbinit_text(&paths::guest_binary(paths::KERNEL_BINARY), None);
        assert!(text.contains("file target/x86_64-unknown-none/release/kernel\n"));
        assert!(text.contains("source tools/gdb/count_path.py\n"));
        assert!(text.ends_with("target remote :1234\n"));
        assert!(!text.contains("add-symbol-file"));
        let checked = gdbinit_text(&paths::checked_kernel(), None);
        assert!(checked.contains("file target/checked/x86_64-unknown-none/release/kernel\n"));
        let kernel = paths::guest_binary(paths::KERNEL_BINARY);
        let with = gdbinit_text(&kernel, Some(&paths::guest_binary("init")));
        assert!(with.contains("add-symbol-file target/x86_64-unknown-none/release/init\n"));
    }
}

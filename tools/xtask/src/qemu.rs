//! Launching QEMU: the one place that knows the machine's command line, the
//! three ways xtask runs it (foreground, headless with a time limit, in the
//! background for gdb) and what its exit status means.
//!
//! Rules: every boot goes through `command`, so `run`, `test`, `gdb` and
//! `bench` (which only adds `-icount …` as extra arguments) boot the same
//! machine, disks included: `command` makes the disks' image files for each
//! boot (see `disk_image`), and the printed command line shows them. PCI
//! devices follow the machine's arguments, so on q35 the I/O MMU comes
//! before every other PCI device: devices are to be set up behind it, and
//! QEMU 7.2 does not refuse another order, so the order is kept here (and
//! tested). Always TCG: user mode is broken under this host's KVM. An image
//! with several CPUs (`cpus`) gets multi-threaded TCG, one host thread per
//! vCPU, except under `-icount` (see `accel`). The kernel ends a run by writing a byte v to the isa-debug-exit port and QEMU
//! exits with (v << 1) | 1 (abi::power); with -no-reboot a triple fault
//! exits 0, which is never a success.

use std::fs::File;
use std::io::{BufRead, BufReader, LineWriter, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use abi::power::{DEBUG_EXIT_PORT, EXIT_CLEAN, EXIT_INIT_FAILED, EXIT_KERNEL_PANIC, qemu_status};

use crate::disk_image::{self, DiskFile};
use crate::error::{Failure, Result, io_failure, spawn_failure};
use crate::image::Image;
use crate::manifest::Input;
use crate::paths;
use crate::prereq::QEMU;
use crate::progress;

/// Where the guest's first serial port goes.
#[derive(Debug)]
pub enum Serial {
    /// This terminal, multiplexed with the QEMU monitor (Ctrl-A X quits).
    MonitorStdio,
    /// Plain stdin/stdout (not a terminal, or captured by xtask).
    Stdio,
    /// A file (absolute path: QEMU runs in the image directory).
    File(std::path::PathBuf),
}

impl Serial {
    fn arg(&self) -> String {
        match self {
            Serial::MonitorStdio => "mon:stdio".to_string(),
            Serial::Stdio => "stdio".to_string(),
            Serial::File(path) => format!("file:{}", path.display()),
        }
    }
}

/// The QEMU command that boots `image`, with its disks' image files made
/// for this boot; `extra` is appended last so callers can add debugging or
/// measuring options.
pub fn command(image: &Image, serial: &Serial, extra: &[String]) -> Result<Command> {
    let disk_files = disk_image::prepare(&image.manifest)?;
    let hosts = host_ports(&image.manifest.nics)?;
    for (nic, ports) in image.manifest.nics.iter().zip(&hosts) {
        for (f, host) in nic.forwards.iter().zip(ports) {
            let url = if f.guest == 80 {
                format!(" (http://127.0.0.1:{host}/)")
            } else {
                String::new()
            };
            crate::progress(&format!(
                "{}: the guest's TCP port {} is 127.0.0.1:{host} on this host{url}",
                nic.id, f.guest
            ));
        }
    }
    Ok(command_with_disks(
        image,
        &disk_files,
        &hosts,
        serial,
        extra,
    ))
}

/// The host port of every forward of every interface: the manifest's, or
/// a free one on 127.0.0.1 (the port the kernel gives a listener on port
/// 0, closed again at once; QEMU binds it a moment later).
fn host_ports(nics: &[crate::manifest::Nic]) -> Result<Vec<Vec<u16>>> {
    nics.iter()
        .map(|nic| {
            nic.forwards
                .iter()
                .map(|f| match f.host {
                    Some(port) => Ok(port),
                    None => std::net::TcpListener::bind(("127.0.0.1", 0))
                        .and_then(|l| l.local_addr())
                        .map(|a| a.port())
                        .map_err(|e| {
                            crate::error::Failure::new(format!(
                                "no free TCP port on 127.0.0.1 for {}'s forward of port {}: {e}",
                                nic.id, f.guest
                            ))
                        }),
                })
                .collect()
        })
        .collect()
}

/// `command` once the disks' files are made and the forwards' host ports
/// chosen: `disk_files` has one file per disk of the manifest, in order,
/// `hosts` the ports of each interface's forwards.
fn command_with_disks(
    image: &Image,
    disk_files: &[DiskFile],
    hosts: &[Vec<u16>],
    serial: &Serial,
    extra: &[String],
) -> Command {
    let m = &image.manifest;
    let mut cmd = Command::new(QEMU.program);
    cmd.current_dir(&image.dir)
        .args(["-accel", accel(m.cpus, extra)])
        .args(m.machine.qemu_args())
        .args(["-cpu", "max", "-smp"])
        .arg(m.cpus.to_string());
    for model in &m.pci {
        cmd.arg("-device")
            .arg(crate::manifest::pci_device_arg(model));
    }
    for (disk, file) in m.disks.iter().zip(disk_files) {
        cmd.args(disk.qemu_args(&file.path));
    }
    // No network device unless the manifest asks for one: QEMU would add
    // its default (an e1000 on its user network) to every machine.
    cmd.args(["-nic", "none"]);
    for (i, (nic, ports)) in m.nics.iter().zip(hosts).enumerate() {
        cmd.args(nic.qemu_args(i, ports));
    }
    cmd.arg("-m")
        .arg(format!("{}M", m.memory_mib))
        .args(["-display", "none", "-no-reboot", "-device"])
        .arg(format!(
            "isa-debug-exit,iobase={DEBUG_EXIT_PORT:#x},iosize=0x04"
        ))
        .arg("-serial")
        .arg(serial.arg())
        .arg("-kernel")
        .arg(&image.kernel)
        .arg("-initrd")
        .arg(m.initrd());
    if let Some(kernel_args) = &m.kernel_args {
        cmd.arg("-append").arg(kernel_args);
    }
    cmd.args(with_absolute_log(extra));
    cmd
}

/// QEMU's `-accel` value for a machine of `cpus` CPUs booted with `extra`.
/// Several CPUs get multi-threaded TCG (MTTCG: a host thread per vCPU), so
/// they really run at once and races between them can show. QEMU refuses
/// MTTCG under `-icount` (counting instructions needs one fixed order of
/// execution; `cargo xtask bench` passes it in `extra`), so there the vCPUs
/// take turns on one thread, as plain `tcg` does for one CPU.
fn accel(cpus: u32, extra: &[String]) -> &'static str {
    let icount = extra.iter().any(|a| a == "-icount" || a == "--icount");
    if cpus > 1 && !icount {
        "tcg,thread=multi"
    } else {
        "tcg"
    }
}

/// `extra` with a relative `-D <file>` made absolute against xtask's own
/// working directory. QEMU runs in the image directory (see `image`), so
/// `-D target/mh/qemu.log` typed at the workspace root would otherwise land
/// inside that directory, which the next build wipes. Only `-D` is
/// rewritten: it is the path option the docs suggest; others are left as
/// given (relative to the image directory).
fn with_absolute_log(extra: &[String]) -> Vec<String> {
    let cwd = std::env::current_dir().ok();
    let mut out = Vec::with_capacity(extra.len());
    let mut after_d = false;
    for arg in extra {
        let path = Path::new(arg);
        match &cwd {
            Some(cwd) if after_d && path.is_relative() => {
                out.push(cwd.join(path).to_string_lossy().into_owned())
            }
            _ => out.push(arg.clone()),
        }
        after_d = arg == "-D";
    }
    out
}

/// Prints the command so it can be rerun (or tweaked) by hand.
pub fn show(cmd: &Command) {
    let mut line = format!(
        "cd {} &&",
        quote(&paths::display(
            cmd.get_current_dir().unwrap_or(Path::new(".")),
        ))
    );
    for part in std::iter::once(cmd.get_program()).chain(cmd.get_args()) {
        line.push(' ');
        line.push_str(&quote(&part.to_string_lossy()));
    }
    progress(&line);
}

/// Shell-quotes a word only when it needs it, to keep the line readable.
fn quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_=.,:/+@".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// How a QEMU run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The kernel wrote EXIT_CLEAN: init exited with status 0.
    Clean,
    /// The kernel wrote EXIT_INIT_FAILED.
    InitFailed,
    /// The kernel wrote EXIT_KERNEL_PANIC.
    KernelPanic,
    /// Status 0: a reset or triple fault (or the user quit the monitor).
    Reset,
    /// Any other status: QEMU itself failed (bad option, missing file…).
    Status(i32),
    /// QEMU was killed by a signal.
    Signal(i32),
    /// xtask killed QEMU at the time limit (seconds).
    TimedOut(u64),
}

impl Outcome {
    pub fn from_status(status: ExitStatus) -> Outcome {
        match status.code() {
            Some(code) => Outcome::from_code(code),
            None => Outcome::Signal(status.signal().unwrap_or(0)),
        }
    }

    pub fn from_code(code: i32) -> Outcome {
        match code {
            0 => Outcome::Reset,
            c if c == qemu_status(EXIT_CLEAN) => Outcome::Clean,
            c if c == qemu_status(EXIT_INIT_FAILED) => Outcome::InitFailed,
            c if c == qemu_status(EXIT_KERNEL_PANIC) => Outcome::KernelPanic,
            c => Outcome::Status(c),
        }
    }

    pub fn is_clean(self) -> bool {
        self == Outcome::Clean
    }

    /// What happened, in one phrase.
    pub fn describe(self) -> String {
        match self {
            Outcome::Clean => "the image ended cleanly".to_string(),
            Outcome::InitFailed => "init exited with a failure status".to_string(),
            Outcome::KernelPanic => "kernel panic".to_string(),
            Outcome::Reset => {
                "QEMU reset or triple fault (status 0) — the guest never powered off".to_string()
            }
            Outcome::Status(n) => format!("QEMU failed with status {n}"),
            Outcome::Signal(s) => format!("QEMU was killed by signal {s}"),
            Outcome::TimedOut(secs) => format!("timed out after {secs} s"),
        }
    }

    /// xtask's exit status for a run that ended this way.
    pub fn exit_code(self) -> i32 {
        match self {
            Outcome::Clean => 0,
            Outcome::KernelPanic => 2,
            _ => 1,
        }
    }
}

/// Runs QEMU with this terminal's stdio and waits for it.
pub fn run_foreground(mut cmd: Command) -> Result<Outcome> {
    show(&cmd);
    let status = cmd.status().map_err(|e| spawn_failure(QEMU.program, &e))?;
    Ok(Outcome::from_status(status))
}

/// Starts QEMU in the background for a debugger: stdin closed, and in its
/// own process group so the Ctrl-C that interrupts gdb does not kill it.
pub fn spawn_background(mut cmd: Command) -> Result<Child> {
    show(&cmd);
    cmd.stdin(Stdio::null()).process_group(0);
    cmd.spawn().map_err(|e| spawn_failure(QEMU.program, &e))
}

/// Which of QEMU's output streams a captured line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// The guest's serial port (QEMU's stdout under `Serial::Stdio`).
    Serial,
    /// QEMU's own messages (stderr).
    Qemu,
}

/// The result of a headless run: how it ended and every serial line.
#[derive(Debug)]
pub struct Headless {
    pub outcome: Outcome,
    pub serial: Vec<String>,
    /// What the input stages' host checks found wrong (`Input::host`).
    pub host_failures: Vec<String>,
}

/// Runs `cmd` (built with `Serial::Stdio`) with stdin closed and its output
/// captured line by line; each line goes to `log` (QEMU's own messages
/// prefixed with "[qemu] ") and to `on_line` as it arrives. Kills QEMU when
/// `timeout` passes.
pub fn run_headless(
    cmd: Command,
    timeout: Duration,
    log: &Path,
    on_line: impl FnMut(Stream, &str),
) -> Result<Headless> {
    run_headless_typing(cmd, timeout, log, &[], on_line)
}

/// `run_headless`, and types `input` into the guest's serial line (QEMU's
/// stdin) in stages: each stage's bytes once a serial line contains its
/// `after`, the stages in order.
pub fn run_headless_typing(
    mut cmd: Command,
    timeout: Duration,
    log: &Path,
    input: &[Input],
    mut on_line: impl FnMut(Stream, &str),
) -> Result<Headless> {
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir).map_err(|e| io_failure("cannot create", dir, &e))?;
    }
    let file = File::create(log).map_err(|e| io_failure("cannot create", log, &e))?;
    // Line-buffered, so the log is complete up to the last line even if
    // xtask itself is interrupted.
    let mut log_writer = LineWriter::new(file);

    show(&cmd);
    let args: Vec<String> = cmd
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let mut host_failures = Vec::new();
    cmd.stdin(if !input.is_empty() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| spawn_failure(QEMU.program, &e))?;
    // Held (open) until QEMU ends: closing it early is harmless too, but a
    // guest reading slowly should find its input waiting, not an EOF.
    let mut stdin = child.stdin.take();
    let mut stages = input.iter();
    let mut next_stage = stages.next();

    // One reader thread per pipe, both feeding one channel, so the main
    // thread can wait for lines and the deadline at once.
    let (tx, rx) = mpsc::channel::<(Stream, String)>();
    if let Some(out) = child.stdout.take() {
        spawn_reader(out, Stream::Serial, tx.clone());
    }
    if let Some(err) = child.stderr.take() {
        spawn_reader(err, Stream::Qemu, tx.clone());
    }
    drop(tx);

    let limit = timeout.as_secs();
    let deadline = Instant::now() + timeout;
    let mut serial = Vec::new();
    let mut timed_out = false;
    let mut handle = |stream: Stream, line: String| {
        let logged = match stream {
            Stream::Serial => writeln!(log_writer, "{line}"),
            Stream::Qemu => writeln!(log_writer, "[qemu] {line}"),
        };
        // A full disk should not abort the run; the console still has it.
        let _ = logged;
        on_line(stream, &line);
        if stream == Stream::Serial {
            if let (Some(stage), Some(pipe)) = (next_stage, stdin.as_mut())
                && line.contains(&stage.after)
            {
                next_stage = stages.next();
                if let Some(check) = stage.host
                    && let Err(why) = host_check(check, &args)
                {
                    host_failures.push(why);
                }
                // A failed write shows up as the guest missing its input.
                let _ = pipe.write_all(&stage.bytes).and_then(|()| pipe.flush());
            }
            serial.push(line);
        }
    };
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((stream, line)) => handle(stream, line),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                timed_out = true;
                // Ignore the error: QEMU may have exited just now.
                let _ = child.kill();
                // The readers see end-of-file once QEMU is gone; keep what
                // it printed last.
                for (stream, line) in rx.iter() {
                    handle(stream, line);
                }
                break;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    let status = child
        .wait()
        .map_err(|e| Failure::new(format!("waiting for QEMU failed: {e}")))?;
    let outcome = if timed_out {
        Outcome::TimedOut(limit)
    } else {
        Outcome::from_status(status)
    };
    Ok(Headless {
        outcome,
        serial,
        host_failures,
    })
}

/// Runs a stage's host check against the machine `args` boots (the
/// guest's serial output waits in the readers' channel meanwhile).
fn host_check(
    check: crate::manifest::HostCheck,
    args: &[String],
) -> std::result::Result<(), String> {
    match check {
        crate::manifest::HostCheck::Http => {
            let port = crate::nettest::http_port(args)
                .ok_or("the machine forwards no host port to the guest's port 80")?;
            crate::nettest::http(port).map_err(|e| format!("HTTP from the host: {e}"))
        }
    }
}

fn spawn_reader(
    pipe: impl Read + Send + 'static,
    stream: Stream,
    tx: mpsc::Sender<(Stream, String)>,
) {
    thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if tx.send((stream, clean_line(&buf))).is_err() {
                        break;
                    }
                }
            }
        }
    });
}

/// A serial line as text: invalid UTF-8 replaced (a crashing guest may print
/// garbage) and the line ending, "\n" or "\r\n", removed.
fn clean_line(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    text.trim_end_matches(['\n', '\r']).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_mapping_follows_abi() {
        assert_eq!(Outcome::from_code(33), Outcome::Clean);
        assert_eq!(Outcome::from_code(35), Outcome::InitFailed);
        assert_eq!(Outcome::from_code(37), Outcome::KernelPanic);
        assert_eq!(Outcome::from_code(0), Outcome::Reset);
        assert_eq!(Outcome::from_code(1), Outcome::Status(1));
        assert_eq!(Outcome::Clean.exit_code(), 0);
        assert_eq!(Outcome::InitFailed.exit_code(), 1);
        assert_eq!(Outcome::KernelPanic.exit_code(), 2);
        assert_eq!(Outcome::Reset.exit_code(), 1);
        assert_eq!(Outcome::TimedOut(5).exit_code(), 1);
        assert!(
            Outcome::Reset
                .describe()
                .contains("triple fault (status 0)")
        );
        assert_eq!(Outcome::Status(1).describe(), "QEMU failed with status 1");
        assert_eq!(Outcome::TimedOut(120).describe(), "timed out after 120 s");
    }

    #[test]
    fn lines_lose_their_endings_only() {
        assert_eq!(clean_line(b"abc\r\n"), "abc");
        assert_eq!(clean_line(b"  x \n"), "  x ");
        assert_eq!(clean_line(b"\xffok"), "\u{fffd}ok");
    }

    #[test]
    fn only_the_log_file_is_made_absolute() {
        let cwd = std::env::current_dir().unwrap();
        let extra: Vec<String> = ["-d", "int", "-D", "target/mh/qemu.log", "-s"]
            .map(String::from)
            .to_vec();
        let out = with_absolute_log(&extra);
        assert_eq!(out[..3], extra[..3]);
        assert_eq!(Path::new(&out[3]), cwd.join("target/mh/qemu.log"));
        assert_eq!(out[4], "-s");
        let absolute = ["-D".to_string(), "/tmp/q.log".to_string()];
        assert_eq!(with_absolute_log(&absolute), absolute);
    }

    /// The arguments of the command that boots a made-up image on
    /// `machine` with the edu device and two disks.
    fn args_on(machine: &str) -> Vec<String> {
        let text = format!(
            "[image]\ndescription = \"d\"\nmachine = \"{machine}\"\npci = [\"edu\"]\n\
             [[module]]\nbinary = \"init\"\n\
             [[disk]]\nsize = 65536\n[[disk]]\nname = \"data\"\nsize = 65536\npersist = true\n"
        );
        let manifest = crate::manifest::parse("t", Path::new("t.toml"), &text).unwrap();
        let disk_files = ["disk0", "data"].map(|name| DiskFile {
            path: format!("/disks/{name}.img").into(),
            origin: disk_image::Origin::Fresh,
        });
        let image = Image {
            manifest,
            kernel: "/image/kernel".into(),
            dir: "/image".into(),
        };
        let cmd = command_with_disks(&image, &disk_files, &[], &Serial::Stdio, &[]);
        cmd.get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    const DISK_ARGS: [&str; 8] = [
        "-drive",
        "file=/disks/disk0.img,if=none,id=disk0,format=raw",
        "-device",
        "virtio-blk-pci,drive=disk0,serial=disk0,disable-legacy=on,iommu_platform=on",
        "-drive",
        "file=/disks/data.img,if=none,id=data,format=raw",
        "-device",
        "virtio-blk-pci,drive=data,serial=data,disable-legacy=on,iommu_platform=on",
    ];

    /// Where `args` holds `part` as a run of arguments.
    fn position(args: &[String], part: &[&str]) -> Option<usize> {
        args.windows(part.len()).position(|w| w == part)
    }

    #[test]
    fn on_q35_the_disks_come_after_the_iommu_and_the_pci_devices() {
        let args = args_on("q35");
        let iommu = position(&args, &["-device", "intel-iommu,intremap=on"]).expect("an I/O MMU");
        let edu =
            position(&args, &["-device", crate::manifest::pci_device_arg("edu")]).expect("edu");
        let disks = position(&args, &DISK_ARGS).expect("both disks, in order");
        assert!(iommu < edu && edu < disks, "{args:?}");
        // The I/O MMU is the first device of all.
        assert_eq!(args.iter().position(|a| a == "-device"), Some(iommu));
        // Without [[nic]], no network device: not even QEMU's default.
        assert!(position(&args, &["-nic", "none"]).is_some(), "{args:?}");
        assert!(!args.iter().any(|a| a == "-netdev"), "{args:?}");
    }

    #[test]
    fn on_pc_the_disks_are_the_same_devices_without_an_iommu() {
        let args = args_on("pc");
        assert!(!args.iter().any(|a| a.contains("intel-iommu")), "{args:?}");
        let edu =
            position(&args, &["-device", crate::manifest::pci_device_arg("edu")]).expect("edu");
        let disks = position(&args, &DISK_ARGS).expect("both disks, in order");
        assert!(edu < disks, "{args:?}");
    }

    #[test]
    fn several_cpus_get_a_thread_each_except_under_icount() {
        let icount = crate::bench::icount_args();
        assert_eq!(accel(1, &[]), "tcg");
        assert_eq!(accel(1, &icount), "tcg");
        assert_eq!(accel(2, &[]), "tcg,thread=multi");
        assert_eq!(accel(16, &["-s".to_string()]), "tcg,thread=multi");
        assert_eq!(accel(4, &icount), "tcg");
    }

    #[test]
    fn the_manifests_cpus_become_smp_and_accel() {
        let args = |cpus: u32, extra: &[String]| {
            let text = format!(
                "[image]\ndescription = \"d\"\ncpus = {cpus}\n[[module]]\nbinary = \"init\"\n"
            );
            let manifest = crate::manifest::parse("t", Path::new("t.toml"), &text).unwrap();
            let image = Image {
                manifest,
                kernel: "/image/kernel".into(),
                dir: "/image".into(),
            };
            let cmd = command_with_disks(&image, &[], &[], &Serial::Stdio, extra);
            cmd.get_args()
                .map(|a| a.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
        };
        let four = args(4, &[]);
        assert!(position(&four, &["-smp", "4"]).is_some(), "{four:?}");
        assert!(
            position(&four, &["-accel", "tcg,thread=multi"]).is_some(),
            "{four:?}"
        );
        let one = args(1, &[]);
        assert!(position(&one, &["-smp", "1"]).is_some(), "{one:?}");
        assert!(position(&one, &["-accel", "tcg"]).is_some(), "{one:?}");
        let counted = args(4, &crate::bench::icount_args());
        assert!(position(&counted, &["-smp", "4"]).is_some(), "{counted:?}");
        assert!(
            position(&counted, &["-accel", "tcg"]).is_some(),
            "{counted:?}"
        );
    }

    #[test]
    fn quoting_only_when_needed() {
        assert_eq!(quote("-m"), "-m");
        assert_eq!(
            quote("isa-debug-exit,iobase=0xf4"),
            "isa-debug-exit,iobase=0xf4"
        );
        assert_eq!(quote("a b,c"), "'a b,c'");
        assert_eq!(quote("it's"), r"'it'\''s'");
    }
}

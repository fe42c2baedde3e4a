//! Name scopes (`restrict_names`, the manifest's `devices`): a process
//! attaches and registers only the names its scope lists; scopes only
//! narrow, pass to forked children and survive exec; malformed lists are
//! refused without changing anything; and a boot module's `devices` list
//! is applied by spawn before its program runs.
//!
//! The probe role (`mhtest scope-probe name=ok|denied|missing …`) is a
//! boot module of the test image (twice: with a `devices` list and
//! without), started with the expectations as its arguments; it exits 0
//! when every attach came out as expected, else 10 + the failing index.

use crate::suite::{Fail, Suite};
use crate::util::{free_frames, in_child};
use crate::{ensure, ensure_eq};
use abi::bus::{NAME_LIST_MAX, NAME_SCOPE_MAX};
use abi::{Error, ExitKind, Sysno};
use libmh::bootfs::Bootfs;
use libmh::dev::{self, REGISTRY};
use libmh::raw::syscall3;
use libmh::{Args, process};

fn fail(e: Error) -> Fail {
    Fail::new(format_args!("{e}"))
}

/// Attaches `name` for reading and lets the handle go again.
fn attach(name: &str) -> Result<(), Error> {
    dev::attach(REGISTRY, name, dev::RIGHT_READ).and_then(|h| h.detach())
}

/// 0 if every check holds, else the 1-based index of the first that fails
/// (the checks run in order, side effects included).
fn first_failure(checks: &[bool]) -> i32 {
    checks.iter().position(|ok| !ok).map_or(0, |i| i as i32 + 1)
}

/// `restrict_names` with raw arguments.
fn restrict_raw(list: u64, len: u64) -> Result<usize, Error> {
    // SAFETY: the kernel checks the pointer; a bad one is BadAddress.
    Error::decode(unsafe { syscall3(Sysno::RestrictNames as u64, list, len, 0) })
}

/// Runs the child `f` and expects it to exit with 0.
fn in_child_ok(what: &str, f: impl FnOnce() -> i32) -> Result<(), Fail> {
    let st = in_child(f)?;
    ensure!(
        st.kind == ExitKind::Exited as u32 && st.code == 0,
        "{what}: child ended with kind {} code {} (code n: check n failed)",
        st.kind,
        st.code
    );
    Ok(())
}

/// The index of the scope-probe module, with (`listed`) or without a
/// `devices` list.
fn probe_module(fs: Bootfs, listed: bool) -> Result<u32, Fail> {
    for i in 1..fs.count().map_err(fail)? {
        let mut buf = [0u8; 256];
        let line = fs.cmdline(i, &mut buf).map_err(fail)?;
        if line.starts_with("mhtest ")
            && line.contains("scope-probe")
            && line.contains("@devices=") == listed
        {
            return Ok(i);
        }
    }
    Err(Fail::new(format_args!(
        "no scope-probe module (listed: {listed})"
    )))
}

/// Starts probe module `listed` with `expectations`; its exit status.
fn run_probe(listed: bool, expectations: &str) -> Result<abi::ExitStatus, Fail> {
    let fs = Bootfs::open().map_err(fail)?;
    let index = probe_module(fs, listed)?;
    let mut args = [0u8; 200];
    let head = b"scope-probe ";
    args[..head.len()].copy_from_slice(head);
    args[head.len()..head.len() + expectations.len()].copy_from_slice(expectations.as_bytes());
    let args = core::str::from_utf8(&args[..head.len() + expectations.len()]).unwrap_or("");
    let pid = fs.spawn_with(index, Some(args)).map_err(fail)?;
    let _ = fs.0.detach();
    let st = process::wait_child().map_err(fail)?;
    ensure_eq!(st.pid, pid, "reaped the probe");
    Ok(st)
}

/// The probe role: each argument `name=ok|denied|missing` is an attach
/// and what it must give.
pub fn probe(args: &Args) -> i32 {
    let mut i = 1;
    while let Some(arg) = args.get(i) {
        let (name, want) = arg.split_once('=').unwrap_or((arg, ""));
        let want = match want {
            "ok" => Ok(()),
            "denied" => Err(Error::AccessDenied),
            "missing" => Err(Error::NotFound),
            _ => return 9,
        };
        let got = attach(name);
        if got != want {
            libmh::println!("scope-probe: attach {name}: {got:?}, expected {want:?}");
            return 10 + i as i32;
        }
        i += 1;
    }
    0
}

pub fn run(s: &mut Suite) {
    let frames = free_frames();

    s.run("names_scope_limits_attach_to_its_names", || {
        in_child_ok("scoped attach", || {
            first_failure(&[
                attach("proc") == Ok(()),
                dev::restrict_names(&["klog", "nosuch"]) == Ok(()),
                attach("klog") == Ok(()),
                attach("proc") == Err(Error::AccessDenied),
                attach("bootfs") == Err(Error::AccessDenied),
                attach("registry") == Err(Error::AccessDenied),
                // In scope but not registered: NotFound; out of scope:
                // AccessDenied whether or not the name exists.
                attach("nosuch") == Err(Error::NotFound),
                attach("unlisted") == Err(Error::AccessDenied),
            ])
        })
    });

    s.run("names_scope_never_grows", || {
        in_child_ok("narrowing", || {
            first_failure(&[
                dev::restrict_names(&["klog", "proc"]) == Ok(()),
                // Naming something outside is refused whole ...
                dev::restrict_names(&["klog", "bootfs"]) == Err(Error::AccessDenied),
                // ... and the scope is as it was.
                attach("proc") == Ok(()),
                attach("bootfs") == Err(Error::AccessDenied),
                dev::restrict_names(&["proc"]) == Ok(()),
                attach("klog") == Err(Error::AccessDenied),
                dev::restrict_names(&["klog"]) == Err(Error::AccessDenied),
                // The empty list leaves nothing, for good.
                dev::restrict_names(&[]) == Ok(()),
                attach("proc") == Err(Error::AccessDenied),
                dev::restrict_names(&["proc"]) == Err(Error::AccessDenied),
            ])
        })
    });

    s.run("names_scope_refuses_malformed_lists_unchanged", || {
        in_child_ok("malformed", || {
            let mut many = [0u8; NAME_LIST_MAX];
            let mut len = 0;
            for i in 0..=NAME_SCOPE_MAX {
                many[len] = b'a' + i as u8;
                len += 2; // the name, then a NUL
            }
            let names = |b: &[u8]| restrict_raw(b.as_ptr() as u64, b.len() as u64);
            first_failure(&[
                restrict_raw(0, 8) == Err(Error::BadAddress),
                restrict_raw(0xffff_8000_0000_0000, 8) == Err(Error::BadAddress),
                restrict_raw(0x1000, NAME_LIST_MAX as u64 + 1) == Err(Error::InvalidArgument),
                restrict_raw(0x1000, u64::MAX) == Err(Error::InvalidArgument),
                names(b"klog\0has space") == Err(Error::InvalidArgument),
                names(b"klog\0\x01ctl") == Err(Error::InvalidArgument),
                names(b"\xff\xfe") == Err(Error::InvalidArgument),
                names(&[b'n'; 33]) == Err(Error::InvalidArgument),
                names(&many[..len]) == Err(Error::InvalidArgument),
                // Nothing of the above narrowed anything.
                attach("proc") == Ok(()),
                attach("bootfs") == Ok(()),
                // Sixteen names (and repeats) are fine.
                names(&many[..len - 2]) == Ok(0),
                names(b"a\0a\0\0b\0") == Ok(0),
                attach("proc") == Err(Error::AccessDenied),
            ])
        })
    });

    s.run("names_scope_limits_dev_create", || {
        in_child_ok("scoped dev_create", || {
            let made = |name| dev::create(dev::REGISTRY, name, 1, 8, 20).and_then(|d| d.destroy());
            first_failure(&[
                dev::restrict_names(&["t-names-mine"]) == Ok(()),
                made("t-names-other") == Err(Error::AccessDenied),
                made("t-names-mine") == Ok(()),
            ])
        })
    });

    s.run("names_scope_limits_platform", || {
        in_child_ok("scoped platform", || {
            let rights = dev::RIGHT_READ | dev::RIGHT_WRITE | dev::RIGHT_DMA;
            let Ok(plat) = dev::attach(REGISTRY, "platform", rights) else {
                return 100;
            };
            // A free port (the POST port): only the name stands in the way.
            let mut spec = abi::HwDeviceSpec {
                name_len: 10,
                port_count: 1,
                ..abi::HwDeviceSpec::default()
            };
            spec.name[..10].copy_from_slice(b"t-names-hw");
            spec.ports[0] = abi::hw::HwPortRange { base: 0x80, len: 1 };
            first_failure(&[
                dev::restrict_names(&["platform", "t-names-q"]) == Ok(()),
                dev::create_hardware(plat, &spec) == Err(Error::AccessDenied),
                attach("t-names-hw") == Err(Error::AccessDenied),
                dev::release_quarantine(plat, "t-names-hw") == Err(Error::AccessDenied),
                // In scope, but no such device.
                dev::release_quarantine(plat, "t-names-q") == Err(Error::NotFound),
            ])
        })?;
        // Nothing was registered under the refused name.
        ensure_eq!(attach("t-names-hw"), Err(Error::NotFound));
        Ok(())
    });

    s.run("names_scope_passes_to_forked_children", || {
        in_child_ok("inherited", || {
            if dev::restrict_names(&["klog", "bootfs"]).is_err() {
                return 1;
            }
            match in_child(|| {
                first_failure(&[
                    attach("klog") == Ok(()),
                    attach("proc") == Err(Error::AccessDenied),
                    dev::restrict_names(&["proc"]) == Err(Error::AccessDenied),
                ])
            }) {
                Ok(st) if st.code == 0 => 0,
                Ok(st) => 10 + st.code as i32,
                Err(_) => 2,
            }
        })
    });

    s.run("manifest_devices_scope_a_module", || {
        // The module lists klog and proc: those attach, nothing else does.
        let st = run_probe(
            true,
            "klog=ok proc=ok bootfs=denied registry=denied nosuch=denied",
        )?;
        ensure_eq!((st.kind, st.code), (ExitKind::Exited as u32, 0), "probe");
        // Without a list the probe has the runner's scope: everything.
        let st = run_probe(false, "klog=ok bootfs=ok nosuch=missing")?;
        ensure_eq!(
            (st.kind, st.code),
            (ExitKind::Exited as u32, 0),
            "open probe"
        );
        Ok(())
    });

    s.run("names_scope_survives_exec", || {
        in_child_ok("exec keeps the scope", || {
            if dev::restrict_names(&["bootfs", "klog"]).is_err() {
                return 1;
            }
            // The open probe execs with this process's scope.
            match run_probe(false, "klog=ok bootfs=ok proc=denied") {
                Ok(st) if st.code == 0 => 0,
                Ok(st) => 10 + st.code as i32,
                Err(_) => 2,
            }
        })
    });

    s.run("manifest_devices_cannot_widen_the_spawners_scope", || {
        in_child_ok("spawn under a narrower scope", || {
            if dev::restrict_names(&["bootfs", "klog"]).is_err() {
                return 1;
            }
            // The listed probe wants proc too, which this process lacks:
            // spawn's child gives up before exec (status 126).
            match run_probe(true, "klog=ok") {
                Ok(st) if st.kind == ExitKind::Exited as u32 && st.code == 126 => 0,
                Ok(st) => 10 + st.code as i32,
                Err(_) => 2,
            }
        })
    });

    s.run("names_group_gives_back_every_frame", || {
        ensure_eq!(
            free_frames(),
            frames,
            "free frames after the name-scope tests"
        );
        Ok(())
    });
}

//! Tests of `cargo xtask new`: name rules, the two text edits, and whole
//! plans applied to a scratch copy of the workspace's top-level files.

use std::fs;
use std::path::Path;

use super::*;
use crate::manifest;
use crate::testdir::TestDir;

#[test]
fn names() {
    for ok in ["a", "demo", "my-dev2", "a234567890123456789012-4"] {
        assert_eq!(check_name(ok), Ok(()), "{ok}");
    }
    for bad in [
        "",
        "Demo",
        "2demo",
        "-demo",
        "de_mo",
        "de mo",
        "démo",
        "a2345678901234567890123-5",
    ] {
        assert!(check_name(bad).is_err(), "{bad}");
    }
    assert!(
        check_name("a2345678901234567890123-5")
            .unwrap_err()
            .contains("24")
    );
    assert_eq!(binary(Kind::C, "calc"), "calc-c");
    assert_eq!(binary(Kind::C, "calc-c"), "calc-c");
    assert_eq!(binary(Kind::Server, "calc"), "calc");
}

const CARGO: &str = "[workspace]\nmembers = [\n    \"abi\",\n    \"servers/init\",\n    \"servers/shell\",\n    \"examples/hello\",\n    \"tools/xtask\",\n]\ndefault-members = [\"abi\"]\n";

#[test]
fn members_go_after_their_kind() {
    let s = insert_member(CARGO, "servers/demo").unwrap();
    assert!(
        s.contains("    \"servers/shell\",\n    \"servers/demo\",\n    \"examples/hello\","),
        "{s}"
    );
    let e = insert_member(CARGO, "examples/demo").unwrap();
    assert!(
        e.contains("    \"examples/hello\",\n    \"examples/demo\",\n    \"tools/xtask\","),
        "{e}"
    );
    let other = insert_member(CARGO, "benches/x").unwrap();
    assert!(
        other.contains("    \"tools/xtask\",\n    \"benches/x\",\n]"),
        "{other}"
    );
    assert!(insert_member(CARGO, "servers/shell").is_err());
    assert!(insert_member("[workspace]\n", "servers/demo").is_err());
}

const MANIFEST: &str = "[image]\ndescription = \"d\"\n\n[[module]]\nbinary = \"init\"\n\n[[module]]                 # the shell\nbinary = \"shell\"\ndevices = []\n\n[[module]]\nbinary = \"hello\"\nstart = false\n\n";

#[test]
fn modules_go_before_the_shell_or_at_the_end() {
    let block = "[[module]]\nbinary = \"demo\"\n";
    let s = insert_module(MANIFEST, block, true);
    assert!(s.contains("binary = \"init\"\n\n[[module]]\nbinary = \"demo\"\n\n[[module]]                 # the shell\n"), "{s}");
    let e = insert_module(MANIFEST, block, false);
    assert!(
        e.ends_with("start = false\n\n[[module]]\nbinary = \"demo\"\n"),
        "{e}"
    );
    // No shell: a server goes at the end too.
    let n = insert_module("[image]\ndescription = \"d\"\n", block, true);
    assert_eq!(
        n,
        "[image]\ndescription = \"d\"\n\n[[module]]\nbinary = \"demo\"\n"
    );
}

/// A scratch workspace: the real root Cargo.toml, images and one crate.
fn scratch() -> TestDir {
    let dir = TestDir::new("new");
    let real = paths::root();
    let copy = |rel: &str| {
        let to = dir.path().join(rel);
        fs::create_dir_all(to.parent().unwrap()).unwrap();
        fs::copy(real.join(rel), to).unwrap();
    };
    for rel in [
        "Cargo.toml",
        "tools/images/default.toml",
        "tools/images/bench-boot.toml",
        "tools/images/selftest-supervise.toml",
        "examples/hello/Cargo.toml",
        "servers/shell/Cargo.toml",
    ] {
        copy(rel);
    }
    dir
}

/// A name not taken in the scratch copy. The copy holds the real tree's
/// images, and right after `cargo xtask new demo` those name `demo`: a
/// fixed name here would fail exactly when the tool has just been used.
fn fresh_name(root: &Path, kind: Kind) -> String {
    (0..100)
        .map(|n| format!("scratch{n}"))
        .find(|name| plan(root, kind, name).is_ok())
        .expect("no free scratch name")
}

fn load(root: &Path, image: &str) -> manifest::Manifest {
    let path = root.join("tools/images").join(format!("{image}.toml"));
    manifest::parse(image, &path, &fs::read_to_string(&path).unwrap())
        .unwrap_or_else(|e| panic!("{image}: {e}"))
}

fn binaries(m: &manifest::Manifest) -> Vec<String> {
    m.modules.iter().map(|m| m.binary.clone()).collect()
}

#[test]
fn each_kind_makes_valid_images_in_step() {
    for kind in [Kind::Server, Kind::Program, Kind::C] {
        let root = scratch();
        let root = root.path();
        let name = &fresh_name(root, kind);
        let bin = &binary(kind, name);
        let dir = &match kind {
            Kind::Server => format!("servers/{bin}/src/main.rs"),
            Kind::Program => format!("examples/{bin}/src/main.rs"),
            Kind::C => format!("examples/{bin}/main.c"),
        };
        apply(&plan(root, kind, name).unwrap()).unwrap();
        assert!(root.join(dir).exists(), "{kind:?}");
        let default = load(root, "default");
        let boot = load(root, "bench-boot");
        assert_eq!(binaries(&default), binaries(&boot), "{kind:?}");
        let m = default.modules.iter().find(|m| m.binary == *bin).unwrap();
        assert_eq!(m.start, kind == Kind::Server, "{kind:?}");
        if kind == Kind::Server {
            assert_eq!(m.registers.as_deref(), Some(name.as_str()));
            let shell = binaries(&default)
                .iter()
                .position(|b| b == "shell")
                .unwrap();
            let at = binaries(&default).iter().position(|b| b == bin).unwrap();
            assert!(at < shell, "a server goes before the shell");
        }
        let test = load(root, &format!("selftest-{name}"));
        assert!(test.expect.is_some(), "{kind:?}");
        assert!(binaries(&test).contains(bin));
        let cargo = fs::read_to_string(root.join("Cargo.toml")).unwrap();
        let member = format!("\"{}\",", dir.split("/src").next().unwrap());
        assert_eq!(
            cargo.contains(&member),
            kind != Kind::C,
            "{kind:?}: {cargo}"
        );
        // A second time the name is taken.
        assert!(
            plan(root, kind, name)
                .unwrap_err()
                .message
                .contains("already exists")
        );
    }
}

#[test]
fn refusals_write_nothing() {
    let root = scratch();
    let root = root.path();
    let before = fs::read_to_string(root.join("Cargo.toml")).unwrap();
    for (kind, name, why) in [
        (Kind::Server, "Bad", "not a valid name"),
        (Kind::Server, "hello", "already exists"),
        (Kind::Program, "shell", "already exists"),
        (Kind::Server, "echo", "already exists"), // a device of default.toml
        (Kind::Program, "proc", "already exists"), // a kernel device
        (Kind::C, "hello", "already exists"),
    ] {
        let err = plan(root, kind, name).unwrap_err().message;
        assert!(err.contains(why), "{name}: {err}");
    }
    fs::create_dir_all(root.join("examples/fresh-c")).unwrap();
    assert!(plan(root, Kind::C, "fresh").is_err());
    assert_eq!(fs::read_to_string(root.join("Cargo.toml")).unwrap(), before);
    assert!(!root.join("servers/Bad").exists());
}

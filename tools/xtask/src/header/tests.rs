//! Tests of the generated header: that it covers the whole abi crate (by
//! scanning abi/src, so a new constant or type cannot be forgotten), that
//! every system call has a wrapper matching abi's documented argument list,
//! and that gcc accepts the result in strict mode and emits every wrapper.

use std::fs;
use std::path::PathBuf;
use std::process::Command;

use super::wrappers::{WRAPPERS, sysno_constant, trailer};
use super::{CONST_PREFIX, TYPE_PREFIX, TYPES, generate};
use crate::paths;

fn header() -> String {
    generate().expect("the header generates")
}

/// Every `(file name, text)` of abi/src.
fn abi_sources() -> Vec<(String, String)> {
    let dir = paths::root().join("abi").join("src");
    let mut out = Vec::new();
    for entry in fs::read_dir(&dir).expect("abi/src is readable") {
        let path = entry.expect("abi/src entry").path();
        if path.extension().is_some_and(|e| e == "rs") {
            let text = fs::read_to_string(&path).expect("abi source is readable");
            out.push((path.display().to_string(), text));
        }
    }
    assert!(!out.is_empty(), "no sources in {}", dir.display());
    out
}

/// The identifier at the start of `s`.
fn ident(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// Top-level `pub const NAME` items (not `pub const fn`, not associated
/// constants, which are indented).
fn abi_constants() -> Vec<String> {
    let mut out = Vec::new();
    for (_, text) in abi_sources() {
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("pub const ")
                && !rest.starts_with("fn ")
            {
                out.push(ident(rest).to_string());
            }
        }
    }
    assert!(out.len() > 10, "the scan found too few constants: {out:?}");
    out
}

/// Types that cross the boundary: `pub struct` under `#[repr(C)]` and
/// `pub enum` under an integer `#[repr]`, attributes and docs in between.
fn abi_types() -> Vec<String> {
    let mut out = Vec::new();
    for (_, text) in abi_sources() {
        let mut repr: Option<String> = None;
        for line in text.lines().map(str::trim) {
            if let Some(r) = line.strip_prefix("#[repr(") {
                repr = Some(r.trim_end_matches(")]").to_string());
            } else if let Some(r) = repr.as_deref() {
                let item = line
                    .strip_prefix("pub struct ")
                    .filter(|_| r.split(',').any(|p| p.trim() == "C"))
                    .or_else(|| line.strip_prefix("pub enum "));
                if let Some(item) = item {
                    out.push(ident(item).to_string());
                    repr = None;
                } else if !(line.starts_with("#[") || line.starts_with("///")) {
                    repr = None;
                }
            }
        }
    }
    out
}

/// C has one namespace: two abi constants with one name (in different Rust
/// modules) would come out of cbindgen as a single `#define`, silently
/// giving one of them the other's value.
#[test]
fn constant_names_are_unique_across_the_abi() {
    let mut seen = std::collections::HashMap::new();
    for (file, text) in abi_sources() {
        for line in text.lines().map(str::trim) {
            if let Some(rest) = line.strip_prefix("pub const ")
                && !rest.starts_with("fn ")
            {
                let name = ident(rest).to_string();
                // Associated `ALL` arrays are excluded from the header.
                if name == "ALL" {
                    continue;
                }
                if let Some(first) = seen.insert(name.clone(), format!("{file:?}")) {
                    panic!(
                        "abi constant {name} is defined twice ({first} and {file:?}): rename one"
                    );
                }
            }
        }
    }
}

#[test]
fn every_constant_is_in_the_header() {
    let h = header();
    let missing: Vec<_> = abi_constants()
        .into_iter()
        .filter(|name| !h.contains(&format!("#define {CONST_PREFIX}{name} ")))
        .collect();
    assert!(
        missing.is_empty(),
        "abi constants missing from mh.h: {missing:?} (cbindgen skips constants whose value it cannot translate)"
    );
}

#[test]
fn every_boundary_type_is_in_the_header() {
    let h = header();
    let types = abi_types();
    for expected in ["ExitStatus", "IntFrame", "SysInfo", "Error", "Sysno"] {
        assert!(
            types.iter().any(|t| t == expected),
            "the abi scan missed {expected}: {types:?}"
        );
    }
    for name in &types {
        assert!(
            TYPES.contains(&name.as_str()),
            "abi type {name} is #[repr]'d but not in header::TYPES: add it there"
        );
        let c = format!("{TYPE_PREFIX}{name}");
        assert!(
            h.contains(&format!("typedef struct {c} {{")) || h.contains(&format!("enum {c}\n")),
            "{c} is not defined in mh.h"
        );
    }
}

#[test]
fn every_define_is_prefixed() {
    // An unprefixed or Mh-prefixed macro is a cbindgen item we did not
    // plan for, such as a new associated constant: exclude or rename it.
    for line in header().lines() {
        if let Some(rest) = line.strip_prefix("#define ") {
            assert!(
                rest.starts_with(CONST_PREFIX) || rest.starts_with("MH_H"),
                "unexpected macro in mh.h: {line}"
            );
        }
    }
}

#[test]
fn every_syscall_has_one_wrapper() {
    for sysno in abi::Sysno::ALL {
        let n = WRAPPERS.iter().filter(|w| w.sysno == sysno).count();
        assert_eq!(
            n, 1,
            "Sysno::{sysno:?} has {n} C wrappers in header/wrappers.rs; it needs exactly one"
        );
    }
    assert_eq!(WRAPPERS.len(), abi::Sysno::ALL.len());
    let h = header();
    for w in WRAPPERS {
        let constant = sysno_constant(w.sysno);
        assert!(
            h.contains(&format!("  {constant} = {},", w.sysno as u64)),
            "{constant} is not the enum value cbindgen emitted"
        );
        assert!(h.contains(&format!(" mh_{}(", w.name)));
    }
}

/// The wrappers follow abi's doc comments: `/// \`name(a, b) -> …\`` above
/// each `Sysno` variant gives the name and the number of arguments.
#[test]
fn wrappers_match_the_documented_signatures() {
    let path = paths::root().join("abi").join("src").join("syscall.rs");
    let text = fs::read_to_string(&path).expect("abi/src/syscall.rs is readable");
    let mut doc = String::new();
    let mut checked = 0;
    for line in text.lines().map(str::trim) {
        if let Some(d) = line.strip_prefix("///") {
            if doc.is_empty() {
                doc = d.trim().to_string();
            }
            continue;
        }
        let variant = ident(line);
        let is_variant = line.contains(" = ") && line.ends_with(',');
        if let Some(w) = WRAPPERS
            .iter()
            .find(|w| is_variant && format!("{:?}", w.sysno) == variant)
        {
            let sig = doc.strip_prefix('`').unwrap_or_else(|| {
                panic!("Sysno::{variant}'s doc does not start with `name(...)`")
            });
            let (name, rest) = sig.split_once('(').expect("a documented argument list");
            let args = &rest[..rest.find(')').expect("a closing parenthesis")];
            let arity = if args.trim().is_empty() {
                0
            } else {
                args.split(',').count()
            };
            assert_eq!(name, w.name, "Sysno::{variant}: wrapper name");
            assert_eq!(
                arity,
                w.params.len(),
                "Sysno::{variant}: the docs say {name}({args})"
            );
            checked += 1;
        }
        doc.clear();
    }
    assert_eq!(checked, WRAPPERS.len(), "every wrapper's variant was found");
}

#[test]
fn trailer_is_in_the_header() {
    assert!(header().contains(&trailer()));
}

/// A scratch directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mh-xtask-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("a scratch directory");
    dir
}

/// Compiles (no link) a C file that uses every constant and calls every
/// wrapper, with the flags C programs get and -Wpedantic on top, once per
/// C dialect a user might pick.
#[test]
fn gcc_accepts_the_header() {
    let h = header();
    let dir = scratch("header");
    fs::write(dir.join("mh.h"), &h).expect("write mh.h");
    let mut c = String::from("#include \"mh.h\"\n\nvoid use_all(void);\nvoid use_all(void) {\n");
    for line in h.lines() {
        if let Some(rest) = line.strip_prefix("#define MH_") {
            let name = ident(rest);
            if name != "H" && !rest[name.len()..].starts_with('(') {
                c.push_str(&format!("  (void)(unsigned long long)(MH_{name});\n"));
            }
        }
    }
    for w in WRAPPERS.iter().filter(|w| !w.noreturn) {
        let zeros = vec!["0"; w.params.len()].join(", ");
        c.push_str(&format!("  (void)mh_{}({zeros});\n", w.name));
    }
    c.push_str("  mh_exit(0);\n}\n");
    fs::write(dir.join("use.c"), c).expect("write use.c");
    for std in ["c99", "c11", "c17", "gnu2x"] {
        let out = Command::new("gcc")
            .args([
                &format!("-std={std}"),
                "-O2",
                "-ffreestanding",
                "-mgeneral-regs-only",
            ])
            .args([
                "-Wall",
                "-Wextra",
                "-Wpedantic",
                "-Werror",
                "-c",
                "use.c",
                "-o",
                "use.o",
            ])
            .current_dir(&dir)
            .output()
            .expect("gcc runs (it is the host linker too)");
        assert!(
            out.status.success(),
            "gcc -std={std} rejects mh.h:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let _ = fs::remove_dir_all(&dir);
}

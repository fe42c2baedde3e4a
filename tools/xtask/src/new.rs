//! `cargo xtask new NAME --server | --program | --c`: a new server, Rust
//! program or C program that builds, boots and is tested from the start —
//! its crate or C directory, its workspace membership, its module in the
//! default image (and in bench-boot.toml, which must stay in step), and a
//! self-test image `selftest-NAME` that `cargo xtask test` boots.
//!
//! Rules: everything is checked before anything is written (the name, and
//! that no crate, directory, binary, device or image of that name exists),
//! so a refusal leaves the tree as it was; the edits to existing files are
//! plain text insertions, so their comments and layout survive, and each
//! is written to a temporary file and renamed into place.

mod templates;

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{Result, bail, io_failure};
use crate::manifest::KERNEL_DEVICES;
use crate::{Args, paths, progress};
use templates::fill;

/// The longest name accepted: device names may be 32 bytes, and a C
/// program's binary adds `-c`; short names also keep the shell's and the
/// loader's command lines short.
const NAME_MAX: usize = 24;

/// The images a new module goes into: the everyday image, and bench-boot,
/// which must list the same modules (a manifest unit test checks it).
const IMAGES: [&str; 2] = ["default", "bench-boot"];

/// Names cargo or rustc refuse for a package or binary: Rust's keywords,
/// the standard crates, and the names of cargo's own directories in
/// `target/` (the guest binaries land beside them).
const RESERVED: &[&str] = &[
    "as",
    "async",
    "await",
    "break",
    "const",
    "continue",
    "crate",
    "dyn",
    "else",
    "enum",
    "extern",
    "false",
    "fn",
    "for",
    "if",
    "impl",
    "in",
    "let",
    "loop",
    "match",
    "mod",
    "move",
    "mut",
    "pub",
    "ref",
    "return",
    "self",
    "static",
    "struct",
    "super",
    "trait",
    "true",
    "type",
    "unsafe",
    "use",
    "where",
    "while",
    "abstract",
    "become",
    "box",
    "do",
    "final",
    "gen",
    "macro",
    "override",
    "priv",
    "try",
    "typeof",
    "unsized",
    "virtual",
    "yield",
    "core",
    "std",
    "alloc",
    "test",
    "proc-macro",
    "build",
    "deps",
    "examples",
    "incremental",
];

/// What to make.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Server,
    Program,
    C,
}

/// Every file to write, checked and ready: new files and the new text of
/// edited ones.
#[derive(Debug, Default)]
pub struct Plan {
    pub create: Vec<(PathBuf, String)>,
    pub edit: Vec<(PathBuf, String)>,
}

/// Whether `name` may name a new crate, binary and device:
/// `[a-z][a-z0-9-]*`, at most `NAME_MAX` bytes.
pub fn check_name(name: &str) -> std::result::Result<(), String> {
    let ok_start = name.starts_with(|c: char| c.is_ascii_lowercase());
    let ok_rest = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !ok_start || !ok_rest {
        return Err(format!(
            "'{name}' is not a valid name: use [a-z][a-z0-9-]* (a lower-case letter, then lower-case letters, digits and '-')"
        ));
    }
    if RESERVED.contains(&name) {
        return Err(format!(
            "'{name}' is reserved by Rust or cargo (a keyword, a standard crate or a target directory)"
        ));
    }
    if name.len() > NAME_MAX {
        return Err(format!(
            "'{name}' is {} characters long; a name has at most {NAME_MAX}",
            name.len()
        ));
    }
    Ok(())
}

/// The binary a kind makes from a name: C programs' directories (and so
/// binaries) end in `-c`, as examples/hello-c does.
pub fn binary(kind: Kind, name: &str) -> String {
    if kind == Kind::C && !name.ends_with("-c") {
        format!("{name}-c")
    } else {
        name.to_string()
    }
}

/// The workspace-relative directory a kind lives in.
fn dir(kind: Kind, bin: &str) -> String {
    match kind {
        Kind::Server => format!("servers/{bin}"),
        Kind::Program | Kind::C => format!("examples/{bin}"),
    }
}

/// Inserts `"member",` into the root Cargo.toml's `members` list, after
/// the last entry under the same top directory (servers/ or examples/), or
/// at the end of the list.
pub fn insert_member(cargo_toml: &str, member: &str) -> std::result::Result<String, String> {
    let lines: Vec<&str> = cargo_toml.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.trim_start().starts_with("members = ["))
        .ok_or("the root Cargo.toml has no `members = [` line")?;
    let end = start
        + lines[start..]
            .iter()
            .position(|l| l.trim() == "]")
            .ok_or("the root Cargo.toml's members list has no closing `]` line")?;
    let quoted = format!("\"{member}\"");
    if lines[start..end].iter().any(|l| l.contains(&quoted)) {
        return Err(format!("{member} is already a workspace member"));
    }
    let top = member.split('/').next().unwrap_or(member);
    let prefix = format!("\"{top}/");
    let at = lines[start + 1..end]
        .iter()
        .rposition(|l| l.trim_start().starts_with(&prefix))
        .map_or(end, |i| start + 1 + i + 1);
    let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    out.insert(at, format!("    {quoted},"));
    Ok(join(out))
}

/// Inserts a `[[module]]` table into a manifest's text: a server before
/// the shell's module (init starts modules in order, and the shell's
/// session should find the server registered), a program at the end with
/// the shell's other programs.
pub fn insert_module(manifest: &str, module: &str, before_shell: bool) -> String {
    let mut lines: Vec<String> = manifest.lines().map(str::to_string).collect();
    let shell = lines.iter().position(|l| l.trim() == "binary = \"shell\"");
    let header = shell.and_then(|s| lines[..s].iter().rposition(|l| l.starts_with("[[module]]")));
    match header.filter(|_| before_shell) {
        Some(at) => {
            let block: Vec<String> = module
                .lines()
                .map(str::to_string)
                .chain([String::new()])
                .collect();
            lines.splice(at..at, block);
        }
        None => {
            while lines.last().is_some_and(|l| l.trim().is_empty()) {
                lines.pop();
            }
            lines.push(String::new());
            lines.extend(module.lines().map(str::to_string));
        }
    }
    join(lines)
}

fn join(lines: Vec<String>) -> String {
    let mut text = lines.join("\n");
    text.push('\n');
    text
}

fn read(path: &Path) -> Result<String> {
    fs::read_to_string(path).map_err(|e| io_failure("cannot read", path, &e))
}

/// The names already taken in the workspace at `root`: the package and
/// binary names of every member crate, every module binary and device any
/// image names, the kernel's devices and every directory under servers/
/// and examples/.
fn taken_names(root: &Path, cargo_toml: &str) -> Result<Vec<String>> {
    let mut names: Vec<String> = KERNEL_DEVICES.iter().map(|s| s.to_string()).collect();
    names.extend(["init", "kernel", "xtask"].map(str::to_string));
    let parsed: toml::Table = toml::from_str(cargo_toml)
        .map_err(|e| crate::error::Failure::new(format!("Cargo.toml: {e}")))?;
    let members = parsed
        .get("workspace")
        .and_then(|w| w.get("members"))
        .and_then(|m| m.as_array())
        .cloned()
        .unwrap_or_default();
    for member in members.iter().filter_map(|m| m.as_str()) {
        let path = root.join(member).join("Cargo.toml");
        let Ok(text) = fs::read_to_string(&path) else {
            continue;
        };
        let crate_toml: toml::Table = toml::from_str(&text)
            .map_err(|e| crate::error::Failure::new(format!("{}: {e}", path.display())))?;
        if let Some(n) = crate_toml.get("package").and_then(|p| p.get("name")) {
            names.extend(n.as_str().map(str::to_string));
        }
        for bin in crate_toml
            .get("bin")
            .and_then(|b| b.as_array())
            .into_iter()
            .flatten()
        {
            names.extend(bin.get("name").and_then(|n| n.as_str()).map(str::to_string));
        }
    }
    for top in ["servers", "examples"] {
        for entry in fs::read_dir(root.join(top)).into_iter().flatten().flatten() {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    // Binaries and device names of every image, by a light reading of the
    // manifests' keys (an image that does not parse is someone else's
    // problem: `cargo xtask build` reports it).
    let images = root.join("tools").join("images");
    for entry in fs::read_dir(&images).into_iter().flatten().flatten() {
        let Ok(text) = fs::read_to_string(entry.path()) else {
            continue;
        };
        let Ok(table) = toml::from_str::<toml::Table>(&text) else {
            continue;
        };
        for m in table
            .get("module")
            .and_then(|m| m.as_array())
            .into_iter()
            .flatten()
        {
            for key in ["binary", "registers"] {
                names.extend(m.get(key).and_then(|v| v.as_str()).map(str::to_string));
            }
            for key in ["also_registers", "devices"] {
                let list = m.get(key).and_then(|v| v.as_array());
                names.extend(
                    list.into_iter()
                        .flatten()
                        .filter_map(|v| v.as_str())
                        .map(str::to_string),
                );
            }
        }
    }
    Ok(names)
}

/// Everything `new` would write for `kind` and `name` in the workspace
/// at `root`, after every check; nothing is written.
pub fn plan(root: &Path, kind: Kind, name: &str) -> Result<Plan> {
    if let Err(why) = check_name(name) {
        bail!("{why}");
    }
    let bin = binary(kind, name);
    let dir_rel = dir(kind, &bin);
    let cargo_path = root.join("Cargo.toml");
    let cargo_toml = read(&cargo_path)?;
    let taken = taken_names(root, &cargo_toml)?;
    for candidate in [name, bin.as_str()] {
        if taken.iter().any(|t| t == candidate) {
            bail!(
                "'{candidate}' already exists (as a crate, directory, binary, module or device); pick another name"
            );
        }
    }
    let selftest = root
        .join("tools/images")
        .join(format!("selftest-{name}.toml"));
    for path in [root.join(&dir_rel), selftest.clone()] {
        if path.exists() {
            bail!("{} already exists; pick another name", path.display());
        }
    }

    let f = |t: &str| fill(t, name, &bin);
    let mut plan = Plan::default();
    let d = root.join(&dir_rel);
    match kind {
        Kind::Server | Kind::Program => {
            let (cargo, main) = match kind {
                Kind::Server => (templates::SERVER_CARGO, templates::SERVER_MAIN),
                _ => (templates::PROGRAM_CARGO, templates::PROGRAM_MAIN),
            };
            plan.create.push((d.join("Cargo.toml"), f(cargo)));
            plan.create
                .push((d.join("build.rs"), f(templates::BUILD_RS)));
            plan.create.push((d.join("src/main.rs"), f(main)));
            let members = insert_member(&cargo_toml, &dir_rel)
                .map_err(|why| crate::error::Failure::new(format!("Cargo.toml: {why}")))?;
            plan.edit.push((cargo_path, members));
        }
        Kind::C => plan.create.push((d.join("main.c"), f(templates::C_MAIN))),
    }
    let (module, test) = match kind {
        Kind::Server => (templates::SERVER_MODULE, f(templates::SERVER_SELFTEST)),
        Kind::Program => (
            templates::PROGRAM_MODULE,
            f(templates::PROGRAM_SELFTEST).replace("@LINE@", &f(templates::PROGRAM_LINE)),
        ),
        Kind::C => (
            templates::C_MODULE,
            f(templates::PROGRAM_SELFTEST).replace("@LINE@", &f(templates::C_LINE)),
        ),
    };
    for image in IMAGES {
        let path = root.join("tools/images").join(format!("{image}.toml"));
        let text = insert_module(&read(&path)?, &f(module), kind == Kind::Server);
        plan.edit.push((path, text));
    }
    plan.create.push((selftest, test));
    Ok(plan)
}

/// Writes a plan: new files first (their directories made as needed),
/// then each edited file through a temporary file and a rename, so an
/// interrupted run never leaves a half-written Cargo.toml or manifest.
pub fn apply(plan: &Plan) -> Result<()> {
    for (path, text) in &plan.create {
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(|e| io_failure("cannot create", parent, &e))?;
        }
        fs::write(path, text).map_err(|e| io_failure("cannot write", path, &e))?;
    }
    for (path, text) in &plan.edit {
        let tmp = path.with_extension("toml.new");
        fs::write(&tmp, text).map_err(|e| io_failure("cannot write", &tmp, &e))?;
        fs::rename(&tmp, path).map_err(|e| io_failure("cannot replace", path, &e))?;
    }
    Ok(())
}

/// `cargo xtask new NAME --server | --program | --c`.
pub fn command(mut args: Args) -> Result<i32> {
    let kinds: Vec<Kind> = [
        ("--server", Kind::Server),
        ("--program", Kind::Program),
        ("--c", Kind::C),
    ]
    .into_iter()
    .filter(|(flag, _)| args.flag(flag))
    .map(|(_, kind)| kind)
    .collect();
    let name = args.positional();
    args.finish()?;
    let Some(name) = name else {
        bail!("`cargo xtask new` needs a name: cargo xtask new NAME --server | --program | --c");
    };
    let kind = match kinds[..] {
        [kind] => kind,
        [] => bail!("`cargo xtask new {name}` needs one of --server, --program or --c"),
        _ => bail!("`cargo xtask new` takes only one of --server, --program or --c"),
    };
    let root = paths::root();
    let plan = plan(&root, kind, &name)?;
    apply(&plan)?;
    for (path, _) in &plan.create {
        progress(&format!("created {}", paths::display(path)));
    }
    for (path, _) in &plan.edit {
        progress(&format!("updated {}", paths::display(path)));
    }
    let bin = binary(kind, &name);
    println!();
    println!("Next steps:");
    println!("    cargo xtask run                          # the default image, with {bin} in it");
    println!("    cargo xtask build --image selftest-{name}  # its self-test image alone");
    println!("    cargo xtask test                         # everything, selftest-{name} included");
    println!("See docs/getting-started.md (`cargo xtask new`) and docs/writing-a-server.md.");
    Ok(0)
}

#[cfg(test)]
mod tests;

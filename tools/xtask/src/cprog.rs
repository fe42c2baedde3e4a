//! C programs: every `examples/<name>/` directory that holds `*.c` files
//! and no Cargo.toml is a freestanding C program, compiled and linked by
//! the system gcc against abi/include/mh.h into the guest release
//! directory as binary `<name>`, next to the Rust programs, so manifests
//! name it like any other (`binary = "hello-c"`).
//!
//! Rules: a program is rebuilt on every build (gcc takes a fraction of a
//! second, and no timestamp logic can then go stale); gcc runs in the
//! workspace root with relative paths so its messages name the file as
//! `examples/<name>/file.c:LINE`; the header is regenerated first if the
//! abi crate changed, so C never compiles against stale numbers; and each
//! output is checked by `elf` before it can go into an image. gcc is a
//! prerequisite only when there is a C program at all.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::{Result, bail, io_failure, spawn_failure};
use crate::{elf, header, paths, prereq, progress};

/// The flags of every C program. -mgeneral-regs-only: the kernel neither
/// enables SSE nor saves FPU state. -mno-red-zone: a nested fault or
/// interrupt delivery writes its frame right below the interrupted stack
/// pointer, where the red zone would be. -g: `cargo xtask gdb --program`
/// can load the symbols (debug sections are not loaded). No libc, no PIE, no
/// stack protector (it needs libc's canary), no unwind tables (nothing
/// unwinds), and GNU ld's script from tools/c (see the comment there).
pub const CFLAGS: &[&str] = &[
    "-std=c11",
    "-O2",
    "-g",
    "-ffreestanding",
    "-fno-pic",
    "-fno-stack-protector",
    "-fno-asynchronous-unwind-tables",
    "-mgeneral-regs-only",
    "-mno-red-zone",
    "-nostdlib",
    "-static",
    "-no-pie",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-Iabi/include",
    "-Wl,-T,tools/c/user.ld",
    "-Wl,--build-id=none",
    "-Wl,-z,noexecstack",
];

/// One C program: its binary name and its sources, relative to the
/// workspace root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Program {
    pub name: String,
    pub sources: Vec<PathBuf>,
}

/// Whether a file is a C program source: C, or assembly to preprocess.
fn is_source(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "c" || e == "S")
}

/// The C programs under `examples` (a directory relative to `root`),
/// sorted by name.
pub fn discover(root: &Path, examples: &Path) -> Result<Vec<Program>> {
    let dir = root.join(examples);
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_failure("cannot list", &dir, &e)),
    };
    let mut programs = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| io_failure("cannot list", &dir, &e))?;
        let path = entry.path();
        if !path.is_dir() || path.join("Cargo.toml").exists() {
            continue;
        }
        let files = fs::read_dir(&path).map_err(|e| io_failure("cannot list", &path, &e))?;
        let mut sources = Vec::new();
        let mut has_c = false;
        for file in files {
            let file = file
                .map_err(|e| io_failure("cannot list", &path, &e))?
                .path();
            if file.is_file() && is_source(&file) {
                has_c |= file.extension().is_some_and(|e| e == "c");
                let name = file.file_name().unwrap_or_default();
                sources.push(examples.join(entry.file_name()).join(name));
            }
        }
        if !has_c {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.contains(|c: char| c.is_whitespace() || c == ',') {
            bail!(
                "C program directory {}: '{name}' cannot be a binary name (no spaces or ',')",
                paths::display(&path)
            );
        }
        sources.sort();
        programs.push(Program { name, sources });
    }
    programs.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(programs)
}

/// Compiles and links one program to `output`, then checks the ELF.
pub fn compile(root: &Path, program: &Program, output: &Path) -> Result<()> {
    if let Some(dir) = output.parent() {
        fs::create_dir_all(dir).map_err(|e| io_failure("cannot create", dir, &e))?;
    }
    let gcc = prereq::GCC.program;
    let status = Command::new(gcc)
        .args(CFLAGS)
        .arg("-o")
        .arg(output)
        .args(&program.sources)
        .current_dir(root)
        .stdin(Stdio::null())
        .status()
        .map_err(|e| spawn_failure(gcc, &e))?;
    if !status.success() {
        bail!(
            "gcc could not build C program '{}' ({status}); see its messages above",
            program.name
        );
    }
    let bytes = fs::read(output).map_err(|e| io_failure("cannot read", output, &e))?;
    if let Err(problems) = elf::check_user_program(&bytes) {
        bail!(
            "C program '{}' ({}) is not a loadable MH program: {problems}",
            program.name,
            paths::display(output)
        );
    }
    Ok(())
}

/// Builds every C program into the guest release directory (part of the
/// guest build).
pub fn build_all() -> Result<()> {
    let root = paths::root();
    let programs = discover(&root, Path::new("examples"))?;
    if programs.is_empty() {
        return Ok(());
    }
    prereq::host_tool(prereq::GCC)?;
    if header::write()? {
        progress(&format!(
            "{} was stale: regenerated it from the abi crate (commit it)",
            paths::display(&header::path())
        ));
    }
    for program in &programs {
        let list: Vec<String> = program
            .sources
            .iter()
            .map(|s| s.display().to_string())
            .collect();
        progress(&format!(
            "building C program {} (gcc {})…",
            program.name,
            list.join(" ")
        ));
        compile(&root, program, &paths::guest_binary(&program.name))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("mh-xtask-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("a scratch directory");
        dir
    }

    #[test]
    fn discovery_takes_c_directories_only() {
        let root = scratch("discover");
        let ex = root.join("examples");
        for (file, text) in [
            ("b-prog/main.c", ""),
            ("b-prog/start.S", ""),
            ("b-prog/notes.txt", ""),
            ("a-prog/a.c", ""),
            ("rust/Cargo.toml", ""),
            ("rust/stray.c", ""),
            ("asm-only/start.S", ""),
            ("empty/.keep", ""),
        ] {
            let path = ex.join(file);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, text).unwrap();
        }
        fs::write(ex.join("loose.c"), "").unwrap();
        let found = discover(&root, Path::new("examples")).unwrap();
        let names: Vec<_> = found.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["a-prog", "b-prog"]);
        assert_eq!(
            found[1].sources,
            [
                Path::new("examples/b-prog/main.c"),
                Path::new("examples/b-prog/start.S")
            ]
        );
        assert_eq!(discover(&root, Path::new("nowhere")).unwrap(), []);

        fs::create_dir_all(ex.join("bad name")).unwrap();
        fs::write(ex.join("bad name/x.c"), "").unwrap();
        let e = discover(&root, Path::new("examples")).unwrap_err();
        assert!(e.message.contains("bad name"), "{}", e.message);
        let _ = fs::remove_dir_all(&root);
    }

    /// The real example, built with the real flags and linker script
    /// against the committed header: it must link and pass the ELF check
    /// (`compile` runs it).
    #[test]
    fn hello_c_builds_and_is_loadable() {
        let root = paths::root();
        let programs = discover(&root, Path::new("examples")).unwrap();
        let hello = programs
            .iter()
            .find(|p| p.name == "hello-c")
            .expect("examples/hello-c is a C program");
        let out = scratch("hello-c").join("hello-c");
        compile(&root, hello, &out).unwrap_or_else(|e| panic!("{e}"));
        let (entry, segments) = elf::load_segments(&fs::read(&out).unwrap()).unwrap();
        assert_eq!(entry, abi::layout::USER_IMAGE_BASE);
        // text, rodata; hello-c has no writable data.
        assert!(segments.len() >= 2, "{segments:?}");
        let _ = fs::remove_dir_all(out.parent().unwrap());
    }
}

//! How the programs init started ended, read from init's own log lines, so
//! that a run whose programs failed does not pass for a clean one: init
//! powers off with status 0 once its last program has ended, however that
//! program ended.
//!
//! Rules:
//! - only an image whose module 0 is `servers/init` (binary `init`) is read,
//!   and only init's lines: `init: started NAME (module K, pid P)` ties a
//!   pid to its manifest module; `init: NAME (pid P) HOW…` reports its end,
//!   HOW being `exited with code C`, `faulted: vector V`, `was stopped by
//!   pid Q`, `was killed: error code E`, or (before registering) `died …
//!   (HOW)` / `ended … (HOW)`;
//! - a bad ending is an exit with a code other than 0, a fault, a kill by
//!   the kernel or a stop on request, of a **program**: a module without
//!   `restart`, started by init at boot. Servers' deaths are init's to
//!   handle (it restarts them), and what a program starts itself (the
//!   shell's `run`) is reported by that program, not here;
//! - in a self-test image an ending that one of its `[expect]` output lines
//!   names is expected (`selftest-mem` wants its hog to exit with 102) and
//!   is not a bad one.

use std::collections::HashMap;

use crate::harness::after_word;
use crate::manifest::Module;

/// A program that ended badly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadEnding {
    pub name: String,
    pub module: usize,
    pub pid: u32,
    /// How it ended, in init's words (`exited with code 1`).
    pub how: String,
}

impl BadEnding {
    /// One line for the user: `echo-client (module 4, pid 5) exited with code 1`.
    pub fn describe(&self) -> String {
        format!(
            "{} (module {}, pid {}) {}",
            self.name, self.module, self.pid, self.how
        )
    }
}

/// `NAME (module K, pid P)` after `init: started `.
fn parse_started(rest: &str) -> Option<(u32, usize)> {
    let (_, inner) = rest.split_once(" (module ")?;
    let (module, pid) = inner.split_once(", pid ")?;
    let pid = pid.strip_suffix(')')?;
    Some((pid.parse().ok()?, module.parse().ok()?))
}

/// How an ending reads, and whether it is a bad one: `exited with code 0`
/// is the only good ending; anything else init reports is bad.
fn judge_how(how: &str) -> Option<bool> {
    if let Some(code) = how.strip_prefix("exited with code ") {
        let code: i64 = code.trim().parse().ok()?;
        return Some(code != 0);
    }
    [
        "faulted: vector ",
        "was stopped by pid ",
        "was killed: error code ",
    ]
    .iter()
    .any(|p| how.starts_with(p))
    .then_some(true)
}

/// `NAME (pid P) HOW` after `init: `: the pid and how it ended.
fn parse_ending(rest: &str) -> Option<(u32, String)> {
    let (_, after) = rest.split_once(" (pid ")?;
    let (pid, how) = after.split_once(") ")?;
    let pid = pid.parse().ok()?;
    // Before registering: `died before registering 'X' (HOW); …`.
    let how = if how.starts_with("died before registering ")
        || how.starts_with("ended before registering ")
    {
        let (_, inner) = how.split_once("' (")?;
        inner.split_once(')')?.0
    } else {
        how
    };
    Some((pid, how.to_string()))
}

/// The programs of `modules` that ended badly according to the serial
/// log, in the order init reported them, less those an `expected` line
/// (a self-test's `[expect]` output) names.
pub fn bad_endings(modules: &[Module], serial: &[String], expected: &[String]) -> Vec<BadEnding> {
    if modules.first().is_none_or(|m| m.binary != "init") {
        return Vec::new();
    }
    let mut module_of: HashMap<u32, usize> = HashMap::new();
    let mut bad = Vec::new();
    for line in serial {
        for rest in after_word(line, "init: ") {
            if let Some(rest) = rest.strip_prefix("started ") {
                if let Some((pid, module)) = parse_started(rest) {
                    module_of.insert(pid, module);
                }
                continue;
            }
            let Some((pid, how)) = parse_ending(rest) else {
                continue;
            };
            let Some(&module) = module_of.get(&pid) else {
                continue;
            };
            let Some(m) = modules.get(module) else {
                continue;
            };
            let program = !m.restart && m.start;
            let expected = expected.iter().any(|e| line.contains(e.as_str()));
            if program && judge_how(&how) == Some(true) && !expected {
                bad.push(BadEnding {
                    name: m.binary.clone(),
                    module,
                    pid,
                    how,
                });
            }
        }
    }
    bad
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module(binary: &str, restart: bool) -> Module {
        Module {
            binary: binary.to_string(),
            args: Vec::new(),
            priority: None,
            cpus: None,
            memory_limit_kib: None,
            processes: None,
            registers: None,
            also_registers: Vec::new(),
            restart,
            start: true,
            system: false,
            devices: None,
        }
    }

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(str::to_string).collect()
    }

    fn image() -> Vec<Module> {
        vec![
            module("init", false),
            module("echo-server", true),
            module("hello", false),
            module("shell", false),
        ]
    }

    const BOOT: &str = "\
init: started echo-server (module 1, pid 2)
init: started hello (module 2, pid 3)
init: started shell (module 3, pid 4)
";

    #[test]
    fn a_clean_session_has_no_bad_endings() {
        let serial = lines(&format!(
            "{BOOT}init: echo-server (pid 2) exited with code 3\n\
             init: hello (pid 3) exited with code 0\n\
             init: shell (pid 4) exited with code 0\n"
        ));
        assert_eq!(bad_endings(&image(), &serial, &[]), Vec::new());
    }

    #[test]
    fn non_zero_exits_faults_and_kills_of_programs_are_named() {
        let serial = lines(&format!(
            "{BOOT}init: hello (pid 3) exited with code 1\n\
             [kernel] something else\n\
             init: shell (pid 4) faulted: vector 14\n"
        ));
        let bad = bad_endings(&image(), &serial, &[]);
        let described: Vec<String> = bad.iter().map(BadEnding::describe).collect();
        assert_eq!(
            described,
            [
                "hello (module 2, pid 3) exited with code 1",
                "shell (module 3, pid 4) faulted: vector 14"
            ]
        );
        for how in ["was stopped by pid 4", "was killed: error code 6"] {
            let serial = lines(&format!("{BOOT}init: hello (pid 3) {how}\n"));
            let bad = bad_endings(&image(), &serial, &[]);
            assert_eq!(bad.len(), 1, "{how}");
            assert_eq!(bad[0].how, how);
        }
    }

    #[test]
    fn a_server_death_is_not_a_programs() {
        let serial = lines(&format!(
            "{BOOT}init: echo-server (pid 2) faulted: vector 13\n\
             init: started echo-server (module 1, pid 5)\n\
             init: echo-server (pid 5) was killed: error code 6\n"
        ));
        assert_eq!(bad_endings(&image(), &serial, &[]), Vec::new());
    }

    #[test]
    fn a_death_before_registering_is_read_from_its_parentheses() {
        let serial = lines(
            "init: started hello (module 2, pid 3)\n\
             init: hello (pid 3) died before registering 'x' (exited with code 2); starting the next module\n\
             init: started shell (module 3, pid 4)\n\
             init: shell (pid 4) ended before registering 'y' (exited with code 0); starting the next module\n",
        );
        let bad = bad_endings(&image(), &serial, &[]);
        assert_eq!(bad.len(), 1);
        assert_eq!(
            bad[0].describe(),
            "hello (module 2, pid 3) exited with code 2"
        );
    }

    #[test]
    fn an_expected_ending_is_not_bad() {
        let serial = lines(&format!("{BOOT}init: hello (pid 3) exited with code 102\n"));
        let expected = vec!["init: hello (pid 3) exited with code 102".to_string()];
        assert_eq!(bad_endings(&image(), &serial, &expected), Vec::new());
        // An expectation about another line does not excuse it.
        let other = vec!["init: shell (pid 4) exited with code 0".to_string()];
        assert_eq!(bad_endings(&image(), &serial, &other).len(), 1);
    }

    #[test]
    fn pids_map_to_the_module_that_last_had_them() {
        // A pid init reports but never said it started (an orphan it
        // reaped) is not a module's; a pid reused later maps to the newer.
        let mut modules = image();
        modules[1].restart = false;
        let serial = lines(
            "init: stranger (pid 9) exited with code 1\n\
             init: started echo-server (module 1, pid 2)\n\
             init: echo-server (pid 2) exited with code 0\n\
             init: started hello (module 2, pid 2)\n\
             init: hello (pid 2) exited with code 7\n",
        );
        let bad = bad_endings(&modules, &serial, &[]);
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].name, "hello");
    }

    #[test]
    fn an_image_without_servers_init_is_not_read() {
        let mut modules = image();
        modules[0].binary = "mhtest".to_string();
        let serial = lines(&format!("{BOOT}init: hello (pid 3) exited with code 1\n"));
        assert_eq!(bad_endings(&modules, &serial, &[]), Vec::new());
    }

    #[test]
    fn other_init_lines_are_not_endings() {
        let serial = lines(&format!(
            "{BOOT}init: stopping hello (pid 3) as pid 4 asked\n\
             init: hello (pid 3) exited with code\n\
             init: echo-server died serving pid 3 (1 of 3); restarting\n"
        ));
        assert_eq!(bad_endings(&image(), &serial, &[]), Vec::new());
    }
}

//! A module's `cpus`: the CPUs init binds it to.
//!
//! Rules: each entry is a CPU index the kernel can run (below
//! [`MAX_CPUS`]), listed once; an empty list is refused (leaving the key
//! out means any CPU). Whether the machine has that many CPUs is not
//! checked here: the same image boots at several `-smp` counts, and on a
//! machine without a listed CPU the module runs anywhere (libmh's spawn
//! says so), which the suite's one-CPU pass relies on.

use super::{FieldResult, MAX_CPUS};

/// A module's `cpus`: CPU indices the kernel can run (below 16), each
/// once, at least one.
pub(super) fn check_module_cpus(field: &str, cpus: &[u32]) -> FieldResult {
    if cpus.is_empty() {
        return Err((
            field.to_string(),
            "is empty: leave it out to let the module run on any CPU".into(),
        ));
    }
    for (k, &c) in cpus.iter().enumerate() {
        if c >= MAX_CPUS {
            return Err((
                format!("{field}[{k}]"),
                format!("{c} is not a CPU (0..{MAX_CPUS})"),
            ));
        }
        if cpus[..k].contains(&c) {
            return Err((format!("{field}[{k}]"), format!("CPU {c} is listed twice")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::parse;
    use std::path::Path;

    fn module_cpus(cpus: &str) -> Result<String, String> {
        let text = format!(
            "[image]\ndescription = \"d\"\ncpus = 4\n[[module]]\nbinary = \"i\"\n\
             [[module]]\nbinary = \"s\"\ncpus = {cpus}\n"
        );
        parse("t", Path::new("t.toml"), &text)
            .map(|m| m.initrd())
            .map_err(|e| e.message)
    }

    #[test]
    fn a_module_bound_to_cpus_gets_the_loader_option() {
        assert_eq!(module_cpus("[1]").unwrap(), "i,s @cpus=1");
        // QEMU's -initrd separates modules with commas: one in a command
        // line is doubled.
        assert_eq!(module_cpus("[0, 3]").unwrap(), "i,s @cpus=0,,3");
    }

    #[test]
    fn bad_cpu_lists_are_refused_naming_the_field() {
        for (bad, why) in [
            ("[]", "module[1].cpus: is empty"),
            ("[16]", "module[1].cpus[0]: 16 is not a CPU (0..16)"),
            ("[2, 2]", "module[1].cpus[1]: CPU 2 is listed twice"),
        ] {
            let e = module_cpus(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
        let init = "[image]\ndescription = \"d\"\n[[module]]\nbinary = \"i\"\ncpus = [0]\n";
        let e = parse("t", Path::new("t.toml"), init).unwrap_err().message;
        assert!(e.contains("is init"), "{e}");
    }
}

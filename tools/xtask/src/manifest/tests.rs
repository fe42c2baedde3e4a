//! Manifest parsing and validation, with crafted good and bad inputs.

use super::*;

fn parse_ok(text: &str) -> Manifest {
    match parse("t", Path::new("t.toml"), text) {
        Ok(m) => m,
        Err(e) => panic!("unexpected error: {e}"),
    }
}

fn parse_err(text: &str) -> String {
    match parse("t", Path::new("t.toml"), text) {
        Ok(m) => panic!("expected an error, got {m:?}"),
        Err(e) => e.message,
    }
}

#[test]
fn minimal_manifest_gets_defaults() {
    let m = parse_ok("[image]\ndescription = \"d\"\n[[module]]\nbinary = \"init\"\n");
    assert_eq!(m.memory_mib, 256);
    assert_eq!(m.timeout_secs, 300);
    assert_eq!(m.kernel_args, None);
    assert_eq!(m.machine, Machine::Q35);
    assert_eq!(m.cpus, 1);
    assert_eq!(m.initrd(), "init");
}

#[test]
fn cpus_are_one_to_sixteen() {
    let with = |cpus: &str| {
        format!("[image]\ndescription = \"d\"\ncpus = {cpus}\n[[module]]\nbinary = \"init\"\n")
    };
    assert_eq!(parse_ok(&with("1")).cpus, 1);
    assert_eq!(parse_ok(&with("16")).cpus, 16);
    for (bad, why) in [
        ("0", "0 is out of range (1 to 16 CPUs)"),
        ("17", "17 is out of range (1 to 16 CPUs)"),
        ("-2", "-2 is out of range (1 to 16 CPUs)"),
        (
            "\"4\"",
            "\"4\" is not a CPU count: a whole number from 1 to 16",
        ),
        ("2.5", "2.5 is not a CPU count"),
        ("true", "a boolean is not a CPU count"),
    ] {
        let e = parse_err(&with(bad));
        assert!(
            e.starts_with(&format!("t.toml: image.cpus: {why}")),
            "{bad}: {e}"
        );
    }
    assert_eq!(check_cpus(4), Ok(4));
    assert!(check_cpus(i64::MAX).is_err());
}

#[test]
fn the_default_image_has_two_cpus_and_the_test_image_one() {
    // `cargo xtask run` boots on two CPUs; the test image's own count is
    // the first pass's, which `cargo xtask test` overrides for the second.
    assert_eq!(load("default").unwrap().cpus, 2);
    assert_eq!(load("test").unwrap().cpus, 1);
    assert_eq!(load("selftest-smp16").unwrap().cpus, 16);
    // Benchmarks count one CPU's instructions.
    assert_eq!(load("bench").unwrap().cpus, 1);
}

#[test]
fn the_kernel_is_the_release_build_unless_the_checked_one_is_named() {
    let with = |kernel: &str| {
        format!(
            "[image]\ndescription = \"d\"\nkernel = \"{kernel}\"\n[[module]]\nbinary = \"init\"\n"
        )
    };
    let plain = parse_ok("[image]\ndescription = \"d\"\n[[module]]\nbinary = \"init\"\n");
    assert_eq!(plain.kernel, KernelBuild::Release);
    assert_eq!(parse_ok(&with("release")).kernel, KernelBuild::Release);
    assert_eq!(parse_ok(&with("checked")).kernel, KernelBuild::Checked);
    let e = parse_err(&with("debug"));
    assert!(
        e.starts_with("t.toml: image.kernel: \"debug\" is not a kernel build"),
        "{e}"
    );
}

#[test]
fn the_machine_is_q35_or_pc() {
    let with = |machine: &str| {
        format!(
            "[image]\ndescription = \"d\"\nmachine = \"{machine}\"\n[[module]]\nbinary = \"init\"\n"
        )
    };
    assert_eq!(parse_ok(&with("pc")).machine, Machine::Pc);
    assert_eq!(parse_ok(&with("q35")).machine, Machine::Q35);
    assert!(
        Machine::Q35
            .qemu_args()
            .contains(&"intel-iommu,intremap=on")
    );
    assert!(!Machine::Pc.qemu_args().iter().any(|a| a.contains("iommu")));
    let pci =
        parse_ok("[image]\ndescription = \"d\"\npci = [\"edu\"]\n[[module]]\nbinary = \"init\"\n");
    assert_eq!(pci.pci, ["edu"]);
    let e = parse_err(
        "[image]\ndescription = \"d\"\npci = [\"edu\", \"e1000\"]\n[[module]]\nbinary = \"init\"\n",
    );
    assert!(
        e.starts_with("t.toml: image.pci[1]: \"e1000\" is not a PCI device"),
        "{e}"
    );
    let e = parse_err(&with("isapc"));
    assert!(
        e.starts_with("t.toml: image.machine: \"isapc\" is not a machine"),
        "{e}"
    );
}

#[test]
fn initrd_joins_modules_and_doubles_commas() {
    let m = parse_ok(
        r#"
        [image]
        description = "d"
        kernel_args = "log=debug x"
        memory_mib = 64
        timeout_secs = 5
        [[module]]
        binary = "a"
        args = ["x", "y,z"]
        [[module]]
        binary = "b"
        "#,
    );
    assert_eq!(m.initrd(), "a x y,,z,b");
    let p = parse_ok(
        "[image]\ndescription = \"d\"\n[[module]]\nbinary = \"i\"\n[[module]]\nbinary = \"s\"\npriority = 2\nargs = [\"q\"]\n",
    );
    assert_eq!(p.initrd(), "i,s @priority=2 q");
    assert_eq!(m.kernel_args.as_deref(), Some("log=debug x"));
    assert_eq!((m.memory_mib, m.timeout_secs), (64, 5));
}

#[test]
fn unknown_field_names_file_and_field() {
    let e = parse_err("[image]\ndescription = \"d\"\n[[module]]\nbinary = \"init\"\nargz = []\n");
    assert!(e.starts_with("t.toml:"), "{e}");
    assert!(e.contains("argz"), "{e}");
}

#[test]
fn missing_description_is_an_error() {
    let e = parse_err("[image]\n[[module]]\nbinary = \"init\"\n");
    assert!(e.contains("description"), "{e}");
}

#[test]
fn empty_description_is_an_error() {
    let e = parse_err("[image]\ndescription = \"  \"\n[[module]]\nbinary = \"init\"\n");
    assert!(e.contains("image.description"), "{e}");
}

#[test]
fn wrong_type_is_an_error() {
    let e = parse_err(
        "[image]\ndescription = \"d\"\nmemory_mib = \"lots\"\n[[module]]\nbinary = \"i\"\n",
    );
    assert!(e.contains("memory_mib"), "{e}");
}

#[test]
fn bad_values_are_errors() {
    let no_modules = parse_err("[image]\ndescription = \"d\"\n");
    assert!(no_modules.contains("module"), "{no_modules}");
    let space =
        parse_err("[image]\ndescription = \"d\"\n[[module]]\nbinary = \"i\"\nargs = [\"a b\"]\n");
    assert!(space.contains("module[0].args[0]"), "{space}");
    assert!(space.contains("whitespace"), "{space}");
    let empty =
        parse_err("[image]\ndescription = \"d\"\n[[module]]\nbinary = \"i\"\nargs = [\"\"]\n");
    assert!(empty.contains("module[0].args[0]"), "{empty}");
    let binary = parse_err("[image]\ndescription = \"d\"\n[[module]]\nbinary = \"a b\"\n");
    assert!(binary.contains("module[0].binary"), "{binary}");
    let timeout =
        parse_err("[image]\ndescription = \"d\"\ntimeout_secs = 0\n[[module]]\nbinary = \"i\"\n");
    assert!(timeout.contains("image.timeout_secs"), "{timeout}");
    let memory =
        parse_err("[image]\ndescription = \"d\"\nmemory_mib = 1\n[[module]]\nbinary = \"i\"\n");
    assert!(memory.contains("image.memory_mib"), "{memory}");
}

#[test]
fn binaries_are_distinct_in_order() {
    let m = parse_ok(
        "[image]\ndescription = \"d\"\n[[module]]\nbinary = \"b\"\n[[module]]\nbinary = \"a\"\n[[module]]\nbinary = \"b\"\n",
    );
    assert_eq!(m.binaries(), ["b", "a"]);
}

#[test]
fn bad_image_names_are_rejected() {
    assert!(load("../etc").is_err());
    assert!(load("").is_err());
    let missing = load("no-such-image").unwrap_err().message;
    assert!(missing.contains("no image 'no-such-image'"), "{missing}");
}

#[test]
fn shipped_manifests_parse() {
    let default = load("default").unwrap();
    // init comes first; the examples after it change over time.
    assert!(default.initrd() == "init" || default.initrd().starts_with("init,"));
    // The test image's first module is the runner; the rest are its
    // helpers (their list changes as tests are added).
    let test = load("test").unwrap();
    assert!(test.initrd().starts_with("mhtest runner,mhtest helper "));
}

#[test]
fn supervision_fields_become_loader_options() {
    let m = parse_ok(
        r#"
        [image]
        description = "d"
        [[module]]
        binary = "init"
        [[module]]
        binary = "echo-server"
        priority = 2
        memory_limit_kib = 512
        registers = "echo"
        restart = true
        args = ["x"]
        "#,
    );
    assert_eq!(
        m.initrd(),
        "init,echo-server @priority=2 @memory_kib=512 @registers=echo @restart x"
    );
    assert_eq!(m.modules[1].registers.as_deref(), Some("echo"));
    assert!(m.modules[1].restart && !m.modules[0].restart);
}

#[test]
fn supervision_fields_are_validated() {
    let head = "[image]\ndescription = \"d\"\n[[module]]\nbinary = \"init\"\n";
    let module = |extra: &str| format!("{head}[[module]]\nbinary = \"s\"\n{extra}\n");
    let small = parse_err(&module("memory_limit_kib = 4"));
    assert!(small.contains("module[1].memory_limit_kib"), "{small}");
    assert!(small.contains("out of range"), "{small}");
    let big = parse_err(&module("memory_limit_kib = 999999999"));
    assert!(big.contains("262144 KiB"), "{big}");
    let long = parse_err(&module(&format!("registers = \"{}\"", "n".repeat(33))));
    assert!(long.contains("module[1].registers"), "{long}");
    let spaced = parse_err(&module("registers = \"a b\""));
    assert!(spaced.contains("white space"), "{spaced}");
    let twice = parse_err(&format!(
        "{head}[[module]]\nbinary = \"a\"\nregisters = \"x\"\n[[module]]\nbinary = \"b\"\nregisters = \"x\"\n"
    ));
    assert!(twice.contains("module[2].registers"), "{twice}");
    assert!(twice.contains("already registered by module[1]"), "{twice}");
    let init =
        parse_err("[image]\ndescription = \"d\"\n[[module]]\nbinary = \"init\"\nrestart = true\n");
    assert!(init.contains("module[0]"), "{init}");
    assert!(init.contains("is init"), "{init}");
    let typo = parse_err(&module("restrat = true"));
    assert!(typo.contains("restrat"), "{typo}");
}

#[test]
fn start_false_marks_modules_for_the_shell() {
    let m = parse_ok(
        "[image]\ndescription = \"d\"\n[[module]]\nbinary = \"init\"\n[[module]]\nbinary = \"hello\"\nstart = false\nargs = [\"x\"]\n",
    );
    assert_eq!(m.initrd(), "init,hello @nostart x");
    assert!(!m.modules[1].start && m.modules[0].start);
    let bad = parse_err(
        "[image]\ndescription = \"d\"\n[[module]]\nbinary = \"init\"\n[[module]]\nbinary = \"s\"\nstart = false\nrestart = true\n",
    );
    assert!(bad.contains("module[1].start"), "{bad}");
    let init =
        parse_err("[image]\ndescription = \"d\"\n[[module]]\nbinary = \"init\"\nstart = false\n");
    assert!(init.contains("module[0]"), "{init}");
}

#[test]
fn system_is_a_loader_option_and_not_for_init() {
    let m = parse_ok(
        "[image]\ndescription = \"d\"\n[[module]]\nbinary = \"init\"\n[[module]]\nbinary = \"console\"\nsystem = true\n",
    );
    assert_eq!(m.initrd(), "init,console @system");
    assert!(m.modules[1].system && !m.modules[0].system);
    let init =
        parse_err("[image]\ndescription = \"d\"\n[[module]]\nbinary = \"init\"\nsystem = true\n");
    assert!(
        init.contains("module[0]") && init.contains("system"),
        "{init}"
    );
}

#[test]
fn devices_become_a_loader_option() {
    let m = parse_ok(
        "[image]\ndescription = \"d\"\n[[module]]\nbinary = \"init\"\n[[module]]\nbinary = \"echo-server\"\nregisters = \"echo\"\n[[module]]\nbinary = \"c\"\ndevices = [\"echo\", \"klog\", \"init\"]\nargs = [\"x\"]\n[[module]]\nbinary = \"d\"\ndevices = []\n",
    );
    assert_eq!(
        m.initrd(),
        "init,echo-server @registers=echo,c @devices=echo,,klog,,init x,d @devices="
    );
    assert_eq!(m.modules[2].devices.as_deref().map(<[_]>::len), Some(3));
    assert_eq!(m.modules[1].devices, None);
}

#[test]
fn devices_are_validated() {
    let head =
        "[image]\ndescription = \"d\"\n[[module]]\nbinary = \"init\"\n[[module]]\nbinary = \"s\"\n";
    let case = |extra: &str| parse_err(&format!("{head}{extra}"));
    let typo = case("devices = [\"consol\"]\n");
    assert!(
        typo.contains("module[1].devices[0]") && typo.contains("'consol'"),
        "{typo}"
    );
    assert!(case("devices = [\"a b\"]\n").contains("white space"));
    assert!(case("devices = [\"a,b\"]\n").contains("','"));
    assert!(case("devices = [\"klog\", \"klog\"]\n").contains("twice"));
    assert!(case("devices = [\"\"]\n").contains("1 to 32"));
    let many: Vec<String> = (0..17).map(|i| format!("\"n{i}\"")).collect();
    let many = case(&format!("system = true\ndevices = [{}]\n", many.join(", ")));
    assert!(many.contains("at most 16"), "{many}");
    let init = parse_err(
        "[image]\ndescription = \"d\"\n[[module]]\nbinary = \"init\"\ndevices = [\"klog\"]\n",
    );
    assert!(
        init.contains("module[0]") && init.contains("devices"),
        "{init}"
    );
    // Drivers name hardware devices they make themselves: not checked.
    let m = parse_ok(&format!(
        "{head}system = true\ndevices = [\"com1\", \"platform\"]\n"
    ));
    assert!(m.modules[1].system);
    // A name registered by a module the shell runs later is known too.
    parse_ok(&format!(
        "{head}devices = [\"dma\"]\n[[module]]\nbinary = \"dma\"\nregisters = \"dma\"\nstart = false\n"
    ));
}

#[test]
fn command_lines_the_kernel_would_cut_are_refused() {
    let args: Vec<String> = (0..30).map(|i| format!("\"argument{i}\"")).collect();
    let long = parse_err(&format!(
        "[image]\ndescription = \"d\"\n[[module]]\nbinary = \"init\"\nargs = [{}]\n",
        args.join(", ")
    ));
    assert!(long.contains("module[0]") && long.contains("255"), "{long}");
}

#[test]
fn init_args_can_be_added_within_the_command_line_limit() {
    let mut m = parse_ok(
        "[image]\ndescription = \"d\"\n[[module]]\nbinary = \"mhtest\"\nargs = [\"runner\"]\n[[module]]\nbinary = \"b\"\n",
    );
    m.push_init_arg("pass=smp4").unwrap();
    assert_eq!(m.initrd(), "mhtest runner pass=smp4,b");
    assert!(m.push_init_arg("two words").is_err());
    assert!(m.push_init_arg("@restart").is_err());
    let long = "x".repeat(250);
    let e = m.push_init_arg(&long).unwrap_err().message;
    assert!(e.contains("module[0]") && e.contains("at most 255"), "{e}");
    // A refused argument is not left behind.
    assert_eq!(m.modules[0].args, ["runner", "pass=smp4"]);
}

#[test]
fn bench_boot_is_the_default_image_with_a_reporting_shell() {
    let default = load("default").expect("default.toml");
    let boot = load("bench-boot").expect("bench-boot.toml");
    // `cargo xtask bench` measures the boot of the default image through
    // bench-boot.toml: a change to one must be made to the other.
    const KEEP_IN_STEP: &str = "tools/images/bench-boot.toml must list default.toml's modules, \
        in the same order with the same fields (only the shell's args differ: [\"report-boot\"]); \
        change both files together";
    let names = |m: &Manifest| {
        m.modules
            .iter()
            .map(|m| m.binary.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&boot), names(&default), "{KEEP_IN_STEP}");
    assert_eq!(boot.machine, default.machine, "{KEEP_IN_STEP}");
    assert_eq!(
        boot.nics, default.nics,
        "{KEEP_IN_STEP} (and the same [[nic]])"
    );
    for (b, d) in boot.modules.iter().zip(&default.modules) {
        if d.binary == "shell" {
            assert_eq!(b.args, ["report-boot"], "{KEEP_IN_STEP}");
            assert_eq!(
                Module {
                    args: Vec::new(),
                    ..b.clone()
                },
                *d,
                "{KEEP_IN_STEP}"
            );
        } else {
            assert_eq!(b, d, "{KEEP_IN_STEP}");
        }
    }
}

/// A manifest of init and the given `[[disk]]` tables.
fn with_disks(disks: &str) -> String {
    format!("[image]\ndescription = \"d\"\n[[module]]\nbinary = \"init\"\n{disks}")
}

#[test]
fn disks_get_names_by_position_and_are_fresh_by_default() {
    let m = parse_ok(&with_disks(
        "[[disk]]\nsize = \"16 MiB\"\n[[disk]]\nname = \"scratch\"\nsize = 65536\n[[disk]]\nsize = \"1 GiB\"\npersist = true\n",
    ));
    let summary: Vec<_> = m
        .disks
        .iter()
        .map(|d| (d.name.as_str(), d.bytes, d.persist, d.from.is_some()))
        .collect();
    assert_eq!(
        summary,
        [
            ("disk0", 16 << 20, false, false),
            ("scratch", 64 << 10, false, false),
            ("disk2", 1 << 30, true, false),
        ]
    );
    assert!(parse_ok(&with_disks("")).disks.is_empty());
}

#[test]
fn disk_sizes_are_bytes_or_binary_units() {
    let size_of =
        |size: &str| parse_ok(&with_disks(&format!("[[disk]]\nsize = {size}\n"))).disks[0].bytes;
    assert_eq!(size_of("\"64 KiB\""), 64 * 1024);
    assert_eq!(size_of("\"16MiB\""), 16 << 20);
    assert_eq!(size_of("\" 4 GiB \""), 4 << 30);
    assert_eq!(size_of("\"131072\""), 128 * 1024);
    assert_eq!(size_of("1048576"), 1 << 20);
}

#[test]
fn bad_disk_sizes_name_the_field() {
    let size_err = |size: &str| {
        parse_err(&with_disks(&format!(
            "[[disk]]\nsize = \"1 MiB\"\n[[disk]]\nsize = {size}\n"
        )))
    };
    for (size, why) in [
        ("\"16 MB\"", "\"16 MB\" is not a size"),
        ("\"lots\"", "\"lots\" is not a size"),
        ("\"MiB\"", "\"MiB\" is not a size"),
        ("\"1.5 MiB\"", "\"1.5 MiB\" is not a size"),
        ("-1", "-1 is negative"),
        ("1.5", "is a float, not a size"),
        ("true", "is a boolean, not a size"),
        (
            "1000000",
            "1000000 bytes is not a whole number of 512-byte sectors",
        ),
        ("\"65537\"", "65537 bytes is not a whole number"),
        ("512", "512 bytes is out of range (64 KiB to 4 GiB)"),
        ("\"32 KiB\"", "32 KiB is out of range"),
        ("0", "0 bytes is out of range"),
        ("\"5 GiB\"", "5 GiB is out of range"),
        ("\"4294967808\"", "4294967808 bytes is out of range"),
        ("\"99999999999 GiB\"", "is out of range"),
    ] {
        let e = size_err(size);
        assert!(e.starts_with("t.toml: disk[1].size: "), "{size}: {e}");
        assert!(e.contains(why), "{size}: {e}");
    }
    let missing = parse_err(&with_disks("[[disk]]\nname = \"a\"\n"));
    assert!(
        missing.starts_with("t.toml: disk[0].size: is missing"),
        "{missing}"
    );
    let typo = parse_err(&with_disks("[[disk]]\nsize = 65536\npersists = true\n"));
    assert!(
        typo.starts_with("t.toml:") && typo.contains("persists"),
        "{typo}"
    );
}

#[test]
fn disk_names_are_short_lower_case_identifiers_and_unique() {
    for (name, why) in [
        ("Disk", "may only have a-z, 0-9 and '-'"),
        ("a_b", "may only have a-z, 0-9 and '-'"),
        ("a.b", "may only have a-z, 0-9 and '-'"),
        ("0disk", "does not start with a letter"),
        ("-disk", "does not start with a letter"),
        ("", "is not 1 to 16 characters long"),
        ("abcdefghijklmnopq", "is not 1 to 16 characters long"),
    ] {
        let e = parse_err(&with_disks(&format!(
            "[[disk]]\nsize = 65536\n[[disk]]\nname = \"{name}\"\nsize = 65536\n"
        )));
        assert!(
            e.starts_with(&format!("t.toml: disk[1].name: '{name}' {why}")),
            "{name}: {e}"
        );
    }
    parse_ok(&with_disks(
        "[[disk]]\nname = \"abcdefghijklmnop\"\nsize = 65536\n",
    ));
    let twice = parse_err(&with_disks(
        "[[disk]]\nname = \"a\"\nsize = 65536\n[[disk]]\nname = \"a\"\nsize = 65536\n",
    ));
    assert!(
        twice.starts_with("t.toml: disk[1].name: 'a' is already disk[0]'s name"),
        "{twice}"
    );
    let default_taken = parse_err(&with_disks(
        "[[disk]]\nname = \"disk1\"\nsize = 65536\n[[disk]]\nsize = 65536\n",
    ));
    assert!(
        default_taken
            .starts_with("t.toml: disk[1].name: 'disk1' (its default name) is already disk[0]'s"),
        "{default_taken}"
    );
}

#[test]
fn an_image_has_at_most_four_disks() {
    let four = "[[disk]]\nsize = 65536\n".repeat(4);
    assert_eq!(parse_ok(&with_disks(&four)).disks.len(), 4);
    let e = parse_err(&with_disks(&format!("{four}[[disk]]\nsize = 65536\n")));
    assert!(
        e.starts_with("t.toml: disk: 5 [[disk]] entries; an image has at most 4"),
        "{e}"
    );
}

#[test]
fn from_files_are_found_beside_the_manifest_and_must_fit() {
    let dir = crate::testdir::TestDir::new("manifest-from");
    let manifest = dir.path().join("t.toml");
    fs::write(dir.path().join("small.img"), vec![7u8; 1000]).unwrap();
    fs::write(dir.path().join("sectors.img"), vec![7u8; 128 * 1024]).unwrap();
    let parse_here = |disks: &str| parse("t", &manifest, &with_disks(disks));

    let padded = parse_here("[[disk]]\nfrom = \"small.img\"\nsize = \"64 KiB\"\n").unwrap();
    assert_eq!(padded.disks[0].from, Some(dir.path().join("small.img")));
    assert_eq!(padded.disks[0].bytes, 64 * 1024);
    // Without a size, the file's own.
    let own = parse_here("[[disk]]\nfrom = \"sectors.img\"\n").unwrap();
    assert_eq!(own.disks[0].bytes, 128 * 1024);

    let file = paths::display(&manifest);
    let error = |disks: &str| parse_here(disks).unwrap_err().message;
    let larger = error("[[disk]]\nfrom = \"sectors.img\"\nsize = \"64 KiB\"\n");
    assert!(
        larger.starts_with(&format!("{file}: disk[0].from: ")),
        "{larger}"
    );
    assert!(
        larger.contains("sectors.img is 131072 bytes, larger than the disk's size (64 KiB)"),
        "{larger}"
    );
    let missing = error("[[disk]]\nsize = 65536\n[[disk]]\nfrom = \"none.img\"\nsize = 65536\n");
    assert!(
        missing.starts_with(&format!("{file}: disk[1].from: ")),
        "{missing}"
    );
    assert!(
        missing
            .contains("none.img does not exist (`from` is relative to the manifest's directory)"),
        "{missing}"
    );
    let odd = error("[[disk]]\nfrom = \"small.img\"\n");
    assert!(odd.starts_with(&format!("{file}: disk[0].from: ")), "{odd}");
    assert!(odd.contains("sets the disk's size"), "{odd}");
    assert!(
        odd.contains("with `size`, a smaller file is padded"),
        "{odd}"
    );
    let directory = error("[[disk]]\nfrom = \".\"\nsize = 65536\n");
    assert!(directory.contains("is not a regular file"), "{directory}");
    let empty = error("[[disk]]\nfrom = \"\"\nsize = 65536\n");
    assert!(
        empty.starts_with(&format!("{file}: disk[0].from: is empty")),
        "{empty}"
    );
}

#[test]
fn disks_become_modern_virtio_blk_devices_behind_the_platform_translation() {
    let m = parse_ok(&with_disks("[[disk]]\nname = \"data\"\nsize = 65536\n"));
    assert_eq!(
        m.disks[0].qemu_args(Path::new("/w/target/mh/disks/t/data.img")),
        [
            "-drive",
            "file=/w/target/mh/disks/t/data.img,if=none,id=data,format=raw",
            "-device",
            "virtio-blk-pci,drive=data,serial=data,disable-legacy=on,iommu_platform=on",
        ]
    );
    // QEMU reads ",," in an option value as one comma.
    let args = m.disks[0].qemu_args(Path::new("/a,b/data.img"));
    assert_eq!(args[1], "file=/a,,b/data.img,if=none,id=data,format=raw");
}

#[test]
fn also_registers_names_more_devices_others_may_list() {
    let ok = "[image]\ndescription = \"d\"\n[[module]]\nbinary = \"init\"\n\
        [[module]]\nbinary = \"virtio-blk\"\nsystem = true\nregisters = \"disk0\"\nalso_registers = [\"disk0-ro\"]\n\
        [[module]]\nbinary = \"hello\"\ndevices = [\"disk0-ro\"]\n";
    let m = parse_ok(ok);
    assert_eq!(m.modules[1].also_registers, ["disk0-ro"]);
    assert!(m.modules[1].registers_name("disk0-ro") && m.modules[1].registers_name("disk0"));
    // Not registered by anyone: refused, naming the field.
    let unknown = ok.replace("also_registers = [\"disk0-ro\"]\n", "");
    assert!(parse_err(&unknown).contains("module[2].devices[0]"));
    // A name twice, or one another module registers.
    let twice = ok.replace("[\"disk0-ro\"]", "[\"disk0-ro\", \"disk0-ro\"]");
    assert!(parse_err(&twice).contains("module[1].also_registers[1]"));
    let same = ok.replace("[\"disk0-ro\"]", "[\"disk0\"]");
    assert!(parse_err(&same).contains("module[1].also_registers[0]"));
    let bad = ok.replace("[\"disk0-ro\"]", "[\"two words\"]");
    assert!(parse_err(&bad).contains("module[1].also_registers[0]"));
}

fn with_nics(nics: &str) -> String {
    format!("[image]\ndescription = \"d\"\n[[module]]\nbinary = \"init\"\n{nics}")
}

#[test]
fn nics_get_ids_by_position_and_forwards_their_ports() {
    let m = parse_ok(&with_nics(
        "[[nic]]\nmodel = \"virtio-net\"\nforward = [{ guest = 80 }, { guest = 7, host = 8007 }]\n[[nic]]\n",
    ));
    assert_eq!(m.nics.len(), 2);
    assert_eq!(m.nics[0].id, "net0");
    assert_eq!(m.nics[1].id, "net1");
    let f = &m.nics[0].forwards;
    assert_eq!((f[0].guest, f[0].host), (80, None));
    assert_eq!((f[1].guest, f[1].host), (7, Some(8007)));
    let args = m.nics[0].qemu_args(0, &[40000, 8007]);
    assert_eq!(args[0], "-netdev");
    assert_eq!(
        args[1],
        "user,id=net0,hostfwd=tcp:127.0.0.1:40000-:80,hostfwd=tcp:127.0.0.1:8007-:7"
    );
    assert_eq!(
        args[3],
        "virtio-net-pci,netdev=net0,mac=52:54:00:12:34:56,disable-legacy=on,iommu_platform=on"
    );
    assert!(parse_ok(&with_nics("")).nics.is_empty());
}

#[test]
fn nic_errors_name_their_field() {
    for (nics, want) in [
        (
            "[[nic]]\nmodel = \"e1000\"\n",
            "nic[0].model: 'e1000' is not a model MH drives",
        ),
        (
            "[[nic]]\nforward = [{ host = 80 }]\n",
            "nic[0].forward[0].guest: is missing",
        ),
        (
            "[[nic]]\nforward = [{ guest = 0 }]\n",
            "nic[0].forward[0].guest: 0 is not a TCP port",
        ),
        (
            "[[nic]]\nforward = [{ guest = 80, host = 70000 }]\n",
            "nic[0].forward[0].host: 70000 is not a TCP port",
        ),
        (
            "[[nic]]\nforward = [{ guest = 80 }, { guest = 80 }]\n",
            "nic[0].forward[1].guest: port 80 is forwarded already (forward[0])",
        ),
        (
            "[[nic]]\nforward = [{ guest = 80, host = 9 }, { guest = 81, host = 9 }]\n",
            "nic[0].forward[1].host: port 9 is forward[0]'s already",
        ),
        (
            "[[nic]]\n[[nic]]\n[[nic]]\n",
            "nic: 3 [[nic]] entries; an image has at most 2",
        ),
    ] {
        let e = parse_err(&with_nics(nics));
        assert!(e.starts_with(&format!("t.toml: {want}")), "{nics}: {e}");
    }
    let typo = parse_err(&with_nics("[[nic]]\nforwards = []\n"));
    assert!(
        typo.starts_with("t.toml:") && typo.contains("forwards"),
        "{typo}"
    );
}

#[test]
fn a_host_check_is_http_or_an_error_naming_the_stage() {
    let with = |host: &str| {
        format!(
            "[image]\ndescription = \"d\"\n[[module]]\nbinary = \"init\"\n[expect]\noutcome = \"clean\"\n\
             input = [{{ after = \"a\", text = \"b\" }}, {{ after = \"c\", text = \"d\", host = \"{host}\" }}]\n"
        )
    };
    let m = parse_ok(&with("http"));
    let input = &m.expect.unwrap().input;
    assert_eq!(input[0].host, None);
    assert_eq!(input[1].host, Some(crate::manifest::HostCheck::Http));
    let e = parse_err(&with("ftp"));
    assert!(
        e.starts_with("t.toml: expect.input[1].host: 'ftp' is not a host check"),
        "{e}"
    );
}

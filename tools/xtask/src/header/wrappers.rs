//! The C system-call wrappers appended to mh.h: a raw `mh_syscall6` and one
//! typed `static inline` function per `abi::Sysno` variant.
//!
//! Rules: [`WRAPPERS`] has exactly one entry per system call, named and
//! ordered as abi's doc comments name them (`getpid()` → `mh_getpid`);
//! tests check it against `Sysno::ALL` and against the argument lists in
//! abi/src/syscall.rs, so a new system call without a wrapper fails the
//! tests. Every wrapper returns the raw result word (`long`) unchanged; only
//! `exit`, which cannot fail, is `noreturn`. Pointers and integers are
//! passed as 64-bit words, pointers through `uintptr_t` so no sign or
//! width surprise can creep in.

use std::fmt::Write as _;

use abi::Sysno;

/// One argument of a wrapper: its C type and name.
#[derive(Clone, Copy, Debug)]
pub struct Param {
    pub ty: &'static str,
    pub name: &'static str,
}

impl Param {
    /// Whether the argument is a pointer (object or function), which goes
    /// through `uintptr_t` to become a word.
    fn is_pointer(&self) -> bool {
        self.ty.ends_with('*') || self.ty == HANDLER_TYPE
    }
}

/// One typed wrapper.
#[derive(Clone, Copy, Debug)]
pub struct Wrapper {
    pub sysno: Sysno,
    /// The call's name in abi's docs; the C function is `mh_<name>`.
    pub name: &'static str,
    pub params: &'static [Param],
    /// `exit`: the wrapper is `void` and `noreturn`.
    pub noreturn: bool,
    /// `dev_poll`, `dev_reply_poll`: the call takes its request pointer
    /// (the parameter called `out`) as 0 and the kernel answers in rdi,
    /// rsi, rdx and r10, which the wrapper declares as outputs and copies
    /// to `*out` when `out` is not NULL. The kernel's IPC fast path is
    /// taken only with the register form, so C servers get it too.
    pub request_in_registers: bool,
    /// What the wrapper returns, for its C comment.
    pub doc: &'static str,
}

/// The C type of an interrupt/fault handler entry (`set_handler`).
pub const HANDLER_TYPE: &str = "MhHandler";

const fn p(ty: &'static str, name: &'static str) -> Param {
    Param { ty, name }
}

const fn w(
    sysno: Sysno,
    name: &'static str,
    params: &'static [Param],
    doc: &'static str,
) -> Wrapper {
    Wrapper {
        sysno,
        name,
        params,
        noreturn: false,
        request_in_registers: false,
        doc,
    }
}

/// Every system call's wrapper, in number order.
pub const WRAPPERS: &[Wrapper] = &[
    w(
        Sysno::LogWrite,
        "log_write",
        &[p("const void *", "buf"), p("size_t", "len")],
        "Appends len (<= MH_LOG_WRITE_MAX) bytes to the kernel log; returns len.",
    ),
    Wrapper {
        noreturn: true,
        ..w(
            Sysno::Exit,
            "exit",
            &[p("long", "status")],
            "Ends the calling process with `status`; never returns.",
        )
    },
    w(
        Sysno::GetPid,
        "getpid",
        &[],
        "Returns the caller's process id (init is 1).",
    ),
    w(
        Sysno::Yield,
        "yield",
        &[],
        "Lets the next runnable process of the same priority run; returns 0.",
    ),
    w(
        Sysno::WaitChild,
        "wait_child",
        &[p("MhExitStatus *", "out"), p("uint64_t", "flags")],
        "Reaps one exited child into *out; returns its pid. flags: MH_WAIT_NOHANG.",
    ),
    w(
        Sysno::LogRead,
        "log_read",
        &[p("uint64_t", "pos"), p("void *", "buf"), p("size_t", "len")],
        "Reads the kernel log from position pos; returns the count (0 at the end).",
    ),
    w(
        Sysno::Fork,
        "fork",
        &[],
        "Returns the child's pid in the parent and 0 in the child.",
    ),
    w(
        Sysno::Exec,
        "exec",
        &[
            p("const void *", "image"),
            p("size_t", "image_len"),
            p("const char *", "cmdline"),
            p("size_t", "cmdline_len"),
        ],
        "Replaces the caller's program with the ELF image; returns only on error.",
    ),
    w(
        Sysno::VmMap,
        "vm_map",
        &[
            p("uint64_t", "va"),
            p("uint64_t", "len"),
            p("uint64_t", "prot"),
        ],
        "Maps fresh zeroed pages with MH_PROT_* | MH_VM_* bits; returns 0.",
    ),
    w(
        Sysno::VmProtect,
        "vm_protect",
        &[
            p("uint64_t", "va"),
            p("uint64_t", "len"),
            p("uint64_t", "prot"),
        ],
        "Changes the protection of mapped pages; returns 0.",
    ),
    w(
        Sysno::VmUnmap,
        "vm_unmap",
        &[p("uint64_t", "va"), p("uint64_t", "len")],
        "Unmaps pages; returns 0.",
    ),
    w(
        Sysno::VmMove,
        "vm_move",
        &[
            p("uint64_t", "dst"),
            p("uint64_t", "src"),
            p("uint64_t", "len"),
        ],
        "Moves the mappings at src to dst, replacing what was there; returns 0.",
    ),
    w(
        Sysno::SetHandler,
        "set_handler",
        &[
            p(HANDLER_TYPE, "entry"),
            p("void *", "stack_base"),
            p("size_t", "stack_size"),
        ],
        "Registers the fault/interrupt handler and its stack; returns 0.",
    ),
    w(
        Sysno::IntReturn,
        "int_return",
        &[p("const MhIntFrame *", "frame")],
        "Resumes the context in *frame; returns only on error.",
    ),
    w(
        Sysno::IntEnable,
        "int_enable",
        &[p("uint64_t", "on")],
        "Allows (1) or holds (0) interrupt delivery; returns the previous state.",
    ),
    w(
        Sysno::IrqWait,
        "irq_wait",
        &[p("uint64_t", "mask")],
        "Sleeps until a vector in mask is pending; takes and returns those vectors.",
    ),
    w(
        Sysno::IrqRaise,
        "irq_raise",
        &[p("uint64_t", "vector")],
        "Makes a vector pending on the caller; returns 0.",
    ),
    w(
        Sysno::SetPriority,
        "set_priority",
        &[p("uint64_t", "pid"), p("uint64_t", "priority")],
        "Sets a process's scheduling priority; returns 0.",
    ),
    w(
        Sysno::SysInfo,
        "sys_info",
        &[p("MhSysInfo *", "out")],
        "Fills *out with system counters; returns 0.",
    ),
    w(
        Sysno::Attach,
        "attach",
        &[
            p("uint64_t", "registry"),
            p("const char *", "name"),
            p("size_t", "name_len"),
            p("uint64_t", "rights"),
        ],
        "Attaches a device by name; returns the handle.",
    ),
    w(
        Sysno::Detach,
        "detach",
        &[p("uint64_t", "handle")],
        "Detaches a handle; returns 0.",
    ),
    w(
        Sysno::Info,
        "info",
        &[p("uint64_t", "handle"), p("MhDeviceInfo *", "out")],
        "Fills *out with what the handle names; returns 0.",
    ),
    w(
        Sysno::Restrict,
        "restrict",
        &[p("uint64_t", "handle"), p("uint64_t", "rights")],
        "Keeps only these rights of the handle; returns 0.",
    ),
    w(
        Sysno::PortIn,
        "port_in",
        &[
            p("uint64_t", "handle"),
            p("uint64_t", "port"),
            p("uint64_t", "size"),
        ],
        "Reads a port; returns its value.",
    ),
    w(
        Sysno::PortOut,
        "port_out",
        &[
            p("uint64_t", "handle"),
            p("uint64_t", "port"),
            p("uint64_t", "size"),
            p("uint64_t", "value"),
        ],
        "Writes a port; returns 0.",
    ),
    w(
        Sysno::Export,
        "export",
        &[
            p("uint64_t", "handle"),
            p("void *", "va"),
            p("size_t", "len"),
            p("uint64_t", "flags"),
            p("uint64_t *", "pages"),
            p("size_t", "pages_len"),
        ],
        "Lets the device reach memory; pages gets physical pages, if any.",
    ),
    w(
        Sysno::Unexport,
        "unexport",
        &[p("uint64_t", "handle"), p("uint64_t", "iova")],
        "Withdraws an export; returns 0.",
    ),
    w(
        Sysno::IrqMap,
        "irq_map",
        &[
            p("uint64_t", "handle"),
            p("uint64_t", "line"),
            p("uint64_t", "vector"),
        ],
        "Maps a device line to a vector; returns 0.",
    ),
    w(
        Sysno::IrqAck,
        "irq_ack",
        &[p("uint64_t", "handle"), p("uint64_t", "line")],
        "Acknowledges a device line; returns 0.",
    ),
    w(
        Sysno::DevCreate,
        "dev_create",
        &[
            p("uint64_t", "registry"),
            p("const MhDeviceConfig *", "config"),
        ],
        "Creates and registers a user device; returns its serving handle.",
    ),
    Wrapper {
        request_in_registers: true,
        ..w(
            Sysno::DevPoll,
            "dev_poll",
            &[
                p("uint64_t", "dev"),
                p("MhRequest *", "out"),
                p("uint64_t", "flags"),
            ],
            "Takes the next request into *out (if not NULL); returns its client id.",
        )
    },
    w(
        Sysno::DevWriteIospace,
        "dev_write_iospace",
        &[
            p("uint64_t", "dev"),
            p("uint64_t", "client"),
            p("uint64_t", "port"),
            p("uint64_t", "size"),
            p("uint64_t", "value"),
        ],
        "Writes a client's I/O space; returns 0.",
    ),
    w(
        Sysno::DevIrq,
        "dev_irq",
        &[
            p("uint64_t", "dev"),
            p("uint64_t", "client"),
            p("uint64_t", "line"),
        ],
        "Raises a client's line; returns 0.",
    ),
    w(
        Sysno::DevDmaRead,
        "dev_dma_read",
        &[
            p("uint64_t", "dev"),
            p("uint64_t", "client"),
            p("uint64_t", "iova"),
            p("void *", "buf"),
            p("size_t", "len"),
        ],
        "Copies from a client's export into buf; returns 0.",
    ),
    w(
        Sysno::DevDmaWrite,
        "dev_dma_write",
        &[
            p("uint64_t", "dev"),
            p("uint64_t", "client"),
            p("const void *", "buf"),
            p("size_t", "len"),
            p("uint64_t", "iova"),
        ],
        "Copies buf into a client's export; returns 0.",
    ),
    w(
        Sysno::PortOutWait,
        "port_out_wait",
        &[
            p("uint64_t", "handle"),
            p("uint64_t", "port"),
            p("uint64_t", "size"),
            p("uint64_t", "value"),
            p("uint64_t", "mask"),
        ],
        "Writes a port, then waits for a vector of mask.",
    ),
    Wrapper {
        request_in_registers: true,
        ..w(
            Sysno::DevReplyPoll,
            "dev_reply_poll",
            &[
                p("uint64_t", "dev"),
                p("uint64_t", "client"),
                p("uint64_t", "port_size"),
                p("uint64_t", "value"),
                p("uint64_t", "line"),
                p("MhRequest *", "out"),
            ],
            "Answers a client, then takes the next request into *out (if not NULL).",
        )
    },
    w(
        Sysno::IoMap,
        "iomap",
        &[
            p("uint64_t", "handle"),
            p("uint64_t", "va"),
            p("uint64_t", "phys"),
            p("uint64_t", "len"),
        ],
        "Maps a hardware device's memory at va; returns 0.",
    ),
    w(
        Sysno::IoUnmap,
        "iounmap",
        &[
            p("uint64_t", "handle"),
            p("uint64_t", "va"),
            p("uint64_t", "len"),
        ],
        "Unmaps device memory mapped through the handle; returns 0.",
    ),
    w(
        Sysno::RestrictNames,
        "restrict_names",
        &[p("const char *", "list"), p("size_t", "len")],
        "Keeps only these attachable names (NUL-separated); returns 0.",
    ),
    w(
        Sysno::SetAffinity,
        "set_affinity",
        &[p("uint64_t", "pid"), p("uint64_t", "mask")],
        "Binds a process to the CPUs of mask (bit i: CPU i; 0: any); returns 0.",
    ),
];

/// The C name of a system call's number: `MH_SYSNO_<VARIANT>`, the variant
/// in SCREAMING_SNAKE_CASE as cbindgen spells it (`GetPid` → `GET_PID`).
pub fn sysno_constant(sysno: Sysno) -> String {
    format!("MH_SYSNO_{}", screaming_snake(&format!("{sysno:?}")))
}

/// `GetPid` → `GET_PID`. abi's variant names are plain CamelCase words
/// (no digits or acronyms), so splitting before each capital is exact.
fn screaming_snake(camel: &str) -> String {
    let mut out = String::new();
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

const RAW: &str = r#"
/*
 * System calls. MH_IS_ERROR(ret) is true for an error result and
 * MH_ERROR_OF(ret) is its MH_ERROR_* code.
 */
#define MH_IS_ERROR(ret) ((long)(ret) < 0)
#define MH_ERROR_OF(ret) ((MhError)-(long)(ret))

/*
 * A fault/interrupt handler: entered with the frame the kernel wrote on
 * the handler stack, it ends with mh_int_return(frame) and never returns.
 */
typedef void (*MhHandler)(MhIntFrame *frame);

/*
 * The raw system call: number in rax, arguments in rdi, rsi, rdx, r10, r8,
 * r9, result in rax; the instruction clobbers rcx and r11, and the kernel
 * may read or write memory through the arguments.
 */
static inline long mh_syscall6(uint64_t number, uint64_t a0, uint64_t a1,
                               uint64_t a2, uint64_t a3, uint64_t a4,
                               uint64_t a5) {
  /* r10, r8 and r9 have no constraint letter: bind them explicitly. */
  register uint64_t r10 __asm__("r10") = a3;
  register uint64_t r8 __asm__("r8") = a4;
  register uint64_t r9 __asm__("r9") = a5;
  long ret;
  __asm__ __volatile__("syscall"
                       : "=a"(ret)
                       : "a"(number), "D"(a0), "S"(a1), "d"(a2), "r"(r10),
                         "r"(r8), "r"(r9)
                       : "rcx", "r11", "memory");
  return ret;
}

/*
 * A system call that answers with a request in rdi, rsi, rdx and r10
 * (dev_poll and dev_reply_poll called with a null request pointer): those
 * four are outputs too, and land in *out (when not NULL) in memory order.
 */
static inline long mh_syscall6_request(uint64_t number, uint64_t a0,
                                       uint64_t a1, uint64_t a2, uint64_t a3,
                                       uint64_t a4, uint64_t a5,
                                       MhRequest *out) {
  register uint64_t r10 __asm__("r10") = a3;
  register uint64_t r8 __asm__("r8") = a4;
  register uint64_t r9 __asm__("r9") = a5;
  uint64_t w0 = a0, w1 = a1, w2 = a2;
  long ret;
  __asm__ __volatile__("syscall"
                       : "=a"(ret), "+D"(w0), "+S"(w1), "+d"(w2), "+r"(r10)
                       : "a"(number), "r"(r8), "r"(r9)
                       : "rcx", "r11", "memory");
  if (ret >= 0 && out) {
    /* MhRequest is these four words in this order (abi pins its layout). */
    uint64_t words[4] = {w0, w1, w2, r10};
    __builtin_memcpy(out, words, sizeof words);
  }
  return ret;
}
"#;

/// The text cbindgen appends after the types: the helpers, `mh_syscall6`
/// and every wrapper.
pub fn trailer() -> String {
    let mut out = String::from(RAW);
    for wrapper in WRAPPERS {
        render(&mut out, wrapper);
    }
    out
}

fn render(out: &mut String, wrapper: &Wrapper) {
    let params: Vec<String> = if wrapper.params.is_empty() {
        vec!["void".to_string()]
    } else {
        wrapper
            .params
            .iter()
            .map(|p| {
                if p.ty.ends_with('*') {
                    format!("{}{}", p.ty, p.name)
                } else {
                    format!("{} {}", p.ty, p.name)
                }
            })
            .collect()
    };
    let mut words = vec![sysno_constant(wrapper.sysno)];
    words.extend(wrapper.params.iter().map(|p| {
        if wrapper.request_in_registers && p.name == "out" {
            "0".to_string()
        } else if p.is_pointer() {
            format!("(uint64_t)(uintptr_t){}", p.name)
        } else if p.ty == "uint64_t" {
            p.name.to_string()
        } else {
            format!("(uint64_t){}", p.name)
        }
    }));
    words.resize(7, "0".to_string());
    let name = wrapper.name;
    let raw = if wrapper.request_in_registers {
        words.push("out".to_string());
        "mh_syscall6_request"
    } else {
        "mh_syscall6"
    };
    let (head, call) = if wrapper.noreturn {
        (
            format!("__attribute__((noreturn)) static inline void mh_{name}"),
            wrap("  (void)", "mh_syscall6", &words, ";"),
        )
    } else {
        (
            format!("static inline long mh_{name}"),
            wrap("  return ", raw, &words, ";"),
        )
    };
    // `let _ =`: writing to a String cannot fail.
    let _ = writeln!(out, "\n/* {} */", wrapper.doc);
    let _ = writeln!(out, "{}", wrap("", &head, &params, " {"));
    let _ = writeln!(out, "{call}");
    if wrapper.noreturn {
        let _ = writeln!(
            out,
            "  __builtin_trap(); /* exit cannot fail: never reached */"
        );
    }
    let _ = writeln!(out, "}}");
}

/// The width the generated C is wrapped at.
const WIDTH: usize = 80;

/// `{lead}{head}(items){tail}` on one line if it fits in [`WIDTH`]
/// columns, else with the items wrapped under the first one.
fn wrap(lead: &str, head: &str, items: &[String], tail: &str) -> String {
    let one = format!("{lead}{head}({}){tail}", items.join(", "));
    if one.len() <= WIDTH {
        return one;
    }
    let mut out = format!("{lead}{head}(");
    let pad = " ".repeat(out.len());
    let mut col = out.len();
    for (i, item) in items.iter().enumerate() {
        let piece = if i + 1 == items.len() {
            format!("{item}){tail}")
        } else {
            format!("{item},")
        };
        if i > 0 {
            if col + 1 + piece.len() > WIDTH {
                out.push('\n');
                out.push_str(&pad);
                col = pad.len();
            } else {
                out.push(' ');
                col += 1;
            }
        }
        col += piece.len();
        out.push_str(&piece);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_screaming_snake() {
        assert_eq!(sysno_constant(Sysno::GetPid), "MH_SYSNO_GET_PID");
        assert_eq!(sysno_constant(Sysno::Exit), "MH_SYSNO_EXIT");
        assert_eq!(sysno_constant(Sysno::SysInfo), "MH_SYSNO_SYS_INFO");
    }

    #[test]
    fn generated_lines_fit_the_width() {
        for line in trailer().lines() {
            assert!(line.len() <= WIDTH, "too long for mh.h: {line}");
        }
    }

    #[test]
    fn long_lists_wrap() {
        let items: Vec<String> = (0..8).map(|i| format!("argument_{i}")).collect();
        let text = wrap("  return ", "f", &items, ";");
        assert!(text.lines().count() > 1);
        assert!(text.lines().all(|l| l.len() <= WIDTH), "{text}");
        assert!(
            text.lines()
                .nth(1)
                .unwrap()
                .starts_with("           argument")
        );
        assert_eq!(wrap("", "f", &["a".to_string()], " {"), "f(a) {");
    }
}

"""`count-path`: counts the instructions one CPU executes from where it is
stopped, by single-stepping it, and prints them per function.

Loaded by the gdbinit that `cargo xtask gdb` writes. The other CPUs keep
running while the selected one steps (gdb's `scheduler-locking` is off), so
an IPI's target answers and a TLB shootdown's wait ends: the count is the
initiating CPU's own, which `-icount` cannot give on several CPUs (QEMU
then runs all vCPUs on one clock). QEMU's stub masks interrupts while
stepping, so no interrupt handler is counted in.

    count-path [iretq|hlt|return] [MAX]

stops at the first `iretq` (back to user mode), the first `hlt` (the CPU
goes idle), or the return from the function it is stopped at the start
of (`return`); at most MAX instructions (default 100000). Typical use,
for the kernel side of a system call:

    break *syscall_entry
    continue
    count-path iretq
"""

import collections
import struct

import gdb


def _pc():
    return int(gdb.parse_and_eval("$pc")) & 0xFFFFFFFFFFFFFFFF


def _function(pc):
    block = gdb.block_for_pc(pc)
    while block is not None and block.function is None:
        block = block.superblock
    if block is not None and block.function is not None:
        return block.function.print_name
    return "kernel (no symbol)" if pc >= 1 << 63 else "user mode"


class CountPath(gdb.Command):
    """count-path [iretq|hlt|return] [MAX]: count this CPU's instructions."""

    def __init__(self):
        super().__init__("count-path", gdb.COMMAND_RUNNING)

    def invoke(self, argument, from_tty):
        words = gdb.string_to_argv(argument)
        until = words[0] if words else "iretq"
        limit = int(words[1]) if len(words) > 1 else 100000
        if until not in ("iretq", "hlt", "return"):
            raise gdb.GdbError("count-path: stop at iretq, hlt or return")
        gdb.execute("set scheduler-locking off", to_string=True)
        ret = None
        if until == "return":
            sp = int(gdb.parse_and_eval("$rsp")) & 0xFFFFFFFFFFFFFFFF
            memory = gdb.selected_inferior().read_memory(sp, 8)
            ret = struct.unpack("<Q", bytes(memory))[0]
        per_function = collections.OrderedDict()
        count = 0
        while count < limit:
            pc = _pc()
            if pc == ret:
                break
            text = gdb.execute("x/i $pc", to_string=True)
            name = _function(pc)
            per_function[name] = per_function.get(name, 0) + 1
            count += 1
            if until in text.split("\t")[-1].split():
                break
            gdb.execute("stepi", to_string=True)
        for name, n in per_function.items():
            print("%8d  %s" % (n, name))
        print("%8d  instructions%s" % (count, " (limit reached)" if count >= limit else ""))


CountPath()

/*
 * hello-c: the C counterpart of examples/hello, built by `cargo xtask build`
 * with gcc against abi/include/mh.h alone (no libc). See docs/c.md.
 *
 * It prints its pid, forks, lets the child exit with status 7, reaps it and
 * exits 0 only if wait_child reported that very child with that status.
 */
#include <mh.h>

/* The layouts the kernel writes must be the ones this compiler sees; the
 * numbers are pinned by abi/src/layout.rs. */
_Static_assert(sizeof(MhExitStatus) == 48, "MhExitStatus layout");
_Static_assert(offsetof(MhExitStatus, code) == 8, "MhExitStatus.code");
_Static_assert(offsetof(MhExitStatus, fault_error) == 32, "MhExitStatus end");
_Static_assert(sizeof(MhIntFrame) == 192, "MhIntFrame layout");
_Static_assert(offsetof(MhIntFrame, rip) == 120, "MhIntFrame.rip");
_Static_assert(offsetof(MhIntFrame, kind) == 144, "MhIntFrame.kind");
_Static_assert(offsetof(MhIntFrame, pending) == 184, "MhIntFrame.pending");
_Static_assert(sizeof(MhSysInfo) == 80, "MhSysInfo layout");
_Static_assert(offsetof(MhSysInfo, handles) == 40, "MhSysInfo.handles");
_Static_assert(offsetof(MhSysInfo, tick_hz) == 32, "MhSysInfo.tick_hz");
_Static_assert(sizeof(long) == 8, "mh.h returns 64-bit words as long");

#define CHILD_STATUS 7

/*
 * The entry point. The kernel enters _start(args, args_len) (rdi, rsi) with
 * rsp + 8 16-byte aligned, as if it had been called. It is written in asm
 * so that the alignment is forced rather than trusted, and so that the C
 * code starts from an ordinary call. It is put in .text._start, which the
 * linker script places first, at 0x400000.
 */
__asm__(".section .text._start, \"ax\", @progbits\n"
        ".globl _start\n"
        ".type _start, @function\n"
        "_start:\n"
        "  xor %ebp, %ebp\n"    /* the outermost frame, for backtraces */
        "  and $-16, %rsp\n"    /* aligned before the call, as the ABI asks */
        "  call hello_main\n"   /* rdi, rsi still hold args, args_len */
        "  ud2\n"               /* hello_main never returns */
        ".size _start, . - _start\n"
        ".text\n");

__attribute__((noreturn)) void hello_main(const char *args, size_t args_len);

/* A line being built: no libc, so no printf. Lines are declared with only
 * len set: zeroing buf would let gcc call memset, which nobody provides. */
struct line {
    char buf[160];
    size_t len;
};

static void put_str(struct line *l, const char *s) {
    while (*s != '\0' && l->len < sizeof l->buf) {
        l->buf[l->len++] = *s++;
    }
}

static void put_bytes(struct line *l, const char *s, size_t n) {
    for (size_t i = 0; i < n && l->len < sizeof l->buf; i++) {
        l->buf[l->len++] = s[i];
    }
}

static void put_dec(struct line *l, long v) {
    char digits[20];
    size_t n = 0;
    /* Work with the magnitude as unsigned so LONG_MIN is fine too. */
    unsigned long u = v < 0 ? 0UL - (unsigned long)v : (unsigned long)v;
    if (v < 0) {
        put_str(l, "-");
    }
    do {
        digits[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    while (n > 0 && l->len < sizeof l->buf) {
        l->buf[l->len++] = digits[--n];
    }
}

/* Writes the line (with its newline) in one log_write, so it is never
 * interleaved with another process's output. */
static void say(struct line *l) {
    if (l->len == sizeof l->buf) {
        l->len--; /* keep room for the newline */
    }
    l->buf[l->len++] = '\n';
    (void)mh_log_write(l->buf, l->len);
    l->len = 0;
}

/* Reports a failed system call and exits 1. */
__attribute__((noreturn)) static void fail(const char *what, long ret) {
    struct line l;
    l.len = 0;
    put_str(&l, "hello-c: ");
    put_str(&l, what);
    put_str(&l, " failed: error ");
    put_dec(&l, (long)MH_ERROR_OF(ret));
    say(&l);
    mh_exit(1);
}

void hello_main(const char *args, size_t args_len) {
    struct line l;
    l.len = 0;
    long pid = mh_getpid();
    if (MH_IS_ERROR(pid)) {
        fail("getpid", pid);
    }
    put_str(&l, "hello-c: hello from C, pid ");
    put_dec(&l, pid);
    put_str(&l, ", args '");
    put_bytes(&l, args, args_len);
    put_str(&l, "'");
    say(&l);

    long child = mh_fork();
    if (MH_IS_ERROR(child)) {
        fail("fork", child);
    }
    if (child == 0) {
        put_str(&l, "hello-c: child pid ");
        put_dec(&l, mh_getpid());
        put_str(&l, " exiting with status ");
        put_dec(&l, CHILD_STATUS);
        say(&l);
        mh_exit(CHILD_STATUS);
    }

    MhExitStatus status;
    long reaped = mh_wait_child(&status, 0);
    if (MH_IS_ERROR(reaped)) {
        fail("wait_child", reaped);
    }
    put_str(&l, "hello-c: reaped child pid ");
    put_dec(&l, (long)status.pid);
    put_str(&l, ": kind ");
    put_dec(&l, (long)status.kind);
    put_str(&l, ", code ");
    put_dec(&l, (long)status.code);
    say(&l);

    int ok = reaped == child && (long)status.pid == child &&
             status.kind == MH_EXIT_KIND_EXITED && status.code == CHILD_STATUS;
    put_str(&l, ok ? "hello-c: ok" : "hello-c: FAILED: expected pid ");
    if (!ok) {
        put_dec(&l, child);
        put_str(&l, " to exit with status ");
        put_dec(&l, CHILD_STATUS);
    }
    say(&l);
    mh_exit(ok ? 0 : 1);
}

/*
 * ipc-c: a user-device server and its client in C, against mh.h alone.
 *
 * It forks: the child serves device "ipc-c" with mh_dev_reply_poll, the
 * parent sends it ROUNDS requests with mh_port_out_wait and reads each
 * answer from its I/O space with mh_port_in. Every call reuses the same
 * handle variables, so a wrapper that let the kernel's answer registers
 * clobber them would break the loop (the fused calls answer in rdi, rsi,
 * rdx and r10). Exits 0 when every answer was right.
 *
 * The server ends at a request to PORT_QUIT, and the client reaps it.
 *
 * `ipc-c bench` prints the guest instructions per round trip instead
 * (`bench ipc_round_trip_c N ITERS`, for `cargo xtask bench`).
 */
#include <mh.h>

#define ROUNDS 2000
#define BENCH_ROUNDS 5000
#define REPLY_VECTOR 5
#define SERVER_VECTOR 6
#define PORT_ADD 0
#define PORT_QUIT 1

__asm__(".section .text._start, \"ax\", @progbits\n"
        ".globl _start\n"
        ".type _start, @function\n"
        "_start:\n"
        "  xor %ebp, %ebp\n"
        "  and $-16, %rsp\n"
        "  call ipc_main\n"
        "  ud2\n"
        ".size _start, . - _start\n"
        ".text\n");

__attribute__((noreturn)) void ipc_main(const char *args, size_t args_len);

static const char NAME[] = "ipc-c";

static uint64_t rdtsc(void) {
    uint32_t lo, hi;
    __asm__ __volatile__("rdtsc" : "=a"(lo), "=d"(hi));
    return ((uint64_t)hi << 32) | lo;
}

static void say(const char *s) {
    size_t n = 0;
    while (s[n] != '\0') {
        n++;
    }
    mh_log_write(s, n);
}

/* Appends the decimal digits of v to buf at *at. */
static void put_u64(char *buf, size_t *at, uint64_t v) {
    char digits[20];
    size_t n = 0;
    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    while (n > 0) {
        buf[(*at)++] = digits[--n];
    }
}

/* The server: answers every OUT to PORT_ADD with value + 1 in the client's
 * I/O space and its line 0, in one call that also takes the next request. */
__attribute__((noreturn)) static void serve(void) {
    MhDeviceConfig config = {0};
    for (size_t i = 0; i < sizeof NAME - 1; i++) {
        config.name[i] = (uint8_t)NAME[i];
    }
    config.name_len = sizeof NAME - 1;
    config.irq_lines = 1;
    config.iospace_size = 8;
    config.vector = SERVER_VECTOR;
    long dev = mh_dev_create(MH_REGISTRY_HANDLE_SLOT, &config);
    if (MH_IS_ERROR(dev)) {
        mh_exit(10);
    }
    MhRequest r;
    long client = mh_dev_poll((uint64_t)dev, &r, 0);
    for (;;) {
        if (MH_IS_ERROR(client)) {
            mh_exit(11);
        }
        if (r.kind == MH_REQUEST_OUT && r.port == PORT_QUIT) {
            mh_exit(0);
        }
        if (r.kind == MH_REQUEST_OUT && r.port == PORT_ADD) {
            client = mh_dev_reply_poll((uint64_t)dev, r.client, (PORT_ADD << 8) | 8,
                                       r.value + 1, 0, &r);
        } else {
            client = mh_dev_poll((uint64_t)dev, &r, 0);
        }
    }
}

__attribute__((noreturn)) void ipc_main(const char *args, size_t args_len) {
    int bench = args_len >= 5 && args[args_len - 5] == 'b' && args[args_len - 1] == 'h';
    long pid = mh_fork();
    if (MH_IS_ERROR(pid)) {
        mh_exit(1);
    }
    if (pid == 0) {
        serve();
    }
    /* The server registers its name after it runs: retry until it has. */
    long h = -1;
    for (int tries = 0; tries < 100000; tries++) {
        h = mh_attach(MH_REGISTRY_HANDLE_SLOT, NAME, sizeof NAME - 1,
                      MH_RIGHT_READ | MH_RIGHT_WRITE | MH_RIGHT_IRQ);
        if (!MH_IS_ERROR(h)) {
            break;
        }
        mh_yield();
    }
    if (MH_IS_ERROR(h) || MH_IS_ERROR(mh_irq_map((uint64_t)h, 0, REPLY_VECTOR))) {
        mh_exit(2);
    }
    int rounds = bench ? BENCH_ROUNDS : ROUNDS;
    uint64_t start = 0;
    for (int i = 0; i < rounds; i++) {
        if (i == 100) {
            start = rdtsc(); /* after the warm-up rounds */
        }
        long got = mh_port_out_wait((uint64_t)h, PORT_ADD, 8, (uint64_t)i,
                                    1ull << REPLY_VECTOR);
        if (MH_IS_ERROR(got)) {
            mh_exit(3);
        }
        long answer = mh_port_in((uint64_t)h, 0, 8);
        if (answer != i + 1) {
            mh_exit(4);
        }
    }
    uint64_t spent = rdtsc() - start;
    if (bench) {
        char line[80] = "bench ipc_round_trip_c ";
        size_t at = sizeof "bench ipc_round_trip_c " - 1;
        put_u64(line, &at, spent / (uint64_t)(rounds - 100));
        line[at++] = ' ';
        put_u64(line, &at, (uint64_t)(rounds - 100));
        line[at++] = '\n';
        mh_log_write(line, at);
    } else {
        say("ipc-c: ok\n");
    }
    /* The server ends when told; reap it, so nothing is left behind. */
    mh_port_out((uint64_t)h, PORT_QUIT, 8, 0);
    MhExitStatus st;
    long reaped = mh_wait_child(&st, 0);
    mh_detach((uint64_t)h);
    mh_exit(reaped == pid && st.code == 0 ? 0 : 5);
}

/*
 * disk-c: the disk device (disk0, served by servers/virtio-blk) from C,
 * against mh.h alone.
 *
 * It attaches disk0, waits for the server to have taken its open (a SYNC
 * round trip), reads the disk's shape from its I/O space, writes one
 * sector — the disk's last — flushes, reads the sector back into a zeroed
 * buffer and compares. Request and data sit in one exported struct, so a
 * request costs one mh_port_out_wait and one mh_port_in. Exits 0 when all
 * went well, else the step that failed (the disk's last sector is this
 * example's to scribble on).
 */
#include <mh.h>

#define VECTOR 7

__asm__(".section .text._start, \"ax\", @progbits\n"
        ".globl _start\n"
        ".type _start, @function\n"
        "_start:\n"
        "  xor %ebp, %ebp\n"
        "  and $-16, %rsp\n"
        "  call disk_main\n"
        "  ud2\n"
        ".size _start, . - _start\n"
        ".text\n");

__attribute__((noreturn)) void disk_main(const char *args, size_t args_len);

static const char NAME[] = "disk0";
static const char TEXT[] = "hello from C, sector by sector";

/* The request block and its data, exported to the device together. */
static struct {
    MhDiskRequest req;
    uint8_t data[MH_DISK_SECTOR_SIZE];
} io;

static void say(const char *s) {
    size_t n = 0;
    while (s[n] != '\0') {
        n++;
    }
    mh_log_write(s, n);
}

/* Sends a request (`value`: the block's iova, or a tag) and returns its
 * status: 0, an MH_ERROR_* code, or -1 if the completion is not ours. */
static long request(long h, uint64_t port, uint64_t value, uint32_t tag) {
    long r = mh_port_out_wait((uint64_t)h, port, 8, value, 1ull << VECTOR);
    if (MH_IS_ERROR(r)) {
        return MH_ERROR_OF(r);
    }
    long word = mh_port_in((uint64_t)h, MH_DISK_IO_RESULT, 8);
    if (MH_IS_ERROR(word)) {
        return MH_ERROR_OF(word);
    }
    if (((uint64_t)word >> 32) != (tag & MH_DISK_TAG_MASK)) {
        return -1;
    }
    return (long)(uint32_t)word;
}

__attribute__((noreturn)) void disk_main(const char *args, size_t args_len) {
    (void)args;
    (void)args_len;
    long h = mh_attach(MH_REGISTRY_HANDLE_SLOT, NAME, sizeof NAME - 1,
                       MH_RIGHT_READ | MH_RIGHT_WRITE | MH_RIGHT_DMA | MH_RIGHT_IRQ);
    if (MH_IS_ERROR(h) || MH_IS_ERROR(mh_irq_map((uint64_t)h, MH_DISK_IRQ_DONE, VECTOR))) {
        say("disk-c: cannot attach disk0\n");
        mh_exit(1);
    }
    if (request(h, MH_DISK_PORT_SYNC, 1, 1) != 0) {
        mh_exit(2);
    }
    long capacity = mh_port_in((uint64_t)h, MH_DISK_IO_CAPACITY, 8);
    long sector_size = mh_port_in((uint64_t)h, MH_DISK_IO_SECTOR_SIZE, 8);
    if (capacity <= 0 || sector_size != MH_DISK_SECTOR_SIZE) {
        mh_exit(3);
    }
    long iova = mh_export((uint64_t)h, &io, sizeof io, 0, 0, 0);
    if (MH_IS_ERROR(iova)) {
        mh_exit(4);
    }
    for (size_t i = 0; i < sizeof io.data; i++) {
        io.data[i] = i < sizeof TEXT ? (uint8_t)TEXT[i] : (uint8_t)i;
    }
    io.req.sector = (uint64_t)capacity - 1;
    io.req.buffer = (uint64_t)iova + __builtin_offsetof(__typeof__(io), data);
    io.req.len = MH_DISK_SECTOR_SIZE;
    io.req.tag = 2;
    if (request(h, MH_DISK_PORT_WRITE, (uint64_t)iova, 2) != 0 ||
        request(h, MH_DISK_PORT_FLUSH, 3, 3) != 0) {
        mh_exit(5);
    }
    for (size_t i = 0; i < sizeof io.data; i++) {
        io.data[i] = 0;
    }
    io.req.tag = 4;
    if (request(h, MH_DISK_PORT_READ, (uint64_t)iova, 4) != 0) {
        mh_exit(6);
    }
    for (size_t i = 0; i < sizeof io.data; i++) {
        uint8_t want = i < sizeof TEXT ? (uint8_t)TEXT[i] : (uint8_t)i;
        if (io.data[i] != want) {
            mh_exit(7);
        }
    }
    mh_unexport((uint64_t)h, (uint64_t)iova);
    mh_detach((uint64_t)h);
    say("disk-c: wrote and read back the last sector\n");
    mh_exit(0);
}

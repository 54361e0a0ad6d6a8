/* killshim: an LD_PRELOAD library for the crash tests (tests/crash_scan.sh).
 * It counts the calls of write, pwrite, pwrite64, writev, pwritev and
 * pwritev2 on file descriptors >= 3 (not stdout/stderr) and
 *   AKT_KILL_AT_WRITE=N   raises SIGKILL just before the N-th one runs;
 *   AKT_ENOSPC_AT_WRITE=N makes the N-th one and every later one fail with
 *                         ENOSPC, writing nothing: a disk that is full from
 *                         then on (tests/faults.sh);
 *   AKT_WRITE_COUNT=FILE  writes the number of such calls to FILE at exit;
 *   AKT_WRITE_LOG=FILE    appends "INDEX PATH" per call (the file written)
 *                         and "R PATH" per rename (not counted), so a test
 *                         can tell the phases of a run apart;
 *   AKT_FAIL_RENAME_TO=PATH  makes every rename onto PATH fail with EIO
 *                         (an injected failure of a commit, e.g. the final
 *                         one into the results file).
 * Without AKT_FAIL_RENAME_TO nothing else changes, so a run under it is the
 * same run. */
/* both pwrite and pwrite64 are interposed: no redirection of one to the other */
#undef _FILE_OFFSET_BITS
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

static atomic_long g_count;
static long g_kill_at = -1, g_full_at = -1;

__attribute__((constructor)) static void shim_init(void)
{
    const char *k = getenv("AKT_KILL_AT_WRITE"), *f = getenv("AKT_ENOSPC_AT_WRITE");
    g_kill_at = k && *k ? atol(k) : -1;
    g_full_at = f && *f ? atol(f) : -1;
}

static ssize_t (*real_write)(int, const void *, size_t);

__attribute__((destructor)) static void shim_fini(void)
{
    const char *path = getenv("AKT_WRITE_COUNT");
    if (!path || !*path)
        return;
    if (!real_write)
        real_write = (ssize_t(*)(int, const void *, size_t))dlsym(RTLD_NEXT, "write");
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return;
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%ld\n", (long)atomic_load(&g_count));
    if (real_write(fd, buf, (size_t)n) != n) /* counted by no one: the real call */
        n = 0;
    close(fd);
}

static void log_line(const char *line, int len)
{
    const char *path = getenv("AKT_WRITE_LOG");
    if (!path || !*path)
        return;
    if (!real_write)
        real_write = (ssize_t(*)(int, const void *, size_t))dlsym(RTLD_NEXT, "write");
    int out = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (out < 0)
        return;
    if (real_write(out, line, (size_t)len) != len)
        len = 0;
    close(out);
}

static void log_write(long n, int fd)
{
    if (!getenv("AKT_WRITE_LOG"))
        return;
    char link[64], target[1024], line[1100];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t k = readlink(link, target, sizeof target - 1);
    target[k > 0 ? k : 0] = 0;
    log_line(line, snprintf(line, sizeof line, "%ld %s\n", n, target));
}

typedef int (*rename_fn)(const char *, const char *);

int rename(const char *from, const char *to)
{
    static rename_fn real_rename;
    if (!real_rename)
        real_rename = (rename_fn)dlsym(RTLD_NEXT, "rename");
    if (getenv("AKT_WRITE_LOG")) {
        char line[1100];
        log_line(line, snprintf(line, sizeof line, "R %s\n", to));
    }
    const char *fail = getenv("AKT_FAIL_RENAME_TO");
    if (fail && *fail && !strcmp(fail, to)) {
        errno = EIO;
        return -1;
    }
    return real_rename(from, to);
}

/* counts a write; 1 when it must fail with ENOSPC (errno set) */
static int tick(int fd)
{
    if (fd < 3)
        return 0;
    long n = atomic_fetch_add(&g_count, 1) + 1;
    if (n == g_kill_at)
        raise(SIGKILL);
    log_write(n, fd);
    if (g_full_at > 0 && n >= g_full_at) {
        errno = ENOSPC;
        return 1;
    }
    return 0;
}

typedef ssize_t (*pwrite_fn)(int, const void *, size_t, off_t);
typedef ssize_t (*pwrite64_fn)(int, const void *, size_t, off64_t);
typedef ssize_t (*writev_fn)(int, const struct iovec *, int);
typedef ssize_t (*pwritev_fn)(int, const struct iovec *, int, off_t);
typedef ssize_t (*pwritev2_fn)(int, const struct iovec *, int, off_t, int);

#define REAL(name) \
    static name##_fn real_##name; \
    if (!real_##name) \
    real_##name = (name##_fn)dlsym(RTLD_NEXT, #name)

ssize_t write(int fd, const void *buf, size_t n)
{
    if (!real_write)
        real_write = (ssize_t(*)(int, const void *, size_t))dlsym(RTLD_NEXT, "write");
    if (tick(fd))
        return -1;
    return real_write(fd, buf, n);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
    REAL(pwrite);
    if (tick(fd))
        return -1;
    return real_pwrite(fd, buf, n, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off64_t off)
{
    REAL(pwrite64);
    if (tick(fd))
        return -1;
    return real_pwrite64(fd, buf, n, off);
}

ssize_t writev(int fd, const struct iovec *v, int n)
{
    REAL(writev);
    if (tick(fd))
        return -1;
    return real_writev(fd, v, n);
}

ssize_t pwritev(int fd, const struct iovec *v, int n, off_t off)
{
    REAL(pwritev);
    if (tick(fd))
        return -1;
    return real_pwritev(fd, v, n, off);
}

ssize_t pwritev2(int fd, const struct iovec *v, int n, off_t off, int flags)
{
    REAL(pwritev2);
    if (tick(fd))
        return -1;
    return real_pwritev2(fd, v, n, off, flags);
}

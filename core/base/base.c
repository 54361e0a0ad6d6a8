/* Errors, arenas, RNG, threads, clock. */
#define _POSIX_C_SOURCE 200809L
#include "akt/base.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifdef _OPENMP
#include <omp.h>
#endif

/* ------------------------------------------------------------- errors --- */
int akt_error_set(struct akt_error *e, int code, const char *where, const char *fmt, ...)
{
    if (e) {
        e->code = code;
        snprintf(e->where, sizeof e->where, "%s", where ? where : "");
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->what, sizeof e->what, fmt, ap);
        va_end(ap);
    }
    return code;
}

const char *akt_error_format(const struct akt_error *e, char *buf, size_t n)
{
    if (e->where[0])
        snprintf(buf, n, "%s: %s", e->where, e->what);
    else
        snprintf(buf, n, "%s", e->what);
    return buf;
}

int akt_error_wrap(struct akt_error *e, int code, const char *where, const char *fmt, ...)
{
    if (!e)
        return code;
    char old[sizeof e->where + sizeof e->what + 2], head[sizeof e->what] = "";
    if (e->what[0] || e->where[0])
        akt_error_format(e, old, sizeof old);
    else
        old[0] = 0;
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(head, sizeof head, fmt, ap);
        va_end(ap);
    }
    if (code)
        e->code = code;
    snprintf(e->where, sizeof e->where, "%s", where ? where : "");
    snprintf(e->what, sizeof e->what, "%s%s%s", head, head[0] && old[0] ? ": " : "", old);
    return e->code;
}

void akt_assert_fail(const char *expr, const char *file, int line)
{
    fprintf(stderr, "akt: internal error: assertion '%s' failed at %s:%d\n", expr, file, line);
    abort();
}

static int g_threads = 1; /* akt_threads_set() */

/* ------------------------------------------------------------- arenas --- */
struct akt_arena_block {
    struct akt_arena_block *next;
    size_t cap, used;
    /* data follows, 64-byte aligned */
};

#define BLOCK_HDR 64

/* NULL when the system refuses (or cap is beyond any allocation). */
static struct akt_arena_block *block_try_new(size_t cap)
{
    if (cap > SIZE_MAX / 2)
        return NULL;
    struct akt_arena_block *b = aligned_alloc(64, BLOCK_HDR + ((cap + 63) & ~(size_t)63));
    if (!b)
        return NULL;
    b->next = NULL;
    b->cap = cap;
    b->used = 0;
    return b;
}

/* Sizes on this path come from the code, not from a user: running out here
 * is not recoverable. */
static struct akt_arena_block *block_new(size_t cap)
{
    struct akt_arena_block *b = block_try_new(cap);
    if (!b) {
        fprintf(stderr, "akt: out of memory (arena block of %zu bytes)\n", cap);
        abort();
    }
    return b;
}

static void block_append(struct akt_arena *a, struct akt_arena_block *b)
{
    if (!a->first) {
        a->first = b;
        return;
    }
    struct akt_arena_block *last = a->first;
    while (last->next)
        last = last->next;
    last->next = b;
}

void akt_arena_init(struct akt_arena *a, size_t block_size)
{
    memset(a, 0, sizeof *a);
    a->block_size = block_size ? block_size : (64u << 20);
}

void *akt_arena_alloc_uninit(struct akt_arena *a, size_t bytes)
{
    bytes = (bytes + 63) & ~(size_t)63;
    if (bytes == 0)
        bytes = 64;
    struct akt_arena_block *b = a->head;
    /* walk the kept blocks after a reset before making a new one */
    while (b && b->used + bytes > b->cap) {
        b = b->next;
        if (b)
            b->used = 0;
    }
    if (!b) {
        b = block_new(bytes > a->block_size ? bytes : a->block_size);
        block_append(a, b);
    }
    a->head = b;
    void *p = (char *)b + BLOCK_HDR + b->used;
    b->used += bytes;
    a->used += bytes;
    if (a->used > a->peak)
        a->peak = a->used;
    return p;
}

/* Zeroing large buffers (gradient buffers of whole activations, megabytes
 * each) is memory-bound: split it over the threads, which would otherwise
 * wait for the master at the next parallel region anyway. */
#define ZERO_PAR_MIN ((size_t)1 << 20)

void *akt_arena_alloc(struct akt_arena *a, size_t bytes)
{
    char *p = akt_arena_alloc_uninit(a, bytes);
    size_t n = (bytes + 63) & ~(size_t)63;
    if (n == 0)
        n = 64;
#ifdef _OPENMP
    if (n >= ZERO_PAR_MIN && g_threads > 1 && !omp_in_parallel()) {
        /* static split at 64-byte boundaries: disjoint ranges */
        size_t lines = n / 64;
#pragma omp parallel num_threads(g_threads)
        {
            size_t T = (size_t)omp_get_num_threads(), i = (size_t)omp_get_thread_num();
            size_t l0 = lines * i / T, l1 = lines * (i + 1) / T;
            memset(p + l0 * 64, 0, (l1 - l0) * 64);
        }
        return p;
    }
#endif
    memset(p, 0, n);
    return p;
}

int akt_arena_reserve(struct akt_arena *a, size_t bytes, const char *what, struct akt_error *e)
{
    /* a block from the current one on with that much free room will do:
     * the next allocations walk there (on a fresh arena: the new block) */
    for (struct akt_arena_block *b = a->head ? a->head : a->first; b; b = b->next)
        if (b->cap - (b == a->head ? b->used : 0) >= bytes)
            return 0;
    size_t cap = bytes > a->block_size ? bytes : a->block_size;
    struct akt_arena_block *b = block_try_new(cap);
    if (!b)
        return akt_error_set(e, AKT_ENOMEM, what, "out of memory: %.1f GiB cannot be allocated",
                             (double)cap / (1u << 30));
    block_append(a, b);
    if (!a->head)
        a->head = a->first;
    return 0;
}

void akt_arena_reset(struct akt_arena *a)
{
    a->head = a->first;
    if (a->first)
        a->first->used = 0;
    a->used = 0;
}

void akt_arena_free(struct akt_arena *a)
{
    struct akt_arena_block *b = a->first;
    while (b) {
        struct akt_arena_block *n = b->next;
        free(b);
        b = n;
    }
    memset(a, 0, sizeof *a);
}

/* ------------------------------------------------------------- memory --- */
int akt_mem_limit(uint64_t *bytes, struct akt_error *e)
{
    const char *env = getenv("AKT_MEM_LIMIT");
    if (env && *env) {
        char *end;
        errno = 0;
        double v = strtod(env, &end);
        static const char units[] = "KMGT";
        const char *u = *end ? strchr(units, *end) : NULL;
        if (u)
            v = ldexp(v, 10 * (int)(u - units + 1)), end++;
        if (end == env || *end || errno || !(v >= 1) || v > 0x1p63)
            return akt_error_set(e, AKT_EINVAL, "AKT_MEM_LIMIT",
                                 "'%s' is not a size (bytes, or a number with K, M, G or T)", env);
        *bytes = (uint64_t)v;
        return 0;
    }
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (pages <= 0 || page <= 0)
        return akt_error_set(e, AKT_EINVAL, "AKT_MEM_LIMIT",
                             "the machine's memory is unknown: set AKT_MEM_LIMIT");
    *bytes = (uint64_t)pages * (uint64_t)page;
    return 0;
}

int akt_mem_check(const char *key, int64_t value, double per_unit, double fixed,
                  const char *what, struct akt_error *e)
{
    uint64_t limit;
    int rc = akt_mem_limit(&limit, e);
    if (rc)
        return rc;
    double need = fixed + (double)value * per_unit, lim = (double)limit;
    if (need <= lim)
        return 0;
    double most = per_unit > 0 && lim > fixed ? floor((lim - fixed) / per_unit) : 0;
    const double gib = 1024.0 * 1024 * 1024;
    return akt_error_set(e, AKT_ENOMEM, key,
                         "%lld needs about %.1f GiB for %s; the memory limit is %.1f GiB (%s): "
                         "at most %.0f",
                         (long long)value, need / gib, what, lim / gib,
                         getenv("AKT_MEM_LIMIT") && *getenv("AKT_MEM_LIMIT")
                             ? "AKT_MEM_LIMIT"
                             : "this machine's memory; AKT_MEM_LIMIT sets another",
                         most);
}

/* ---------------------------------------------------------------- rng --- */
static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void akt_rng_seed(struct akt_rng *r, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t akt_rng_u64(struct akt_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double akt_rng_uniform(struct akt_rng *r) { return (double)(akt_rng_u64(r) >> 11) * 0x1.0p-53; }

float akt_rng_normal(struct akt_rng *r)
{
    /* Box-Muller with one draw per call (no cached second value, so the
     * stream position depends only on the number of calls). */
    double u1 = akt_rng_uniform(r), u2 = akt_rng_uniform(r);
    if (u1 < 1e-300)
        u1 = 1e-300;
    return (float)(sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2));
}

uint32_t akt_rng_below(struct akt_rng *r, uint32_t n)
{
    AKT_ASSERT(n > 0);
    /* rejection sampling: unbiased */
    uint64_t lim = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do
        x = akt_rng_u64(r);
    while (x >= lim);
    return (uint32_t)(x % n);
}

/* ------------------------------------------------------------ threads --- */

void akt_threads_set(int n)
{
    if (n < 1)
        n = 1;
    g_threads = n;
#ifdef _OPENMP
    omp_set_num_threads(n);
#endif
    /* OpenBLAS follows at its next call (core/ops/gemm.c) */
}

int akt_threads_get(void) { return g_threads; }

int akt_env_flag(const char *name)
{
    const char *e = getenv(name);
    return e && *e && strcmp(e, "0") != 0;
}

int akt_file_check(const char *path, int *exists, struct akt_error *e)
{
    struct stat st;
    if (exists)
        *exists = 0;
    if (!path || !*path)
        return akt_error_set(e, AKT_EINVAL, "path", "empty file name");
    if (stat(path, &st) != 0) {
        if (errno == ENOENT && exists)
            return 0;
        return akt_error_set(e, AKT_EIO, path, "cannot open: %s", strerror(errno));
    }
    if (S_ISDIR(st.st_mode))
        return akt_error_set(e, AKT_EIO, path, "is a directory, expected a file");
    if (!S_ISREG(st.st_mode))
        return akt_error_set(e, AKT_EIO, path,
                             "is not a regular file (%s); akt reads and writes regular files only",
                             S_ISFIFO(st.st_mode)   ? "a FIFO"
                             : S_ISSOCK(st.st_mode) ? "a socket"
                             : S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) ? "a device"
                                                                          : "a special file");
    if (exists)
        *exists = 1;
    return 0;
}

double akt_time_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

/* akt base: error reporting, arenas, the RNG stream, threads.
 *
 * Two error channels (DESIGN.md): AKT_ASSERT for programmer bugs (aborts with
 * file:line), negative AKT_E* codes plus a caller-owned struct akt_error for
 * runtime failures. Only main() prints and exits. */
#ifndef AKT_BASE_H
#define AKT_BASE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
    AKT_OK = 0,
    AKT_EIO = -1,      /* file missing, unreadable, short read */
    AKT_EFORMAT = -2,  /* file readable but malformed (bad HDF5, wrong size) */
    AKT_ESHAPE = -3,   /* a tensor with the wrong shape */
    AKT_EINVAL = -4,   /* bad argument or configuration value */
    AKT_ENOMEM = -5,
    AKT_EPLUGIN = -6,  /* plugin refused (ABI, symbol, create failed) */
    AKT_ENUMERIC = -7, /* NaN or Inf during training */
    AKT_EINTR = -8     /* interrupted by a signal, state saved */
};

/* Filled by the function that fails; where names the file/key/field, what
 * says what is wrong. akt_error_format() gives "where: what". */
struct akt_error {
    int code;
    char where[512];
    char what[512];
};

/* Sets e (if not NULL) and returns code, so callers can write
 * `return akt_error_set(e, AKT_EIO, path, "cannot open: %s", strerror(errno));` */
int akt_error_set(struct akt_error *e, int code, const char *where, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
const char *akt_error_format(const struct akt_error *e, char *buf, size_t n);
/* Re-wraps an error a callee set under the caller's place, through a
 * temporary copy (formatting e from its own fields would overlap): where
 * becomes e->where and e->what becomes "FMT: OLD", OLD being the callee's
 * "where: what" (its what alone when it named no place, nothing when it said
 * nothing; FMT may be NULL: then OLD alone). code 0 keeps e->code. Returns
 * e's new code (code when e is NULL), like akt_error_set. */
int akt_error_wrap(struct akt_error *e, int code, const char *where, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

void akt_assert_fail(const char *expr, const char *file, int line) __attribute__((noreturn));
#define AKT_ASSERT(x) ((x) ? (void)0 : akt_assert_fail(#x, __FILE__, __LINE__))

/* Bump allocator made of blocks that never move, so pointers stay valid
 * until akt_arena_reset(). Memory is 64-byte aligned and zero-filled
 * (akt_arena_alloc_uninit: not filled). */
struct akt_arena_block;
struct akt_arena {
    struct akt_arena_block *head; /* current block */
    struct akt_arena_block *first;
    size_t block_size;
    size_t peak, used;
};
void akt_arena_init(struct akt_arena *a, size_t block_size);
void *akt_arena_alloc(struct akt_arena *a, size_t bytes); /* zeroed; aborts on OOM */
/* Same, contents undefined: for buffers the caller overwrites completely
 * (saves the zero-fill, a full extra pass over memory). */
void *akt_arena_alloc_uninit(struct akt_arena *a, size_t bytes);
/* The checked path for buffers whose size a user chose (a batch): makes
 * room for `bytes` more now, in one block, and returns AKT_ENOMEM (e set,
 * naming `what`) instead of aborting when the system refuses. Allocations
 * that fit afterwards (until akt_arena_free) never allocate again. */
int akt_arena_reserve(struct akt_arena *a, size_t bytes, const char *what, struct akt_error *e);
void akt_arena_reset(struct akt_arena *a);                 /* keeps the blocks */
void akt_arena_free(struct akt_arena *a);

/* Memory planning for sizes a user chooses (batch, qimera's K, ...): the
 * limit is AKT_MEM_LIMIT when set (bytes, or a number with a K, M, G or T
 * suffix, powers of 1024), else the machine's physical memory.
 * akt_mem_check returns 0 when fixed + value * per_unit bytes fit, else
 * AKT_ENOMEM with e naming key, the estimate for `what`, the limit and the
 * largest value that fits; AKT_EINVAL when AKT_MEM_LIMIT is not a size.
 * Call it before allocating. */
int akt_mem_limit(uint64_t *bytes, struct akt_error *e);
int akt_mem_check(const char *key, int64_t value, double per_unit, double fixed,
                  const char *what, struct akt_error *e);

/* One RNG stream per run (xoshiro256**, seeded by splitmix64). Nothing in akt
 * calls rand(). */
struct akt_rng {
    uint64_t s[4];
};
void akt_rng_seed(struct akt_rng *r, uint64_t seed);
uint64_t akt_rng_u64(struct akt_rng *r);
double akt_rng_uniform(struct akt_rng *r);          /* [0, 1) */
float akt_rng_normal(struct akt_rng *r);            /* N(0, 1), Box-Muller */
uint32_t akt_rng_below(struct akt_rng *r, uint32_t n); /* uniform in 0..n-1 */

/* Threads used by akt's kernels and OpenBLAS. Results are bit-identical for
 * a given thread count. */
void akt_threads_set(int n);
int akt_threads_get(void);

double akt_time_ms(void); /* monotonic clock */
/* 1 when environment variable name is set, non-empty and not "0" */
int akt_env_flag(const char *name);

/* Before opening a file a user named: 0 when path is a regular file
 * (*exists = 1) or absent (*exists = 0; exists may be NULL only when the
 * file must exist, then absence is an AKT_EIO error); an AKT_EIO error naming
 * path when it is a folder, a FIFO, a socket or a device (opening a FIFO
 * blocks until another process writes to it) or cannot be looked up. */
int akt_file_check(const char *path, int *exists, struct akt_error *e);

/* SHA-256 (core/base/sha256.c): 64 lowercase hex digits, as sha256sum
 * prints them. akt_sha256_file reads the file in 1 MiB blocks; errors name
 * the path. */
struct akt_sha256 {
    uint32_t h[8];
    uint64_t bytes;
    unsigned char buf[64];
    size_t fill;
};
void akt_sha256_init(struct akt_sha256 *s);
void akt_sha256_update(struct akt_sha256 *s, const void *data, size_t n);
void akt_sha256_final(struct akt_sha256 *s, char hex[65]);
void akt_sha256_hex(const void *data, size_t n, char hex[65]);
int akt_sha256_file(const char *path, char hex[65], struct akt_error *e);

/* Provenance (core/base/provenance.c), written into results files: the
 * command line (set once by main, shell-quoted words; "" when never set),
 * the host name and the working folder ("unknown" when they cannot be
 * read). akt_path_absolute: the resolved absolute path (realpath) into buf,
 * 0, or -1 when path does not exist or buf is too small. */
void akt_provenance_set_args(int argc, char **argv);
const char *akt_provenance_command_line(void);
const char *akt_provenance_host(void);
const char *akt_provenance_cwd(void);
int akt_path_absolute(const char *path, char *buf, size_t n);

#ifdef __cplusplus
}
#endif
#endif

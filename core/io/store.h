/* File-level helpers of the crash-consistent results store (store.c);
 * not installed. results.c builds akt_results_edit/commit on them. */
#ifndef AKT_IO_STORE_H
#define AKT_IO_STORE_H

#include "akt/base.h"

/* Byte copy of src to dst (created or truncated, src's permission bits),
 * with plain read/write in 4 MiB blocks; dst is not synced. */
int akt__file_copy(const char *src, const char *dst, struct akt_error *e);
/* The whole file into a malloc'd buffer (read in 4 MiB blocks). */
int akt__file_read(const char *path, void **buf, size_t *n, struct akt_error *e);
/* buf into path (created or truncated with permission bits mode), written
 * in 4 MiB blocks; not synced. */
int akt__file_write(const char *path, const void *buf, size_t n, int mode, struct akt_error *e);
/* fsync of path's data, then rename(tmp, path) and an fsync of the folder
 * that holds path: after it returns, path is the new file even after a
 * power loss; before the rename, path is the old one. */
int akt__file_replace(const char *tmp, const char *path, struct akt_error *e);
/* unlink(path) and an fsync of its folder; a missing path is fine. */
int akt__file_remove(const char *path, struct akt_error *e);
#endif

/* The crash-consistent store under results files (results/README.md,
 * "Crash safety"): byte copies, durable replacement by rename, the run
 * files of runs in progress (OUT.h5.d/<id>.h5) and akt's own writer lock
 * (OUT.h5.d/lock).
 *
 * HDF5 writes its metadata in no crash-safe order, so akt never changes a
 * file in place that holds data worth keeping: it writes a private copy,
 * syncs it and renames it over the original. A kill at any write leaves
 * either the old file or the new one, both complete. */
#include "akt/results.h"

#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define COPY_BLOCK (4 << 20)

/* The folder that holds path ("." for a bare name). */
static void dir_of(const char *path, char *buf, size_t n)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(buf, n, ".");
    else if (slash == path)
        snprintf(buf, n, "/");
    else
        snprintf(buf, n, "%.*s", (int)(slash - path), path);
}

static int sync_dir(const char *path, struct akt_error *e)
{
    char dir[1200];
    dir_of(path, dir, sizeof dir);
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0)
        return akt_error_set(e, AKT_EIO, dir, "cannot open the folder to sync it: %s",
                             strerror(errno));
    int bad = fsync(fd) != 0 && errno != EINVAL; /* some file systems cannot sync folders */
    int err = errno;
    close(fd);
    return bad ? akt_error_set(e, AKT_EIO, dir, "fsync of the folder failed: %s", strerror(err))
               : 0;
}

int akt__file_copy(const char *src, const char *dst, struct akt_error *e)
{
    int in = open(src, O_RDONLY);
    if (in < 0)
        return akt_error_set(e, AKT_EIO, src, "cannot open: %s", strerror(errno));
    struct stat st;
    if (fstat(in, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(in);
        return akt_error_set(e, AKT_EIO, src, "not a regular file");
    }
    int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC, st.st_mode & 0777);
    if (out < 0) {
        int err = errno;
        close(in);
        return akt_error_set(e, AKT_EIO, dst, "cannot create: %s", strerror(err));
    }
    char *buf = malloc(COPY_BLOCK);
    int rc = buf ? 0 : akt_error_set(e, AKT_ENOMEM, dst, "out of memory for the copy");
    while (!rc) {
        ssize_t n = read(in, buf, COPY_BLOCK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = akt_error_set(e, AKT_EIO, src, "read failed: %s", strerror(errno));
            break;
        }
        if (n == 0)
            break;
        for (ssize_t off = 0; off < n && !rc;) {
            ssize_t w = write(out, buf + off, (size_t)(n - off));
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                rc = akt_error_set(e, AKT_EIO, dst, "write failed: %s",
                                   w < 0 ? strerror(errno) : "no progress (disk full?)");
            else
                off += w;
        }
    }
    free(buf);
    close(in);
    if (close(out) != 0 && !rc)
        rc = akt_error_set(e, AKT_EIO, dst, "close failed: %s", strerror(errno));
    if (rc)
        unlink(dst);
    return rc;
}

int akt__file_read(const char *path, void **buf, size_t *n, struct akt_error *e)
{
    *buf = NULL;
    *n = 0;
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return akt_error_set(e, AKT_EIO, path, "cannot open: %s", strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return akt_error_set(e, AKT_EIO, path, "not a regular file");
    }
    size_t size = (size_t)st.st_size, got = 0;
    char *b = malloc(size ? size : 1);
    int rc = b ? 0 : akt_error_set(e, AKT_ENOMEM, path, "out of memory (%zu bytes)", size);
    while (!rc && got < size) {
        ssize_t k = read(fd, b + got, size - got < COPY_BLOCK ? size - got : COPY_BLOCK);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            rc = akt_error_set(e, AKT_EIO, path, "read failed: %s",
                               k < 0 ? strerror(errno) : "file shrank while read");
        else
            got += (size_t)k;
    }
    close(fd);
    if (rc) {
        free(b);
        return rc;
    }
    *buf = b;
    *n = size;
    return 0;
}

int akt__file_write(const char *path, const void *buf, size_t n, int mode, struct akt_error *e)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    if (fd < 0)
        return akt_error_set(e, AKT_EIO, path, "cannot create: %s", strerror(errno));
    const char *b = buf;
    int rc = 0;
    for (size_t off = 0; off < n && !rc;) {
        size_t want = n - off < COPY_BLOCK ? n - off : COPY_BLOCK;
        ssize_t w = write(fd, b + off, want);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            rc = akt_error_set(e, AKT_EIO, path, "write failed: %s",
                               w < 0 ? strerror(errno) : "no progress (disk full?)");
        else
            off += (size_t)w;
    }
    if (close(fd) != 0 && !rc)
        rc = akt_error_set(e, AKT_EIO, path, "close failed: %s", strerror(errno));
    if (rc)
        unlink(path);
    return rc;
}

int akt__file_replace(const char *tmp, const char *path, struct akt_error *e)
{
    int fd = open(tmp, O_RDONLY);
    if (fd < 0)
        return akt_error_set(e, AKT_EIO, tmp, "cannot open to sync: %s", strerror(errno));
    int bad = fsync(fd) != 0;
    int err = errno;
    close(fd);
    if (bad)
        return akt_error_set(e, AKT_EIO, tmp, "fsync failed: %s", strerror(err));
    if (rename(tmp, path) != 0)
        return akt_error_set(e, AKT_EIO, path, "cannot replace it with %s: %s", tmp,
                             strerror(errno));
    return sync_dir(path, e);
}

int akt__file_remove(const char *path, struct akt_error *e)
{
    if (unlink(path) != 0) {
        if (errno == ENOENT)
            return 0;
        return akt_error_set(e, AKT_EIO, path, "cannot remove: %s", strerror(errno));
    }
    return sync_dir(path, e);
}

/* ------------------------------------------------------- run files --- */

int akt_results_remove(const char *path, struct akt_error *e)
{
    int rc = akt__file_remove(path, e);
    if (!rc) {
        char tmp[1200];
        snprintf(tmp, sizeof tmp, "%s.tmp", path);
        unlink(tmp); /* a copy a killed process left */
    }
    return rc;
}

int akt_results_run_dir(const char *path, char *buf, size_t n)
{
    int k = snprintf(buf, n, "%s.d", path);
    return k < 0 || (size_t)k >= n ? AKT_EINVAL : 0;
}

int akt_results_run_file(const char *path, const char *id, char *buf, size_t n)
{
    int k = snprintf(buf, n, "%s.d/%s.h5", path, id);
    return k < 0 || (size_t)k >= n ? AKT_EINVAL : 0;
}

/* ------------------------------------------------------------- lock --- */

struct akt_results_lock {
    int fd;
};

int akt_results_lock(struct akt_results_lock **out, const char *path, struct akt_error *e)
{
    *out = NULL;
    char dir[1200], lock[1300];
    if (akt_results_run_dir(path, dir, sizeof dir) ||
        snprintf(lock, sizeof lock, "%s/lock", dir) >= (int)sizeof lock)
        return akt_error_set(e, AKT_EINVAL, path, "results path too long");
    if (mkdir(dir, 0777) != 0) {
        if (errno != EEXIST)
            return akt_error_set(e, AKT_EIO, dir, "cannot create akt's folder beside %s: %s",
                                 path, strerror(errno));
    } else {
        int rc = sync_dir(dir, e);
        if (rc)
            return rc;
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return akt_error_set(e, AKT_EIO, dir,
                             "exists but is not a folder; akt keeps the lock and the runs in "
                             "progress of %s there", path);
    int fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0)
        return akt_error_set(e, AKT_EIO, lock, "cannot open the lock file: %s", strerror(errno));
    if (!akt_env_flag("AKT_NO_RESULTS_LOCK") && flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int err = errno;
        char pid[32] = "";
        ssize_t k = pread(fd, pid, sizeof pid - 1, 0);
        pid[k > 0 ? k : 0] = 0;
        pid[strcspn(pid, "\n")] = 0;
        close(fd);
        if (err == EWOULDBLOCK)
            return akt_error_set(e, AKT_EIO, path,
                                 "another akt process%s%s%s is writing this results file (lock "
                                 "%s is held); wait for it to finish or choose another results "
                                 "file", *pid ? " (pid " : "", pid, *pid ? ")" : "", lock);
        return akt_error_set(e, AKT_EIO, lock,
                             "cannot lock: %s (a file system without locks, e.g. Lustre "
                             "mounted without -o flock: set AKT_NO_RESULTS_LOCK=1 and make sure "
                             "one process writes the file)", strerror(err));
    }
    /* the holder's pid, for the message a second writer gets */
    char pid[32];
    int k = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)k, 0) != k) {
        int err = errno;
        close(fd);
        return akt_error_set(e, AKT_EIO, lock, "cannot write the lock file: %s", strerror(err));
    }
    struct akt_results_lock *l = malloc(sizeof *l);
    if (!l) {
        close(fd);
        return akt_error_set(e, AKT_ENOMEM, lock, "out of memory");
    }
    l->fd = fd;
    *out = l;
    return 0;
}

void akt_results_unlock(struct akt_results_lock *l)
{
    if (!l)
        return;
    close(l->fd); /* releases the flock */
    free(l);
}

int akt_results_writer_active(const char *path)
{
    char dir[1100], lock[1200];
    if (akt_results_run_dir(path, dir, sizeof dir))
        return 0;
    snprintf(lock, sizeof lock, "%s/lock", dir);
    int fd = open(lock, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0; /* no lock file: nobody ever wrote here */
    /* a shared lock is refused while a writer holds its exclusive one; taken,
     * it is dropped at once */
    int busy = flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
    close(fd);
    return busy;
}

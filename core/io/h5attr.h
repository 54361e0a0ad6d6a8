/* HDF5 helpers shared by the teacher loader (h5.c), the results file
 * (results.c) and its merge (merge.c); not installed. Every function checks
 * each HDF5 call.
 *
 * Attribute readers check what the file holds before H5Aread writes into a
 * buffer: the dataspace (a scalar, or exactly the expected number of
 * values), the type class, and for strings the length. A crafted file (an
 * array where a scalar belongs, a string where a number does) is refused with
 * an error that names the object, the attribute and what was found. */
#ifndef AKT_IO_H5ATTR_H
#define AKT_IO_H5ATTR_H

#include <hdf5.h>

#include "akt/base.h"

/* Closes any HDF5 id by its type; 0, or -1 on failure. A negative id is a
 * no-op (0), so error paths can close whatever they opened. */
int akt__h5_close(hid_t id);
/* Variable-length UTF-8 string type (h5py reads it as str); -1 on failure. */
hid_t akt__h5_vlen_utf8(void);

/* Longest string the wrappers below accept (a run's config is a few KiB). */
#define AKT__H5_STR_MAX ((size_t)1 << 24)

/* Numeric attribute `name` of obj: n values (a scalar or a one-element
 * array when n == 1, else a dataspace of exactly n points), of integer class
 * (ints_only) or integer or float class, converted to mtype into v, which
 * has room for n values of mtype. where names obj in errors ("t.h5",
 * "r.h5:/runs/x"). 0, or AKT_EFORMAT / AKT_ESHAPE with e set; an absent
 * attribute is AKT_EFORMAT too (test with H5Aexists first when optional). */
int akt__h5_read_num(hid_t obj, const char *where, const char *name, hid_t mtype, int ints_only,
                     void *v, int n, struct akt_error *e);
/* Scalar string attribute `name` of obj (variable or fixed length) of at
 * most max bytes, into *out (malloc'd, NUL-terminated; the caller frees).
 * A fixed-length string's size is checked before reading, a variable-length
 * one's after. 0, or AKT_EFORMAT (AKT_ENOMEM) with e set and *out NULL. */
int akt__h5_read_str(hid_t obj, const char *where, const char *name, size_t max, char **out,
                     struct akt_error *e);

/* Checks the attributes readers of a run group /runs/<id> rely on, where
 * present: config, status, status_message and created are scalar strings
 * (status one of running, done, failed, interrupted);
 * checkpoint_epoch, checkpoint_slot, best_epoch, best_top1, final_top1,
 * top1_fp and top1_before scalar numbers, the first three whole numbers in
 * range (they are cast to int). where names the group in errors. 0 or an
 * error naming the attribute and what it holds. */
int akt__h5_check_run_attrs(hid_t run, const char *where, struct akt_error *e);

/* The same without an error report: a scalar string (up to AKT__H5_STR_MAX
 * bytes), malloc'd, or NULL when absent or malformed. */
char *akt__h5_attr_str(hid_t obj, const char *name);
/* A scalar numeric attribute as double; 0, or -1 when absent or malformed
 * (*v untouched then). */
int akt__h5_attr_f64(hid_t obj, const char *name, double *v);

/* The HDF5 file and /runs group behind a results handle (results.c), for
 * merge.c's copies and root attributes. */
struct akt_results;
hid_t akt__results_file(struct akt_results *r);
hid_t akt__results_runs(struct akt_results *r);

#endif

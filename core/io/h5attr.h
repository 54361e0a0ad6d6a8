/* HDF5 helpers shared by the results file (results.c) and its merge
 * (merge.c); not installed. Every function checks each HDF5 call. */
#ifndef AKT_IO_H5ATTR_H
#define AKT_IO_H5ATTR_H

#include <hdf5.h>

/* Closes any HDF5 id by its type; 0, or -1 on failure. A negative id is a
 * no-op (0), so error paths can close whatever they opened. */
int akt__h5_close(hid_t id);
/* Variable-length UTF-8 string type (h5py reads it as str); -1 on failure. */
hid_t akt__h5_vlen_utf8(void);
/* A scalar string attribute (variable or fixed length), malloc'd; NULL when
 * absent, not a scalar string, or on any HDF5 failure. */
char *akt__h5_attr_str(hid_t obj, const char *name);
/* A scalar numeric attribute as double; 0, or -1 when absent or not
 * numeric (*v untouched then). */
int akt__h5_attr_f64(hid_t obj, const char *name, double *v);

/* The HDF5 file and /runs group behind a results handle (results.c), for
 * merge.c's copies and root attributes. */
struct akt_results;
hid_t akt__results_file(struct akt_results *r);
hid_t akt__results_runs(struct akt_results *r);

#endif

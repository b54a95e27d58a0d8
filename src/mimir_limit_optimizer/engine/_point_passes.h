/* What the engine's point passes share (_point_passes.c and the other _*_pass.c): numpy's
 * pairwise summation and the checks of the buffers handed over. */
#ifndef MLO_POINT_PASSES_H
#define MLO_POINT_PASSES_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

/* numpy's pairwise summation of a contiguous run: 8 accumulators up to 128 terms, halves
 * (at a multiple of 8) above. Starts from 0 below 8 terms, as numpy does. */
static inline float
pairwise_sum(const float *a, Py_ssize_t n)
{
    if (n < 8) {
        float res = 0.0f;
        for (Py_ssize_t i = 0; i < n; i++) {
            res += a[i];
        }
        return res;
    }
    if (n <= 128) {
        float r[8];
        Py_ssize_t i;
        for (int j = 0; j < 8; j++) {
            r[j] = a[j];
        }
        for (i = 8; i < n - (n % 8); i += 8) {
            for (int j = 0; j < 8; j++) {
                r[j] += a[i + j];
            }
        }
        float res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for (; i < n; i++) {
            res += a[i];
        }
        return res;
    }
    Py_ssize_t half = n / 2;
    half -= half % 8;
    return pairwise_sum(a, half) + pairwise_sum(a + half, n - half);
}

static inline int
check_floats(const Py_buffer *b, int ndim, const char *name)
{
    const char *f = b->format;
    /* native float32 ("<f" is how numpy names it on a little-endian machine) */
    int is_float = f != NULL && (strcmp(f, "f") == 0 || strcmp(f, "=f") == 0 ||
                                 strcmp(f, "@f") == 0 || (PY_LITTLE_ENDIAN && strcmp(f, "<f") == 0));
    if (!is_float || b->itemsize != 4 || b->ndim != ndim ||
        (uintptr_t)b->buf % sizeof(float) != 0 ||
        b->strides[ndim - 1] != (Py_ssize_t)sizeof(float) ||
        (ndim == 2 && b->strides[0] % (Py_ssize_t)sizeof(float) != 0)) {
        PyErr_Format(PyExc_ValueError,
                     "%s: an aligned float32 array of %d dimensions with contiguous rows is "
                     "needed",
                     name, ndim);
        return -1;
    }
    return 0;
}

static inline int
check_flags(const Py_buffer *b, Py_ssize_t n, const char *name)
{
    if (b->itemsize != 1 || b->ndim != 1 || b->shape[0] != n || b->strides[0] != 1) {
        PyErr_Format(PyExc_ValueError, "%s: a contiguous array of one byte per row is needed",
                     name);
        return -1;
    }
    return 0;
}

/* Each object's buffer into views: the first `inputs` read-only, the rest writable. Returns
 * how many were got: `count`, or fewer with an exception set; release_buffers that many. */
static inline int
get_buffers(PyObject *const *objects, Py_buffer *views, int count, int inputs)
{
    for (int k = 0; k < count; k++) {
        int flags = k < inputs ? PyBUF_RECORDS_RO : PyBUF_RECORDS;
        if (PyObject_GetBuffer(objects[k], &views[k], flags) < 0) {
            return k;
        }
    }
    return count;
}

static inline void
release_buffers(Py_buffer *views, int got)
{
    for (int k = 0; k < got; k++) {
        PyBuffer_Release(&views[k]);
    }
}

/* The bytes a buffer spans, [*lo, *hi), whatever the signs of its strides. */
static inline void
buffer_span(const Py_buffer *b, uintptr_t *lo, uintptr_t *hi)
{
    uintptr_t start = (uintptr_t)b->buf, end = start + (uintptr_t)b->itemsize;
    for (int d = 0; d < b->ndim; d++) {
        if (b->shape[d] == 0) {
            *lo = *hi = start;
            return;
        }
        Py_ssize_t reach = (b->shape[d] - 1) * b->strides[d];
        if (reach < 0) {
            start -= (uintptr_t)(-reach);
        } else {
            end += (uintptr_t)reach;
        }
    }
    *lo = start;
    *hi = end;
}

/* Whether two buffers' spans share a byte (an empty buffer shares none). */
static inline int
overlap(const Py_buffer *a, const Py_buffer *b)
{
    uintptr_t a_lo, a_hi, b_lo, b_hi;
    buffer_span(a, &a_lo, &a_hi);
    buffer_span(b, &b_lo, &b_hi);
    return a_lo < a_hi && b_lo < b_hi && a_lo < b_hi && b_lo < a_hi;
}

static inline int
check_indices(const Py_buffer *b, Py_ssize_t n, const char *name)
{
    const char *f = b->format;
    size_t len = f == NULL ? 0 : strlen(f);
    char code = len ? f[len - 1] : 0;
    int native = len == 1 || (len == 2 && (f[0] == '=' || f[0] == '@' ||
                                           (PY_LITTLE_ENDIAN && f[0] == '<')));
    if (!native || (code != 'l' && code != 'q') || b->itemsize != 8 || b->ndim != 1 ||
        b->shape[0] != n || b->strides[0] != 8 || (uintptr_t)b->buf % 8 != 0) {
        PyErr_Format(PyExc_ValueError, "%s: an aligned, contiguous int64 array of %zd is needed",
                     name, n);
        return -1;
    }
    return 0;
}

static inline int
check_doubles(const Py_buffer *b, Py_ssize_t n, const char *name)
{
    const char *f = b->format;
    int is_double = f != NULL && (strcmp(f, "d") == 0 || strcmp(f, "=d") == 0 ||
                                  strcmp(f, "@d") == 0 || (PY_LITTLE_ENDIAN && strcmp(f, "<d") == 0));
    if (!is_double || b->itemsize != 8 || b->ndim != 1 || b->shape[0] != n ||
        b->strides[0] != 8 || (uintptr_t)b->buf % sizeof(double) != 0) {
        PyErr_Format(PyExc_ValueError, "%s: a contiguous float64 array of %zd is needed", name, n);
        return -1;
    }
    return 0;
}

/* _point_passes.c: one row's hour means into row_means and the sum of its points'
 * deviations from them, returned (`dev`: scratch for the row's points); and the checks of
 * the hour outputs (means (rows, hours), totals (rows,), float32) for `values`. */
float hour_row(const float *row, float *row_means, float *dev, Py_ssize_t hours,
               Py_ssize_t per_hour);
int check_hour_outputs(const Py_buffer *values, Py_ssize_t per_hour, const Py_buffer *means,
                       const Py_buffer *totals);

/* _demand_pass.c */
PyObject *demand_pass(PyObject *module, PyObject *args);

/* _centred_pass.c */
PyObject *centred_means(PyObject *module, PyObject *args);

/* _sort_pass.c (the one source that includes numpy's C API; built where setup.py defines
 * MLO_SORT_PASS): 1 when numpy's float32 sort is there to call, else 0 (no exception). */
int sort_pass_init(void);
PyObject *sorted_percentiles(PyObject *module, PyObject *args);

#endif

/* What the engine's point passes share (_point_passes.c, _demand_pass.c): numpy's pairwise
 * summation and the checks of the buffers handed over. */
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

/* _demand_pass.c */
PyObject *demand_pass(PyObject *module, PyObject *args);

#endif

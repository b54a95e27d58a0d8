/* The sort pass (engine/stats.py, `_sorted_chunks`): every row's count of finite points and
 * the percentiles asked for, one row at a time. A row is copied into a buffer that stays in
 * L1 (a week at 5 minutes: 2,016 points, 8 kB), sorted there with numpy's own float32 sort
 * (its SIMD quicksort where the CPU has one), and read. numpy's path copies a chunk of rows
 * into a buffer, sorts it and reads it with a dozen array operations per chunk: 52 against
 * 40 ms a limit at 10,000 tenants, where the sort alone takes 40.
 *
 * With `means` and `totals`, the hour pass (`hour_pass`) reads each row's copy too, before it
 * is sorted: the row comes from memory once for both (6 ms a limit less at 10,000 tenants).
 *
 * The same bits as the numpy path (tests/test_sort_pass.py): the same sort, NaN counted
 * from the end where numpy sorts it, and the interpolation in float64 step for step as
 * `_percentiles` does it. Which of two equal values comes first (-0.0 and 0.0) cannot change
 * a percentile: `lo + (hi - lo) * frac` of two zeros is +0.0 either way, frac being +0.0 or
 * more (both paths take a percentile of -0.0 as 0.0, whose frac would be -0.0).
 *
 * The one source that needs numpy's headers (numpy 2's: `PyDataType_GetArrFuncs`); setup.py
 * leaves it out (MLO_SORT_PASS undefined) where they are not there, and the other passes are
 * built all the same.
 */
#include "_point_passes.h"

#define NPY_NO_DEPRECATED_API NPY_1_23_API_VERSION
#include <numpy/arrayobject.h>

/* numpy's quicksort for float32, looked up once when the module loads (it is numpy's, the
 * same for the whole process); NULL where numpy has none to hand over. */
static PyArray_SortFunc *float32_sort;

int
sort_pass_init(void)
{
    if (_import_array() < 0) {
        PyErr_Clear();
        return 0;
    }
    PyArray_Descr *descr = PyArray_DescrFromType(NPY_FLOAT32);
    if (descr == NULL) {
        PyErr_Clear();
        return 0;
    }
    float32_sort = PyDataType_GetArrFuncs(descr)->sort[NPY_QUICKSORT];
    Py_DECREF(descr);
    return float32_sort != NULL;
}

/* The percentiles `qs` (0-100) of the `count` finite values at the start of `sorted`, into
 * out[k * stride]: linear interpolation between the two nearest ranks, in float64, as
 * `_percentiles` computes it (NaN for an empty row). */
static void
percentiles(const float *sorted, Py_ssize_t count, const double *qs, Py_ssize_t nq,
            double *out, Py_ssize_t stride)
{
    const Py_ssize_t below = count > 0 ? count - 1 : 0;
    for (Py_ssize_t k = 0; k < nq; k++) {
        if (count == 0) {
            out[k * stride] = NAN;
            continue;
        }
        const double q = qs[k] + 0.0; /* -0.0 as 0.0, as `_percentiles` takes it */
        const double pos = (q / 100.0) * (double)below;
        const Py_ssize_t lo = (Py_ssize_t)floor(pos);
        const Py_ssize_t hi = lo + 1 < below ? lo + 1 : below;
        const double frac = pos - (double)lo;
        const double lo_v = sorted[lo], hi_v = sorted[hi];
        out[k * stride] = lo_v + (hi_v - lo_v) * frac;
    }
}

PyObject *
sorted_percentiles(PyObject *Py_UNUSED(module), PyObject *args)
{
    enum { VALUES, QS, COUNTS, FOUND, MEANS, TOTALS, COUNT };
    PyObject *objects[COUNT] = {NULL};
    Py_ssize_t per_hour = 0;
    if (!PyArg_ParseTuple(args, "OOOO|nOO", &objects[VALUES], &objects[QS], &objects[COUNTS],
                          &objects[FOUND], &per_hour, &objects[MEANS], &objects[TOTALS])) {
        return NULL;
    }
    const int hours_too = objects[MEANS] != NULL || objects[TOTALS] != NULL;
    if (hours_too && (objects[MEANS] == NULL || objects[TOTALS] == NULL)) {
        PyErr_SetString(PyExc_TypeError, "means and totals go together");
        return NULL;
    }
    PyArray_SortFunc *sort = float32_sort;
    if (sort == NULL) { /* the module then has no sorted_percentiles: not reached */
        PyErr_SetString(PyExc_RuntimeError, "numpy has no float32 sort function to call");
        return NULL;
    }
    const int needed = hours_too ? COUNT : MEANS;
    Py_buffer views[COUNT];
    PyObject *result = NULL;
    float *row = NULL;
    double *qs = NULL;
    int got = get_buffers(objects, views, needed, QS + 1);
    if (got < needed) {
        goto done;
    }
    const Py_buffer *values = &views[VALUES];
    Py_ssize_t nq = views[QS].ndim == 1 ? views[QS].shape[0] : -1;
    if (check_floats(values, 2, "values") < 0 || check_doubles(&views[QS], nq, "qs") < 0) {
        goto done;
    }
    const Py_ssize_t n = values->shape[0], t = values->shape[1];
    if (check_indices(&views[COUNTS], n, "counts") < 0 ||
        check_doubles(&views[FOUND], nq * n, "found (len(qs) x rows, flat)") < 0 ||
        (hours_too && check_hour_outputs(values, per_hour, &views[MEANS], &views[TOTALS]) < 0)) {
        goto done;
    }
    /* Outputs are written while later rows (and every row's qs) are still to be read: none
     * may share bytes with the inputs or with another output. */
    for (int k = COUNTS; k < needed; k++) {
        for (int other = VALUES; other < k; other++) {
            if (overlap(&views[other], &views[k])) {
                PyErr_SetString(PyExc_ValueError,
                                "an output shares memory with values, qs or another output");
                goto done;
            }
        }
    }
    /* the percentiles, copied and checked once (the caller's array is not locked while the
     * GIL is released: read again for every row, a change there would move the ranks read);
     * then the row and (for the hour pass) its deviations */
    qs = PyMem_RawMalloc((size_t)(nq > 0 ? nq : 1) * sizeof(double));
    row = n > 0 ? PyMem_RawMalloc((size_t)(t > 0 ? 2 * t : 1) * sizeof(float)) : NULL;
    if (qs == NULL || (n > 0 && row == NULL)) {
        PyErr_NoMemory();
        goto done;
    }
    memcpy(qs, views[QS].buf, (size_t)nq * sizeof(double));
    for (Py_ssize_t k = 0; k < nq; k++) {
        if (!(qs[k] >= 0.0 && qs[k] <= 100.0)) {
            PyErr_Format(PyExc_ValueError, "qs[%zd]: a percentile from 0 to 100 is needed", k);
            goto done;
        }
    }
    float *dev = row + t;
    long long *counts = views[COUNTS].buf;
    double *found = views[FOUND].buf;
    int failed = 0;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t r = 0; r < n && !failed; r++) {
        memcpy(row, (const char *)values->buf + r * values->strides[0], (size_t)t * sizeof(float));
        if (hours_too) { /* from the copy in L1, before it is sorted */
            float *row_means = (float *)((char *)views[MEANS].buf + r * views[MEANS].strides[0]);
            *(float *)((char *)views[TOTALS].buf + r * views[TOTALS].strides[0]) =
                hour_row(row, row_means, dev, t / per_hour, per_hour);
        }
        /* numpy passes the array sorted; its float sorts read nothing from it */
        failed = sort(row, t, NULL) < 0;
        Py_ssize_t count = t;
        while (count > 0 && isnan(row[count - 1])) { /* numpy sorts NaN last */
            count--;
        }
        counts[r] = count;
        percentiles(row, count, qs, nq, found + r, n);
    }
    Py_END_ALLOW_THREADS
    if (failed) {
        PyErr_NoMemory();
        goto done;
    }
    result = Py_NewRef(Py_None);
done:
    PyMem_RawFree(row);
    PyMem_RawFree(qs);
    release_buffers(views, got);
    return result;
}

/* The centred rolling mean ignoring NaN (engine/stats.py, `centred_nanmean`: the spike
 * filter's hourly baseline, 7 hours wide by default); see _point_passes.c for what the
 * point passes promise (the same bits as the numpy path) and how they are built.
 *
 * numpy's path makes a dozen array operations per chunk of 520 rows x 168 hours (a padded
 * copy, `window` shifted additions, the edge counts, a division; for the rows with a gap the
 * same again for their counts, and a float64 rescaling), each a call and a pass over the
 * chunk; here a row stays in L1 from its first read to its last. */
#include "_point_passes.h"

/* The window's shifted slices of `padded` (t + 2 x half points) added in order, as numpy
 * adds them: out[j] = padded[j] + padded[j + 1] + ... (zeros included: 0 + -0.0 is +0.0 in
 * both). */
static void
window_sums(const float *restrict padded, float *restrict out, Py_ssize_t t, Py_ssize_t window)
{
    memcpy(out, padded, (size_t)t * sizeof(float));
    for (Py_ssize_t k = 1; k < window; k++) {
        const float *shifted = padded + k;
        for (Py_ssize_t j = 0; j < t; j++) {
            out[j] += shifted[j];
        }
    }
}

/* One row's centred mean, as `centred_nanmean` computes it: the sums of the row between
 * `half` zeros on each side, divided in float32 by `edges` (the points the window covers
 * inside the row). A row with a gap has its NaN as zeros in the sums and counts its points
 * (float32 sums of 1 and 0, exact); its mean is then rescaled as numpy does it, in float64:
 * mean x edge / count, NaN where the window holds no point. */
static void
centred_row(const float *restrict row, float *restrict padded, float *restrict counted,
            float *restrict counts, const float *restrict edges, float *restrict out,
            Py_ssize_t t, Py_ssize_t window)
{
    const Py_ssize_t half = window / 2;
    unsigned char gap = 0;
    for (Py_ssize_t j = 0; j < t; j++) {
        gap |= isnan(row[j]) != 0;
    }
    for (Py_ssize_t j = 0; j < half; j++) {
        padded[j] = padded[half + t + j] = 0.0f;
        counted[j] = counted[half + t + j] = 0.0f;
    }
    if (!gap) {
        memcpy(padded + half, row, (size_t)t * sizeof(float));
    } else {
        for (Py_ssize_t j = 0; j < t; j++) {
            const int missing = isnan(row[j]) != 0;
            padded[half + j] = missing ? 0.0f : row[j];
            counted[half + j] = missing ? 0.0f : 1.0f;
        }
    }
    window_sums(padded, out, t, window);
    for (Py_ssize_t j = 0; j < t; j++) { /* float divisors: a loop the compiler vectorises */
        out[j] /= edges[j];
    }
    if (!gap) {
        return;
    }
    window_sums(counted, counts, t, window);
    for (Py_ssize_t j = 0; j < t; j++) {
        /* numpy multiplies by the exact (int64) edge here, and divides by max(count, 1): the
         * same where count > 0 */
        const Py_ssize_t hi = j + half < t - 1 ? j + half : t - 1, lo = j - half > 0 ? j - half : 0;
        out[j] = counts[j] > 0.0f
                     ? (float)(((double)out[j] * (double)(hi - lo + 1)) / (double)counts[j])
                     : NAN;
    }
}

PyObject *
centred_means(PyObject *Py_UNUSED(module), PyObject *args)
{
    enum { VALUES, OUT, COUNT };
    PyObject *objects[COUNT];
    Py_ssize_t window;
    if (!PyArg_ParseTuple(args, "OnO", &objects[VALUES], &window, &objects[OUT])) {
        return NULL;
    }
    Py_buffer views[COUNT];
    PyObject *result = NULL;
    float *scratch = NULL;
    int got = get_buffers(objects, views, COUNT, 1);
    if (got < COUNT) {
        goto done;
    }
    const Py_buffer *values = &views[VALUES], *out = &views[OUT];
    if (check_floats(values, 2, "values") < 0 || check_floats(out, 2, "out") < 0) {
        goto done;
    }
    const Py_ssize_t n = values->shape[0], t = values->shape[1];
    if (out->shape[0] != n || out->shape[1] != t) {
        PyErr_SetString(PyExc_ValueError, "out: the shape of values is needed");
        goto done;
    }
    if (window < 1 || window % 2 == 0) {
        PyErr_SetString(PyExc_ValueError, "window: an odd number of points is needed");
        goto done;
    }
    /* Wider than 2 x t + 1 adds only the padding's zeros and covers the whole row from every
     * column: the same sums and edges, and scratch that cannot overflow its size. */
    if (window > 2 * t + 1) {
        window = 2 * t + 1;
    }
    /* Rows are written while later rows are still to be read. */
    if (overlap(values, out)) {
        PyErr_SetString(PyExc_ValueError, "out shares memory with values");
        goto done;
    }
    const Py_ssize_t half = window / 2, wide = t + 2 * half;
    /* the padded row and its padded counts, then each column's count and divisor */
    scratch = PyMem_RawMalloc((size_t)(2 * wide + 2 * t + 1) * sizeof(float));
    if (scratch == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    float *padded = scratch, *counted = scratch + wide, *counts = scratch + 2 * wide;
    float *edges = counts + t;
    for (Py_ssize_t j = 0; j < t; j++) {
        Py_ssize_t hi = j + half < t - 1 ? j + half : t - 1;
        Py_ssize_t lo = j - half > 0 ? j - half : 0;
        edges[j] = (float)(hi - lo + 1);
    }
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t r = 0; r < n; r++) {
        const float *row = (const float *)((const char *)values->buf + r * values->strides[0]);
        float *means = (float *)((char *)out->buf + r * out->strides[0]);
        centred_row(row, padded, counted, counts, edges, means, t, window);
    }
    Py_END_ALLOW_THREADS
    result = Py_NewRef(Py_None);
done:
    PyMem_RawFree(scratch);
    release_buffers(views, got);
    return result;
}

/* The engine's point passes in C: one sweep over each row where numpy makes several passes
 * over every point, each streaming the points through memory with a temporary. A row of a
 * week at 5 minutes (2,016 points, 8 kB) is read once and what is made of it stays in L1.
 *
 * - `hour_pass` (engine/hourly.py, `means_and_variability`): every hour's mean, and the sum
 *   of the points' relative deviations from their hour's mean, capped at 1.
 * - `blocks_above` (engine/spikes.py, `_suspects_above`): whether any point of each block
 *   the spike filter suspects exceeds its bound.
 * - `demand_pass` (engine/throttling.py, `demand`; in _demand_pass.c): demand = accepted +
 *   bounded discards, and the sums read from it.
 *
 * The same bits as the numpy paths, which stay as the fallback where no compiler built this
 * (tests/test_point_passes.py compares them): additions in numpy's pairwise order
 * (numpy/_core/src/umath/loops_utils.h.src), one IEEE float32 operation per numpy step, no
 * fast-math and no contraction into fused multiply-adds (setup.py: -ffp-contract=off).
 * (Signaling NaNs are outside this: numpy itself treats them differently from one position
 * of a row to the next; no source hands them over, JSON cannot carry one.)
 *
 * Callers check their arrays in Python (engine/compiled.py, `fits`); this checks every
 * buffer's layout and every index again, and raises ValueError rather than read out of
 * bounds.
 */
#include "_point_passes.h"

/* |x / mean - 1| capped at 1, as numpy's divide, subtract, clip(-1, 1) and abs give it (NaN
 * stays NaN). */
static void
deviations(const float *restrict x, float mean, Py_ssize_t n, float *restrict out)
{
    for (Py_ssize_t i = 0; i < n; i++) {
        float q = x[i] / mean - 1.0f;
        q = q > 1.0f ? 1.0f : q;
        q = q < -1.0f ? -1.0f : q;
        out[i] = fabsf(q);
    }
}

/* The means first, then the deviations: the hours' sums are independent chains that the CPU
 * overlaps, where a sum then its deviations, hour by hour, wait on each sum in turn (2x). */
static inline void
row_pass_n(const float *restrict row, float *restrict row_means, float *restrict dev,
           Py_ssize_t hours, Py_ssize_t per_hour, float divisor)
{
    for (Py_ssize_t h = 0; h < hours; h++) {
        row_means[h] = pairwise_sum(row + h * per_hour, per_hour) / divisor;
    }
    for (Py_ssize_t h = 0; h < hours; h++) {
        deviations(row + h * per_hour, row_means[h], per_hour, dev + h * per_hour);
    }
}

static void
row_pass(const float *restrict row, float *restrict row_means, float *restrict dev,
         Py_ssize_t hours, Py_ssize_t per_hour, float divisor)
{
    if (per_hour == 12) { /* 5-minute steps: constant bounds, unrolled (2x faster) */
        row_pass_n(row, row_means, dev, hours, 12, 12.0f);
    } else {
        row_pass_n(row, row_means, dev, hours, per_hour, divisor);
    }
}

static PyObject *
hour_pass(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *values_obj, *means_obj, *totals_obj;
    Py_ssize_t per_hour;
    if (!PyArg_ParseTuple(args, "OnOO", &values_obj, &per_hour, &means_obj, &totals_obj)) {
        return NULL;
    }
    Py_buffer values, means, totals;
    if (PyObject_GetBuffer(values_obj, &values, PyBUF_RECORDS_RO) < 0) {
        return NULL;
    }
    if (PyObject_GetBuffer(means_obj, &means, PyBUF_RECORDS) < 0) {
        PyBuffer_Release(&values);
        return NULL;
    }
    if (PyObject_GetBuffer(totals_obj, &totals, PyBUF_RECORDS) < 0) {
        PyBuffer_Release(&values);
        PyBuffer_Release(&means);
        return NULL;
    }
    PyObject *result = NULL;
    float *scratch = NULL;
    if (check_floats(&values, 2, "values") < 0 || check_floats(&means, 2, "means") < 0 ||
        check_floats(&totals, 1, "totals") < 0) {
        goto done;
    }
    Py_ssize_t rows = values.shape[0], points = values.shape[1];
    if (per_hour < 1 || points % per_hour != 0) {
        PyErr_SetString(PyExc_ValueError, "values: whole hours of per_hour points are needed");
        goto done;
    }
    Py_ssize_t hours = points / per_hour;
    if (means.shape[0] != rows || means.shape[1] != hours || totals.shape[0] != rows) {
        PyErr_SetString(PyExc_ValueError, "means (rows, hours) and totals (rows,) are needed");
        goto done;
    }
    scratch = PyMem_RawMalloc((size_t)(points > 0 ? points : 1) * sizeof(float));
    if (scratch == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    const float divisor = (float)per_hour;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t r = 0; r < rows; r++) {
        const float *row = (const float *)((const char *)values.buf + r * values.strides[0]);
        float *row_means = (float *)((char *)means.buf + r * means.strides[0]);
        row_pass(row, row_means, scratch, hours, per_hour, divisor);
        *(float *)((char *)totals.buf + r * totals.strides[0]) =
            0.0f + pairwise_sum(scratch, points);
    }
    Py_END_ALLOW_THREADS
    result = Py_NewRef(Py_None);
done:
    PyMem_RawFree(scratch);
    PyBuffer_Release(&values);
    PyBuffer_Release(&means);
    PyBuffer_Release(&totals);
    return result;
}

static int
check_indices(const Py_buffer *b, Py_ssize_t n, const char *name)
{
    const char *f = b->format;
    size_t len = f == NULL ? 0 : strlen(f);
    char code = len ? f[len - 1] : 0;
    int native = len == 1 || (len == 2 && (f[0] == '=' || f[0] == '@' ||
                                           (PY_LITTLE_ENDIAN && f[0] == '<')));
    if (!native || (code != 'l' && code != 'q') || b->itemsize != 8 || b->ndim != 1 ||
        b->shape[0] != n || b->strides[0] != 8) {
        PyErr_Format(PyExc_ValueError, "%s: a contiguous int64 array of %zd is needed", name, n);
        return -1;
    }
    return 0;
}

/* Blocks read ahead of the one compared: each is a cache miss otherwise (~45 ns; 4.5 against
 * 2.6 ms a limit at 10,000 tenants). */
#define PREFETCH_AHEAD 16
#if defined(__GNUC__)
#define PREFETCH(address) __builtin_prefetch(address)
#else
#define PREFETCH(address) ((void)(address))
#endif

static PyObject *
blocks_above(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *values_obj, *rows_obj, *blocks_obj, *bounds_obj, *out_obj;
    Py_ssize_t per_hour;
    if (!PyArg_ParseTuple(args, "OnOOOO", &values_obj, &per_hour, &rows_obj, &blocks_obj,
                          &bounds_obj, &out_obj)) {
        return NULL;
    }
    Py_buffer views[5];
    PyObject *objects[5] = {values_obj, rows_obj, blocks_obj, bounds_obj, out_obj};
    int flags[5] = {PyBUF_RECORDS_RO, PyBUF_RECORDS_RO, PyBUF_RECORDS_RO, PyBUF_RECORDS_RO,
                    PyBUF_RECORDS};
    int got = 0;
    PyObject *result = NULL;
    for (; got < 5; got++) {
        if (PyObject_GetBuffer(objects[got], &views[got], flags[got]) < 0) {
            goto done;
        }
    }
    Py_buffer *values = &views[0], *rows = &views[1], *blocks = &views[2];
    Py_buffer *bounds = &views[3], *out = &views[4];
    Py_ssize_t pairs = bounds->ndim == 1 ? bounds->shape[0] : -1;
    if (check_floats(values, 2, "values") < 0 || check_floats(bounds, 1, "bounds") < 0 ||
        check_indices(rows, pairs, "rows") < 0 || check_indices(blocks, pairs, "blocks") < 0) {
        goto done;
    }
    if (out->itemsize != 1 || out->ndim != 1 || out->shape[0] != pairs || out->strides[0] != 1) {
        PyErr_SetString(PyExc_ValueError, "out: a contiguous array of one byte per block is needed");
        goto done;
    }
    /* volatile: one read each, never read again from the caller's memory after the check */
    const volatile long long *row_at = rows->buf, *block_at = blocks->buf;
    Py_ssize_t n = values->shape[0], whole = per_hour > 0 ? values->shape[1] / per_hour : 0;
    const float *limit = bounds->buf;
    unsigned char *hit = out->buf;
    Py_ssize_t bad = -1;
    long long bad_row = 0, bad_block = 0;
    /* Each index is read once, into a local, and checked there: the caller's arrays are not
     * locked while the GIL is released (another thread, or `out` overlapping them, may
     * change them under this loop). */
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < pairs; i++) {
        long long row = row_at[i], block = block_at[i];
        if (row < 0 || row >= n || block < 0 || block >= whole) {
            bad = i;
            bad_row = row;
            bad_block = block;
            break;
        }
        if (i + PREFETCH_AHEAD < pairs) { /* the blocks are far apart: ask for them early */
            long long ahead_row = row_at[i + PREFETCH_AHEAD];
            long long ahead_block = block_at[i + PREFETCH_AHEAD];
            if (ahead_row >= 0 && ahead_row < n && ahead_block >= 0 && ahead_block < whole) {
                PREFETCH((const char *)values->buf + ahead_row * values->strides[0] +
                         ahead_block * per_hour * (Py_ssize_t)sizeof(float));
            }
        }
        const float *x =
            (const float *)((const char *)values->buf + row * values->strides[0]) +
            block * per_hour;
        unsigned char above = 0;
        for (Py_ssize_t j = 0; j < per_hour; j++) {
            above |= x[j] > limit[i]; /* NaN: never above */
        }
        hit[i] = above;
    }
    Py_END_ALLOW_THREADS
    if (bad >= 0) {
        PyErr_Format(PyExc_ValueError, "block %zd: row %lld, block %lld out of range", bad,
                     bad_row, bad_block);
        goto done;
    }
    result = Py_NewRef(Py_None);
done:
    for (int k = 0; k < got; k++) {
        PyBuffer_Release(&views[k]);
    }
    return result;
}

static PyMethodDef methods[] = {
    {"hour_pass", hour_pass, METH_VARARGS,
     "hour_pass(values, per_hour, means, totals): hour means into means (rows, hours) and "
     "each row's sum of |point / its hour's mean - 1| capped at 1 into totals (rows,); "
     "float32, contiguous rows."},
    {"blocks_above", blocks_above, METH_VARARGS,
     "blocks_above(values, per_hour, rows, blocks, bounds, out): out[i] = 1 when a point of "
     "block blocks[i] (per_hour points from its start) of row rows[i] exceeds bounds[i]; "
     "values float32 with contiguous rows, rows and blocks int64, bounds float32, out bool."},
    {"demand_pass", demand_pass, METH_VARARGS,
     "demand_pass(usage, discards, demand, retried, bound_factor, recent_lo, recent_hi, "
     "day_lo, day_hi, total_d, total, now, recently, bounded): demand = usage + discards (NaN "
     "and negative discards 0; when retried, at most bound_factor x usage) into demand; "
     "per row the discards' sum, demand's sum (NaN for a row with a usage gap), whether the "
     "discards in columns recent_lo:recent_hi and day_lo:day_hi sum above 0, and whether the "
     "bound cut. float32 with contiguous rows; the flags one byte per row."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_point_passes", "The engine's compiled point passes.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__point_passes(void)
{
    PyObject *m = PyModule_Create(&module);
#ifdef SOURCE_SHA256 /* setup.py: which sources this was built from (engine/compiled.py) */
    if (m != NULL && PyModule_AddStringConstant(m, "SOURCE_SHA256", SOURCE_SHA256) < 0) {
        Py_DECREF(m);
        return NULL;
    }
#endif
    return m;
}

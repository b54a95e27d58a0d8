/* The engine's hour pass in one sweep over each row: every hour's mean, and the sum of the
 * points' relative deviations from their hour's mean, capped at 1 (engine/hourly.py,
 * `means_and_variability`).
 *
 * Why compiled: in numpy this is six passes over every point (hour sums, a broadcast divide,
 * subtract, clip, abs, row sums), each streaming the points through memory with a temporary;
 * here a row's 2,016 points (8 kB) are read once and its deviations stay in L1 cache.
 *
 * Same bits as the numpy path, which stays as the fallback (tests/test_hour_pass.py compares
 * them on every kind of row): additions in numpy's pairwise order
 * (numpy/_core/src/umath/loops_utils.h.src), one IEEE float32 operation per numpy step, no
 * fast-math and no contraction into fused multiply-adds (setup.py: -ffp-contract=off).
 *
 * Also the spike filter's question for the blocks it suspects (engine/spikes.py): does any
 * point of the block exceed its bound? A gather of those blocks in numpy costs five times more.
 *
 * Inputs are checked in Python; this checks the buffers' layout and every index again and
 * raises ValueError rather than read out of bounds.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
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

static int
check_floats(const Py_buffer *b, int ndim, const char *name)
{
    const char *f = b->format;
    /* native float32 ("<f" is how numpy names it on a little-endian machine) */
    int is_float = f != NULL && (strcmp(f, "f") == 0 || strcmp(f, "=f") == 0 ||
                                 strcmp(f, "@f") == 0 || (PY_LITTLE_ENDIAN && strcmp(f, "<f") == 0));
    if (!is_float || b->itemsize != 4 || b->ndim != ndim ||
        b->strides[ndim - 1] != (Py_ssize_t)sizeof(float) ||
        (ndim == 2 && b->strides[0] % (Py_ssize_t)sizeof(float) != 0)) {
        PyErr_Format(PyExc_ValueError,
                     "%s: a float32 array of %d dimensions with contiguous rows is needed",
                     name, ndim);
        return -1;
    }
    return 0;
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
    const long long *row_at = rows->buf, *block_at = blocks->buf;
    Py_ssize_t n = values->shape[0], whole = per_hour > 0 ? values->shape[1] / per_hour : 0;
    for (Py_ssize_t i = 0; i < pairs; i++) {
        if (row_at[i] < 0 || row_at[i] >= n || block_at[i] < 0 || block_at[i] >= whole) {
            PyErr_Format(PyExc_ValueError, "block %zd: row %lld, block %lld out of range", i,
                         row_at[i], block_at[i]);
            goto done;
        }
    }
    const float *limit = bounds->buf;
    unsigned char *hit = out->buf;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < pairs; i++) {
        if (i + PREFETCH_AHEAD < pairs) { /* the blocks are far apart: ask for them early */
            Py_ssize_t k = i + PREFETCH_AHEAD;
            PREFETCH((const char *)values->buf + row_at[k] * values->strides[0] +
                               block_at[k] * per_hour * (Py_ssize_t)sizeof(float));
        }
        const float *x = (const float *)((const char *)values->buf + row_at[i] * values->strides[0]) +
                         block_at[i] * per_hour;
        unsigned char above = 0;
        for (Py_ssize_t j = 0; j < per_hour; j++) {
            above |= x[j] > limit[i]; /* NaN: never above */
        }
        hit[i] = above;
    }
    Py_END_ALLOW_THREADS
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
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_hour_pass", "The engine's compiled hour pass.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__hour_pass(void)
{
    return PyModule_Create(&module);
}

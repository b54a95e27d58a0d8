/* The engine's point passes in C: one sweep over each row where numpy makes several passes
 * over every point, each streaming the points through memory with a temporary. A row of a
 * week at 5 minutes (2,016 points, 8 kB) is read once and what is made of it stays in L1.
 *
 * - `hour_pass` (engine/hourly.py, `means_and_variability`): every hour's mean, and the sum
 *   of the points' relative deviations from their hour's mean, capped at 1.
 * - `rows_above` (engine/spikes.py, `_suspects_above`): whether any point of a row exceeds
 *   its block's bound, reading only the blocks the spike filter suspects.
 * - `demand_pass` (engine/throttling.py, `demand`; in _demand_pass.c): demand = accepted +
 *   bounded discards, and the sums read from it.
 * - `centred_means` (engine/stats.py, `centred_nanmean`; in _centred_pass.c): the spike
 *   filter's centred baseline over the hour means.
 * - `sorted_percentiles` (engine/stats.py, `_sorted_chunks`; in _sort_pass.c): each row
 *   sorted on its own in L1, its finite points counted and its percentiles read.
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

float
hour_row(const float *row, float *row_means, float *dev, Py_ssize_t hours, Py_ssize_t per_hour)
{
    row_pass(row, row_means, dev, hours, per_hour, (float)per_hour);
    return 0.0f + pairwise_sum(dev, hours * per_hour);
}

int
check_hour_outputs(const Py_buffer *values, Py_ssize_t per_hour, const Py_buffer *means,
                   const Py_buffer *totals)
{
    if (check_floats(means, 2, "means") < 0 || check_floats(totals, 1, "totals") < 0) {
        return -1;
    }
    Py_ssize_t rows = values->shape[0], points = values->shape[1];
    if (per_hour < 1 || points % per_hour != 0) {
        PyErr_SetString(PyExc_ValueError, "values: whole hours of per_hour points are needed");
        return -1;
    }
    if (means->shape[0] != rows || means->shape[1] != points / per_hour ||
        totals->shape[0] != rows) {
        PyErr_SetString(PyExc_ValueError, "means (rows, hours) and totals (rows,) are needed");
        return -1;
    }
    return 0;
}

static PyObject *
hour_pass(PyObject *Py_UNUSED(module), PyObject *args)
{
    enum { VALUES, MEANS, TOTALS, COUNT };
    PyObject *objects[COUNT];
    Py_ssize_t per_hour;
    if (!PyArg_ParseTuple(args, "OnOO", &objects[VALUES], &per_hour, &objects[MEANS],
                          &objects[TOTALS])) {
        return NULL;
    }
    Py_buffer views[COUNT];
    PyObject *result = NULL;
    float *scratch = NULL;
    int got = get_buffers(objects, views, COUNT, 1);
    if (got < COUNT) {
        goto done;
    }
    const Py_buffer *values = &views[VALUES], *means = &views[MEANS], *totals = &views[TOTALS];
    if (check_floats(values, 2, "values") < 0 ||
        check_hour_outputs(values, per_hour, means, totals) < 0) {
        goto done;
    }
    Py_ssize_t rows = values->shape[0], points = values->shape[1];
    scratch = PyMem_RawMalloc((size_t)(points > 0 ? points : 1) * sizeof(float));
    if (scratch == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t r = 0; r < rows; r++) {
        const float *row = (const float *)((const char *)values->buf + r * values->strides[0]);
        float *row_means = (float *)((char *)means->buf + r * means->strides[0]);
        *(float *)((char *)totals->buf + r * totals->strides[0]) =
            hour_row(row, row_means, scratch, points / per_hour, per_hour);
    }
    Py_END_ALLOW_THREADS
    result = Py_NewRef(Py_None);
done:
    PyMem_RawFree(scratch);
    release_buffers(views, got);
    return result;
}

#if defined(__GNUC__)
#define PREFETCH(address) __builtin_prefetch(address)
#else
#define PREFETCH(address) ((void)(address))
#endif

/* The suspect blocks of a row are far apart in memory and each is a cache miss (~100 ns):
 * asked for one row ahead, they arrive while the row before is read (4.9 against 6.0 ms a
 * limit at 10,000 tenants). */
static inline void
prefetch_suspects(const Py_buffer *values, const Py_buffer *bound, long long row, double top,
                  Py_ssize_t whole, Py_ssize_t per_hour)
{
    const char *x = (const char *)values->buf + row * values->strides[0];
    const float *limits = (const float *)((const char *)bound->buf + row * bound->strides[0]);
    for (Py_ssize_t b = 0; b < whole; b++) {
        if ((double)limits[b] < top) {
            PREFETCH(x + b * per_hour * (Py_ssize_t)sizeof(float));
        }
    }
}

/* Whether any point of a row's whole blocks exceeds its block's bound, reading only the
 * blocks whose bound is under the row's maximum (engine/spikes.py, `_suspects_above`): a
 * point above its bound is at most the row's maximum, so no other block can hold one. The
 * bound is compared with the maximum in float64, as numpy compares them. */
static PyObject *
rows_above(PyObject *Py_UNUSED(module), PyObject *args)
{
    enum { VALUES, BOUND, ROWS, ROW_MAX, OUT, COUNT };
    PyObject *objects[COUNT];
    Py_ssize_t per_hour;
    if (!PyArg_ParseTuple(args, "OnOOOO", &objects[VALUES], &per_hour, &objects[BOUND],
                          &objects[ROWS], &objects[ROW_MAX], &objects[OUT])) {
        return NULL;
    }
    Py_buffer views[COUNT];
    PyObject *result = NULL;
    int got = get_buffers(objects, views, COUNT, OUT);
    if (got < COUNT) {
        goto done;
    }
    const Py_buffer *values = &views[VALUES], *bound = &views[BOUND];
    Py_ssize_t count = views[ROWS].ndim == 1 ? views[ROWS].shape[0] : -1;
    if (check_floats(values, 2, "values") < 0 || check_floats(bound, 2, "bound") < 0 ||
        check_indices(&views[ROWS], count, "rows") < 0 ||
        check_doubles(&views[ROW_MAX], count, "row_max") < 0 ||
        check_flags(&views[OUT], count, "out") < 0) {
        goto done;
    }
    Py_ssize_t n = values->shape[0];
    Py_ssize_t whole = per_hour > 0 ? values->shape[1] / per_hour : -1;
    if (whole < 0 || bound->shape[0] != n || bound->shape[1] < whole) {
        PyErr_SetString(PyExc_ValueError,
                        "bound: a (rows, blocks) array with a bound for every whole block, "
                        "and per_hour > 0, are needed");
        goto done;
    }
    /* volatile: each index read once, checked, never read again (the caller's arrays are not
     * locked while the GIL is released; another thread or an overlapping `out` may change
     * them) */
    const volatile long long *row_at = views[ROWS].buf;
    const double *row_max = views[ROW_MAX].buf;
    unsigned char *above = views[OUT].buf;
    Py_ssize_t bad = -1;
    long long bad_row = 0;
    Py_BEGIN_ALLOW_THREADS
    long long next = count ? row_at[0] : 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        long long row = next;
        if (row < 0 || row >= n) {
            bad = i;
            bad_row = row;
            break;
        }
        if (i + 1 < count) { /* the next row's suspect blocks, asked for while this one runs */
            next = row_at[i + 1];
            if (next >= 0 && next < n) {
                prefetch_suspects(values, bound, next, row_max[i + 1], whole, per_hour);
            }
        }
        const float *x = (const float *)((const char *)values->buf + row * values->strides[0]);
        const float *limits = (const float *)((const char *)bound->buf + row * bound->strides[0]);
        const double top = row_max[i];
        unsigned char hit = 0;
        for (Py_ssize_t b = 0; b < whole && !hit; b++) {
            const float limit = limits[b];
            if (!((double)limit < top)) { /* NaN maximum: no block is suspect */
                continue;
            }
            const float *block = x + b * per_hour;
            for (Py_ssize_t j = 0; j < per_hour; j++) {
                hit |= block[j] > limit; /* NaN: never above */
            }
        }
        above[i] = hit;
    }
    Py_END_ALLOW_THREADS
    if (bad >= 0) {
        PyErr_Format(PyExc_ValueError, "row %zd: %lld is out of range", bad, bad_row);
        goto done;
    }
    result = Py_NewRef(Py_None);
done:
    release_buffers(views, got);
    return result;
}

static PyMethodDef methods[] = {
    {"hour_pass", hour_pass, METH_VARARGS,
     "hour_pass(values, per_hour, means, totals): hour means into means (rows, hours) and "
     "each row's sum of |point / its hour's mean - 1| capped at 1 into totals (rows,); "
     "float32, contiguous rows."},
    {"rows_above", rows_above, METH_VARARGS,
     "rows_above(values, per_hour, bound, rows, row_max, out): out[i] = 1 when a point of a "
     "whole block (per_hour points) of row rows[i] exceeds that block's bound[rows[i], b], "
     "reading only the blocks whose bound is under row_max[i]; values and bound float32 with "
     "contiguous rows, rows int64, row_max float64, out bool."},
    {"demand_pass", demand_pass, METH_VARARGS,
     "demand_pass(usage, discards, demand, retried, bound_factor, recent_lo, recent_hi, "
     "day_lo, day_hi, total_d, total, now, recently, bounded): demand = usage + discards (NaN "
     "and negative discards 0; when retried, at most bound_factor x usage) into demand; "
     "per row the discards' sum, demand's sum (NaN for a row with a usage gap), whether the "
     "discards in columns recent_lo:recent_hi and day_lo:day_hi sum above 0, and whether the "
     "bound cut. float32 with contiguous rows; the flags one byte per row."},
    {"centred_means", centred_means, METH_VARARGS,
     "centred_means(values, window, out): each row's centred rolling mean over window points "
     "ignoring NaN into out (NaN where the window holds no point); float32 with contiguous "
     "rows."},
#ifdef MLO_SORT_PASS
    {"sorted_percentiles", sorted_percentiles, METH_VARARGS,
     "sorted_percentiles(values, qs, counts, found[, per_hour, means, totals]): each row's "
     "count of finite points into counts (int64) and its percentiles qs (float64, 0-100) "
     "into found (float64, flat: found[k * rows + row] for qs[k]; NaN for an empty row), each "
     "row sorted on its own with numpy's float32 sort; with means and totals, the hour pass "
     "(hour_pass) over the same rows too. values float32 with contiguous rows; no output "
     "may share memory with values, qs or another output."},
#endif
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
#ifdef MLO_SORT_PASS
    /* numpy's C API, for its sort (_sort_pass.c): without it, no sort pass (the engine takes
     * numpy's path for it) and the other passes all the same. */
    if (m != NULL && !sort_pass_init() && PyObject_DelAttrString(m, "sorted_percentiles") < 0) {
        Py_DECREF(m);
        return NULL;
    }
#endif
#ifdef SOURCE_SHA256 /* setup.py: which sources this was built from (engine/compiled.py) */
    if (m != NULL && PyModule_AddStringConstant(m, "SOURCE_SHA256", SOURCE_SHA256) < 0) {
        Py_DECREF(m);
        return NULL;
    }
#endif
    return m;
}

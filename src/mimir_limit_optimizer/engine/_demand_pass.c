/* The engine's demand pass (engine/throttling.py, `demand`); see _point_passes.c for what the
 * point passes promise (the same bits as the numpy path) and how they are built. */
#include "_point_passes.h"

/* A row's discards as numpy's fmax(d, 0) gives them (NaN, negatives and -0: +0) and, when
 * retried (429s counted at each try), at most factor x the accepted rate (a NaN rate bounds
 * nothing), into `out`; 1 when the bound cut a point. */
static unsigned char
bounded_row(const float *restrict u, const float *restrict d, float *restrict out,
            Py_ssize_t t, int retried, float factor)
{
    unsigned char cut = 0;
    if (retried) {
        for (Py_ssize_t i = 0; i < t; i++) {
            float x = d[i] > 0.0f ? d[i] : 0.0f;
            float bound = u[i] * factor;
            unsigned char over = x > bound;
            out[i] = over ? bound : x;
            cut |= over;
        }
    } else {
        for (Py_ssize_t i = 0; i < t; i++) {
            out[i] = d[i] > 0.0f ? d[i] : 0.0f;
        }
    }
    return cut;
}

/* Demand = usage + discards for every row, and the sums the engine reads from it, in one
 * sweep per row (engine/throttling.py, `demand`): the discards bounded (`bounded_row`);
 * their row sum, and their sums over the last hour and the last day (throttled now, and
 * recently); whether the bound cut; demand's row sum. A row whose demand sum is NaN (a usage
 * gap) has its discard sums taken again without the gaps' points, as the numpy path does;
 * its demand sum stays NaN for the caller to take over the points that are there.
 * `demand` may be the discards' own buffer (in place): a row's discards are all read before
 * its demand is written. It must not overlap them otherwise (rows shifted against each
 * other), nor overlap the usage. */
PyObject *
demand_pass(PyObject *Py_UNUSED(module), PyObject *args)
{
    enum { USAGE, DISCARDS, DEMAND, TOTAL_D, TOTAL, NOW, RECENTLY, BOUNDED, COUNT };
    PyObject *objects[COUNT];
    int retried;
    float factor;
    Py_ssize_t recent_lo, recent_hi, day_lo, day_hi;
    if (!PyArg_ParseTuple(args, "OOOpfnnnnOOOOO", &objects[USAGE], &objects[DISCARDS],
                          &objects[DEMAND], &retried, &factor, &recent_lo, &recent_hi, &day_lo,
                          &day_hi,
                          &objects[TOTAL_D], &objects[TOTAL], &objects[NOW],
                          &objects[RECENTLY], &objects[BOUNDED])) {
        return NULL;
    }
    Py_buffer views[COUNT];
    PyObject *result = NULL;
    float *scratch = NULL;
    int got = get_buffers(objects, views, COUNT, 2);
    if (got < COUNT) {
        goto done;
    }
    const Py_buffer *usage = &views[USAGE], *discards = &views[DISCARDS];
    Py_buffer *demand = &views[DEMAND];
    if (check_floats(usage, 2, "usage") < 0 || check_floats(discards, 2, "discards") < 0 ||
        check_floats(demand, 2, "demand") < 0) {
        goto done;
    }
    Py_ssize_t n = usage->shape[0], t = usage->shape[1];
    if (discards->shape[0] != n || discards->shape[1] != t || demand->shape[0] != n ||
        demand->shape[1] != t) {
        PyErr_SetString(PyExc_ValueError, "usage, discards and demand: one shape is needed");
        goto done;
    }
    if (check_floats(&views[TOTAL_D], 1, "total_d") < 0 ||
        check_floats(&views[TOTAL], 1, "total") < 0 || views[TOTAL_D].shape[0] != n ||
        views[TOTAL].shape[0] != n) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_ValueError, "total_d and total: one value per row is needed");
        }
        goto done;
    }
    if (check_flags(&views[NOW], n, "now") < 0 || check_flags(&views[RECENTLY], n, "recently") < 0 ||
        check_flags(&views[BOUNDED], n, "bounded") < 0) {
        goto done;
    }
    if (recent_lo < 0 || recent_lo > recent_hi || recent_hi > t || day_lo < 0 ||
        day_lo > day_hi || day_hi > t) {
        PyErr_SetString(PyExc_ValueError, "the last hour's and day's columns must lie in the window");
        goto done;
    }
    scratch = PyMem_RawMalloc((size_t)(t > 0 ? t : 1) * sizeof(float));
    if (scratch == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    float *total_d = views[TOTAL_D].buf, *total = views[TOTAL].buf;
    unsigned char *now = views[NOW].buf, *recently = views[RECENTLY].buf;
    unsigned char *bounded = views[BOUNDED].buf;
    Py_ssize_t total_d_step = views[TOTAL_D].strides[0] / (Py_ssize_t)sizeof(float);
    Py_ssize_t total_step = views[TOTAL].strides[0] / (Py_ssize_t)sizeof(float);
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t r = 0; r < n; r++) {
        const float *u = (const float *)((const char *)usage->buf + r * usage->strides[0]);
        const float *d = (const float *)((const char *)discards->buf + r * discards->strides[0]);
        float *out = (float *)((char *)demand->buf + r * demand->strides[0]);
        unsigned char cut = bounded_row(u, d, scratch, t, retried, factor);
        for (Py_ssize_t i = 0; i < t; i++) { /* after the row's discards are all read */
            out[i] = u[i] + scratch[i];
        }
        float sum = 0.0f + pairwise_sum(out, t);
        if (isnan(sum)) { /* a usage gap: its discard point counts for nothing */
            for (Py_ssize_t i = 0; i < t; i++) {
                scratch[i] = isnan(u[i]) ? 0.0f : scratch[i];
            }
        }
        total_d[r * total_d_step] = 0.0f + pairwise_sum(scratch, t);
        now[r] = 0.0f + pairwise_sum(scratch + recent_lo, recent_hi - recent_lo) > 0.0f;
        recently[r] = 0.0f + pairwise_sum(scratch + day_lo, day_hi - day_lo) > 0.0f;
        total[r * total_step] = sum;
        bounded[r] = cut;
    }
    Py_END_ALLOW_THREADS
    result = Py_NewRef(Py_None);
done:
    PyMem_RawFree(scratch);
    release_buffers(views, got);
    return result;
}


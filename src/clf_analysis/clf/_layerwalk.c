/*
 * One-pass decoding of CLF layers laid out exactly as clf_analysis.clf.writer emits them.
 *
 * Why C: a layer of ~20 clusters and ~35 polygons cost ~50 us of interpreted byte
 * walking in Python, more than the numpy work of the layer. This module walks the bytes
 * once, checks everything the general reader (reader.py, _read_layer) would check for
 * this layout, and builds the same Shapes from views of one point array.
 *
 * Contract with reader.py: read_layer() returns None for any layer it does not accept,
 * and never raises for malformed bytes; the caller then decodes the layer with the
 * general Python code, which produces every error and warning. So the C path only has
 * to be right about what it accepts (tests compare both paths on mutated files).
 *
 * The layout accepted (the sections of docs/FORMAT.md#file-layout):
 *   layer      02 len                       (len: an lf_int of any width)
 *     z        00 04 <float32 LE>           (finite)
 *     count    01 w <lf_int of w = 1..3 bytes, its first byte announcing w>
 *     cluster* 02 (L in 0x11..0x1F | 0x20..0x3F + 1 byte)
 *                00 (01 m | 02 m m)         model id, one the header declares
 *                01 01 t                    cluster type 0..2
 *                polygon+                   ending exactly at the cluster's end
 *       polygon  02 09 00 01 T 01 01 F 03 01 c      (c < 0x20)
 *              | 02 0A 00 01 T 01 01 F 03 02 c c    (2-byte lf_int count)
 *     points   03 <lf_int of 1..4 bytes = 8 * count>, then 8 * count bytes filling the
 *              rest of the layer, every coordinate finite
 * with T and F in 0..2, the first polygon of a MODEL cluster an OUTLOOP (T = 0), and the
 * polygons' counts adding up to at most the layer's count.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <string.h>

/* Kept out of line so GCC vectorises it: inlined into the walk, it did not. */
#if defined(__GNUC__)
#define NOINLINE __attribute__((noinline))
#else
#define NOINLINE
#endif

/* Set once by configure(): the reader's value types and constants. */
static PyObject *shape_type;       /* clf_analysis.clf.types.Shape */
static PyObject *make_points;      /* callable(data, offset, count) -> (count, 2) view */
static PyObject *web_kinds[3];     /* "closed", "open", "dashed" by polygon format */
static PyObject *support_kind;     /* "support" */
static PyObject *model_kind;       /* "model" */
static PyObject *formats[3];       /* PolygonFormat members by value */
static PyObject *key_model_id, *key_kind, *key_loops, *key_line_format, *key_dict;
static PyObject *empty_args;

/* A big-endian run of n bytes after a first byte whose low 5 bits lead (lf_int). */
static uint64_t lf_value(const uint8_t *d, size_t pos, unsigned n)
{
    uint64_t value = d[pos] & 0x1F;
    for (unsigned i = 1; i <= n; i++) {
        value = (value << 8) | d[pos + i];
    }
    return value;
}

static float f32_le(const uint8_t *d)
{
    uint32_t bits = (uint32_t)d[0] | (uint32_t)d[1] << 8 | (uint32_t)d[2] << 16 |
                    (uint32_t)d[3] << 24;
    float value;
    memcpy(&value, &bits, sizeof value);
    return value;
}

/* 1 when every little-endian float32 of the buffer is finite: NaN and infinities are
 * the floats whose 8 exponent bits are all ones. Unaligned 32-bit loads (memcpy) and no
 * branches, so the compiler vectorises the loop. */
static NOINLINE int all_finite(const uint8_t *d, size_t nfloats)
{
    uint32_t bad = 0;
    for (size_t i = 0; i < nfloats; i++) {
        uint32_t bits;
        memcpy(&bits, d + 4 * i, sizeof bits);
#if PY_BIG_ENDIAN
        bits = __builtin_bswap32(bits);
#endif
        bad |= (uint32_t)((bits & 0x7F800000u) == 0x7F800000u);
    }
    return bad == 0;
}

/* Shape(model_id, kind, loops, line_format) without running the dataclass __init__:
 * object.__new__ plus a ready __dict__, as reader._shape does in Python. */
static PyObject *new_shape(long model_id, PyObject *kind, PyObject *loops, PyObject *format)
{
    PyObject *dict = PyDict_New();
    if (dict == NULL) {
        return NULL;
    }
    PyObject *id = PyLong_FromLong(model_id);
    if (id == NULL || PyDict_SetItem(dict, key_model_id, id) < 0 ||
        PyDict_SetItem(dict, key_kind, kind) < 0 || PyDict_SetItem(dict, key_loops, loops) < 0 ||
        PyDict_SetItem(dict, key_line_format, format) < 0) {
        Py_XDECREF(id);
        Py_DECREF(dict);
        return NULL;
    }
    Py_DECREF(id);
    PyObject *shape = PyBaseObject_Type.tp_new((PyTypeObject *)shape_type, empty_args, NULL);
    if (shape == NULL || PyObject_GenericSetAttr(shape, key_dict, dict) < 0) {
        Py_XDECREF(shape);
        Py_DECREF(dict);
        return NULL;
    }
    Py_DECREF(dict);
    return shape;
}

/* Append a new Shape to `shapes`; -1 with an exception set on failure. */
static int append_shape(PyObject *shapes, long model_id, PyObject *kind, PyObject *loops,
                        PyObject *format)
{
    PyObject *shape = new_shape(model_id, kind, loops, format);
    if (shape == NULL) {
        return -1;
    }
    int failed = PyList_Append(shapes, shape);
    Py_DECREF(shape);
    return failed;
}

typedef enum { ACCEPTED, DECLINED, FAILED } outcome_t;

/*
 * Decode the layer at `offset` into `out` = (z, count, used, shapes) when it has the
 * layout above: ACCEPTED. DECLINED for any other layer, FAILED with a Python exception
 * set (memory, or an exception from the models mapping or make_points).
 *
 * One pass, and every byte is read once, checked, then used: Python code runs during
 * the walk (the model lookup, make_points), and a buffer whose bytes change meanwhile
 * (a file rewritten under its memory map) must not make a later step trust a value
 * that an earlier step checked. The points are checked and viewed before the clusters
 * are walked, as their place follows from the layer's length and point count; the
 * Shapes are built as the walk goes and dropped if the layer is declined after all.
 */
static outcome_t walk_layer(PyObject *data, const uint8_t *d, size_t size, size_t offset,
                            PyObject *models, PyObject **out)
{
    if (offset >= size || size - offset < 2 || d[offset] != 2) {
        return DECLINED;
    }
    unsigned n = d[offset + 1] >> 5;
    size_t body = offset + 2 + n;
    if (body > size) {
        return DECLINED;
    }
    uint64_t length = lf_value(d, offset + 1, n);
    if (length > size - body) {
        return DECLINED;
    }
    size_t end = body + (size_t)length;

    /* z and the point count */
    if (end - body < 9 || d[body] != 0 || d[body + 1] != 4 || d[body + 6] != 1) {
        return DECLINED;
    }
    float z = f32_le(d + body + 2);
    unsigned w = d[body + 7];
    if (w < 1 || w > 3 || body + 8 + w > end || !isfinite(z)) {
        return DECLINED;
    }
    unsigned first = d[body + 8];
    if ((first >> 5) != w - 1) {
        return DECLINED;
    }
    size_t count = first & 0x1F;
    for (unsigned i = 1; i < w; i++) {
        count = (count << 8) | d[body + 8 + i];
    }
    size_t pos = body + 8 + w;
    if (count > (end - pos) / 8) {
        return DECLINED;
    }
    size_t points_at = end - 8 * count;
    if (!all_finite(d + points_at, 2 * count)) {
        return DECLINED;
    }

    PyObject *call[3] = {data, PyLong_FromSize_t(points_at), PyLong_FromSize_t(count)};
    PyObject *points = NULL;
    if (call[1] != NULL && call[2] != NULL) {
        points = PyObject_Vectorcall(make_points, call, 3, NULL);
    }
    Py_XDECREF(call[1]);
    Py_XDECREF(call[2]);
    if (points == NULL) {
        return FAILED;
    }
    PyObject *shapes = PyList_New(0);
    PyObject *loops = NULL; /* the loops of the MODEL cluster being walked */
    outcome_t outcome = DECLINED;
    if (shapes == NULL) {
        outcome = FAILED;
        goto done;
    }

    size_t used = 0;
    while (pos < points_at && d[pos] == 2) {
        /* cluster head */
        if (points_at - pos < 3) {
            goto done;
        }
        size_t q, cend;
        unsigned b = d[pos + 1];
        if (b >= 0x11 && b <= 0x1F) {
            q = pos + 2;
            cend = q + b;
        }
        else if (b >= 0x20 && b <= 0x3F) {
            q = pos + 3;
            cend = q + (((size_t)(b & 0x1F) << 8) | d[pos + 2]);
        }
        else {
            goto done;
        }
        if (cend > points_at || cend - q < 6 || d[q] != 0) {
            goto done;
        }
        /* model id and cluster type */
        long model_id;
        unsigned m1 = d[q + 1], m2 = d[q + 2];
        if (m1 == 1 && m2 < 0x20) {
            model_id = m2;
            q += 3;
        }
        else if (m1 == 2 && cend - q >= 7 && (m2 >> 5) == 1) {
            model_id = (long)(((m2 & 0x1F) << 8) | d[q + 3]);
            q += 4;
        }
        else {
            goto done;
        }
        unsigned ctype = d[q + 2];
        if (d[q] != 1 || d[q + 1] != 1 || ctype > 2) {
            goto done;
        }
        q += 3;
        PyObject *key = PyLong_FromLong(model_id);
        if (key == NULL) {
            outcome = FAILED;
            goto done;
        }
        int known = PySequence_Contains(models, key);
        Py_DECREF(key);
        if (known <= 0) {
            outcome = known < 0 ? FAILED : DECLINED; /* unknown: the general path names it */
            goto done;
        }
        /* polygons, at least one, ending exactly at the cluster's end */
        if (q >= cend) {
            goto done;
        }
        if (ctype == 0 && (loops = PyList_New(0)) == NULL) {
            outcome = FAILED;
            goto done;
        }
        while (q < cend) {
            if (cend - q < 11) {
                goto done;
            }
            unsigned len = d[q + 1], ptype = d[q + 4], format = d[q + 7];
            if (d[q] != 2 || d[q + 2] != 0 || d[q + 3] != 1 || ptype > 2 || d[q + 5] != 1 ||
                d[q + 6] != 1 || format > 2 || d[q + 8] != 3) {
                goto done;
            }
            size_t npoints;
            unsigned c1 = d[q + 10];
            if (len == 9 && d[q + 9] == 1 && c1 < 0x20) {
                npoints = c1;
            }
            else if (len == 10 && cend - q >= 12 && d[q + 9] == 2 && (c1 >> 5) == 1) {
                npoints = ((size_t)(c1 & 0x1F) << 8) | d[q + 11];
            }
            else {
                goto done;
            }
            if (ctype == 0 && PyList_GET_SIZE(loops) == 0 && ptype != 0) {
                goto done; /* a MODEL cluster must start with an OUTLOOP */
            }
            if (npoints > count - used) {
                goto done;
            }
            PyObject *loop = PySequence_GetSlice(points, (Py_ssize_t)used,
                                                 (Py_ssize_t)(used + npoints));
            if (loop == NULL) {
                outcome = FAILED;
                goto done;
            }
            used += npoints;
            q += (size_t)len + 2;
            int failed;
            if (ctype == 0) {
                failed = PyList_Append(loops, loop);
            }
            else {
                PyObject *single = PyTuple_Pack(1, loop);
                PyObject *kind = ctype == 2 ? web_kinds[format] : support_kind;
                failed = single == NULL ||
                         append_shape(shapes, model_id, kind, single, formats[format]) < 0;
                Py_XDECREF(single);
            }
            Py_DECREF(loop);
            if (failed) {
                outcome = FAILED;
                goto done;
            }
        }
        if (ctype == 0) {
            PyObject *tuple = PyList_AsTuple(loops);
            Py_CLEAR(loops);
            int failed = tuple == NULL ||
                         append_shape(shapes, model_id, model_kind, tuple, formats[0]) < 0;
            Py_XDECREF(tuple);
            if (failed) {
                outcome = FAILED;
                goto done;
            }
        }
        pos = cend;
    }

    /* the point buffer's head: 03 and an lf_int of 1..4 bytes ending at points_at */
    if (pos >= points_at || points_at - pos < 2 || d[pos] != 3) {
        goto done;
    }
    unsigned pn = d[pos + 1] >> 5;
    if (pn > 3 || pos + 2 + pn != points_at || lf_value(d, pos + 1, pn) != 8 * (uint64_t)count) {
        goto done;
    }
    *out = Py_BuildValue("(dnnO)", (double)z, (Py_ssize_t)count, (Py_ssize_t)used, shapes);
    outcome = *out == NULL ? FAILED : ACCEPTED;
done:
    Py_XDECREF(loops);
    Py_XDECREF(shapes);
    Py_DECREF(points);
    return outcome;
}

PyDoc_STRVAR(read_layer_doc,
             "read_layer(data, offset, models) -> (z, count, used, shapes) | None\n\n"
             "Decode the layer section at `offset` of `data` (any buffer) when it is laid\n"
             "out as the writer emits it and every model id is in `models`; None for any\n"
             "other layer. `shapes` is a list of Shape in file order.");

static PyObject *read_layer(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "read_layer(data, offset, models)");
        return NULL;
    }
    if (shape_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "_layerwalk.configure() was not called");
        return NULL;
    }
    Py_ssize_t offset = PyLong_AsSsize_t(args[1]);
    if (offset == -1 && PyErr_Occurred()) {
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    /* Holding the buffer keeps its size fixed (a bytearray or mmap cannot be resized
     * while exported), so the bounds checked in the walk stay true. */
    PyObject *result = NULL;
    outcome_t outcome = DECLINED;
    if (offset >= 0) {
        outcome = walk_layer(args[0], (const uint8_t *)view.buf, (size_t)view.len,
                             (size_t)offset, args[2], &result);
    }
    PyBuffer_Release(&view);
    if (outcome == DECLINED) {
        Py_RETURN_NONE;
    }
    return result; /* NULL with the exception set when FAILED */
}

PyDoc_STRVAR(configure_doc,
             "configure(shape_type, make_points, web_kinds, support_kind, model_kind, "
             "formats)\n\n"
             "Hand the module the reader's value types once, before read_layer.");

static PyObject *configure(PyObject *module, PyObject *args)
{
    (void)module;
    PyObject *shape, *points, *web, *support, *model, *fmts;
    if (!PyArg_ParseTuple(args, "OOO!UUO!", &shape, &points, &PyTuple_Type, &web, &support,
                          &model, &PyTuple_Type, &fmts)) {
        return NULL;
    }
    if (!PyType_Check(shape) || !PyCallable_Check(points) || PyTuple_GET_SIZE(web) != 3 ||
        PyTuple_GET_SIZE(fmts) != 3) {
        PyErr_SetString(PyExc_TypeError,
                         "configure(type, callable, 3 kinds, str, str, 3 formats)");
        return NULL;
    }
    Py_XSETREF(shape_type, Py_NewRef(shape));
    Py_XSETREF(make_points, Py_NewRef(points));
    Py_XSETREF(support_kind, Py_NewRef(support));
    Py_XSETREF(model_kind, Py_NewRef(model));
    for (int i = 0; i < 3; i++) {
        Py_XSETREF(web_kinds[i], Py_NewRef(PyTuple_GET_ITEM(web, i)));
        Py_XSETREF(formats[i], Py_NewRef(PyTuple_GET_ITEM(fmts, i)));
    }
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"read_layer", (PyCFunction)(void (*)(void))read_layer, METH_FASTCALL, read_layer_doc},
    {"configure", configure, METH_VARARGS, configure_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    "_layerwalk",
    "One-pass decoding of CLF layers in the writer's layout (see reader.py).",
    -1,
    methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC PyInit__layerwalk(void)
{
    key_model_id = PyUnicode_InternFromString("model_id");
    key_kind = PyUnicode_InternFromString("kind");
    key_loops = PyUnicode_InternFromString("loops");
    key_line_format = PyUnicode_InternFromString("line_format");
    key_dict = PyUnicode_InternFromString("__dict__");
    empty_args = PyTuple_New(0);
    if (key_model_id == NULL || key_kind == NULL || key_loops == NULL ||
        key_line_format == NULL || key_dict == NULL || empty_args == NULL) {
        return NULL;
    }
    return PyModule_Create(&module_def);
}

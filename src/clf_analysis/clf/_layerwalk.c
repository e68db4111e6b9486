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
 * The layout accepted (spec section numbers as in CLF_FORMAT.md):
 *   layer      02 len                       (len: an lf_int of any width)
 *     z        00 04 <float32 LE>           (finite)
 *     count    01 w <lf_int of w = 1..3 bytes, in its shortest form for w>
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

typedef struct {
    double z;
    size_t count;       /* points the layer declares */
    size_t used;        /* points its polygons use */
    size_t clusters;    /* offset of the first cluster */
    size_t points_head; /* offset of the point buffer's section head */
    size_t points_at;   /* offset of the first point */
} layout_t;

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

/*
 * Check a whole layer at `offset`. Returns 1 and fills `out` when it has the layout
 * above, 0 when it does not, -1 with a Python exception set (only from the model
 * lookup).
 */
static int check_layer(const uint8_t *d, size_t size, size_t offset, PyObject *models,
                       layout_t *out)
{
    if (offset >= size || size - offset < 2 || d[offset] != 2) {
        return 0;
    }
    unsigned n = d[offset + 1] >> 5;
    size_t body = offset + 2 + n;
    if (body > size) {
        return 0;
    }
    uint64_t length = lf_value(d, offset + 1, n);
    if (length > size - body) {
        return 0;
    }
    size_t end = body + (size_t)length;

    /* z and the point count */
    if (end - body < 9 || d[body] != 0 || d[body + 1] != 4 || d[body + 6] != 1) {
        return 0;
    }
    float z = f32_le(d + body + 2);
    unsigned w = d[body + 7];
    if (w < 1 || w > 3 || body + 8 + w > end || (unsigned)(d[body + 8] >> 5) != w - 1 ||
        !isfinite(z)) {
        return 0;
    }
    size_t count = (size_t)lf_value(d, body + 8, w - 1);
    size_t pos = body + 8 + w;
    if (count > (end - pos) / 8) {
        return 0;
    }
    size_t points_at = end - 8 * count;
    out->clusters = pos;

    size_t used = 0;
    while (pos < points_at && d[pos] == 2) {
        /* cluster head */
        if (points_at - pos < 3) {
            return 0;
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
            return 0;
        }
        if (cend > points_at) {
            return 0;
        }
        /* model id and cluster type */
        long model_id;
        if (cend - q < 6 || d[q] != 0) {
            return 0;
        }
        if (d[q + 1] == 1 && d[q + 2] < 0x20) {
            model_id = d[q + 2];
            q += 3;
        }
        else if (d[q + 1] == 2 && cend - q >= 7 && (d[q + 2] >> 5) == 1) {
            model_id = (long)(((d[q + 2] & 0x1F) << 8) | d[q + 3]);
            q += 4;
        }
        else {
            return 0;
        }
        if (d[q] != 1 || d[q + 1] != 1 || d[q + 2] > 2) {
            return 0;
        }
        unsigned ctype = d[q + 2];
        q += 3;
        PyObject *key = PyLong_FromLong(model_id);
        if (key == NULL) {
            return -1;
        }
        int known = PySequence_Contains(models, key);
        Py_DECREF(key);
        if (known <= 0) {
            return known; /* 0: an unknown model, the general path names it */
        }
        /* polygons, at least one, ending exactly at the cluster's end */
        if (q >= cend) {
            return 0;
        }
        int first = 1;
        while (q < cend) {
            if (cend - q < 11 || d[q] != 2 || d[q + 2] != 0 || d[q + 3] != 1 || d[q + 4] > 2 ||
                d[q + 5] != 1 || d[q + 6] != 1 || d[q + 7] > 2 || d[q + 8] != 3) {
                return 0;
            }
            size_t npoints;
            if (d[q + 1] == 9 && d[q + 9] == 1 && d[q + 10] < 0x20) {
                npoints = d[q + 10];
            }
            else if (d[q + 1] == 10 && cend - q >= 12 && d[q + 9] == 2 &&
                     (d[q + 10] >> 5) == 1) {
                npoints = ((size_t)(d[q + 10] & 0x1F) << 8) | d[q + 11];
            }
            else {
                return 0;
            }
            if (first && ctype == 0 && d[q + 4] != 0) {
                return 0; /* a MODEL cluster must start with an OUTLOOP */
            }
            first = 0;
            if (npoints > count - used) {
                return 0;
            }
            used += npoints;
            q += (size_t)d[q + 1] + 2;
        }
        pos = cend;
    }

    /* the point buffer's head: 03 and an lf_int of 1..4 bytes ending at points_at */
    if (pos >= points_at || d[pos] != 3 || points_at - pos < 2) {
        return 0;
    }
    unsigned pn = d[pos + 1] >> 5;
    if (pn > 3 || pos + 2 + pn != points_at || lf_value(d, pos + 1, pn) != 8 * (uint64_t)count) {
        return 0;
    }
    if (!all_finite(d + points_at, 2 * count)) {
        return 0;
    }
    out->z = (double)z;
    out->count = count;
    out->used = used;
    out->points_head = pos;
    out->points_at = points_at;
    return 1;
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

/* The Shapes of a checked layer, in file order: the walk of check_layer again, this
 * time trusting the bytes. */
static PyObject *build_shapes(const uint8_t *d, const layout_t *lay, PyObject *points)
{
    PyObject *shapes = PyList_New(0);
    if (shapes == NULL) {
        return NULL;
    }
    size_t pos = lay->clusters;
    Py_ssize_t used = 0;
    while (pos < lay->points_head) {
        size_t q, cend;
        unsigned b = d[pos + 1];
        if (b < 0x20) {
            q = pos + 2;
            cend = q + b;
        }
        else {
            q = pos + 3;
            cend = q + (((size_t)(b & 0x1F) << 8) | d[pos + 2]);
        }
        long model_id;
        if (d[q + 1] == 1) {
            model_id = d[q + 2];
            q += 3;
        }
        else {
            model_id = (long)(((d[q + 2] & 0x1F) << 8) | d[q + 3]);
            q += 4;
        }
        unsigned ctype = d[q + 2];
        q += 3;
        Py_ssize_t npolygons = 0;
        for (size_t r = q; r < cend; r += (size_t)d[r + 1] + 2) {
            npolygons++;
        }
        PyObject *loops = ctype == 0 ? PyTuple_New(npolygons) : NULL;
        if (ctype == 0 && loops == NULL) {
            goto fail;
        }
        for (Py_ssize_t i = 0; i < npolygons; i++) {
            Py_ssize_t npoints = d[q + 1] == 9 ? d[q + 10]
                                               : (((d[q + 10] & 0x1F) << 8) | d[q + 11]);
            unsigned format = d[q + 7];
            q += (size_t)d[q + 1] + 2;
            PyObject *loop = PySequence_GetSlice(points, used, used + npoints);
            used += npoints;
            if (loop == NULL) {
                Py_XDECREF(loops);
                goto fail;
            }
            if (ctype == 0) {
                PyTuple_SET_ITEM(loops, i, loop);
                continue;
            }
            PyObject *single = PyTuple_Pack(1, loop);
            Py_DECREF(loop);
            if (single == NULL) {
                goto fail;
            }
            PyObject *kind = ctype == 2 ? web_kinds[format] : support_kind;
            PyObject *shape = new_shape(model_id, kind, single, formats[format]);
            Py_DECREF(single);
            if (shape == NULL || PyList_Append(shapes, shape) < 0) {
                Py_XDECREF(shape);
                goto fail;
            }
            Py_DECREF(shape);
        }
        if (ctype == 0) {
            PyObject *shape = new_shape(model_id, model_kind, loops, formats[0]);
            Py_DECREF(loops);
            if (shape == NULL || PyList_Append(shapes, shape) < 0) {
                Py_XDECREF(shape);
                goto fail;
            }
            Py_DECREF(shape);
        }
        pos = cend;
    }
    return shapes;
fail:
    Py_DECREF(shapes);
    return NULL;
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
    layout_t lay;
    PyObject *result = NULL;
    int ok = offset < 0 ? 0
                        : check_layer((const uint8_t *)view.buf, (size_t)view.len,
                                      (size_t)offset, args[2], &lay);
    if (ok == 0) {
        result = Py_NewRef(Py_None);
    }
    else if (ok > 0) {
        PyObject *call[3] = {args[0], NULL, NULL};
        call[1] = PyLong_FromSize_t(lay.points_at);
        call[2] = PyLong_FromSize_t(lay.count);
        PyObject *points = NULL;
        if (call[1] != NULL && call[2] != NULL) {
            points = PyObject_Vectorcall(make_points, call, 3, NULL);
        }
        Py_XDECREF(call[1]);
        Py_XDECREF(call[2]);
        if (points != NULL) {
            PyObject *shapes = build_shapes((const uint8_t *)view.buf, &lay, points);
            Py_DECREF(points);
            if (shapes != NULL) {
                result = Py_BuildValue("(dnnN)", lay.z, (Py_ssize_t)lay.count,
                                       (Py_ssize_t)lay.used, shapes);
            }
        }
    }
    PyBuffer_Release(&view);
    return result;
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

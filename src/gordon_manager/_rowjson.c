/*
 * gordon_manager._rowjson: interleave column-wise JSON values into an array of JSON objects, and
 * write RFC 3339 times and decimal strings for them.
 *
 * The console's hottest read (a 500-point equity page, ~70 KB of JSON) is built from columns:
 * orjson writes each column's values in C (RFC 3339 times, shortest round-trip floats), and this
 * function splits those texts at their separators and lays the values out row by row between the
 * object keys, in one pass and one allocation. In Python the same split-and-join created ~5,000
 * small objects per page and was a third of the request's CPU. It formats nothing itself: every
 * byte of a value comes from the column text it was given.
 *
 *     rows(prefixes, columns, separators, row_end, n, head=b"", tail=b"") -> bytes
 *
 * prefixes[j]   bytes written before the value of column j (e.g. b'{"ts":"', b'","equity":')
 * columns[j]    the n values of column j, separated by separators[j] (no leading/trailing separator)
 * separators[j] the separator of column j's values (non-empty, must not occur inside a value;
 *               no value may be empty)
 * row_end       bytes written after the last value of each row (e.g. b'}')
 * n             the number of rows; each column must hold exactly n values (ValueError otherwise)
 *
 * head, tail    bytes written before the array and after it (so a page body is one allocation)
 *
 * The result is head + b'[' + row_0 + b',' + ... + row_{n-1} + b']' + tail.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define MAX_COLUMNS 16
/* a op b into *out, true when it does not fit a Py_ssize_t (GCC and Clang builtins) */
#define OVERFLOWS(a, b, out, op) __builtin_##op##_overflow((Py_ssize_t)(a), (Py_ssize_t)(b), (out))

static const char *find(const char *p, const char *end, const char *sep, Py_ssize_t seplen) {
    while (p + seplen <= end) {
        const char *hit = memchr(p, sep[0], (size_t)(end - p));
        if (hit == NULL || hit + seplen > end) {
            return NULL;
        }
        if (seplen == 1 || memcmp(hit, sep, (size_t)seplen) == 0) {
            return hit;
        }
        p = hit + 1;
    }
    return NULL;
}

static int bytes_items(PyObject *tuple, const char *name, Py_ssize_t k, const char **ptr, Py_ssize_t *len) {
    if (!PyTuple_Check(tuple) || PyTuple_GET_SIZE(tuple) != k) {
        PyErr_Format(PyExc_TypeError, "%s must be a tuple of %zd bytes", name, k);
        return -1;
    }
    for (Py_ssize_t j = 0; j < k; j++) {
        PyObject *item = PyTuple_GET_ITEM(tuple, j);
        if (!PyBytes_Check(item)) {
            PyErr_Format(PyExc_TypeError, "%s[%zd] must be bytes", name, j);
            return -1;
        }
        ptr[j] = PyBytes_AS_STRING(item);
        len[j] = PyBytes_GET_SIZE(item);
    }
    return 0;
}

static PyObject *rows(PyObject *self, PyObject *args, PyObject *kwargs) {
    (void)self;
    static char *keywords[] = {"prefixes", "columns", "separators", "row_end", "n", "head", "tail", NULL};
    PyObject *prefixes, *columns, *separators;
    const char *row_end, *head = "", *tail = "";
    Py_ssize_t row_end_len, n, head_len = 0, tail_len = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!O!O!y#n|y#y#:rows", keywords, &PyTuple_Type, &prefixes,
                                     &PyTuple_Type, &columns, &PyTuple_Type, &separators, &row_end, &row_end_len,
                                     &n, &head, &head_len, &tail, &tail_len)) {
        return NULL;
    }
    Py_ssize_t k = PyTuple_GET_SIZE(columns);
    if (k < 1 || k > MAX_COLUMNS) {
        PyErr_Format(PyExc_ValueError, "between 1 and %d columns are supported", MAX_COLUMNS);
        return NULL;
    }
    if (n < 0) {
        PyErr_SetString(PyExc_ValueError, "n must not be negative");
        return NULL;
    }
    const char *pre[MAX_COLUMNS], *col[MAX_COLUMNS], *sep[MAX_COLUMNS];
    Py_ssize_t pre_len[MAX_COLUMNS], col_len[MAX_COLUMNS], sep_len[MAX_COLUMNS];
    if (bytes_items(prefixes, "prefixes", k, pre, pre_len) < 0 || bytes_items(columns, "columns", k, col, col_len) < 0 ||
        bytes_items(separators, "separators", k, sep, sep_len) < 0) {
        return NULL;
    }
    if (n == 0) {
        for (Py_ssize_t j = 0; j < k; j++) {
            if (col_len[j] != 0) {
                PyErr_Format(PyExc_ValueError, "column %zd holds values but n is 0", j);
                return NULL;
            }
        }
        PyObject *empty = PyBytes_FromStringAndSize(NULL, head_len + 2 + tail_len);
        if (empty != NULL) {
            char *p = PyBytes_AS_STRING(empty);
            memcpy(p, head, (size_t)head_len);
            memcpy(p + head_len, "[]", 2);
            memcpy(p + head_len + 2, tail, (size_t)tail_len);
        }
        return empty;
    }
    /* Every column holds n non-empty values: at least n bytes, and n - 1 separators between them. */
    Py_ssize_t values[MAX_COLUMNS];
    for (Py_ssize_t j = 0; j < k; j++) {
        if (sep_len[j] < 1) {
            PyErr_Format(PyExc_ValueError, "separators[%zd] is empty", j);
            return NULL;
        }
        Py_ssize_t separators_len = 0;
        if (n > col_len[j] || OVERFLOWS(n - 1, sep_len[j], &separators_len, mul) ||
            (values[j] = col_len[j] - separators_len) < n) {
            PyErr_Format(PyExc_ValueError, "column %zd holds fewer than %zd values", j, n);
            return NULL;
        }
    }
    /* Exact size: every value byte, every prefix and row end once per row, n - 1 row commas, brackets.
     * Every product and sum is overflow-checked (n comes from the caller). */
    Py_ssize_t size = 0, term = 0;
    if (OVERFLOWS(n, row_end_len, &term, mul) || OVERFLOWS(head_len + 2 + tail_len, n - 1, &size, add) ||
        OVERFLOWS(size, term, &size, add)) {
        goto too_large;
    }
    for (Py_ssize_t j = 0; j < k; j++) {
        if (OVERFLOWS(n, pre_len[j], &term, mul) || OVERFLOWS(size, values[j], &size, add) ||
            OVERFLOWS(size, term, &size, add)) {
            goto too_large;
        }
    }
    PyObject *result = PyBytes_FromStringAndSize(NULL, size);
    if (result == NULL) {
        return NULL;
    }
    char *out = PyBytes_AS_STRING(result);
    memcpy(out, head, (size_t)head_len);
    out += head_len;
    char *const out_end = out + (size - head_len - tail_len);
    const char *pos[MAX_COLUMNS], *end[MAX_COLUMNS];
    for (Py_ssize_t j = 0; j < k; j++) {
        pos[j] = col[j];
        end[j] = col[j] + col_len[j];
    }
    /* Every write is bounds-checked: columns holding more or fewer values than n fail, never overflow. */
    *out++ = '[';
    for (Py_ssize_t i = 0; i < n; i++) {
        if (i > 0) {
            if (out >= out_end) {
                goto mismatch;
            }
            *out++ = ',';
        }
        for (Py_ssize_t j = 0; j < k; j++) {
            const char *value_end = (i == n - 1) ? end[j] : find(pos[j], end[j], sep[j], sep_len[j]);
            if (value_end == NULL || (i == n - 1 && find(pos[j], end[j], sep[j], sep_len[j]) != NULL)) {
                goto mismatch;
            }
            Py_ssize_t value_len = value_end - pos[j];
            if (value_len == 0 || pre_len[j] + value_len > out_end - out) {
                goto mismatch;
            }
            memcpy(out, pre[j], (size_t)pre_len[j]);
            out += pre_len[j];
            memcpy(out, pos[j], (size_t)value_len);
            out += value_len;
            pos[j] = value_end + sep_len[j];
        }
        if (row_end_len > out_end - out) {
            goto mismatch;
        }
        memcpy(out, row_end, (size_t)row_end_len);
        out += row_end_len;
    }
    if (out_end - out != 1) {
        goto mismatch;
    }
    *out++ = ']';
    memcpy(out, tail, (size_t)tail_len);
    return result;

mismatch:
    Py_DECREF(result);
    PyErr_Format(PyExc_ValueError, "the columns do not hold exactly %zd values each", n);
    return NULL;

too_large:
    PyErr_SetString(PyExc_OverflowError, "the rows would be larger than the largest bytes object");
    return NULL;
}

/* Days since 1970-01-01 to a proleptic Gregorian (year, month, day): H. Hinnant's civil_from_days. */
static void civil_from_days(int64_t z, int64_t *year, unsigned *month, unsigned *day) {
    z += 719468;
    const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const unsigned doe = (unsigned)(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    *day = doy - (153 * mp + 2) / 5 + 1;
    *month = mp < 10 ? mp + 3 : mp - 9;
    *year = (int64_t)yoe + era * 400 + (*month <= 2);
}

static char *digits(char *out, unsigned value, int width) {
    for (int i = width - 1; i >= 0; i--) {
        out[i] = (char)('0' + value % 10);
        value /= 10;
    }
    return out + width;
}

/*
 * timestamps(micros, separator) -> bytes
 *
 * micros: native int64 microseconds since 1970-01-01 UTC (any contiguous buffer, e.g. a numpy
 * array). The times as RFC 3339 without offset, joined by separator: YYYY-MM-DDTHH:MM:SS, plus
 * .ffffff when the microseconds are not 0 (what orjson writes for numpy datetime64[us]).
 * Years outside 1..9999 raise ValueError.
 */
static PyObject *timestamps(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer buffer;
    const char *sep;
    Py_ssize_t sep_len;
    if (!PyArg_ParseTuple(args, "y*y#:timestamps", &buffer, &sep, &sep_len)) {
        return NULL;
    }
    if (buffer.len % (Py_ssize_t)sizeof(int64_t) != 0) {
        PyBuffer_Release(&buffer);
        PyErr_SetString(PyExc_ValueError, "micros must hold whole int64 values");
        return NULL;
    }
    Py_ssize_t n = buffer.len / (Py_ssize_t)sizeof(int64_t);
    PyObject *result = PyBytes_FromStringAndSize(NULL, n == 0 ? 0 : n * 26 + (n - 1) * sep_len);
    if (result == NULL || n == 0) {
        PyBuffer_Release(&buffer);
        return result;
    }
    char *start = PyBytes_AS_STRING(result), *out = start;
    const char *raw = (const char *)buffer.buf;
    for (Py_ssize_t i = 0; i < n; i++) {
        int64_t us;
        memcpy(&us, raw + i * (Py_ssize_t)sizeof(int64_t), sizeof us);
        int64_t seconds = us / 1000000, fraction = us % 1000000;
        if (fraction < 0) {
            fraction += 1000000;
            seconds -= 1;
        }
        int64_t days = seconds / 86400, of_day = seconds % 86400;
        if (of_day < 0) {
            of_day += 86400;
            days -= 1;
        }
        int64_t year;
        unsigned month, day;
        civil_from_days(days, &year, &month, &day);
        if (year < 1 || year > 9999) {
            PyBuffer_Release(&buffer);
            Py_DECREF(result);
            PyErr_Format(PyExc_ValueError, "year %lld is outside 1..9999", (long long)year);
            return NULL;
        }
        if (i > 0) {
            memcpy(out, sep, (size_t)sep_len);
            out += sep_len;
        }
        out = digits(out, (unsigned)year, 4);
        *out++ = '-';
        out = digits(out, month, 2);
        *out++ = '-';
        out = digits(out, day, 2);
        *out++ = 'T';
        out = digits(out, (unsigned)(of_day / 3600), 2);
        *out++ = ':';
        out = digits(out, (unsigned)(of_day / 60 % 60), 2);
        *out++ = ':';
        out = digits(out, (unsigned)(of_day % 60), 2);
        if (fraction != 0) {
            *out++ = '.';
            out = digits(out, (unsigned)fraction, 6);
        }
    }
    PyBuffer_Release(&buffer);
    if (_PyBytes_Resize(&result, out - start) < 0) {
        return NULL;
    }
    return result;
}

/*
 * Write the plain decimal notation of one JSON number as a shortest round-trip writer (orjson,
 * repr()) wrote it: the same digits, never an exponent, no trailing ".0", "-0" written "0".
 * 1e-05 -> 0.00001, 1.5e16 -> 15000000000000000, 10000.0 -> 10000, 0.1 -> 0.1.
 * Returns the length written (less than DECIMAL_MAX), or -1 when the text is not such a number.
 */
#define DECIMAL_MAX 400 /* sign, "0.", DOT_MAX zeros or digits, MANTISSA_MAX digits */
#define MANTISSA_MAX 40
#define DOT_MAX 340 /* a double's decimal point is within 330 places of its first digit */
static Py_ssize_t plain_number(const char *p, const char *end, char *out) {
    char *o = out;
    int negative = 0;
    if (p < end && *p == '-') {
        negative = 1;
        p++;
    }
    /* The significant digits and where the decimal point falls among them. */
    char mantissa[MANTISSA_MAX];
    int m = 0, point = -1;
    for (; p < end && *p != 'e' && *p != 'E'; p++) {
        if (*p == '.' && point < 0) {
            point = m;
        } else if (*p >= '0' && *p <= '9' && m < MANTISSA_MAX) {
            mantissa[m++] = *p;
        } else {
            return -1;
        }
    }
    long exponent = 0;
    if (p < end) { /* 'e' */
        p++;
        int exp_negative = 0;
        if (p < end && (*p == '+' || *p == '-')) {
            exp_negative = (*p == '-');
            p++;
        }
        if (p == end) {
            return -1;
        }
        for (; p < end; p++) {
            if (*p < '0' || *p > '9' || exponent > 1000) {
                return -1;
            }
            exponent = exponent * 10 + (*p - '0');
        }
        if (exp_negative) {
            exponent = -exponent;
        }
    }
    if (m == 0) {
        return -1;
    }
    if (point < 0) {
        point = m;
    }
    long dot = (long)point + exponent; /* digits before the decimal point */
    int first = 0; /* drop leading zeros ("0.5" -> digits "5", dot 0) */
    while (first < m - 1 && mantissa[first] == '0') {
        first++;
        dot--;
    }
    int last = m; /* drop trailing zeros of the fraction */
    while (last > first + 1 && mantissa[last - 1] == '0' && last - first > dot) {
        last--;
    }
    int zero = (last - first == 1 && mantissa[first] == '0');
    if (zero) {
        *o++ = '0';
        return o - out;
    }
    if (dot < -DOT_MAX || dot > DOT_MAX) {
        return -1; /* beyond any double */
    }
    if (negative) {
        *o++ = '-';
    }
    if (dot <= 0) {
        *o++ = '0';
        *o++ = '.';
        for (long i = 0; i < -dot; i++) {
            *o++ = '0';
        }
        memcpy(o, mantissa + first, (size_t)(last - first));
        o += last - first;
    } else {
        for (long i = 0; i < dot; i++) {
            *o++ = (first + i < last) ? mantissa[first + i] : '0';
        }
        if (first + dot < last) {
            *o++ = '.';
            memcpy(o, mantissa + first + dot, (size_t)(last - first - dot));
            o += last - first - dot;
        }
    }
    return o - out;
}

/*
 * decimals(numbers, separator) -> bytes
 *
 * numbers: JSON numbers and nulls separated by commas, as orjson writes a float64 array's items
 * (shortest round-trip digits; NaN and infinities as null). Each number becomes a JSON string of its
 * plain decimal (see plain_number), null stays null; joined by separator. How the float columns
 * (equity, cash, position, price) go on the wire: decimal strings like every other amount, with the
 * digits orjson (and repr()) choose. Anything else in numbers raises ValueError.
 */
static PyObject *decimals(PyObject *self, PyObject *args) {
    (void)self;
    const char *text, *sep;
    Py_ssize_t text_len, sep_len;
    if (!PyArg_ParseTuple(args, "y#y#:decimals", &text, &text_len, &sep, &sep_len)) {
        return NULL;
    }
    /* Each item grows by at most its quotes and separator, or by an exponent's zeros (bounded per
     * item by DECIMAL_MAX): start at the usual size, grow when a long one comes. */
    Py_ssize_t items = 1;
    for (Py_ssize_t i = 0; i < text_len; i++) {
        items += (text[i] == ',');
    }
    if (text_len > (PY_SSIZE_T_MAX - 64) / 2 || items > (PY_SSIZE_T_MAX / 4 - text_len) / (sep_len + 3)) {
        return PyErr_NoMemory();
    }
    Py_ssize_t capacity = text_len + items * (sep_len + 3) + 64;
    PyObject *result = PyBytes_FromStringAndSize(NULL, capacity);
    if (result == NULL || text_len == 0) {
        if (result != NULL) {
            Py_DECREF(result);
            return PyBytes_FromStringAndSize(NULL, 0);
        }
        return NULL;
    }
    Py_ssize_t used = 0;
    const char *p = text, *const text_end = text + text_len;
    for (Py_ssize_t i = 0; p <= text_end; i++) {
        const char *item_end = memchr(p, ',', (size_t)(text_end - p));
        if (item_end == NULL) {
            item_end = text_end;
        }
        Py_ssize_t need = sep_len + DECIMAL_MAX + 2;
        if (capacity - used < need) {
            if (capacity > (PY_SSIZE_T_MAX - need) / 2) {
                Py_DECREF(result);
                return PyErr_NoMemory();
            }
            capacity = capacity * 2 + need;
            if (_PyBytes_Resize(&result, capacity) < 0) {
                return NULL;
            }
        }
        char *out = PyBytes_AS_STRING(result) + used, *const start = out;
        if (i > 0) {
            memcpy(out, sep, (size_t)sep_len);
            out += sep_len;
        }
        if (item_end - p == 4 && memcmp(p, "null", 4) == 0) {
            memcpy(out, "null", 4);
            out += 4;
        } else {
            *out++ = '"';
            Py_ssize_t len = plain_number(p, item_end, out);
            if (len < 0) {
                Py_DECREF(result);
                PyErr_Format(PyExc_ValueError, "item %zd is not a JSON number", i);
                return NULL;
            }
            out += len;
            *out++ = '"';
        }
        used += out - start;
        p = item_end + 1;
    }
    if (_PyBytes_Resize(&result, used) < 0) {
        return NULL;
    }
    return result;
}

static PyMethodDef methods[] = {
    {"decimals", decimals, METH_VARARGS,
     "decimals(numbers, separator) -> bytes: comma-separated JSON numbers (and nulls) as JSON strings of their plain decimal."},
    {"timestamps", timestamps, METH_VARARGS,
     "timestamps(micros, separator) -> bytes: RFC 3339 UTC times (no offset) of int64 epoch microseconds."},
    {"rows", (PyCFunction)(void (*)(void))rows, METH_VARARGS | METH_KEYWORDS,
     "rows(prefixes, columns, separators, row_end, n, head=b'', tail=b'') -> bytes: head, a JSON array of n "
     "objects built from column texts, tail."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_rowjson",
    .m_doc = "Interleave column-wise JSON values into an array of JSON objects.",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__rowjson(void) { return PyModule_Create(&module); }

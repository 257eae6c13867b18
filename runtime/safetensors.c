#include "runtime/safetensors.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/npy.h"

typedef struct st_meta {
  char *key, *value;
} st_meta;

struct drt_safetensors {
  uint8_t *bytes; /* the whole file */
  size_t size;
  char *label;
  drt_st_tensor *tensors; /* sorted by data offset */
  size_t count, cap;
  size_t *by_name; /* indices sorted by name */
  st_meta *meta;
  size_t num_meta, cap_meta;
};

#define BAD(...) DRT_ERROR(DRT_STATUS_CORRUPT, __VA_ARGS__)

/* ---- minimal JSON ------------------------------------------------------------------ */
typedef struct json {
  const char *p, *end, *start;
  const char *label;
} json;

static void skip_ws(json *j) {
  while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')) j->p++;
}

static drt_status expect(json *j, char c, const char *what) {
  skip_ws(j);
  if (j->p >= j->end || *j->p != c)
    return BAD("'%s': header: expected '%c' %s at header byte %td", j->label, c, what, j->p - j->start);
  j->p++;
  return DRT_OK;
}

static void put_utf8(char *out, size_t *n, uint32_t cp) {
  if (cp < 0x80) {
    out[(*n)++] = (char)cp;
  } else if (cp < 0x800) {
    out[(*n)++] = (char)(0xc0 | (cp >> 6));
    out[(*n)++] = (char)(0x80 | (cp & 0x3f));
  } else if (cp < 0x10000) {
    out[(*n)++] = (char)(0xe0 | (cp >> 12));
    out[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3f));
    out[(*n)++] = (char)(0x80 | (cp & 0x3f));
  } else {
    out[(*n)++] = (char)(0xf0 | (cp >> 18));
    out[(*n)++] = (char)(0x80 | ((cp >> 12) & 0x3f));
    out[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3f));
    out[(*n)++] = (char)(0x80 | (cp & 0x3f));
  }
}

static bool hex4(const char *p, const char *end, uint32_t *v) {
  if (end - p < 4) return false;
  *v = 0;
  for (int i = 0; i < 4; i++) {
    char c = p[i];
    uint32_t d = c >= '0' && c <= '9' ? (uint32_t)(c - '0')
                 : c >= 'a' && c <= 'f' ? (uint32_t)(c - 'a' + 10)
                 : c >= 'A' && c <= 'F' ? (uint32_t)(c - 'A' + 10) : 16u;
    if (d > 15) return false;
    *v = *v * 16 + d;
  }
  return true;
}

/* Parses a JSON string into a malloc'd NUL-terminated UTF-8 string (embedded NULs refused). */
static drt_status parse_string(json *j, char **out) {
  *out = NULL;
  skip_ws(j);
  if (j->p >= j->end || *j->p != '"') return BAD("'%s': header: expected a string", j->label);
  j->p++;
  const char *s = j->p;
  size_t cap = 1;
  while (s < j->end && *s != '"') {
    if (*s == '\\') s++;
    s++;
    cap += 4;
  }
  if (s >= j->end) return BAD("'%s': header: unterminated string", j->label);
  char *buf = malloc(cap);
  if (!buf) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "safetensors header string");
  size_t n = 0;
  while (j->p < j->end && *j->p != '"') {
    unsigned char c = (unsigned char)*j->p++;
    if (c < 0x20) {
      free(buf);
      return BAD("'%s': header: control character in a string", j->label);
    }
    if (c != '\\') {
      buf[n++] = (char)c;
      continue;
    }
    if (j->p >= j->end) break;
    char e = *j->p++;
    uint32_t cp;
    switch (e) {
      case '"': buf[n++] = '"'; break;
      case '\\': buf[n++] = '\\'; break;
      case '/': buf[n++] = '/'; break;
      case 'b': buf[n++] = '\b'; break;
      case 'f': buf[n++] = '\f'; break;
      case 'n': buf[n++] = '\n'; break;
      case 'r': buf[n++] = '\r'; break;
      case 't': buf[n++] = '\t'; break;
      case 'u':
        if (!hex4(j->p, j->end, &cp)) {
          free(buf);
          return BAD("'%s': header: bad \\u escape", j->label);
        }
        j->p += 4;
        if (cp >= 0xd800 && cp < 0xdc00) {
          uint32_t lo;
          if (j->end - j->p < 6 || j->p[0] != '\\' || j->p[1] != 'u' || !hex4(j->p + 2, j->end, &lo) || lo < 0xdc00 ||
              lo > 0xdfff) {
            free(buf);
            return BAD("'%s': header: unpaired UTF-16 surrogate in a \\u escape", j->label);
          }
          j->p += 6;
          cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        } else if (cp >= 0xdc00 && cp <= 0xdfff) {
          free(buf);
          return BAD("'%s': header: unpaired UTF-16 surrogate in a \\u escape", j->label);
        }
        if (cp == 0) {
          free(buf);
          return BAD("'%s': header: NUL character in a string", j->label);
        }
        put_utf8(buf, &n, cp);
        break;
      default:
        free(buf);
        return BAD("'%s': header: bad escape '\\%c'", j->label, e);
    }
  }
  if (j->p >= j->end) {
    free(buf);
    return BAD("'%s': header: unterminated string", j->label);
  }
  j->p++; /* closing quote */
  buf[n] = 0;
  *out = buf;
  return DRT_OK;
}

/* A non-negative JSON integer (no sign, fraction or exponent) that fits in uint64. */
static drt_status parse_uint(json *j, const char *tensor, const char *field, uint64_t *out) {
  skip_ws(j);
  const char *s = j->p;
  uint64_t v = 0;
  if (j->p >= j->end || *j->p < '0' || *j->p > '9')
    return BAD("'%s': tensor '%s': %s must hold non-negative integers", j->label, tensor, field);
  if (*j->p == '0' && j->p + 1 < j->end && j->p[1] >= '0' && j->p[1] <= '9')
    return BAD("'%s': tensor '%s': %s: leading zero in a number", j->label, tensor, field);
  while (j->p < j->end && *j->p >= '0' && *j->p <= '9') {
    uint64_t d = (uint64_t)(*j->p - '0');
    if (v > (UINT64_MAX - d) / 10) return BAD("'%s': tensor '%s': %s: number out of range", j->label, tensor, field);
    v = v * 10 + d;
    j->p++;
  }
  if (j->p < j->end && (*j->p == '.' || *j->p == 'e' || *j->p == 'E'))
    return BAD("'%s': tensor '%s': %s must hold integers, got '%.*s...'", j->label, tensor, field,
               (int)(j->p - s + 1), s);
  *out = v;
  return DRT_OK;
}

/* [u64, ...] with at most max entries. */
static drt_status parse_uint_array(json *j, const char *tensor, const char *field, uint64_t *out, int max, int *n) {
  *n = 0;
  DRT_RETURN_IF_ERROR_CTX(expect(j, '[', "to open an array"), "tensor '%s': %s", tensor, field);
  skip_ws(j);
  if (j->p < j->end && *j->p == ']') {
    j->p++;
    return DRT_OK;
  }
  for (;;) {
    if (*n >= max) return BAD("'%s': tensor '%s': %s has more than %d entries", j->label, tensor, field, max);
    DRT_RETURN_IF_ERROR(parse_uint(j, tensor, field, &out[(*n)++]));
    skip_ws(j);
    if (j->p < j->end && *j->p == ',') {
      j->p++;
      continue;
    }
    return expect(j, ']', "to close an array");
  }
}

static bool dtype_from_name(const char *s, drt_dtype *dt) {
  static const struct {
    const char *name;
    drt_dtype dt;
  } k[] = {{"F64", DRT_DTYPE_FLOAT64}, {"F32", DRT_DTYPE_FLOAT32}, {"F16", DRT_DTYPE_FLOAT16},
           {"BF16", DRT_DTYPE_BFLOAT16}, {"I64", DRT_DTYPE_INT64}, {"I32", DRT_DTYPE_INT32},
           {"I16", DRT_DTYPE_INT16}, {"I8", DRT_DTYPE_INT8}, {"U64", DRT_DTYPE_UINT64},
           {"U32", DRT_DTYPE_UINT32}, {"U16", DRT_DTYPE_UINT16}, {"U8", DRT_DTYPE_UINT8},
           {"BOOL", DRT_DTYPE_BOOL}, {"F8_E4M3", DRT_DTYPE_FLOAT8E4M3FN}, {"F8_E5M2", DRT_DTYPE_FLOAT8E5M2}};
  for (size_t i = 0; i < sizeof k / sizeof k[0]; i++)
    if (strcmp(s, k[i].name) == 0) {
      *dt = k[i].dt;
      return true;
    }
  return false;
}

const char *drt_safetensors_dtype_name(drt_dtype dt) {
  switch (dt) {
    case DRT_DTYPE_FLOAT64: return "F64";
    case DRT_DTYPE_FLOAT32: return "F32";
    case DRT_DTYPE_FLOAT16: return "F16";
    case DRT_DTYPE_BFLOAT16: return "BF16";
    case DRT_DTYPE_INT64: return "I64";
    case DRT_DTYPE_INT32: return "I32";
    case DRT_DTYPE_INT16: return "I16";
    case DRT_DTYPE_INT8: return "I8";
    case DRT_DTYPE_UINT64: return "U64";
    case DRT_DTYPE_UINT32: return "U32";
    case DRT_DTYPE_UINT16: return "U16";
    case DRT_DTYPE_UINT8: return "U8";
    case DRT_DTYPE_BOOL: return "BOOL";
    case DRT_DTYPE_FLOAT8E4M3FN: return "F8_E4M3";
    case DRT_DTYPE_FLOAT8E5M2: return "F8_E5M2";
    default: return NULL;
  }
}

/* ---- the file --------------------------------------------------------------------- */
void drt_safetensors_close(drt_safetensors *st) {
  if (!st) return;
  for (size_t i = 0; i < st->count; i++) free((char *)st->tensors[i].name);
  for (size_t i = 0; i < st->num_meta; i++) {
    free(st->meta[i].key);
    free(st->meta[i].value);
  }
  free(st->tensors);
  free(st->by_name);
  free(st->meta);
  free(st->label);
  free(st->bytes);
  free(st);
}

static drt_status parse_metadata(json *j, drt_safetensors *st) {
  if (st->meta) return BAD("'%s': header: __metadata__ appears twice", j->label);
  DRT_RETURN_IF_ERROR_CTX(expect(j, '{', "to open __metadata__"), "__metadata__");
  st->meta = calloc(1, sizeof(st_meta));
  if (!st->meta) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "safetensors metadata");
  st->cap_meta = 1;
  skip_ws(j);
  if (j->p < j->end && *j->p == '}') {
    j->p++;
    return DRT_OK;
  }
  for (;;) {
    char *k = NULL, *v = NULL;
    DRT_RETURN_IF_ERROR_CTX(parse_string(j, &k), "__metadata__");
    drt_status s = expect(j, ':', "after a key");
    skip_ws(j);
    if (!s && (j->p >= j->end || *j->p != '"'))
      s = BAD("'%s': __metadata__ value of '%s' is not a string", j->label, k);
    if (!s) s = parse_string(j, &v);
    if (!s) {
      for (size_t i = 0; i < st->num_meta; i++)
        if (strcmp(st->meta[i].key, k) == 0) s = BAD("'%s': __metadata__ key '%s' appears twice", j->label, k);
    }
    if (!s && st->num_meta == st->cap_meta) {
      st_meta *m = realloc(st->meta, 2 * st->cap_meta * sizeof *m);
      if (!m) s = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "safetensors metadata");
      else {
        st->meta = m;
        st->cap_meta *= 2;
      }
    }
    if (s) {
      free(k);
      free(v);
      return s;
    }
    st->meta[st->num_meta].key = k;
    st->meta[st->num_meta].value = v;
    st->num_meta++;
    skip_ws(j);
    if (j->p < j->end && *j->p == ',') {
      j->p++;
      continue;
    }
    return expect(j, '}', "to close __metadata__");
  }
}

/* One tensor entry {"dtype":..., "shape":[...], "data_offsets":[b, e]}; name is owned by the
 * caller until stored. */
static drt_status parse_tensor(json *j, const char *name, drt_st_tensor *t, uint64_t off[2]) {
  bool have_dtype = false, have_shape = false, have_off = false;
  DRT_RETURN_IF_ERROR_CTX(expect(j, '{', "to open a tensor entry"), "tensor '%s'", name);
  memset(t, 0, sizeof *t);
  skip_ws(j);
  bool empty = j->p < j->end && *j->p == '}';
  if (empty) j->p++;
  while (!empty) {
    char *field = NULL;
    DRT_RETURN_IF_ERROR_CTX(parse_string(j, &field), "tensor '%s'", name);
    drt_status s = expect(j, ':', "after a field name");
    if (!s && strcmp(field, "dtype") == 0 && !have_dtype) {
      char *dt = NULL;
      s = parse_string(j, &dt);
      if (!s && !dtype_from_name(dt, &t->dtype))
        s = DRT_ERROR(DRT_STATUS_UNSUPPORTED, "'%s': tensor '%s' has dtype '%s'; supported: F64 F32 F16 BF16 I64 I32 "
                      "I16 I8 U64 U32 U16 U8 BOOL", j->label, name, dt);
      free(dt);
      have_dtype = true;
    } else if (!s && strcmp(field, "shape") == 0 && !have_shape) {
      uint64_t dims[DRT_MAX_RANK];
      int n;
      s = parse_uint_array(j, name, "shape", dims, DRT_MAX_RANK, &n);
      t->shape.rank = n;
      for (int i = 0; !s && i < n; i++) {
        if (dims[i] > (uint64_t)INT64_MAX) s = BAD("'%s': tensor '%s': dimension %d out of range", j->label, name, i);
        t->shape.dims[i] = (int64_t)dims[i];
      }
      have_shape = true;
    } else if (!s && strcmp(field, "data_offsets") == 0 && !have_off) {
      int n;
      s = parse_uint_array(j, name, "data_offsets", off, 2, &n);
      if (!s && n != 2) s = BAD("'%s': tensor '%s': data_offsets must be [BEGIN, END]", j->label, name);
      have_off = true;
    } else if (!s) {
      bool dup = strcmp(field, "dtype") == 0 || strcmp(field, "shape") == 0 || strcmp(field, "data_offsets") == 0;
      s = BAD("'%s': tensor '%s': %s field '%s'", j->label, name, dup ? "duplicate" : "unknown", field);
    }
    free(field);
    DRT_RETURN_IF_ERROR(s);
    skip_ws(j);
    if (j->p < j->end && *j->p == ',') {
      j->p++;
      continue;
    }
    DRT_RETURN_IF_ERROR_CTX(expect(j, '}', "to close a tensor entry"), "tensor '%s'", name);
    break;
  }
  if (!have_dtype || !have_shape || !have_off)
    return BAD("'%s': tensor '%s' lacks %s", j->label, name,
               !have_dtype ? "dtype" : !have_shape ? "shape" : "data_offsets");
  int64_t numel = drt_shape_numel(&t->shape);
  size_t es = drt_dtype_size(t->dtype);
  if (numel < 0 || (es && (uint64_t)numel > UINT64_MAX / es))
    return BAD("'%s': tensor '%s': shape too large", j->label, name);
  uint64_t want = (uint64_t)numel * es;
  if (off[1] < off[0] || off[1] - off[0] != want) {
    char sh[128];
    return BAD("'%s': tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 ") hold %" PRIu64 " bytes, but %s[%s] needs "
               "%" PRIu64, j->label, name, off[0], off[1], off[1] >= off[0] ? off[1] - off[0] : 0,
               drt_safetensors_dtype_name(t->dtype), drt_shape_str(&t->shape, sh, sizeof sh), want);
  }
  t->nbytes = (size_t)want;
  return DRT_OK;
}

static int cmp_offset(const void *a, const void *b) {
  const drt_st_tensor *x = a, *y = b;
  const uint8_t *px = x->data, *py = y->data;
  if (px != py) return px < py ? -1 : 1;
  return x->nbytes < y->nbytes ? -1 : x->nbytes > y->nbytes;
}

/* Sorts st->by_name (indices) by tensor name: bottom-up merge sort (qsort would need global state). */
static void sort_names(drt_safetensors *st) {
  size_t n = st->count;
  size_t *a = st->by_name, *tmp = malloc((n ? n : 1) * sizeof(size_t));
  for (size_t i = 0; i < n; i++) a[i] = i;
  if (!tmp) { /* fall back to insertion sort */
    for (size_t i = 1; i < n; i++)
      for (size_t k = i; k > 0 && strcmp(st->tensors[a[k - 1]].name, st->tensors[a[k]].name) > 0; k--) {
        size_t t = a[k];
        a[k] = a[k - 1];
        a[k - 1] = t;
      }
    return;
  }
  for (size_t w = 1; w < n; w *= 2) {
    for (size_t lo = 0; lo < n; lo += 2 * w) {
      size_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
      size_t i = lo, k = mid, o = lo;
      while (i < mid && k < hi) tmp[o++] = strcmp(st->tensors[a[i]].name, st->tensors[a[k]].name) <= 0 ? a[i++] : a[k++];
      while (i < mid) tmp[o++] = a[i++];
      while (k < hi) tmp[o++] = a[k++];
    }
    memcpy(a, tmp, n * sizeof(size_t));
  }
  free(tmp);
}

drt_status drt_safetensors_open_owned(void *bytes, size_t size, const char *label, drt_safetensors **out) {
  *out = NULL;
  drt_safetensors *st = calloc(1, sizeof *st);
  if (!st) {
    free(bytes);
    return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "safetensors");
  }
  st->bytes = bytes;
  st->size = size;
  st->label = strdup(label ? label : "<memory>");
  if (!st->label) {
    drt_safetensors_close(st);
    return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "safetensors");
  }
  drt_status s = DRT_OK;
  const uint8_t *b = bytes;
  if (size < 8) {
    s = BAD("'%s' is not a safetensors file: %zu bytes, shorter than the 8-byte header length", label, size);
    goto fail;
  }
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; i--) hlen = hlen << 8 | b[i];
  if (hlen > DRT_ST_MAX_HEADER) {
    s = BAD("'%s': header length %" PRIu64 " exceeds the limit of %u bytes", label, hlen, DRT_ST_MAX_HEADER);
    goto fail;
  }
  if (hlen > size - 8) {
    s = BAD("'%s': header length %" PRIu64 " runs past the end of the %zu-byte file", label, hlen, size);
    goto fail;
  }
  if (hlen < 2) {
    s = BAD("'%s': header of %" PRIu64 " bytes cannot hold a JSON object", label, hlen);
    goto fail;
  }
  const uint8_t *data = b + 8 + hlen;
  size_t data_size = size - 8 - (size_t)hlen;
  json j = {(const char *)b + 8, (const char *)b + 8 + hlen, (const char *)b + 8, st->label};
  if (memchr(j.p, 0, (size_t)hlen)) {
    s = BAD("'%s': header contains a NUL byte", label);
    goto fail;
  }
  s = expect(&j, '{', "at the start of the header");
  if (s) goto fail;
  uint64_t(*offs)[2] = NULL;
  skip_ws(&j);
  bool empty = j.p < j.end && *j.p == '}';
  if (empty) j.p++;
  while (!empty) {
    char *name = NULL;
    s = parse_string(&j, &name);
    if (!s) s = expect(&j, ':', "after a tensor name");
    if (!s && strcmp(name, "__metadata__") == 0) {
      free(name);
      name = NULL;
      s = parse_metadata(&j, st);
    } else if (!s) {
      if (!name[0]) s = BAD("'%s': a tensor has an empty name", label);
      if (!s && st->count == st->cap) {
        size_t nc = st->cap ? 2 * st->cap : 16;
        drt_st_tensor *nt = realloc(st->tensors, nc * sizeof *nt);
        uint64_t(*no)[2] = nt ? realloc(offs, nc * sizeof *no) : NULL;
        if (nt) st->tensors = nt;
        if (no) offs = no;
        if (!nt || !no) s = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "safetensors header");
        else st->cap = nc;
      }
      if (!s) s = parse_tensor(&j, name, &st->tensors[st->count], offs[st->count]);
      if (!s) {
        st->tensors[st->count].name = name;
        name = NULL;
        st->count++;
      }
    }
    free(name);
    if (s) {
      free(offs);
      goto fail;
    }
    skip_ws(&j);
    if (j.p < j.end && *j.p == ',') {
      j.p++;
      continue;
    }
    s = expect(&j, '}', "to close the header object");
    if (s) {
      free(offs);
      goto fail;
    }
    break;
  }
  for (const char *p = j.p; p < j.end; p++)
    if (*p != ' ') {
      free(offs);
      s = BAD("'%s': unexpected bytes after the header's JSON object (only space padding is allowed)", label);
      goto fail;
    }
  /* ranges: inside the data area; sorted, they must tile it exactly */
  for (size_t i = 0; i < st->count; i++) {
    if (offs[i][1] > data_size) {
      s = BAD("'%s': tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 ") run past the %zu bytes of data", label,
              st->tensors[i].name, offs[i][0], offs[i][1], data_size);
      free(offs);
      goto fail;
    }
    st->tensors[i].data = data + offs[i][0];
  }
  free(offs);
  qsort(st->tensors, st->count, sizeof *st->tensors, cmp_offset);
  size_t pos = 0;
  for (size_t i = 0; i < st->count; i++) {
    const drt_st_tensor *t = &st->tensors[i];
    size_t begin = (size_t)((const uint8_t *)t->data - data);
    if (begin < pos) {
      s = BAD("'%s': tensor '%s' overlaps tensor '%s' (data_offsets [%zu, %zu) start before %zu)", label, t->name,
              st->tensors[i - 1].name, begin, begin + t->nbytes, pos);
      goto fail;
    }
    if (begin > pos) {
      s = BAD("'%s': %zu bytes of data before tensor '%s' belong to no tensor", label, begin - pos, t->name);
      goto fail;
    }
    pos = begin + t->nbytes;
  }
  if (pos != data_size) {
    s = BAD("'%s': the file has %zu bytes of data but the tensors cover %zu", label, data_size, pos);
    goto fail;
  }
  st->by_name = malloc((st->count ? st->count : 1) * sizeof(size_t));
  if (!st->by_name) {
    s = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "safetensors index");
    goto fail;
  }
  sort_names(st);
  for (size_t i = 1; i < st->count; i++)
    if (strcmp(st->tensors[st->by_name[i - 1]].name, st->tensors[st->by_name[i]].name) == 0) {
      s = BAD("'%s': tensor '%s' appears twice", label, st->tensors[st->by_name[i]].name);
      goto fail;
    }
  *out = st;
  return DRT_OK;
fail:
  drt_safetensors_close(st);
  return s;
}

drt_status drt_safetensors_open_file(const char *path, uint64_t limit, drt_safetensors **out) {
  *out = NULL;
  void *bytes;
  size_t size;
  DRT_RETURN_IF_ERROR(drt_read_file(path, limit, &bytes, &size));
  return drt_safetensors_open_owned(bytes, size, path, out);
}

size_t drt_safetensors_count(const drt_safetensors *st) { return st ? st->count : 0; }

const drt_st_tensor *drt_safetensors_at(const drt_safetensors *st, size_t i) {
  return st && i < st->count ? &st->tensors[i] : NULL;
}

const drt_st_tensor *drt_safetensors_find(const drt_safetensors *st, const char *name) {
  if (!st || !name) return NULL;
  size_t lo = 0, hi = st->count;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = strcmp(st->tensors[st->by_name[mid]].name, name);
    if (c == 0) return &st->tensors[st->by_name[mid]];
    if (c < 0) lo = mid + 1;
    else hi = mid;
  }
  return NULL;
}

size_t drt_safetensors_metadata_count(const drt_safetensors *st) { return st ? st->num_meta : 0; }

void drt_safetensors_metadata_at(const drt_safetensors *st, size_t i, const char **key, const char **value) {
  *key = *value = NULL;
  if (!st || i >= st->num_meta) return;
  *key = st->meta[i].key;
  *value = st->meta[i].value;
}

const char *drt_safetensors_metadata(const drt_safetensors *st, const char *key) {
  for (size_t i = 0; st && i < st->num_meta; i++)
    if (strcmp(st->meta[i].key, key) == 0) return st->meta[i].value;
  return NULL;
}

const char *drt_safetensors_label(const drt_safetensors *st) { return st ? st->label : ""; }

void drt_safetensors_read(const drt_st_tensor *t, drt_dtype dst_dtype, void *dst) {
  size_t n = (size_t)drt_shape_numel(&t->shape);
  size_t es = drt_dtype_size(t->dtype);
  if (dst_dtype == t->dtype || ((uintptr_t)t->data % (es ? es : 1)) == 0) {
    if (dst_dtype == t->dtype) memcpy(dst, t->data, t->nbytes);
    else drt_convert(dst_dtype, dst, t->dtype, t->data, n);
    return;
  }
  /* unaligned source: convert through an aligned bounce buffer, a chunk at a time */
  _Alignas(16) uint8_t bounce[4096];
  size_t per = sizeof bounce / es, ds = drt_dtype_size(dst_dtype);
  for (size_t i = 0; i < n; i += per) {
    size_t k = n - i < per ? n - i : per;
    memcpy(bounce, (const uint8_t *)t->data + i * es, k * es);
    drt_convert(dst_dtype, (uint8_t *)dst + i * ds, t->dtype, bounce, k);
  }
}

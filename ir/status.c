#include "ir/status.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct drt_status_s {
  drt_status_code code;
  bool is_static;
  char *message;
};

static struct drt_status_s g_oom_status = {DRT_STATUS_OUT_OF_MEMORY, true,
                                           "out of memory while reporting an error"};

const char *drt_status_code_name(drt_status_code code) {
  switch (code) {
    case DRT_STATUS_OK: return "OK";
    case DRT_STATUS_INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case DRT_STATUS_UNSUPPORTED: return "UNSUPPORTED";
    case DRT_STATUS_NOT_FOUND: return "NOT_FOUND";
    case DRT_STATUS_IO: return "IO";
    case DRT_STATUS_OUT_OF_MEMORY: return "OUT_OF_MEMORY";
    case DRT_STATUS_CORRUPT: return "CORRUPT";
    case DRT_STATUS_UNAVAILABLE: return "UNAVAILABLE";
    case DRT_STATUS_INTERNAL: return "INTERNAL";
    case DRT_STATUS_UNIMPLEMENTED: return "UNIMPLEMENTED";
  }
  return "UNKNOWN";
}

static char *vformat(const char *fmt, va_list ap) {
  va_list ap2;
  va_copy(ap2, ap);
  int n = vsnprintf(NULL, 0, fmt, ap2);
  va_end(ap2);
  if (n < 0) return NULL;
  char *buf = malloc((size_t)n + 1);
  if (!buf) return NULL;
  vsnprintf(buf, (size_t)n + 1, fmt, ap);
  return buf;
}

drt_status drt_status_make(drt_status_code code, const char *file, int line, const char *fmt, ...) {
  (void)file;
  (void)line;
  if (code == DRT_STATUS_OK) code = DRT_STATUS_INTERNAL;
  drt_status s = malloc(sizeof(*s));
  if (!s) return &g_oom_status;
  va_list ap;
  va_start(ap, fmt);
  s->message = vformat(fmt, ap);
  va_end(ap);
  s->code = code;
  s->is_static = false;
  if (!s->message) {
    free(s);
    return &g_oom_status;
  }
  if (code == DRT_STATUS_INTERNAL && file) {
    /* Internal errors carry the source location: they are bugs to report. */
    char loc[512];
    snprintf(loc, sizeof loc, " [%s:%d]", file, line);
    size_t a = strlen(s->message), b = strlen(loc);
    char *m = realloc(s->message, a + b + 1);
    if (m) {
      memcpy(m + a, loc, b + 1);
      s->message = m;
    }
  }
  return s;
}

drt_status drt_status_annotate(drt_status s, const char *fmt, ...) {
  if (!s || s->is_static) return s;
  va_list ap;
  va_start(ap, fmt);
  char *ctx = vformat(fmt, ap);
  va_end(ap);
  if (!ctx) return s;
  size_t a = strlen(ctx), b = strlen(s->message);
  char *m = malloc(a + 2 + b + 1);
  if (m) {
    memcpy(m, ctx, a);
    memcpy(m + a, ": ", 2);
    memcpy(m + a + 2, s->message, b + 1);
    free(s->message);
    s->message = m;
  }
  free(ctx);
  return s;
}

drt_status_code drt_status_code_of(drt_status s) { return s ? s->code : DRT_STATUS_OK; }
const char *drt_status_message(drt_status s) { return s ? s->message : ""; }

void drt_status_free(drt_status s) {
  if (!s || s->is_static) return;
  free(s->message);
  free(s);
}

/* ---- logging ---------------------------------------------------------------------- */
static drt_log_fn g_log_fn;
static void *g_log_user;
static drt_log_level g_log_level = DRT_LOG_WARN;

void drt_log_set(drt_log_fn fn, void *user_data, drt_log_level max_level) {
  g_log_fn = fn;
  g_log_user = user_data;
  g_log_level = max_level;
}

bool drt_log_enabled(drt_log_level level) { return g_log_fn && level <= g_log_level; }

void drt_log(drt_log_level level, const char *fmt, ...) {
  if (!drt_log_enabled(level)) return;
  char buf[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  g_log_fn(level, buf, g_log_user);
}

const char *drt_version(void) { return DRT_VERSION_STRING; }

/* Internal status objects: NULL means OK; an error carries a code and a message that
 * accumulates context ("node 'conv1' (Conv, opset 17): input 1: rank 3, expected 4").
 * Modeled on IREE's iree_status_t. Statuses are owned by whoever receives them and must be
 * passed up or released with drt_status_free. */
#ifndef DRT_IR_STATUS_H
#define DRT_IR_STATUS_H

#include <stdarg.h>
#include <stdbool.h>
#include "distilrt.h"

typedef struct drt_status_s *drt_status;
#define DRT_OK ((drt_status)0)

#if defined(__GNUC__)
#define DRT_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define DRT_MUST_USE __attribute__((warn_unused_result))
#else
#define DRT_PRINTF(a, b)
#define DRT_MUST_USE
#endif

/* Creates an error status. Never returns NULL for code != OK (falls back to a static OOM status). */
drt_status drt_status_make(drt_status_code code, const char *file, int line, const char *fmt, ...)
    DRT_PRINTF(4, 5);
/* Prepends "context: " to the message of s; returns s. s == NULL returns NULL. */
drt_status drt_status_annotate(drt_status s, const char *fmt, ...) DRT_PRINTF(2, 3);
drt_status_code drt_status_code_of(drt_status s);
const char *drt_status_message(drt_status s); /* "" for OK */
void drt_status_free(drt_status s);

#define DRT_ERROR(code, ...) drt_status_make((code), __FILE__, __LINE__, __VA_ARGS__)

/* Propagates an error. The _CTX form adds context to the message on the way up. */
#define DRT_RETURN_IF_ERROR(expr)      \
  do {                                 \
    drt_status drt_s_ = (expr);        \
    if (drt_s_) return drt_s_;         \
  } while (0)
#define DRT_RETURN_IF_ERROR_CTX(expr, ...)                   \
  do {                                                       \
    drt_status drt_s_ = (expr);                              \
    if (drt_s_) return drt_status_annotate(drt_s_, __VA_ARGS__); \
  } while (0)

/* Internal logging (goes to the callback installed with drt_log_set). */
void drt_log(drt_log_level level, const char *fmt, ...) DRT_PRINTF(2, 3);
bool drt_log_enabled(drt_log_level level);

#endif

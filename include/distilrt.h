/*
 * distilrt — compiler and runtime for distilled diffusion generators.
 * Public C API. This header is the same with or without CUDA support compiled in.
 *
 * Conventions
 *  - Every fallible function returns a drt_status_code; DRT_STATUS_OK (0) is success.
 *  - The library never prints and never exits: diagnostics go through the log callback
 *    installed with drt_log_set().
 *  - Handles are opaque; every create/load function has a destroy function that accepts NULL.
 */
#ifndef DISTILRT_H
#define DISTILRT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DRT_VERSION_MAJOR 0
#define DRT_VERSION_MINOR 1
#define DRT_VERSION_PATCH 0
#define DRT_VERSION_STRING "0.1.0"

/* Status codes. Values are stable (they are part of the ABI and of CLI exit-code mapping). */
typedef enum drt_status_code {
  DRT_STATUS_OK = 0,
  DRT_STATUS_INVALID_ARGUMENT = 1, /* bad input: model, tensor, shape, option */
  DRT_STATUS_UNSUPPORTED = 2,      /* valid input we do not handle: op, dtype, domain, attribute */
  DRT_STATUS_NOT_FOUND = 3,        /* missing file, tensor name, input */
  DRT_STATUS_IO = 4,               /* read/write failure */
  DRT_STATUS_OUT_OF_MEMORY = 5,    /* allocation failed or memory budget exceeded */
  DRT_STATUS_CORRUPT = 6,          /* malformed file: truncated, bad checksum, bad protobuf */
  DRT_STATUS_UNAVAILABLE = 7,      /* backend not present on this machine (e.g. no GPU) */
  DRT_STATUS_INTERNAL = 8,         /* broken invariant inside distilrt */
  DRT_STATUS_UNIMPLEMENTED = 9,    /* feature not implemented yet */
} drt_status_code;

/* Returns a static string for a status code ("OK", "INVALID_ARGUMENT", ...). Thread-safe. */
const char *drt_status_code_name(drt_status_code code);

/* Element types. Numeric values follow ONNX TensorProto.DataType. */
typedef enum drt_dtype {
  DRT_DTYPE_UNDEFINED = 0,
  DRT_DTYPE_FLOAT32 = 1,
  DRT_DTYPE_UINT8 = 2,
  DRT_DTYPE_INT8 = 3,
  DRT_DTYPE_UINT16 = 4,
  DRT_DTYPE_INT16 = 5,
  DRT_DTYPE_INT32 = 6,
  DRT_DTYPE_INT64 = 7,
  DRT_DTYPE_STRING = 8, /* not supported; listed for error messages */
  DRT_DTYPE_BOOL = 9,
  DRT_DTYPE_FLOAT16 = 10,
  DRT_DTYPE_FLOAT64 = 11,
  DRT_DTYPE_UINT32 = 12,
  DRT_DTYPE_UINT64 = 13,
  DRT_DTYPE_BFLOAT16 = 16,
} drt_dtype;

/* Name of a dtype ("float32", "float16", ...); "unknown" for unknown values. Thread-safe. */
const char *drt_dtype_name(drt_dtype dtype);
/* Size in bytes of one element; 0 for unknown/unsupported dtypes. Thread-safe. */
size_t drt_dtype_size(drt_dtype dtype);

/* Logging. The library emits messages only through this callback. */
typedef enum drt_log_level {
  DRT_LOG_ERROR = 0,
  DRT_LOG_WARN = 1,
  DRT_LOG_INFO = 2,
  DRT_LOG_DEBUG = 3,
} drt_log_level;

typedef void (*drt_log_fn)(drt_log_level level, const char *message, void *user_data);

/* Installs the process-wide log callback (NULL silences the library) and the most verbose
 * level delivered. Call it once at startup, before other threads use the library; the
 * callback itself may be invoked from any thread the library runs on. */
void drt_log_set(drt_log_fn fn, void *user_data, drt_log_level max_level);

/* Version string of the linked library. */
const char *drt_version(void);

#ifdef __cplusplus
}
#endif
#endif /* DISTILRT_H */

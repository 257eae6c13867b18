/* Shared pieces of the drt command-line tool. */
#ifndef DRT_TOOLS_CLI_H
#define DRT_TOOLS_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "ir/graph.h"

/* Exit codes (documented in README and `drt --help`). */
enum {
  DRT_EXIT_OK = 0,
  DRT_EXIT_USAGE = 1,
  DRT_EXIT_BAD_INPUT = 2,
  DRT_EXIT_UNSUPPORTED = 3,
  DRT_EXIT_INTERNAL = 4,
};

int drt_cli_exit_code(drt_status_code code);
/* Prints "drt <cmd>: error: <message>" to stderr, frees s, returns the exit code. */
int drt_cli_fail(const char *cmd, drt_status s);
int drt_cli_usage_error(const char *cmd, const char *fmt, ...) DRT_PRINTF(2, 3);
void drt_cli_install_logger(int verbosity);
/* Reads and parses the plan file at `path` (drt_plan_contents_free releases it). */
struct drt_plan_contents;
drt_status drt_cli_read_plan(const char *path, struct drt_plan_contents *out);

/* Parses "1x4x64x64" (also "1,4,64,64"; "" or "scalar" = rank 0). */
drt_status drt_cli_parse_dims(const char *text, drt_shape *out);
/* Parses a byte count for --max-memory: decimal digits with an optional suffix K, M, G or T
 * (powers of 1024; "KB"/"KiB" spellings and lower case accepted). "0" means no limit. */
drt_status drt_cli_parse_bytes(const char *text, uint64_t *out);
/* Splits "NAME=VALUE" at the last '=' ... first '='. Returns false if no '='. */
bool drt_cli_split_kv(const char *arg, char *name, size_t name_size, const char **value);
/* For option parsing: if argv[*i] is `opt` (or `opt=value`), stores the value and advances. */
bool drt_cli_opt(int argc, char **argv, int *i, const char *opt, const char **value, int *err);

/* A named shape binding from --shape NAME=DIMS. */
typedef struct drt_cli_shape {
  char name[256];
  drt_shape shape;
} drt_cli_shape;

/* Loads an ONNX model and prepares it for execution: binds the given input shapes (from
 * tensors read by the caller) and --shape bindings, then canonicalizes. Inputs with at most
 * specialize_max elements become constants (their values are known for this run), so that
 * shape-like operands passed as inputs fold; -1 disables this. */
drt_status drt_cli_prepare_model(const char *path, const drt_cli_shape *shapes, int num_shapes,
                                 const char *const *input_names, const drt_tensor *inputs, int num_inputs,
                                 int64_t specialize_max, uint64_t max_memory, drt_graph **out);

/* --max-memory: fails with OUT_OF_MEMORY naming the budget when `what` needs more than
 * `budget` bytes (weights + peak activations + other, e.g. the input tensors, named by
 * other_what in the message); budget 0 = none. */
drt_status drt_cli_check_memory(uint64_t budget, const char *what, uint64_t weights, uint64_t activations,
                                uint64_t other, const char *other_what);
/* The same for one file about to be read whole (stat only; a missing file is left to the reader). */
drt_status drt_cli_check_file_size(uint64_t budget, const char *path);
/* Tensor files: FILE.pb is an ONNX TensorProto (any ONNX element type, e.g. bfloat16, float8,
 * int4), anything else .npy. Writes are atomic (temporary file + rename). */
bool drt_cli_is_tensor_proto_path(const char *path);
drt_status drt_cli_read_tensor(const char *path, drt_tensor *out);
drt_status drt_cli_write_tensor(const char *path, const char *name, const drt_tensor *t);

/* --backend auto|cpu|cuda (drt run, generate, bench). False for anything else. */
bool drt_cli_parse_backend(const char *text, drt_backend *out);
#define DRT_CLI_BACKEND_USAGE                                                                              \
  "--backend auto|cpu|cuda picks where a plan runs: cuda needs a plan compiled with --target cuda and a\n" \
  "GPU (an error otherwise); auto (the default) uses the GPU when the plan has CUDA code and the GPU can\n" \
  "run it, else the CPU (with a warning when the plan has CUDA code).\n"

bool drt_cli_is_plan(const char *path);
int drt_cmd_run(int argc, char **argv);
int drt_cmd_inspect(int argc, char **argv);
int drt_cmd_ops(int argc, char **argv);
int drt_cmd_compile(int argc, char **argv);
int drt_inspect_plan(const char *path, bool json);
int drt_cmd_generate(int argc, char **argv);
int drt_cmd_bench(int argc, char **argv);
int drt_cmd_refit(int argc, char **argv);

#endif

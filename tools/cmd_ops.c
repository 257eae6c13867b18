/* drt ops: the ONNX ops with both shape inference and a CPU kernel, Constant (the frontend
 * makes it a value), If/Loop/Scan and the sequence ops (resolved at compile time,
 * passes/control_flow.h). */
#include <string.h>

#include "ir/infer.h"
#include "passes/control_flow.h"
#include "runtime/cpu/cpu.h"
#include "tools/cli.h"

int drt_cmd_ops(int argc, char **argv) {
  bool verbose = false;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      printf("usage: drt ops [-v]\n\nLists the ONNX op types (default domain) that distilrt runs, one per line.\n"
             "-v adds each op's fusion class.\n");
      return 0;
    } else if (strcmp(argv[i], "-v") == 0) {
      verbose = true;
    } else {
      return drt_cli_usage_error("ops", "unexpected argument '%s'", argv[i]);
    }
  }
  for (int op = 0; op < DRT_OP_COUNT_; op++) {
    const drt_op_info *info = drt_op_get_info((drt_op)op);
    if (strncmp(info->name, "drt.", 4) == 0) continue;
    bool constant = op == DRT_OP_CONSTANT || drt_op_is_control_flow((drt_op)op) || drt_op_is_sequence((drt_op)op);
    if (!constant && (!drt_infer_find((drt_op)op) || !drt_cpu_kernel_find((drt_op)op))) continue;
    /* ops of another domain print as domain::op */
    const char *name = op == DRT_OP_FLEX_ATTENTION ? "ai.onnx.preview::FlexAttention" : info->name;
    if (verbose) printf("%-24s %s\n", name, drt_fusion_class_name(info->fusion));
    else printf("%s\n", name);
  }
  return 0;
}

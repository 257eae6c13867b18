#include "passes/canonicalize.h"
drt_status drt_pass_canonicalize(drt_graph *g, const drt_pass_ctx *ctx, bool *changed) {
  (void)g; (void)ctx; *changed = false;
  return DRT_ERROR(DRT_STATUS_UNIMPLEMENTED, "canonicalize");
}

/* Guidance modes and drt.CfgCombine geometry (see ir/cfg_combine.h). */
#include "ir/cfg_combine.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ir/infer.h"

static const char *const k_mode_names[] = {"standard", "rescale", "cfgpp", "apg"};

const char *drt_cfg_mode_name(drt_cfg_mode_kind kind) { return (unsigned)kind < 4 ? k_mode_names[kind] : "?"; }

bool drt_cfg_mode_from_name(const char *name, drt_cfg_mode_kind *out) {
  for (int i = 0; i < 4; i++)
    if (name && strcmp(name, k_mode_names[i]) == 0) {
      *out = (drt_cfg_mode_kind)i;
      return true;
    }
  return false;
}

/* Parses "a,b,c" into up to `max` finite doubles; returns the count or -1. */
static int parse_numbers(const char *s, double *out, int max) {
  int n = 0;
  while (*s) {
    if (n == max) return -1;
    char *end;
    double v = strtod(s, &end);
    if (end == s || !isfinite(v)) return -1;
    out[n++] = v;
    if (*end == ',') s = end + 1;
    else if (*end) return -1;
    else s = end;
  }
  return n;
}

drt_status drt_cfg_mode_parse(const char *text, drt_cfg_mode *out) {
  memset(out, 0, sizeof *out);
  out->eta = 1.0;
  if (!text || strcmp(text, "standard") == 0) return DRT_OK;
  if (strcmp(text, "cfgpp") == 0) {
    out->kind = DRT_CFG_CFGPP;
    return DRT_OK;
  }
  double v[3];
  if (strncmp(text, "rescale:", 8) == 0) {
    if (parse_numbers(text + 8, v, 1) != 1 || v[0] < 0 || v[0] > 1)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "guidance mode '%s': rescale:PHI expects PHI in [0, 1]", text);
    out->kind = DRT_CFG_RESCALE;
    out->phi = v[0];
    return DRT_OK;
  }
  if (strncmp(text, "apg:", 4) == 0) {
    if (parse_numbers(text + 4, v, 3) != 3 || v[1] < 0)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT,
                       "guidance mode '%s': apg:ETA,R,BETA expects three numbers (parallel weight, norm threshold "
                       ">= 0 with 0 = none, momentum), e.g. apg:0,15,-0.5", text);
    out->kind = DRT_CFG_APG;
    out->eta = v[0];
    out->norm_threshold = v[1];
    out->momentum = v[2];
    return DRT_OK;
  }
  return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT,
                   "unknown guidance mode '%s' (expected standard, rescale:PHI, cfgpp or apg:ETA,R,BETA)", text);
}

drt_status drt_cfg_combine_resolve(const drt_node *n, const drt_shape *x, drt_cfg_combine *out) {
  memset(out, 0, sizeof *out);
  const char *mode = drt_node_attr_string(n, "mode", "standard");
  if (!drt_cfg_mode_from_name(mode, &out->mode.kind))
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attribute mode '%s' is not standard, rescale, cfgpp or apg", mode);
  out->mode.phi = drt_node_attr_float(n, "phi", 0.0f);
  out->mode.eta = drt_node_attr_float(n, "eta", 1.0f);
  out->mode.norm_threshold = drt_node_attr_float(n, "norm_threshold", 0.0f);
  out->mode.momentum = drt_node_attr_float(n, "momentum", 0.0f);
  if (!isfinite(out->mode.phi) || !isfinite(out->mode.eta) || !isfinite(out->mode.momentum) ||
      !(out->mode.norm_threshold >= 0) || !isfinite(out->mode.norm_threshold))
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "attributes phi, eta, momentum must be finite and norm_threshold "
                     "finite and non-negative");
  if (x->rank < 1) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input 0 must have rank >= 1, got a scalar");
  DRT_RETURN_IF_ERROR_CTX(drt_normalize_axis(drt_node_attr_int(n, "axis", 0), x->rank, &out->axis), "attribute axis");
  int64_t d = x->dims[out->axis];
  char s[128];
  if (d % 2 != 0 || d < 2)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "input 0 %s: dim %d (%" PRId64 ") must be even (conditional and "
                     "unconditional halves)", drt_shape_str(x, s, sizeof s), out->axis, d);
  bool per_sample = out->mode.kind == DRT_CFG_RESCALE || out->mode.kind == DRT_CFG_APG;
  if (per_sample && out->axis != 0)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "mode %s needs axis 0 (per-sample statistics), got axis %d", mode,
                     out->axis);
  out->y = *x;
  out->y.dims[out->axis] = d / 2;
  out->outer = 1;
  out->half = 1;
  for (int i = 0; i < x->rank; i++) {
    if (i < out->axis) out->outer *= x->dims[i];
    else out->half *= out->y.dims[i];
  }
  out->samples = d / 2;
  out->sample_size = 1;
  for (int i = 1; i < x->rank; i++) out->sample_size *= x->dims[i];
  out->num_outputs = (out->mode.kind == DRT_CFG_CFGPP || out->mode.kind == DRT_CFG_APG) ? 2 : 1;
  return DRT_OK;
}

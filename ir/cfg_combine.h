/* Classifier-free guidance: the guidance modes and the geometry of drt.CfgCombine (see the
 * comment above its row in ir/ops.def), shared by shape inference (ir/infer_fused.c), the CPU
 * kernel (runtime/cpu/fused_cfg.c), the folding pass (passes/cfg_fold.c), the plan's GUIDANCE
 * section and the command line. Pure functions; thread-safe. */
#ifndef DRT_IR_CFG_COMBINE_H
#define DRT_IR_CFG_COMBINE_H

#include "ir/graph.h"

typedef enum drt_cfg_mode_kind {
  DRT_CFG_STANDARD = 0, /* u + w (c - u) */
  DRT_CFG_RESCALE = 1,  /* guidance rescale (Lin et al. 2023), parameter phi */
  DRT_CFG_CFGPP = 2,    /* CFG++ (Chung et al. 2024): the sampler re-noises with the uncond prediction */
  DRT_CFG_APG = 3,      /* adaptive projected guidance (Sadat et al. 2024): eta, norm threshold, momentum */
} drt_cfg_mode_kind;

typedef struct drt_cfg_mode {
  drt_cfg_mode_kind kind;
  double phi;                             /* rescale */
  double eta, norm_threshold, momentum;   /* apg */
} drt_cfg_mode;

/* "standard" | "rescale:PHI" | "cfgpp" | "apg:ETA,R,BETA" (PHI in [0, 1], R >= 0). */
drt_status drt_cfg_mode_parse(const char *text, drt_cfg_mode *out);
/* "standard", "rescale", "cfgpp", "apg". */
const char *drt_cfg_mode_name(drt_cfg_mode_kind kind);
bool drt_cfg_mode_from_name(const char *name, drt_cfg_mode_kind *out);

/* A drt.CfgCombine node's attributes and shapes, resolved. */
typedef struct drt_cfg_combine {
  drt_cfg_mode mode;
  int axis;
  int64_t outer;   /* product of the dims before axis */
  int64_t half;    /* elements of one half in one outer slice: dims[axis]/2 x the dims after axis */
  int64_t samples;     /* axis 0: samples per half (dims[0]/2) */
  int64_t sample_size; /* elements of one sample (product of dims after 0) */
  drt_shape y;     /* shape of Y (and of U / the state) */
  int num_outputs; /* 1, or 2 for cfgpp and apg */
} drt_cfg_combine;

/* Resolves attributes against the shape of X; checks that dim `axis` is even, that rescale and
 * apg use axis 0, and the attribute ranges. */
drt_status drt_cfg_combine_resolve(const drt_node *n, const drt_shape *x, drt_cfg_combine *out);

#endif

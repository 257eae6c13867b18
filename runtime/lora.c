#include "runtime/lora.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/ew_program.h"
#include "ir/infer.h"

#define BAD(...) DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, __VA_ARGS__)

void drt_lora_free(struct drt_lora *l) {
  if (!l) return;
  for (size_t i = 0; i < l->num_targets; i++) {
    free((char *)l->targets[i].param);
    free((char *)l->targets[i].source);
    free(l->targets[i].down);
    free(l->targets[i].up);
  }
  for (size_t i = 0; i < l->num_unknown; i++) free(l->unknown[i]);
  free(l->targets);
  free(l->unknown);
  free(l->label);
  free(l);
}

/* ---- keys ------------------------------------------------------------------------------------ */
enum { PART_DOWN = 0, PART_UP = 1, PART_ALPHA = 2 };

static bool ends_with(const char *s, size_t n, const char *suffix, size_t *stem) {
  size_t k = strlen(suffix);
  if (n < k || memcmp(s + n - k, suffix, k) != 0) return false;
  *stem = n - k;
  return true;
}

/* Splits a key into module and part. Returns false for keys of no known layout. */
static bool classify(const char *key, char *module, size_t msize, int *part, bool *underscored) {
  size_t n = strlen(key), stem = 0;
  static const struct {
    const char *suffix;
    int part;
  } k[] = {{".lora_down.weight", PART_DOWN}, {".lora_up.weight", PART_UP},   {".lora_A.weight", PART_DOWN},
           {".lora_B.weight", PART_UP},      {"_lora.down.weight", PART_DOWN}, {"_lora.up.weight", PART_UP},
           {".lora.down.weight", PART_DOWN}, {".lora.up.weight", PART_UP},   {"_lora.alpha", PART_ALPHA},
           {".lora.alpha", PART_ALPHA},      {".alpha", PART_ALPHA}};
  bool found = false;
  for (size_t i = 0; i < sizeof k / sizeof k[0] && !found; i++)
    if (ends_with(key, n, k[i].suffix, &stem)) {
      *part = k[i].part;
      found = true;
    }
  if (!found) {
    /* PEFT with an adapter name: <module>.lora_A.<adapter>.weight */
    const char *a = strstr(key, ".lora_A."), *b = strstr(key, ".lora_B.");
    const char *m = a ? a : b;
    if (!m || !ends_with(key, n, ".weight", &stem)) return false;
    *part = a ? PART_DOWN : PART_UP;
    stem = (size_t)(m - key);
  }
  if (stem == 0 || stem >= msize) return false;
  memcpy(module, key, stem);
  module[stem] = 0;
  *underscored = false;
  static const char *kohya[] = {"lora_unet_", "lora_transformer_"};
  for (size_t i = 0; i < 2; i++) {
    size_t kl = strlen(kohya[i]);
    if (strncmp(module, kohya[i], kl) == 0) {
      memmove(module, module + kl, strlen(module + kl) + 1);
      *underscored = true;
      return module[0] != 0;
    }
  }
  if (strncmp(module, "lora_te", 7) == 0) return false; /* text encoders: not part of a diffusion plan */
  static const char *prefixes[] = {"base_model.model.", "model.diffusion_model.", "diffusion_model.", "unet.",
                                   "transformer.", "model."};
  for (bool again = true; again;) {
    again = false;
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++) {
      size_t pl = strlen(prefixes[i]);
      if (strncmp(module, prefixes[i], pl) == 0 && module[pl]) {
        memmove(module, module + pl, strlen(module + pl) + 1);
        again = true;
      }
    }
  }
  for (char *p = strstr(module, ".processor."); p; p = strstr(module, ".processor."))
    memmove(p, p + 10, strlen(p + 10) + 1);
  return module[0] != 0;
}

/* A weight a LoRA may target: a parameter with its source. */
typedef struct candidate {
  const char *param, *source;
  char *norm; /* param without ".weight", dots as underscores (kohya names) */
  drt_wmap_transform transform;
  drt_shape shape;
} candidate;

typedef struct group {
  char *module;
  bool underscored;
  const drt_st_tensor *part[3];
  const char *keys[3];
} group;

static char *xstrdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = malloc(n);
  if (d) memcpy(d, s, n);
  return d;
}

static drt_status add_unknown(struct drt_lora *l, const char *key) {
  char **nu = realloc(l->unknown, (l->num_unknown + 1) * sizeof *nu);
  if (!nu) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "LoRA");
  l->unknown = nu;
  if (!(l->unknown[l->num_unknown] = xstrdup(key))) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "LoRA");
  l->num_unknown++;
  return DRT_OK;
}

static const candidate *resolve(const candidate *c, size_t nc, const group *gr) {
  char want[1024];
  snprintf(want, sizeof want, "%s.weight", gr->module);
  for (size_t i = 0; i < nc; i++) {
    if (gr->underscored ? strcmp(c[i].norm, gr->module) == 0
                        : strcmp(c[i].param, want) == 0 || strcmp(c[i].param, gr->module) == 0)
      return &c[i];
  }
  return NULL;
}

static drt_status load_target(const group *gr, const candidate *c, const char *label, drt_lora_target *t) {
  const drt_st_tensor *down = gr->part[PART_DOWN], *up = gr->part[PART_UP], *alpha = gr->part[PART_ALPHA];
  char a[128], b[128], w[128];
  const drt_shape *ps = &c->shape;
  int64_t out = ps->dims[0], k = drt_shape_numel(ps) / (out ? out : 1);
  int64_t r = down->shape.rank >= 1 ? down->shape.dims[0] : -1;
  bool ok = (ps->rank == 2 || ps->rank == 4) && down->shape.rank == ps->rank && up->shape.rank == ps->rank &&
            r > 0 && up->shape.dims[0] == out && up->shape.dims[1] == r && down->shape.dims[1] == ps->dims[1];
  if (ok && ps->rank == 4)
    ok = up->shape.dims[2] == 1 && up->shape.dims[3] == 1 && down->shape.dims[2] == ps->dims[2] &&
         down->shape.dims[3] == ps->dims[3];
  ok = ok && drt_dtype_is_float(down->dtype) && drt_dtype_is_float(up->dtype);
  if (!ok)
    return BAD("'%s': module '%s': down %s[%s] and up %s[%s] do not fit the weight '%s' %s[%s]", label, gr->module,
               drt_dtype_name(down->dtype), drt_shape_str(&down->shape, a, sizeof a), drt_dtype_name(up->dtype),
               drt_shape_str(&up->shape, b, sizeof b), c->param, ps->rank == 2 || ps->rank == 4 ? "of shape" : "of rank",
               drt_shape_str(ps, w, sizeof w));
  memset(t, 0, sizeof *t);
  t->param = xstrdup(c->param);
  t->source = xstrdup(c->source);
  t->transform = c->transform;
  t->param_shape = *ps;
  t->rank = (int)r;
  t->down = malloc((size_t)(r * k) * sizeof(float));
  t->up = malloc((size_t)(out * r) * sizeof(float));
  if (!t->param || !t->source || !t->down || !t->up) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "LoRA");
  drt_safetensors_read(down, DRT_DTYPE_FLOAT32, t->down);
  drt_safetensors_read(up, DRT_DTYPE_FLOAT32, t->up);
  t->scale = 1.0f;
  if (alpha) {
    if (drt_shape_numel(&alpha->shape) != 1 || !drt_dtype_is_float(alpha->dtype))
      return BAD("'%s': module '%s': alpha must be one float", label, gr->module);
    float av;
    drt_safetensors_read(alpha, DRT_DTYPE_FLOAT32, &av);
    t->scale = av / (float)r;
  }
  return DRT_OK;
}

drt_status drt_lora_parse(const drt_safetensors *st, const drt_weight_map *map, const drt_source_info *sources,
                          size_t num_sources, struct drt_lora **out) {
  *out = NULL;
  const char *label = drt_safetensors_label(st);
  struct drt_lora *l = calloc(1, sizeof *l);
  size_t nk = drt_safetensors_count(st);
  candidate *cand = calloc(num_sources + 1, sizeof *cand);
  group *groups = calloc(nk + 1, sizeof *groups);
  size_t nc = 0, ng = 0;
  drt_status s = DRT_OK;
  if (!l || !cand || !groups || !(l->label = xstrdup(label))) {
    s = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "LoRA");
    goto done;
  }
  for (size_t i = 0; i < num_sources; i++) {
    const drt_source_info *si = &sources[i];
    const drt_wmap_entry *e = drt_weight_map_find_source(map, si->name);
    candidate *c = &cand[nc];
    c->source = si->name;
    c->param = e ? e->param : si->name;
    c->transform = e ? e->transform : DRT_WMAP_SAME;
    c->shape = e ? e->param_shape : si->shape;
    if (c->shape.rank != 2 && c->shape.rank != 4) continue;
    size_t pl = strlen(c->param);
    if (!(c->norm = malloc(pl + 1))) {
      s = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "LoRA");
      goto done;
    }
    memcpy(c->norm, c->param, pl + 1);
    size_t stem;
    if (ends_with(c->norm, pl, ".weight", &stem)) c->norm[stem] = 0;
    for (char *p = c->norm; *p; p++)
      if (*p == '.') *p = '_';
    nc++;
  }
  /* group the keys by module (in data order of the file, which is how they are listed) */
  for (size_t i = 0; i < nk && !s; i++) {
    const drt_st_tensor *t = drt_safetensors_at(st, i);
    char module[1024];
    int part;
    bool us;
    if (!classify(t->name, module, sizeof module, &part, &us)) {
      s = add_unknown(l, t->name);
      continue;
    }
    group *gr = NULL;
    for (size_t k = 0; k < ng && !gr; k++)
      if (groups[k].underscored == us && strcmp(groups[k].module, module) == 0) gr = &groups[k];
    if (!gr) {
      gr = &groups[ng++];
      gr->underscored = us;
      if (!(gr->module = xstrdup(module))) s = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "LoRA");
    }
    if (gr->part[part]) s = BAD("'%s': module '%s' has two %s tensors ('%s' and '%s')", label, module,
                                part == PART_DOWN ? "down" : part == PART_UP ? "up" : "alpha", gr->keys[part], t->name);
    gr->part[part] = t;
    gr->keys[part] = t->name;
  }
  if (s) goto done;
  l->targets = calloc(ng + 1, sizeof *l->targets);
  if (!l->targets) {
    s = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "LoRA");
    goto done;
  }
  for (size_t k = 0; k < ng && !s; k++) {
    group *gr = &groups[k];
    const candidate *c = gr->part[PART_DOWN] && gr->part[PART_UP] ? resolve(cand, nc, gr) : NULL;
    if (!c) {
      /* unknown module, or half a pair: list its keys in file order */
      for (size_t i = 0; i < nk && !s; i++) {
        const char *name = drt_safetensors_at(st, i)->name;
        for (int q = 0; q < 3; q++)
          if (gr->keys[q] && strcmp(gr->keys[q], name) == 0) s = add_unknown(l, name);
      }
      continue;
    }
    for (size_t q = 0; q < l->num_targets && !s; q++)
      if (strcmp(l->targets[q].source, c->source) == 0)
        s = BAD("'%s': two modules target the weight '%s'", label, c->param);
    if (!s) {
      s = load_target(gr, c, label, &l->targets[l->num_targets]);
      l->num_targets++;
    }
  }
done:
  for (size_t i = 0; i < nc; i++) free(cand[i].norm);
  for (size_t k = 0; k < ng; k++) free(groups[k].module);
  free(cand);
  free(groups);
  if (s) {
    drt_lora_free(l);
    return s;
  }
  *out = l;
  return DRT_OK;
}

/* ---- merged mode ------------------------------------------------------------------------------- */
drt_status drt_lora_merge_sources(const struct drt_lora *const *loras, const float *strengths, int n,
                                  drt_lora_source_fn get_source, void *user, drt_source_table *t) {
  /* every source any LoRA touches, once, in a stable order (first appearance) */
  drt_status s = DRT_OK;
  for (int li = 0; li < n && !s; li++) {
    for (size_t ti = 0; ti < loras[li]->num_targets && !s; ti++) {
      const drt_lora_target *tg = &loras[li]->targets[ti];
      bool seen = false;
      for (int lj = 0; lj <= li && !seen; lj++)
        for (size_t tj = 0; tj < loras[lj]->num_targets && !seen; tj++)
          if ((lj < li || tj < ti) && strcmp(loras[lj]->targets[tj].source, tg->source) == 0) seen = true;
      if (seen) continue;
      drt_dtype dt;
      drt_shape sh;
      const void *cur = get_source(user, tg->source, &dt, &sh);
      if (!cur)
        return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "LoRA target '%s': the plan does not hold model constant '%s' in a "
                         "form its value can be recovered from (merge it into the checkpoint and refit instead)",
                         tg->param, tg->source);
      size_t numel = (size_t)drt_shape_numel(&sh);
      double *acc = calloc(numel + 1, sizeof(double));
      if (!acc) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "LoRA merge");
      /* the sum of every LoRA's contribution to this source, in double */
      for (int lk = 0; lk < n; lk++) {
        for (size_t tk = 0; tk < loras[lk]->num_targets; tk++) {
          const drt_lora_target *q = &loras[lk]->targets[tk];
          if (strcmp(q->source, tg->source) != 0) continue;
          int64_t out = q->param_shape.dims[0], kk = drt_shape_numel(&q->param_shape) / out;
          double f = (double)strengths[lk] * (double)q->scale;
          for (int64_t o = 0; o < out; o++)
            for (int64_t c = 0; c < kk; c++) {
              double d = 0;
              for (int r = 0; r < q->rank; r++) d += (double)q->up[o * q->rank + r] * (double)q->down[r * kk + c];
              size_t idx = q->transform == DRT_WMAP_TRANSPOSE ? (size_t)(c * out + o) : (size_t)(o * kk + c);
              acc[idx] += f * d;
            }
        }
      }
      drt_tensor x = {dt, sh, NULL};
      size_t es = drt_dtype_size(dt);
      x.data = malloc(numel * es + 1);
      if (!x.data) {
        free(acc);
        return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "LoRA merge");
      }
      for (size_t i = 0; i < numel; i++) {
        double v = drt_load_f64(dt, cur, i) + acc[i];
        drt_convert(dt, (uint8_t *)x.data + i * es, DRT_DTYPE_FLOAT64, &v, 1);
      }
      free(acc);
      s = drt_source_table_add(t, tg->source, &x, true);
    }
  }
  return s;
}

/* ---- unmerged mode ----------------------------------------------------------------------------- */
/* One adapted weight: the LoRAs on it concatenated along the rank. */
typedef struct branch {
  const drt_lora_target *t0; /* shape and transform (the same for every part) */
  int rank;
  float *down;               /* [rank, K] */
  float *up;                 /* [out, rank], strengths and scales folded in */
} branch;

static drt_value *new_const(drt_graph *g, const char *name, const drt_shape *s, const float *data, drt_status *st) {
  drt_value *v = NULL;
  *st = drt_graph_add_const(g, name, DRT_DTYPE_FLOAT32, s, data, &v);
  return v;
}

static drt_attr attr_ints(const char *name, int64_t *v, int64_t n) {
  drt_attr a;
  memset(&a, 0, sizeof a);
  a.name = name;
  a.type = DRT_ATTR_INTS;
  a.ints = v;
  a.count = n;
  return a;
}

/* A new node (appended to g->nodes; the caller orders it) with inferred output shapes. */
static drt_status add_node(drt_graph *g, drt_op op, const char *name, drt_value **ins, int nin, drt_value **out,
                           const drt_attr *attrs, int nattrs, int opset) {
  drt_value *o = drt_graph_add_value(g, NULL, DRT_DTYPE_UNDEFINED, NULL);
  if (!o) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "LoRA branch");
  drt_node *n;
  DRT_RETURN_IF_ERROR(drt_graph_add_node(g, op, name, ins, nin, &o, 1, &n));
  n->opset = opset;
  for (int i = 0; i < nattrs; i++) DRT_RETURN_IF_ERROR(drt_node_add_attr(g, n, &attrs[i]));
  DRT_RETURN_IF_ERROR_CTX(drt_infer_node(g, n), "LoRA branch '%s'", name);
  *out = o;
  return DRT_OK;
}

/* The epilogue program of a fused node extended by one input `extra` (program input index)
 * added to the product wherever the product is loaded. */
static drt_status extend_program(drt_graph *g, drt_node *n, int prog_inputs, const drt_value *bias_first) {
  drt_ew_program p;
  if (n->op == DRT_OP_FUSED_GEMM || n->op == DRT_OP_FUSED_CONV) {
    DRT_RETURN_IF_ERROR(drt_ew_program_decode(n, prog_inputs, 1, &p));
  } else {
    /* a plain node: the identity program, plus the bias as program input 1 */
    memset(&p, 0, sizeof p);
    p.num_insns = 0;
    p.insns[p.num_insns++] = (drt_ew_insn){DRT_EW_LOAD, 0, 0, -1, -1};
    p.num_regs = 1;
    if (bias_first) {
      p.insns[p.num_insns++] = (drt_ew_insn){DRT_EW_LOAD, 1, 1, -1, -1};
      p.insns[p.num_insns++] = (drt_ew_insn){DRT_EW_ADD, 2, 0, 1, -1};
      p.insns[p.num_insns++] = (drt_ew_insn){DRT_EW_STORE, 0, 2, -1, -1};
      p.num_regs = 3;
    } else {
      p.insns[p.num_insns++] = (drt_ew_insn){DRT_EW_STORE, 0, 0, -1, -1};
    }
  }
  int t1 = p.num_regs, t2 = p.num_regs + 1, extra = prog_inputs;
  if (t2 >= DRT_EW_MAX_REGS || p.num_insns + 2 * p.num_insns > DRT_EW_MAX_INSNS || extra >= DRT_EW_MAX_INPUTS)
    return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "the fused epilogue has no room for the LoRA product");
  int64_t *code = drt_arena_alloc_array(g->arena, (size_t)p.num_insns * 3 * DRT_EW_INSN_INTS, sizeof(int64_t));
  if (!code) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "LoRA program");
  int64_t k = 0;
#define EMIT(op, d, a, b, c) (code[k++] = (op), code[k++] = (d), code[k++] = (a), code[k++] = (b), code[k++] = (c))
  for (int i = 0; i < p.num_insns; i++) {
    const drt_ew_insn *q = &p.insns[i];
    if (q->op == DRT_EW_LOAD && q->a == 0) {
      EMIT(DRT_EW_LOAD, t1, 0, -1, -1);
      EMIT(DRT_EW_LOAD, t2, extra, -1, -1);
      EMIT(DRT_EW_ADD, q->d, t1, t2, -1);
    } else {
      EMIT(q->op, q->d, q->a, q->b, q->c);
    }
  }
#undef EMIT
  /* attributes: everything but program, then the new program */
  drt_attr *na = drt_arena_alloc_array(g->arena, (size_t)n->num_attrs + 1, sizeof(drt_attr));
  if (!na) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "LoRA program");
  int m = 0;
  for (int i = 0; i < n->num_attrs; i++)
    if (strcmp(n->attrs[i].name, "program") != 0) na[m++] = n->attrs[i];
  na[m++] = attr_ints("program", code, k);
  n->attrs = na;
  n->num_attrs = m;
  return DRT_OK;
}

/* Rewrites one GEMM / convolution reading the adapted constant C (at input 1). `c_is_wt`: C holds
 * W^T ([in, out]) rather than W. Appends the branch nodes to g->nodes and returns them. */
static drt_status rewrite_site(drt_graph *g, drt_node *n, const branch *b, bool c_is_wt, drt_node **new_nodes,
                               int *num_new, drt_value **tmp_vals, int *num_tmp) {
  char d[256], name[512];
  const drt_lora_target *t0 = b->t0;
  int64_t out = t0->param_shape.dims[0], kk = drt_shape_numel(&t0->param_shape) / out;
  drt_node base = n->op == DRT_OP_FUSED_GEMM || n->op == DRT_OP_FUSED_CONV ? drt_fused_base_node(n) : *n;
  bool conv = base.op == DRT_OP_CONV;
  drt_status st = DRT_OK;
  double alpha = 1.0;
  if (!conv) {
    bool gemm = base.op == DRT_OP_GEMM;
    int64_t ta = gemm ? drt_node_attr_int(n, "transA", 0) : 0, tb = gemm ? drt_node_attr_int(n, "transB", 0) : 0;
    alpha = gemm ? drt_node_attr_float(n, "alpha", 1.0f) : 1.0;
    if (base.op != DRT_OP_MATMUL && !gemm)
      return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "%s reads the adapted weight", drt_node_describe(n, d, sizeof d));
    if (ta) return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "%s: transA is not supported", drt_node_describe(n, d, sizeof d));
    if ((tb != 0) == c_is_wt || t0->param_shape.rank != 2)
      return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "%s does not read the adapted weight as a linear layer's",
                       drt_node_describe(n, d, sizeof d));
    if (n->op == DRT_OP_GEMM && n->num_inputs > 2 && n->inputs[2] && drt_node_attr_float(n, "beta", 1.0f) != 1.0f)
      return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "%s: beta != 1", drt_node_describe(n, d, sizeof d));
  } else {
    if (drt_node_attr_int(n, "group", 1) != 1 || t0->param_shape.rank != 4 || c_is_wt)
      return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "%s: only ungrouped 2-D convolutions take unmerged LoRAs",
                       drt_node_describe(n, d, sizeof d));
  }
  drt_value *x = n->inputs[0];
  drt_value *tval = NULL, *dval = NULL;
  int r = b->rank;
  float *buf = malloc((size_t)(r * (kk > out ? kk : out)) * sizeof(float) + 4);
  if (!buf) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "LoRA branch");
  if (!conv) {
    /* Dt [K, r] = down^T, Ut [r, out] = (alpha * up)^T */
    for (int64_t q = 0; q < r; q++)
      for (int64_t c = 0; c < kk; c++) buf[c * r + q] = b->down[q * kk + c];
    drt_shape sd = {2, {kk, r}}, su = {2, {r, out}};
    snprintf(name, sizeof name, "%s/lora_down_t", n->name);
    drt_value *dt = new_const(g, name, &sd, buf, &st);
    if (!st) {
      for (int64_t q = 0; q < r; q++)
        for (int64_t o = 0; o < out; o++) buf[q * out + o] = (float)(alpha * b->up[o * r + q]);
      snprintf(name, sizeof name, "%s/lora_up_t", n->name);
      drt_value *ut = new_const(g, name, &su, buf, &st);
      if (!st) {
        drt_value *in1[2] = {x, dt};
        snprintf(name, sizeof name, "%s/lora_t", n->name);
        st = add_node(g, DRT_OP_MATMUL, name, in1, 2, &tval, NULL, 0, n->opset);
        if (!st) {
          drt_value *in2[2] = {tval, ut};
          snprintf(name, sizeof name, "%s/lora_d", n->name);
          st = add_node(g, DRT_OP_MATMUL, name, in2, 2, &dval, NULL, 0, n->opset);
        }
      }
    }
  } else {
    drt_shape sd = t0->param_shape, su = {4, {out, r, 1, 1}};
    sd.dims[0] = r;
    snprintf(name, sizeof name, "%s/lora_down", n->name);
    drt_value *dw = new_const(g, name, &sd, b->down, &st);
    if (!st) {
      snprintf(name, sizeof name, "%s/lora_up", n->name);
      drt_value *uw = new_const(g, name, &su, b->up, &st);
      /* the first convolution has the adapted one's geometry; the second is 1x1 */
      drt_attr ca[8];
      int nca = 0;
      static const char *geo[] = {"strides", "pads", "dilations", "auto_pad", "kernel_shape"};
      for (int i = 0; i < n->num_attrs && nca < 8; i++)
        for (size_t q = 0; q < sizeof geo / sizeof geo[0]; q++)
          if (strcmp(n->attrs[i].name, geo[q]) == 0) ca[nca++] = n->attrs[i];
      if (!st) {
        drt_value *in1[2] = {x, dw};
        snprintf(name, sizeof name, "%s/lora_t", n->name);
        st = add_node(g, DRT_OP_CONV, name, in1, 2, &tval, ca, nca, n->opset);
      }
      if (!st) {
        drt_value *in2[2] = {tval, uw};
        snprintf(name, sizeof name, "%s/lora_d", n->name);
        st = add_node(g, DRT_OP_CONV, name, in2, 2, &dval, NULL, 0, n->opset);
      }
    }
  }
  free(buf);
  if (st) return st;
  new_nodes[(*num_new)++] = tval->producer;
  new_nodes[(*num_new)++] = dval->producer;
  tmp_vals[(*num_tmp)++] = tval;
  tmp_vals[(*num_tmp)++] = dval;
  /* the node becomes (or stays) fused, with d as one more epilogue input */
  int first_extra = conv ? 3 : 2;
  const drt_value *bias = NULL;
  int nin = n->num_inputs;
  if (n->op == DRT_OP_GEMM) {
    bias = nin > 2 ? n->inputs[2] : NULL;
  } else if (n->op == DRT_OP_CONV) {
    first_extra = 3;
  }
  int prog_inputs = n->op == DRT_OP_FUSED_GEMM || n->op == DRT_OP_FUSED_CONV ? 1 + (nin > first_extra ? nin - first_extra : 0)
                                                                           : (bias ? 2 : 1);
  DRT_RETURN_IF_ERROR(extend_program(g, n, prog_inputs, bias));
  int new_nin = (nin > first_extra ? nin : first_extra) + 1;
  if (n->op == DRT_OP_GEMM) new_nin = bias ? 4 : 3;
  drt_value **ins = drt_arena_alloc_array(g->arena, (size_t)new_nin, sizeof *ins);
  if (!ins) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "LoRA branch");
  for (int i = 0; i < nin && i < new_nin; i++) ins[i] = n->inputs[i];
  if (n->op == DRT_OP_GEMM) {
    /* Gemm's bias becomes the first epilogue operand; beta (1) and its attribute go away */
    ins[2] = (drt_value *)bias;
    ins[bias ? 3 : 2] = dval;
    int m = 0;
    for (int i = 0; i < n->num_attrs; i++)
      if (strcmp(n->attrs[i].name, "beta") != 0) n->attrs[m++] = n->attrs[i];
    n->num_attrs = m;
    n->op = DRT_OP_FUSED_GEMM;
  } else {
    ins[new_nin - 1] = dval;
    if (n->op == DRT_OP_MATMUL) n->op = DRT_OP_FUSED_GEMM;
    if (n->op == DRT_OP_CONV) n->op = DRT_OP_FUSED_CONV;
  }
  n->inputs = ins;
  n->num_inputs = new_nin;
  DRT_RETURN_IF_ERROR_CTX(drt_infer_node(g, n), "LoRA on %s", drt_node_describe(n, d, sizeof d));
  return DRT_OK;
}

/* Byte-for-byte copies of candidate `cand` (passes copy constants into hoisted stages). */
static int copies_of(const drt_plan_provenance *p, uint32_t cand, bool transposed, const char **names, bool *tr,
                     int n, int max) {
  for (size_t k = 0; k < p->num_derived; k++) {
    const drt_prov_derived *d = &p->derived[k];
    if (d->kind != DRT_DERIVE_BYTES || !d->target.value) continue;
    for (uint32_t q = 0; q < d->num_candidates; q++)
      if (d->candidates[q] == cand && n < max) {
        names[n] = d->target.value->name;
        tr[n++] = transposed;
        break;
      }
  }
  return n;
}

/* Plan constants holding the source, its 2-D transpose, its float32 widening (pass half-promote),
 * or byte copies of these, by name. */
static int constants_of(const drt_plan_provenance *p, const char *source, const char **names, bool *transposed,
                        int max) {
  const drt_graph *tg = p->trace;
  int n = 0;
  for (size_t i = 0; i < tg->num_inputs; i++) {
    if (strcmp(tg->inputs[i]->name, source) != 0) continue;
    if (p->sources[i].target.value && n < max) {
      names[n] = p->sources[i].target.value->name;
      transposed[n++] = false;
    }
    n = copies_of(p, DRT_PROV_CAND_SOURCE | (uint32_t)i, false, names, transposed, n, max);
    int64_t w = drt_provenance_widened_target(p, i);
    if (w >= 0 && p->targets[w].value && n < max) {
      names[n] = p->targets[w].value->name;
      transposed[n++] = false;
    }
    if (w >= 0) n = copies_of(p, (uint32_t)w, false, names, transposed, n, max);
    for (size_t k = 0; k < tg->num_nodes; k++) {
      const drt_node *nd = tg->nodes[k];
      if (nd->op != DRT_OP_TRANSPOSE || nd->num_inputs < 1 || nd->inputs[0] != tg->inputs[i] ||
          tg->inputs[i]->shape.rank != 2)
        continue;
      for (size_t o = 0; o < tg->num_outputs; o++) {
        if (tg->outputs[o] != nd->outputs[0]) continue;
        if (p->targets[o].value && n < max) {
          names[n] = p->targets[o].value->name;
          transposed[n++] = true;
        }
        n = copies_of(p, (uint32_t)o, true, names, transposed, n, max);
      }
    }
  }
  return n;
}

static drt_status rewrite_graph(drt_graph *g, const drt_plan_provenance *p, const struct drt_lora *const *loras,
                                 const float *strengths, int n, size_t *found_per_branch);

drt_status drt_lora_rewrite(drt_graph *const *graphs, size_t num_graphs, const drt_plan_provenance *p,
                            const struct drt_lora *const *loras, const float *strengths, int n) {
  if (!p) return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "the plan records no weight provenance: recompile it for LoRAs");
  size_t total = 0;
  for (int i = 0; i < n; i++) total += loras[i]->num_targets;
  size_t *found = calloc(total + 1, sizeof *found);
  if (!found) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "LoRA");
  drt_status st = DRT_OK;
  for (size_t k = 0; k < num_graphs && !st; k++) st = rewrite_graph(graphs[k], p, loras, strengths, n, found);
  /* every adapted weight has a reader */
  size_t bi = 0;
  for (int i = 0; i < n && !st; i++)
    for (size_t k = 0; k < loras[i]->num_targets && !st; k++) {
      const drt_lora_target *t = &loras[i]->targets[k];
      bool first = true;
      for (int j = 0; j <= i && first; j++)
        for (size_t q = 0; q < loras[j]->num_targets && first; q++)
          if ((j < i || q < k) && strcmp(loras[j]->targets[q].source, t->source) == 0) first = false;
      if (!first) continue;
      if (!found[bi])
        st = DRT_ERROR(DRT_STATUS_UNSUPPORTED, "unmerged LoRA on '%s': no GEMM or convolution reads it directly (it "
                       "was folded into another constant): use merged mode", t->param);
      bi++;
    }
  free(found);
  return st;
}

static drt_status rewrite_graph(drt_graph *g, const drt_plan_provenance *p, const struct drt_lora *const *loras,
                                 const float *strengths, int n, size_t *found_per_branch) {
  /* branches: one per adapted source (in order of first appearance) */
  size_t total = 0;
  for (int i = 0; i < n; i++) total += loras[i]->num_targets;
  branch *br = calloc(total + 1, sizeof *br);
  drt_node **new_nodes = malloc((2 * g->num_nodes + 2) * sizeof *new_nodes);
  drt_node **sites = malloc((g->num_nodes + 1) * sizeof *sites);
  drt_value **tmp = malloc((2 * g->num_nodes + 2) * sizeof *tmp);
  int nb = 0, num_new = 0, num_sites = 0, num_tmp = 0;
  drt_status st = DRT_OK;
  if (!br || !new_nodes || !sites || !tmp) {
    st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "LoRA");
    goto done;
  }
  for (int i = 0; i < n && !st; i++) {
    for (size_t k = 0; k < loras[i]->num_targets && !st; k++) {
      const drt_lora_target *t = &loras[i]->targets[k];
      int bi = 0;
      while (bi < nb && strcmp(br[bi].t0->source, t->source) != 0) bi++;
      if (bi == nb) br[nb++].t0 = t;
      br[bi].rank += t->rank;
    }
  }
  for (int bi = 0; bi < nb && !st; bi++) {
    branch *b = &br[bi];
    int64_t out = b->t0->param_shape.dims[0], kk = drt_shape_numel(&b->t0->param_shape) / out;
    b->down = malloc((size_t)(b->rank * kk) * sizeof(float));
    b->up = malloc((size_t)(out * b->rank) * sizeof(float));
    if (!b->down || !b->up) {
      st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "LoRA");
      break;
    }
    int off = 0;
    for (int i = 0; i < n; i++)
      for (size_t k = 0; k < loras[i]->num_targets; k++) {
        const drt_lora_target *t = &loras[i]->targets[k];
        if (strcmp(t->source, b->t0->source) != 0) continue;
        memcpy(b->down + (size_t)off * kk, t->down, (size_t)(t->rank * kk) * sizeof(float));
        float f = strengths[i] * t->scale;
        for (int64_t o = 0; o < out; o++)
          for (int r = 0; r < t->rank; r++) b->up[o * b->rank + off + r] = f * t->up[o * t->rank + r];
        off += t->rank;
      }
    /* the GEMMs / convolutions that read the weight */
    const char *names[16];
    bool transposed[16];
    int nc = constants_of(p, b->t0->source, names, transposed, 16);
    int found = 0;
    for (int ci = 0; ci < nc && !st; ci++) {
      drt_value *c = drt_graph_find_value(g, names[ci]);
      if (!c || c->kind != DRT_VALUE_CONST) continue;
      bool c_is_wt = (b->t0->transform == DRT_WMAP_TRANSPOSE) != transposed[ci];
      size_t nn = g->num_nodes;
      for (size_t q = 0; q < nn && !st; q++) {
        drt_node *nd = g->nodes[q];
        for (int j = 0; j < nd->num_inputs && !st; j++) {
          if (nd->inputs[j] != c) continue;
          char d[256];
          if (j != 1) {
            st = DRT_ERROR(DRT_STATUS_UNSUPPORTED, "unmerged LoRA on '%s': %s reads it as input %d (use merged mode)",
                           b->t0->param, drt_node_describe(nd, d, sizeof d), j);
            break;
          }
          st = rewrite_site(g, nd, b, c_is_wt, new_nodes, &num_new, tmp, &num_tmp);
          if (st) st = drt_status_annotate(st, "unmerged LoRA on '%s' (use merged mode)", b->t0->param);
          sites[num_sites++] = nd;
          found++;
          break;
        }
      }
    }
    found_per_branch[bi] += (size_t)found;
  }
  if (st) goto done;
  /* order: each site's branch right before it */
  {
    drt_node **order = malloc((g->num_nodes + 1) * sizeof *order);
    if (!order) {
      st = DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "LoRA");
      goto done;
    }
    size_t k = 0, orig = g->num_nodes - (size_t)num_new;
    for (size_t i = 0; i < orig; i++) {
      drt_node *nd = g->nodes[i];
      for (int s = 0; s < num_sites; s++)
        if (sites[s] == nd) {
          order[k++] = new_nodes[2 * s];
          order[k++] = new_nodes[2 * s + 1];
        }
      order[k++] = nd;
    }
    memcpy(g->nodes, order, k * sizeof *order);
    free(order);
  }
  /* memory: the branch temporaries share one region after the planned arena (one site at a time) */
  if (g->mem_planned) {
    uint64_t region = 0;
    for (int s = 0; s < num_sites; s++) {
      drt_tensor a = {tmp[2 * s]->dtype, tmp[2 * s]->shape, NULL}, b2 = {tmp[2 * s + 1]->dtype, tmp[2 * s + 1]->shape, NULL};
      uint64_t ta = (drt_tensor_nbytes(&a) + 63) & ~(uint64_t)63, tb = (drt_tensor_nbytes(&b2) + 63) & ~(uint64_t)63;
      tmp[2 * s]->mem_offset = (int64_t)((g->mem_arena_bytes + 63) & ~(uint64_t)63);
      tmp[2 * s + 1]->mem_offset = tmp[2 * s]->mem_offset + (int64_t)ta;
      if (ta + tb > region) region = ta + tb;
    }
    g->mem_arena_bytes = ((g->mem_arena_bytes + 63) & ~(uint64_t)63) + region;
  }
  st = drt_graph_verify(g, true);
done:
  for (int bi = 0; br && bi < nb; bi++) {
    free(br[bi].down);
    free(br[bi].up);
  }
  free(br);
  free(new_nodes);
  free(sites);
  free(tmp);
  return st;
}

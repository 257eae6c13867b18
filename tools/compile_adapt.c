#include "tools/compile_adapt.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "passes/canonicalize.h"
#include "passes/half_promote.h"
#include "runtime/npy.h"
#include "runtime/safetensors.h"

const char *drt_compile_adapt_usage(void) {
  return "--weights-map CKPT.safetensors records, for each model constant, the checkpoint parameter with the\n"
         "same content (also transposed, also across dtype casts), so that `drt refit --weights CKPT` and LoRA\n"
         "files can name parameters as the checkpoint does. Every plan records where its constants come from\n"
         "(folds, fusions), so `drt refit` replaces its weights without recompiling.\n"
         "--shapes \"NAME=DIMS,DIMS,...\" (repeatable, or several NAME=... separated by ';') compiles one shape\n"
         "bucket per DIMS (a dim may be a range A..B): one plan, weights stored once, a graph and memory plan\n"
         "per bucket; the runtime picks the bucket from the inputs. Inputs listed with one DIMS keep it in every\n"
         "bucket. Hoisting is off in plans with buckets.\n"
         "--add-bucket EXISTING.plan adds the shapes given with --shape as one more bucket of EXISTING.plan\n"
         "(compiled from the same model), reusing its stored weights; -o names the result.\n";
}

/* Expands one DIMS item with optional ranges ("1..4x4x16x16") into shapes. */
static int expand_dims(const char *item, drt_shape *out, int max, char *err, size_t errn) {
  char buf[256];
  size_t len = strlen(item);
  if (len >= sizeof buf) {
    snprintf(err, errn, "a shape of %zu characters is too long", len);
    return -1;
  }
  int64_t lo[DRT_MAX_RANK], hi[DRT_MAX_RANK];
  int rank = 0;
  memcpy(buf, item, len + 1);
  for (char *save = NULL, *tok = strtok_r(buf, "xX", &save); tok; tok = strtok_r(NULL, "xX", &save)) {
    if (rank >= DRT_MAX_RANK) {
      snprintf(err, errn, "'%s' has more than %d dims", item, DRT_MAX_RANK);
      return -1;
    }
    char *end;
    errno = 0;
    long long a = strtoll(tok, &end, 10), b = a;
    if (end != tok && strncmp(end, "..", 2) == 0) {
      char *e2;
      b = strtoll(end + 2, &e2, 10);
      if (e2 == end + 2) end = e2 - 1; /* malformed: caught below */
      else end = e2;
    }
    if (end == tok || *end || errno || a < 0 || b < a) {
      snprintf(err, errn, "bad dims '%s': expected dims like 1x4x64x64 or 1..4x4x64x64", item);
      return -1;
    }
    lo[rank] = a;
    hi[rank++] = b;
  }
  int n = 0;
  int64_t cur[DRT_MAX_RANK];
  memcpy(cur, lo, sizeof cur);
  for (;;) {
    if (n >= max) {
      snprintf(err, errn, "'%s' gives more than %d buckets", item, max);
      return -1;
    }
    out[n].rank = rank;
    for (int d = 0; d < rank; d++) out[n].dims[d] = cur[d];
    n++;
    int d = rank - 1;
    while (d >= 0 && cur[d] == hi[d]) cur[d--] = 0;
    if (d < 0) break;
    for (int k = d + 1; k < rank; k++) cur[k] = lo[k];
    cur[d]++;
  }
  return n;
}

/* One "NAME=DIMS,DIMS,..." into input slot j of the bucket table. */
static int add_shapes_spec(drt_compile_adapt *a, const char *spec) {
  char name[256];
  const char *dims;
  if (!drt_cli_split_kv(spec, name, sizeof name, &dims))
    return -drt_cli_usage_error("compile", "--shapes expects NAME=DIMS,DIMS,..., got '%s'", spec);
  if (a->num_bucket_inputs >= DRT_MAX_BUCKET_INPUTS)
    return -drt_cli_usage_error("compile", "--shapes: at most %d inputs", DRT_MAX_BUCKET_INPUTS);
  drt_shape list[DRT_MAX_BUCKETS];
  int n = 0;
  char buf[1024], err[256];
  snprintf(buf, sizeof buf, "%s", dims);
  for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
    int k = expand_dims(tok, list + n, DRT_MAX_BUCKETS - n, err, sizeof err);
    if (k < 0) return -drt_cli_usage_error("compile", "--shapes %s: %s", name, err);
    n += k;
  }
  if (n == 0) return -drt_cli_usage_error("compile", "--shapes %s: no shapes", name);
  int j = a->num_bucket_inputs++;
  for (int b = 0; b < n; b++) {
    snprintf(a->buckets[b][j].name, sizeof a->buckets[b][j].name, "%s", name);
    a->buckets[b][j].shape = list[b];
  }
  a->bucket_counts[j] = n;
  return 1;
}

int drt_compile_adapt_option(drt_compile_adapt *a, int argc, char **argv, int *i) {
  const char *v;
  int err = 0;
  if (drt_cli_opt(argc, argv, i, "--weights-map", &v, &err)) {
    if (err) return -DRT_EXIT_USAGE;
    a->weights_map = v;
    return 1;
  }
  if (drt_cli_opt(argc, argv, i, "--add-bucket", &v, &err)) {
    if (err) return -DRT_EXIT_USAGE;
    a->add_bucket = v;
    return 1;
  }
  if (drt_cli_opt(argc, argv, i, "--shapes", &v, &err)) {
    if (err) return -DRT_EXIT_USAGE;
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", v);
    for (char *save = NULL, *tok = strtok_r(buf, ";", &save); tok; tok = strtok_r(NULL, ";", &save)) {
      int rc = add_shapes_spec(a, tok);
      if (rc < 0) return rc;
    }
    return 1;
  }
  return 0;
}

static drt_status bind_bucket(drt_compile_adapt *a, drt_graph *g, int b) {
  for (int j = 0; j < a->num_bucket_inputs; j++)
    DRT_RETURN_IF_ERROR_CTX(drt_graph_bind_input(g, a->buckets[b][j].name, &a->buckets[b][j].shape), "--shapes %s",
                            a->buckets[b][j].name);
  return DRT_OK;
}

/* The bucket table once every --shapes was read: lists of one shape apply to every bucket. */
static drt_status finish_buckets(drt_compile_adapt *a) {
  int nb = 0;
  for (int j = 0; j < a->num_bucket_inputs; j++)
    if (a->bucket_counts[j] > nb) nb = a->bucket_counts[j];
  for (int j = 0; j < a->num_bucket_inputs; j++) {
    if (a->bucket_counts[j] != 1 && a->bucket_counts[j] != nb)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "--shapes %s gives %d shapes, another input %d",
                       a->buckets[0][j].name, a->bucket_counts[j], nb);
    for (int b = a->bucket_counts[j]; b < nb; b++) a->buckets[b][j] = a->buckets[0][j];
  }
  a->num_buckets = nb;
  return DRT_OK;
}

drt_status drt_compile_adapt_loaded(drt_compile_adapt *a, drt_graph *g) {
  drt_weight_trace_destroy(a->trace);
  a->trace = NULL;
  DRT_RETURN_IF_ERROR(finish_buckets(a));
  if (a->add_bucket && a->num_buckets > 1)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "--add-bucket adds one bucket: give its shapes with --shape");
  if (a->add_bucket && !a->have_existing) {
    void *bytes;
    size_t size;
    DRT_RETURN_IF_ERROR_CTX(drt_read_file(a->add_bucket, 0, &bytes, &size), "--add-bucket");
    DRT_RETURN_IF_ERROR_CTX(drt_plan_parse(bytes, size, a->add_bucket, &a->existing), "--add-bucket");
    a->have_existing = true;
    if (a->existing.num_stages)
      return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "--add-bucket %s: the plan has hoisted stages, which serve one shape; "
                       "recompile it with --disable-pass hoist (or with --shapes)", a->add_bucket);
    if (a->existing.num_buckets >= DRT_MAX_BUCKETS)
      return DRT_ERROR(DRT_STATUS_UNSUPPORTED, "--add-bucket %s: the plan already has %u buckets", a->add_bucket,
                       a->existing.num_buckets);
  }
  DRT_RETURN_IF_ERROR(drt_weight_trace_begin(g, &a->trace));
  if (a->num_buckets > 0) DRT_RETURN_IF_ERROR(bind_bucket(a, g, 0));
  return DRT_OK;
}

drt_status drt_compile_adapt_pipeline(drt_compile_adapt *a, drt_pipeline_options *po) {
  if (a->num_buckets <= 1 && !a->add_bucket) return DRT_OK;
  for (int i = 0; i < po->num_disabled; i++)
    if (strcmp(po->disabled[i], "hoist") == 0) return DRT_OK;
  if (po->num_disabled >= DRT_PASS_MAX_NAMED) return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "too many --disable-pass");
  po->disabled[po->num_disabled++] = "hoist";
  return DRT_OK;
}

static drt_status same_signature(const drt_graph *a, const drt_graph *b, const char *what) {
  if (a->num_inputs != b->num_inputs || a->num_outputs != b->num_outputs)
    return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "%s has %zu inputs and %zu outputs, bucket 0 %zu and %zu", what,
                     b->num_inputs, b->num_outputs, a->num_inputs, a->num_outputs);
  for (int list = 0; list < 2; list++) {
    size_t n = list ? a->num_outputs : a->num_inputs;
    for (size_t i = 0; i < n; i++) {
      const drt_value *x = list ? a->outputs[i] : a->inputs[i], *y = list ? b->outputs[i] : b->inputs[i];
      if (strcmp(x->name, y->name) != 0 || x->dtype != y->dtype || x->shape.rank != y->shape.rank)
        return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "%s: %s %zu is '%s' %s rank %d, in bucket 0 '%s' %s rank %d",
                         what, list ? "output" : "input", i, y->name, drt_dtype_name(y->dtype), y->shape.rank, x->name,
                         drt_dtype_name(x->dtype), x->shape.rank);
    }
  }
  return DRT_OK;
}

drt_status drt_compile_adapt_buckets(drt_compile_adapt *a, const char *model, const drt_onnx_options *oo,
                                     const drt_cli_shape *shapes, int num_shapes, const drt_pass_ctx *pc,
                                     const drt_pipeline_options *po) {
  for (int b = 1; b < a->num_buckets; b++) {
    drt_graph *g = NULL;
    drt_weight_trace *tr = NULL;
    drt_pass_results res;
    memset(&res, 0, sizeof res);
    drt_status st = drt_onnx_load_file(model, oo, &g);
    if (!st && !drt_pipeline_disabled(po, "half-promote")) st = drt_half_promote(g);
    if (!st) st = drt_weight_trace_begin(g, &tr);
    if (!st) st = bind_bucket(a, g, b);
    for (int i = 0; i < num_shapes && !st; i++) {
      bool is_input = false;
      for (size_t k = 0; k < g->num_inputs; k++) is_input |= strcmp(g->inputs[k]->name, shapes[i].name) == 0;
      if (is_input) st = drt_graph_bind_input(g, shapes[i].name, &shapes[i].shape);
      else if (shapes[i].shape.rank == 1) st = drt_graph_bind_dim(g, shapes[i].name, shapes[i].shape.dims[0]);
    }
    if (!st) {
      drt_pass_ctx bpc = *pc;
      bpc.stats = NULL;
      bpc.results = &res;
      drt_pipeline_options bpo = *po;
      bpo.verbose = false;
      bpo.dump_after = NULL;
      st = drt_pipeline_run(g, &bpc, &bpo);
    }
    if (!st) st = drt_graph_verify(g, true);
    if (!st) st = drt_weight_trace_finish(tr, g, NULL, 0, (uint32_t)b, &a->bucket_prov[b]);
    drt_weight_trace_destroy(tr);
    drt_pass_results_free(&res);
    if (st) {
      drt_graph_destroy(g);
      return drt_status_annotate(st, "shape bucket %d", b);
    }
    a->bucket_graphs[b] = g;
  }
  return DRT_OK;
}

/* --weights-map: the map from the trace's sources. */
static drt_status build_map(drt_compile_adapt *a, drt_plan_contents *c) {
  drt_safetensors *ckpt = NULL;
  drt_named_tensor *src = NULL;
  size_t ns = 0;
  drt_status st = drt_safetensors_open_file(a->weights_map, 0, &ckpt);
  if (!st) st = drt_weight_trace_sources(a->trace, a->prov, &src, &ns);
  drt_weight_map_stats ms;
  if (!st) st = drt_weight_map_build(src, ns, ckpt, &a->map, &ms);
  if (!st) {
    c->weight_map = a->map;
    printf("  weights map: %zu of %zu model constants matched to parameters of %s (%zu by name, %zu transposed, %zu "
           "across a dtype cast, %zu ambiguous); %zu parameters unused\n",
           ms.matched, ns, a->weights_map, ms.by_name, ms.transposed, ms.cast, ms.ambiguous, ms.unused_params);
    if (ms.matched == 0)
      st = DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT,
                     "no parameter of the checkpoint has the content of a model constant (is it the checkpoint this "
                     "model was exported from?)");
  }
  free(src);
  drt_safetensors_close(ckpt);
  return st ? drt_status_annotate(st, "--weights-map %s", a->weights_map) : DRT_OK;
}

/* --add-bucket: the existing plan with g as its next bucket, serialized. */
static drt_status add_to_existing(drt_compile_adapt *a, drt_graph *g) {
  drt_plan_contents *e = &a->existing;
  uint32_t nb = e->num_buckets;
  DRT_RETURN_IF_ERROR(same_signature(e->graph, g, "the new bucket"));
  for (uint32_t b = 0; b < e->num_provenance; b++)
    if (e->provenance[b] && e->provenance[b]->fingerprint != a->prov->fingerprint)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "the plan was compiled from another model");
  for (uint32_t b = 0; b < nb; b++) {
    bool same = true;
    for (size_t i = 0; i < g->num_inputs && same; i++)
      same = drt_shape_equal(&g->inputs[i]->shape, &e->buckets[b]->inputs[i]->shape);
    if (same)
      return DRT_ERROR(DRT_STATUS_INVALID_ARGUMENT, "bucket %u already has these input shapes", b);
  }
  for (uint32_t b = 0; b < nb; b++) a->graph_list[b] = e->buckets[b];
  a->graph_list[nb] = g;
  for (uint32_t b = 0; b <= nb; b++) a->prov_list[b] = b < e->num_provenance ? e->provenance[b] : NULL;
  a->prov->bucket = nb;
  a->prov_list[nb] = a->prov;
  drt_plan_contents c = *e;
  c.buckets = a->graph_list;
  c.num_buckets = nb + 1;
  c.provenance = a->prov_list;
  c.num_provenance = nb + 1;
  if (a->map) c.weight_map = a->map;
  return drt_plan_serialize(&c, &a->out_bytes, &a->out_size);
}

drt_status drt_compile_adapt_compiled(drt_compile_adapt *a, const drt_graph *g, const drt_graph *const *extra,
                                      size_t num_extra, drt_plan_contents *c) {
  if (!a->trace) return DRT_OK;
  DRT_RETURN_IF_ERROR_CTX(drt_weight_trace_finish(a->trace, g, extra, num_extra, 0, &a->prov), "weight provenance");
  if (a->verbose)
    fprintf(stderr,
            "weights: %zu sources, %zu folded constants replayed by refit, %zu derived, %zu baked, %zu opaque\n",
            a->prov->trace->num_inputs, a->prov->trace->num_nodes, a->prov->num_derived, a->prov->num_baked,
            a->prov->num_opaque);
  if (a->weights_map) DRT_RETURN_IF_ERROR(build_map(a, c));
  if (a->add_bucket) return drt_status_annotate(add_to_existing(a, (drt_graph *)g), "--add-bucket %s", a->add_bucket);
  int nb = a->num_buckets > 1 ? a->num_buckets : 1;
  a->graph_list[0] = (drt_graph *)g;
  a->prov_list[0] = a->prov;
  for (int b = 1; b < nb; b++) {
    DRT_RETURN_IF_ERROR(same_signature(g, a->bucket_graphs[b], "shape bucket"));
    a->graph_list[b] = a->bucket_graphs[b];
    a->prov_list[b] = a->bucket_prov[b];
  }
  c->provenance = a->prov_list;
  c->num_provenance = (uint32_t)nb;
  if (nb > 1) {
    c->buckets = a->graph_list;
    c->num_buckets = (uint32_t)nb;
  }
  return DRT_OK;
}

static void print_bucket(int b, const drt_graph *g) {
  printf("    bucket %d:", b);
  for (size_t i = 0; i < g->num_inputs; i++) {
    char sh[128];
    printf(" %s %s", g->inputs[i]->name, drt_shape_str(&g->inputs[i]->shape, sh, sizeof sh));
  }
  printf("; activations %.2f MiB\n", (double)g->mem_arena_bytes / 1048576.0);
}

void drt_compile_adapt_report(const drt_compile_adapt *a, const drt_graph *g) {
  if (a->add_bucket && a->have_existing) {
    printf("  buckets:     %u (bucket %u added to %s; its weights reuse the stored ones)\n",
           a->existing.num_buckets + 1, a->existing.num_buckets, a->add_bucket);
    for (uint32_t b = 0; b < a->existing.num_buckets; b++) print_bucket((int)b, a->existing.buckets[b]);
    print_bucket((int)a->existing.num_buckets, g);
    return;
  }
  if (a->num_buckets <= 1) return;
  printf("  buckets:     %d (weights stored once)\n", a->num_buckets);
  print_bucket(0, g);
  for (int b = 1; b < a->num_buckets; b++) print_bucket(b, a->bucket_graphs[b]);
}

void drt_compile_adapt_free(drt_compile_adapt *a) {
  if (!a) return;
  drt_weight_trace_destroy(a->trace);
  drt_provenance_destroy(a->prov);
  drt_weight_map_destroy(a->map);
  for (int b = 0; b < DRT_MAX_BUCKETS; b++) {
    drt_graph_destroy(a->bucket_graphs[b]);
    drt_provenance_destroy(a->bucket_prov[b]);
    a->bucket_graphs[b] = NULL;
    a->bucket_prov[b] = NULL;
  }
  if (a->have_existing) drt_plan_contents_free(&a->existing);
  a->have_existing = false;
  free(a->out_bytes);
  a->out_bytes = NULL;
  a->trace = NULL;
  a->prov = NULL;
  a->map = NULL;
}

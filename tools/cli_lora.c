#include "tools/cli_lora.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *drt_cli_lora_usage(void) {
  return "--lora FILE[:STRENGTH] applies a LoRA (.safetensors; kohya, diffusers/PEFT layouts; strength 1 by default;\n"
         "repeat to stack). --lora-mode merged (default) adds them to the weights once; unmerged keeps the weights\n"
         "and adds the low-rank products in the fused GEMM/conv epilogues. Keys that match no weight are listed.\n";
}

int drt_cli_lora_option(drt_cli_loras *l, const char *cmd, int argc, char **argv, int *i) {
  const char *v;
  int err = 0;
  if (drt_cli_opt(argc, argv, i, "--lora", &v, &err)) {
    if (err) return -DRT_EXIT_USAGE;
    if (l->count >= DRT_CLI_MAX_LORAS) return -drt_cli_usage_error(cmd, "at most %d --lora", DRT_CLI_MAX_LORAS);
    float s = 1.0f;
    const char *colon = strrchr(v, ':');
    if (colon && colon[1]) {
      char *end;
      double d = strtod(colon + 1, &end);
      if (!*end) {
        if (!isfinite(d)) return -drt_cli_usage_error(cmd, "--lora %s: strength must be finite", v);
        s = (float)d;
        char *f = malloc((size_t)(colon - v) + 1);
        if (!f) return -DRT_EXIT_INTERNAL;
        memcpy(f, v, (size_t)(colon - v));
        f[colon - v] = 0;
        l->owned[l->count] = f;
        v = f;
      }
    }
    l->files[l->count] = v;
    l->strengths[l->count++] = s;
    return 1;
  }
  if (drt_cli_opt(argc, argv, i, "--lora-mode", &v, &err)) {
    if (err) return -DRT_EXIT_USAGE;
    if (strcmp(v, "merged") == 0) l->unmerged = false;
    else if (strcmp(v, "unmerged") == 0) l->unmerged = true;
    else return -drt_cli_usage_error(cmd, "--lora-mode must be merged or unmerged, got '%s'", v);
    return 1;
  }
  return 0;
}

int drt_cli_loras_load(drt_cli_loras *l, const char *cmd, drt_plan *p) {
  for (int i = 0; i < l->count; i++) {
    if (drt_lora_load_file(p, l->files[i], &l->loaded[i]) != DRT_STATUS_OK) {
      fprintf(stderr, "drt %s: error: --lora %s: %s\n", cmd, l->files[i], drt_last_error());
      return DRT_EXIT_BAD_INPUT;
    }
    int nu = drt_lora_num_unknown_keys(l->loaded[i]);
    fprintf(stderr, "lora %s: %d weights at strength %g (%s)%s\n", l->files[i], drt_lora_num_targets(l->loaded[i]),
            (double)l->strengths[i], l->unmerged ? "unmerged" : "merged", nu ? "; keys that match no weight:" : "");
    for (int k = 0; k < nu; k++) fprintf(stderr, "  %s\n", drt_lora_unknown_key(l->loaded[i], k));
  }
  if (l->count && !l->unmerged &&
      drt_plan_set_loras(p, (const drt_lora *const *)l->loaded, l->strengths, l->count) != DRT_STATUS_OK) {
    fprintf(stderr, "drt %s: error: %s\n", cmd, drt_last_error());
    return DRT_EXIT_BAD_INPUT;
  }
  return 0;
}

int drt_cli_loras_session(drt_cli_loras *l, const char *cmd, drt_session *s) {
  if (!l->count || !l->unmerged) return 0;
  if (drt_session_set_loras(s, (const drt_lora *const *)l->loaded, l->strengths, l->count) != DRT_STATUS_OK) {
    fprintf(stderr, "drt %s: error: %s\n", cmd, drt_last_error());
    return DRT_EXIT_UNSUPPORTED;
  }
  return 0;
}

void drt_cli_loras_free(drt_cli_loras *l) {
  for (int i = 0; i < l->count; i++) {
    drt_lora_destroy(l->loaded[i]);
    l->loaded[i] = NULL;
    free(l->owned[i]);
    l->owned[i] = NULL;
  }
}

/* CPU kernel for TfIdfVectorizer (text featurization over integer token ids).
 *
 * As onnx/reference/ops/op_tfidf_vectorizer.py (the onnxruntime algorithm): the pool holds the
 * n-grams of each size in turn (ngram_counts gives where each size starts); every n-gram gets an
 * id in pool order, and only those with min_gram_length <= n <= max_gram_length are looked for.
 * In each row, for every skip distance 1..max_skip_count + 1 and every start, the tokens start,
 * start + d, start + 2d, ... are matched against the pool for n = 1, 2, ... (a longer n-gram can
 * only match when its prefix path exists, which holds whenever it matches exactly); unigrams
 * are counted at the first skip distance only. TF writes the counts, IDF the weight (or 1) of
 * every column counted at least once, TFIDF the weight times the count. */
#include <stdlib.h>
#include <string.h>

#include "runtime/cpu/cpu.h"

typedef struct ngram {
  int64_t n, at, id; /* size, offset in the pool, id (1-based, pool order) */
} ngram;

static drt_status k_tfidf(drt_cpu_ctx *ctx, const drt_node *n, const drt_tensor *in, drt_tensor *out) {
  (void)ctx;
  const drt_tensor *x = &in[0];
  int64_t np = 0, nc = 0, ni = 0, nw = 0;
  const int64_t *pool = drt_node_attr_ints(n, "pool_int64s", &np), *counts = drt_node_attr_ints(n, "ngram_counts", &nc),
                *idx = drt_node_attr_ints(n, "ngram_indexes", &ni);
  const float *w = drt_node_attr_floats(n, "weights", &nw);
  int64_t mn = drt_node_attr_int(n, "min_gram_length", 1), mx = drt_node_attr_int(n, "max_gram_length", 1);
  int64_t skip = drt_node_attr_int(n, "max_skip_count", 0);
  const char *mode = drt_node_attr_string(n, "mode", "TF");
  int64_t rows = x->shape.rank == 2 ? x->shape.dims[0] : 1, C = x->shape.rank == 0 ? 1 : x->shape.dims[x->shape.rank - 1];
  int64_t outc = out[0].shape.dims[out[0].shape.rank - 1];
  ngram *grams = malloc(((size_t)np + 1) * sizeof *grams);
  int64_t *freq = calloc((size_t)(rows * outc) + 1, sizeof *freq);
  if (!grams || !freq) {
    free(grams);
    free(freq);
    return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "TfIdfVectorizer");
  }
  int64_t ng = 0, id = 1;
  for (int64_t s = 0; s < nc; s++) {
    int64_t size = s + 1, b = counts[s], e = s + 1 < nc ? counts[s + 1] : np;
    for (int64_t at = b; at + size <= e; at += size, id++)
      if (size >= mn && size <= mx) grams[ng++] = (ngram){size, at, id};
  }
  for (int64_t r = 0; r < rows; r++) {
    int64_t start_n = mn;
    for (int64_t d = 1; d <= skip + 1; d++) {
      for (int64_t st = 0; st < C; st++) {
        if (st + d * (start_n - 1) >= C) break;
        for (int64_t len = 1; len <= mx && st + (len - 1) * d < C; len++) {
          if (len < start_n) continue;
          /* the last pool n-gram of this size equal to the tokens (a repeated one keeps the last id) */
          int64_t hit = 0;
          for (int64_t g = 0; g < ng; g++) {
            if (grams[g].n != len) continue;
            bool eq = true;
            for (int64_t k = 0; k < len && eq; k++)
              eq = drt_load_i64(x->dtype, x->data, (size_t)(r * C + st + k * d)) == pool[grams[g].at + k];
            if (eq) hit = grams[g].id;
          }
          if (hit && hit - 1 < ni) freq[r * outc + idx[hit - 1]]++;
        }
      }
      if (start_n == 1) { /* unigrams once: they do not depend on the skip distance */
        start_n = 2;
        if (start_n > mx) break;
      }
    }
  }
  float *y = out[0].data;
  bool tf = !strcmp(mode, "TF"), idf = !strcmp(mode, "IDF");
  for (int64_t p = 0; p < rows * outc; p++) {
    float wt = nw ? w[p % outc] : 1.0f;
    y[p] = tf ? (float)freq[p] : idf ? (freq[p] > 0 ? wt : 0.0f) : wt * (float)freq[p];
  }
  free(grams);
  free(freq);
  return DRT_OK;
}

const drt_cpu_kernel_entry drt_cpu_kernels_text[] = {
    {DRT_OP_TFIDF_VECTORIZER, k_tfidf, 0},
    {DRT_OP_COUNT_, NULL, 0},
};

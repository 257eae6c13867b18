#include "ir/arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK_SIZE (64 * 1024)
#define BIG_THRESHOLD (4 * 1024)

typedef struct block {
  struct block *next;
  size_t size, used;
  /* data follows, aligned */
} block;

struct drt_arena {
  block *chunks; /* current chunk first */
  block *bigs;
  size_t total;
};

drt_arena *drt_arena_create(void) { return calloc(1, sizeof(drt_arena)); }

static void free_list(block *b) {
  while (b) {
    block *n = b->next;
    free(b);
    b = n;
  }
}

void drt_arena_destroy(drt_arena *a) {
  if (!a) return;
  free_list(a->chunks);
  free_list(a->bigs);
  free(a);
}

#define HDR ((sizeof(block) + 63) & ~(size_t)63)

void *drt_arena_alloc(drt_arena *a, size_t size) {
  if (!a) return NULL;
  if (size == 0) size = 1;
  if (size > SIZE_MAX - HDR - 64) return NULL;
  if (size >= BIG_THRESHOLD) {
    block *b;
    if (posix_memalign((void **)&b, 64, HDR + size) != 0) return NULL;
    memset((char *)b + HDR, 0, size);
    b->size = size;
    b->used = size;
    b->next = a->bigs;
    a->bigs = b;
    a->total += size;
    return (char *)b + HDR;
  }
  size_t aligned = (size + 15) & ~(size_t)15;
  block *c = a->chunks;
  if (!c || c->used + aligned > c->size) {
    c = malloc(HDR + CHUNK_SIZE);
    if (!c) return NULL;
    c->size = CHUNK_SIZE;
    c->used = 0;
    c->next = a->chunks;
    a->chunks = c;
    a->total += CHUNK_SIZE;
  }
  void *p = (char *)c + HDR + c->used;
  c->used += aligned;
  memset(p, 0, size);
  return p;
}

void *drt_arena_alloc_array(drt_arena *a, size_t count, size_t elem_size) {
  if (elem_size && count > SIZE_MAX / elem_size) return NULL;
  return drt_arena_alloc(a, count * elem_size);
}

char *drt_arena_strndup(drt_arena *a, const char *s, size_t n) {
  char *d = drt_arena_alloc(a, n + 1);
  if (!d) return NULL;
  memcpy(d, s, n);
  d[n] = 0;
  return d;
}

char *drt_arena_strdup(drt_arena *a, const char *s) { return drt_arena_strndup(a, s ? s : "", s ? strlen(s) : 0); }

size_t drt_arena_bytes(const drt_arena *a) { return a ? a->total : 0; }

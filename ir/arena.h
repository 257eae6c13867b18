/* Arena: every value, node, attribute and constant of a graph is allocated here and freed
 * together by drt_arena_destroy. Small objects are bump-allocated from chunks; large blocks
 * (constant data) get their own allocation, tracked so they are freed with the arena. */
#ifndef DRT_IR_ARENA_H
#define DRT_IR_ARENA_H

#include <stddef.h>

typedef struct drt_arena drt_arena;

drt_arena *drt_arena_create(void);
void drt_arena_destroy(drt_arena *a); /* NULL-safe */
/* Zero-initialized, 16-byte aligned (64-byte for blocks >= 4 KiB). NULL on OOM or size overflow. */
void *drt_arena_alloc(drt_arena *a, size_t size);
void *drt_arena_alloc_array(drt_arena *a, size_t count, size_t elem_size);
char *drt_arena_strdup(drt_arena *a, const char *s);
char *drt_arena_strndup(drt_arena *a, const char *s, size_t n);
size_t drt_arena_bytes(const drt_arena *a); /* total bytes held */

#endif

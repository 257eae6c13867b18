/* A small persistent thread pool for drt_parallel_for: workers wait on a condition variable,
 * take chunk indices from an atomic counter, and the caller participates. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "runtime/cpu/cpu.h"

struct drt_threadpool {
  int num_workers;
  pthread_t *threads;
  pthread_mutex_t mu;
  pthread_cond_t cv_work, cv_done;
  uint64_t generation;
  bool shutdown;
  /* current job */
  drt_range_fn fn;
  void *arg;
  int64_t n, chunk, num_chunks;
  atomic_int_fast64_t next;
  int active; /* workers still running the current job */
};

static void run_chunks(drt_threadpool *p) {
  for (;;) {
    int64_t c = atomic_fetch_add(&p->next, 1);
    if (c >= p->num_chunks) break;
    int64_t b = c * p->chunk, e = b + p->chunk;
    if (e > p->n) e = p->n;
    p->fn(p->arg, b, e);
  }
}

static void *worker(void *arg) {
  drt_threadpool *p = arg;
  uint64_t seen = 0;
  pthread_mutex_lock(&p->mu);
  for (;;) {
    while (!p->shutdown && p->generation == seen) pthread_cond_wait(&p->cv_work, &p->mu);
    if (p->shutdown) break;
    seen = p->generation;
    pthread_mutex_unlock(&p->mu);
    run_chunks(p);
    pthread_mutex_lock(&p->mu);
    if (--p->active == 0) pthread_cond_signal(&p->cv_done);
  }
  pthread_mutex_unlock(&p->mu);
  return NULL;
}

drt_status drt_threadpool_create(int num_threads, drt_threadpool **out) {
  *out = NULL;
  if (num_threads <= 1) return DRT_OK; /* serial */
  drt_threadpool *p = calloc(1, sizeof(*p));
  if (!p) return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "thread pool");
  p->num_workers = num_threads - 1;
  p->threads = calloc((size_t)p->num_workers, sizeof(pthread_t));
  if (!p->threads) {
    free(p);
    return DRT_ERROR(DRT_STATUS_OUT_OF_MEMORY, "thread pool");
  }
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->cv_work, NULL);
  pthread_cond_init(&p->cv_done, NULL);
  for (int i = 0; i < p->num_workers; i++) {
    if (pthread_create(&p->threads[i], NULL, worker, p) != 0) {
      p->num_workers = i;
      drt_threadpool_destroy(p);
      return DRT_ERROR(DRT_STATUS_INTERNAL, "could not start thread %d", i);
    }
  }
  *out = p;
  return DRT_OK;
}

void drt_threadpool_destroy(drt_threadpool *p) {
  if (!p) return;
  pthread_mutex_lock(&p->mu);
  p->shutdown = true;
  pthread_cond_broadcast(&p->cv_work);
  pthread_mutex_unlock(&p->mu);
  for (int i = 0; i < p->num_workers; i++) pthread_join(p->threads[i], NULL);
  pthread_mutex_destroy(&p->mu);
  pthread_cond_destroy(&p->cv_work);
  pthread_cond_destroy(&p->cv_done);
  free(p->threads);
  free(p);
}

void drt_parallel_for(drt_cpu_ctx *ctx, int64_t n, int64_t grain, drt_range_fn fn, void *arg) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  drt_threadpool *p = ctx ? ctx->pool : NULL;
  int threads = p ? p->num_workers + 1 : 1;
  if (ctx && ctx->num_threads < threads) threads = ctx->num_threads;
  if (!p || threads <= 1 || n <= grain) {
    fn(arg, 0, n);
    return;
  }
  /* About 4 chunks per thread for balance, never smaller than grain. */
  int64_t chunk = (n + (int64_t)threads * 4 - 1) / ((int64_t)threads * 4);
  if (chunk < grain) chunk = grain;
  pthread_mutex_lock(&p->mu);
  p->fn = fn;
  p->arg = arg;
  p->n = n;
  p->chunk = chunk;
  p->num_chunks = (n + chunk - 1) / chunk;
  atomic_store(&p->next, 0);
  p->active = p->num_workers;
  p->generation++;
  pthread_cond_broadcast(&p->cv_work);
  pthread_mutex_unlock(&p->mu);
  run_chunks(p);
  pthread_mutex_lock(&p->mu);
  while (p->active > 0) pthread_cond_wait(&p->cv_done, &p->mu);
  pthread_mutex_unlock(&p->mu);
}

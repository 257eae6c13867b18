/* A small persistent thread pool for drt_parallel_for.
 *
 * The caller publishes a job (function, range, chunk size) under the mutex and bumps the
 * generation; workers take chunk indices from a counter tagged with the job's generation, so
 * a worker that wakes up late can never take a chunk of a later job. The caller runs chunks
 * too and returns as soon as every chunk is finished: it never waits for a worker that has
 * not started (on a loaded machine a sleeping worker may take milliseconds to be scheduled,
 * which used to cost every parallel region that long). Between jobs, workers spin briefly
 * before sleeping on the condition variable, so back-to-back regions (the nodes of one
 * evaluation) find them awake. A drt_parallel_for issued from inside a chunk runs serially. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "runtime/cpu/cpu.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

/* Spin iterations (about 10-100 ns each) before a worker sleeps / the caller blocks. */
#define WORKER_SPIN 2048
#define CALLER_SPIN 2048

#define GEN_SHIFT 32
#define INDEX_MASK ((UINT64_C(1) << GEN_SHIFT) - 1)

struct drt_threadpool {
  int num_workers;
  pthread_t *threads;
  pthread_mutex_t mu;
  pthread_cond_t cv_work, cv_done;
  bool shutdown;   /* under mu */
  bool waiting;    /* under mu: the caller sleeps on cv_done */
  atomic_uint_fast64_t generation; /* written under mu, read by spinning workers */
  atomic_bool stop;                /* shutdown, for spinning workers */
  /* the current job: written under mu before generation changes, read under mu */
  drt_range_fn fn;
  void *arg;
  int64_t n, chunk, num_chunks;
  atomic_uint_fast64_t next; /* (generation << GEN_SHIFT) | next chunk index */
  atomic_int_fast64_t done;  /* chunks of the current job finished */
};

typedef struct job {
  uint64_t gen;
  drt_range_fn fn;
  void *arg;
  int64_t n, chunk, num_chunks;
} job;

static _Thread_local const drt_threadpool *tl_inside; /* pool whose chunk this thread runs */

static void run_chunks(drt_threadpool *p, const job *j) {
  uint64_t tag = (j->gen & INDEX_MASK) << GEN_SHIFT;
  for (;;) {
    uint64_t v = atomic_load_explicit(&p->next, memory_order_acquire);
    if ((v & ~INDEX_MASK) != tag) return; /* a later job: not ours */
    int64_t c = (int64_t)(v & INDEX_MASK);
    if (c >= j->num_chunks) return;
    if (!atomic_compare_exchange_weak_explicit(&p->next, &v, v + 1, memory_order_acq_rel, memory_order_acquire))
      continue;
    int64_t b = c * j->chunk, e = b + j->chunk;
    if (e > j->n) e = j->n;
    const drt_threadpool *outer = tl_inside;
    tl_inside = p;
    j->fn(j->arg, b, e);
    tl_inside = outer;
    if (atomic_fetch_add_explicit(&p->done, 1, memory_order_acq_rel) + 1 == j->num_chunks) {
      pthread_mutex_lock(&p->mu);
      if (p->waiting) pthread_cond_signal(&p->cv_done);
      pthread_mutex_unlock(&p->mu);
    }
  }
}

static void *worker(void *arg) {
  drt_threadpool *p = arg;
  uint64_t seen = 0;
  for (;;) {
    for (int i = 0; i < WORKER_SPIN; i++) {
      if (atomic_load_explicit(&p->generation, memory_order_acquire) != seen ||
          atomic_load_explicit(&p->stop, memory_order_relaxed))
        break;
      CPU_RELAX();
    }
    pthread_mutex_lock(&p->mu);
    while (!p->shutdown && atomic_load_explicit(&p->generation, memory_order_relaxed) == seen)
      pthread_cond_wait(&p->cv_work, &p->mu);
    if (p->shutdown) {
      pthread_mutex_unlock(&p->mu);
      break;
    }
    job j = {atomic_load_explicit(&p->generation, memory_order_relaxed), p->fn, p->arg, p->n, p->chunk,
             p->num_chunks};
    seen = j.gen;
    pthread_mutex_unlock(&p->mu);
    run_chunks(p, &j);
  }
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
  atomic_init(&p->generation, 0);
  atomic_init(&p->stop, false);
  atomic_init(&p->next, 0);
  atomic_init(&p->done, 0);
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
  atomic_store(&p->stop, true);
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
  if (!p || threads <= 1 || n <= grain || tl_inside == p) {
    fn(arg, 0, n);
    return;
  }
  /* About 4 chunks per thread for balance, never smaller than grain. */
  int64_t chunk = (n + (int64_t)threads * 4 - 1) / ((int64_t)threads * 4);
  if (chunk < grain) chunk = grain;
  job j = {0, fn, arg, n, chunk, (n + chunk - 1) / chunk};
  pthread_mutex_lock(&p->mu);
  j.gen = atomic_load_explicit(&p->generation, memory_order_relaxed) + 1;
  p->fn = fn;
  p->arg = arg;
  p->n = n;
  p->chunk = chunk;
  p->num_chunks = j.num_chunks;
  atomic_store_explicit(&p->done, 0, memory_order_relaxed);
  atomic_store_explicit(&p->next, (j.gen & INDEX_MASK) << GEN_SHIFT, memory_order_release);
  atomic_store_explicit(&p->generation, j.gen, memory_order_release);
  pthread_cond_broadcast(&p->cv_work);
  pthread_mutex_unlock(&p->mu);
  run_chunks(p, &j);
  /* every chunk is claimed; wait for the ones workers are still running */
  for (int i = 0; i < CALLER_SPIN; i++) {
    if (atomic_load_explicit(&p->done, memory_order_acquire) == j.num_chunks) return;
    CPU_RELAX();
  }
  pthread_mutex_lock(&p->mu);
  p->waiting = true;
  while (atomic_load_explicit(&p->done, memory_order_acquire) < j.num_chunks) pthread_cond_wait(&p->cv_done, &p->mu);
  p->waiting = false;
  pthread_mutex_unlock(&p->mu);
}

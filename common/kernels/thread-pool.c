/*
 * A small pool of persistent threads for the matrix products: creating threads per call would
 * cost more than a decode-size product takes. A decode step makes ~80 calls in quick succession,
 * so a waiting thread first polls for a few microseconds (SPIN_PAUSES) before it sleeps on a
 * condition variable: a wake-up through the kernel costs tens of microseconds per call, while an
 * idle pool never burns more than one short poll (other processes share the cores). One job at a
 * time; callers from several JavaScript threads (engine threads of one worker) take turns on
 * call_lock.
 */
#include "thread-pool.h"
#include <pthread.h>

#define MAX_THREADS 64
/* Polls before sleeping: about 10-40 microseconds of `pause`, depending on the CPU. */
#define SPIN_PAUSES 256

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

static pthread_mutex_t call_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t job_posted = PTHREAD_COND_INITIALIZER;
static pthread_cond_t job_done = PTHREAD_COND_INITIALIZER;
static int started; /* pool threads running; thread i computes part i + 1 */
static unsigned long generation;
static int pending;
static pool_fn job_fn;
static void *job_arg;
static int job_parts;
/* The generation current when pool thread i was created: it waits for the next one. */
static unsigned long created_at[MAX_THREADS];

static void *worker(void *index_ptr) {
  const int index = (int)(long)index_ptr;
  pthread_mutex_lock(&lock);
  unsigned long seen = created_at[index];
  pthread_mutex_unlock(&lock);
  for (;;) {
    for (int i = 0; i < SPIN_PAUSES && __atomic_load_n(&generation, __ATOMIC_ACQUIRE) == seen; i++) cpu_relax();
    pthread_mutex_lock(&lock);
    while (generation == seen) pthread_cond_wait(&job_posted, &lock);
    seen = generation;
    const int part = index + 1;
    const int parts = job_parts;
    pool_fn fn = job_fn;
    void *arg = job_arg;
    pthread_mutex_unlock(&lock);
    if (part < parts) fn(arg, part, parts);
    pthread_mutex_lock(&lock);
    if (__atomic_sub_fetch(&pending, 1, __ATOMIC_RELEASE) == 0) pthread_cond_signal(&job_done);
    pthread_mutex_unlock(&lock);
  }
  return 0;
}

int pool_run(pool_fn fn, void *arg, int parts) {
  if (parts < 1) parts = 1;
  if (parts > MAX_THREADS) parts = MAX_THREADS;
  if (parts == 1) {
    fn(arg, 0, 1);
    return 0;
  }
  pthread_mutex_lock(&call_lock);
  while (started < parts - 1) {
    pthread_t thread;
    pthread_attr_t attr;
    pthread_mutex_lock(&lock);
    created_at[started] = generation;
    pthread_mutex_unlock(&lock);
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    const int err = pthread_create(&thread, &attr, worker, (void *)(long)started);
    pthread_attr_destroy(&attr);
    if (err != 0) break;
    pthread_mutex_lock(&lock);
    started++;
    pthread_mutex_unlock(&lock);
  }
  if (parts > started + 1) parts = started + 1;
  pthread_mutex_lock(&lock);
  job_fn = fn;
  job_arg = arg;
  job_parts = parts;
  __atomic_store_n(&pending, started, __ATOMIC_RELAXED);
  __atomic_add_fetch(&generation, 1, __ATOMIC_RELEASE);
  pthread_cond_broadcast(&job_posted);
  pthread_mutex_unlock(&lock);

  fn(arg, 0, parts);

  for (int i = 0; i < SPIN_PAUSES && __atomic_load_n(&pending, __ATOMIC_ACQUIRE) > 0; i++) cpu_relax();
  pthread_mutex_lock(&lock);
  while (pending > 0) pthread_cond_wait(&job_done, &lock);
  pthread_mutex_unlock(&lock);
  pthread_mutex_unlock(&call_lock);
  return 0;
}

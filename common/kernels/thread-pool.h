#ifndef BORA_THREAD_POOL_H
#define BORA_THREAD_POOL_H

/* Runs fn(arg, part, parts) for part = 0 .. parts-1, part 0 on the calling thread, the others on
 * pool threads, and returns when all are done. Callers from several threads take turns. */
typedef void (*pool_fn)(void *arg, int part, int parts);
int pool_run(pool_fn fn, void *arg, int parts);

#endif

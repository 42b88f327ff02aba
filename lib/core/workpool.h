/*
 * A fixed pool of worker threads for work that may block (disk I/O, locks,
 * long computation), so that it never runs on nng's callback threads.
 *
 * Tasks are intrusive: the caller embeds an rk_task_t in its own object and
 * owns that memory; the pool never allocates per task. A task runs exactly
 * once, on one worker. Order between tasks is first in, first out.
 */
#ifndef RK_WORKPOOL_H
#define RK_WORKPOOL_H

#include <stddef.h>

#include <ringkv/status.h>

typedef struct rk_task rk_task_t;
struct rk_task {
	void (*fn)(rk_task_t *task); /* what to run; recover the owner with
	                                container_of-style arithmetic */
	rk_task_t *next;             /* queue link, the pool's */
};

typedef struct rk_workpool rk_workpool_t;

/* Starts NTHREADS workers. Caller frees with rk_workpool_free(). */
rk_status_t rk_workpool_new(size_t nthreads, rk_workpool_t **out);

/* Queues TASK (borrowed: must stay valid until its fn runs). Thread-safe;
 * never blocks on the queue. Refused (RK_UNAVAILABLE) once the pool is
 * being freed. */
rk_status_t rk_workpool_submit(rk_workpool_t *p, rk_task_t *task);

/* Tasks queued and not yet started. */
size_t rk_workpool_pending(rk_workpool_t *p);

/* Runs every task already queued, then stops the workers and frees the
 * pool. Must not be called from a worker. Safe with NULL. */
void rk_workpool_free(rk_workpool_t *p);

#endif

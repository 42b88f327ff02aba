/*
 * Worker pool; see workpool.h.
 *
 * One mutex guards an intrusive FIFO (head/tail) and the stopping flag; a
 * condition variable wakes idle workers. Freeing sets stopping, and workers
 * leave only once the queue is empty, so every submitted task runs: the
 * RPC server relies on that to answer every request it accepted.
 */
#include "workpool.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

struct rk_workpool {
	pthread_mutex_t mu;  /* guards everything below */
	pthread_cond_t cv;   /* signalled on submit and on stop */
	rk_task_t *head;     /* next task to run */
	rk_task_t *tail;     /* last task queued */
	size_t pending;      /* tasks in the queue */
	bool stopping;       /* no more submits; leave when empty */
	size_t nthreads;     /* threads started */
	pthread_t threads[]; /* the workers */
};

static void *worker_main(void *arg)
{
	rk_workpool_t *p = arg;
	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (p->head == NULL && !p->stopping)
			pthread_cond_wait(&p->cv, &p->mu);
		rk_task_t *t = p->head;
		if (t == NULL)
			break; /* stopping and drained */
		p->head = t->next;
		if (p->head == NULL)
			p->tail = NULL;
		p->pending--;
		pthread_mutex_unlock(&p->mu);
		t->next = NULL;
		t->fn(t);
		pthread_mutex_lock(&p->mu);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

rk_status_t rk_workpool_new(size_t nthreads, rk_workpool_t **out)
{
	if (nthreads == 0)
		return RK_INVALID_ARGUMENT;
	rk_workpool_t *p = calloc(1, sizeof(*p) + nthreads * sizeof(pthread_t));
	if (p == NULL)
		return RK_RESOURCE_EXHAUSTED;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	for (size_t i = 0; i < nthreads; i++) {
		if (pthread_create(&p->threads[i], NULL, worker_main, p) != 0) {
			p->nthreads = i;
			rk_workpool_free(p);
			return RK_RESOURCE_EXHAUSTED;
		}
	}
	p->nthreads = nthreads;
	*out = p;
	return RK_OK;
}

rk_status_t rk_workpool_submit(rk_workpool_t *p, rk_task_t *task)
{
	task->next = NULL;
	pthread_mutex_lock(&p->mu);
	if (p->stopping) {
		pthread_mutex_unlock(&p->mu);
		return RK_UNAVAILABLE;
	}
	if (p->tail != NULL)
		p->tail->next = task;
	else
		p->head = task;
	p->tail = task;
	p->pending++;
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
	return RK_OK;
}

size_t rk_workpool_pending(rk_workpool_t *p)
{
	pthread_mutex_lock(&p->mu);
	size_t n = p->pending;
	pthread_mutex_unlock(&p->mu);
	return n;
}

void rk_workpool_free(rk_workpool_t *p)
{
	if (p == NULL)
		return;
	pthread_mutex_lock(&p->mu);
	p->stopping = true;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	for (size_t i = 0; i < p->nthreads; i++)
		pthread_join(p->threads[i], NULL);
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->mu);
	free(p);
}

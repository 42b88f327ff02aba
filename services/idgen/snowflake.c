/*
 * The Snowflake generator; see snowflake.h for the contract and
 * docs/idgen.md for the layout and the clock rules.
 *
 * State. Under one mutex: the Unix ms of the last ID issued (last_ms) and
 * the next free sequence number in it (next_seq, SEQUENCES when used up),
 * and the persisted high-water mark (reserved_ms): no ID at or after it
 * has been issued by this or any earlier run of the service.
 *
 * Invariants. Every ID issued has time (last_ms, next_seq) strictly
 * greater, in that order, than every ID issued before it, so IDs of one
 * generator strictly increase; last_ms < reserved_ms whenever an ID is
 * handed out, so a restart that starts from floor_ms = reserved_ms never
 * reissues one. At start last_ms = floor_ms - 1 with its sequence used
 * up: the first ID is at floor_ms or later.
 *
 * The clock. Each round of the issue loop reads the wall clock once:
 *  - behind last_ms by more than max_step_ms: refuse (UNAVAILABLE, the
 *    step named) -- callers retry, and the first call after the clock has
 *    come back to within the step goes on;
 *  - behind by at most max_step_ms, or level with last_ms with the
 *    sequence used up: sleep until the clock reaches the ms needed. A wait
 *    during which the wall clock does not advance at all for what it
 *    needed plus stall_ms means the clock stopped: we refuse rather than
 *    spin. (Any advance restarts the bound: under load other callers may
 *    take each new ms first, and that is not a stopped clock);
 *  - otherwise take what is left of the sequence of this ms, and loop for
 *    the rest of a batch that does not fit.
 * Persisting the mark (the reserve hook, an fsync) happens on the issue
 * path only when the ms issued reaches reserved_ms; while IDs flow, the
 * service's marker thread raises it half a chunk early
 * (rk_snowflake_mark_wanted / _persisted), so issuers normally never
 * wait for an fsync.
 *
 * Concurrency. Every issue happens under the lock, so IDs leave in lock
 * order; the lock is dropped while a caller sleeps for the clock and
 * everything is re-read after, so a batch that spans a ms boundary may
 * interleave with other callers (its IDs still increase). The lock is
 * held across the reserve hook (an fsync, once per chunk), so that no ID
 * at or past the old mark leaves before the new one is durable.
 * RK_SNOWFLAKE_NONBLOCK lets an RPC handler on nng's thread take the fast
 * path: it only tries the lock, and hands anything that would wait to a
 * thread that may block.
 */
#include "snowflake.h"

#include <assert.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TS_SHIFT                                                               \
	(RK_SNOWFLAKE_SEQUENCE_BITS + RK_SNOWFLAKE_WORKER_BITS +               \
	 RK_SNOWFLAKE_DATACENTER_BITS)
#define DC_SHIFT (RK_SNOWFLAKE_SEQUENCE_BITS + RK_SNOWFLAKE_WORKER_BITS)
#define WK_SHIFT RK_SNOWFLAKE_SEQUENCE_BITS
#define TS_LIMIT (1ull << RK_SNOWFLAKE_TIMESTAMP_BITS)

struct rk_snowflake {
	pthread_mutex_t mu;    /* orders every issue */
	rk_snowflake_opts_t o; /* options, copied */
	uint64_t last_ms;      /* Unix ms of the last ID (floor - 1 at start) */
	uint32_t next_seq;     /* next sequence in last_ms; SEQUENCES: none */
	uint64_t reserved_ms;  /* persisted mark: no ID at or after it yet */
	uint64_t last_issued_ms; /* Unix ms of the last ID issued; 0: none */
	uint64_t behind_ms;      /* how far behind the clock was last seen */
	rk_snowflake_clock_state_t state; /* for Info */
	uint32_t sleepers; /* callers asleep waiting for the clock */
};

uint64_t rk_snowflake_compose(const rk_snowflake_parts_t *p)
{
	assert(p->ms_since_epoch < TS_LIMIT);
	assert(p->datacenter <= RK_SNOWFLAKE_MAX_DATACENTER);
	assert(p->worker <= RK_SNOWFLAKE_MAX_WORKER);
	assert(p->sequence < RK_SNOWFLAKE_SEQUENCES);
	return (p->ms_since_epoch << TS_SHIFT) |
	       ((uint64_t)p->datacenter << DC_SHIFT) |
	       ((uint64_t)p->worker << WK_SHIFT) | p->sequence;
}

rk_status_t rk_snowflake_decompose(uint64_t id, rk_snowflake_parts_t *out)
{
	if (id >> 63)
		return RK_INVALID_ARGUMENT;
	out->ms_since_epoch = id >> TS_SHIFT;
	out->datacenter =
	    (uint32_t)(id >> DC_SHIFT) & RK_SNOWFLAKE_MAX_DATACENTER;
	out->worker = (uint32_t)(id >> WK_SHIFT) & RK_SNOWFLAKE_MAX_WORKER;
	out->sequence = (uint32_t)id & (RK_SNOWFLAKE_SEQUENCES - 1);
	return RK_OK;
}

uint64_t rk_snowflake_expires_at_ms(uint64_t epoch_ms)
{
	return epoch_ms + TS_LIMIT;
}

/* ---------------------------------------------------------- system clock */

static uint64_t sys_wall_us(void *arg)
{
	(void)arg;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static uint64_t sys_mono_us(void *arg)
{
	(void)arg;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void sys_sleep_us(void *arg, uint64_t us)
{
	(void)arg;
	struct timespec ts = {.tv_sec = (time_t)(us / 1000000u),
	                      .tv_nsec = (long)(us % 1000000u) * 1000};
	nanosleep(&ts, NULL);
}

static const rk_snowflake_clock_t system_clock = {sys_wall_us, sys_mono_us,
                                                  sys_sleep_us, NULL};

const rk_snowflake_clock_t *rk_snowflake_system_clock(void)
{
	return &system_clock;
}

/* ---------------------------------------------------------- life cycle */

rk_status_t rk_snowflake_new(const rk_snowflake_opts_t *opts,
                             rk_snowflake_t **out)
{
	if (opts->datacenter_id > RK_SNOWFLAKE_MAX_DATACENTER ||
	    opts->worker_id > RK_SNOWFLAKE_MAX_WORKER ||
	    opts->epoch_ms >= UINT64_MAX - TS_LIMIT ||
	    opts->floor_ms > opts->reserved_ms || opts->clock.wall_us == NULL ||
	    opts->clock.mono_us == NULL || opts->clock.sleep_us == NULL)
		return RK_INVALID_ARGUMENT;
	rk_snowflake_t *g = calloc(1, sizeof(*g));
	if (g == NULL)
		return RK_RESOURCE_EXHAUSTED;
	pthread_mutex_init(&g->mu, NULL);
	g->o = *opts;
	if (g->o.chunk_ms == 0)
		g->o.chunk_ms = 1;
	g->last_ms = opts->floor_ms > 0 ? opts->floor_ms - 1 : 0;
	g->next_seq = RK_SNOWFLAKE_SEQUENCES;
	g->reserved_ms = opts->reserved_ms;
	g->state = RK_SNOWFLAKE_CLOCK_OK;
	*out = g;
	return RK_OK;
}

void rk_snowflake_free(rk_snowflake_t *g)
{
	if (g == NULL)
		return;
	pthread_mutex_destroy(&g->mu);
	free(g);
}

const rk_snowflake_opts_t *rk_snowflake_opts(const rk_snowflake_t *g)
{
	return &g->o;
}

/* ---------------------------------------------------------- refusals */

static rk_status_t refuse(rk_snowflake_outcome_t *out,
                          rk_snowflake_refusal_t why, uint64_t retry_ms,
                          const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static rk_status_t refuse(rk_snowflake_outcome_t *out,
                          rk_snowflake_refusal_t why, uint64_t retry_ms,
                          const char *fmt, ...)
{
	out->refusal = why;
	out->retry_after_ms = retry_ms > UINT32_MAX ? UINT32_MAX
	                      : retry_ms == 0       ? 1
	                                            : (uint32_t)retry_ms;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(out->why, sizeof(out->why), fmt, ap);
	va_end(ap);
	return RK_UNAVAILABLE;
}

/* Refuses a time outside what the 41 bits hold. Lock held. */
static rk_status_t check_range(const rk_snowflake_t *g, uint64_t now_ms,
                               rk_snowflake_outcome_t *out)
{
	if (now_ms < g->o.epoch_ms)
		return refuse(out, RK_SNOWFLAKE_OUT_OF_RANGE,
		              g->o.epoch_ms - now_ms,
		              "the clock (%" PRIu64 " ms) is before the ID "
		              "epoch (%" PRIu64 " ms)",
		              now_ms, g->o.epoch_ms);
	if (now_ms - g->o.epoch_ms >= TS_LIMIT)
		return refuse(out, RK_SNOWFLAKE_OUT_OF_RANGE, UINT32_MAX,
		              "the 41-bit time field ran out at %" PRIu64
		              " ms: configure a later epoch",
		              rk_snowflake_expires_at_ms(g->o.epoch_ms));
	return RK_OK;
}

/* Refuses a backward step larger than allowed. Lock held. */
static rk_status_t refuse_back(rk_snowflake_t *g, uint64_t step,
                               rk_snowflake_outcome_t *out)
{
	g->state = RK_SNOWFLAKE_CLOCK_REFUSING;
	g->behind_ms = step;
	out->step_ms = step;
	return refuse(out, RK_SNOWFLAKE_CLOCK_BACK, step - g->o.max_step_ms,
	              "clock moved back by %" PRIu64 " ms (more than the "
	              "allowed step of %u ms): refusing IDs until it "
	              "catches up",
	              step, g->o.max_step_ms);
}

/* ---------------------------------------------------------- issuing */

/* Whether COUNT IDs can be issued now without waiting or persisting.
 * Lock held. */
static bool can_issue_now(const rk_snowflake_t *g, uint64_t now_ms,
                          uint32_t count)
{
	if (now_ms < g->last_ms)
		return false;
	if (now_ms >= g->reserved_ms)
		return false;
	if (now_ms == g->last_ms &&
	    RK_SNOWFLAKE_SEQUENCES - g->next_seq < count)
		return false;
	return true;
}

rk_status_t rk_snowflake_next(rk_snowflake_t *g, uint32_t count, uint64_t *ids,
                              int flags, rk_snowflake_outcome_t *out)
{
	memset(out, 0, sizeof(*out));
	out->contiguous = true;
	if (count == 0 || count > RK_SNOWFLAKE_MAX_BATCH) {
		snprintf(out->why, sizeof(out->why),
		         "count must be 1..%u, got %u", RK_SNOWFLAKE_MAX_BATCH,
		         count);
		return RK_INVALID_ARGUMENT;
	}
	const rk_snowflake_clock_t *c = &g->o.clock;
	bool nonblock = (flags & RK_SNOWFLAKE_NONBLOCK) != 0;
	rk_status_t st = RK_OK;
	uint32_t issued = 0;
	uint64_t wait_deadline = 0; /* mono µs a wait must end by; 0: none */
	uint64_t seen_ms = 0;       /* wall ms when the deadline was set */

	if (nonblock) {
		/* Never wait for the lock on a thread that must not block:
		 * a holder may be persisting the mark (an fsync). The
		 * ordinary critical section is well under a microsecond, so
		 * a few tries get it unless that is so. */
		int tries = 0;
		while (pthread_mutex_trylock(&g->mu) != 0)
			if (++tries == 64)
				return RK_ABORTED;
		/* Callers asleep for the clock go first: the fast path
		 * must not take each new ms from under them. */
		if (g->sleepers > 0 ||
		    !can_issue_now(g, c->wall_us(c->arg) / 1000, count)) {
			pthread_mutex_unlock(&g->mu);
			return RK_ABORTED;
		}
	} else {
		pthread_mutex_lock(&g->mu);
	}
	while (issued < count) {
		uint64_t now_us = c->wall_us(c->arg);
		uint64_t now_ms = now_us / 1000;
		st = check_range(g, now_ms, out);
		if (st != RK_OK)
			break;
		uint64_t target = 0; /* the ms to wait for; 0: none */
		if (now_ms < g->last_ms) {
			uint64_t step = g->last_ms - now_ms;
			if (step > g->o.max_step_ms) {
				st = refuse_back(g, step, out);
				break;
			}
			if (step > out->step_ms)
				out->step_ms = step;
			g->behind_ms = step;
			g->state = RK_SNOWFLAKE_CLOCK_WAITING;
			out->waited_step = true;
			target = g->last_ms;
		} else if (now_ms == g->last_ms &&
		           g->next_seq >= RK_SNOWFLAKE_SEQUENCES) {
			out->waited_sequence = true;
			target = g->last_ms + 1;
		}
		if (target != 0) {
			if (nonblock) {
				st = RK_ABORTED;
				break;
			}
			uint64_t m = c->mono_us(c->arg);
			uint64_t need = target * 1000 - now_us;
			/* A clock that moved on is not stopped, even if
			 * others took the ms it reached: start over. (Only
			 * forward: one that keeps stepping back is.) */
			if (wait_deadline != 0 && now_ms > seen_ms)
				wait_deadline = 0;
			if (wait_deadline == 0) {
				seen_ms = now_ms;
				wait_deadline =
				    m + need + (uint64_t)g->o.stall_ms * 1000;
			} else if (m >= wait_deadline) {
				st = refuse(
				    out, RK_SNOWFLAKE_CLOCK_STALLED,
				    g->o.stall_ms,
				    "the clock stopped: it did not reach "
				    "%" PRIu64 " ms within %u ms of when "
				    "it should have",
				    target, g->o.stall_ms);
				g->state = RK_SNOWFLAKE_CLOCK_REFUSING;
				break;
			}
			uint64_t nap = need;
			if (nap > wait_deadline - m)
				nap = wait_deadline - m;
			/* Sleep without the lock, so that Info and other
			 * callers are not held up; the loop re-reads
			 * everything after. */
			g->sleepers++;
			pthread_mutex_unlock(&g->mu);
			c->sleep_us(c->arg, nap > 0 ? nap : 1);
			pthread_mutex_lock(&g->mu);
			g->sleepers--;
			continue;
		}
		wait_deadline = 0;
		if (now_ms > g->last_ms) {
			g->last_ms = now_ms;
			g->next_seq = 0;
		}
		if (g->last_ms >= g->reserved_ms) {
			uint64_t mark = g->last_ms + g->o.chunk_ms;
			if (g->o.reserve != NULL) {
				char why[160] = "";
				st = g->o.reserve(g->o.reserve_arg, mark, why,
				                  sizeof(why));
				if (st != RK_OK) {
					st = refuse(
					    out, RK_SNOWFLAKE_RESERVE_FAILED,
					    1000,
					    "cannot persist the high-water "
					    "mark: %s",
					    why);
					break;
				}
			}
			g->reserved_ms = mark;
			out->reserved = true;
		}
		uint32_t n = RK_SNOWFLAKE_SEQUENCES - g->next_seq;
		if (n > count - issued)
			n = count - issued;
		rk_snowflake_parts_t p = {
		    .ms_since_epoch = g->last_ms - g->o.epoch_ms,
		    .datacenter = g->o.datacenter_id,
		    .worker = g->o.worker_id,
		    .sequence = g->next_seq,
		};
		uint64_t first = rk_snowflake_compose(&p);
		if (issued > 0)
			out->contiguous = false;
		for (uint32_t i = 0; i < n; i++)
			ids[issued + i] = first + i;
		issued += n;
		g->next_seq += n;
		g->last_issued_ms = g->last_ms;
		g->behind_ms = 0;
		g->state = RK_SNOWFLAKE_CLOCK_OK;
	}
	pthread_mutex_unlock(&g->mu);
	return st;
}

rk_status_t rk_snowflake_probe(rk_snowflake_t *g, rk_snowflake_outcome_t *out)
{
	memset(out, 0, sizeof(*out));
	const rk_snowflake_clock_t *c = &g->o.clock;
	pthread_mutex_lock(&g->mu);
	uint64_t now_ms = c->wall_us(c->arg) / 1000;
	rk_status_t st = check_range(g, now_ms, out);
	if (st == RK_OK && now_ms < g->last_ms) {
		uint64_t step = g->last_ms - now_ms;
		if (step > g->o.max_step_ms) {
			st = refuse_back(g, step, out);
		} else {
			g->behind_ms = step;
			out->step_ms = step;
		}
	} else if (st == RK_OK && g->state == RK_SNOWFLAKE_CLOCK_REFUSING &&
	           out->refusal == RK_SNOWFLAKE_ISSUED) {
		/* The clock caught up: the next issue will go on. */
		g->state = RK_SNOWFLAKE_CLOCK_OK;
		g->behind_ms = 0;
	}
	pthread_mutex_unlock(&g->mu);
	return st;
}

void rk_snowflake_get_info(rk_snowflake_t *g, rk_snowflake_info_t *out)
{
	pthread_mutex_lock(&g->mu);
	out->last_issued_ms = g->last_issued_ms;
	out->reserved_ms = g->reserved_ms;
	out->behind_ms = g->behind_ms;
	out->state = g->state;
	pthread_mutex_unlock(&g->mu);
}

bool rk_snowflake_mark_wanted(rk_snowflake_t *g, uint64_t *mark)
{
	const rk_snowflake_clock_t *c = &g->o.clock;
	uint64_t now_ms = c->wall_us(c->arg) / 1000;
	pthread_mutex_lock(&g->mu);
	bool want = g->last_issued_ms != 0 &&
	            g->last_issued_ms + g->o.chunk_ms / 2 >= g->reserved_ms;
	if (want) {
		uint64_t base =
		    now_ms > g->last_issued_ms ? now_ms : g->last_issued_ms;
		*mark = base + g->o.chunk_ms;
		want = *mark > g->reserved_ms;
	}
	pthread_mutex_unlock(&g->mu);
	return want;
}

void rk_snowflake_mark_persisted(rk_snowflake_t *g, uint64_t mark)
{
	pthread_mutex_lock(&g->mu);
	if (mark > g->reserved_ms)
		g->reserved_ms = mark;
	pthread_mutex_unlock(&g->mu);
}

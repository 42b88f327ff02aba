/*
 * Sliding window log: the exact algorithm.
 *
 * Keep the arrival time of every admitted hit of the last U ms; a request
 * of H hits passes when the hits still in the log plus H are at most L.
 * There is no estimate and no boundary effect: over any span of U ms at
 * most L hits are ever admitted. That makes it the reference the sliding
 * window counter is measured against (bench/ratelimit).
 *
 * Representation. A ring of (time, count) entries in one heap block,
 * oldest first; hits of the same millisecond share one entry, so a key
 * holds at most min(L, U in ms) entries, and the rules loader refuses a
 * sliding-log rule whose bound exceeds `sliding_log_max_entries`: memory
 * per key is bounded before the first request arrives. Times are kept as
 * unix ms modulo 2^32, reconstructed against the newest entry's full time
 * (entries live less than a day, far less than 2^32 ms). The ring starts
 * at 4 entries and doubles up to the bound; an empty log is freed.
 *
 * Trade-offs. Exact, at a price: 8 bytes per admitted hit still in the
 * window (a key at 1,000 a minute holds up to 8 KiB, where the counter
 * holds 24 bytes), a heap allocation when the ring grows, and expiry work
 * proportional to the entries that age out. Use it for low limits where
 * exactness matters (logins, password resets, payments).
 *
 * Memory per key: 64 bytes in the table + 24-byte ring header + 8 bytes
 * per entry, entries <= min(L, U ms, sliding_log_max_entries).
 */
#include "algo.h"

#include <stdlib.h>
#include <string.h>

/* Full time of entry E, knowing the newest entry's full time. */
static uint64_t entry_ms(const rk_rl_log_t *log, const rk_rl_log_entry_t *e)
{
	return log->newest_ms - (uint32_t)((uint32_t)log->newest_ms - e->t);
}

/* Drops the entries that left the window ending at NOW. */
static void expire(rk_rl_log_t *log, uint64_t u, uint64_t now)
{
	if (now - log->newest_ms >= u) { /* all of them */
		log->head = 0;
		log->len = 0;
		log->total = 0;
		return;
	}
	while (log->len > 0) {
		rk_rl_log_entry_t *e = &log->e[log->head];
		if (entry_ms(log, e) + u > now)
			break;
		log->total -= e->n;
		log->head = (log->head + 1) % log->cap;
		log->len--;
	}
}

/* Makes room for one more entry; false when out of memory. */
static bool reserve(rk_rl_log_t **logp, uint32_t bound)
{
	rk_rl_log_t *log = *logp;
	if (log != NULL && log->len < log->cap)
		return true;
	uint32_t cap = log == NULL ? 4 : log->cap * 2;
	if (cap > bound)
		cap = bound;
	if (log != NULL && cap <= log->cap) /* cannot happen: len <= bound */
		return false;
	rk_rl_log_t *n = malloc(sizeof(*n) + (size_t)cap * sizeof(n->e[0]));
	if (n == NULL)
		return false;
	memset(n, 0, sizeof(*n));
	n->cap = cap;
	if (log != NULL) {
		n->newest_ms = log->newest_ms;
		n->total = log->total;
		for (uint32_t i = 0; i < log->len; i++)
			n->e[i] = log->e[(log->head + i) % log->cap];
		n->len = log->len;
		free(log);
	}
	*logp = n;
	return true;
}

rk_status_t rk_rl_sliding_log_apply(rk_rl_state_t *s, const rk_rl_params_t *p,
                                    uint64_t now_ms, uint64_t hits, bool commit,
                                    rk_rl_verdict_t *v)
{
	const uint64_t u = p->unit_ms, lim = p->limit;
	rk_rl_log_t *log = s->log.p;
	uint64_t now = now_ms;
	if (log != NULL) {
		if (now < log->newest_ms) /* clock stepped back: stand still */
			now = log->newest_ms;
		expire(log, u, now);
		if (log->len == 0 && !commit) {
			free(log);
			s->log.p = log = NULL;
		}
	}
	uint64_t total = log != NULL ? log->total : 0;
	bool fits = hits <= lim && total + hits <= lim;
	memset(v, 0, sizeof(*v));
	if (fits && commit && hits > 0) {
		rk_rl_log_entry_t *last =
		    log != NULL && log->len > 0
		        ? &log->e[(log->head + log->len - 1) % log->cap]
		        : NULL;
		if (last != NULL && log->newest_ms == now) {
			last->n += (uint32_t)hits;
		} else {
			uint64_t bound = lim < u ? lim : u;
			if (bound > p->max_log && p->max_log > 0)
				bound = p->max_log;
			if (!reserve(&s->log.p, (uint32_t)bound))
				return RK_RESOURCE_EXHAUSTED;
			log = s->log.p;
			rk_rl_log_entry_t *e =
			    &log->e[(log->head + log->len) % log->cap];
			e->t = (uint32_t)now;
			e->n = (uint32_t)hits;
			log->len++;
			log->newest_ms = now;
		}
		log->total += (uint32_t)hits;
		total = log->total;
	}
	v->allowed = fits;
	v->capacity = lim;
	v->remaining = lim - total;
	if (log != NULL && log->len > 0)
		v->reset_after_ms = log->newest_ms + u - now;
	if (fits || hits > lim || log == NULL)
		return RK_OK;
	/* Refused: wait until enough of the oldest entries age out. */
	uint64_t freed = 0;
	for (uint32_t i = 0; i < log->len; i++) {
		const rk_rl_log_entry_t *e =
		    &log->e[(log->head + i) % log->cap];
		freed += e->n;
		if (total - freed + hits <= lim) {
			v->retry_after_ms = entry_ms(log, e) + u - now;
			break;
		}
	}
	return RK_OK;
}

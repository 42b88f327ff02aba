/*
 * Sliding window counter: the default algorithm.
 *
 * Idea (Cloudflare's, 2017). Keep two counters per key: hits in the
 * current fixed window of length U and hits in the previous one. At time
 * e into the current window, estimate the hits of the last U ms as
 *
 *	used = prev * (U - e) / U + cur
 *
 * i.e. assume the previous window's hits were spread evenly over it, and
 * count the share of it that still overlaps the sliding window. A request
 * of H hits passes when used + H <= L. Everything is done on numerators
 * (multiplied by U), so the comparison is exact integer arithmetic.
 *
 * Error, proved in docs/ratelimit.md and checked by the tests: over any
 * span of d <= U ms, at most L * (1 + d/U) hits are admitted. A span
 * inside one window admits at most L; a span that crosses one boundary
 * at most L plus the share d/U of the previous window. So the boundary
 * spike of a fixed window (2L within a few ms) becomes L(1 + small): a
 * burst of L at the end of a window followed by a burst at the start of
 * the next lets through only L * e/U more. The worst case, 2L over a
 * full span U, needs an adversary that times both bursts to the
 * millisecond; on real (bursty, Poisson-like) traffic the estimate is
 * very close to the exact sliding log (bench/ratelimit measures how
 * close). Under-counting is the other side: hits early in the previous
 * window are still partly counted after they left the sliding window,
 * so a client can be refused slightly early.
 *
 * Sub-windows (`sub_windows: K` in the rules, K > 1). The whole error
 * comes from the one stretch of time whose hits are estimated (assumed
 * evenly spread): with K = 1 that is a whole window. Cut each window into
 * K sub-windows (sub-window i of window w spans [wU + floor(iU/K),
 * wU + floor((i+1)U/K)), so lengths differ by at most 1 ms and any unit
 * works) and keep the counts of the current sub-window and the K before
 * it. At e ms into sub-window g (length s), the last U ms hold sub-windows
 * g-K+1 .. g whole and the tail of g-K, which started exactly U before g
 * and has the same length, so
 *
 *	used = n[g-K] * (s - e) / s + n[g-K+1] + ... + n[g]
 *
 * and only one sub-window's hits, U/K ms of traffic, are estimated. The
 * bounds (docs/ratelimit.md): the estimate is off by less than n[g-K];
 * spans of d <= U - ceil(U/K) ms admit at most L, exactly; a span of
 * d <= U admits at most L plus the hits of one sub-window. K = 1 is the
 * classic counter above, and its code path is unchanged.
 *
 * Memory per key: K = 1, three 64-bit words (window index, cur, prev) in
 * the 24-byte state; 64 bytes per key in the table with its hash and
 * links. K > 1: the state holds a tag and a pointer to a heap block of
 * 12 + 4(K + 1) bytes (uint32 counts suffice: a sub-window never holds
 * more than L <= 2^32 - 1), allocated with the key's first counted hit and
 * freed at its first check after all its counts have aged out (or by
 * rk_rl_state_clear, on eviction); the key table charges it to the
 * same budget as the sliding log's rings (max_log_memory). K is
 * capped at RK_RL_MAX_SUB_WINDOWS = 64 (272-byte block). Measured with
 * the table entry and malloc's rounding (bench-ratelimit-accuracy): 70
 * bytes per key for K = 1, 118 for K = 4, 166 for K = 16, 358 for
 * K = 64. Compare the sliding log's 8 bytes per admitted hit. A state
 * keeps one K for its life (the checker's counter key includes K); one
 * that meets another K is started afresh.
 *
 * Cost: a handful of multiplications, plus K additions for K > 1; no
 * allocation for K = 1, ever; for K > 1, one allocation per busy period
 * of a key.
 */
#include "algo.h"

#include <stdlib.h>
#include <string.h>

static rk_status_t apply_sub(rk_rl_state_t *s, const rk_rl_params_t *p,
                             uint64_t now_ms, uint64_t hits, bool commit,
                             rk_rl_verdict_t *v);

/* Rolls the state to the window of NOW_MS; returns ms elapsed in it. */
static uint64_t roll(rk_rl_state_t *s, uint64_t u, uint64_t now_ms)
{
	uint64_t idx = now_ms / u;
	if (idx < s->sw.window) /* clock stepped back: stand still */
		return 0;
	if (idx == s->sw.window + 1) {
		s->sw.prev = s->sw.cur;
		s->sw.cur = 0;
	} else if (idx != s->sw.window) {
		s->sw.prev = 0;
		s->sw.cur = 0;
	}
	s->sw.window = idx;
	return now_ms - idx * u;
}

/* The first e in [0, U] at which prev * (U - e) <= room, or U + 1 when
 * even e = U does not do (room < 0 is passed as not ok). */
static uint64_t first_fit(uint64_t prev, uint64_t u, uint64_t room)
{
	if (prev == 0)
		return 0;
	uint64_t q = room / prev; /* largest U - e that fits */
	return q >= u ? 0 : u - q;
}

rk_status_t rk_rl_sliding_window_apply(rk_rl_state_t *s,
                                       const rk_rl_params_t *p, uint64_t now_ms,
                                       uint64_t hits, bool commit,
                                       rk_rl_verdict_t *v)
{
	if (p->sub_windows > 1)
		return apply_sub(s, p, now_ms, hits, commit, v);
	if (s->swk.tag == RK_RL_SUBWIN_TAG) { /* was K > 1: not this key */
		free(s->swk.p);
		memset(s, 0, sizeof(*s));
	}
	const uint64_t u = p->unit_ms, lim = p->limit;
	uint64_t e = roll(s, u, now_ms);
	uint64_t start = s->sw.window * u; /* of the current window */
	uint64_t cap = lim * u;
	uint64_t used = s->sw.prev * (u - e) + s->sw.cur * u;
	bool fits = hits <= lim && used + hits * u <= cap;

	memset(v, 0, sizeof(*v));
	v->capacity = lim;
	if (fits && commit) {
		s->sw.cur += hits;
		used += hits * u;
	}
	v->allowed = fits;
	v->remaining = used <= cap ? (cap - used) / u : 0;
	uint64_t now = start + e; /* NOW_MS, or the window start if earlier */
	if (s->sw.cur > 0)
		v->reset_after_ms = start + 2 * u - now;
	else if (s->sw.prev > 0)
		v->reset_after_ms = start + u - now;
	if (fits || hits > lim)
		return RK_OK;
	/* Refused: when would HITS fit if nothing else arrived? */
	if (s->sw.cur + hits <= lim) {
		uint64_t at =
		    first_fit(s->sw.prev, u, (lim - s->sw.cur - hits) * u);
		if (at < u) {
			v->retry_after_ms = at - e;
			return RK_OK;
		}
	}
	/* Not in this window: in the next, cur becomes prev. */
	uint64_t at = first_fit(s->sw.cur, u, (lim - hits) * u);
	v->retry_after_ms = start + u + at - now;
	return RK_OK;
}

/* --- K > 1 sub-windows ------------------------------------------------ */

/* Start, unix ms, of global sub-window X (K per unit of U ms). */
static uint64_t sub_start(uint64_t x, uint64_t k, uint64_t u)
{
	return (x / k) * u + (x % k) * u / k;
}

/* The global sub-window of NOW_MS: the i with floor(iU/K) <= off <
 * floor((i+1)U/K), where off is NOW_MS's offset in its window. */
static uint64_t sub_of(uint64_t now_ms, uint64_t k, uint64_t u)
{
	uint64_t w = now_ms / u, off = now_ms - w * u;
	return w * k + ((off + 1) * k - 1) / u;
}

/* Count of sub-window X, which must be one of the K + 1 kept. */
static uint64_t cnt(const rk_rl_subwin_t *b, uint64_t x)
{
	return b == NULL ? 0 : b->n[x % (b->k + 1)];
}

static void drop(rk_rl_state_t *s)
{
	free(s->swk.p);
	memset(s, 0, sizeof(*s));
}

static rk_status_t apply_sub(rk_rl_state_t *s, const rk_rl_params_t *p,
                             uint64_t now_ms, uint64_t hits, bool commit,
                             rk_rl_verdict_t *v)
{
	const uint64_t u = p->unit_ms, lim = p->limit;
	/* Sub-windows of at least 1 ms (the rules allow K <= 64, U >= 1 s). */
	const uint64_t k = p->sub_windows < u ? p->sub_windows : u;
	rk_rl_subwin_t *b = s->swk.tag == RK_RL_SUBWIN_TAG ? s->swk.p : NULL;
	memset(v, 0, sizeof(*v));
	if (b == NULL || b->k != k) { /* fresh, K = 1 data or another K */
		if (s->swk.tag == RK_RL_SUBWIN_TAG)
			drop(s);
		memset(s, 0, sizeof(*s));
		b = NULL;
	}
	uint64_t g = sub_of(now_ms, k, u);
	uint64_t now = now_ms;
	if (b != NULL && g < b->sub) { /* clock stepped back: stand still */
		g = b->sub;
		now = sub_start(g, k, u);
	} else if (b != NULL && g != b->sub) { /* roll forward */
		if (g - b->sub > k)
			memset(b->n, 0, (k + 1) * sizeof(b->n[0]));
		else
			for (uint64_t x = b->sub + 1; x <= g; x++)
				b->n[x % (k + 1)] = 0;
		b->sub = g;
	}
	/* Sub-window g-K is g+1 modulo K+1 (no underflow near t = 0). */
	uint64_t full = 0;
	for (uint64_t j = 0; j < k; j++)
		full += cnt(b, g + k + 1 - j);
	uint64_t old = cnt(b, g + 1);
	if (b != NULL && full == 0 && old == 0 && !commit) {
		drop(s); /* everything aged out: back to fresh */
		b = NULL;
	}
	const uint64_t start = sub_start(g, k, u);
	const uint64_t len = sub_start(g + 1, k, u) - start;
	const uint64_t e = now - start;
	const uint64_t cap = lim * len;
	uint64_t used = old * (len - e) + full * len;
	bool fits = hits <= lim && used + hits * len <= cap;
	if (fits && commit && hits > 0) {
		if (b == NULL) {
			b = calloc(1, RK_RL_SUBWIN_BYTES(k));
			if (b == NULL)
				return RK_RESOURCE_EXHAUSTED;
			b->k = (uint32_t)k;
			b->sub = g;
			s->swk.tag = RK_RL_SUBWIN_TAG;
			s->swk.p = b;
		}
		b->n[g % (k + 1)] += (uint32_t)hits;
		full += hits;
		used += hits * len;
	}
	v->allowed = fits;
	v->capacity = lim;
	v->remaining = used <= cap ? (cap - used) / len : 0;
	/* Back to full when the newest sub-window with hits has left. */
	for (uint64_t j = 0; j <= k; j++) {
		if (cnt(b, g + k + 1 - j) > 0) {
			v->reset_after_ms =
			    sub_start(g + k + 1 - j, k, u) - now;
			break;
		}
	}
	if (fits || hits > lim)
		return RK_OK;
	/* Refused: the first sub-window g+j (and offset in it) where HITS
	 * would fit if nothing else arrived. There, g+j-K+1 .. g are whole
	 * and g+j-K is weighted; by j = K+1 nothing is left. */
	for (uint64_t j = 0; j <= k + 1; j++) {
		uint64_t x = g + j;
		if (j > 0 && j <= k)
			full -= cnt(b, x + 1); /* x-K left the whole ones */
		uint64_t w = j <= k ? cnt(b, x + 1) : 0; /* x-K */
		if (full + hits > lim)
			continue;
		uint64_t xs = sub_start(x, k, u);
		uint64_t xl = sub_start(x + 1, k, u) - xs;
		uint64_t at = first_fit(w, xl, (lim - full - hits) * xl);
		if (j == 0 && at < e)
			at = e;
		if (at < xl) {
			v->retry_after_ms = xs + at - now;
			return RK_OK;
		}
	}
	return RK_OK; /* not reached: at j = K+1 nothing is counted */
}

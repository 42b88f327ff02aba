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
 * Memory per key: three 64-bit words (window index, cur, prev) in the
 * 24-byte state; 64 bytes per key in the table with its hash and links.
 * Compare the sliding log's 8 bytes per admitted hit.
 *
 * Cost: a handful of multiplications; no allocation, ever.
 */
#include "algo.h"

#include <string.h>

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

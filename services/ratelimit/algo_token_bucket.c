/*
 * Token bucket.
 *
 * A bucket holds up to B tokens (the rule's `burst`, default the limit)
 * and refills at L tokens per unit U; a request of H hits takes H tokens
 * if they are there. A fresh key starts full. So a client that was quiet
 * may spend B at once (a burst), and after that gets L per U, evenly.
 *
 * Representation. The state keeps the *debt* (tokens missing from a full
 * bucket) multiplied by U, and the time it was last brought up to date;
 * per millisecond the debt shrinks by exactly L in these units, so refill
 * is integer arithmetic with no rounding drift, and all zeroes means a
 * full bucket. Refill is applied lazily at each call.
 *
 * Trade-offs. Bursts are its point: it lets bursty-but-well-behaved
 * clients through, which the window algorithms smooth less kindly, and it
 * gives a meaningful retry-after (exactly when enough tokens are back).
 * Its guarantee is "at most B + L * t / U hits in any span t", not "L per
 * unit": with B = L a client can do 2L over a span of U (a full bucket,
 * then a unit's refill). Set B smaller for a tighter bound.
 *
 * Memory per key: two 64-bit words in the 24-byte state; 64 bytes per key
 * in the table.
 */
#include "algo.h"

#include <string.h>

rk_status_t rk_rl_token_bucket_apply(rk_rl_state_t *s, const rk_rl_params_t *p,
                                     uint64_t now_ms, uint64_t hits,
                                     bool commit, rk_rl_verdict_t *v)
{
	const uint64_t u = p->unit_ms, rate = p->limit; /* debt units per ms */
	const uint64_t cap = p->burst * u;
	if (now_ms > s->tb.last_ms) {
		uint64_t dt = now_ms - s->tb.last_ms;
		/* dt * rate may overflow for a long-idle key: compare first. */
		if (dt >= rk_rl_div_up(s->tb.debt, rate))
			s->tb.debt = 0;
		else
			s->tb.debt -= dt * rate;
		s->tb.last_ms = now_ms;
	}
	bool fits = hits <= p->burst && s->tb.debt + hits * u <= cap;
	if (fits && commit)
		s->tb.debt += hits * u;
	memset(v, 0, sizeof(*v));
	v->allowed = fits;
	v->capacity = p->burst;
	v->remaining = (cap - s->tb.debt) / u;
	v->reset_after_ms = rk_rl_div_up(s->tb.debt, rate);
	if (!fits && hits <= p->burst)
		v->retry_after_ms =
		    rk_rl_div_up(s->tb.debt + hits * u - cap, rate);
	return RK_OK;
}

/*
 * Leaking bucket, as a queue.
 *
 * A queue of size B (the rule's `burst`, default the limit) drains at L
 * hits per unit U. A request of H hits is admitted when H more fit in the
 * queue, and leaves it once everything ahead of it has drained; the
 * answer says how long that is (delay_ms), so a caller that honours it
 * sends its traffic on at an even L per U: the bucket *shapes* traffic
 * (nginx's limit_req with a burst queue), where the token bucket only
 * *polices* it. Refused requests leave no trace.
 *
 * As a meter the two buckets are mirror images: the leaking bucket's
 * water level is exactly the token bucket's debt, so with the same B and
 * L they admit the same requests. What differs is the contract: a
 * token-bucket client may send its burst at once; a leaking-bucket client
 * is told to spread it (delay_ms grows by U/L per queued hit). Choose it
 * in front of something that needs a steady inflow (a database, a
 * third-party API with its own fixed rate).
 *
 * Representation: the level multiplied by U (it drains by exactly L per
 * ms in these units) and when it was last drained. All zeroes is an empty
 * queue.
 *
 * Memory per key: two 64-bit words in the 24-byte state; 64 bytes per key
 * in the table.
 */
#include "algo.h"

#include <string.h>

rk_status_t rk_rl_leaking_bucket_apply(rk_rl_state_t *s,
                                       const rk_rl_params_t *p, uint64_t now_ms,
                                       uint64_t hits, bool commit,
                                       rk_rl_verdict_t *v)
{
	const uint64_t u = p->unit_ms, rate = p->limit; /* level units per ms */
	const uint64_t cap = p->burst * u;
	if (now_ms > s->lb.last_ms) {
		uint64_t dt = now_ms - s->lb.last_ms;
		if (dt >= rk_rl_div_up(s->lb.level, rate))
			s->lb.level = 0;
		else
			s->lb.level -= dt * rate;
		s->lb.last_ms = now_ms;
	}
	bool fits = hits <= p->burst && s->lb.level + hits * u <= cap;
	memset(v, 0, sizeof(*v));
	if (fits && commit) {
		/* Everything ahead drains first. */
		v->delay_ms = rk_rl_div_up(s->lb.level, rate);
		s->lb.level += hits * u;
	}
	v->allowed = fits;
	v->capacity = p->burst;
	v->remaining = (cap - s->lb.level) / u;
	v->reset_after_ms = rk_rl_div_up(s->lb.level, rate);
	if (!fits && hits <= p->burst)
		v->retry_after_ms =
		    rk_rl_div_up(s->lb.level + hits * u - cap, rate);
	return RK_OK;
}

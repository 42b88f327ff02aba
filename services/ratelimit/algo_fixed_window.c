/*
 * Fixed window counter.
 *
 * One counter per key and window of length U aligned on the epoch; it
 * starts from zero at every window start, and a request of H hits passes
 * while count + H <= L. This is what most Redis recipes do (INCR plus
 * EXPIRE), and what the benchmark runs on Redis for comparison.
 *
 * Trade-offs. It is the cheapest algorithm there is (one compare, one
 * add) and trivially distributable, but it forgets everything at the
 * window edge: L hits in the last millisecond of a window and L more in
 * the first millisecond of the next all pass, so up to 2L get through in
 * any span that crosses a boundary, however short. The tests show this
 * boundary spike against the reference model. Clients also learn that
 * the window resets at a fixed wall time and pile up there ("thundering
 * herd at :00"). Use it where that spike is harmless, or where matching
 * another system's fixed-window numbers exactly matters.
 *
 * Memory per key: two 64-bit words (window index, count) in the 24-byte
 * state; 64 bytes per key in the table.
 */
#include "algo.h"

#include <string.h>

rk_status_t rk_rl_fixed_window_apply(rk_rl_state_t *s, const rk_rl_params_t *p,
                                     uint64_t now_ms, uint64_t hits,
                                     bool commit, rk_rl_verdict_t *v)
{
	const uint64_t u = p->unit_ms, lim = p->limit;
	uint64_t idx = now_ms / u;
	uint64_t now = now_ms;
	if (idx < s->fw.window) { /* clock stepped back: stand still */
		idx = s->fw.window;
		now = idx * u;
	} else if (idx != s->fw.window) {
		s->fw.window = idx;
		s->fw.count = 0;
	}
	bool fits = hits <= lim && s->fw.count + hits <= lim;
	if (fits && commit)
		s->fw.count += hits;
	memset(v, 0, sizeof(*v));
	v->allowed = fits;
	v->capacity = lim;
	v->remaining = lim - s->fw.count;
	uint64_t end = (idx + 1) * u - now;
	v->reset_after_ms = s->fw.count > 0 ? end : 0;
	if (!fits && hits <= lim)
		v->retry_after_ms = end;
	return RK_OK;
}

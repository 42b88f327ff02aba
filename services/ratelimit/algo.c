/*
 * Dispatch to the five algorithms (one file each), and what the key table
 * needs to know about a state's memory. See algo.h.
 */
#include "algo.h"

#include <stdlib.h>
#include <string.h>

rk_status_t rk_rl_apply(rk_rl_state_t *s, const rk_rl_params_t *p,
                        uint64_t now_ms, uint64_t hits, bool commit,
                        rk_rl_verdict_t *v)
{
	switch (p->algorithm) {
	case RK_RL_SLIDING_WINDOW:
		return rk_rl_sliding_window_apply(s, p, now_ms, hits, commit,
		                                  v);
	case RK_RL_TOKEN_BUCKET:
		return rk_rl_token_bucket_apply(s, p, now_ms, hits, commit, v);
	case RK_RL_LEAKING_BUCKET:
		return rk_rl_leaking_bucket_apply(s, p, now_ms, hits, commit,
		                                  v);
	case RK_RL_FIXED_WINDOW:
		return rk_rl_fixed_window_apply(s, p, now_ms, hits, commit, v);
	case RK_RL_SLIDING_LOG:
		return rk_rl_sliding_log_apply(s, p, now_ms, hits, commit, v);
	}
	memset(v, 0, sizeof(*v));
	return RK_INTERNAL;
}

size_t rk_rl_state_heap_bytes(const rk_rl_state_t *s,
                              rk_rl_algorithm_t algorithm)
{
	if (algorithm == RK_RL_SLIDING_WINDOW &&
	    s->swk.tag == RK_RL_SUBWIN_TAG && s->swk.p != NULL)
		return RK_RL_SUBWIN_BYTES(s->swk.p->k);
	if (algorithm != RK_RL_SLIDING_LOG || s->log.p == NULL)
		return 0;
	return sizeof(rk_rl_log_t) +
	       (size_t)s->log.p->cap * sizeof(rk_rl_log_entry_t);
}

void rk_rl_state_clear(rk_rl_state_t *s, rk_rl_algorithm_t algorithm)
{
	if (algorithm == RK_RL_SLIDING_LOG)
		free(s->log.p);
	else if (algorithm == RK_RL_SLIDING_WINDOW &&
	         s->swk.tag == RK_RL_SUBWIN_TAG)
		free(s->swk.p);
	memset(s, 0, sizeof(*s));
}

const char *rk_rl_algorithm_name(rk_rl_algorithm_t algorithm)
{
	switch (algorithm) {
	case RK_RL_SLIDING_WINDOW:
		return "sliding_window_counter";
	case RK_RL_TOKEN_BUCKET:
		return "token_bucket";
	case RK_RL_LEAKING_BUCKET:
		return "leaking_bucket";
	case RK_RL_FIXED_WINDOW:
		return "fixed_window";
	case RK_RL_SLIDING_LOG:
		return "sliding_log";
	}
	return NULL;
}

/*
 * A check split by owner; see split.h for what the merged answer means.
 *
 * Parts. Part g < ng is the descriptors of remote owner g; part ng is
 * ours. A remote part whose owner cannot answer joins ours, where the
 * owner hook fails its limits over, so every descriptor is answered for
 * exactly once. The parts' requests and the merged answer live in the
 * call's memory (ALLOC); a remote answer lives in its result until the
 * caller clears it.
 */
#include "split.h"

#include <stdio.h>
#include <string.h>

#include "handlers.h"

#define MAXD RK_RL_FWD_MAX_DESCRIPTORS

typedef Ringkv__V1__RateLimitCheckRequest req_t;
typedef Ringkv__V1__RateLimitCheckResponse resp_t;
typedef Ringkv__V1__RateLimitApplied applied_t;

/* The sub-request of the descriptors with OWNER[i] == G. MAP receives
 * their indexes in REQ. NULL when out of memory. */
static req_t *part(const req_t *req, const int *owner, int g, bool forwarded,
                   uint32_t *map, rk_rl_alloc_fn alloc, void *arg)
{
	req_t *p = alloc(arg, sizeof(*p));
	Ringkv__V1__RateLimitDescriptor **d =
	    alloc(arg, req->n_descriptors * sizeof(*d));
	if (p == NULL || d == NULL)
		return NULL;
	*p = *req;
	p->has_forwarded = forwarded;
	p->forwarded = forwarded;
	size_t n = 0;
	for (size_t i = 0; i < req->n_descriptors; i++)
		if (owner[i] == g) {
			map[n] = (uint32_t)i;
			d[n++] = req->descriptors[i];
		}
	p->n_descriptors = n;
	p->descriptors = d;
	return p;
}

/* Merged limits: which part, and the limit. */
typedef struct item {
	const applied_t *a; /* the limit as its part answered */
	uint32_t desc;      /* its descriptor index in the whole request */
} item_t;

static int deciding(const item_t *it, size_t n, bool allowed)
{
	int best = -1;
	for (int pass = 0; pass < 2 && best < 0; pass++) {
		for (size_t i = 0; i < n; i++) {
			const applied_t *a = it[i].a;
			if (pass == 0 && a->shadow_mode)
				continue;
			if (!allowed && a->allowed)
				continue;
			if (best < 0) {
				best = (int)i;
				continue;
			}
			const applied_t *b = it[best].a;
			if (!allowed ? a->retry_after_ms > b->retry_after_ms
			             : a->remaining < b->remaining)
				best = (int)i;
		}
	}
	return best;
}

rk_status_t rk_rl_split_check(rk_rl_fwd_t *f, rk_rl_checker_t *c,
                              rk_rl_rules_t *rules, const req_t *req,
                              const int *owner,
                              char (*urls)[RK_CLUSTER_URL_MAX], int ng,
                              uint64_t remaining_ms, rk_rl_alloc_fn alloc,
                              void *alloc_arg, rk_rpc_result_t *results,
                              resp_t *out, char *why, size_t why_len)
{
	int own[MAXD];
	uint32_t map[MAXD + 1][MAXD];
	size_t part_n[MAXD + 1] = {0};
	const resp_t *answers[MAXD + 1];
	size_t nparts = 0;
	bool failed[MAXD] = {false}; /* part g failed over to us */
	int nfailed = 0;
	memcpy(own, owner, req->n_descriptors * sizeof(own[0]));
	for (int g = 0; g < ng; g++)
		memset(&results[g], 0, sizeof(results[g]));
	rk_rl_fwd_count_split(f, false, (uint64_t)ng);
	for (size_t i = 0; i < req->n_descriptors; i++)
		if (own[i] < 0)
			own[i] = ng; /* ours */
	for (int g = 0; g < ng; g++) {
		req_t *p = part(req, own, g, true, map[g], alloc, alloc_arg);
		rk_status_t st =
		    p == NULL
		        ? RK_RESOURCE_EXHAUSTED
		        : rk_rl_fwd_call(f, urls[g], rk_rl_check_method(),
		                         &p->base, remaining_ms, &results[g]);
		answers[g] = NULL;
		if (p != NULL)
			part_n[g] = p->n_descriptors;
		if (st == RK_OK) {
			answers[g] = (const void *)results[g].response;
			rk_rl_fwd_count(f, RK_RL_FWD_ANSWERED, 1);
			continue;
		}
		if (!rk_rl_fwd_unreachable(st)) {
			snprintf(why, why_len, "%s", results[g].message);
			rk_rl_fwd_count(f, RK_RL_FWD_ERROR, 1);
			rk_rl_fwd_count(f, RK_RL_FWD_ERROR, (uint64_t)nfailed);
			return st;
		}
		failed[g] = true;
		nfailed++;
		for (size_t i = 0; i < req->n_descriptors; i++)
			if (own[i] == g)
				own[i] = ng; /* decided (failed over) here */
	}
	/* Ours, with the parts of unreachable owners. */
	resp_t *mine = alloc(alloc_arg, sizeof(*mine));
	if (mine == NULL)
		return RK_RESOURCE_EXHAUSTED;
	ringkv__v1__rate_limit_check_response__init(mine);
	answers[ng] = NULL;
	req_t *p = part(req, own, ng, false, map[ng], alloc, alloc_arg);
	if (p == NULL)
		return RK_RESOURCE_EXHAUSTED;
	part_n[ng] = p->n_descriptors;
	if (p->n_descriptors > 0) {
		rk_status_t st = rk_rl_checker_check(
		    c, rules, p, alloc, alloc_arg, mine, why, why_len);
		if (st != RK_OK) {
			rk_rl_fwd_count(f, RK_RL_FWD_ERROR, (uint64_t)nfailed);
			return st;
		}
		answers[ng] = mine;
	}
	nparts = (size_t)ng + 1;

	/* Merge. */
	size_t n = 0;
	for (size_t k = 0; k < nparts; k++)
		if (answers[k] != NULL)
			n += answers[k]->n_limits;
	item_t *it = alloc(alloc_arg, (n + 1) * sizeof(*it));
	applied_t **list = alloc(alloc_arg, (n + 1) * sizeof(*list));
	applied_t *copies = alloc(alloc_arg, (n + 1) * sizeof(*copies));
	if (it == NULL || list == NULL || copies == NULL)
		return RK_RESOURCE_EXHAUSTED;
	bool allowed = true, shadow = false;
	uint64_t delay = 0, version = 0;
	int outcome = RINGKV__V1__RATE_LIMIT_OUTCOME__RATE_LIMIT_DECIDED;
	size_t m = 0;
	/* In request order: descriptor by descriptor, its limits. */
	for (size_t d = 0; d < req->n_descriptors; d++) {
		size_t k = (size_t)own[d];
		const resp_t *a = answers[k];
		if (a == NULL)
			continue;
		for (size_t j = 0; j < a->n_limits; j++) {
			const applied_t *x = a->limits[j];
			if (x->descriptor_index >= part_n[k] ||
			    map[k][x->descriptor_index] != d)
				continue; /* another descriptor's (or bad) */
			it[m].a = x;
			it[m].desc = (uint32_t)d;
			m++;
		}
	}
	for (size_t k = 0; k < nparts; k++) {
		const resp_t *a = answers[k];
		if (a == NULL)
			continue;
		allowed = allowed && a->allowed;
		shadow = shadow || a->shadow_mode;
		if (a->delay_ms > delay)
			delay = a->delay_ms;
		/* Our rules' version, else the first owner's. */
		if (k == (size_t)ng || version == 0)
			version = a->rules_version;
		if (a->outcome ==
		    RINGKV__V1__RATE_LIMIT_OUTCOME__RATE_LIMIT_FAILED_CLOSED)
			outcome = a->outcome;
		else if (
		    a->outcome ==
		        RINGKV__V1__RATE_LIMIT_OUTCOME__RATE_LIMIT_FAILED_OPEN &&
		    outcome ==
		        RINGKV__V1__RATE_LIMIT_OUTCOME__RATE_LIMIT_DECIDED)
			outcome = a->outcome;
	}
	/* A failed-over part: closed if any of its limits failed closed. */
	for (int g = 0; g < ng; g++) {
		if (!failed[g])
			continue;
		bool closed = false;
		for (size_t i = 0; i < m; i++)
			if (owner[it[i].desc] == g &&
			    it[i].a->outcome ==
			        RINGKV__V1__RATE_LIMIT_OUTCOME__RATE_LIMIT_FAILED_CLOSED)
				closed = true;
		rk_rl_fwd_count(
		    f, closed ? RK_RL_FWD_FAILED_CLOSED : RK_RL_FWD_FAILED_OPEN,
		    1);
	}
	for (size_t i = 0; i < m; i++) {
		copies[i] = *it[i].a;
		copies[i].has_descriptor_index = true;
		copies[i].descriptor_index = it[i].desc;
		list[i] = &copies[i];
	}
	out->has_allowed = true;
	out->allowed = allowed;
	out->has_rules_version = true;
	out->rules_version = version;
	out->has_outcome = true;
	out->outcome = (Ringkv__V1__RateLimitOutcome)outcome;
	out->has_shadow_mode = true;
	out->shadow_mode = allowed && shadow;
	if (allowed && delay > 0) {
		out->has_delay_ms = true;
		out->delay_ms = delay;
	}
	out->n_limits = m;
	out->limits = m > 0 ? list : NULL;
	int b = deciding(it, m, allowed);
	if (b >= 0) {
		const applied_t *x = it[b].a;
		out->has_deciding_index = true;
		out->deciding_index = (uint32_t)b;
		out->has_limit = true;
		out->limit = x->limit;
		out->has_unit = true;
		out->unit = x->unit;
		out->has_remaining = true;
		out->remaining = x->remaining;
		out->has_reset_after_ms = true;
		out->reset_after_ms = x->reset_after_ms;
		out->has_retry_after_ms = true;
		out->retry_after_ms = allowed ? 0 : x->retry_after_ms;
	}
	return RK_OK;
}

/*
 * RPC handlers of the Ratelimit service; see handlers.h.
 *
 * Every answer is built in the call's arena (rk_rpc_call_alloc), and the
 * rules the answer borrows its rule names from are held until
 * rk_rpc_reply() has serialized it.
 */
#include "handlers.h"

#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/log.h"
#include "split.h"

static rk_rpc_method_t m_check, m_batch, m_describe;
static pthread_once_t methods_once = PTHREAD_ONCE_INIT;
static bool methods_ok;

static void methods_resolve(void)
{
	const ProtobufCServiceDescriptor *s =
	    &ringkv__v1__ratelimit__descriptor;
	const ProtobufCEnumDescriptor *ids =
	    &ringkv__v1__ratelimit_method__descriptor;
	methods_ok =
	    rk_rpc_method_resolve(s, ids, "Check", &m_check) == RK_OK &&
	    rk_rpc_method_resolve(s, ids, "CheckBatch", &m_batch) == RK_OK &&
	    rk_rpc_method_resolve(s, ids, "DescribeRules", &m_describe) ==
	        RK_OK;
}

const rk_rpc_method_t *rk_rl_check_method(void)
{
	pthread_once(&methods_once, methods_resolve);
	return methods_ok ? &m_check : NULL;
}

const rk_rpc_method_t *rk_rl_check_batch_method(void)
{
	pthread_once(&methods_once, methods_resolve);
	return methods_ok ? &m_batch : NULL;
}

const rk_rpc_method_t *rk_rl_describe_rules_method(void)
{
	pthread_once(&methods_once, methods_resolve);
	return methods_ok ? &m_describe : NULL;
}

/* --- the gate -------------------------------------------------------- */

void rk_rl_gate_open(rk_rl_gate_t *gate, rk_rl_checker_t *checker,
                     uint32_t max_batch)
{
	atomic_store(&gate->max_batch, max_batch);
	atomic_store(&gate->checker, checker);
}

rk_rl_checker_t *rk_rl_gate_close(rk_rl_gate_t *gate)
{
	rk_rl_checker_t *c = atomic_exchange(&gate->checker, NULL);
	while (atomic_load(&gate->inside) != 0)
		sched_yield();
	return c;
}

void rk_rl_gate_set_error(rk_rl_gate_t *gate, const char *error)
{
	pthread_mutex_lock(&gate->lock);
	snprintf(gate->last_error, sizeof(gate->last_error), "%s",
	         error ? error : "");
	pthread_mutex_unlock(&gate->lock);
}

/* Enters the gate: the checker, or NULL (then the call is answered). */
static rk_rl_checker_t *enter(rk_rl_gate_t *gate, rk_rpc_call_t *call)
{
	atomic_fetch_add(&gate->inside, 1);
	rk_rl_checker_t *c = atomic_load(&gate->checker);
	if (c == NULL) {
		atomic_fetch_sub(&gate->inside, 1);
		rk_rpc_reply_error(call, RK_UNAVAILABLE, 0,
		                   "rate limiter stopping");
	}
	return c;
}

static void leave(rk_rl_gate_t *gate)
{
	atomic_fetch_sub(&gate->inside, 1);
}

static void *call_alloc(void *arg, size_t n)
{
	return rk_rpc_call_alloc(arg, n);
}

/* --- forwarding (docs/ratelimit.md, "Distributed") -------------------- */

/* Time left before the caller's deadline, ms. */
static uint64_t remaining_ms(const rk_rpc_call_t *call)
{
	uint64_t deadline = rk_rpc_call_deadline_ms(call);
	uint64_t now = rk_clock_mono_ms();
	return deadline > now ? deadline - now : 0;
}

/* Sends Check REQ to its owner at URL, marked forwarded. Returns true
 * when the call has been answered (the owner's answer or error is
 * relayed); false when the owner could not decide (then it is decided
 * here, its limits failing open or closed). */
static bool forward_check(rk_rl_gate_t *gate, rk_rpc_call_t *call,
                          const Ringkv__V1__RateLimitCheckRequest *req,
                          const char *url)
{
	Ringkv__V1__RateLimitCheckRequest copy = *req;
	copy.has_forwarded = true;
	copy.forwarded = true;
	rk_rpc_result_t res;
	rk_status_t st = rk_rl_fwd_call(gate->fwd, url, rk_rl_check_method(),
	                                &copy.base, remaining_ms(call), &res);
	bool done = true;
	/* Counted before the reply, so a caller that reads /metrics after
	 * its answer sees it. */
	if (st == RK_OK) {
		rk_rl_fwd_count(gate->fwd, RK_RL_FWD_ANSWERED, 1);
		rk_rpc_reply(call, res.response);
	} else if (!rk_rl_fwd_unreachable(st)) {
		rk_rl_fwd_count(gate->fwd, RK_RL_FWD_ERROR, 1);
		rk_rpc_reply_error(call, st, res.retry_after_ms, "%s",
		                   res.message);
	} else {
		done = false; /* counted once decided here */
	}
	rk_rpc_result_clear(&res);
	return done;
}

/* How REQ is to be decided. */
typedef enum route {
	ROUTE_HERE,  /* by the checker here */
	ROUTE_OWNER, /* all of it by one other owner: forward_check */
	ROUTE_SPLIT, /* descriptors of several owners: rk_rl_split_check */
} route_t;

/* Routes REQ: OWNER, URLS and *NG as rk_rl_fwd_owners fills them. */
static route_t route(rk_rl_gate_t *gate,
                     const Ringkv__V1__RateLimitCheckRequest *req, int *owner,
                     char (*urls)[RK_CLUSTER_URL_MAX], int *ng)
{
	*ng = 0;
	if (gate->fwd == NULL || req->forwarded)
		return ROUTE_HERE;
	*ng = rk_rl_fwd_owners(gate->fwd, req, owner, urls);
	if (*ng <= 0)
		return ROUTE_HERE;
	for (size_t i = 0; i < req->n_descriptors; i++)
		if (owner[i] != 0)
			return ROUTE_SPLIT;
	return *ng == 1 ? ROUTE_OWNER : ROUTE_SPLIT;
}

/* One owner's part of a batch. */
typedef struct fwd_group {
	char url[RK_CLUSTER_URL_MAX]; /* the owner */
	size_t n;                     /* checks for it */
	rk_rpc_result_t res;          /* its answer */
	bool ok;                      /* answered in full */
} fwd_group_t;

/* Forwards the checks of batch REQ that other instances own, one
 * CheckBatch per owner. On return OWNER[i] is -1 for a check decided
 * here, else its group in *GROUPS (caller frees each group's result and
 * the array), whose answer holds the check's result at position POS[i]
 * when the group is ok. Returns the number of groups, or -1 when out of
 * memory (then everything is decided here). */
static long forward_batch(rk_rl_gate_t *gate, rk_rpc_call_t *call,
                          const Ringkv__V1__RateLimitCheckBatchRequest *req,
                          int *owner, size_t *pos, fwd_group_t **groups)
{
	size_t n = req->n_checks;
	*groups = NULL;
	for (size_t i = 0; i < n; i++)
		owner[i] = -1;
	if (gate->fwd == NULL || n == 0)
		return 0;
	fwd_group_t *g = calloc(n, sizeof(*g));
	if (g == NULL)
		return -1;
	long ng = 0;
	char url[RK_CLUSTER_URL_MAX];
	for (size_t i = 0; i < n; i++) {
		if (!rk_rl_fwd_route(gate->fwd, req->checks[i], url,
		                     sizeof(url)))
			continue;
		long k = 0;
		while (k < ng && strcmp(g[k].url, url) != 0)
			k++;
		if (k == ng)
			memcpy(g[ng++].url, url, sizeof(url));
		owner[i] = (int)k;
		pos[i] = g[k].n++;
	}
	*groups = g;
	for (long k = 0; k < ng; k++) {
		Ringkv__V1__RateLimitCheckRequest **list =
		    rk_rpc_call_alloc(call, g[k].n * sizeof(*list));
		Ringkv__V1__RateLimitCheckRequest *copies =
		    rk_rpc_call_alloc(call, g[k].n * sizeof(*copies));
		if (list == NULL || copies == NULL)
			continue; /* not ok: decided here */
		for (size_t i = 0; i < n; i++) {
			if (owner[i] != (int)k)
				continue;
			copies[pos[i]] = *req->checks[i];
			copies[pos[i]].has_forwarded = true;
			copies[pos[i]].forwarded = true;
			list[pos[i]] = &copies[pos[i]];
		}
		Ringkv__V1__RateLimitCheckBatchRequest sub =
		    RINGKV__V1__RATE_LIMIT_CHECK_BATCH_REQUEST__INIT;
		sub.n_checks = g[k].n;
		sub.checks = list;
		rk_status_t st = rk_rl_fwd_call(
		    gate->fwd, g[k].url, rk_rl_check_batch_method(), &sub.base,
		    remaining_ms(call), &g[k].res);
		const Ringkv__V1__RateLimitCheckBatchResponse *r =
		    (const void *)g[k].res.response;
		g[k].ok = st == RK_OK && r != NULL && r->n_results == g[k].n;
		for (size_t i = 0; g[k].ok && i < g[k].n; i++)
			rk_rl_fwd_count(gate->fwd,
			                r->results[i]->response != NULL
			                    ? RK_RL_FWD_ANSWERED
			                    : RK_RL_FWD_ERROR,
			                1);
	}
	if (ng > 0)
		rk_rl_fwd_count_split(gate->fwd, true, (uint64_t)ng);
	return ng;
}

/* --- handlers ---------------------------------------------------------- */

/* Decides REQ as routed (R, OWNER, URLS, NG from route()) and answers
 * it. Blocks only when R is not ROUTE_HERE. Inside the gate. */
static void check_routed(rk_rpc_call_t *call, rk_rl_gate_t *gate,
                         rk_rl_checker_t *c,
                         const Ringkv__V1__RateLimitCheckRequest *req,
                         route_t r, int *owner,
                         char (*urls)[RK_CLUSTER_URL_MAX], int ng)
{
	if (r == ROUTE_OWNER && forward_check(gate, call, req, urls[0]))
		return;
	rk_rl_rules_t *rules = rk_rl_checker_acquire(c);
	Ringkv__V1__RateLimitCheckResponse resp =
	    RINGKV__V1__RATE_LIMIT_CHECK_RESPONSE__INIT;
	char why[512];
	rk_rpc_result_t results[RK_RL_FWD_MAX_DESCRIPTORS];
	rk_status_t st;
	if (r == ROUTE_SPLIT)
		st = rk_rl_split_check(gate->fwd, c, rules, req, owner, urls,
		                       ng, remaining_ms(call), call_alloc, call,
		                       results, &resp, why, sizeof(why));
	else
		st = rk_rl_checker_check(c, rules, req, call_alloc, call, &resp,
		                         why, sizeof(why));
	if (r == ROUTE_OWNER) /* its owner could not answer */
		rk_rl_fwd_count(
		    gate->fwd, rk_rl_fwd_failover_outcome(st, resp.outcome), 1);
	if (st == RK_OK)
		rk_rpc_reply(call, &resp.base);
	else
		rk_rpc_reply_error(call, st, 0, "%s", why);
	if (r == ROUTE_SPLIT)
		for (int g = 0; g < ng; g++)
			rk_rpc_result_clear(&results[g]);
	rk_rl_checker_release(c, rules);
}

/* Check on the worker pool: may forward, and wait for the owner. */
static void handle_check(rk_rpc_call_t *call, const ProtobufCMessage *msg,
                         void *arg)
{
	rk_rl_gate_t *gate = arg;
	rk_rl_checker_t *c = enter(gate, call);
	if (c == NULL)
		return;
	const Ringkv__V1__RateLimitCheckRequest *req = (const void *)msg;
	int owner[RK_RL_FWD_MAX_DESCRIPTORS];
	char urls[RK_RL_FWD_MAX_DESCRIPTORS][RK_CLUSTER_URL_MAX];
	int ng = 0;
	route_t r = route(gate, req, owner, urls, &ng);
	check_routed(call, gate, c, req, r, owner, urls, ng);
	leave(gate);
}

/* Check on the transport's thread: a check whose keys are all ours is
 * decided right here, without a hand-off; one that must go to another
 * owner continues on the worker pool, where waiting is allowed. */
static void handle_check_inline(rk_rpc_call_t *call,
                                const ProtobufCMessage *msg, void *arg)
{
	rk_rl_gate_t *gate = arg;
	rk_rl_checker_t *c = enter(gate, call);
	if (c == NULL)
		return;
	const Ringkv__V1__RateLimitCheckRequest *req = (const void *)msg;
	int owner[RK_RL_FWD_MAX_DESCRIPTORS];
	char urls[RK_RL_FWD_MAX_DESCRIPTORS][RK_CLUSTER_URL_MAX];
	int ng = 0;
	route_t r = route(gate, req, owner, urls, &ng);
	if (r == ROUTE_HERE)
		check_routed(call, gate, c, req, r, owner, urls, ng);
	leave(gate);
	if (r != ROUTE_HERE &&
	    rk_rpc_call_defer(call, handle_check, gate) != RK_OK)
		rk_rpc_reply_error(call, RK_UNAVAILABLE, 0,
		                   "rate limiter stopping");
}

static void handle_batch(rk_rpc_call_t *call, const ProtobufCMessage *msg,
                         void *arg)
{
	rk_rl_gate_t *gate = arg;
	rk_rl_checker_t *c = enter(gate, call);
	if (c == NULL)
		return;
	const Ringkv__V1__RateLimitCheckBatchRequest *req = (const void *)msg;
	uint32_t max_batch = atomic_load(&gate->max_batch);
	if (req->n_checks > max_batch) {
		rk_rpc_reply_error(call, RK_INVALID_ARGUMENT, 0,
		                   "%zu checks in one batch, more than %u",
		                   req->n_checks, max_batch);
		leave(gate);
		return;
	}
	size_t n = req->n_checks;
	int *owner = calloc(n ? n : 1, sizeof(*owner));
	size_t *pos = calloc(n ? n : 1, sizeof(*pos));
	fwd_group_t *groups = NULL;
	long ngroups = 0;
	if (owner == NULL || pos == NULL) {
		free(owner);
		free(pos);
		rk_rpc_reply_error(call, RK_RESOURCE_EXHAUSTED, 0,
		                   "out of memory for the batch");
		leave(gate);
		return;
	}
	ngroups = forward_batch(gate, call, req, owner, pos, &groups);
	/* Checks whose descriptors have several owners: split, each. */
	rk_rpc_result_t **split = calloc(n ? n : 1, sizeof(*split));
	int *nsplit = calloc(n ? n : 1, sizeof(*nsplit));
	if (split == NULL || nsplit == NULL) {
		free(split);
		free(nsplit);
		split = NULL;
		nsplit = NULL;
	}
	if (ngroups < 0)
		for (size_t i = 0; i < n; i++)
			owner[i] = -1;
	rk_rl_rules_t *rules = rk_rl_checker_acquire(c);
	Ringkv__V1__RateLimitCheckBatchResponse resp =
	    RINGKV__V1__RATE_LIMIT_CHECK_BATCH_RESPONSE__INIT;
	Ringkv__V1__RateLimitCheckResult **list =
	    rk_rpc_call_alloc(call, (n ? n : 1) * sizeof(*list));
	Ringkv__V1__RateLimitCheckResult *res =
	    rk_rpc_call_alloc(call, (n ? n : 1) * sizeof(*res));
	Ringkv__V1__RateLimitCheckResponse *ans =
	    rk_rpc_call_alloc(call, (n ? n : 1) * sizeof(*ans));
	if (list == NULL || res == NULL || ans == NULL) {
		rk_rpc_reply_error(call, RK_RESOURCE_EXHAUSTED, 0,
		                   "out of memory for the answer");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		ringkv__v1__rate_limit_check_result__init(&res[i]);
		ringkv__v1__rate_limit_check_response__init(&ans[i]);
		list[i] = &res[i];
		if (owner[i] >= 0 && groups[owner[i]].ok) {
			const Ringkv__V1__RateLimitCheckBatchResponse *r =
			    (const void *)groups[owner[i]].res.response;
			list[i] = r->results[pos[i]];
			continue;
		}
		char why[512];
		rk_status_t st;
		int own[RK_RL_FWD_MAX_DESCRIPTORS];
		char urls[RK_RL_FWD_MAX_DESCRIPTORS][RK_CLUSTER_URL_MAX];
		int ng = 0;
		if (owner[i] < 0 && split != NULL &&
		    route(gate, req->checks[i], own, urls, &ng) ==
		        ROUTE_SPLIT &&
		    (split[i] = calloc((size_t)ng, sizeof(**split))) != NULL) {
			nsplit[i] = ng;
			st = rk_rl_split_check(
			    gate->fwd, c, rules, req->checks[i], own, urls, ng,
			    remaining_ms(call), call_alloc, call, split[i],
			    &ans[i], why, sizeof(why));
		} else {
			st = rk_rl_checker_check(c, rules, req->checks[i],
			                         call_alloc, call, &ans[i], why,
			                         sizeof(why));
		}
		if (owner[i] >= 0) /* its owner's sub-batch failed */
			rk_rl_fwd_count(
			    gate->fwd,
			    rk_rl_fwd_failover_outcome(st, ans[i].outcome), 1);
		if (st == RK_OK) {
			res[i].response = &ans[i];
			continue;
		}
		Ringkv__V1__Status *s = rk_rpc_call_alloc(call, sizeof(*s));
		size_t len = strlen(why) + 1;
		char *text = rk_rpc_call_alloc(call, len);
		if (s == NULL || text == NULL) {
			rk_rpc_reply_error(call, RK_RESOURCE_EXHAUSTED, 0,
			                   "out of memory for the answer");
			goto out;
		}
		memcpy(text, why, len);
		ringkv__v1__status__init(s);
		s->has_code = true;
		s->code = (Ringkv__V1__StatusCode)st;
		s->message = text;
		res[i].status = s;
	}
	resp.n_results = n;
	resp.results = list;
	rk_rpc_reply(call, &resp.base);
out:
	rk_rl_checker_release(c, rules);
	for (long k = 0; k < ngroups; k++)
		rk_rpc_result_clear(&groups[k].res);
	for (size_t i = 0; split != NULL && i < n; i++) {
		for (int g = 0; g < nsplit[i]; g++)
			rk_rpc_result_clear(&split[i][g]);
		free(split[i]);
	}
	free(split);
	free(nsplit);
	free(groups);
	free(owner);
	free(pos);
	leave(gate);
}

static void handle_describe(rk_rpc_call_t *call, const ProtobufCMessage *msg,
                            void *arg)
{
	rk_rl_gate_t *gate = arg;
	rk_rl_checker_t *c = enter(gate, call);
	if (c == NULL)
		return;
	const Ringkv__V1__DescribeRulesRequest *req = (const void *)msg;
	rk_rl_rules_t *r = rk_rl_checker_acquire(c);
	Ringkv__V1__DescribeRulesResponse resp =
	    RINGKV__V1__DESCRIBE_RULES_RESPONSE__INIT;
	resp.has_rules_version = true;
	resp.rules_version = r->version;
	resp.source = r->source;
	resp.has_loaded_at_ms = true;
	resp.loaded_at_ms = r->loaded_at_ms;
	pthread_mutex_lock(&gate->lock);
	size_t elen = strlen(gate->last_error) + 1;
	char *err = rk_rpc_call_alloc(call, elen);
	if (err != NULL)
		memcpy(err, gate->last_error, elen);
	pthread_mutex_unlock(&gate->lock);
	resp.last_error = err;
	Ringkv__V1__RateLimitRule **list =
	    rk_rpc_call_alloc(call, (r->nlimits + 1) * sizeof(*list));
	if (list == NULL || err == NULL) {
		rk_rpc_reply_error(call, RK_RESOURCE_EXHAUSTED, 0,
		                   "out of memory for the answer");
		goto out;
	}
	size_t n = 0;
	for (size_t i = 0; i < r->nlimits; i++) {
		const rk_rl_limit_t *l = &r->limits[i];
		if (req->domain != NULL && req->domain[0] != '\0' &&
		    strcmp(req->domain, l->domain) != 0)
			continue;
		Ringkv__V1__RateLimitRule *x =
		    rk_rpc_call_alloc(call, sizeof(*x));
		Ringkv__V1__RateLimitEntry *ents =
		    rk_rpc_call_alloc(call, (l->depth + 1) * sizeof(*ents));
		Ringkv__V1__RateLimitEntry **ep =
		    rk_rpc_call_alloc(call, (l->depth + 1) * sizeof(*ep));
		if (x == NULL || ents == NULL || ep == NULL) {
			rk_rpc_reply_error(call, RK_RESOURCE_EXHAUSTED, 0,
			                   "out of memory for the answer");
			goto out;
		}
		ringkv__v1__rate_limit_rule__init(x);
		x->domain = (char *)l->domain;
		x->rule = l->name;
		for (uint32_t k = 0; k < l->depth; k++) {
			ringkv__v1__rate_limit_entry__init(&ents[k]);
			ents[k].key = l->path[k]->key;
			ents[k].value = l->path[k]->value;
			ep[k] = &ents[k];
		}
		x->n_match = l->depth;
		x->match = ep;
		x->has_limit = true;
		x->limit = l->params.limit;
		x->has_unit = true;
		x->unit = (Ringkv__V1__RateLimitUnit)l->unit;
		x->has_algorithm = true;
		x->algorithm =
		    (Ringkv__V1__RateLimitAlgorithm)l->params.algorithm;
		x->has_burst = true;
		x->burst = l->params.burst;
		x->has_shadow_mode = true;
		x->shadow_mode = l->shadow_mode;
		x->has_fail_open = true;
		x->fail_open = l->fail_open;
		x->has_near_limit_ppm = true;
		x->near_limit_ppm = l->near_limit_ppm;
		if (l->params.algorithm == RK_RL_SLIDING_WINDOW) {
			x->has_sub_windows = true;
			x->sub_windows =
			    l->params.sub_windows ? l->params.sub_windows : 1;
		}
		list[n++] = x;
	}
	resp.n_rules = n;
	resp.rules = list;
	rk_rpc_reply(call, &resp.base);
out:
	rk_rl_checker_release(c, r);
	leave(gate);
}

/* Batch on the transport's thread: decided right here when every check
 * is ours, else on the worker pool. (Should the ring change between this
 * look and handle_batch's own, a forward may then run on this thread; it
 * is bounded by the caller's deadline.) */
static void handle_batch_inline(rk_rpc_call_t *call,
                                const ProtobufCMessage *msg, void *arg)
{
	rk_rl_gate_t *gate = arg;
	const Ringkv__V1__RateLimitCheckBatchRequest *req = (const void *)msg;
	bool here = true;
	for (size_t i = 0; here && i < req->n_checks; i++) {
		int owner[RK_RL_FWD_MAX_DESCRIPTORS];
		char urls[RK_RL_FWD_MAX_DESCRIPTORS][RK_CLUSTER_URL_MAX];
		int ng = 0;
		here = route(gate, req->checks[i], owner, urls, &ng) ==
		       ROUTE_HERE;
	}
	if (here)
		handle_batch(call, msg, arg);
	else if (rk_rpc_call_defer(call, handle_batch, gate) != RK_OK)
		rk_rpc_reply_error(call, RK_UNAVAILABLE, 0,
		                   "rate limiter stopping");
}

rk_status_t rk_rl_handlers_register(rk_rpc_server_t *srv, rk_rl_gate_t *gate)
{
	if (rk_rl_check_method() == NULL)
		return RK_FAILED_PRECONDITION;
	/* Alone, nothing here blocks; in a cluster the inline handlers hand
	 * what must be forwarded to the pool. */
	bool alone = gate->fwd == NULL;
	rk_rl_checker_t *c = atomic_load(&gate->checker);
	if (!alone && c != NULL) /* before any call is served */
		rk_rl_fwd_set_metrics(gate->fwd, rk_rl_checker_metrics(c));
	rk_status_t st = rk_rpc_server_handle(
	    srv, rk_rl_check_method(),
	    alone ? handle_check : handle_check_inline, RK_RPC_INLINE, gate);
	if (st == RK_OK)
		st = rk_rpc_server_handle(
		    srv, rk_rl_check_batch_method(),
		    alone ? handle_batch : handle_batch_inline, RK_RPC_INLINE,
		    gate);
	if (st == RK_OK)
		st = rk_rpc_server_handle(srv, rk_rl_describe_rules_method(),
		                          handle_describe, RK_RPC_INLINE, gate);
	return st;
}

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
#include <string.h>

#include "core/log.h"

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

/* --- handlers ---------------------------------------------------------- */

static void handle_check(rk_rpc_call_t *call, const ProtobufCMessage *msg,
                         void *arg)
{
	rk_rl_gate_t *gate = arg;
	rk_rl_checker_t *c = enter(gate, call);
	if (c == NULL)
		return;
	const Ringkv__V1__RateLimitCheckRequest *req = (const void *)msg;
	rk_rl_rules_t *rules = rk_rl_checker_acquire(c);
	Ringkv__V1__RateLimitCheckResponse resp =
	    RINGKV__V1__RATE_LIMIT_CHECK_RESPONSE__INIT;
	char why[512];
	rk_status_t st = rk_rl_checker_check(c, rules, req, call_alloc, call,
	                                     &resp, why, sizeof(why));
	if (st == RK_OK)
		rk_rpc_reply(call, &resp.base);
	else
		rk_rpc_reply_error(call, st, 0, "%s", why);
	rk_rl_checker_release(c, rules);
	leave(gate);
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
		char why[512];
		rk_status_t st =
		    rk_rl_checker_check(c, rules, req->checks[i], call_alloc,
		                        call, &ans[i], why, sizeof(why));
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
		list[n++] = x;
	}
	resp.n_rules = n;
	resp.rules = list;
	rk_rpc_reply(call, &resp.base);
out:
	rk_rl_checker_release(c, r);
	leave(gate);
}

rk_status_t rk_rl_handlers_register(rk_rpc_server_t *srv, rk_rl_gate_t *gate)
{
	if (rk_rl_check_method() == NULL)
		return RK_FAILED_PRECONDITION;
	rk_status_t st = rk_rpc_server_handle(
	    srv, rk_rl_check_method(), handle_check, RK_RPC_INLINE, gate);
	if (st == RK_OK)
		st = rk_rpc_server_handle(srv, rk_rl_check_batch_method(),
		                          handle_batch, RK_RPC_INLINE, gate);
	if (st == RK_OK)
		st = rk_rpc_server_handle(srv, rk_rl_describe_rules_method(),
		                          handle_describe, RK_RPC_INLINE, gate);
	return st;
}

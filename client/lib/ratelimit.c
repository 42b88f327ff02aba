/*
 * libringkv: the rate limiter's calls (include/ringkv/ratelimit.h).
 *
 * Requests are built in one heap block sized to them, pointing at the
 * caller's strings (protobuf-c packs straight from them); answers
 * are copied out of the RPC result's arena into one heap block per
 * result, so the caller holds no RPC memory.
 */
#include <ringkv/ratelimit.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "ringkv/v1/ratelimit.pb-c.h"

#define MAX_DESCRIPTORS 32
#define MAX_ENTRIES     16

static rk_rpc_method_t m_check, m_batch;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static bool methods_ok;

static void resolve(void)
{
	const ProtobufCServiceDescriptor *s =
	    &ringkv__v1__ratelimit__descriptor;
	const ProtobufCEnumDescriptor *ids =
	    &ringkv__v1__ratelimit_method__descriptor;
	methods_ok =
	    rk_rpc_method_resolve(s, ids, "Check", &m_check) == RK_OK &&
	    rk_rpc_method_resolve(s, ids, "CheckBatch", &m_batch) == RK_OK;
}

const char *ringkv_rl_unit_name(int unit)
{
	static const char *const names[] = {"?", "second", "minute", "hour",
	                                    "day"};
	return unit >= 1 && unit <= 4 ? names[unit] : "?";
}

/* The protobuf form of checks, in one heap block sized to them: the
 * requests, then every descriptor (struct and pointer), then every entry
 * (struct and pointer). Nothing is copied: strings stay the caller's. */
typedef struct pb_checks {
	Ringkv__V1__RateLimitCheckRequest *req; /* n */
	Ringkv__V1__RateLimitCheckRequest **rp; /* n */
	Ringkv__V1__RateLimitDescriptor *d;     /* all descriptors */
	Ringkv__V1__RateLimitDescriptor **dp;   /* all descriptors */
	Ringkv__V1__RateLimitEntry *e;          /* all entries */
	Ringkv__V1__RateLimitEntry **ep;        /* all entries */
	void *block;                            /* frees all of it */
} pb_checks_t;

/* Builds N checks into P (caller frees p->block). */
static rk_status_t build(const ringkv_rl_check_t *c, size_t n, pb_checks_t *p,
                         ringkv_error_t *err)
{
	size_t nd = 0, ne = 0;
	for (size_t i = 0; i < n; i++) {
		if (c[i].n_descriptors > MAX_DESCRIPTORS) {
			rk_conn_error(err, "more than %d descriptors",
			              MAX_DESCRIPTORS);
			return RK_INVALID_ARGUMENT;
		}
		nd += c[i].n_descriptors;
		for (size_t k = 0; k < c[i].n_descriptors; k++) {
			if (c[i].descriptors[k].n_entries > MAX_ENTRIES) {
				rk_conn_error(err,
				              "descriptor %zu: more than %d "
				              "entries",
				              k, MAX_ENTRIES);
				return RK_INVALID_ARGUMENT;
			}
			ne += c[i].descriptors[k].n_entries;
		}
	}
	size_t bytes = n * (sizeof(*p->req) + sizeof(*p->rp)) +
	               nd * (sizeof(*p->d) + sizeof(*p->dp)) +
	               ne * (sizeof(*p->e) + sizeof(*p->ep));
	char *m = malloc(bytes ? bytes : 1);
	if (m == NULL)
		return RK_RESOURCE_EXHAUSTED;
	p->block = m;
	p->req = (void *)m;
	m += n * sizeof(*p->req);
	p->d = (void *)m;
	m += nd * sizeof(*p->d);
	p->e = (void *)m;
	m += ne * sizeof(*p->e);
	p->rp = (void *)m;
	m += n * sizeof(*p->rp);
	p->dp = (void *)m;
	m += nd * sizeof(*p->dp);
	p->ep = (void *)m;
	size_t di = 0, ei = 0;
	for (size_t i = 0; i < n; i++) {
		Ringkv__V1__RateLimitCheckRequest *r = &p->req[i];
		ringkv__v1__rate_limit_check_request__init(r);
		p->rp[i] = r;
		r->domain = (char *)c[i].domain;
		r->has_hits = true;
		r->hits = c[i].hits;
		r->n_descriptors = c[i].n_descriptors;
		r->descriptors = &p->dp[di];
		for (size_t k = 0; k < c[i].n_descriptors; k++, di++) {
			const ringkv_rl_descriptor_t *d = &c[i].descriptors[k];
			ringkv__v1__rate_limit_descriptor__init(&p->d[di]);
			p->dp[di] = &p->d[di];
			p->d[di].n_entries = d->n_entries;
			p->d[di].entries = &p->ep[ei];
			for (size_t j = 0; j < d->n_entries; j++, ei++) {
				ringkv__v1__rate_limit_entry__init(&p->e[ei]);
				p->e[ei].key = (char *)d->entries[j].key;
				p->e[ei].value = (char *)d->entries[j].value;
				p->ep[ei] = &p->e[ei];
			}
		}
	}
	return RK_OK;
}

/* Copies R into OUT: one heap block holds the limits and their names. */
static rk_status_t copy_out(const Ringkv__V1__RateLimitCheckResponse *r,
                            ringkv_rl_result_t *out)
{
	memset(out, 0, sizeof(*out));
	out->allowed = r->allowed;
	out->limit = r->limit;
	out->unit = r->unit;
	out->remaining = r->remaining;
	out->reset_after_ms = r->reset_after_ms;
	out->retry_after_ms = r->retry_after_ms;
	out->delay_ms = r->delay_ms;
	out->deciding_index =
	    r->has_deciding_index ? (int)r->deciding_index : -1;
	out->shadow_mode = r->shadow_mode;
	out->rules_version = r->rules_version;
	out->outcome = r->has_outcome ? (ringkv_rl_outcome_t)r->outcome
	                              : RINGKV_RL_DECIDED;
	if (r->n_limits == 0)
		return RK_OK;
	size_t names = 0;
	for (size_t i = 0; i < r->n_limits; i++)
		names +=
		    strlen(r->limits[i]->rule ? r->limits[i]->rule : "") + 1;
	ringkv_rl_limit_t *l = malloc(r->n_limits * sizeof(*l) + names);
	if (l == NULL)
		return RK_RESOURCE_EXHAUSTED;
	char *p = (char *)(l + r->n_limits);
	for (size_t i = 0; i < r->n_limits; i++) {
		const Ringkv__V1__RateLimitApplied *a = r->limits[i];
		const char *rule = a->rule ? a->rule : "";
		size_t n = strlen(rule) + 1;
		memcpy(p, rule, n);
		l[i] = (ringkv_rl_limit_t){
		    .rule = p,
		    .descriptor_index = a->descriptor_index,
		    .limit = a->limit,
		    .unit = a->unit,
		    .algorithm = a->algorithm,
		    .burst = a->burst,
		    .allowed = a->allowed,
		    .remaining = a->remaining,
		    .reset_after_ms = a->reset_after_ms,
		    .retry_after_ms = a->retry_after_ms,
		    .delay_ms = a->delay_ms,
		    .shadow_mode = a->shadow_mode,
		    .near_limit = a->near_limit,
		    .outcome = (ringkv_rl_outcome_t)a->outcome,
		};
		p += n;
	}
	out->limits = l;
	out->n_limits = r->n_limits;
	return RK_OK;
}

rk_status_t ringkv_ratelimit_check(ringkv_conn_t *conn,
                                   const ringkv_rl_check_t *check,
                                   ringkv_rl_result_t *out, ringkv_error_t *err)
{
	pthread_once(&once, resolve);
	memset(out, 0, sizeof(*out));
	if (!methods_ok)
		return RK_INTERNAL;
	pb_checks_t p;
	rk_status_t st = build(check, 1, &p, err);
	if (st != RK_OK)
		return st;
	rk_rpc_result_t res;
	st = rk_conn_call(conn, &m_check, &p.req[0].base, &res, err);
	free(p.block);
	if (st == RK_OK)
		st = copy_out((const void *)res.response, out);
	rk_rpc_result_clear(&res);
	return st;
}

rk_status_t ringkv_ratelimit_check_batch(ringkv_conn_t *conn,
                                         const ringkv_rl_check_t *checks,
                                         size_t n, ringkv_rl_result_t *results,
                                         rk_status_t *statuses,
                                         ringkv_error_t *err)
{
	pthread_once(&once, resolve);
	if (!methods_ok)
		return RK_INTERNAL;
	memset(results, 0, n * sizeof(*results));
	pb_checks_t p;
	rk_status_t st = build(checks, n, &p, err);
	if (st != RK_OK)
		return st;
	Ringkv__V1__RateLimitCheckBatchRequest req =
	    RINGKV__V1__RATE_LIMIT_CHECK_BATCH_REQUEST__INIT;
	req.n_checks = n;
	req.checks = p.rp;
	rk_rpc_result_t res;
	st = rk_conn_call(conn, &m_batch, &req.base, &res, err);
	free(p.block);
	if (st == RK_OK) {
		const Ringkv__V1__RateLimitCheckBatchResponse *b =
		    (const void *)res.response;
		if (b->n_results != n) {
			rk_conn_error(err, "%zu answers to %zu checks",
			              b->n_results, n);
			st = RK_INTERNAL;
		}
		for (size_t i = 0; i < n && st == RK_OK; i++) {
			const Ringkv__V1__RateLimitCheckResult *r =
			    b->results[i];
			if (r->status != NULL && r->status->code != 0) {
				statuses[i] = rk_status_valid(r->status->code)
				                  ? (rk_status_t)r->status->code
				                  : RK_UNKNOWN;
			} else if (r->response == NULL) {
				statuses[i] = RK_INTERNAL;
			} else {
				statuses[i] =
				    copy_out(r->response, &results[i]);
			}
		}
	}
	rk_rpc_result_clear(&res);
	return st;
}

void ringkv_rl_result_clear(ringkv_rl_result_t *r)
{
	if (r == NULL)
		return;
	free(r->limits);
	r->limits = NULL;
	r->n_limits = 0;
}

/*
 * The checker; see checker.h for the semantics.
 *
 * Concurrency design. The decision for one key must be applied one
 * request at a time. Two shapes do that: shards owned by worker threads
 * fed through queues, or shards guarded by their own mutex, taken by the
 * thread that received the request. This file takes the second, because
 *  - one request may touch several limits in several shards and must
 *    decide on all of them atomically (all or nothing); with locks that
 *    is "lock the shards in index order", with owner threads it would be
 *    a two-phase protocol across threads;
 *  - a decision costs well under a microsecond, while handing a request
 *    to another thread and waking it costs several: a queue hop would
 *    cost more than the work;
 *  - one hot key is serialised either way (one mutex or one thread), and
 *    distinct keys spread over 64 shards rarely meet.
 * There is no global lock: the only state all checks share is the rules
 * pointer, read lock-free (checker_rules.c), and metric counters
 * (atomics).
 */
#include "checker_internal.h"

#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/log.h"

#define MAX_DESCRIPTORS 32
#define MAX_APPLIED     64
#define MAX_TEXT        256
#define MAX_KEY_BYTES   16384 /* route key <= 8.5 KiB, name <= 4 KiB */

/* --- one check ------------------------------------------------------- */

/* One limit that applies to the request. */
typedef struct slot {
	const rk_rl_limit_t *lim; /* the limit */
	uint32_t desc;            /* index of the descriptor it matched */
	rk_rl_id_t id;            /* its counter's key */
	uint32_t shard;           /* where that key lives */
	uint32_t mult;            /* slots with this id (same descriptor
	                             given more than once) */
	int first;                /* index of the first slot with this id */
	bool local;               /* decided here (else failed open/closed) */
	rk_rl_entry_t *e;         /* its entry while the shards are locked */
	rk_rl_verdict_t v;        /* its verdict */
	Ringkv__V1__RateLimitOutcome outcome; /* decided or failed */
	bool near; /* past its near_limit threshold */
} slot_t;

static rk_status_t bad(char *why, size_t len, rk_status_t st, const char *fmt,
                       ...) __attribute__((format(printf, 4, 5)));
static rk_status_t bad(char *why, size_t len, rk_status_t st, const char *fmt,
                       ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, len, fmt, ap);
	va_end(ap);
	return st;
}

static size_t put(uint8_t *buf, size_t n, const char *s)
{
	size_t len = strlen(s) + 1;
	memcpy(buf + n, s, len);
	return n + len;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

/* Checks the shape of REQ against the bounds in checker.h. */
static rk_status_t validate(const rk_rl_checker_t *c,
                            const Ringkv__V1__RateLimitCheckRequest *req,
                            char *why, size_t len)
{
	if (req->domain == NULL || req->domain[0] == '\0')
		return bad(why, len, RK_INVALID_ARGUMENT, "empty domain");
	if (strlen(req->domain) > MAX_TEXT)
		return bad(why, len, RK_INVALID_ARGUMENT,
		           "domain longer than %d bytes", MAX_TEXT);
	if (req->n_descriptors == 0)
		return bad(why, len, RK_INVALID_ARGUMENT, "no descriptors");
	if (req->n_descriptors > MAX_DESCRIPTORS)
		return bad(why, len, RK_INVALID_ARGUMENT,
		           "%zu descriptors, more than %d", req->n_descriptors,
		           MAX_DESCRIPTORS);
	if (req->hits > c->max_hits)
		return bad(why, len, RK_INVALID_ARGUMENT,
		           "hits %u over the most one check may count, %u",
		           req->hits, c->max_hits);
	for (size_t i = 0; i < req->n_descriptors; i++) {
		const Ringkv__V1__RateLimitDescriptor *d = req->descriptors[i];
		if (d->n_entries == 0)
			return bad(why, len, RK_INVALID_ARGUMENT,
			           "descriptor %zu is empty", i);
		if (d->n_entries > RK_RL_MAX_DEPTH)
			return bad(why, len, RK_INVALID_ARGUMENT,
			           "descriptor %zu has %zu entries, more than "
			           "%d",
			           i, d->n_entries, RK_RL_MAX_DEPTH);
		for (size_t k = 0; k < d->n_entries; k++) {
			const Ringkv__V1__RateLimitEntry *e = d->entries[k];
			if (e->key == NULL || e->key[0] == '\0')
				return bad(why, len, RK_INVALID_ARGUMENT,
				           "descriptor %zu entry %zu has an "
				           "empty key",
				           i, k);
			if (strlen(e->key) > MAX_TEXT ||
			    (e->value != NULL && strlen(e->value) > MAX_TEXT))
				return bad(why, len, RK_INVALID_ARGUMENT,
				           "descriptor %zu entry %zu: key or "
				           "value longer than %d bytes",
				           i, k, MAX_TEXT);
		}
	}
	return RK_OK;
}

/* Fills the slots of every limit that applies to REQ under R. */
static rk_status_t collect(rk_rl_checker_t *c, const rk_rl_rules_t *r,
                           const rk_rl_domain_t *d,
                           const Ringkv__V1__RateLimitCheckRequest *req,
                           slot_t *slots, size_t *nslots, char *why,
                           size_t why_len)
{
	size_t n = 0;
	uint8_t key[MAX_KEY_BYTES];
	for (size_t i = 0; i < req->n_descriptors; i++) {
		const Ringkv__V1__RateLimitDescriptor *ds = req->descriptors[i];
		const char *keys[RK_RL_MAX_DEPTH], *values[RK_RL_MAX_DEPTH];
		size_t kn = put(key, 0, d->name);
		for (size_t k = 0; k < ds->n_entries; k++) {
			keys[k] = ds->entries[k]->key;
			values[k] =
			    ds->entries[k]->value ? ds->entries[k]->value : "";
			kn = put(key, kn, keys[k]);
			kn = put(key, kn, values[k]);
		}
		const rk_rl_node_t *node =
		    rk_rl_rules_match(d, ds->n_entries, keys, values);
		if (node == NULL || node->nlimits == 0)
			continue;
		if (n + node->nlimits > MAX_APPLIED)
			return bad(why, why_len, RK_INVALID_ARGUMENT,
			           "more than %d limits apply to one check",
			           MAX_APPLIED);
		rk_rl_owner_t owner = RK_RL_OWNER_LOCAL;
		if (c->owner != NULL && !req->forwarded)
			owner = c->owner(c->owner_arg, key, kn);
		for (size_t j = 0; j < node->nlimits; j++) {
			const rk_rl_limit_t *l = &r->limits[node->limits[j]];
			if (!l->shadow_mode && req->hits > l->params.burst)
				return bad(
				    why, why_len, RK_OUT_OF_RANGE,
				    "hits %u exceed the capacity %llu of "
				    "rule %s: such a check is never "
				    "admitted",
				    req->hits,
				    (unsigned long long)l->params.burst,
				    l->name);
			slot_t *s = &slots[n];
			memset(s, 0, sizeof(*s));
			s->lim = l;
			s->desc = (uint32_t)i;
			s->local = owner == RK_RL_OWNER_LOCAL;
			s->first = (int)n;
			s->mult = 1;
			/* The counter's key: route key, name, unit, algorithm
			 * and, when > 1, sub_windows (a state keeps one K). */
			size_t cn = put(key, kn, l->name);
			key[cn++] = (uint8_t)l->unit;
			key[cn++] = (uint8_t)l->params.algorithm;
			/* K = 1 (or unset): keys as before sub-windows */
			if (l->params.sub_windows > 1)
				key[cn++] = (uint8_t)l->params.sub_windows;
			rk_rl_table_id(c->table, key, cn, &s->id);
			s->shard =
			    (uint32_t)rk_rl_table_shard_of(c->table, &s->id);
			for (size_t k = 0; k < n; k++) {
				if (slots[k].id.lo == s->id.lo &&
				    slots[k].id.hi == s->id.hi) {
					s->first = (int)k;
					slots[k].mult++;
					break;
				}
			}
			n++;
		}
	}
	*nslots = n;
	return RK_OK;
}

/* Owner unreachable (or not here yet): the rule's fail-open choice. */
static void fail_over(const rk_rl_checker_t *c, slot_t *s)
{
	memset(&s->v, 0, sizeof(s->v));
	s->v.capacity = s->lim->params.burst;
	s->v.allowed = s->lim->fail_open;
	s->v.remaining = 0;
	s->v.retry_after_ms = s->lim->fail_open ? 0 : c->retry_ms;
	s->outcome =
	    s->lim->fail_open
	        ? RINGKV__V1__RATE_LIMIT_OUTCOME__RATE_LIMIT_FAILED_OPEN
	        : RINGKV__V1__RATE_LIMIT_OUTCOME__RATE_LIMIT_FAILED_CLOSED;
}

/* Decides the local slots with their shards locked; returns whether the
 * request is admitted (every enforced limit said yes). */
static bool decide(rk_rl_checker_t *c, slot_t *slots, size_t n, uint64_t hits,
                   uint64_t now)
{
	uint32_t shards[MAX_APPLIED];
	size_t ns = 0;
	for (size_t i = 0; i < n; i++)
		if (slots[i].local)
			shards[ns++] = slots[i].shard;
	qsort(shards, ns, sizeof(shards[0]), cmp_u32);
	size_t nu = 0;
	for (size_t i = 0; i < ns; i++)
		if (nu == 0 || shards[nu - 1] != shards[i])
			shards[nu++] = shards[i];
	for (size_t i = 0; i < nu; i++)
		rk_rl_table_lock(c->table, shards[i]);

	/* Phase 1: would every limit take the hits? */
	for (size_t i = 0; i < n; i++) {
		slot_t *s = &slots[i];
		if (!s->local) {
			fail_over(c, s);
			continue;
		}
		s->outcome = RINGKV__V1__RATE_LIMIT_OUTCOME__RATE_LIMIT_DECIDED;
		if (s->first != (int)i) {
			s->e = slots[s->first].e;
			s->v = slots[s->first].v;
			continue;
		}
		s->e = rk_rl_table_find(c->table, s->shard, &s->id);
		if (s->e == NULL && hits == 0) {
			/* A read of a key never counted: fresh. */
			rk_rl_state_t fresh;
			memset(&fresh, 0, sizeof(fresh));
			rk_rl_apply(&fresh, &s->lim->params, now, 0, false,
			            &s->v);
			continue;
		}
		if (s->e == NULL)
			s->e =
			    rk_rl_table_insert(c->table, s->shard, &s->id,
			                       s->lim->params.algorithm, now);
		if (s->e == NULL) {
			fail_over(c, s); /* no room: as if unreachable */
			s->local = false;
			continue;
		}
		size_t before = rk_rl_state_heap_bytes(
		    &s->e->state, s->lim->params.algorithm);
		rk_rl_apply(&s->e->state, &s->lim->params, now, hits * s->mult,
		            false, &s->v);
		rk_rl_table_account(c->table, s->shard, s->e, before, now);
		s->e->expires_ms = now + s->v.reset_after_ms;
	}
	bool allowed = true;
	for (size_t i = 0; i < n; i++)
		if (!slots[i].lim->shadow_mode && !slots[i].v.allowed)
			allowed = false;

	/* Phase 2: count them where there was room. */
	if (allowed && hits > 0) {
		for (size_t i = 0; i < n; i++) {
			slot_t *s = &slots[i];
			if (!s->local || s->e == NULL || !s->v.allowed)
				continue;
			if (s->first != (int)i) {
				s->v = slots[s->first].v;
				continue;
			}
			size_t before = rk_rl_state_heap_bytes(
			    &s->e->state, s->lim->params.algorithm);
			if (rk_rl_apply(&s->e->state, &s->lim->params, now,
			                hits * s->mult, true, &s->v) != RK_OK)
				rk_warn("ratelimit: out of memory for a "
				        "sliding log or sub-window block of "
				        "rule %s: hits not counted",
				        s->lim->name);
			rk_rl_table_account(c->table, s->shard, s->e, before,
			                    now);
			s->e->expires_ms = now + s->v.reset_after_ms;
		}
	}
	for (size_t i = nu; i > 0; i--)
		rk_rl_table_unlock(c->table, shards[i - 1]);
	return allowed;
}

/* Fills one RateLimitApplied from slot S. */
static void fill_applied(Ringkv__V1__RateLimitApplied *a, const slot_t *s)
{
	ringkv__v1__rate_limit_applied__init(a);
	const rk_rl_limit_t *l = s->lim;
	a->has_descriptor_index = true;
	a->descriptor_index = s->desc;
	a->rule = l->name;
	a->has_limit = true;
	a->limit = l->params.limit;
	a->has_unit = true;
	a->unit = (Ringkv__V1__RateLimitUnit)l->unit;
	a->has_algorithm = true;
	a->algorithm = (Ringkv__V1__RateLimitAlgorithm)l->params.algorithm;
	if (l->params.algorithm == RK_RL_TOKEN_BUCKET ||
	    l->params.algorithm == RK_RL_LEAKING_BUCKET) {
		a->has_burst = true;
		a->burst = l->params.burst;
	}
	a->has_allowed = true;
	a->allowed = s->v.allowed;
	a->has_remaining = true;
	a->remaining = s->v.remaining;
	a->has_reset_after_ms = true;
	a->reset_after_ms = s->v.reset_after_ms;
	a->has_retry_after_ms = true;
	a->retry_after_ms = s->v.retry_after_ms;
	a->has_shadow_mode = true;
	a->shadow_mode = l->shadow_mode;
	a->has_near_limit = true;
	a->near_limit = s->near;
	a->has_outcome = true;
	a->outcome = s->outcome;
	if (s->v.delay_ms > 0) {
		a->has_delay_ms = true;
		a->delay_ms = s->v.delay_ms;
	}
}

/* The index of the slot that decides: refused, the enforced refusal
 * that lasts longest; admitted, the enforced limit with the least room
 * left; with only shadow limits, the same among them. -1 if none. */
static int deciding(const slot_t *slots, size_t n, bool allowed)
{
	int best = -1;
	for (int pass = 0; pass < 2 && best < 0; pass++) {
		for (size_t i = 0; i < n; i++) {
			const slot_t *s = &slots[i];
			if (pass == 0 && s->lim->shadow_mode)
				continue;
			if (!allowed && s->v.allowed)
				continue;
			if (best < 0) {
				best = (int)i;
				continue;
			}
			const slot_t *b = &slots[best];
			if (!allowed ? s->v.retry_after_ms > b->v.retry_after_ms
			             : s->v.remaining < b->v.remaining)
				best = (int)i;
		}
	}
	return best;
}

rk_status_t rk_rl_checker_check(rk_rl_checker_t *c, rk_rl_rules_t *rules,
                                const Ringkv__V1__RateLimitCheckRequest *req,
                                rk_rl_alloc_fn alloc, void *alloc_arg,
                                Ringkv__V1__RateLimitCheckResponse *resp,
                                char *why, size_t why_len)
{
	rk_status_t st = validate(c, req, why, why_len);
	if (st != RK_OK)
		return st;
	const rk_rl_domain_t *d = rk_rl_rules_domain(rules, req->domain);
	if (d == NULL)
		return bad(why, why_len, RK_NOT_FOUND,
		           "no rules for domain \"%s\" (rules version %llu)",
		           req->domain, (unsigned long long)rules->version);
	uint64_t t0 = rk_clock_mono_ns();
	slot_t slots[MAX_APPLIED];
	size_t n = 0;
	st = collect(c, rules, d, req, slots, &n, why, why_len);
	if (st != RK_OK)
		return st;
	uint64_t now = c->clock(c->clock_arg);
	uint64_t hits = req->hits;
	bool allowed = decide(c, slots, n, hits, now);
	uint64_t t1 = rk_clock_mono_ns();
	if (c->g_keys != NULL &&
	    (atomic_fetch_add(&c->checks, 1) & 1023) == 0) {
		rk_rl_table_stats_t ts;
		rk_rl_table_stats(c->table, &ts);
		rk_gauge_set(c->g_keys, (double)ts.keys);
		rk_gauge_set(c->g_log_bytes, (double)ts.log_bytes);
		rk_gauge_set(c->g_evicted_idle, (double)ts.evicted_idle);
		rk_gauge_set(c->g_evicted_live, (double)ts.evicted_live);
	}

	/* Near limits, metrics. */
	const limit_metrics_t *m = rules->checker_data;
	bool algos[RK_RL_ALGORITHM_COUNT] = {false};
	bool shadow_hit = false;
	Ringkv__V1__RateLimitOutcome outcome =
	    RINGKV__V1__RATE_LIMIT_OUTCOME__RATE_LIMIT_DECIDED;
	uint64_t delay = 0;
	for (size_t i = 0; i < n; i++) {
		slot_t *s = &slots[i];
		const rk_rl_limit_t *l = s->lim;
		uint64_t cap = s->v.capacity;
		s->near =
		    allowed && s->v.allowed &&
		    s->outcome ==
		        RINGKV__V1__RATE_LIMIT_OUTCOME__RATE_LIMIT_DECIDED &&
		    (cap - s->v.remaining) * 1000000 >= cap * l->near_limit_ppm;
		if (l->shadow_mode && !s->v.allowed)
			shadow_hit = true;
		if (s->outcome ==
		    RINGKV__V1__RATE_LIMIT_OUTCOME__RATE_LIMIT_FAILED_CLOSED)
			outcome = s->outcome;
		else if (
		    s->outcome ==
		        RINGKV__V1__RATE_LIMIT_OUTCOME__RATE_LIMIT_FAILED_OPEN &&
		    outcome ==
		        RINGKV__V1__RATE_LIMIT_OUTCOME__RATE_LIMIT_DECIDED)
			outcome = s->outcome;
		if (allowed && s->v.delay_ms > delay)
			delay = s->v.delay_ms;
		algos[l->params.algorithm] = true;
		if (m != NULL && hits > 0) {
			const limit_metrics_t *lm = &m[l->index];
			rk_counter_add(lm->hits, hits);
			if (!s->v.allowed && !l->shadow_mode)
				rk_counter_add(lm->over, hits);
			if (!s->v.allowed && l->shadow_mode)
				rk_counter_add(lm->shadow, hits);
			if (s->near)
				rk_counter_add(lm->near, hits);
		}
	}
	for (int a = 1; a < RK_RL_ALGORITHM_COUNT; a++)
		if (algos[a] && c->latency[a] != NULL)
			rk_histogram_observe(c->latency[a],
			                     (double)(t1 - t0) / 1e9);

	/* The answer. */
	resp->has_allowed = true;
	resp->allowed = allowed;
	resp->has_rules_version = true;
	resp->rules_version = rules->version;
	resp->has_outcome = true;
	resp->outcome = outcome;
	resp->has_shadow_mode = true;
	resp->shadow_mode = allowed && shadow_hit;
	if (delay > 0) {
		resp->has_delay_ms = true;
		resp->delay_ms = delay;
	}
	if (n == 0)
		return RK_OK;
	Ringkv__V1__RateLimitApplied **list =
	    alloc(alloc_arg, n * sizeof(*list));
	Ringkv__V1__RateLimitApplied *items =
	    alloc(alloc_arg, n * sizeof(*items));
	if (list == NULL || items == NULL)
		return bad(why, why_len, RK_RESOURCE_EXHAUSTED,
		           "out of memory for the answer");
	for (size_t i = 0; i < n; i++) {
		fill_applied(&items[i], &slots[i]);
		list[i] = &items[i];
	}
	resp->n_limits = n;
	resp->limits = list;
	int b = deciding(slots, n, allowed);
	if (b >= 0) {
		const slot_t *s = &slots[b];
		resp->has_deciding_index = true;
		resp->deciding_index = (uint32_t)b;
		resp->has_limit = true;
		resp->limit = s->lim->params.limit;
		resp->has_unit = true;
		resp->unit = (Ringkv__V1__RateLimitUnit)s->lim->unit;
		resp->has_remaining = true;
		resp->remaining = s->v.remaining;
		resp->has_reset_after_ms = true;
		resp->reset_after_ms = s->v.reset_after_ms;
		resp->has_retry_after_ms = true;
		resp->retry_after_ms = allowed ? 0 : s->v.retry_after_ms;
	}
	return RK_OK;
}

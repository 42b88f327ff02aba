/*
 * The Idgen RPC handlers; see idgen_service.h.
 *
 * Two paths for NextId / NextIds. The fast path runs on nng's callback
 * thread and asks the generator for IDs with RK_SNOWFLAKE_NONBLOCK: when
 * the clock has moved on (or the sequence of this ms has room) and the
 * high-water mark is ahead, that is a lock, a clock read and a few
 * stores, and the reply goes out at once. When the generator would have
 * to wait (next ms, a small backward step) or persist the mark (an
 * fsync), the call is handed to the service's own worker pool, whose
 * threads may block; they reply when done. The server's own pool is not
 * used so that a fast-path call never pays a thread hop.
 *
 * Shutdown. rk_idgen_service_stop() answers every call the service
 * holds (it drains the pool) before it returns, and must run before the
 * RPC server is freed; it is safe whether or not the server still takes
 * calls. `accepting` (under `mu`) closes the hand-off: after stop no call
 * is queued, and a handler that still runs answers a call that needs the
 * slow path UNAVAILABLE. The generator and the mark file live until
 * rk_idgen_service_free(), after the server is gone.
 *
 * The mark. Issuers persist it themselves only when they reach it (the
 * reserve hook, under the generator's lock); while IDs flow, the marker
 * thread raises it half a chunk early, so in steady issuing no call waits
 * for an fsync. Info and the fast path take the generator's lock, which an
 * issuer holds across that fsync when it does happen: the fast path only
 * tries it (and goes to the pool), Info waits for it.
 *
 * Metrics (all ringkv_idgen_*): ids_issued_total, calls_waited_total,
 * clock_backward_total{action="waited"|"refused"}, clock_behind_ms,
 * refused_total{reason=...}, high_water_ms, high_water_stores_total.
 */
#include "idgen_service.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "core/workpool.h"
#include "hwm.h"
#include "ringkv/v1/idgen.pb-c.h"
#include "worker.h"

#define N_REFUSALS       6 /* rk_snowflake_refusal_t values, plus "no_lease" */
#define REFUSED_NO_LEASE 5

struct rk_idgen_service {
	rk_idgen_config_t cfg;      /* copied config */
	rk_idgen_worker_t worker;   /* where the identity came from */
	rk_hwm_t *hwm;              /* the mark file, locked */
	rk_snowflake_t *gen;        /* the generator */
	pthread_mutex_t mu;         /* guards accepting and the hand-off */
	bool accepting;             /* false after stop */
	rk_workpool_t *pool;        /* threads for calls that wait */
	atomic_bool refusing;       /* last issue refused: log edges */
	rk_counter_t *issued;       /* ids_issued_total */
	rk_counter_t *waited_calls; /* calls that took the slow path */
	rk_counter_t *back_waited;  /* backward steps waited out */
	rk_counter_t *back_refused; /* calls refused for a step */
	rk_counter_t *seq_waits;    /* waits for the next ms */
	rk_counter_t *refused[N_REFUSALS]; /* by reason; [0] unused */
	rk_counter_t *stores;              /* marks persisted */
	rk_gauge_t *behind;                /* last backward step seen, ms */
	rk_gauge_t *mark;                  /* high-water mark, Unix ms */
	pthread_mutex_t hwm_mu;    /* serializes stores of the mark; taken after
	                              the generator's lock, never before it */
	pthread_t marker;          /* raises the mark ahead of use */
	bool marker_running;       /* marker was started */
	pthread_mutex_t marker_mu; /* guards marker_stop */
	pthread_cond_t marker_cv;  /* wakes the marker to stop */
	bool marker_stop;          /* the marker should exit */
};

/* A call handed to the pool; lives in the call's arena. */
typedef struct slow_call {
	rk_task_t task;        /* first: the pool's link */
	rk_idgen_service_t *s; /* the service */
	rk_rpc_call_t *call;   /* to reply to */
	uint32_t count;        /* IDs wanted */
	bool batch;            /* NextIds (else NextId) */
	uint64_t *ids;         /* COUNT slots, in the arena */
} slow_call_t;

/* ---------------------------------------------------------- methods */

static rk_rpc_method_t methods[4];
static const char *const method_names[4] = {"NextId", "NextIds", "Decode",
                                            "Info"};
static pthread_once_t methods_once = PTHREAD_ONCE_INIT;
static bool methods_ok;

static void resolve_methods(void)
{
	methods_ok = true;
	for (int i = 0; i < 4; i++)
		if (rk_rpc_method_resolve(&ringkv__v1__idgen__descriptor,
		                          &ringkv__v1__idgen_method__descriptor,
		                          method_names[i],
		                          &methods[i]) != RK_OK)
			methods_ok = false;
}

const rk_rpc_method_t *rk_idgen_method(const char *name)
{
	pthread_once(&methods_once, resolve_methods);
	if (!methods_ok)
		return NULL;
	for (int i = 0; i < 4; i++)
		if (strcmp(name, method_names[i]) == 0)
			return &methods[i];
	return NULL;
}

/* ---------------------------------------------------------- answers */

static void count_outcome(rk_idgen_service_t *s, rk_status_t st, uint32_t count,
                          const rk_snowflake_outcome_t *o)
{
	if (o->waited_step)
		rk_counter_add(s->back_waited, 1);
	if (o->waited_sequence)
		rk_counter_add(s->seq_waits, 1);
	if (o->step_ms > 0)
		rk_gauge_set(s->behind, (double)o->step_ms);
	if (st == RK_OK) {
		rk_counter_add(s->issued, count);
		if (atomic_exchange(&s->refusing, false))
			rk_info("issuing IDs again: the clock caught up");
		return;
	}
	if (st != RK_UNAVAILABLE)
		return;
	if (o->refusal > 0 && o->refusal < N_REFUSALS)
		rk_counter_add(s->refused[o->refusal], 1);
	if (o->refusal == RK_SNOWFLAKE_CLOCK_BACK)
		rk_counter_add(s->back_refused, 1);
	if (!atomic_exchange(&s->refusing, true))
		rk_warn("refusing IDs: %s", o->why);
}

static void answer(rk_idgen_service_t *s, rk_rpc_call_t *call, rk_status_t st,
                   uint32_t count, bool batch, const uint64_t *ids,
                   const rk_snowflake_outcome_t *o)
{
	count_outcome(s, st, count, o);
	if (st != RK_OK) {
		rk_rpc_reply_error(call, st, o->retry_after_ms, "%s", o->why);
		return;
	}
	if (!batch) {
		Ringkv__V1__NextIdResponse r =
		    RINGKV__V1__NEXT_ID_RESPONSE__INIT;
		r.has_id = true;
		r.id = ids[0];
		rk_rpc_reply(call, &r.base);
		return;
	}
	Ringkv__V1__NextIdsResponse r = RINGKV__V1__NEXT_IDS_RESPONSE__INIT;
	r.has_count = true;
	r.count = count;
	if (o->contiguous) {
		r.has_first_id = true;
		r.first_id = ids[0];
	} else {
		r.n_ids = count;
		r.ids = (uint64_t *)ids;
	}
	rk_rpc_reply(call, &r.base);
}

static void slow_run(rk_task_t *task)
{
	slow_call_t *sc = (slow_call_t *)task;
	rk_snowflake_outcome_t o;
	rk_status_t st =
	    rk_snowflake_next(sc->s->gen, sc->count, sc->ids, 0, &o);
	answer(sc->s, sc->call, st, sc->count, sc->batch, sc->ids, &o);
}

/* Issues COUNT IDs for CALL: at once if it can, else on the pool. */
static void issue(rk_idgen_service_t *s, rk_rpc_call_t *call, uint32_t count,
                  bool batch)
{
	if (count == 0 || count > RK_SNOWFLAKE_MAX_BATCH) {
		rk_rpc_reply_error(call, RK_INVALID_ARGUMENT, 0,
		                   "count must be 1..%u, got %u",
		                   RK_SNOWFLAKE_MAX_BATCH, count);
		return;
	}
	uint64_t one;
	uint64_t *ids = &one;
	if (count > 1 || batch) {
		ids = rk_rpc_call_alloc(call, count * sizeof(uint64_t));
		if (ids == NULL) {
			rk_rpc_reply_error(call, RK_RESOURCE_EXHAUSTED, 0,
			                   "out of memory for %u IDs", count);
			return;
		}
	}
	if (!rk_idgen_worker_held(&s->worker, NULL)) {
		rk_counter_add(s->refused[REFUSED_NO_LEASE], 1);
		rk_rpc_reply_error(call, RK_UNAVAILABLE, 1000,
		                   "no worker id is held: not issuing IDs");
		return;
	}
	rk_snowflake_outcome_t o;
	rk_status_t st =
	    rk_snowflake_next(s->gen, count, ids, RK_SNOWFLAKE_NONBLOCK, &o);
	if (st != RK_ABORTED) {
		answer(s, call, st, count, batch, ids, &o);
		return;
	}
	slow_call_t *sc = rk_rpc_call_alloc(call, sizeof(*sc));
	if (sc == NULL) {
		rk_rpc_reply_error(call, RK_RESOURCE_EXHAUSTED, 0,
		                   "out of memory");
		return;
	}
	if (ids == &one) {
		ids = rk_rpc_call_alloc(call, sizeof(uint64_t));
		if (ids == NULL) {
			rk_rpc_reply_error(call, RK_RESOURCE_EXHAUSTED, 0,
			                   "out of memory");
			return;
		}
	}
	*sc = (slow_call_t){.task = {.fn = slow_run},
	                    .s = s,
	                    .call = call,
	                    .count = count,
	                    .batch = batch,
	                    .ids = ids};
	/* Counted before the hand-off: the reply may go out before
	 * submit returns, and whoever reads the metric after it must
	 * see the count. */
	pthread_mutex_lock(&s->mu);
	rk_status_t qs = RK_UNAVAILABLE;
	if (s->accepting) {
		rk_counter_add(s->waited_calls, 1);
		qs = rk_workpool_submit(s->pool, &sc->task);
	}
	pthread_mutex_unlock(&s->mu);
	if (qs != RK_OK)
		rk_rpc_reply_error(call, RK_UNAVAILABLE, 1000,
		                   "the ID service is stopping");
}

/* ---------------------------------------------------------- handlers */

static void handle_next_id(rk_rpc_call_t *call, const ProtobufCMessage *msg,
                           void *arg)
{
	(void)msg;
	issue(arg, call, 1, false);
}

static void handle_next_ids(rk_rpc_call_t *call, const ProtobufCMessage *msg,
                            void *arg)
{
	const Ringkv__V1__NextIdsRequest *req = (const void *)msg;
	issue(arg, call, req->has_count ? req->count : 0, true);
}

static void handle_decode(rk_rpc_call_t *call, const ProtobufCMessage *msg,
                          void *arg)
{
	rk_idgen_service_t *s = arg;
	const Ringkv__V1__DecodeRequest *req = (const void *)msg;
	rk_snowflake_parts_t p;
	if (!req->has_id) {
		rk_rpc_reply_error(call, RK_INVALID_ARGUMENT, 0,
		                   "id is required");
		return;
	}
	if (rk_snowflake_decompose(req->id, &p) != RK_OK) {
		rk_rpc_reply_error(call, RK_INVALID_ARGUMENT, 0,
		                   "%" PRIu64 " is not an ID: its sign bit is "
		                   "set",
		                   req->id);
		return;
	}
	Ringkv__V1__DecodeResponse r = RINGKV__V1__DECODE_RESPONSE__INIT;
	r.has_timestamp_ms = r.has_ms_since_epoch = true;
	r.has_datacenter_id = r.has_worker_id = r.has_sequence = true;
	r.timestamp_ms = s->cfg.epoch_ms + p.ms_since_epoch;
	r.ms_since_epoch = p.ms_since_epoch;
	r.datacenter_id = p.datacenter;
	r.worker_id = p.worker;
	r.sequence = p.sequence;
	rk_rpc_reply(call, &r.base);
}

static void handle_info(rk_rpc_call_t *call, const ProtobufCMessage *msg,
                        void *arg)
{
	(void)msg;
	rk_idgen_service_t *s = arg;
	rk_snowflake_outcome_t o;
	rk_status_t st = rk_snowflake_probe(s->gen, &o);
	uint64_t lease_exp = 0;
	if (!rk_idgen_worker_held(&s->worker, &lease_exp) && st == RK_OK) {
		st = RK_UNAVAILABLE;
		o.retry_after_ms = 1000;
		snprintf(o.why, sizeof(o.why),
		         "no worker id is held: not issuing IDs");
	}
	rk_snowflake_info_t in;
	rk_snowflake_get_info(s->gen, &in);

	Ringkv__V1__IdLayout layout = RINGKV__V1__ID_LAYOUT__INIT;
	layout.has_sign_bits = layout.has_timestamp_bits = true;
	layout.has_datacenter_bits = layout.has_worker_bits = true;
	layout.has_sequence_bits = true;
	layout.sign_bits = 1;
	layout.timestamp_bits = RK_SNOWFLAKE_TIMESTAMP_BITS;
	layout.datacenter_bits = RK_SNOWFLAKE_DATACENTER_BITS;
	layout.worker_bits = RK_SNOWFLAKE_WORKER_BITS;
	layout.sequence_bits = RK_SNOWFLAKE_SEQUENCE_BITS;

	Ringkv__V1__Status issuing = RINGKV__V1__STATUS__INIT;
	issuing.has_code = true;
	issuing.code = (Ringkv__V1__StatusCode)st;
	if (st != RK_OK) {
		issuing.message = o.why;
		issuing.has_retry_after_ms = true;
		issuing.retry_after_ms = o.retry_after_ms;
	}

	Ringkv__V1__InfoResponse r = RINGKV__V1__INFO_RESPONSE__INIT;
	r.layout = &layout;
	r.has_epoch_ms = r.has_expires_at_ms = true;
	r.epoch_ms = s->cfg.epoch_ms;
	r.expires_at_ms = rk_snowflake_expires_at_ms(s->cfg.epoch_ms);
	r.has_datacenter_id = r.has_worker_id = r.has_worker_id_source = true;
	r.datacenter_id = s->worker.identity.datacenter;
	r.worker_id = s->worker.identity.worker;
	r.worker_id_source = (Ringkv__V1__WorkerIdSource)s->worker.kind;
	if (lease_exp != 0) {
		r.has_lease_expires_at_ms = true;
		r.lease_expires_at_ms = lease_exp;
	}
	r.has_high_water_ms = r.has_last_issued_ms = r.has_clock_state = true;
	r.high_water_ms = in.reserved_ms;
	r.last_issued_ms = in.last_issued_ms;
	r.clock_state = (Ringkv__V1__IdgenClockState)in.state;
	r.has_max_clock_step_ms = r.has_max_batch = true;
	r.max_clock_step_ms = s->cfg.max_step_ms;
	r.max_batch = RK_SNOWFLAKE_MAX_BATCH;
	r.issuing = &issuing;
	rk_rpc_reply(call, &r.base);
}

/* ---------------------------------------------------------- life cycle */

static rk_status_t reserve(void *arg, uint64_t mark_ms, char *why, size_t len)
{
	rk_idgen_service_t *s = arg;
	if (s->hwm == NULL) {
		rk_gauge_set(s->mark, (double)mark_ms);
		return RK_OK; /* not persisted: warned at start */
	}
	pthread_mutex_lock(&s->hwm_mu);
	rk_status_t st = rk_hwm_store(s->hwm, mark_ms, why, len);
	double stored = (double)rk_hwm_mark(s->hwm);
	pthread_mutex_unlock(&s->hwm_mu);
	if (st == RK_OK) {
		rk_counter_add(s->stores, 1);
		rk_gauge_set(s->mark, stored);
	} else {
		rk_error("high-water mark: %s", why);
	}
	return st;
}

/* The marker thread: every quarter chunk, while IDs flow close to the
 * mark, persists the next mark and tells the generator, so that issuers
 * find it ahead and never wait for the fsync themselves. Holds only
 * hwm_mu while storing, then the generator's lock to record the mark:
 * never both, so it cannot deadlock with an issuer's reserve hook. */
static void *marker_main(void *arg)
{
	rk_idgen_service_t *s = arg;
	uint64_t period_ns = (uint64_t)(s->cfg.chunk_ms / 4) * 1000000u;
	if (period_ns == 0)
		period_ns = 1000000u;
	if (period_ns > 250000000u)
		period_ns = 250000000u;
	bool failing = false;
	pthread_mutex_lock(&s->marker_mu);
	while (!s->marker_stop) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		uint64_t ns = (uint64_t)ts.tv_nsec + period_ns;
		ts.tv_sec += (time_t)(ns / 1000000000u);
		ts.tv_nsec = (long)(ns % 1000000000u);
		pthread_cond_timedwait(&s->marker_cv, &s->marker_mu, &ts);
		if (s->marker_stop)
			break;
		pthread_mutex_unlock(&s->marker_mu);
		uint64_t mark;
		if (rk_snowflake_mark_wanted(s->gen, &mark)) {
			char why[192] = "";
			pthread_mutex_lock(&s->hwm_mu);
			rk_status_t st =
			    rk_hwm_store(s->hwm, mark, why, sizeof(why));
			double stored = (double)rk_hwm_mark(s->hwm);
			pthread_mutex_unlock(&s->hwm_mu);
			if (st == RK_OK) {
				rk_counter_add(s->stores, 1);
				rk_gauge_set(s->mark, stored);
				rk_snowflake_mark_persisted(s->gen, mark);
				failing = false;
			} else if (!failing) {
				/* Issuers will try again themselves and
				 * refuse if they cannot. */
				rk_warn("high-water mark: %s", why);
				failing = true;
			}
		}
		pthread_mutex_lock(&s->marker_mu);
	}
	pthread_mutex_unlock(&s->marker_mu);
	return NULL;
}

static rk_status_t register_metrics(rk_idgen_service_t *s, rk_metrics_t *m)
{
	s->issued = rk_metrics_counter(m, "ringkv_idgen_ids_issued_total",
	                               "IDs issued.", "");
	s->waited_calls = rk_metrics_counter(
	    m, "ringkv_idgen_calls_waited_total",
	    "Calls that had to wait for the clock or persist the mark.", "");
	const char *bh = "Backward clock steps: waited out, or calls refused.";
	s->back_waited = rk_metrics_counter(
	    m, "ringkv_idgen_clock_backward_total", bh, "action=\"waited\"");
	s->back_refused = rk_metrics_counter(
	    m, "ringkv_idgen_clock_backward_total", bh, "action=\"refused\"");
	s->seq_waits = rk_metrics_counter(
	    m, "ringkv_idgen_sequence_waits_total",
	    "Waits for the next ms after the sequence ran out.", "");
	static const char *const reasons[N_REFUSALS] = {
	    NULL,           "clock_back",  "clock_stalled", "high_water_mark",
	    "out_of_range", "no_worker_id"};
	for (int i = 1; i < N_REFUSALS; i++) {
		char labels[64];
		snprintf(labels, sizeof(labels), "reason=\"%s\"", reasons[i]);
		s->refused[i] = rk_metrics_counter(
		    m, "ringkv_idgen_refused_total",
		    "Calls refused with UNAVAILABLE, by reason.", labels);
	}
	s->stores =
	    rk_metrics_counter(m, "ringkv_idgen_high_water_stores_total",
	                       "High-water marks persisted (fsync).", "");
	s->behind = rk_metrics_gauge(m, "ringkv_idgen_clock_behind_ms",
	                             "Last backward clock step seen, ms.", "");
	s->mark = rk_metrics_gauge(m, "ringkv_idgen_high_water_ms",
	                           "Persisted high-water mark, Unix ms.", "");
	for (int i = 1; i < N_REFUSALS; i++)
		if (s->refused[i] == NULL)
			return RK_RESOURCE_EXHAUSTED;
	if (!s->issued || !s->waited_calls || !s->back_waited ||
	    !s->back_refused || !s->seq_waits || !s->stores || !s->behind ||
	    !s->mark)
		return RK_RESOURCE_EXHAUSTED;
	return RK_OK;
}

rk_status_t rk_idgen_service_new(const rk_idgen_config_t *cfg,
                                 const rk_snowflake_clock_t *clock,
                                 rk_metrics_t *metrics,
                                 rk_idgen_service_t **out, char *why,
                                 size_t len)
{
	return rk_idgen_service_new_with(cfg, clock, NULL, metrics, out, why,
	                                 len);
}

rk_status_t rk_idgen_service_new_with(const rk_idgen_config_t *cfg,
                                      const rk_snowflake_clock_t *clock,
                                      const rk_idgen_worker_t *source,
                                      rk_metrics_t *metrics,
                                      rk_idgen_service_t **out, char *why,
                                      size_t len)
{
	rk_idgen_service_t *s = calloc(1, sizeof(*s));
	if (s == NULL) {
		snprintf(why, len, "out of memory");
		return RK_RESOURCE_EXHAUSTED;
	}
	pthread_mutex_init(&s->mu, NULL);
	pthread_mutex_init(&s->hwm_mu, NULL);
	pthread_mutex_init(&s->marker_mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->marker_cv, &ca);
	pthread_condattr_destroy(&ca);
	s->cfg = *cfg;
	if (clock == NULL)
		clock = rk_snowflake_system_clock();
	rk_status_t st = RK_OK;
	if (source != NULL)
		s->worker = *source; /* not the static kind: see the header */
	else
		st = rk_idgen_worker_static(cfg->datacenter_id, cfg->worker_id,
		                            &s->worker);
	if (st != RK_OK) {
		snprintf(why, len, "datacenter %u / worker %u out of range",
		         cfg->datacenter_id, cfg->worker_id);
		goto fail;
	}
	st = rk_idgen_worker_acquire(&s->worker, why, len);
	if (st != RK_OK) {
		s->worker.ops = NULL; /* nothing to release */
		goto fail;
	}
	uint64_t floor_ms = 0;
	uint64_t now_ms = clock->wall_us(clock->arg) / 1000;
	uint64_t reserved;
	if (cfg->data_dir[0] != '\0') {
		st = rk_hwm_open(cfg->data_dir, s->worker.identity.datacenter,
		                 s->worker.identity.worker, &s->hwm, &floor_ms,
		                 why, len);
		if (st != RK_OK)
			goto fail;
		/* A first mark ahead of now proves the file writable before
		 * we say READY, and covers the first chunk. */
		reserved =
		    (floor_ms > now_ms ? floor_ms : now_ms) + cfg->chunk_ms;
		st = rk_hwm_store(s->hwm, reserved, why, len);
		if (st != RK_OK)
			goto fail;
	} else {
		reserved = now_ms + cfg->chunk_ms;
		rk_warn("idgen.data_dir is not set (and there is no systemd "
		        "StateDirectory): the high-water mark is kept in "
		        "memory only, so a restart with the clock set back "
		        "could reissue IDs; set idgen.data_dir");
	}
	rk_snowflake_opts_t go = {
	    .epoch_ms = cfg->epoch_ms,
	    .datacenter_id = s->worker.identity.datacenter,
	    .worker_id = s->worker.identity.worker,
	    .max_step_ms = cfg->max_step_ms,
	    .stall_ms = cfg->stall_ms,
	    .chunk_ms = cfg->chunk_ms,
	    .floor_ms = floor_ms,
	    .reserved_ms = reserved,
	    .clock = *clock,
	    .reserve = reserve,
	    .reserve_arg = s,
	};
	st = register_metrics(s, metrics);
	if (st != RK_OK) {
		snprintf(why, len, "cannot register metrics");
		goto fail;
	}
	st = rk_snowflake_new(&go, &s->gen);
	if (st != RK_OK) {
		snprintf(why, len, "bad generator options");
		goto fail;
	}
	st = rk_workpool_new(cfg->threads, &s->pool);
	if (st != RK_OK) {
		snprintf(why, len, "cannot start threads");
		goto fail;
	}
	s->accepting = true;
	if (s->hwm != NULL) {
		if (pthread_create(&s->marker, NULL, marker_main, s) != 0) {
			snprintf(why, len, "cannot start the marker thread");
			st = RK_RESOURCE_EXHAUSTED;
			goto fail;
		}
		s->marker_running = true;
	}
	rk_gauge_set(s->mark, (double)reserved);
	if (s->hwm != NULL)
		rk_counter_add(s->stores, 1);
	if (floor_ms > now_ms)
		rk_warn("the clock (%" PRIu64 " ms) is behind the high-water "
		        "mark (%" PRIu64 " ms) by %" PRIu64 " ms: no ID until "
		        "it catches up",
		        now_ms, floor_ms, floor_ms - now_ms);
	rk_info("idgen: datacenter %u worker %u (from %s), epoch %" PRIu64
	        " ms, high-water mark %" PRIu64 " ms in %s",
	        s->worker.identity.datacenter, s->worker.identity.worker,
	        s->worker.kind == RK_IDGEN_WORKER_LEASE ? "a lease" : "config",
	        cfg->epoch_ms, floor_ms,
	        s->hwm ? rk_hwm_path(s->hwm) : "memory (not persisted)");
	*out = s;
	return RK_OK;
fail:
	rk_idgen_service_free(s);
	return st;
}

rk_status_t rk_idgen_service_route(rk_idgen_service_t *s, rk_rpc_server_t *srv)
{
	static const rk_rpc_handler_fn fns[4] = {
	    handle_next_id, handle_next_ids, handle_decode, handle_info};
	for (int i = 0; i < 4; i++) {
		const rk_rpc_method_t *m = rk_idgen_method(method_names[i]);
		if (m == NULL)
			return RK_INTERNAL;
		rk_status_t st =
		    rk_rpc_server_handle(srv, m, fns[i], RK_RPC_INLINE, s);
		if (st != RK_OK)
			return st;
	}
	return RK_OK;
}

void rk_idgen_service_stop(rk_idgen_service_t *s)
{
	if (s == NULL)
		return;
	pthread_mutex_lock(&s->mu);
	s->accepting = false;
	rk_workpool_t *pool = s->pool;
	s->pool = NULL;
	pthread_mutex_unlock(&s->mu);
	rk_workpool_free(pool); /* runs what is queued; replies go out */
	/* The marker too: after stop nothing of ours may touch the metrics
	 * registry, which the runtime frees next. */
	if (s->marker_running) {
		pthread_mutex_lock(&s->marker_mu);
		s->marker_stop = true;
		pthread_cond_signal(&s->marker_cv);
		pthread_mutex_unlock(&s->marker_mu);
		pthread_join(s->marker, NULL);
		s->marker_running = false;
	}
}

void rk_idgen_service_free(rk_idgen_service_t *s)
{
	if (s == NULL)
		return;
	rk_idgen_service_stop(s);
	if (s->worker.ops != NULL)
		rk_idgen_worker_release(&s->worker);
	rk_snowflake_free(s->gen);
	rk_hwm_close(s->hwm);
	pthread_mutex_destroy(&s->mu);
	pthread_mutex_destroy(&s->hwm_mu);
	pthread_mutex_destroy(&s->marker_mu);
	pthread_cond_destroy(&s->marker_cv);
	free(s);
}

rk_snowflake_t *rk_idgen_service_generator(rk_idgen_service_t *s)
{
	return s->gen;
}

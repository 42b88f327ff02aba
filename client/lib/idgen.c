/*
 * libringkv calls to ringkv-idgen; see include/ringkv/idgen.h. Each call
 * is one rk_conn_call(); replies are checked before they are trusted (a
 * batch must hold exactly the count asked for).
 */
#include <ringkv/idgen.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "conn.h"
#include "ringkv/v1/idgen.pb-c.h"

static rk_rpc_method_t m_next_id, m_next_ids, m_decode, m_info;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static bool resolved;

static void resolve(void)
{
	const ProtobufCServiceDescriptor *s = &ringkv__v1__idgen__descriptor;
	const ProtobufCEnumDescriptor *e =
	    &ringkv__v1__idgen_method__descriptor;
	resolved =
	    rk_rpc_method_resolve(s, e, "NextId", &m_next_id) == RK_OK &&
	    rk_rpc_method_resolve(s, e, "NextIds", &m_next_ids) == RK_OK &&
	    rk_rpc_method_resolve(s, e, "Decode", &m_decode) == RK_OK &&
	    rk_rpc_method_resolve(s, e, "Info", &m_info) == RK_OK;
}

static rk_status_t ready(ringkv_error_t *err)
{
	pthread_once(&once, resolve);
	if (!resolved) {
		rk_conn_error(err, "the Idgen contract has no method ids");
		return RK_INTERNAL;
	}
	return RK_OK;
}

static rk_status_t malformed(rk_rpc_result_t *res, ringkv_error_t *err,
                             const char *what)
{
	rk_rpc_result_clear(res);
	rk_conn_error(err, "malformed reply from the server: %s", what);
	return RK_INTERNAL;
}

rk_status_t ringkv_id_next(ringkv_conn_t *conn, uint64_t *id,
                           ringkv_error_t *err)
{
	rk_status_t st = ready(err);
	if (st != RK_OK)
		return st;
	Ringkv__V1__NextIdRequest req = RINGKV__V1__NEXT_ID_REQUEST__INIT;
	rk_rpc_result_t res;
	st = rk_conn_call(conn, &m_next_id, &req.base, &res, err);
	if (st != RK_OK) {
		rk_rpc_result_clear(&res);
		return st;
	}
	const Ringkv__V1__NextIdResponse *r = (const void *)res.response;
	if (!r->has_id)
		return malformed(&res, err, "no id");
	*id = r->id;
	rk_rpc_result_clear(&res);
	return RK_OK;
}

rk_status_t ringkv_id_next_batch(ringkv_conn_t *conn, uint32_t count,
                                 uint64_t *ids, bool *contiguous,
                                 ringkv_error_t *err)
{
	rk_status_t st = ready(err);
	if (st != RK_OK)
		return st;
	if (count == 0 || count > RINGKV_IDGEN_MAX_BATCH) {
		rk_conn_error(err, "count must be 1..%d, got %u",
		              RINGKV_IDGEN_MAX_BATCH, count);
		return RK_INVALID_ARGUMENT;
	}
	Ringkv__V1__NextIdsRequest req = RINGKV__V1__NEXT_IDS_REQUEST__INIT;
	req.has_count = true;
	req.count = count;
	rk_rpc_result_t res;
	st = rk_conn_call(conn, &m_next_ids, &req.base, &res, err);
	if (st != RK_OK) {
		rk_rpc_result_clear(&res);
		return st;
	}
	const Ringkv__V1__NextIdsResponse *r = (const void *)res.response;
	if (!r->has_count || r->count != count)
		return malformed(&res, err, "wrong count");
	if (r->has_first_id && r->n_ids == 0) {
		if (r->first_id > UINT64_MAX - count)
			return malformed(&res, err, "run overflows");
		for (uint32_t i = 0; i < count; i++)
			ids[i] = r->first_id + i;
		if (contiguous != NULL)
			*contiguous = true;
	} else if (!r->has_first_id && r->n_ids == count) {
		memcpy(ids, r->ids, count * sizeof(uint64_t));
		if (contiguous != NULL)
			*contiguous = false;
	} else {
		return malformed(&res, err, "neither a run nor a list");
	}
	rk_rpc_result_clear(&res);
	return RK_OK;
}

rk_status_t ringkv_id_decode_local(uint64_t id, uint64_t epoch_ms,
                                   ringkv_id_parts_t *out)
{
	if (id >> 63)
		return RK_INVALID_ARGUMENT;
	out->ms_since_epoch = id >> 22;
	out->timestamp_ms = epoch_ms + out->ms_since_epoch;
	out->datacenter_id = (uint32_t)(id >> 17) & 31u;
	out->worker_id = (uint32_t)(id >> 12) & 31u;
	out->sequence = (uint32_t)id & 4095u;
	return RK_OK;
}

rk_status_t ringkv_id_decode(ringkv_conn_t *conn, uint64_t id,
                             ringkv_id_parts_t *out, ringkv_error_t *err)
{
	rk_status_t st = ready(err);
	if (st != RK_OK)
		return st;
	Ringkv__V1__DecodeRequest req = RINGKV__V1__DECODE_REQUEST__INIT;
	req.has_id = true;
	req.id = id;
	rk_rpc_result_t res;
	st = rk_conn_call(conn, &m_decode, &req.base, &res, err);
	if (st != RK_OK) {
		rk_rpc_result_clear(&res);
		return st;
	}
	const Ringkv__V1__DecodeResponse *r = (const void *)res.response;
	out->timestamp_ms = r->timestamp_ms;
	out->ms_since_epoch = r->ms_since_epoch;
	out->datacenter_id = r->datacenter_id;
	out->worker_id = r->worker_id;
	out->sequence = r->sequence;
	rk_rpc_result_clear(&res);
	return RK_OK;
}

rk_status_t ringkv_idgen_info(ringkv_conn_t *conn, ringkv_idgen_info_t *out,
                              ringkv_error_t *err)
{
	rk_status_t st = ready(err);
	if (st != RK_OK)
		return st;
	Ringkv__V1__InfoRequest req = RINGKV__V1__INFO_REQUEST__INIT;
	rk_rpc_result_t res;
	st = rk_conn_call(conn, &m_info, &req.base, &res, err);
	if (st != RK_OK) {
		rk_rpc_result_clear(&res);
		return st;
	}
	const Ringkv__V1__InfoResponse *r = (const void *)res.response;
	memset(out, 0, sizeof(*out));
	if (r->layout != NULL) {
		out->timestamp_bits = r->layout->timestamp_bits;
		out->datacenter_bits = r->layout->datacenter_bits;
		out->worker_bits = r->layout->worker_bits;
		out->sequence_bits = r->layout->sequence_bits;
	}
	out->epoch_ms = r->epoch_ms;
	out->expires_at_ms = r->expires_at_ms;
	out->datacenter_id = r->datacenter_id;
	out->worker_id = r->worker_id;
	out->worker_id_source = (uint32_t)r->worker_id_source;
	out->lease_expires_at_ms = r->lease_expires_at_ms;
	out->high_water_ms = r->high_water_ms;
	out->last_issued_ms = r->last_issued_ms;
	out->clock_state = (uint32_t)r->clock_state;
	out->max_clock_step_ms = r->max_clock_step_ms;
	out->max_batch = r->max_batch;
	out->issuing = RK_OK;
	if (r->issuing != NULL) {
		int code = (int)r->issuing->code;
		out->issuing =
		    rk_status_valid(code) ? (rk_status_t)code : RK_UNKNOWN;
		snprintf(out->issuing_message, sizeof(out->issuing_message),
		         "%s", r->issuing->message ? r->issuing->message : "");
		out->issuing_retry_after_ms = r->issuing->retry_after_ms;
	}
	rk_rpc_result_clear(&res);
	return RK_OK;
}

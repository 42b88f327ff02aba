/*
 * Health service handlers and the probe the runtime (and tests, and the
 * `ringkv health` command) use to ask a server whether it serves.
 */
#include "service/health.h"

#include <pthread.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "core/clock.h"
#include "ringkv/v1/common.pb-c.h"

static rk_rpc_method_t check_method;
static rk_rpc_method_t echo_method;
static pthread_once_t methods_once = PTHREAD_ONCE_INIT;

static void methods_resolve(void)
{
	/* The contract is ours and fixed at build time: a failure here is a
	 * broken proto file, caught by the first test that runs. */
	if (rk_rpc_method_resolve(&ringkv__v1__health__descriptor,
	                          &ringkv__v1__health_method__descriptor,
	                          "Check", &check_method) != RK_OK ||
	    rk_rpc_method_resolve(&ringkv__v1__health__descriptor,
	                          &ringkv__v1__health_method__descriptor,
	                          "Echo", &echo_method) != RK_OK)
		abort();
}

const rk_rpc_method_t *rk_health_check_method(void)
{
	pthread_once(&methods_once, methods_resolve);
	return &check_method;
}

const rk_rpc_method_t *rk_health_echo_method(void)
{
	pthread_once(&methods_once, methods_resolve);
	return &echo_method;
}

static void handle_check(rk_rpc_call_t *call, const ProtobufCMessage *msg,
                         void *arg)
{
	rk_health_t *h = arg;
	const Ringkv__V1__HealthCheckRequest *req =
	    (const Ringkv__V1__HealthCheckRequest *)msg;
	if (req->service != NULL && req->service[0] != '\0' &&
	    strcmp(req->service, h->service) != 0) {
		rk_rpc_reply_error(call, RK_NOT_FOUND,
		                   0, "this process serves %s, not %s",
		                   h->service, req->service);
		return;
	}
	Ringkv__V1__HealthCheckResponse resp =
	    RINGKV__V1__HEALTH_CHECK_RESPONSE__INIT;
	bool serving = atomic_load(&h->serving);
	resp.has_state = true;
	resp.state = serving ? RINGKV__V1__SERVING_STATE__SERVING
	                     : RINGKV__V1__SERVING_STATE__NOT_SERVING;
	resp.service = (char *)h->service;
	resp.version = (char *)RINGKV_VERSION;
	resp.node_id = (char *)h->node_id;
	resp.has_uptime_ms = true;
	resp.uptime_ms = rk_clock_mono_ms() - h->start_ms;
	const char *detail = atomic_load(&h->detail);
	if (!serving && detail != NULL)
		resp.detail = (char *)detail;
	rk_rpc_reply(call, &resp.base);
}

static void handle_echo(rk_rpc_call_t *call, const ProtobufCMessage *msg,
                        void *arg)
{
	(void)arg;
	const Ringkv__V1__EchoRequest *req =
	    (const Ringkv__V1__EchoRequest *)msg;
	Ringkv__V1__EchoResponse resp = RINGKV__V1__ECHO_RESPONSE__INIT;
	resp.has_payload = req->has_payload;
	resp.payload = req->payload;
	rk_rpc_reply(call, &resp.base);
}

rk_status_t rk_health_register(rk_rpc_server_t *srv, rk_health_t *h)
{
	rk_status_t st = rk_rpc_server_handle(srv, rk_health_check_method(),
	                                      handle_check, RK_RPC_INLINE, h);
	if (st == RK_OK)
		st = rk_rpc_server_handle(srv, rk_health_echo_method(),
		                          handle_echo, RK_RPC_INLINE, NULL);
	return st;
}

rk_status_t rk_health_probe(rk_rpc_client_t *client, uint32_t timeout_ms,
                            char *detail, size_t len)
{
	Ringkv__V1__HealthCheckRequest req =
	    RINGKV__V1__HEALTH_CHECK_REQUEST__INIT;
	rk_rpc_result_t res;
	rk_status_t st = rk_rpc_call(client, rk_health_check_method(),
	                             &req.base, timeout_ms, &res);
	if (st != RK_OK) {
		snprintf(detail, len, "%s: %s", rk_status_name(st),
		         res.message);
	} else {
		const Ringkv__V1__HealthCheckResponse *resp =
		    (const Ringkv__V1__HealthCheckResponse *)res.response;
		if (!resp->has_state ||
		    resp->state != RINGKV__V1__SERVING_STATE__SERVING) {
			snprintf(detail, len, "not serving: %s",
			         resp->detail ? resp->detail : "no reason given");
			st = RK_UNAVAILABLE;
		} else {
			snprintf(detail, len, "serving");
		}
	}
	rk_rpc_result_clear(&res);
	return st;
}

/*
 * The events socket: every change of the table but heartbeats is
 * published on an nng pub0 socket as one frame, packed and sealed exactly
 * like an RPC request frame (docs/wire.md: header, then with a cluster key
 * nonce | ciphertext | tag), whose plaintext is a serialized
 * ringkv.v1.MembershipEvent carrying the table version after the change.
 * A subscriber that sees a gap in versions calls Subscribe (or GetMembers)
 * again. Sending never blocks: pub0 drops a message for a subscriber that
 * cannot keep up, which the version gap then reveals.
 */
#include "agent_internal.h"

#include <nng/protocol/pubsub0/pub.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "rpc/frame.h"

rk_status_t rk_ms_events_open(rk_ms_agent_t *a)
{
	int rv = nng_pub0_open(&a->pub);
	if (rv != 0)
		return RK_INTERNAL;
	nng_listener l;
	rv = nng_listen(a->pub, a->cfg.events_listen, &l, 0);
	if (rv != 0) {
		rk_error("events socket %s: %s", a->cfg.events_listen,
		         nng_strerror(rv));
		nng_close(a->pub);
		return RK_UNAVAILABLE;
	}
	int port = 0;
	nng_listener_get_int(l, NNG_OPT_TCP_BOUND_PORT, &port);
	rk_ms_member_t *self = rk_ms_table_self(&a->table);
	snprintf(self->events_url, sizeof(self->events_url), "tcp://%s:%d",
	         a->cfg.advertise_host, port);
	pthread_mutex_lock(&a->mu);
	a->pub_open = true;
	pthread_mutex_unlock(&a->mu);
	return RK_OK;
}

void rk_ms_events_publish(void *arg, int kind, const rk_ms_member_t *m,
                          uint64_t version)
{
	rk_ms_agent_t *a = arg; /* its lock is held: we are inside a change */
	if (!a->pub_open)
		return;
	uint8_t digest[16];
	rk_ms_table_digest(&a->table, digest);
	rk_ms_pb_member_t h;
	rk_ms_member_to_pb(m, &h, 0);
	Ringkv__V1__MembershipEvent ev = RINGKV__V1__MEMBERSHIP_EVENT__INIT;
	ev.has_version = true;
	ev.version = version;
	ev.has_digest = true;
	ev.digest.data = digest;
	ev.digest.len = sizeof(digest);
	ev.has_kind = true;
	ev.kind = (Ringkv__V1__MembershipEventKind)kind;
	ev.member = &h.pb;
	ev.has_agent_node_id = true;
	ev.agent_node_id.data = a->table.m[0].id;
	ev.agent_node_id.len = RK_MS_ID_BYTES;
	nng_msg *msg = NULL;
	if (rk_frame_pack(a->sealer, RK_FRAME_REQUEST, NULL, &ev.base, &msg,
	                  NULL) != RK_OK)
		return;
	if (nng_sendmsg(a->pub, msg, NNG_FLAG_NONBLOCK) != 0)
		nng_msg_free(msg);
}

void rk_ms_events_close(rk_ms_agent_t *a)
{
	pthread_mutex_lock(&a->mu);
	bool open = a->pub_open;
	a->pub_open = false;
	pthread_mutex_unlock(&a->mu);
	if (open)
		nng_close(a->pub);
}

/*
 * Conversion between member entries and their protobuf messages. Incoming
 * messages were unpacked by the RPC layer within its memory budget; here
 * every field a peer chose is checked before it is copied into fixed-size
 * entries, so a malformed or hostile table is refused whole, and the
 * caller (the Gossip and Join handlers) merges nothing from it.
 */
#include "wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ring/ring.h"

static bool copy_str(char *dst, size_t cap, const char *src)
{
	if (src == NULL) {
		dst[0] = '\0';
		return true;
	}
	size_t len = strlen(src);
	if (len >= cap)
		return false;
	memcpy(dst, src, len + 1);
	return true;
}

rk_status_t rk_ms_member_from_pb(const Ringkv__V1__Member *pb,
                                 rk_ms_member_t *out, const char **why)
{
	memset(out, 0, sizeof(*out));
	*why = NULL;
	if (!pb->has_node_id || pb->node_id.len != RK_MS_ID_BYTES)
		*why = "member node_id is not 16 bytes";
	else if (!pb->has_generation || pb->generation == 0)
		*why = "member has no generation";
	else if (pb->generation > RK_MS_MAX_COUNTER ||
	         pb->incarnation > RK_MS_MAX_COUNTER ||
	         pb->heartbeat > RK_MS_MAX_COUNTER)
		*why = "generation, incarnation or heartbeat implausibly large";
	else if (!pb->has_role ||
	         pb->role < RINGKV__V1__SERVICE_ID__SERVICE_HEALTH ||
	         pb->role > RINGKV__V1__SERVICE_ID__SERVICE_IDGEN)
		*why = "member role unknown";
	else if (!pb->has_state || (int)pb->state < RK_MS_ALIVE ||
	         (int)pb->state > RK_MS_LEFT)
		*why = "member state unknown";
	else if (pb->weight > RK_RING_MAX_WEIGHT)
		*why = "member weight too large";
	else if (pb->n_endpoints > RK_MS_MAX_ENDPOINTS)
		*why = "too many endpoints";
	else if (pb->n_accusers > RK_MS_MAX_ACCUSERS)
		*why = "too many accusers";
	else if (pb->has_agent_node_id &&
	         pb->agent_node_id.len != RK_MS_ID_BYTES)
		*why = "agent_node_id is not 16 bytes";
	else if (!copy_str(out->datacenter, sizeof(out->datacenter),
	                   pb->datacenter) ||
	         !copy_str(out->rack, sizeof(out->rack), pb->rack) ||
	         !copy_str(out->name, sizeof(out->name), pb->name) ||
	         !copy_str(out->version, sizeof(out->version), pb->version))
		*why = "member name, version, datacenter or rack too long";
	if (*why != NULL)
		return RK_INVALID_ARGUMENT;
	memcpy(out->id, pb->node_id.data, RK_MS_ID_BYTES);
	out->generation = pb->generation;
	out->role = (int)pb->role;
	out->state = (int)pb->state;
	out->weight = pb->weight;
	out->heartbeat = pb->heartbeat;
	out->incarnation = pb->incarnation;
	out->state_since_ms = pb->state_since_ms;
	if (pb->has_agent_node_id) {
		out->has_agent = true;
		memcpy(out->agent_id, pb->agent_node_id.data, RK_MS_ID_BYTES);
	}
	for (size_t i = 0; i < pb->n_endpoints; i++) {
		const Ringkv__V1__Endpoint *e = pb->endpoints[i];
		char *dst = NULL;
		if (e->kind == RINGKV__V1__ENDPOINT_KIND__ENDPOINT_RPC)
			dst = out->rpc_url;
		else if (e->kind == RINGKV__V1__ENDPOINT_KIND__ENDPOINT_EVENTS)
			dst = out->events_url;
		if (dst == NULL)
			continue; /* kinds this agent does not use */
		/* An RPC endpoint may be on either transport (a rate
		 * limiter advertises its stream one); events are nng's. */
		bool scheme_ok = e->url == NULL || e->url[0] == '\0' ||
		                 strncmp(e->url, "tcp://", 6) == 0 ||
		                 (dst == out->rpc_url &&
		                  strncmp(e->url, "stream://", 9) == 0);
		if (!copy_str(dst, RK_MS_URL_MAX, e->url) || !scheme_ok) {
			*why = "endpoint URL too long, or not tcp:// (RPC: "
			       "tcp:// or stream://)";
			return RK_INVALID_ARGUMENT;
		}
	}
	for (size_t i = 0; i < pb->n_accusers; i++) {
		const Ringkv__V1__Accusation *a = pb->accusers[i];
		if (!a->has_accuser_node_id ||
		    a->accuser_node_id.len != RK_MS_ID_BYTES ||
		    (int)a->source < RK_MS_ACCUSE_STALLED ||
		    (int)a->source > RK_MS_ACCUSE_INDIRECT) {
			*why = "malformed accusation";
			return RK_INVALID_ARGUMENT;
		}
		rk_ms_accuser_t *dst = &out->accusers[out->naccusers++];
		memcpy(dst->id, a->accuser_node_id.data, RK_MS_ID_BYTES);
		dst->source = (int)a->source;
		dst->since_ms = a->since_ms;
		dst->incarnation = a->incarnation;
	}
	return RK_OK;
}

void rk_ms_member_to_pb(const rk_ms_member_t *m, rk_ms_pb_member_t *h,
                        uint64_t now)
{
	Ringkv__V1__Member init = RINGKV__V1__MEMBER__INIT;
	h->pb = init;
	Ringkv__V1__Member *pb = &h->pb;
	pb->has_node_id = true;
	pb->node_id.data = (uint8_t *)m->id;
	pb->node_id.len = RK_MS_ID_BYTES;
	pb->has_generation = true;
	pb->generation = m->generation;
	pb->has_role = true;
	pb->role = (Ringkv__V1__ServiceId)m->role;
	size_t ne = 0;
	const char *urls[2] = {m->rpc_url, m->events_url};
	const Ringkv__V1__EndpointKind kinds[2] = {
	    RINGKV__V1__ENDPOINT_KIND__ENDPOINT_RPC,
	    RINGKV__V1__ENDPOINT_KIND__ENDPOINT_EVENTS};
	for (int i = 0; i < 2; i++) {
		if (urls[i][0] == '\0')
			continue;
		Ringkv__V1__Endpoint e = RINGKV__V1__ENDPOINT__INIT;
		e.has_kind = true;
		e.kind = kinds[i];
		e.url = (char *)urls[i];
		h->ep[ne] = e;
		h->epp[ne] = &h->ep[ne];
		ne++;
	}
	pb->n_endpoints = ne;
	pb->endpoints = h->epp;
	pb->datacenter = (char *)m->datacenter;
	pb->rack = (char *)m->rack;
	pb->name = (char *)m->name;
	pb->version = (char *)m->version;
	pb->has_weight = true;
	pb->weight = m->weight;
	pb->has_state = true;
	pb->state = (Ringkv__V1__MemberState)m->state;
	pb->has_heartbeat = true;
	pb->heartbeat = m->heartbeat;
	pb->has_incarnation = true;
	pb->incarnation = m->incarnation;
	for (size_t i = 0; i < m->naccusers; i++) {
		Ringkv__V1__Accusation a = RINGKV__V1__ACCUSATION__INIT;
		a.has_accuser_node_id = true;
		a.accuser_node_id.data = (uint8_t *)m->accusers[i].id;
		a.accuser_node_id.len = RK_MS_ID_BYTES;
		a.has_source = true;
		a.source = (Ringkv__V1__AccusationSource)m->accusers[i].source;
		a.has_since_ms = true;
		a.since_ms = m->accusers[i].since_ms;
		a.has_incarnation = true;
		a.incarnation = m->accusers[i].incarnation;
		h->acc[i] = a;
		h->accp[i] = &h->acc[i];
	}
	pb->n_accusers = m->naccusers;
	pb->accusers = h->accp;
	pb->has_state_since_ms = true;
	pb->state_since_ms = m->state_since_ms;
	if (m->has_agent) {
		pb->has_agent_node_id = true;
		pb->agent_node_id.data = (uint8_t *)m->agent_id;
		pb->agent_node_id.len = RK_MS_ID_BYTES;
	}
	if (now != 0) {
		pb->has_heartbeat_age_ms = true;
		pb->heartbeat_age_ms =
		    now > m->rise_mono ? now - m->rise_mono : 0;
	}
}

rk_status_t rk_ms_pb_list_init(rk_ms_pb_list_t *l, const rk_ms_member_t *m,
                               size_t n, int role, uint64_t now)
{
	memset(l, 0, sizeof(*l));
	l->h = calloc(n ? n : 1, sizeof(*l->h));
	l->pp = calloc(n ? n : 1, sizeof(*l->pp));
	if (l->h == NULL || l->pp == NULL) {
		rk_ms_pb_list_fini(l);
		return RK_RESOURCE_EXHAUSTED;
	}
	for (size_t i = 0; i < n; i++) {
		if (role != 0 && m[i].role != role)
			continue;
		rk_ms_member_to_pb(&m[i], &l->h[l->n], now);
		l->pp[l->n] = &l->h[l->n].pb;
		l->n++;
	}
	return RK_OK;
}

void rk_ms_pb_list_fini(rk_ms_pb_list_t *l)
{
	free(l->h);
	free(l->pp);
	memset(l, 0, sizeof(*l));
}

void rk_ms_uuid_format(const uint8_t id[RK_MS_ID_BYTES], char out[37])
{
	snprintf(out, 37,
	         "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
	         "%02x%02x%02x%02x%02x%02x",
	         id[0], id[1], id[2], id[3], id[4], id[5], id[6], id[7], id[8],
	         id[9], id[10], id[11], id[12], id[13], id[14], id[15]);
}

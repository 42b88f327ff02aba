/*
 * ringkv cluster status [--key FILE] [--timeout MS] [--role ROLE] URL
 *
 * Asks one membership agent for its member table (GetMembers) and for the
 * ring of every role in it (GetRing, for the share each member owns), and
 * prints one line per member: state, address, datacenter/rack, weight,
 * share of its role's ring, heartbeat age, generation and incarnation,
 * and who accuses it when it is suspect or down.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "conn.h"
#include "ringkv/v1/membership.pb-c.h"

#define USAGE "usage: ringkv cluster status [--key FILE] [--timeout MS] URL\n"

static const char *state_name(int s)
{
	static const char *const n[] = {"?", "alive", "suspect", "down",
	                                "left"};
	return s >= 0 && s <= 4 ? n[s] : "?";
}

static const char *role_name(int r)
{
	static const char *const n[] = {"?",       "health",     "coordinator",
	                                "storage", "membership", "ratelimit",
	                                "idgen"};
	return r >= 0 && r <= 6 ? n[r] : "?";
}

static const char *source_name(int s)
{
	static const char *const n[] = {"?", "stalled", "probe", "indirect"};
	return s >= 0 && s <= 3 ? n[s] : "?";
}

static void short_id(const ProtobufCBinaryData *id, char out[9])
{
	out[0] = '\0';
	for (size_t i = 0; i < 4 && i < id->len; i++)
		snprintf(out + 2 * i, 3, "%02x", id->data[i]);
}

/* Share in ppm of member ID in the ring of its role, or -1. */
static long share_of(Ringkv__V1__GetRingResponse **rings, size_t nrings,
                     const Ringkv__V1__Member *m)
{
	for (size_t r = 0; r < nrings; r++) {
		if (rings[r] == NULL || rings[r]->ring == NULL ||
		    rings[r]->ring->role != m->role)
			continue;
		const Ringkv__V1__RingView *v = rings[r]->ring;
		for (size_t i = 0; i < v->n_members; i++) {
			const Ringkv__V1__Member *x = v->members[i]->member;
			if (x != NULL && x->node_id.len == m->node_id.len &&
			    memcmp(x->node_id.data, m->node_id.data,
			           m->node_id.len) == 0)
				return (long)v->members[i]->share_ppm;
		}
	}
	return -1;
}

static const char *name_of(const Ringkv__V1__MemberTable *t,
                           const ProtobufCBinaryData *id)
{
	for (size_t i = 0; i < t->n_members; i++) {
		const Ringkv__V1__Member *m = t->members[i];
		if (m->node_id.len == id->len &&
		    memcmp(m->node_id.data, id->data, id->len) == 0 && m->name)
			return m->name;
	}
	return "";
}

static int status(const char *url, const char *key_file, uint32_t timeout)
{
	ringkv_conn_opts_t o = {.url = url,
	                        .key_file = key_file,
	                        .timeout_ms = timeout,
	                        .caller = "ringkv-cli"};
	ringkv_conn_t *conn = NULL;
	ringkv_error_t err;
	if (ringkv_connect(&o, &conn, &err) != RK_OK) {
		fprintf(stderr, "ringkv cluster: %s\n", err.message);
		return 1;
	}
	rk_rpc_method_t get_members, get_ring;
	const ProtobufCServiceDescriptor *s =
	    &ringkv__v1__membership__descriptor;
	const ProtobufCEnumDescriptor *e =
	    &ringkv__v1__membership_method__descriptor;
	if (rk_rpc_method_resolve(s, e, "GetMembers", &get_members) != RK_OK ||
	    rk_rpc_method_resolve(s, e, "GetRing", &get_ring) != RK_OK) {
		ringkv_close(conn);
		return 1;
	}
	Ringkv__V1__GetMembersRequest req =
	    RINGKV__V1__GET_MEMBERS_REQUEST__INIT;
	rk_rpc_result_t res;
	if (rk_conn_call(conn, &get_members, &req.base, &res, &err) != RK_OK) {
		fprintf(stderr, "ringkv cluster: %s: %s\n", url, err.message);
		rk_rpc_result_clear(&res);
		ringkv_close(conn);
		return 1;
	}
	const Ringkv__V1__GetMembersResponse *gm = (const void *)res.response;
	const Ringkv__V1__MemberTable *t = gm->table;
	if (t == NULL) {
		fprintf(stderr, "ringkv cluster: empty answer\n");
		rk_rpc_result_clear(&res);
		ringkv_close(conn);
		return 1;
	}
	/* One GetRing per role present. */
	Ringkv__V1__GetRingResponse *rings[8] = {NULL};
	rk_rpc_result_t ring_res[8];
	size_t nrings = 0;
	bool asked[8] = {false};
	for (size_t i = 0; i < t->n_members && nrings < 8; i++) {
		int role = (int)t->members[i]->role;
		if (role < 0 || role > 7 || asked[role])
			continue;
		asked[role] = true;
		Ringkv__V1__GetRingRequest rq =
		    RINGKV__V1__GET_RING_REQUEST__INIT;
		rq.has_role = true;
		rq.role = (Ringkv__V1__ServiceId)role;
		if (rk_conn_call(conn, &get_ring, &rq.base, &ring_res[nrings],
		                 NULL) == RK_OK)
			rings[nrings] = (void *)ring_res[nrings].response;
		nrings++;
	}
	char agent[9];
	short_id(&t->agent_node_id, agent);
	printf("agent %s: %zu members, table version %llu%s\n", agent,
	       t->n_members, (unsigned long long)t->version,
	       t->caught_up ? "" : " (not caught up: convicts nobody)");
	printf("%-8s %-12s %-10s %-8s %-22s %-14s %6s %7s %8s %4s %4s  %s\n",
	       "NODE", "NAME", "ROLE", "STATE", "ADDRESS", "DC/RACK", "WEIGHT",
	       "SHARE", "HB AGE", "GEN", "INC", "ACCUSERS");
	for (size_t i = 0; i < t->n_members; i++) {
		const Ringkv__V1__Member *m = t->members[i];
		char id[9], place[64], share[16], age[24], acc[256] = "";
		short_id(&m->node_id, id);
		const char *addr = "-";
		for (size_t k = 0; k < m->n_endpoints; k++)
			if (m->endpoints[k]->kind ==
			        RINGKV__V1__ENDPOINT_KIND__ENDPOINT_RPC &&
			    m->endpoints[k]->url)
				addr = m->endpoints[k]->url;
		if (strncmp(addr, "tcp://", 6) == 0)
			addr += 6;
		snprintf(place, sizeof(place), "%s/%s",
		         m->datacenter ? m->datacenter : "",
		         m->rack ? m->rack : "");
		long ppm = share_of(rings, nrings, m);
		if (ppm < 0)
			snprintf(share, sizeof(share), "-");
		else
			snprintf(share, sizeof(share), "%.2f%%", ppm / 1e4);
		if (memcmp(m->node_id.data, t->agent_node_id.data,
		           m->node_id.len) == 0)
			snprintf(age, sizeof(age), "self");
		else
			snprintf(age, sizeof(age), "%.1fs",
			         m->heartbeat_age_ms / 1000.0);
		size_t off = 0;
		for (size_t k = 0; k < m->n_accusers && off < sizeof(acc);
		     k++) {
			char a[9];
			short_id(&m->accusers[k]->accuser_node_id, a);
			off += (size_t)snprintf(
			    acc + off, sizeof(acc) - off, "%s%s(%s,%s)",
			    k ? " " : "", a,
			    name_of(t, &m->accusers[k]->accuser_node_id),
			    source_name((int)m->accusers[k]->source));
		}
		printf("%-8s %-12s %-10s %-8s %-22s %-14s %6u %7s %8s %4llu "
		       "%4llu  %s\n",
		       id, m->name ? m->name : "", role_name((int)m->role),
		       state_name((int)m->state), addr, place, m->weight, share,
		       age, (unsigned long long)m->generation,
		       (unsigned long long)m->incarnation, acc);
	}
	for (size_t r = 0; r < nrings; r++)
		if (rings[r] != NULL)
			rk_rpc_result_clear(&ring_res[r]);
	rk_rpc_result_clear(&res);
	ringkv_close(conn);
	return 0;
}

int rk_cli_cluster(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "status") != 0) {
		fputs(USAGE, stderr);
		return 2;
	}
	const char *key_file = NULL, *url = NULL;
	unsigned long timeout = 3000;
	int rc = rk_cli_url_args(argc - 1, argv + 1, USAGE, &key_file, &timeout,
	                         &url);
	if (rc != 0)
		return rc;
	return status(url, key_file, (uint32_t)timeout);
}

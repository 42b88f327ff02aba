/*
 * The member table and its rules (docs/membership.md, "Rules").
 *
 * Data structure: a flat array of entries, this agent's own at index 0.
 * Clusters have tens to hundreds of agents, so a linear search by UUID is
 * cheaper than keeping an index right; the array is capped at
 * RK_MS_MAX_MEMBERS so gossip cannot grow it without bound.
 *
 * Merge: per UUID the entry with the higher generation wins outright (a
 * new life of the member); within one generation the higher incarnation
 * wins (the member refuted or changed its own entry); within one
 * incarnation the heartbeat is the maximum, the state the "worse" of the
 * two (alive < suspect < down < left, which is their numeric order), and
 * the accusers the union. An entry arriving as DOWN with fewer than two
 * distinct accusers is kept as SUSPECT: nobody is convicted on one
 * source's word, whatever a peer claims.
 *
 * Liveness is local: each entry remembers when this agent last saw its
 * heartbeat rise (rise_mono). A member whose heartbeat has not risen for
 * suspect_ms becomes suspect with this agent as accuser; it becomes down
 * here only when a second, distinct accuser about the same incarnation is
 * recorded (from another agent's gossip, or an agent that failed an
 * indirect probe on our behalf) while this agent itself still sees it
 * stalled.
 *
 * Catching up: an agent that has heard from no other agent for
 * isolated_ms (it was paused, or cut off) convicts nobody; when it hears
 * from one again it restarts every member's heartbeat clock, so its own
 * absence is not mistaken for theirs.
 *
 * Forgetting: left and down entries are dropped forget_ms after they got
 * that state here, and their (UUID, generation, incarnation) is kept for
 * another forget_ms, so slower peers' gossip cannot bring them back as
 * suspects; an entry never seen before is not taken in at all when it
 * arrives down or left. A new generation or incarnation of the member
 * still gets in.
 */
#include "table.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

static void notify(rk_ms_table_t *t, int kind, const rk_ms_member_t *m)
{
	t->version++;
	if (t->on_change != NULL)
		t->on_change(t->change_arg, kind, m, t->version);
}

const char *rk_ms_state_name(int state)
{
	switch (state) {
	case RK_MS_ALIVE:
		return "alive";
	case RK_MS_SUSPECT:
		return "suspect";
	case RK_MS_DOWN:
		return "down";
	case RK_MS_LEFT:
		return "left";
	default:
		return "?";
	}
}

static void hex_id(const uint8_t *id, char out[33])
{
	static const char digits[] = "0123456789abcdef";
	for (int i = 0; i < 16; i++) {
		out[2 * i] = digits[id[i] >> 4];
		out[2 * i + 1] = digits[id[i] & 15];
	}
	out[32] = '\0';
}

rk_status_t rk_ms_table_init(rk_ms_table_t *t, const rk_ms_member_t *self,
                             const rk_ms_timing_t *timing, uint64_t now)
{
	memset(t, 0, sizeof(*t));
	if (sodium_init() < 0)
		return RK_INTERNAL;
	t->cap = 16;
	t->m = calloc(t->cap, sizeof(*t->m));
	if (t->m == NULL)
		return RK_RESOURCE_EXHAUSTED;
	t->m[0] = *self;
	t->m[0].state = RK_MS_ALIVE;
	t->m[0].naccusers = 0;
	t->m[0].rise_mono = now;
	t->m[0].state_mono = now;
	t->n = 1;
	t->timing = *timing;
	t->heard_mono = now;
	t->caught_up = true;
	t->healthy = true;
	t->version = 1;
	return RK_OK;
}

void rk_ms_table_fini(rk_ms_table_t *t)
{
	free(t->m);
	free(t->gone);
	memset(t, 0, sizeof(*t));
}

rk_ms_member_t *rk_ms_table_self(rk_ms_table_t *t)
{
	return &t->m[0];
}

rk_ms_member_t *rk_ms_table_find(rk_ms_table_t *t, const uint8_t *id)
{
	for (size_t i = 0; i < t->n; i++)
		if (memcmp(t->m[i].id, id, RK_MS_ID_BYTES) == 0)
			return &t->m[i];
	return NULL;
}

size_t rk_ms_member_accusers(const rk_ms_member_t *m)
{
	size_t distinct = 0;
	for (size_t i = 0; i < m->naccusers; i++) {
		if (m->accusers[i].incarnation != m->incarnation)
			continue;
		bool dup = false;
		for (size_t j = 0; j < i && !dup; j++)
			dup = m->accusers[j].incarnation == m->incarnation &&
			      memcmp(m->accusers[j].id, m->accusers[i].id,
			             RK_MS_ID_BYTES) == 0;
		if (!dup)
			distinct++;
	}
	return distinct;
}

static bool has_accuser(const rk_ms_member_t *m, const uint8_t *id)
{
	for (size_t i = 0; i < m->naccusers; i++)
		if (m->accusers[i].incarnation == m->incarnation &&
		    memcmp(m->accusers[i].id, id, RK_MS_ID_BYTES) == 0)
			return true;
	return false;
}

/* Adds an accusation about M's current incarnation unless the accuser has
 * one already; accusations about older incarnations make room first. */
static bool add_accuser(rk_ms_member_t *m, const uint8_t *id, int source,
                        uint64_t since_ms)
{
	if (has_accuser(m, id))
		return false;
	size_t k = 0;
	for (size_t i = 0; i < m->naccusers; i++)
		if (m->accusers[i].incarnation == m->incarnation)
			m->accusers[k++] = m->accusers[i];
	m->naccusers = k;
	if (m->naccusers == RK_MS_MAX_ACCUSERS)
		return false;
	rk_ms_accuser_t *a = &m->accusers[m->naccusers++];
	memcpy(a->id, id, RK_MS_ID_BYTES);
	a->source = source;
	a->since_ms = since_ms;
	a->incarnation = m->incarnation;
	return true;
}

static void set_state(rk_ms_table_t *t, rk_ms_member_t *m, int state,
                      uint64_t now, uint64_t wall)
{
	if (m->state == state)
		return;
	char hex[33];
	hex_id(m->id, hex);
	if (state == RK_MS_DOWN || state == RK_MS_SUSPECT) {
		char acc[RK_MS_MAX_ACCUSERS * 10 + 1] = "";
		size_t off = 0;
		for (size_t i = 0; i < m->naccusers; i++) {
			char a[33];
			hex_id(m->accusers[i].id, a);
			off += (size_t)snprintf(acc + off, sizeof(acc) - off,
			                        "%s%.8s", i ? "," : "", a);
			if (off >= sizeof(acc))
				break;
		}
		rk_info("member %s (%s) %s -> %s, accusers [%s]", hex, m->name,
		        rk_ms_state_name(m->state), rk_ms_state_name(state),
		        acc);
	} else {
		rk_info("member %s (%s) %s -> %s", hex, m->name,
		        rk_ms_state_name(m->state), rk_ms_state_name(state));
	}
	m->state = state;
	m->state_mono = now;
	m->state_since_ms = wall;
	if (state == RK_MS_ALIVE)
		m->naccusers = 0;
	notify(t, RK_MS_CHANGED, m);
}

/* A DOWN received from a peer stands only with two distinct accusers. */
static int sane_state(const rk_ms_member_t *m)
{
	if (m->state == RK_MS_DOWN && rk_ms_member_accusers(m) < 2)
		return RK_MS_SUSPECT;
	return m->state;
}

static bool is_forgotten(const rk_ms_table_t *t, const rk_ms_member_t *in)
{
	for (size_t i = 0; i < t->ngone; i++) {
		const rk_ms_forgotten_t *g = &t->gone[i];
		if (memcmp(g->id, in->id, RK_MS_ID_BYTES) != 0)
			continue;
		return in->generation < g->generation ||
		       (in->generation == g->generation &&
		        in->incarnation <= g->incarnation);
	}
	return false;
}

static bool same_placement(const rk_ms_member_t *a, const rk_ms_member_t *b)
{
	return a->role == b->role && a->weight == b->weight &&
	       strcmp(a->rpc_url, b->rpc_url) == 0 &&
	       strcmp(a->events_url, b->events_url) == 0 &&
	       strcmp(a->datacenter, b->datacenter) == 0 &&
	       strcmp(a->rack, b->rack) == 0;
}

/* Takes the member's own description (not its state) from IN. */
static void copy_description(rk_ms_member_t *m, const rk_ms_member_t *in)
{
	m->role = in->role;
	m->weight = in->weight;
	memcpy(m->rpc_url, in->rpc_url, sizeof(m->rpc_url));
	memcpy(m->events_url, in->events_url, sizeof(m->events_url));
	memcpy(m->datacenter, in->datacenter, sizeof(m->datacenter));
	memcpy(m->rack, in->rack, sizeof(m->rack));
	memcpy(m->name, in->name, sizeof(m->name));
	memcpy(m->version, in->version, sizeof(m->version));
	m->has_agent = in->has_agent;
	memcpy(m->agent_id, in->agent_id, RK_MS_ID_BYTES);
}

/* What arrives about this agent itself: refute suspicion. */
static void merge_self(rk_ms_table_t *t, const rk_ms_member_t *in)
{
	rk_ms_member_t *self = &t->m[0];
	if (in->generation > self->generation) {
		/* Someone knows a later life of our UUID: a copied state
		 * file, or a lost one. Outrank it. */
		rk_warn("a peer knows generation %llu of this node, above ours "
		        "(%llu): taking %llu",
		        (unsigned long long)in->generation,
		        (unsigned long long)self->generation,
		        (unsigned long long)in->generation + 1);
		self->generation = in->generation + 1;
		self->incarnation = 0;
		notify(t, RK_MS_CHANGED, self);
		return;
	}
	if (in->generation < self->generation)
		return;
	if (in->heartbeat > self->heartbeat)
		self->heartbeat = in->heartbeat;
	if (in->incarnation < self->incarnation)
		return;
	bool accused = in->state != RK_MS_ALIVE && in->state != self->state;
	if (!accused && in->incarnation == self->incarnation)
		return;
	if (!t->healthy && in->state != RK_MS_LEFT) {
		/* Not serving: do not argue. */
		return;
	}
	self->incarnation = in->incarnation + 1;
	self->naccusers = 0;
	if (accused) {
		t->refutations++;
		rk_info("refuting %s at incarnation %llu with %llu",
		        rk_ms_state_name(in->state),
		        (unsigned long long)in->incarnation,
		        (unsigned long long)self->incarnation);
	}
}

static rk_ms_member_t *append(rk_ms_table_t *t)
{
	if (t->n == RK_MS_MAX_MEMBERS)
		return NULL;
	if (t->n == t->cap) {
		size_t nc = t->cap * 2;
		rk_ms_member_t *m = realloc(t->m, nc * sizeof(*m));
		if (m == NULL)
			return NULL;
		t->m = m;
		t->cap = nc;
	}
	return &t->m[t->n++];
}

static bool merge_one(rk_ms_table_t *t, const rk_ms_member_t *in, uint64_t now,
                      uint64_t wall)
{
	if (memcmp(in->id, t->m[0].id, RK_MS_ID_BYTES) == 0) {
		merge_self(t, in);
		return false;
	}
	rk_ms_member_t *m = rk_ms_table_find(t, in->id);
	if (m == NULL || in->generation > m->generation) {
		/* A member first heard of as down or left is not taken in:
		 * there is nothing to learn about it, and a forgotten entry
		 * gossiped back by a slower peer would otherwise come
		 * back to life here, and from here to them. */
		if (m == NULL &&
		    (is_forgotten(t, in) || in->state == RK_MS_DOWN ||
		     in->state == RK_MS_LEFT))
			return false;
		if (m == NULL && (m = append(t)) == NULL)
			return false;
		*m = *in;
		m->state = sane_state(in);
		m->rise_mono = now;
		m->state_mono = now;
		notify(t, RK_MS_ADDED, m);
		return true;
	}
	if (in->generation < m->generation || in->incarnation < m->incarnation)
		return false;
	bool changed = false;
	if (in->incarnation > m->incarnation) {
		/* The member's own newer word: its description, its state
		 * and the accusations about the new incarnation. */
		changed = !same_placement(m, in);
		copy_description(m, in);
		m->incarnation = in->incarnation;
		if (in->heartbeat > m->heartbeat)
			m->heartbeat = in->heartbeat;
		m->rise_mono = now;
		m->naccusers = 0;
		for (size_t i = 0; i < in->naccusers; i++)
			if (in->accusers[i].incarnation == in->incarnation)
				add_accuser(m, in->accusers[i].id,
				            in->accusers[i].source,
				            in->accusers[i].since_ms);
		int st = sane_state(in);
		if (st != m->state) {
			set_state(t, m, st, now, wall);
			changed = false; /* notified already */
		}
		if (changed)
			notify(t, RK_MS_CHANGED, m);
		return true;
	}
	if (in->heartbeat > m->heartbeat) {
		m->heartbeat = in->heartbeat;
		m->rise_mono = now;
	}
	for (size_t i = 0; i < in->naccusers; i++)
		if (in->accusers[i].incarnation == m->incarnation)
			add_accuser(m, in->accusers[i].id,
			            in->accusers[i].source,
			            in->accusers[i].since_ms);
	int st = in->state > m->state ? in->state : m->state;
	if (st == RK_MS_DOWN && rk_ms_member_accusers(m) < 2)
		st = m->state > RK_MS_SUSPECT ? m->state : RK_MS_SUSPECT;
	if (st != m->state) {
		set_state(t, m, st, now, wall);
		return true;
	}
	return false;
}

size_t rk_ms_table_merge(rk_ms_table_t *t, const rk_ms_member_t *in, size_t n,
                         uint64_t now, uint64_t wall)
{
	size_t changed = 0;
	for (size_t i = 0; i < n; i++)
		if (merge_one(t, &in[i], now, wall))
			changed++;
	return changed;
}

void rk_ms_table_heard(rk_ms_table_t *t, uint64_t now)
{
	if (now - t->heard_mono > t->timing.isolated_ms) {
		rk_info("heard from a peer after %llu ms of silence: "
		        "restarting every heartbeat clock",
		        (unsigned long long)(now - t->heard_mono));
		for (size_t i = 1; i < t->n; i++)
			t->m[i].rise_mono = now;
	}
	t->heard_mono = now;
	t->caught_up = true;
}

static void forget(rk_ms_table_t *t, size_t i, uint64_t now)
{
	rk_ms_member_t gone = t->m[i];
	if (t->ngone == t->capgone) {
		size_t nc = t->capgone ? t->capgone * 2 : 8;
		rk_ms_forgotten_t *g = realloc(t->gone, nc * sizeof(*g));
		if (g != NULL) {
			t->gone = g;
			t->capgone = nc;
		}
	}
	if (t->ngone < t->capgone) {
		rk_ms_forgotten_t *g = &t->gone[t->ngone++];
		memcpy(g->id, gone.id, RK_MS_ID_BYTES);
		g->generation = gone.generation;
		g->incarnation = gone.incarnation;
		g->until_mono = now + t->timing.forget_ms;
	}
	t->m[i] = t->m[t->n - 1];
	t->n--;
	char hex[33];
	hex_id(gone.id, hex);
	rk_info("forgetting member %s (%s), %s", hex, gone.name,
	        rk_ms_state_name(gone.state));
	notify(t, RK_MS_REMOVED, &gone);
}

size_t rk_ms_table_tick(rk_ms_table_t *t, uint64_t now, uint64_t wall,
                        uint8_t (*probe)[RK_MS_ID_BYTES], size_t cap)
{
	rk_ms_member_t *self = &t->m[0];
	t->caught_up = now - t->heard_mono <= t->timing.isolated_ms;
	if (t->healthy && !t->leaving)
		self->heartbeat++;
	size_t np = 0;
	for (size_t i = 1; i < t->n; i++) {
		rk_ms_member_t *m = &t->m[i];
		if (m->state == RK_MS_DOWN || m->state == RK_MS_LEFT) {
			if (now - m->state_mono > t->timing.forget_ms) {
				forget(t, i, now);
				i--;
			}
			continue;
		}
		if (rk_ms_table_vouches(t, m))
			continue; /* its liveness is ours to tell */
		if (!t->caught_up || now - m->rise_mono <= t->timing.suspect_ms)
			continue;
		add_accuser(m, self->id, RK_MS_ACCUSE_STALLED, wall);
		if (m->state == RK_MS_ALIVE)
			set_state(t, m, RK_MS_SUSPECT, now, wall);
		if (rk_ms_member_accusers(m) >= 2)
			set_state(t, m, RK_MS_DOWN, now, wall);
		else if (np < cap)
			memcpy(probe[np++], m->id, RK_MS_ID_BYTES);
	}
	size_t k = 0;
	for (size_t i = 0; i < t->ngone; i++)
		if (t->gone[i].until_mono > now)
			t->gone[k++] = t->gone[i];
	t->ngone = k;
	return np;
}

rk_status_t rk_ms_table_accuse(rk_ms_table_t *t, const uint8_t *target,
                               const uint8_t *accuser, int source, uint64_t now,
                               uint64_t wall)
{
	rk_ms_member_t *m = rk_ms_table_find(t, target);
	if (m == NULL)
		return RK_NOT_FOUND;
	if (m->state != RK_MS_SUSPECT)
		return RK_FAILED_PRECONDITION;
	add_accuser(m, accuser, source, wall);
	if (has_accuser(m, t->m[0].id) && rk_ms_member_accusers(m) >= 2)
		set_state(t, m, RK_MS_DOWN, now, wall);
	return RK_OK;
}

void rk_ms_table_alive_evidence(rk_ms_table_t *t, const uint8_t *target,
                                uint64_t generation, uint64_t incarnation,
                                uint64_t heartbeat, uint64_t now)
{
	rk_ms_member_t *m = rk_ms_table_find(t, target);
	if (m == NULL || m == &t->m[0] || generation != m->generation ||
	    incarnation < m->incarnation || heartbeat <= m->heartbeat)
		return;
	m->heartbeat = heartbeat;
	m->rise_mono = now;
}

void rk_ms_table_leave_self(rk_ms_table_t *t, bool join, uint64_t now,
                            uint64_t wall)
{
	rk_ms_member_t *self = &t->m[0];
	self->incarnation++;
	t->leaving = !join;
	set_state(t, self, join ? RK_MS_ALIVE : RK_MS_LEFT, now, wall);
}

rk_status_t rk_ms_table_remove(rk_ms_table_t *t, const uint8_t *id,
                               uint64_t now)
{
	for (size_t i = 1; i < t->n; i++) {
		if (memcmp(t->m[i].id, id, RK_MS_ID_BYTES) != 0)
			continue;
		if (t->m[i].state != RK_MS_DOWN && t->m[i].state != RK_MS_LEFT)
			return RK_FAILED_PRECONDITION;
		forget(t, i, now);
		return RK_OK;
	}
	if (memcmp(t->m[0].id, id, RK_MS_ID_BYTES) == 0)
		return RK_FAILED_PRECONDITION;
	return RK_NOT_FOUND;
}

void rk_ms_table_digest(const rk_ms_table_t *t, uint8_t out[16])
{
	size_t idx[RK_MS_MAX_MEMBERS];
	size_t k = 0;
	for (size_t i = 0; i < t->n; i++)
		if (t->m[i].state != RK_MS_LEFT)
			idx[k++] = i;
	/* Insertion sort by UUID: tables are small and this needs no
	 * comparison context. */
	for (size_t i = 1; i < k; i++) {
		size_t v = idx[i], j = i;
		while (j > 0 && memcmp(t->m[idx[j - 1]].id, t->m[v].id,
		                       RK_MS_ID_BYTES) > 0) {
			idx[j] = idx[j - 1];
			j--;
		}
		idx[j] = v;
	}
	crypto_generichash_state st;
	crypto_generichash_init(&st, NULL, 0, 16);
	for (size_t i = 0; i < k; i++) {
		const rk_ms_member_t *m = &t->m[idx[i]];
		uint8_t fixed[RK_MS_ID_BYTES + 8];
		memcpy(fixed, m->id, RK_MS_ID_BYTES);
		for (int b = 0; b < 4; b++) {
			fixed[RK_MS_ID_BYTES + b] =
			    (uint8_t)(m->role >> (8 * b));
			fixed[RK_MS_ID_BYTES + 4 + b] =
			    (uint8_t)(m->weight >> (8 * b));
		}
		crypto_generichash_update(&st, fixed, sizeof(fixed));
		crypto_generichash_update(&st, (const uint8_t *)m->datacenter,
		                          strlen(m->datacenter) + 1);
		crypto_generichash_update(&st, (const uint8_t *)m->rack,
		                          strlen(m->rack) + 1);
	}
	crypto_generichash_final(&st, out, 16);
}

bool rk_ms_table_vouches(const rk_ms_table_t *t, const rk_ms_member_t *m)
{
	return m != &t->m[0] && m->has_agent &&
	       memcmp(m->agent_id, t->m[0].id, RK_MS_ID_BYTES) == 0;
}

rk_status_t rk_ms_table_vouch(rk_ms_table_t *t, const uint8_t *id, bool healthy,
                              uint64_t now, uint64_t wall)
{
	rk_ms_member_t *m = rk_ms_table_find(t, id);
	if (m == NULL)
		return RK_NOT_FOUND;
	if (!rk_ms_table_vouches(t, m))
		return RK_FAILED_PRECONDITION;
	if (!healthy || m->state == RK_MS_LEFT)
		return RK_OK;
	m->heartbeat++;
	m->rise_mono = now;
	if (m->state != RK_MS_ALIVE) {
		/* Refute on its behalf, as for ourselves. */
		m->incarnation++;
		set_state(t, m, RK_MS_ALIVE, now, wall);
	}
	return RK_OK;
}

rk_status_t rk_ms_table_leave_member(rk_ms_table_t *t, const uint8_t *id,
                                     uint64_t now, uint64_t wall)
{
	rk_ms_member_t *m = rk_ms_table_find(t, id);
	if (m == NULL)
		return RK_NOT_FOUND;
	if (m == &t->m[0]) {
		rk_ms_table_leave_self(t, false, now, wall);
		return RK_OK;
	}
	if (!rk_ms_table_vouches(t, m))
		return RK_FAILED_PRECONDITION;
	if (m->state != RK_MS_LEFT) {
		m->incarnation++;
		set_state(t, m, RK_MS_LEFT, now, wall);
	}
	return RK_OK;
}

/*
 * The ring: building it from a node list, finding owners, preference lists,
 * shares, and the diff between two rings. The hash is in hash.c.
 *
 * Data structures. `nodes` holds the caller's nodes sorted by UUID, so the
 * node index of a UUID is the same in every process that builds a ring
 * from the same set. `tok` holds every token of every node, sorted by
 * (token, node index), with `tok_node` the node index of each: equal tokens
 * (a 2^-64 event per pair) are still ordered the same way everywhere. A
 * token t is owned by the first entry of `tok` >= t, wrapping to entry 0.
 *
 * Each node also carries a datacenter index and a rack index (a rack is a
 * (datacenter, rack name) pair: rack1 of dc1 and rack1 of dc2 are two
 * racks), numbered in first-seen order of the sorted nodes; preference
 * lists compare these small numbers instead of names.
 *
 * Invariants: ntok == sum of weight x vnodes; tok is sorted; every
 * tok_node[i] < n. A built ring is never changed, so readers need no lock.
 */
#include "ring/ring.h"

#include <stdlib.h>
#include <string.h>

struct rk_ring {
	rk_ring_node_t *nodes; /* the nodes, sorted by UUID */
	size_t n;              /* how many */
	uint32_t vnodes;       /* tokens per unit of weight */
	uint64_t *tok;         /* every token, sorted */
	uint32_t *tok_node;    /* node index of each token */
	size_t ntok;           /* tokens in all */
	uint32_t *dc_of;       /* datacenter index of each node */
	uint32_t *rack_of;     /* rack index of each node */
	double *share;         /* fraction of the ring each node owns */
	size_t holders;        /* nodes with at least one token */
};

static int cmp_node(const void *a, const void *b)
{
	const rk_ring_node_t *x = a, *y = b;
	return memcmp(x->id, y->id, RK_RING_ID_BYTES);
}

/* A token and its node, for sorting. */
typedef struct tok_pair {
	uint64_t token; /* position on the ring */
	uint32_t node;  /* node index */
} tok_pair_t;

static int cmp_tok(const void *a, const void *b)
{
	const tok_pair_t *x = a, *y = b;
	if (x->token != y->token)
		return x->token < y->token ? -1 : 1;
	return x->node < y->node ? -1 : (x->node > y->node);
}

void rk_ring_free(rk_ring_t *r)
{
	if (r == NULL)
		return;
	free(r->nodes);
	free(r->tok);
	free(r->tok_node);
	free(r->dc_of);
	free(r->rack_of);
	free(r->share);
	free(r);
}

/* Numbers datacenters and racks in first-seen order. */
static void index_topology(rk_ring_t *r)
{
	for (size_t i = 0; i < r->n; i++) {
		const rk_ring_node_t *a = &r->nodes[i];
		r->dc_of[i] = (uint32_t)i;
		r->rack_of[i] = (uint32_t)i;
		for (size_t j = 0; j < i; j++) {
			const rk_ring_node_t *b = &r->nodes[j];
			if (strcmp(a->datacenter, b->datacenter) != 0)
				continue;
			r->dc_of[i] = r->dc_of[j];
			if (strcmp(a->rack, b->rack) == 0) {
				r->rack_of[i] = r->rack_of[j];
				break;
			}
		}
	}
}

static void compute_shares(rk_ring_t *r)
{
	if (r->ntok == 0)
		return;
	if (r->ntok == 1) {
		r->share[r->tok_node[0]] = 1.0;
		return;
	}
	const double full = 18446744073709551616.0; /* 2^64 */
	for (size_t i = 0; i < r->ntok; i++) {
		uint64_t prev = r->tok[i == 0 ? r->ntok - 1 : i - 1];
		uint64_t arc = r->tok[i] - prev; /* wraps for i == 0 */
		r->share[r->tok_node[i]] += (double)arc / full;
	}
}

rk_status_t rk_ring_build(const rk_ring_node_t *nodes, size_t n,
                          uint32_t vnodes, rk_ring_t **out)
{
	*out = NULL;
	if (vnodes == 0)
		vnodes = RK_RING_DEFAULT_VNODES;
	if (vnodes > RK_RING_MAX_VNODES || n > RK_RING_MAX_NODES ||
	    (n > 0 && nodes == NULL))
		return RK_INVALID_ARGUMENT;
	uint64_t ntok = 0;
	for (size_t i = 0; i < n; i++) {
		if (nodes[i].weight > RK_RING_MAX_WEIGHT)
			return RK_INVALID_ARGUMENT;
		ntok += (uint64_t)nodes[i].weight * vnodes;
	}
	if (ntok > RK_RING_MAX_TOKENS)
		return RK_INVALID_ARGUMENT;

	rk_ring_t *r = calloc(1, sizeof(*r));
	if (r == NULL)
		return RK_RESOURCE_EXHAUSTED;
	r->n = n;
	r->vnodes = vnodes;
	r->ntok = (size_t)ntok;
	size_t nn = n ? n : 1, nt = ntok ? (size_t)ntok : 1;
	r->nodes = calloc(nn, sizeof(*r->nodes));
	r->tok = calloc(nt, sizeof(*r->tok));
	r->tok_node = calloc(nt, sizeof(*r->tok_node));
	r->dc_of = calloc(nn, sizeof(*r->dc_of));
	r->rack_of = calloc(nn, sizeof(*r->rack_of));
	r->share = calloc(nn, sizeof(*r->share));
	tok_pair_t *pairs = calloc(nt, sizeof(*pairs));
	if (!r->nodes || !r->tok || !r->tok_node || !r->dc_of || !r->rack_of ||
	    !r->share || !pairs) {
		free(pairs);
		rk_ring_free(r);
		return RK_RESOURCE_EXHAUSTED;
	}
	if (n > 0)
		memcpy(r->nodes, nodes, n * sizeof(*nodes));
	for (size_t i = 0; i < n; i++) {
		/* Names may come unterminated from a careless caller. */
		r->nodes[i].datacenter[RK_RING_NAME_MAX - 1] = '\0';
		r->nodes[i].rack[RK_RING_NAME_MAX - 1] = '\0';
	}
	qsort(r->nodes, n, sizeof(*r->nodes), cmp_node);
	for (size_t i = 1; i < n; i++) {
		if (cmp_node(&r->nodes[i - 1], &r->nodes[i]) == 0) {
			free(pairs);
			rk_ring_free(r);
			return RK_INVALID_ARGUMENT;
		}
	}
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		uint32_t count = r->nodes[i].weight * vnodes;
		if (count > 0)
			r->holders++;
		for (uint32_t v = 0; v < count; v++) {
			pairs[k].token = rk_ring_node_token(r->nodes[i].id, v);
			pairs[k].node = (uint32_t)i;
			k++;
		}
	}
	qsort(pairs, r->ntok, sizeof(*pairs), cmp_tok);
	for (size_t i = 0; i < r->ntok; i++) {
		r->tok[i] = pairs[i].token;
		r->tok_node[i] = pairs[i].node;
	}
	free(pairs);
	index_topology(r);
	compute_shares(r);
	*out = r;
	return RK_OK;
}

size_t rk_ring_node_count(const rk_ring_t *r)
{
	return r->n;
}

const rk_ring_node_t *rk_ring_node(const rk_ring_t *r, size_t i)
{
	return i < r->n ? &r->nodes[i] : NULL;
}

int rk_ring_find(const rk_ring_t *r, const uint8_t id[RK_RING_ID_BYTES])
{
	size_t lo = 0, hi = r->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = memcmp(r->nodes[mid].id, id, RK_RING_ID_BYTES);
		if (c == 0)
			return (int)mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

size_t rk_ring_token_count(const rk_ring_t *r)
{
	return r->ntok;
}

uint32_t rk_ring_vnodes(const rk_ring_t *r)
{
	return r->vnodes;
}

/* Index of the first token >= TOKEN, wrapping to 0. ntok must be > 0. */
static size_t first_at_or_after(const rk_ring_t *r, uint64_t token)
{
	size_t lo = 0, hi = r->ntok;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (r->tok[mid] < token)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo == r->ntok ? 0 : lo;
}

int rk_ring_owner(const rk_ring_t *r, uint64_t token)
{
	if (r->ntok == 0)
		return -1;
	return (int)r->tok_node[first_at_or_after(r, token)];
}

double rk_ring_share(const rk_ring_t *r, size_t i)
{
	return i < r->n ? r->share[i] : 0.0;
}

size_t rk_ring_node_tokens(const rk_ring_t *r, size_t i, uint64_t *out,
                           size_t cap)
{
	size_t k = 0;
	if (i >= r->n)
		return 0;
	for (size_t t = 0; t < r->ntok; t++) {
		if (r->tok_node[t] != i)
			continue;
		if (k < cap)
			out[k] = r->tok[t];
		k++;
	}
	return k;
}

/* --------------------------------------------------- preference lists */

/* State of one preference-list computation. */
typedef struct pref_walk {
	const rk_ring_t *r; /* the ring */
	uint32_t *order;    /* distinct nodes in clockwise order */
	size_t count;       /* entries of order */
	bool *picked;       /* per position in order: chosen as replica */
	bool *dc_used;      /* per datacenter index: has a replica */
	bool *rack_used;    /* per rack index: has a replica */
} pref_walk_t;

/* Picks up to WANT replicas among the walk's nodes of datacenter DC (or
 * of any datacenter, DC < 0), each time the first node in clockwise order
 * that adds the most: a new datacenter, else a new rack, else any. */
static size_t pick(pref_walk_t *w, long dc, size_t want)
{
	size_t got = 0;
	while (got < want) {
		long best = -1;
		int best_score = -1;
		for (size_t i = 0; i < w->count; i++) {
			uint32_t node = w->order[i];
			if (w->picked[i])
				continue;
			if (dc >= 0 && w->r->dc_of[node] != (uint32_t)dc)
				continue;
			int score = 0;
			if (!w->dc_used[w->r->dc_of[node]])
				score = 2;
			else if (!w->rack_used[w->r->rack_of[node]])
				score = 1;
			if (score > best_score) {
				best_score = score;
				best = (long)i;
				if (score == 2)
					break;
			}
		}
		if (best < 0)
			break;
		uint32_t node = w->order[best];
		w->picked[best] = true;
		w->dc_used[w->r->dc_of[node]] = true;
		w->rack_used[w->r->rack_of[node]] = true;
		got++;
	}
	return got;
}

/* Index of the datacenter named NAME, or -1. */
static long dc_index(const rk_ring_t *r, const char *name)
{
	for (size_t i = 0; i < r->n; i++)
		if (strcmp(r->nodes[i].datacenter, name) == 0)
			return (long)r->dc_of[i];
	return -1;
}

size_t rk_ring_preference_list(const rk_ring_t *r, uint64_t token,
                               const rk_ring_pref_opts_t *opts, int *out,
                               size_t cap, size_t *replicas)
{
	if (replicas != NULL)
		*replicas = 0;
	if (r->ntok == 0 || cap == 0 || opts == NULL)
		return 0;
	pref_walk_t w = {.r = r};
	w.order = calloc(r->n, sizeof(*w.order));
	w.picked = calloc(r->n, sizeof(*w.picked));
	w.dc_used = calloc(r->n, sizeof(*w.dc_used));
	w.rack_used = calloc(r->n, sizeof(*w.rack_used));
	bool *seen = calloc(r->n, sizeof(*seen));
	size_t written = 0;
	if (!w.order || !w.picked || !w.dc_used || !w.rack_used || !seen)
		goto out;

	/* Every holder is met within n*H(n) tokens on average, whatever the
	 * vnode count, since consecutive tokens belong to random nodes. */
	size_t at = first_at_or_after(r, token);
	for (size_t step = 0; step < r->ntok && w.count < r->holders; step++) {
		uint32_t node = r->tok_node[(at + step) % r->ntok];
		if (!seen[node]) {
			seen[node] = true;
			w.order[w.count++] = node;
		}
	}
	size_t got = 0;
	if (opts->ndc == 0 || opts->dcs == NULL) {
		got = pick(&w, -1, opts->n);
	} else {
		for (size_t d = 0; d < opts->ndc; d++) {
			if (opts->dcs[d].datacenter == NULL)
				continue;
			long dc = dc_index(r, opts->dcs[d].datacenter);
			if (dc >= 0)
				got += pick(&w, dc, opts->dcs[d].n);
		}
	}
	for (size_t i = 0; i < w.count && written < cap; i++)
		if (w.picked[i])
			out[written++] = (int)w.order[i];
	if (replicas != NULL)
		*replicas = written < got ? written : got;
	for (size_t i = 0; i < w.count && written < cap; i++)
		if (!w.picked[i])
			out[written++] = (int)w.order[i];
out:
	free(w.order);
	free(w.picked);
	free(w.dc_used);
	free(w.rack_used);
	free(seen);
	return written;
}

/* ------------------------------------------------------------ diff */

/* Owner UUID of TOKEN in R, or NULL on an empty ring. */
static const uint8_t *owner_id(const rk_ring_t *r, uint64_t token)
{
	int i = rk_ring_owner(r, token);
	return i < 0 ? NULL : r->nodes[i].id;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : (x > y);
}

static bool same_owner(const uint8_t *a, const uint8_t *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return memcmp(a, b, RK_RING_ID_BYTES) == 0;
}

rk_status_t rk_ring_diff(const rk_ring_t *old_ring, const rk_ring_t *new_ring,
                         rk_ring_move_t **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	size_t nb = old_ring->ntok + new_ring->ntok;
	if (nb == 0)
		return RK_OK;
	uint64_t *b = malloc(nb * sizeof(*b));
	if (b == NULL)
		return RK_RESOURCE_EXHAUSTED;
	memcpy(b, old_ring->tok, old_ring->ntok * sizeof(*b));
	memcpy(b + old_ring->ntok, new_ring->tok, new_ring->ntok * sizeof(*b));
	qsort(b, nb, sizeof(*b), cmp_u64);
	size_t u = 0;
	for (size_t i = 0; i < nb; i++)
		if (u == 0 || b[u - 1] != b[i])
			b[u++] = b[i];
	/* Between two consecutive boundaries neither ring has a token, so
	 * the whole range (b[i-1], b[i]] has the owners of b[i]. The first
	 * range is the one that wraps: (b[u-1], b[0]]. */
	rk_ring_move_t *moves = NULL;
	size_t nm = 0, capm = 0;
	for (size_t i = 0; i < u; i++) {
		uint64_t start = b[i == 0 ? u - 1 : i - 1], end = b[i];
		const uint8_t *from = owner_id(old_ring, end);
		const uint8_t *to = owner_id(new_ring, end);
		if (same_owner(from, to))
			continue;
		if (nm > 0) {
			rk_ring_move_t *last = &moves[nm - 1];
			if (last->end == start &&
			    same_owner(last->had_from ? last->from : NULL,
			               from) &&
			    same_owner(last->has_to ? last->to : NULL, to)) {
				last->end = end;
				continue;
			}
		}
		if (nm == capm) {
			size_t nc = capm ? capm * 2 : 16;
			rk_ring_move_t *m = realloc(moves, nc * sizeof(*m));
			if (m == NULL) {
				free(moves);
				free(b);
				return RK_RESOURCE_EXHAUSTED;
			}
			moves = m;
			capm = nc;
		}
		rk_ring_move_t *m = &moves[nm++];
		memset(m, 0, sizeof(*m));
		m->start = start;
		m->end = end;
		if (from != NULL) {
			m->had_from = true;
			memcpy(m->from, from, RK_RING_ID_BYTES);
		}
		if (to != NULL) {
			m->has_to = true;
			memcpy(m->to, to, RK_RING_ID_BYTES);
		}
	}
	free(b);
	*out = moves;
	*n = nm;
	return RK_OK;
}

uint64_t rk_ring_range_len(uint64_t start, uint64_t end)
{
	return start == end ? UINT64_MAX : end - start;
}

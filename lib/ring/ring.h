/*
 * The ring: consistent hashing on a 64-bit ring, shared by every service
 * that places keys (coordinator, storage, rate limiter). docs/ring.md is
 * the reference; in short:
 *
 *  - A node is named by a 16-byte UUID. With weight w it owns
 *    w x vnodes_per_weight tokens; token i of node U is
 *
 *	SipHash-2-4(key = RK_RING_HASH_KEY, msg = U (16 bytes) || LE32(i))
 *
 *    read as a little-endian uint64. Tokens depend on the node alone, so
 *    every holder of the same membership table computes the same ring, and
 *    a node added or removed moves only the ranges next to its own tokens.
 *  - A key's token is SipHash-2-4 with the same key over the key bytes.
 *    A token t is owned by the first node token >= t, wrapping past
 *    2^64-1: a node token T owns the range (previous token, T].
 *  - The preference list of a key walks clockwise from its token and lists
 *    every distinct physical node in the order it is met; from that walk it
 *    picks the replicas (N in all, or N per datacenter), preferring at each
 *    pick the first node that adds a datacenter, then one that adds a rack,
 *    so replicas spread over racks and datacenters where the topology
 *    allows. The replicas come first, in clockwise order, then every other
 *    node as fallbacks, in clockwise order.
 *
 * A ring is immutable once built and may be read from any number of
 * threads at once. It copies everything it is given.
 */
#ifndef RK_RING_H
#define RK_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ringkv/status.h>

#define RK_RING_ID_BYTES 16
#define RK_RING_NAME_MAX 64 /* datacenter and rack names, with the NUL */
/* Tokens per unit of weight when the caller gives 0. Chosen so that ten
 * equal nodes each own their fair share within a few percent (the random
 * spread of one node's share is about 1/sqrt(tokens)): docs/ring.md. */
#define RK_RING_DEFAULT_VNODES 2048
#define RK_RING_MAX_VNODES     65536
#define RK_RING_MAX_WEIGHT     1024
#define RK_RING_MAX_NODES      4096
#define RK_RING_MAX_TOKENS     (1u << 24)
/* The SipHash key of every ring hash: public and fixed, because clients
 * and every service must place a key the same way. */
#define RK_RING_HASH_KEY "ringkv/ring/v1\0\0"

/* One node as the caller describes it. */
typedef struct rk_ring_node {
	uint8_t id[RK_RING_ID_BYTES]; /* the node's UUID */
	uint32_t weight;              /* tokens = weight x vnodes; 0: none */
	char datacenter[RK_RING_NAME_MAX]; /* datacenter name */
	char rack[RK_RING_NAME_MAX];       /* rack name within the datacenter */
} rk_ring_node_t;

typedef struct rk_ring rk_ring_t;

/* Builds the ring of NODES[0..n) with VNODES tokens per unit of weight
 * (0: RK_RING_DEFAULT_VNODES). The order of NODES does not matter: nodes
 * are indexed in the ring by UUID order. RK_INVALID_ARGUMENT for two nodes
 * with one UUID, a weight or vnodes over the maximum, or more than
 * RK_RING_MAX_NODES nodes or RK_RING_MAX_TOKENS tokens; RK_RESOURCE_EXHAUSTED
 * out of memory. On RK_OK the caller frees *out with rk_ring_free(). */
rk_status_t rk_ring_build(const rk_ring_node_t *nodes, size_t n,
                          uint32_t vnodes, rk_ring_t **out);

void rk_ring_free(rk_ring_t *r);

/* Nodes of the ring (all nodes given, weight 0 included), and node I
 * (0 <= i < count, in UUID order; borrowed from the ring). */
size_t rk_ring_node_count(const rk_ring_t *r);
const rk_ring_node_t *rk_ring_node(const rk_ring_t *r, size_t i);
/* Index of the node with ID, or -1. */
int rk_ring_find(const rk_ring_t *r, const uint8_t id[RK_RING_ID_BYTES]);

size_t rk_ring_token_count(const rk_ring_t *r);
uint32_t rk_ring_vnodes(const rk_ring_t *r);

/* Token I of node U (the hash above). */
uint64_t rk_ring_node_token(const uint8_t id[RK_RING_ID_BYTES], uint32_t i);

/* The token of a key of LEN bytes. */
uint64_t rk_ring_key_token(const void *key, size_t len);

/* Index of the node that owns TOKEN, or -1 on an empty ring. */
int rk_ring_owner(const rk_ring_t *r, uint64_t token);

/* Share of the ring node I owns, in [0, 1]. */
double rk_ring_share(const rk_ring_t *r, size_t i);

/* The tokens of node I, sorted, into OUT (capacity CAP); returns how many
 * it has (which may exceed CAP: only CAP are written). */
size_t rk_ring_node_tokens(const rk_ring_t *r, size_t i, uint64_t *out,
                           size_t cap);

/* How many replicas a datacenter keeps. */
typedef struct rk_ring_dc_rf {
	const char *datacenter; /* its name (borrowed) */
	uint32_t n;             /* replicas in it */
} rk_ring_dc_rf_t;

/* What a preference list is asked for. */
typedef struct rk_ring_pref_opts {
	uint32_t n; /* replicas in all, when ndc == 0 */
	const rk_ring_dc_rf_t
	    *dcs;   /* per-datacenter counts (borrowed), or NULL */
	size_t ndc; /* entries of dcs; 0: use n */
} rk_ring_pref_opts_t;

/* The preference list of TOKEN: node indexes, the replicas first (in
 * clockwise order), then the fallbacks (clockwise). Writes at most CAP
 * entries into OUT and returns how many; *replicas (may be NULL) receives
 * how many of them are replicas (fewer than asked for when the ring has
 * too few nodes, or a datacenter too few). A node never appears twice.
 * Nodes of weight 0 hold no token and never appear. */
size_t rk_ring_preference_list(const rk_ring_t *r, uint64_t token,
                               const rk_ring_pref_opts_t *opts, int *out,
                               size_t cap, size_t *replicas);

/* One range whose owner differs between two rings. */
typedef struct rk_ring_move {
	uint64_t start;                 /* exclusive lower bound */
	uint64_t end;                   /* inclusive upper bound */
	bool had_from;                  /* false: the old ring was empty */
	uint8_t from[RK_RING_ID_BYTES]; /* owner in the old ring */
	bool has_to;                    /* false: the new ring is empty */
	uint8_t to[RK_RING_ID_BYTES];   /* owner in the new ring */
} rk_ring_move_t;

/* Which ranges changed owner from OLD to NEW (either may be empty, neither
 * NULL): adjacent ranges with the same (from, to) are merged, in token
 * order starting after token 0. On RK_OK *out (caller frees with free();
 * NULL when nothing moved) holds *n moves. RK_RESOURCE_EXHAUSTED out of
 * memory. */
rk_status_t rk_ring_diff(const rk_ring_t *old_ring, const rk_ring_t *new_ring,
                         rk_ring_move_t **out, size_t *n);

/* Length of a range (start, end]: end - start mod 2^64, with start == end
 * meaning the whole ring (2^64, returned as UINT64_MAX). */
uint64_t rk_ring_range_len(uint64_t start, uint64_t end);

#endif

/*
 * Between the member table's C structs and the protobuf messages of
 * proto/ringkv/v1/membership.proto: checking what arrives (everything from
 * the network is validated here, before the table sees it) and building
 * what leaves.
 */
#ifndef RK_MS_WIRE_H
#define RK_MS_WIRE_H

#include <ringkv/status.h>

#include "ringkv/v1/membership.pb-c.h"
#include "table.h"

#define RK_MS_MAX_ENDPOINTS 8
/* Counters above this are refused: they could only come from a broken or
 * hostile peer, and raising past them must not wrap. */
#define RK_MS_MAX_COUNTER (UINT64_C(1) << 62)

/* Fills OUT from PB after checking it: a 16-byte node id, a generation,
 * a known role and state, counters up to RK_MS_MAX_COUNTER, at most
 * RK_MS_MAX_ENDPOINTS endpoints and RK_MS_MAX_ACCUSERS accusers with 16-byte
 * ids, strings that fit, a weight the ring accepts. RK_INVALID_ARGUMENT with
 * *why (static text) otherwise. The local fields of OUT are zero. */
rk_status_t rk_ms_member_from_pb(const Ringkv__V1__Member *pb,
                                 rk_ms_member_t *out, const char **why);

/* A Member message with room for its parts. */
typedef struct rk_ms_pb_member {
	Ringkv__V1__Member pb;                            /* the message */
	Ringkv__V1__Endpoint ep[2];                       /* rpc, events */
	Ringkv__V1__Endpoint *epp[2];                     /* pointers to ep */
	Ringkv__V1__Accusation acc[RK_MS_MAX_ACCUSERS];   /* accusers */
	Ringkv__V1__Accusation *accp[RK_MS_MAX_ACCUSERS]; /* pointers to acc */
} rk_ms_pb_member_t;

/* Builds H from M, which it borrows (M must outlive H). NOW (monotonic
 * ms) gives heartbeat_age_ms; 0 leaves it out (gossip never sends it). */
void rk_ms_member_to_pb(const rk_ms_member_t *m, rk_ms_pb_member_t *h,
                        uint64_t now);

/* Member messages for N entries, with the pointer array a repeated field
 * wants. */
typedef struct rk_ms_pb_list {
	rk_ms_pb_member_t *h;    /* one per entry */
	Ringkv__V1__Member **pp; /* pointers to h[i].pb */
	size_t n;                /* entries */
} rk_ms_pb_list_t;

/* Builds L from M[0..n) (borrowed), keeping only ROLE (0: all). Caller
 * frees with rk_ms_pb_list_fini(). RK_RESOURCE_EXHAUSTED out of memory. */
rk_status_t rk_ms_pb_list_init(rk_ms_pb_list_t *l, const rk_ms_member_t *m,
                               size_t n, int role, uint64_t now);
void rk_ms_pb_list_fini(rk_ms_pb_list_t *l);

/* UUID in canonical form (8-4-4-4-12) into OUT (37 bytes). */
void rk_ms_uuid_format(const uint8_t id[RK_MS_ID_BYTES], char out[37]);

#endif

/*
 * The ring of one role from a membership table, built exactly as the
 * membership agent builds it for GetRing (docs/ring.md, docs/membership.md):
 * the members of that role that have not left, with their UUID, weight,
 * datacenter and rack. A coordinator, storage node or rate limiter that
 * holds the table (from Subscribe, GetMembers or events) computes the same
 * ring as every agent.
 */
#ifndef RK_RING_MEMBERS_H
#define RK_RING_MEMBERS_H

#include "ring/ring.h"
#include "ringkv/v1/membership.pb-c.h"

/* Builds the ring of ROLE (a ServiceId value) from MEMBERS[0..n) with
 * VNODES tokens per unit of weight (0: RK_RING_DEFAULT_VNODES). Entries
 * whose node id is not 16 bytes are skipped; a datacenter or rack name
 * longer than RK_RING_NAME_MAX - 1 bytes is cut. Errors as rk_ring_build;
 * on RK_OK the caller frees *out with rk_ring_free(). */
rk_status_t rk_ring_from_members(Ringkv__V1__Member *const *members, size_t n,
                                 int role, uint32_t vnodes, rk_ring_t **out);

#endif

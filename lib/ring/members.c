/*
 * A ring from membership entries (members.h): the one place that decides
 * which entries hold tokens, shared by the agent's GetRing and by every
 * service that places keys, so they cannot disagree.
 */
#include "ring/members.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

rk_status_t rk_ring_from_members(Ringkv__V1__Member *const *members, size_t n,
                                 int role, uint32_t vnodes, rk_ring_t **out)
{
	*out = NULL;
	rk_ring_node_t *nodes = calloc(n ? n : 1, sizeof(*nodes));
	if (nodes == NULL)
		return RK_RESOURCE_EXHAUSTED;
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		const Ringkv__V1__Member *m = members[i];
		if ((int)m->role != role ||
		    m->state == RINGKV__V1__MEMBER_STATE__MEMBER_LEFT ||
		    m->node_id.len != RK_RING_ID_BYTES)
			continue;
		memcpy(nodes[k].id, m->node_id.data, RK_RING_ID_BYTES);
		nodes[k].weight = m->weight;
		snprintf(nodes[k].datacenter, RK_RING_NAME_MAX, "%s",
		         m->datacenter ? m->datacenter : "");
		snprintf(nodes[k].rack, RK_RING_NAME_MAX, "%s",
		         m->rack ? m->rack : "");
		k++;
	}
	rk_status_t st = rk_ring_build(nodes, k, vnodes, out);
	free(nodes);
	return st;
}

/* Gossip from a peer as a fuzz target; see gossip_target.c. */
#ifndef RK_FUZZ_GOSSIP_TARGET_H
#define RK_FUZZ_GOSSIP_TARGET_H

#include <stddef.h>
#include <stdint.h>

/* Unpacks DATA as a GossipRequest, checks its members as the agent does
 * and merges the ones that pass into a member table. Returns how many
 * members were accepted. Never crashes, whatever DATA is. */
size_t rk_fuzz_gossip(const uint8_t *data, size_t size);

#endif

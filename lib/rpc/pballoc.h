/*
 * protobuf-c allocations from a bounded arena (core/arena.h).
 *
 * Every message that arrives from the network is unpacked with such an
 * allocator, so a hostile frame can make the decoder allocate at most the
 * arena's cap; past it, unpacking fails and the frame is refused as
 * malformed. Messages unpacked this way are never passed to
 * *_free_unpacked(): they go when the arena is reset.
 */
#ifndef RK_RPC_PBALLOC_H
#define RK_RPC_PBALLOC_H

#include <protobuf-c/protobuf-c.h>

#include "core/arena.h"

/* Makes PB allocate from ARENA (borrowed: must outlive PB's use). */
void rk_pballoc_init(ProtobufCAllocator *pb, rk_arena_t *arena);

#endif

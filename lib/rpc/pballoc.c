#include "rpc/pballoc.h"

static void *pballoc_alloc(void *data, size_t size)
{
	return rk_arena_alloc(data, size);
}

static void pballoc_free(void *data, void *ptr)
{
	/* Arena memory goes all at once at reset. */
	(void)data;
	(void)ptr;
}

void rk_pballoc_init(ProtobufCAllocator *pb, rk_arena_t *arena)
{
	pb->alloc = pballoc_alloc;
	pb->free = pballoc_free;
	pb->allocator_data = arena;
}

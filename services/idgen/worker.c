/*
 * Identity sources; see worker.h. Only the static source exists until the
 * membership service can grant leases (issue 4).
 */
#include "worker.h"

#include <stdio.h>

#include "snowflake.h"

static rk_status_t static_acquire(void *impl, rk_idgen_identity_t *out,
                                  char *why, size_t len)
{
	(void)why;
	(void)len;
	*out = *(const rk_idgen_identity_t *)impl;
	return RK_OK;
}

static bool static_held(void *impl, uint64_t *expires_at_ms)
{
	(void)impl;
	*expires_at_ms = 0;
	return true;
}

static void static_release(void *impl)
{
	(void)impl;
}

static const rk_idgen_worker_ops_t static_ops = {static_acquire, static_held,
                                                 static_release};

rk_status_t rk_idgen_worker_static(uint32_t dc, uint32_t worker,
                                   rk_idgen_worker_t *out)
{
	if (dc > RK_SNOWFLAKE_MAX_DATACENTER ||
	    worker > RK_SNOWFLAKE_MAX_WORKER)
		return RK_INVALID_ARGUMENT;
	out->kind = RK_IDGEN_WORKER_CONFIG;
	out->ops = &static_ops;
	out->identity.datacenter = dc;
	out->identity.worker = worker;
	/* The static source's state is the identity itself. */
	out->impl = &out->identity;
	return RK_OK;
}

rk_status_t rk_idgen_worker_acquire(rk_idgen_worker_t *w, char *why, size_t len)
{
	rk_idgen_identity_t id;
	rk_status_t st = w->ops->acquire(w->impl, &id, why, len);
	if (st == RK_OK)
		w->identity = id;
	return st;
}

bool rk_idgen_worker_held(rk_idgen_worker_t *w, uint64_t *expires_at_ms)
{
	uint64_t exp = 0;
	bool held = w->ops->held(w->impl, &exp);
	if (expires_at_ms != NULL)
		*expires_at_ms = exp;
	return held;
}

void rk_idgen_worker_release(rk_idgen_worker_t *w)
{
	w->ops->release(w->impl);
}

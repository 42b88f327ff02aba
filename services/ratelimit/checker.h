/*
 * The checker: applies every limit that matches a request, all or
 * nothing, and lets the most restrictive decide.
 *
 * One Check names a domain, descriptors and a number of hits. Each
 * descriptor is matched against the rules (rules.h); every limit of the
 * node it reaches applies, each with its own counter in the key table
 * (keytable.h), keyed by (domain, the descriptor's entries, the limit's
 * name, unit, algorithm, and sub_windows when > 1). The request passes
 * when every limit that is not in shadow mode lets it pass; only then
 * are its hits counted, on every limit that had room. A refused request
 * consumes nothing, so a client refused by a per-second limit does not
 * also spend its daily budget. The shards of all the request's keys are
 * locked together (in index order), so the decision over several limits
 * is atomic, and a key's requests are applied one at a time.
 *
 * Ownership hook. Every descriptor has an owner instance (chosen on the
 * ring: forward.h); OWNER tells the checker whether a descriptor is
 * local. The handlers forward descriptors owned elsewhere one hop before
 * the checker sees them, so a descriptor reaches the checker as not
 * local only when its owner could not be reached: each of its limits
 * then fails open or closed as its rule says, and the answer says which
 * happened. A request marked `forwarded` is always decided here.
 *
 * Thread-safe: any number of threads may check at once and install new
 * rules at any time.
 */
#ifndef RK_RL_CHECKER_H
#define RK_RL_CHECKER_H

#include <stddef.h>
#include <stdint.h>

#include <ringkv/status.h>

#include "keytable.h"
#include "metrics/metrics.h"
#include "ringkv/v1/ratelimit.pb-c.h"
#include "rules.h"

typedef enum rk_rl_owner {
	RK_RL_OWNER_LOCAL = 0,       /* this instance decides */
	RK_RL_OWNER_REMOTE = 1,      /* another instance owns it */
	RK_RL_OWNER_UNREACHABLE = 2, /* the owner cannot be reached */
} rk_rl_owner_t;

/* Which instance owns the descriptor whose routing key is KEY (LEN bytes:
 * the domain, then each entry's key and value, each NUL-terminated).
 * Called from any thread with no lock held; must not block. */
typedef rk_rl_owner_t (*rk_rl_owner_fn)(void *arg, const void *key, size_t len);

/* Memory for the response, living until it has been serialized. */
typedef void *(*rk_rl_alloc_fn)(void *arg, size_t n);

typedef struct rk_rl_checker_opts {
	rk_rl_table_opts_t table;      /* the key table's size */
	uint32_t max_hits;             /* most hits per check; 0: 1,000,000 */
	uint32_t unreachable_retry_ms; /* retry-after when failing closed;
	                                  0: 1000 */
	rk_metrics_t *metrics;         /* borrowed, may be NULL */
	uint64_t (*clock)(void *arg);  /* wall ms; NULL: rk_clock_unix_ms */
	void *clock_arg;               /* for clock */
	rk_rl_owner_fn owner;          /* NULL: every descriptor is local */
	void *owner_arg;               /* for owner */
} rk_rl_checker_opts_t;

typedef struct rk_rl_checker rk_rl_checker_t;

/* Makes a checker with RULES (takes ownership; version 1). Caller frees
 * with rk_rl_checker_free(). */
rk_status_t rk_rl_checker_new(const rk_rl_checker_opts_t *opts,
                              rk_rl_rules_t *rules, rk_rl_checker_t **out);

/* No check may be running. NULL is ok. */
void rk_rl_checker_free(rk_rl_checker_t *c);

/* Replaces the rules atomically (takes ownership of RULES): checks that
 * started before go on with the old ones, later ones see the new. The
 * old rules are freed when the last check using them ends. Returns the
 * new rules version. */
uint64_t rk_rl_checker_install(rk_rl_checker_t *c, rk_rl_rules_t *rules);

/* The rules in effect, held until rk_rl_checker_release(). */
rk_rl_rules_t *rk_rl_checker_acquire(rk_rl_checker_t *c);
void rk_rl_checker_release(rk_rl_checker_t *c, rk_rl_rules_t *rules);

/* Checks REQ under RULES (held by the caller), filling RESP (initialised
 * by the caller; its parts come from ALLOC and borrow strings from RULES
 * and REQ, so both must outlive it). On an error RESP is not to be used
 * and WHY says what was wrong: INVALID_ARGUMENT (empty domain, no or
 * empty descriptors, empty key, too long, too many, hits over max_hits),
 * NOT_FOUND (no rules for the domain), OUT_OF_RANGE (more hits than an
 * enforced limit can ever admit), RESOURCE_EXHAUSTED (ALLOC failed). */
rk_status_t rk_rl_checker_check(rk_rl_checker_t *c, rk_rl_rules_t *rules,
                                const Ringkv__V1__RateLimitCheckRequest *req,
                                rk_rl_alloc_fn alloc, void *alloc_arg,
                                Ringkv__V1__RateLimitCheckResponse *resp,
                                char *why, size_t why_len);

/* The key table (for its statistics). */
rk_rl_table_t *rk_rl_checker_table(rk_rl_checker_t *c);

/* The metrics registry it was made with (borrowed), or NULL. */
rk_metrics_t *rk_rl_checker_metrics(rk_rl_checker_t *c);

#endif

/*
 * A check whose descriptors have several owners (docs/ratelimit.md,
 * "Distribution"): each owner decides its own descriptors.
 *
 * The request is cut into one part per owner: the descriptors owned
 * elsewhere go, marked `forwarded`, to their owners (one Check each); the
 * rest, and the parts of owners that could not be reached, are decided
 * here by the checker (where the owner hook makes the unreachable ones
 * fail open or closed). The answers are merged as one check's: every
 * limit that applied, with descriptor_index mapped back to the request;
 * allowed when every part allowed; the deciding limit chosen over all of
 * them as the checker chooses (refused: the enforced refusal that lasts
 * longest; admitted: the enforced limit with the least room left); the
 * outcome FAILED_CLOSED if any limit failed closed, else FAILED_OPEN if
 * any failed open, else DECIDED.
 *
 * Unlike a check with one owner, this is not all-or-nothing across
 * owners: each owner counts its hits when its own limits admit them, so
 * a request refused by one owner may have been counted by another.
 *
 * Metrics (forward.h): the split and its NG parts are counted, and each
 * remote part by how it ended (answered, error, or failed over: closed
 * when one of its limits failed closed, else open).
 */
#ifndef RK_RL_SPLIT_H
#define RK_RL_SPLIT_H

#include "checker.h"
#include "forward.h"

/* Decides REQ, whose descriptors OWNER / URLS place on NG other owners
 * (rk_rl_fwd_owners), within REMAINING_MS. Fills OUT (initialised by the
 * caller) from ALLOC; the remote answers it borrows from stay in
 * RESULTS[0..ng), which the caller clears after the reply. On an error
 * (the checker's, or an owner's relayed) WHY says what. */
rk_status_t rk_rl_split_check(
    rk_rl_fwd_t *f, rk_rl_checker_t *c, rk_rl_rules_t *rules,
    const Ringkv__V1__RateLimitCheckRequest *req, const int *owner,
    char (*urls)[RK_CLUSTER_URL_MAX], int ng, uint64_t remaining_ms,
    rk_rl_alloc_fn alloc, void *alloc_arg, rk_rpc_result_t *results,
    Ringkv__V1__RateLimitCheckResponse *out, char *why, size_t why_len);

#endif

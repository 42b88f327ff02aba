/*
 * libringkv: the rate limiter's calls (service ringkv-ratelimit).
 *
 * A check names a domain and one or more descriptors, each an ordered
 * list of (key, value) entries, e.g. [("client_id","42"), ("path","/kv")];
 * the server's rules file says which limits apply. Every limit that
 * applies is checked at once and the most restrictive decides; HITS = 0
 * reads the state without counting. See docs/ratelimit.md.
 *
 *	ringkv_rl_entry_t e[] = {{"client_id", "42"}};
 *	ringkv_rl_descriptor_t d = {e, 1};
 *	ringkv_rl_check_t chk = {.domain = "ringkv", .descriptors = &d,
 *	                         .n_descriptors = 1, .hits = 1};
 *	ringkv_rl_result_t res;
 *	if (ringkv_ratelimit_check(conn, &chk, &res, &err) == RK_OK) {
 *		if (!res.allowed) wait res.retry_after_ms;
 *		ringkv_rl_result_clear(&res);
 *	}
 *
 * Statuses besides the connection's: INVALID_ARGUMENT (empty domain or
 * descriptor, empty key, hits over the server's max_hits), NOT_FOUND (no
 * rules for the domain), OUT_OF_RANGE (hits more than a limit could ever
 * admit).
 */
#ifndef RINGKV_RATELIMIT_H
#define RINGKV_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ringkv/client.h>
#include <ringkv/status.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Who decided (RateLimitOutcome in ratelimit.proto). */
typedef enum ringkv_rl_outcome {
	RINGKV_RL_DECIDED = 1,       /* the key's owner applied the limits */
	RINGKV_RL_FAILED_OPEN = 2,   /* owner unreachable; allowed by rule */
	RINGKV_RL_FAILED_CLOSED = 3, /* owner unreachable; refused by rule */
} ringkv_rl_outcome_t;

typedef struct ringkv_rl_entry {
	const char *key;   /* descriptor key, non-empty */
	const char *value; /* its value; NULL is "" */
} ringkv_rl_entry_t;

typedef struct ringkv_rl_descriptor {
	const ringkv_rl_entry_t *entries; /* outermost first */
	size_t n_entries;
} ringkv_rl_descriptor_t;

typedef struct ringkv_rl_check {
	const char *domain;                        /* rules domain */
	const ringkv_rl_descriptor_t *descriptors; /* one or more */
	size_t n_descriptors;
	uint32_t hits; /* 0 reads */
} ringkv_rl_check_t;

/* One limit that applied. */
typedef struct ringkv_rl_limit {
	const char *rule;          /* rule name; owned by the result */
	uint32_t descriptor_index; /* which descriptor matched it */
	uint64_t limit;            /* requests per unit */
	int unit;                  /* 1 second, 2 minute, 3 hour, 4 day */
	int algorithm;             /* RateLimitAlgorithm value */
	uint64_t burst;            /* buckets: size; else 0 */
	bool allowed;              /* its own verdict */
	uint64_t remaining;        /* hits left after this check */
	uint64_t reset_after_ms;   /* until back to full */
	uint64_t retry_after_ms;   /* refused: until a retry could pass */
	uint64_t delay_ms;         /* leaking bucket: wait before sending on */
	bool shadow_mode;          /* soft limit */
	bool near_limit;           /* past its near_limit threshold */
	ringkv_rl_outcome_t outcome;
} ringkv_rl_limit_t;

/* The answer to one check. */
typedef struct ringkv_rl_result {
	bool allowed;            /* the verdict */
	uint64_t limit;          /* deciding limit (0 if none applied) */
	int unit;                /* its unit */
	uint64_t remaining;      /* its hits left */
	uint64_t reset_after_ms; /* until it is back to full */
	uint64_t retry_after_ms; /* refused: until a retry could pass */
	uint64_t delay_ms;       /* hold the request this long first */
	int deciding_index;      /* index in limits, -1 if none applied */
	bool shadow_mode;        /* passed only because a limit is soft */
	uint64_t rules_version;  /* of the rules that decided */
	ringkv_rl_outcome_t outcome;
	ringkv_rl_limit_t *limits; /* n_limits; freed by _clear */
	size_t n_limits;
} ringkv_rl_result_t;

/* Checks (and counts) one request. On RK_OK fills OUT, which the caller
 * clears with ringkv_rl_result_clear(). ERR may be NULL. */
rk_status_t ringkv_ratelimit_check(ringkv_conn_t *conn,
                                   const ringkv_rl_check_t *check,
                                   ringkv_rl_result_t *out,
                                   ringkv_error_t *err);

/* N checks in one call, answered in order. On RK_OK (the call itself
 * worked) STATUSES[i] says whether check i did, and RESULTS[i] holds its
 * answer when STATUSES[i] is RK_OK; every RESULTS[i] is then the caller's
 * to clear (clearing one that holds nothing is fine). */
rk_status_t ringkv_ratelimit_check_batch(ringkv_conn_t *conn,
                                         const ringkv_rl_check_t *checks,
                                         size_t n, ringkv_rl_result_t *results,
                                         rk_status_t *statuses,
                                         ringkv_error_t *err);

void ringkv_rl_result_clear(ringkv_rl_result_t *r);

/* "second", "minute", "hour", "day"; "?" otherwise. */
const char *ringkv_rl_unit_name(int unit);

#ifdef __cplusplus
}
#endif
#endif

/*
 * The five rate-limit algorithms behind one interface.
 *
 * Each algorithm keeps a small fixed-size state per key (rk_rl_state_t,
 * 24 bytes; the sliding log adds a bounded heap ring, the sliding window
 * counter with K > 1 sub-windows a block of K + 1 counts) and decides with
 * integer arithmetic only, so a decision is exact and the same on every
 * machine. Time is a parameter (NOW_MS, wall milliseconds): the algorithms
 * never read a clock, which is what lets the tests drive them with a
 * controllable one. Windows are aligned on the Unix epoch, so two
 * instances agree on where a window starts.
 *
 * Decisions have two phases so that one request can be checked against
 * several limits all-or-nothing: rk_rl_apply(..., commit=false) says
 * whether HITS would pass without counting them; the same call with
 * commit=true counts them (the caller only commits after every limit of
 * the request has said yes). Both phases may normalise the state (roll a
 * window, refill a bucket, drop expired log entries): that changes its
 * representation, never its meaning. HITS = 0 reads.
 *
 * A clock that steps back is treated as standing still until it catches
 * up: no algorithm ever gives back capacity because time ran backwards.
 *
 * Not thread-safe: the key table serialises every call on one key
 * (keytable.h). The files algo_<name>.c hold one algorithm each, with an
 * essay on its trade-offs and memory.
 */
#ifndef RK_RL_ALGO_H
#define RK_RL_ALGO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ringkv/status.h>

/* Values equal RateLimitAlgorithm in proto/ringkv/v1/ratelimit.proto. */
typedef enum rk_rl_algorithm {
	RK_RL_SLIDING_WINDOW = 1, /* current + previous window by overlap */
	RK_RL_TOKEN_BUCKET = 2,   /* bucket of `burst` refilled at the rate */
	RK_RL_LEAKING_BUCKET = 3, /* queue of `burst` drained at the rate */
	RK_RL_FIXED_WINDOW = 4,   /* counter reset at each window start */
	RK_RL_SLIDING_LOG = 5,    /* exact log of hit times, bounded */
} rk_rl_algorithm_t;

#define RK_RL_ALGORITHM_COUNT 6 /* for arrays indexed by algorithm */

/* Largest requests_per_unit and burst: keeps every product of a count and
 * a unit in milliseconds (at most 2^32 * 86,400,000 < 2^59) inside 64 bits. */
#define RK_RL_MAX_LIMIT 0xffffffffull

/* Most sub-windows per unit of a sliding window counter: bounds its
 * per-key block to 12 + 4 * 65 = 272 bytes (algo_sliding_window.c). */
#define RK_RL_MAX_SUB_WINDOWS 64

/* What one limit allows. */
typedef struct rk_rl_params {
	uint64_t limit;   /* requests per unit, 1..RK_RL_MAX_LIMIT */
	uint64_t unit_ms; /* 1000, 60000, 3600000 or 86400000 */
	uint64_t burst;   /* buckets: size, 1..RK_RL_MAX_LIMIT; else = limit */
	uint32_t max_log; /* sliding log: most entries kept per key */
	uint32_t sub_windows; /* sliding window counter: K sub-windows per
	                         unit, 1..RK_RL_MAX_SUB_WINDOWS; 0 or 1: the
	                         classic current + previous window */
	rk_rl_algorithm_t algorithm; /* which algorithm counts */
} rk_rl_params_t;

/* One entry of a sliding log: hits that arrived in one millisecond. */
typedef struct rk_rl_log_entry {
	uint32_t t; /* arrival, unix ms modulo 2^32 (entries live < 1 day) */
	uint32_t n; /* hits counted at t */
} rk_rl_log_entry_t;

/* A sliding log: a ring of entries, oldest at head, in one heap block. */
typedef struct rk_rl_log {
	uint64_t newest_ms;    /* arrival of the newest entry, full unix ms */
	uint32_t head;         /* index of the oldest entry */
	uint32_t len;          /* entries in use */
	uint32_t cap;          /* entries allocated */
	uint32_t total;        /* sum of n over the entries in use */
	rk_rl_log_entry_t e[]; /* cap entries */
} rk_rl_log_t;

/* The counts of a sliding window counter with K > 1 sub-windows: the
 * newest sub-window and the K before it, in one heap block. */
typedef struct rk_rl_subwin {
	uint64_t sub; /* global index (unix ms -> window * K + i) of the
	                 newest sub-window counted */
	uint32_t k;   /* K, sub-windows per unit */
	uint32_t n[]; /* K + 1 counts; sub-window x at n[x % (K + 1)] */
} rk_rl_subwin_t;

/* Bytes of the block for K sub-windows. */
#define RK_RL_SUBWIN_BYTES(k)                                                  \
	(offsetof(rk_rl_subwin_t, n) + ((size_t)(k) + 1) * sizeof(uint32_t))

/* First word of a sliding window state that holds a sub-window block
 * (no window index, now / U, ever reaches it). */
#define RK_RL_SUBWIN_TAG UINT64_MAX

/* Per-key state; all zeroes is a fresh key for every algorithm. */
typedef union rk_rl_state {
	struct {
		uint64_t window; /* index (now / unit) of the current window */
		uint64_t cur;    /* hits counted in it */
		uint64_t prev;   /* hits counted in the window before */
	} sw;                    /* sliding window counter, K = 1 */
	struct {
		uint64_t tag;      /* RK_RL_SUBWIN_TAG */
		rk_rl_subwin_t *p; /* heap; the K + 1 counts */
	} swk; /* sliding window counter, K > 1, once it counted a hit */
	struct {
		uint64_t window; /* index of the current window */
		uint64_t count;  /* hits counted in it */
	} fw;                    /* fixed window */
	struct {
		uint64_t
		    debt; /* tokens taken and not yet refilled, x unit_ms */
		uint64_t last_ms; /* when debt was last brought up to date */
	} tb;                     /* token bucket */
	struct {
		uint64_t level; /* queued hits not yet leaked out, x unit_ms */
		uint64_t last_ms; /* when level was last brought up to date */
	} lb;                     /* leaking bucket */
	struct {
		rk_rl_log_t *p; /* heap; NULL while the log is empty */
	} log;                  /* sliding window log */
} rk_rl_state_t;

/* The verdict of one limit on one request. */
typedef struct rk_rl_verdict {
	bool allowed;            /* HITS fit (or were counted, on commit) */
	uint64_t capacity;       /* what remaining counts down from */
	uint64_t remaining;      /* hits that would still fit after this */
	uint64_t reset_after_ms; /* until the key is back to full (fresh) */
	uint64_t retry_after_ms; /* refused: until HITS could fit; else 0 */
	uint64_t delay_ms;       /* leaking bucket: time the hits wait in the
	                            queue before they leave; else 0 */
} rk_rl_verdict_t;

/* Decides HITS against P at NOW_MS and, with COMMIT and when they fit,
 * counts them. Fills V. RK_RESOURCE_EXHAUSTED only when a sliding log
 * could not grow (out of memory); the state is then unchanged. */
rk_status_t rk_rl_apply(rk_rl_state_t *s, const rk_rl_params_t *p,
                        uint64_t now_ms, uint64_t hits, bool commit,
                        rk_rl_verdict_t *v);

/* Heap bytes a state holds beyond itself (the sliding log's ring, the
 * sub-window counter's block). */
size_t rk_rl_state_heap_bytes(const rk_rl_state_t *s,
                              rk_rl_algorithm_t algorithm);

/* Frees what the state holds and zeroes it. */
void rk_rl_state_clear(rk_rl_state_t *s, rk_rl_algorithm_t algorithm);

/* "sliding_window_counter", ...; NULL for an unknown value. */
const char *rk_rl_algorithm_name(rk_rl_algorithm_t algorithm);

/* The algorithms, one per file (same contract as rk_rl_apply). */
rk_status_t rk_rl_sliding_window_apply(rk_rl_state_t *s,
                                       const rk_rl_params_t *p, uint64_t now_ms,
                                       uint64_t hits, bool commit,
                                       rk_rl_verdict_t *v);
rk_status_t rk_rl_token_bucket_apply(rk_rl_state_t *s, const rk_rl_params_t *p,
                                     uint64_t now_ms, uint64_t hits,
                                     bool commit, rk_rl_verdict_t *v);
rk_status_t rk_rl_leaking_bucket_apply(rk_rl_state_t *s,
                                       const rk_rl_params_t *p, uint64_t now_ms,
                                       uint64_t hits, bool commit,
                                       rk_rl_verdict_t *v);
rk_status_t rk_rl_fixed_window_apply(rk_rl_state_t *s, const rk_rl_params_t *p,
                                     uint64_t now_ms, uint64_t hits,
                                     bool commit, rk_rl_verdict_t *v);
rk_status_t rk_rl_sliding_log_apply(rk_rl_state_t *s, const rk_rl_params_t *p,
                                    uint64_t now_ms, uint64_t hits, bool commit,
                                    rk_rl_verdict_t *v);

/* ceil(a / b) for b > 0. */
static inline uint64_t rk_rl_div_up(uint64_t a, uint64_t b)
{
	return a / b + (a % b != 0);
}

#endif

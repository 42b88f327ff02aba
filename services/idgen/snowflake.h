/*
 * The Snowflake generator of ringkv-idgen: 64-bit IDs made of, from the top
 * bit, 1 sign bit (always 0), 41 bits of milliseconds since an epoch,
 * 5 bits datacenter id, 5 bits worker id and 12 bits sequence. IDs from one
 * generator strictly increase.
 *
 * The generator reads time only through an injected clock source (wall
 * microseconds, monotonic microseconds, a sleep), so tests can step the
 * wall clock back, freeze it or run it, and persists its high-water mark
 * only through an injected reserve hook (hwm.c in the service). See
 * docs/idgen.md for the clock rules it enforces.
 *
 * Thread-safe: one mutex orders every issue. Ownership: the generator
 * copies its options; the clock's and the hook's ARG are borrowed and must
 * outlive it.
 */
#ifndef RK_IDGEN_SNOWFLAKE_H
#define RK_IDGEN_SNOWFLAKE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ringkv/status.h>

#define RK_SNOWFLAKE_TIMESTAMP_BITS  41
#define RK_SNOWFLAKE_DATACENTER_BITS 5
#define RK_SNOWFLAKE_WORKER_BITS     5
#define RK_SNOWFLAKE_SEQUENCE_BITS   12
#define RK_SNOWFLAKE_MAX_DATACENTER  31u
#define RK_SNOWFLAKE_MAX_WORKER      31u
#define RK_SNOWFLAKE_SEQUENCES       4096u /* IDs per ms per worker */
#define RK_SNOWFLAKE_MAX_BATCH       4096u /* largest count per call */
/* 2026-01-01T00:00:00Z, Unix ms. */
#define RK_SNOWFLAKE_DEFAULT_EPOCH_MS    1767225600000ull
#define RK_SNOWFLAKE_DEFAULT_MAX_STEP_MS 5u
#define RK_SNOWFLAKE_DEFAULT_STALL_MS    50u

/* The fields of an ID. */
typedef struct rk_snowflake_parts {
	uint64_t ms_since_epoch; /* the 41-bit time field */
	uint32_t datacenter;     /* the 5-bit datacenter field */
	uint32_t worker;         /* the 5-bit worker field */
	uint32_t sequence;       /* the 12-bit sequence field */
} rk_snowflake_parts_t;

/* Builds an ID from PARTS; every field must be in range (asserted). */
uint64_t rk_snowflake_compose(const rk_snowflake_parts_t *parts);

/* Splits ID into OUT. RK_INVALID_ARGUMENT if the sign bit is set (no
 * generator makes such an ID). */
rk_status_t rk_snowflake_decompose(uint64_t id, rk_snowflake_parts_t *out);

/* The first Unix ms the 41-bit time field cannot hold, for EPOCH_MS. */
uint64_t rk_snowflake_expires_at_ms(uint64_t epoch_ms);

/* Where time comes from. */
typedef struct rk_snowflake_clock {
	uint64_t (*wall_us)(void *arg);           /* Unix µs; may jump */
	uint64_t (*mono_us)(void *arg);           /* never goes back */
	void (*sleep_us)(void *arg, uint64_t us); /* waits about US µs */
	void *arg;                                /* borrowed */
} rk_snowflake_clock_t;

/* The real clocks (CLOCK_REALTIME, CLOCK_MONOTONIC, nanosleep). */
const rk_snowflake_clock_t *rk_snowflake_system_clock(void);

/* Persists that no ID at or after Unix ms HWM_MS has been issued yet;
 * called with the generator's lock held, before any ID at or after the
 * previous mark is handed out. On failure fills WHY (LEN bytes). */
typedef rk_status_t (*rk_snowflake_reserve_fn)(void *arg, uint64_t hwm_ms,
                                               char *why, size_t len);

typedef struct rk_snowflake_opts {
	uint64_t epoch_ms;      /* Unix ms of time field 0 */
	uint32_t datacenter_id; /* 0..31 */
	uint32_t worker_id;     /* 0..31 */
	uint32_t max_step_ms;   /* backward steps up to this are waited out */
	uint32_t stall_ms;      /* a wait that overruns what the clock needs
	                           by this much means the clock stopped */
	uint32_t chunk_ms;      /* the mark is raised this far past use */
	uint64_t floor_ms;      /* no ID below this Unix ms (the persisted
	                           mark found at start); 0: none */
	uint64_t reserved_ms;   /* mark already persisted (>= floor_ms);
	                           issuing at or past it calls RESERVE */
	rk_snowflake_clock_t clock;      /* copied; its ARG is borrowed */
	rk_snowflake_reserve_fn reserve; /* NULL: nothing is persisted */
	void *reserve_arg;               /* borrowed */
} rk_snowflake_opts_t;

/* Why an issue was refused. */
typedef enum rk_snowflake_refusal {
	RK_SNOWFLAKE_ISSUED = 0,     /* not refused */
	RK_SNOWFLAKE_CLOCK_BACK,     /* clock behind by more than the step */
	RK_SNOWFLAKE_CLOCK_STALLED,  /* the clock stopped while we waited */
	RK_SNOWFLAKE_RESERVE_FAILED, /* the high-water mark was not persisted */
	RK_SNOWFLAKE_OUT_OF_RANGE,   /* before the epoch or past expiry */
} rk_snowflake_refusal_t;

/* What one issue did, besides the IDs. */
typedef struct rk_snowflake_outcome {
	bool contiguous;      /* ids[i] == ids[0] + i for every i */
	bool waited_step;     /* waited out a small backward step */
	bool waited_sequence; /* waited for the next ms (sequence ran out) */
	bool reserved;        /* raised the high-water mark */
	rk_snowflake_refusal_t refusal; /* why not, when not RK_OK */
	uint64_t step_ms;        /* how far the clock was behind, if it was */
	uint32_t retry_after_ms; /* on refusal: when to try again */
	char why[192];           /* on refusal: words naming the cause */
} rk_snowflake_outcome_t;

/* Clock states (the values of IdgenClockState in idgen.proto). */
typedef enum rk_snowflake_clock_state {
	RK_SNOWFLAKE_CLOCK_OK = 1,
	RK_SNOWFLAKE_CLOCK_WAITING = 2,
	RK_SNOWFLAKE_CLOCK_REFUSING = 3,
} rk_snowflake_clock_state_t;

/* A snapshot for Info. */
typedef struct rk_snowflake_info {
	uint64_t last_issued_ms; /* Unix ms of the last ID issued; 0: none */
	uint64_t reserved_ms;    /* persisted high-water mark, Unix ms */
	uint64_t behind_ms;      /* how far the clock is behind now, if it is */
	rk_snowflake_clock_state_t state; /* as of the last issue or probe */
} rk_snowflake_info_t;

typedef struct rk_snowflake rk_snowflake_t;

/* Makes a generator. RK_INVALID_ARGUMENT for an id out of range, an epoch
 * in the future of the 41 bits, or floor_ms > reserved_ms. Caller frees
 * with rk_snowflake_free(). */
rk_status_t rk_snowflake_new(const rk_snowflake_opts_t *opts,
                             rk_snowflake_t **out);
void rk_snowflake_free(rk_snowflake_t *g);

/* Do not wait, sleep or persist: answer RK_ABORTED (nothing issued) when
 * the issue would need to. */
#define RK_SNOWFLAKE_NONBLOCK 0x1

/* Issues COUNT (1..RK_SNOWFLAKE_MAX_BATCH) IDs into IDS, in increasing
 * order. Waits out a backward step up to max_step_ms, and for the next ms
 * when the sequence runs out. Returns RK_OK; RK_INVALID_ARGUMENT for a
 * bad COUNT; RK_UNAVAILABLE when refused (OUT says why; IDs handed out
 * before the refusal within this call are discarded, never reissued);
 * RK_ABORTED under RK_SNOWFLAKE_NONBLOCK when it would block. OUT may not
 * be NULL. */
rk_status_t rk_snowflake_next(rk_snowflake_t *g, uint32_t count, uint64_t *ids,
                              int flags, rk_snowflake_outcome_t *out);

/* What a NextId would meet now, without issuing: RK_OK, or RK_UNAVAILABLE
 * with OUT filled as a refusal would be. Updates the clock state. */
rk_status_t rk_snowflake_probe(rk_snowflake_t *g, rk_snowflake_outcome_t *out);

void rk_snowflake_get_info(rk_snowflake_t *g, rk_snowflake_info_t *out);

/* Raising the mark ahead of time, off the issue path. While IDs are being
 * issued within half a chunk of the persisted mark, mark_wanted() returns
 * true with *MARK the mark to persist next (a chunk past the later of the
 * clock and the last ID); a thread persists it and reports it with
 * mark_persisted(), which only ever raises the mark. Issuers then find the
 * mark ahead and never wait for an fsync. */
bool rk_snowflake_mark_wanted(rk_snowflake_t *g, uint64_t *mark);
void rk_snowflake_mark_persisted(rk_snowflake_t *g, uint64_t mark);

/* The options it runs with (borrowed from G). */
const rk_snowflake_opts_t *rk_snowflake_opts(const rk_snowflake_t *g);

#endif

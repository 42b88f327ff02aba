/*
 * libringkv: calls to a ringkv-idgen server (proto/ringkv/v1/idgen.proto),
 * over a connection from ringkv_connect().
 *
 * IDs are 64-bit Snowflake IDs: from the top bit, 1 sign bit (always 0),
 * 41 bits of ms since the generator's epoch, 5 bits datacenter, 5 bits
 * worker, 12 bits sequence. IDs from one generator strictly increase.
 *
 * Errors besides the connection's: RK_UNAVAILABLE while the generator
 * refuses (clock stepped back past its limit, clock stopped, mark not
 * persisted; err->message names the cause and err->retry_after_ms says
 * when to try again), RK_INVALID_ARGUMENT for a bad count or ID.
 */
#ifndef RINGKV_IDGEN_H
#define RINGKV_IDGEN_H

#include <stdbool.h>
#include <stdint.h>

#include <ringkv/client.h>
#include <ringkv/status.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RINGKV_IDGEN_MAX_BATCH        4096
#define RINGKV_IDGEN_DEFAULT_EPOCH_MS 1767225600000ull /* 2026-01-01Z */

/* The parts of an ID. */
typedef struct ringkv_id_parts {
	uint64_t timestamp_ms;   /* issue time, Unix ms (epoch + field) */
	uint64_t ms_since_epoch; /* the 41-bit time field */
	uint32_t datacenter_id;  /* the 5-bit datacenter field */
	uint32_t worker_id;      /* the 5-bit worker field */
	uint32_t sequence;       /* the 12-bit sequence field */
} ringkv_id_parts_t;

/* What a generator says about itself. */
typedef struct ringkv_idgen_info {
	uint32_t timestamp_bits;   /* 41 */
	uint32_t datacenter_bits;  /* 5 */
	uint32_t worker_bits;      /* 5 */
	uint32_t sequence_bits;    /* 12 */
	uint64_t epoch_ms;         /* the ID epoch, Unix ms */
	uint64_t expires_at_ms;    /* when the time field runs out, Unix ms */
	uint32_t datacenter_id;    /* the generator's datacenter id */
	uint32_t worker_id;        /* the generator's worker id */
	uint32_t worker_id_source; /* 1 config, 2 lease */
	uint64_t lease_expires_at_ms; /* 0 when not leased */
	uint64_t high_water_ms;       /* persisted high-water mark, Unix ms */
	uint64_t last_issued_ms;      /* time of the last ID issued; 0: none */
	uint32_t clock_state;         /* 1 ok, 2 waiting, 3 refusing */
	uint32_t max_clock_step_ms;   /* largest backward step waited out */
	uint32_t max_batch;           /* largest count per batch */
	rk_status_t issuing;          /* what NextId would answer now */
	char issuing_message[256];    /* why not, when not RK_OK */
	uint32_t issuing_retry_after_ms; /* when to try again, when not */
} ringkv_idgen_info_t;

/* One new ID into *ID. */
rk_status_t ringkv_id_next(ringkv_conn_t *conn, uint64_t *id,
                           ringkv_error_t *err);

/* COUNT (1..RINGKV_IDGEN_MAX_BATCH) new IDs into IDS[0..COUNT), in
 * increasing order, in one call. *CONTIGUOUS (may be NULL) says whether
 * the server sent them as one run (first id + count). */
rk_status_t ringkv_id_next_batch(ringkv_conn_t *conn, uint32_t count,
                                 uint64_t *ids, bool *contiguous,
                                 ringkv_error_t *err);

/* Splits ID as the server's layout and epoch say. */
rk_status_t ringkv_id_decode(ringkv_conn_t *conn, uint64_t id,
                             ringkv_id_parts_t *out, ringkv_error_t *err);

/* Splits ID locally, for a generator with epoch EPOCH_MS; no server.
 * RK_INVALID_ARGUMENT if its sign bit is set. */
rk_status_t ringkv_id_decode_local(uint64_t id, uint64_t epoch_ms,
                                   ringkv_id_parts_t *out);

/* The generator's layout, epoch, identity and clock state. */
rk_status_t ringkv_idgen_info(ringkv_conn_t *conn, ringkv_idgen_info_t *out,
                              ringkv_error_t *err);

#ifdef __cplusplus
}
#endif
#endif

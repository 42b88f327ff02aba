/*
 * The one status enum of ringkv.
 *
 * Every function in the code base that can fail returns an rk_status_t,
 * and every RPC answers with one. The values are gRPC's status codes, value
 * for value, and equal to ringkv.v1.StatusCode in proto/ringkv/v1/common.proto,
 * so a status crosses the wire and the C API unchanged. Details go in an
 * optional message out-parameter, never in new codes.
 *
 * This header is part of the public client API; the short RK_ prefix is
 * kept there too because the same values flow through every layer.
 */
#ifndef RINGKV_STATUS_H
#define RINGKV_STATUS_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum rk_status {
	RK_OK                  = 0,
	RK_CANCELLED           = 1,
	RK_UNKNOWN             = 2,
	RK_INVALID_ARGUMENT    = 3,
	RK_DEADLINE_EXCEEDED   = 4,
	RK_NOT_FOUND           = 5,
	RK_ALREADY_EXISTS      = 6,
	RK_PERMISSION_DENIED   = 7,
	RK_RESOURCE_EXHAUSTED  = 8,
	RK_FAILED_PRECONDITION = 9,
	RK_ABORTED             = 10,
	RK_OUT_OF_RANGE        = 11,
	RK_UNIMPLEMENTED       = 12,
	RK_INTERNAL            = 13,
	RK_UNAVAILABLE         = 14,
	RK_DATA_LOSS           = 15,
	RK_UNAUTHENTICATED     = 16,
} rk_status_t;

#define RK_STATUS_COUNT 17

/* "OK", "INVALID_ARGUMENT", ...; "UNKNOWN_STATUS" for a value out of range.
 * Static storage: never freed. */
const char *rk_status_name(rk_status_t status);

/* True when the value is one of the codes above; anything read from the
 * network is checked with this before it is trusted. */
int rk_status_valid(int value);

#ifdef __cplusplus
}
#endif
#endif /* RINGKV_STATUS_H */

/* Names of the status codes; see include/ringkv/status.h. */
#include <ringkv/status.h>

static const char *const status_names[RK_STATUS_COUNT] = {
	"OK",
	"CANCELLED",
	"UNKNOWN",
	"INVALID_ARGUMENT",
	"DEADLINE_EXCEEDED",
	"NOT_FOUND",
	"ALREADY_EXISTS",
	"PERMISSION_DENIED",
	"RESOURCE_EXHAUSTED",
	"FAILED_PRECONDITION",
	"ABORTED",
	"OUT_OF_RANGE",
	"UNIMPLEMENTED",
	"INTERNAL",
	"UNAVAILABLE",
	"DATA_LOSS",
	"UNAUTHENTICATED",
};

int rk_status_valid(int value)
{
	return value >= 0 && value < RK_STATUS_COUNT;
}

const char *rk_status_name(rk_status_t status)
{
	if (!rk_status_valid((int)status))
		return "UNKNOWN_STATUS";
	return status_names[status];
}

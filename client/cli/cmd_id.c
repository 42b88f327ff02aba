/*
 * ringkv id: Snowflake IDs from a ringkv-idgen server.
 *
 *   ringkv id next [-n N] [--key FILE] [--timeout MS] URL
 *       prints N (default 1) new IDs, one per line, in increasing order;
 *       more than 4096 are fetched in several batches
 *   ringkv id decode [--epoch E] ID
 *       splits ID locally (no server): E is the generator's epoch, as
 *       YYYY-MM-DDTHH:MM:SSZ or Unix ms (default 2026-01-01T00:00:00Z)
 *   ringkv id info [--key FILE] [--timeout MS] URL
 *       the generator's layout, epoch, expiry, identity and clock state
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ringkv/idgen.h>

#include "commands.h"

#define USAGE                                                                  \
	"usage: ringkv id next [-n N] [--key FILE] [--timeout MS] URL\n"       \
	"       ringkv id decode [--epoch E] ID\n"                             \
	"       ringkv id info [--key FILE] [--timeout MS] URL\n"

static int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	if (s[0] < '0' || s[0] > '9')
		return -1;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v > max)
		return -1;
	*out = v;
	return 0;
}

/* "2026-01-01T00:00:00.123Z" for Unix MS. */
static void format_ms(uint64_t ms, char *out, size_t len)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&t, &tm);
	char day[32];
	strftime(day, sizeof(day), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out, len, "%s.%03uZ", day, (unsigned)(ms % 1000));
}

static int parse_epoch(const char *s, uint64_t *ms)
{
	if (parse_u64(s, UINT64_MAX / 2, ms) == 0)
		return 0;
	struct tm tm;
	memset(&tm, 0, sizeof(tm));
	const char *end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (end == NULL || *end != '\0')
		return -1;
	time_t t = timegm(&tm);
	if (t < 0)
		return -1;
	*ms = (uint64_t)t * 1000u;
	return 0;
}

static int cmd_decode(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"epoch", required_argument, NULL, 'e'}, {NULL, 0, NULL, 0}};
	uint64_t epoch = RINGKV_IDGEN_DEFAULT_EPOCH_MS;
	int ch;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "e:", opts, NULL)) != -1) {
		if (ch == 'e' && parse_epoch(optarg, &epoch) == 0)
			continue;
		if (ch == 'e')
			fprintf(stderr, "ringkv id decode: bad epoch %s\n",
			        optarg);
		fputs(USAGE, stderr);
		return 2;
	}
	uint64_t id;
	if (optind != argc - 1 || parse_u64(argv[optind], UINT64_MAX, &id)) {
		fputs(USAGE, stderr);
		return 2;
	}
	ringkv_id_parts_t p;
	if (ringkv_id_decode_local(id, epoch, &p) != RK_OK) {
		fprintf(stderr,
		        "ringkv id decode: %" PRIu64 " is not an ID "
		        "(its sign bit is set)\n",
		        id);
		return 1;
	}
	char when[64];
	format_ms(p.timestamp_ms, when, sizeof(when));
	printf("id             %" PRIu64 "\n", id);
	printf("time           %s (%" PRIu64 " ms)\n", when, p.timestamp_ms);
	printf("ms_since_epoch %" PRIu64 "\n", p.ms_since_epoch);
	printf("datacenter     %u\n", p.datacenter_id);
	printf("worker         %u\n", p.worker_id);
	printf("sequence       %u\n", p.sequence);
	return 0;
}

/* Parses the options of next and info; connects. Returns 0 or an exit
 * code. */
static int connect_from(int argc, char **argv, bool with_n, uint64_t *n,
                        ringkv_conn_t **conn)
{
	static const struct option opts[] = {
	    {"key", required_argument, NULL, 'k'},
	    {"timeout", required_argument, NULL, 't'},
	    {"count", required_argument, NULL, 'n'},
	    {NULL, 0, NULL, 0}};
	ringkv_conn_opts_t co = {.caller = "ringkv-cli", .timeout_ms = 5000};
	uint64_t v;
	int ch;
	optind = 1;
	while ((ch = getopt_long(argc, argv, with_n ? "k:t:n:" : "k:t:", opts,
	                         NULL)) != -1) {
		if (ch == 'k') {
			co.key_file = optarg;
		} else if (ch == 't' && parse_u64(optarg, 3600000, &v) == 0 &&
		           v > 0) {
			co.timeout_ms = (uint32_t)v;
		} else if (ch == 'n' && with_n &&
		           parse_u64(optarg, 100000000, &v) == 0 && v > 0) {
			*n = v;
		} else {
			fputs(USAGE, stderr);
			return 2;
		}
	}
	if (optind != argc - 1) {
		fputs(USAGE, stderr);
		return 2;
	}
	co.url = argv[optind];
	ringkv_error_t err;
	rk_status_t st = ringkv_connect(&co, conn, &err);
	if (st != RK_OK) {
		fprintf(stderr, "ringkv id: %s\n", err.message);
		return st == RK_INVALID_ARGUMENT ? 2 : 1;
	}
	return 0;
}

static int cmd_next(int argc, char **argv)
{
	uint64_t n = 1;
	ringkv_conn_t *conn = NULL;
	int rc = connect_from(argc, argv, true, &n, &conn);
	if (rc != 0)
		return rc;
	static uint64_t ids[RINGKV_IDGEN_MAX_BATCH];
	ringkv_error_t err;
	while (n > 0) {
		uint32_t k = n > RINGKV_IDGEN_MAX_BATCH ? RINGKV_IDGEN_MAX_BATCH
		                                        : (uint32_t)n;
		rk_status_t st =
		    k == 1 ? ringkv_id_next(conn, &ids[0], &err)
		           : ringkv_id_next_batch(conn, k, ids, NULL, &err);
		if (st != RK_OK) {
			fprintf(stderr, "ringkv id next: %s: %s\n",
			        rk_status_name(st), err.message);
			if (err.retry_after_ms > 0)
				fprintf(stderr, "(retry after %u ms)\n",
				        err.retry_after_ms);
			rc = 1;
			break;
		}
		for (uint32_t i = 0; i < k; i++)
			printf("%" PRIu64 "\n", ids[i]);
		n -= k;
	}
	ringkv_close(conn);
	return rc;
}

static int cmd_info(int argc, char **argv)
{
	ringkv_conn_t *conn = NULL;
	int rc = connect_from(argc, argv, false, NULL, &conn);
	if (rc != 0)
		return rc;
	ringkv_idgen_info_t in;
	ringkv_error_t err;
	rk_status_t st = ringkv_idgen_info(conn, &in, &err);
	ringkv_close(conn);
	if (st != RK_OK) {
		fprintf(stderr, "ringkv id info: %s: %s\n", rk_status_name(st),
		        err.message);
		return 1;
	}
	static const char *const states[] = {"?", "ok", "waiting", "refusing"};
	char e[64], x[64], h[64];
	format_ms(in.epoch_ms, e, sizeof(e));
	format_ms(in.expires_at_ms, x, sizeof(x));
	format_ms(in.high_water_ms, h, sizeof(h));
	printf("layout         1 sign, %u time, %u datacenter, %u worker, "
	       "%u sequence bits\n",
	       in.timestamp_bits, in.datacenter_bits, in.worker_bits,
	       in.sequence_bits);
	printf("epoch          %s (%" PRIu64 " ms)\n", e, in.epoch_ms);
	printf("expires_at     %s (%" PRIu64 " ms)\n", x, in.expires_at_ms);
	printf("datacenter     %u\n", in.datacenter_id);
	printf("worker         %u (%s)\n", in.worker_id,
	       in.worker_id_source == 2 ? "lease" : "config");
	if (in.worker_id_source == 2 && in.lease_expires_at_ms == 0) {
		printf("lease_until    not held: not issuing\n");
	} else if (in.worker_id_source == 2) {
		char lu[64];
		format_ms(in.lease_expires_at_ms, lu, sizeof(lu));
		printf("lease_until    %s (%" PRIu64 " ms; renewed in the "
		       "background)\n",
		       lu, in.lease_expires_at_ms);
	}
	printf("high_water     %s (%" PRIu64 " ms)\n", h, in.high_water_ms);
	printf("last_issued    %" PRIu64 " ms\n", in.last_issued_ms);
	printf("clock          %s (max step %u ms)\n",
	       states[in.clock_state <= 3 ? in.clock_state : 0],
	       in.max_clock_step_ms);
	printf("max_batch      %u\n", in.max_batch);
	printf("issuing        %s%s%s\n", rk_status_name(in.issuing),
	       in.issuing == RK_OK ? "" : ": ", in.issuing_message);
	return 0;
}

int rk_cli_id(int argc, char **argv)
{
	if (argc < 2) {
		fputs(USAGE, stderr);
		return 2;
	}
	if (strcmp(argv[1], "next") == 0)
		return cmd_next(argc - 1, argv + 1);
	if (strcmp(argv[1], "decode") == 0)
		return cmd_decode(argc - 1, argv + 1);
	if (strcmp(argv[1], "info") == 0)
		return cmd_info(argc - 1, argv + 1);
	fputs(USAGE, stderr);
	return 2;
}

/*
 * ringkv: the command-line tool.
 *
 *   ringkv keygen [--force] FILE     write a new cluster key (mode 0600)
 *   ringkv health [--key FILE] [--timeout MS] URL
 *                                    ask a server whether it serves
 *
 * Exit codes: 0 success, 1 the operation failed, 2 usage error.
 */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "crypto/keyfile.h"
#include "crypto/seal.h"
#include "rpc/client.h"
#include "service/health.h"

static void usage(FILE *out)
{
	fprintf(out,
	        "usage: ringkv keygen [--force] FILE\n"
	        "       ringkv health [--key FILE] [--timeout MS] URL\n");
}

static int cmd_keygen(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"force", no_argument, NULL, 'f'}, {NULL, 0, NULL, 0}};
	bool force = false;
	int ch;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "f", opts, NULL)) != -1) {
		if (ch != 'f') {
			usage(stderr);
			return 2;
		}
		force = true;
	}
	if (optind != argc - 1) {
		usage(stderr);
		return 2;
	}
	char *err = NULL;
	rk_status_t st = rk_keyfile_generate(argv[optind], force, &err);
	if (st != RK_OK) {
		fprintf(stderr, "ringkv keygen: %s\n",
		        err ? err : rk_status_name(st));
		free(err);
		return 1;
	}
	printf("wrote a new cluster key to %s (mode 0600)\n", argv[optind]);
	return 0;
}

static int cmd_health(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"key", required_argument, NULL, 'k'},
	    {"timeout", required_argument, NULL, 't'},
	    {NULL, 0, NULL, 0}};
	const char *key_file = NULL;
	unsigned long timeout = 2000;
	int ch;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "k:t:", opts, NULL)) != -1) {
		if (ch == 'k') {
			key_file = optarg;
		} else if (ch == 't') {
			char *end;
			timeout = strtoul(optarg, &end, 10);
			if (*end != '\0' || timeout == 0 || timeout > 3600000) {
				fprintf(stderr, "ringkv health: bad timeout %s\n",
				        optarg);
				return 2;
			}
		} else {
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc - 1) {
		usage(stderr);
		return 2;
	}
	rk_sealer_t *sealer = NULL;
	if (key_file != NULL) {
		uint8_t key[RK_SEAL_KEY_BYTES];
		char *err = NULL;
		if (rk_keyfile_read(key_file, key, &err) != RK_OK ||
		    rk_sealer_new(key, 0, &sealer) != RK_OK) {
			fprintf(stderr, "ringkv health: %s\n",
			        err ? err : "cannot use the key");
			free(err);
			return 1;
		}
	}
	rk_rpc_client_opts_t co = {.url = argv[optind],
	                           .sealer = sealer,
	                           .caller = "ringkv-cli"};
	rk_rpc_client_t *client = NULL;
	if (rk_rpc_client_new(&co, &client) != RK_OK) {
		fprintf(stderr, "ringkv health: bad URL %s\n", argv[optind]);
		rk_sealer_free(sealer);
		return 2;
	}
	char detail[512];
	rk_status_t st =
	    rk_health_probe(client, (uint32_t)timeout, detail, sizeof(detail));
	printf("%s: %s\n", argv[optind], detail);
	rk_rpc_client_free(client);
	rk_sealer_free(sealer);
	return st == RK_OK ? 0 : 1;
}

int main(int argc, char **argv)
{
	rk_log_set_name("ringkv");
	rk_log_set_level(RK_LOG_WARN);
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "keygen") == 0)
		return cmd_keygen(argc - 1, argv + 1);
	if (strcmp(argv[1], "health") == 0)
		return cmd_health(argc - 1, argv + 1);
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return 0;
	}
	fprintf(stderr, "ringkv: unknown command %s\n", argv[1]);
	usage(stderr);
	return 2;
}

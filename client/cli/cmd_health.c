/* ringkv health [--key FILE] [--timeout MS] URL: does the server serve? */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "commands.h"
#include "crypto/keyfile.h"
#include "crypto/seal.h"
#include "rpc/client.h"
#include "service/health.h"

int rk_cli_health(int argc, char **argv)
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
			fprintf(stderr, "usage: ringkv health [--key FILE] [--timeout MS] URL\n");
			return 2;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, "usage: ringkv health [--key FILE] [--timeout MS] URL\n");
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

/* ringkv health [--key FILE] [--timeout MS] URL: does the server serve? */
#include <stdio.h>
#include <stdlib.h>

#include "commands.h"
#include "crypto/keyfile.h"
#include "crypto/seal.h"
#include "rpc/client.h"
#include "service/health.h"

int rk_cli_health(int argc, char **argv)
{
	const char *key_file = NULL, *url = NULL;
	unsigned long timeout = 2000;
	int rc = rk_cli_url_args(
	    argc, argv,
	    "usage: ringkv health [--key FILE] [--timeout MS] URL\n", &key_file,
	    &timeout, &url);
	if (rc != 0)
		return rc;
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
	rk_rpc_client_opts_t co = {
	    .url = url, .sealer = sealer, .caller = "ringkv-cli"};
	rk_rpc_client_t *client = NULL;
	if (rk_rpc_client_new(&co, &client) != RK_OK) {
		fprintf(stderr, "ringkv health: bad URL %s\n", url);
		rk_sealer_free(sealer);
		return 2;
	}
	char detail[512];
	rk_status_t st =
	    rk_health_probe(client, (uint32_t)timeout, detail, sizeof(detail));
	printf("%s: %s\n", url, detail);
	rk_rpc_client_free(client);
	rk_sealer_free(sealer);
	return st == RK_OK ? 0 : 1;
}

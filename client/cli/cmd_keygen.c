/* ringkv keygen [--force] FILE: write a new cluster key, mode 0600. */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "commands.h"
#include "crypto/keyfile.h"

int rk_cli_keygen(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"force", no_argument, NULL, 'f'}, {NULL, 0, NULL, 0}};
	bool force = false;
	int ch;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "f", opts, NULL)) != -1) {
		if (ch != 'f') {
			fprintf(stderr, "usage: ringkv keygen [--force] FILE\n");
			return 2;
		}
		force = true;
	}
	if (optind != argc - 1) {
		fprintf(stderr, "usage: ringkv keygen [--force] FILE\n");
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

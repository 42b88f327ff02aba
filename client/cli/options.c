/* Option parsing the ringkv subcommands share; see commands.h. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "commands.h"

int rk_cli_url_args(int argc, char **argv, const char *usage,
                    const char **key_file, unsigned long *timeout_ms,
                    const char **url)
{
	static const struct option opts[] = {
	    {"key", required_argument, NULL, 'k'},
	    {"timeout", required_argument, NULL, 't'},
	    {NULL, 0, NULL, 0}};
	int ch;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "k:t:", opts, NULL)) != -1) {
		if (ch == 'k') {
			*key_file = optarg;
		} else if (ch == 't') {
			char *end;
			*timeout_ms = strtoul(optarg, &end, 10);
			if (*end != '\0' || *timeout_ms == 0 ||
			    *timeout_ms > 3600000) {
				fprintf(stderr, "ringkv: bad timeout %s\n",
				        optarg);
				return 2;
			}
		} else {
			fputs(usage, stderr);
			return 2;
		}
	}
	if (optind != argc - 1) {
		fputs(usage, stderr);
		return 2;
	}
	*url = argv[optind];
	return 0;
}

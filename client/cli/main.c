/*
 * ringkv: the command-line tool. Each subcommand lives in cmd_<name>.c and
 * is listed once in the table below.
 *
 * Exit codes: 0 success, 1 the operation failed, 2 usage error.
 */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "core/log.h"

static const rk_cli_command_t commands[] = {
    {"keygen", "ringkv keygen [--force] FILE", rk_cli_keygen},
    {"health", "ringkv health [--key FILE] [--timeout MS] URL",
     rk_cli_health},
    {"id", "ringkv id next [-n N] [--key FILE] URL | decode [--epoch E] ID | info URL",
     rk_cli_id},
    {"cluster", "ringkv cluster status [--key FILE] [--timeout MS] URL",
     rk_cli_cluster},
    {"ratelimit", "ringkv ratelimit check [--key FILE] [--hits N] URL DOMAIN key=value... [+ key=value...]\n"
                  "       ringkv ratelimit rules [--key FILE] URL", rk_cli_ratelimit},
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static void usage(FILE *out)
{
	for (size_t i = 0; i < NCOMMANDS; i++)
		fprintf(out, "%s %s\n", i == 0 ? "usage:" : "      ",
		        commands[i].usage);
}

int main(int argc, char **argv)
{
	rk_log_set_name("ringkv");
	rk_log_set_level(RK_LOG_WARN);
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return 0;
	}
	for (size_t i = 0; i < NCOMMANDS; i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].run(argc - 1, argv + 1);
	fprintf(stderr, "ringkv: unknown command %s\n", argv[1]);
	usage(stderr);
	return 2;
}

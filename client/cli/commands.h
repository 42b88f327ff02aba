/*
 * The subcommands of the ringkv tool. Each lives in its own file
 * (cmd_<name>.c) and is listed once in the table in main.c.
 * A command gets argv from its own name on (argv[0] is "keygen", ...) and
 * returns the exit code: 0 success, 1 the operation failed, 2 usage.
 */
#ifndef RK_CLI_COMMANDS_H
#define RK_CLI_COMMANDS_H

typedef struct rk_cli_command {
	const char *name;                   /* as typed: "keygen" */
	const char *usage;                  /* one or more usage lines */
	int (*run)(int argc, char **argv);  /* the command */
} rk_cli_command_t;

int rk_cli_keygen(int argc, char **argv);
int rk_cli_health(int argc, char **argv);
int rk_cli_id(int argc, char **argv);
int rk_cli_cluster(int argc, char **argv);
int rk_cli_ratelimit(int argc, char **argv);
int rk_cli_ratelimit_rules(int argc, char **argv); /* from rk_cli_ratelimit */

/* Parses "[--key FILE] [--timeout MS] URL" from ARGV (ARGV[0] is the
 * command's name): sets what was given (the defaults stay otherwise) and
 * returns 0, or prints USAGE or the bad timeout and returns 2. */
int rk_cli_url_args(int argc, char **argv, const char *usage,
                    const char **key_file, unsigned long *timeout_ms,
                    const char **url);

#endif

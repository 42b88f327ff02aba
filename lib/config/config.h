/*
 * The one configuration format of every ringkv service: YAML, read with
 * libyaml into a tree of maps, sequences and scalars that remember their
 * line, then read field by field through typed getters.
 *
 * Usage, the same in every service:
 *
 *	rk_config_t *cfg;
 *	char *err = NULL;
 *	if (rk_config_load(path, &cfg, &err) != RK_OK) { print err; free(err) }
 *	const char *listen = rk_config_string(cfg, "rpc.listen", "tcp://...");
 *	int64_t workers = rk_config_int(cfg, "rpc.workers", 4, 1, 256);
 *	...
 *	if (rk_config_finish(cfg, &err) != RK_OK) { print err; ... }
 *
 * Getters never fail at the call site: a field that is present but wrong
 * (wrong type, out of range, not one of the choices) records an error and
 * the getter returns the default. rk_config_finish() then reports every
 * recorded error at once, plus every key that no getter read (a typo such
 * as "rpc.lisen" is an error, not silently ignored), one per line, each as
 *
 *	FILE:LINE: field rpc.workers: expected an integer in [1, 256], got "0"
 *	FILE:LINE: unknown field rpc.lisen
 *
 * Paths are dotted map keys with [i] for sequence items:
 * "membership.seeds[0]", "rules[2].limit.unit"; "" (or NULL) is the
 * top-level map. A key that itself holds dots ("10.0.0.1") is found too:
 * at each map the longest key that matches wins. A field written with no
 * value, ~ or null counts as absent: getters return their default.
 *
 * Ownership: strings returned by getters are borrowed from the config and
 * live until rk_config_free(). Error strings are the caller's to free().
 * A config is not thread-safe; services read it once at start (and again on
 * reload, into a new config object).
 */
#ifndef RK_CONFIG_H
#define RK_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ringkv/status.h>

typedef struct rk_config rk_config_t;

/* Reads and parses FILE. RK_NOT_FOUND if it cannot be opened (or read),
 * RK_INVALID_ARGUMENT if it is not valid YAML (or its top level is not a
 * map, or it has a duplicate key, an anchor, alias or tag, nesting deeper
 * than 64 or more than 16 MiB), RK_RESOURCE_EXHAUSTED if out of memory;
 * *err (may be NULL) then says "FILE:LINE:COL: what" ("FILE: what" when
 * there is no position) and is the caller's to free.
 * On RK_OK, *out is the caller's to free with rk_config_free(). */
rk_status_t rk_config_load(const char *path, rk_config_t **out, char **err);

/* The same from a buffer; NAME stands for the file name in messages.
 * An empty document is an empty map. */
rk_status_t rk_config_parse(const char *text, size_t len, const char *name,
                            rk_config_t **out, char **err);

void rk_config_free(rk_config_t *cfg);

/* The file name given to load/parse (borrowed). */
const char *rk_config_name(const rk_config_t *cfg);

/* True if PATH names a node (of any kind). Marks it read. */
bool rk_config_has(rk_config_t *cfg, const char *path);

/* A scalar as text. */
const char *rk_config_string(rk_config_t *cfg, const char *path,
                             const char *def);

/* An integer in [min, max] (decimal, or 0x hex). */
int64_t rk_config_int(rk_config_t *cfg, const char *path, int64_t def,
                      int64_t min, int64_t max);

/* true/false, yes/no, on/off. */
bool rk_config_bool(rk_config_t *cfg, const char *path, bool def);

/* A duration in milliseconds: "250ms", "5s", "2m", "1h", "1d", or a bare
 * integer meaning milliseconds; must lie in [min_ms, max_ms]. */
uint64_t rk_config_duration_ms(rk_config_t *cfg, const char *path,
                               uint64_t def, uint64_t min_ms, uint64_t max_ms);

/* A size in bytes: "512", "4KiB", "64MiB", "1GiB" (also KB/MB/GB as powers
 * of 1000); must lie in [min, max]. */
uint64_t rk_config_size(rk_config_t *cfg, const char *path, uint64_t def,
                        uint64_t min, uint64_t max);

/* One of CHOICES (a NULL-terminated array); returns its index, or DEF. The
 * error lists the choices. */
int rk_config_choice(rk_config_t *cfg, const char *path,
                     const char *const *choices, int def);

/* The number of items of a sequence, or of keys of a map, at PATH; 0 if
 * absent. A scalar there records an error and gives 0. */
size_t rk_config_len(rk_config_t *cfg, const char *path);

/* The I-th key of the map at PATH (in file order), or NULL. Borrowed. */
const char *rk_config_key(rk_config_t *cfg, const char *path, size_t i);

/* The line of the node at PATH (1-based; a map value's is its key's), or 0
 * if absent: for messages of callers that validate more than a getter can.
 * Does not mark the node read. */
int rk_config_line(rk_config_t *cfg, const char *path);

/* Records an error of the caller's own about the node at PATH, reported by
 * rk_config_finish() like the getters' own:
 * "FILE:LINE: field PATH: <message>". Marks the node read. For an absent
 * field LINE is that of the nearest enclosing node present, and at top
 * level there is none: "FILE: field PATH: <message>". */
void rk_config_error(rk_config_t *cfg, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Marks every node under PATH read: for a section a later version reads. */
void rk_config_ignore(rk_config_t *cfg, const char *path);

/* RK_OK if no getter recorded an error and every key was read; otherwise
 * RK_INVALID_ARGUMENT and *err (may be NULL) lists every problem, one per
 * line, in file order, without a final newline (caller frees). */
rk_status_t rk_config_finish(rk_config_t *cfg, char **err);

#endif

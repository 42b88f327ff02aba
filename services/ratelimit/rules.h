/*
 * Rate-limit rules: the YAML rules file, loaded into an immutable tree
 * that requests are matched against.
 *
 * The shape follows Envoy's ratelimit service (docs/ratelimit.md has the
 * full reference):
 *
 *	domain: ringkv
 *	near_limit_percent: 80          # optional, default 80
 *	default_algorithm: sliding_window_counter
 *	descriptors:
 *	  - key: client_id              # any value, each value its own counter
 *	    rate_limits:                # or `rate_limit:` for just one
 *	      - {unit: second, requests_per_unit: 10, sub_windows: 8}
 *	      - {unit: day, requests_per_unit: 1000, algorithm: fixed_window}
 *	    descriptors:
 *	      - key: path
 *	        value: "/admin/" + '*'   # (a trailing star matches by prefix)
 *	        rate_limit: {unit: minute, requests_per_unit: 5,
 *	                     shadow_mode: true, fail_open: false}
 *
 * or several domains under `domains: [{domain: ..., descriptors: ...}]`.
 * A request descriptor [(k1,v1), ..., (kn,vn)] walks the tree one entry
 * per level, preferring at each level an exact value, then the longest
 * wildcard prefix, then a rule with no value; the limits of the node
 * reached by its last entry apply (none if it has none or the walk stops
 * early), as in Envoy.
 *
 * Errors are reported as the config reader reports them: every problem,
 * one per line, each naming FILE:LINE and the field.
 *
 * A rules object is immutable once loaded, so any number of threads may
 * read it; the checker swaps whole objects on reload.
 */
#ifndef RK_RL_RULES_H
#define RK_RL_RULES_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ringkv/status.h>

#include "algo.h"

#define RK_RL_MAX_DEPTH           16 /* entries per descriptor */
#define RK_RL_MAX_LIMITS_PER_NODE 8

typedef struct rk_rl_node rk_rl_node_t;

/* One limit as loaded. */
typedef struct rk_rl_limit {
	char *name;            /* unique in its domain: given, or the path */
	const char *domain;    /* its domain's name, borrowed from the rules */
	rk_rl_params_t params; /* what the algorithm needs */
	int unit;              /* RateLimitUnit value (1 second .. 4 day) */
	bool shadow_mode;      /* counted and flagged, never refuses */
	bool fail_open;        /* owner unreachable: allow (true) or refuse */
	uint32_t near_limit_ppm; /* near_limit threshold, ppm of capacity */
	int line;                /* its line in the rules file */
	uint32_t index;          /* its position in rk_rl_rules_t.limits */
	const rk_rl_node_t *path[RK_RL_MAX_DEPTH]; /* nodes from the top */
	uint32_t depth;                            /* entries in path */
} rk_rl_limit_t;

/* One descriptor entry of the tree. */
struct rk_rl_node {
	char *key;              /* descriptor key; NULL only at a domain root */
	char *value;            /* NULL: any value; else exact or prefix */
	bool wildcard;          /* value was written with a trailing '*' */
	uint32_t *limits;       /* indices into rk_rl_rules_t.limits */
	size_t nlimits;         /* limits that apply at this node */
	rk_rl_node_t *children; /* deeper entries (array) */
	size_t nchildren;       /* entries of children */
};

typedef struct rk_rl_domain {
	char *name;        /* the domain requests name */
	rk_rl_node_t root; /* its descriptors, as root.children */
} rk_rl_domain_t;

typedef struct rk_rl_rules {
	rk_rl_domain_t *domains; /* ndomains */
	size_t ndomains;
	rk_rl_limit_t *limits; /* every limit, in file order */
	size_t nlimits;
	char *source;          /* file name given to load/parse */
	uint64_t loaded_at_ms; /* wall ms of the load */
	uint64_t version;      /* set by the checker when installed */
	atomic_long refs;      /* the checker's reference count */
	void *checker_data;    /* the checker's per-limit state, freed
	                          by the checker before the rules */
} rk_rl_rules_t;

typedef struct rk_rl_rules_opts {
	uint32_t sliding_log_max_entries; /* per-key bound; 0: 65536 */
} rk_rl_rules_opts_t;

/* Reads the rules file PATH. On RK_OK *out is the caller's (free with
 * rk_rl_rules_free). Otherwise RK_NOT_FOUND (unreadable) or
 * RK_INVALID_ARGUMENT, and *err (caller frees; may be NULL) lists every
 * problem as FILE:LINE: field PATH: what. OPTS may be NULL. */
rk_status_t rk_rl_rules_load(const char *path, const rk_rl_rules_opts_t *opts,
                             rk_rl_rules_t **out, char **err);

/* The same from TEXT (LEN bytes); NAME stands for the file in messages. */
rk_status_t rk_rl_rules_parse(const char *text, size_t len, const char *name,
                              const rk_rl_rules_opts_t *opts,
                              rk_rl_rules_t **out, char **err);

/* Rules with no domain (source ""); NULL when out of memory. Caller
 * frees with rk_rl_rules_free. */
rk_rl_rules_t *rk_rl_rules_empty(void);

void rk_rl_rules_free(rk_rl_rules_t *r);

/* The domain NAME, or NULL. */
const rk_rl_domain_t *rk_rl_rules_domain(const rk_rl_rules_t *r,
                                         const char *name);

/* The node a descriptor of N entries (KEYS[i], VALUES[i]) reaches, or
 * NULL when the walk stops early. */
const rk_rl_node_t *rk_rl_rules_match(const rk_rl_domain_t *d, size_t n,
                                      const char *const *keys,
                                      const char *const *values);

/* Unit length in ms of a RateLimitUnit value; 0 if unknown. */
uint64_t rk_rl_unit_ms(int unit);

#endif

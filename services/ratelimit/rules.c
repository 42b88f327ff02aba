/*
 * The rules loader and matcher; see rules.h for the file's shape.
 *
 * Loading reads the YAML with lib/config and walks it with the typed
 * getters, so every mistake (a wrong type, a value out of range, an
 * unknown or misspelt field, a missing required field) is reported with
 * its file and line, all at once, and nothing half-loaded is ever used:
 * the caller gets either a complete rules object or an error.
 *
 * Structure: one domain per entry of `domains` (or the one top-level
 * domain); each domain a tree of nodes whose children arrays are
 * allocated once with their final size, so a pointer to a node is stable
 * for the life of the rules (limits keep their path as such pointers).
 * Limits live in one array in file order; nodes refer to them by index.
 */
#include "rules.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "core/clock.h"

#define DEFAULT_LOG_ENTRIES 65536
#define MAX_LIMITS          100000
#define MAX_TEXT            256

static const char *const unit_names[] = {"second", "minute", "hour", "day",
                                         NULL};
static const char *const algo_names[] = {
    "sliding_window_counter", "token_bucket", "leaking_bucket",
    "fixed_window",           "sliding_log",  NULL};

uint64_t rk_rl_unit_ms(int unit)
{
	switch (unit) {
	case 1:
		return 1000;
	case 2:
		return 60000;
	case 3:
		return 3600000;
	case 4:
		return 86400000;
	}
	return 0;
}

/* OUT = A followed by B: a field path. Paths are far shorter than OUT. */
static void join(char *out, size_t len, const char *a, const char *b)
{
	if (snprintf(out, len, "%s%s", a, b) >= (int)len)
		out[len - 1] = '\0'; /* cannot happen: depth is bounded */
}

/* OUT = A[I]. */
static void index_of(char *out, size_t len, const char *a, size_t i)
{
	if (snprintf(out, len, "%s[%zu]", a, i) >= (int)len)
		out[len - 1] = '\0';
}

/* State of one load. */
typedef struct loader {
	rk_config_t *cfg; /* the file */
	rk_rl_rules_t *r; /* being built */
	size_t cap;       /* limits allocated */
	uint32_t log_max; /* sliding-log bound per key */
	int def_algo;     /* index into algo_names */
	int64_t near_pct; /* default near_limit_percent */
	bool oom;         /* an allocation failed */
} loader_t;

static char *dup_or_oom(loader_t *ld, const char *s)
{
	char *d = strdup(s);
	if (d == NULL)
		ld->oom = true;
	return d;
}

/* Appends a zeroed limit; NULL when out of memory or too many. */
static rk_rl_limit_t *new_limit(loader_t *ld, const char *at)
{
	rk_rl_rules_t *r = ld->r;
	if (r->nlimits >= MAX_LIMITS) {
		rk_config_error(ld->cfg, at, "more than %d limits", MAX_LIMITS);
		return NULL;
	}
	if (r->nlimits == ld->cap) {
		size_t cap = ld->cap ? ld->cap * 2 : 16;
		rk_rl_limit_t *l = realloc(r->limits, cap * sizeof(*l));
		if (l == NULL) {
			ld->oom = true;
			return NULL;
		}
		r->limits = l;
		ld->cap = cap;
	}
	rk_rl_limit_t *l = &r->limits[r->nlimits];
	memset(l, 0, sizeof(*l));
	l->index = (uint32_t)r->nlimits++;
	return l;
}

/* Reads the limit at path AT for NODE (reached through PATH, DEPTH
 * nodes); I is its position among the node's limits. */
static void read_limit(loader_t *ld, const char *at, rk_rl_node_t *node,
                       const rk_rl_node_t *const *path, uint32_t depth,
                       size_t i, bool shadow_default, const char *domain)
{
	rk_config_t *cfg = ld->cfg;
	char f[1024];
	if (!rk_config_has(cfg, at))
		return;
	rk_rl_limit_t *l = new_limit(ld, at);
	if (l == NULL)
		return;
	node->limits[node->nlimits++] = l->index;
	l->line = rk_config_line(cfg, at);
	memcpy(l->path, path, depth * sizeof(path[0]));
	l->depth = depth;

	join(f, sizeof(f), at, ".unit");
	if (!rk_config_has(cfg, f))
		rk_config_error(cfg, f,
		                "required: second, minute, hour or day");
	l->unit = rk_config_choice(cfg, f, unit_names, 0) + 1;
	l->params.unit_ms = rk_rl_unit_ms(l->unit);

	join(f, sizeof(f), at, ".requests_per_unit");
	if (!rk_config_has(cfg, f))
		rk_config_error(cfg, f, "required: an integer in [1, %llu]",
		                (unsigned long long)RK_RL_MAX_LIMIT);
	l->params.limit =
	    (uint64_t)rk_config_int(cfg, f, 1, 1, (int64_t)RK_RL_MAX_LIMIT);

	join(f, sizeof(f), at, ".algorithm");
	l->params.algorithm =
	    rk_config_choice(cfg, f, algo_names, ld->def_algo) + 1;
	bool bucket = l->params.algorithm == RK_RL_TOKEN_BUCKET ||
	              l->params.algorithm == RK_RL_LEAKING_BUCKET;
	join(f, sizeof(f), at, ".burst");
	if (rk_config_has(cfg, f) && !bucket)
		rk_config_error(cfg, f,
		                "only token_bucket and leaking_bucket "
		                "have a burst");
	l->params.burst = (uint64_t)rk_config_int(
	    cfg, f, (int64_t)l->params.limit, 1, (int64_t)RK_RL_MAX_LIMIT);
	if (!bucket)
		l->params.burst = l->params.limit;
	join(f, sizeof(f), at, ".sub_windows");
	if (rk_config_has(cfg, f) &&
	    l->params.algorithm != RK_RL_SLIDING_WINDOW)
		rk_config_error(cfg, f,
		                "only sliding_window_counter has sub_windows");
	l->params.sub_windows =
	    (uint32_t)rk_config_int(cfg, f, 1, 1, RK_RL_MAX_SUB_WINDOWS);
	if (l->params.algorithm != RK_RL_SLIDING_WINDOW)
		l->params.sub_windows = 1;
	l->params.max_log = ld->log_max;
	if (l->params.algorithm == RK_RL_SLIDING_LOG) {
		uint64_t bound = l->params.limit < l->params.unit_ms
		                     ? l->params.limit
		                     : l->params.unit_ms;
		if (bound > ld->log_max)
			rk_config_error(
			    cfg, at,
			    "sliding_log keeps up to min(requests_per_unit, ms "
			    "per unit) = %llu entries per key, more than "
			    "sliding_log_max_entries %u: use "
			    "sliding_window_counter, or raise the bound",
			    (unsigned long long)bound, ld->log_max);
	}

	join(f, sizeof(f), at, ".shadow_mode");
	l->shadow_mode = rk_config_bool(cfg, f, shadow_default);
	join(f, sizeof(f), at, ".fail_open");
	l->fail_open = rk_config_bool(cfg, f, true);
	join(f, sizeof(f), at, ".near_limit_percent");
	l->near_limit_ppm =
	    (uint32_t)rk_config_int(cfg, f, ld->near_pct, 1, 100) * 10000;

	l->domain = domain;
	join(f, sizeof(f), at, ".name");
	const char *name = rk_config_string(cfg, f, NULL);
	if (name != NULL && (name[0] == '\0' || strlen(name) > MAX_TEXT))
		rk_config_error(cfg, f, "expected 1 to %d characters",
		                MAX_TEXT);
	if (name != NULL) {
		l->name = dup_or_oom(ld, name);
	} else {
		/* The path: client_id/path=/kv#1 */
		char buf[4096];
		size_t n = 0;
		for (uint32_t k = 0; k < depth && n < sizeof(buf); k++)
			n += (size_t)snprintf(
			    buf + n, sizeof(buf) - n, "%s%s%s%s", k ? "/" : "",
			    path[k]->key, path[k]->value ? "=" : "",
			    path[k]->value ? path[k]->value : "");
		if (n < sizeof(buf))
			snprintf(buf + n, sizeof(buf) - n, "#%zu", i);
		l->name = dup_or_oom(ld, buf);
	}
	if (l->name != NULL) {
		for (size_t k = 0; k < ld->r->nlimits - 1; k++) {
			const rk_rl_limit_t *o = &ld->r->limits[k];
			if (o->domain == domain && o->name != NULL &&
			    strcmp(o->name, l->name) == 0) {
				rk_config_error(
				    cfg, f,
				    "rule name \"%s\" used twice in "
				    "domain %s (first at line %d)",
				    l->name, domain, o->line);
				break;
			}
		}
	}
}

static void read_nodes(loader_t *ld, const char *at, rk_rl_node_t *parent,
                       const rk_rl_node_t **path, uint32_t depth,
                       bool shadow_default, const char *domain);

/* Reads descriptor node AT into N. */
static void read_node(loader_t *ld, const char *at, rk_rl_node_t *n,
                      const rk_rl_node_t **path, uint32_t depth,
                      bool shadow_default, const char *domain)
{
	rk_config_t *cfg = ld->cfg;
	char f[1024];
	join(f, sizeof(f), at, ".key");
	const char *key = rk_config_string(cfg, f, NULL);
	if (key == NULL || key[0] == '\0' || strlen(key) > MAX_TEXT)
		rk_config_error(cfg, f, "required: 1 to %d characters",
		                MAX_TEXT);
	n->key = dup_or_oom(ld, key != NULL ? key : "?");
	join(f, sizeof(f), at, ".value");
	const char *value = rk_config_string(cfg, f, NULL);
	if (value != NULL) {
		size_t len = strlen(value);
		if (len > MAX_TEXT)
			rk_config_error(cfg, f, "longer than %d characters",
			                MAX_TEXT);
		n->value = dup_or_oom(ld, value);
		if (n->value != NULL && len > 0 && value[len - 1] == '*') {
			n->wildcard = true;
			n->value[len - 1] = '\0';
		}
	}
	join(f, sizeof(f), at, ".shadow_mode");
	bool shadow = rk_config_bool(cfg, f, shadow_default);
	path[depth++] = n;

	char one[1024], many[1024];
	join(one, sizeof(one), at, ".rate_limit");
	join(many, sizeof(many), at, ".rate_limits");
	size_t nl = rk_config_len(cfg, many);
	if (rk_config_has(cfg, one) && nl > 0)
		rk_config_error(cfg, many,
		                "give either rate_limit or rate_limits");
	if (nl > RK_RL_MAX_LIMITS_PER_NODE) {
		rk_config_error(cfg, many, "at most %d limits per descriptor",
		                RK_RL_MAX_LIMITS_PER_NODE);
		nl = RK_RL_MAX_LIMITS_PER_NODE;
	}
	n->limits = calloc(nl > 0 ? nl : 1, sizeof(uint32_t));
	if (n->limits == NULL) {
		ld->oom = true;
		return;
	}
	if (nl == 0) {
		read_limit(ld, one, n, path, depth, 0, shadow, domain);
	} else {
		for (size_t i = 0; i < nl; i++) {
			index_of(f, sizeof(f), many, i);
			read_limit(ld, f, n, path, depth, i, shadow, domain);
		}
	}
	join(f, sizeof(f), at, ".descriptors");
	if (depth >= RK_RL_MAX_DEPTH) {
		if (rk_config_len(cfg, f) > 0)
			rk_config_error(cfg, f, "deeper than %d levels",
			                RK_RL_MAX_DEPTH);
		return;
	}
	read_nodes(ld, f, n, path, depth, shadow, domain);
}

static void read_nodes(loader_t *ld, const char *at, rk_rl_node_t *parent,
                       const rk_rl_node_t **path, uint32_t depth,
                       bool shadow_default, const char *domain)
{
	size_t n = rk_config_len(ld->cfg, at);
	if (n == 0)
		return;
	parent->children = calloc(n, sizeof(rk_rl_node_t));
	if (parent->children == NULL) {
		ld->oom = true;
		return;
	}
	parent->nchildren = n;
	char f[1024];
	for (size_t i = 0; i < n && !ld->oom; i++) {
		index_of(f, sizeof(f), at, i);
		rk_rl_node_t *c = &parent->children[i];
		read_node(ld, f, c, path, depth, shadow_default, domain);
		for (size_t k = 0; k < i; k++) {
			const rk_rl_node_t *o = &parent->children[k];
			bool same_value =
			    (o->value == NULL && c->value == NULL) ||
			    (o->value != NULL && c->value != NULL &&
			     o->wildcard == c->wildcard &&
			     strcmp(o->value, c->value) == 0);
			if (o->key && c->key && strcmp(o->key, c->key) == 0 &&
			    same_value) {
				rk_config_error(
				    ld->cfg, f,
				    "descriptor key \"%s\"%s%s given "
				    "twice at this level",
				    c->key, c->value ? " value " : "",
				    c->value ? c->value : "");
				break;
			}
		}
	}
}

static void read_domain(loader_t *ld, const char *prefix, rk_rl_domain_t *d)
{
	char f[512];
	snprintf(f, sizeof(f), "%sdomain", prefix);
	const char *name = rk_config_string(ld->cfg, f, NULL);
	if (name == NULL || name[0] == '\0' || strlen(name) > MAX_TEXT)
		rk_config_error(ld->cfg, f, "required: 1 to %d characters",
		                MAX_TEXT);
	d->name = dup_or_oom(ld, name != NULL ? name : "?");
	for (size_t i = 0; ld->r->domains + i < d; i++)
		if (d->name && strcmp(ld->r->domains[i].name, d->name) == 0)
			rk_config_error(ld->cfg, f, "domain \"%s\" given twice",
			                d->name);
	snprintf(f, sizeof(f), "%sdescriptors", prefix);
	const rk_rl_node_t *path[RK_RL_MAX_DEPTH];
	read_nodes(ld, f, &d->root, path, 0, false,
	           d->name != NULL ? d->name : "?");
}

static rk_status_t build(rk_config_t *cfg, const rk_rl_rules_opts_t *opts,
                         rk_rl_rules_t **out, char **err)
{
	loader_t ld = {.cfg = cfg};
	ld.log_max = opts != NULL && opts->sliding_log_max_entries
	                 ? opts->sliding_log_max_entries
	                 : DEFAULT_LOG_ENTRIES;
	ld.r = calloc(1, sizeof(*ld.r));
	if (ld.r == NULL)
		return RK_RESOURCE_EXHAUSTED;
	ld.r->source = strdup(rk_config_name(cfg));
	ld.r->loaded_at_ms = rk_clock_unix_ms();
	ld.def_algo = rk_config_choice(cfg, "default_algorithm", algo_names, 0);
	ld.near_pct = rk_config_int(cfg, "near_limit_percent", 80, 1, 100);

	bool many = rk_config_has(cfg, "domains");
	if (many && rk_config_has(cfg, "domain"))
		rk_config_error(cfg, "domains",
		                "give either domain or domains, not both");
	size_t nd = many ? rk_config_len(cfg, "domains") : 1;
	if (nd == 0)
		rk_config_error(cfg, "domains", "expected at least one domain");
	ld.r->domains = calloc(nd > 0 ? nd : 1, sizeof(rk_rl_domain_t));
	if (ld.r->domains == NULL)
		ld.oom = true;
	for (size_t i = 0; i < nd && !ld.oom; i++) {
		char prefix[64] = "";
		if (many)
			snprintf(prefix, sizeof(prefix), "domains[%zu].", i);
		ld.r->ndomains = i + 1;
		read_domain(&ld, prefix, &ld.r->domains[i]);
	}
	if (ld.oom || ld.r->source == NULL) {
		rk_rl_rules_free(ld.r);
		return RK_RESOURCE_EXHAUSTED;
	}
	rk_status_t st = rk_config_finish(cfg, err);
	if (st != RK_OK) {
		rk_rl_rules_free(ld.r);
		return st;
	}
	*out = ld.r;
	return RK_OK;
}

rk_status_t rk_rl_rules_load(const char *path, const rk_rl_rules_opts_t *opts,
                             rk_rl_rules_t **out, char **err)
{
	rk_config_t *cfg = NULL;
	rk_status_t st = rk_config_load(path, &cfg, err);
	if (st != RK_OK)
		return st;
	st = build(cfg, opts, out, err);
	rk_config_free(cfg);
	return st;
}

rk_status_t rk_rl_rules_parse(const char *text, size_t len, const char *name,
                              const rk_rl_rules_opts_t *opts,
                              rk_rl_rules_t **out, char **err)
{
	rk_config_t *cfg = NULL;
	rk_status_t st = rk_config_parse(text, len, name, &cfg, err);
	if (st != RK_OK)
		return st;
	st = build(cfg, opts, out, err);
	rk_config_free(cfg);
	return st;
}

rk_rl_rules_t *rk_rl_rules_empty(void)
{
	rk_rl_rules_t *r = calloc(1, sizeof(*r));
	if (r == NULL)
		return NULL;
	r->source = strdup("");
	r->loaded_at_ms = rk_clock_unix_ms();
	if (r->source == NULL) {
		free(r);
		return NULL;
	}
	return r;
}

static void free_node(rk_rl_node_t *n)
{
	for (size_t i = 0; i < n->nchildren; i++)
		free_node(&n->children[i]);
	free(n->children);
	free(n->limits);
	free(n->key);
	free(n->value);
}

void rk_rl_rules_free(rk_rl_rules_t *r)
{
	if (r == NULL)
		return;
	for (size_t i = 0; i < r->ndomains; i++) {
		free_node(&r->domains[i].root);
		free(r->domains[i].name);
	}
	free(r->domains);
	for (size_t i = 0; i < r->nlimits; i++)
		free(r->limits[i].name);
	free(r->limits);
	free(r->source);
	free(r);
}

const rk_rl_domain_t *rk_rl_rules_domain(const rk_rl_rules_t *r,
                                         const char *name)
{
	for (size_t i = 0; i < r->ndomains; i++)
		if (strcmp(r->domains[i].name, name) == 0)
			return &r->domains[i];
	return NULL;
}

/* The child of N that entry (KEY, VALUE) goes to, or NULL. */
static const rk_rl_node_t *step(const rk_rl_node_t *n, const char *key,
                                const char *value)
{
	const rk_rl_node_t *wild = NULL, *any = NULL;
	size_t wild_len = 0;
	for (size_t i = 0; i < n->nchildren; i++) {
		const rk_rl_node_t *c = &n->children[i];
		if (strcmp(c->key, key) != 0)
			continue;
		if (c->value == NULL) {
			any = c;
		} else if (c->wildcard) {
			size_t len = strlen(c->value);
			if (strncmp(c->value, value, len) == 0 &&
			    (wild == NULL || len > wild_len)) {
				wild = c;
				wild_len = len;
			}
		} else if (strcmp(c->value, value) == 0) {
			return c;
		}
	}
	return wild != NULL ? wild : any;
}

const rk_rl_node_t *rk_rl_rules_match(const rk_rl_domain_t *d, size_t n,
                                      const char *const *keys,
                                      const char *const *values)
{
	const rk_rl_node_t *node = &d->root;
	for (size_t i = 0; i < n && node != NULL; i++)
		node = step(node, keys[i], values[i] ? values[i] : "");
	return node == &d->root ? NULL : node;
}

/*
 * Typed, path-addressed reading of a config tree; see config.h for the
 * contract, tree.c for how the YAML becomes a tree and value.c for what a
 * value such as "64MiB" means.
 *
 * A service reads its config once, field by field, and at the end must
 * learn two things: which values were wrong, and which keys it never read
 * (almost always a typo, which would otherwise leave a setting silently at
 * its default). So every getter does two jobs: it returns a value, and it
 * leaves a trace in the tree.
 *
 * The trace is one flag per node, `read`. Resolving a path sets it on every
 * node along the way and on the node at the end, and on nothing else: so
 * reading rpc.listen marks the map rpc and its child listen, but not
 * rpc.workers next to it. rk_config_finish() then walks the tree: a node
 * whose flag is clear is reported as an unknown field, once for its whole
 * subtree; a map or sequence whose flag is set is looked into, because
 * having read a container says nothing about its children. When a getter
 * finds a map where it wanted a scalar, it records a type error and marks
 * the whole subtree read, so the one mistake is reported once and not again
 * for each key inside.
 *
 * Paths are map keys joined by '.', with "[i]" for sequence items. Map keys
 * may themselves contain '.' (a host name, an address), so at each map the
 * longest run of path that is a key wins: "nodes.10.0.0.1.weight" finds
 * the key "10.0.0.1" under nodes if there is one. A map's keys are kept
 * sorted (tree.c), so each try is a binary search.
 *
 * Errors are stored as whole message lines. When reported they are sorted
 * by line, so the report reads in file order, and repeats are dropped (two
 * getters under the same wrong "rpc: 5" both find it; it is said once). An
 * error that cannot be stored for lack of memory still makes
 * rk_config_finish() fail.
 */
#include "config/config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/tree.h"
#include "config/value.h"

struct problem {
	int line;   /* 1-based line it is about, or 0: the sort key */
	size_t seq; /* order of arrival, to keep the sort stable */
	char *msg;  /* the whole message line, without newline; owned */
};

struct problems {
	struct problem *v; /* in order of arrival */
	size_t n;          /* used entries of v */
	size_t cap;        /* allocated entries of v */
	bool lost;         /* one could not be stored for lack of memory */
};

struct rk_config {
	char *name;                  /* file name for messages, owned */
	struct rk_config_node *root; /* the document, always a map, owned */
	struct problems errors;      /* recorded by getters and callers */
};

/* A growing string; after an allocation failure it stays failed and
 * ignores further text, so callers check once at the end. */
struct strbuf {
	char *p;     /* NUL-terminated text, or NULL while empty */
	size_t len;  /* bytes of text in p */
	size_t cap;  /* bytes allocated for p */
	bool failed; /* an allocation failed; p is incomplete */
};

static void sb_add(struct strbuf *sb, const char *s, size_t n)
{
	if (sb->failed)
		return;
	if (sb->len + n + 1 > sb->cap) {
		size_t cap = sb->cap != 0 ? sb->cap : 64;
		while (cap < sb->len + n + 1)
			cap *= 2;
		char *p = realloc(sb->p, cap);
		if (p == NULL) {
			sb->failed = true;
			return;
		}
		sb->p = p;
		sb->cap = cap;
	}
	memcpy(sb->p + sb->len, s, n);
	sb->len += n;
	sb->p[sb->len] = '\0';
}

static void sb_str(struct strbuf *sb, const char *s)
{
	sb_add(sb, s, strlen(s));
}

/* Appends a key from the file to a path for a message, with control
 * characters escaped so one problem stays on one line. */
static void sb_key(struct strbuf *sb, const char *key)
{
	for (const unsigned char *s = (const unsigned char *)key; *s; s++) {
		if (*s < 0x20 || *s == 0x7f) {
			char esc[8];
			snprintf(esc, sizeof(esc), "\\x%02x", *s);
			sb_str(sb, esc);
		} else {
			sb_add(sb, (const char *)s, 1);
		}
	}
}

static void sb_truncate(struct strbuf *sb, size_t len)
{
	if (!sb->failed && sb->p != NULL) {
		sb->len = len;
		sb->p[len] = '\0';
	}
}

static void problems_free(struct problems *ps)
{
	for (size_t i = 0; i < ps->n; i++)
		free(ps->v[i].msg);
	free(ps->v);
	*ps = (struct problems){0};
}

/* Takes MSG (NULL means its formatting ran out of memory). Repeats are
 * kept here and dropped by rk_config_finish(). */
static void problems_add(struct problems *ps, int line, char *msg)
{
	if (msg == NULL) {
		ps->lost = true;
		return;
	}
	if (ps->n == ps->cap) {
		size_t cap = ps->cap != 0 ? ps->cap * 2 : 8;
		struct problem *v = realloc(ps->v, cap * sizeof(*v));
		if (v == NULL) {
			free(msg);
			ps->lost = true;
			return;
		}
		ps->v = v;
		ps->cap = cap;
	}
	ps->v[ps->n] = (struct problem){.line = line, .seq = ps->n, .msg = msg};
	ps->n++;
}

static void field_error(struct rk_config *cfg, int line, const char *path,
                        size_t pathlen, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Records "NAME:LINE: field PATH: what" about the first PATHLEN bytes of
 * PATH; without a line (a field that is absent) "NAME: field PATH: what". */
static void field_error(struct rk_config *cfg, int line, const char *path,
                        size_t pathlen, const char *fmt, ...)
{
	char *what = NULL;
	va_list ap;
	va_start(ap, fmt);
	int n = vasprintf(&what, fmt, ap);
	va_end(ap);
	if (n < 0) {
		problems_add(&cfg->errors, line, NULL);
		return;
	}
	char *msg = NULL;
	if (line > 0)
		n = asprintf(&msg, "%s:%d: field %.*s: %s", cfg->name, line,
		             (int)pathlen, path, what);
	else
		n = asprintf(&msg, "%s: field %.*s: %s", cfg->name,
		             (int)pathlen, path, what);
	free(what);
	problems_add(&cfg->errors, line, n < 0 ? NULL : msg);
}

/* What a node is, for "got ...": its kind, or a scalar's quoted text. */
static const char *describe(const struct rk_config_node *n, char *buf,
                            size_t size)
{
	switch (n->kind) {
	case RK_CONFIG_MAP:
		return "a map";
	case RK_CONFIG_SEQ:
		return "a sequence";
	default:
		rk_config_quote(buf, size, n->text);
		return buf;
	}
}

static void mark_all(struct rk_config_node *n)
{
	n->read = true;
	for (size_t i = 0; i < n->n; i++)
		mark_all(n->kids[i]);
}

/* Records that the node named by the first LEN bytes of PATH is not the
 * EXPECT a getter needs, and marks it all read so that this is the only
 * report about it. A null scalar is not a mismatch: it is an absent
 * section ("tls:" with nothing under it). */
static void mismatch(struct rk_config *cfg, struct rk_config_node *n,
                     const char *path, size_t len, const char *expect)
{
	if (n->kind == RK_CONFIG_SCALAR && n->null)
		return;
	char got[96];
	mark_all(n);
	field_error(cfg, n->line, path, len, "expected %s, got %s", expect,
	            describe(n, got, sizeof(got)));
}

enum {
	MARK = 1,   /* set the read flag along the path */
	REPORT = 2, /* record type errors and bad paths */
};

/* Where a path led. */
struct found {
	struct rk_config_node *node; /* the node the path names, or NULL */
	struct rk_config_node *last; /* the deepest node reached on the way */
};

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool ends_component(char c)
{
	return c == '\0' || c == '.' || c == '[';
}

/* Whether PATH is keys joined by '.' with "[digits]" after any of them,
 * checked whole and before any lookup: a malformed path is a bug in the
 * program and is reported whatever the file holds. */
static bool valid_path(const char *p)
{
	if (*p == '\0')
		return true; /* the top-level map */
	for (;;) {
		if (*p == '[') {
			if (!is_digit(*++p))
				return false;
			while (is_digit(*p))
				p++;
			if (*p++ != ']' || !ends_component(*p))
				return false;
		} else {
			if (ends_component(*p))
				return false; /* an empty key */
			while (!ends_component(*p))
				p++;
		}
		if (*p == '\0')
			return true;
		if (*p == '.' && (*++p == '[' || *p == '\0'))
			return false;
	}
}

/* Follows PATH from the root. With MARK, sets the read flag of each node
 * on the way; with REPORT, records a malformed path and a node of the
 * wrong kind on the way (see mismatch()). */
static struct found resolve(struct rk_config *cfg, const char *path, int flags)
{
	struct rk_config_node *n = cfg->root;
	struct found f = {.node = NULL, .last = n};
	if (path == NULL)
		path = "";
	if (!valid_path(path)) {
		if (flags & REPORT)
			field_error(cfg, 0, path, strlen(path),
			            "not a valid field path (a bug in the "
			            "program, not in the file)");
		return f;
	}
	if (flags & MARK)
		n->read = true;
	size_t i = 0; /* path[0, i) names n */
	while (path[i] != '\0') {
		size_t next;
		if (path[i] == '[') {
			size_t index = 0;
			bool huge = false;
			for (next = i + 1; path[next] != ']'; next++) {
				size_t d = (size_t)(path[next] - '0');
				if (index > (SIZE_MAX - d) / 10)
					huge = true;
				else
					index = index * 10 + d;
			}
			next++;
			if (n->kind != RK_CONFIG_SEQ) {
				if (flags & REPORT)
					mismatch(cfg, n, path, i, "a sequence");
				return f;
			}
			if (huge || index >= n->n)
				return f;
			n = n->kids[index];
		} else {
			if (n->kind != RK_CONFIG_MAP) {
				if (flags & REPORT)
					mismatch(cfg, n, path, i, "a map");
				return f;
			}
			/* The longest run of the path that is a key wins. */
			size_t k = i == 0 ? 0 : i + 1; /* skip the '.' */
			long hit = -1;
			for (next = k + strlen(path + k); next > k; next--) {
				if (!ends_component(path[next]))
					continue;
				hit =
				    rk_config_tree_find(n, path + k, next - k);
				if (hit >= 0)
					break;
			}
			if (hit < 0)
				return f;
			n = n->kids[hit];
		}
		if (flags & MARK)
			n->read = true;
		f.last = n;
		i = next;
	}
	f.node = n;
	return f;
}

/* The scalar at PATH for a getter that wants EXPECT, or NULL when the
 * getter is to return its default: absent, null, or not a scalar (an error
 * is then recorded). */
static const struct rk_config_node *
scalar_at(struct rk_config *cfg, const char *path, const char *expect)
{
	path = path != NULL ? path : "";
	struct rk_config_node *n = resolve(cfg, path, MARK | REPORT).node;
	if (n == NULL)
		return NULL;
	if (n->kind != RK_CONFIG_SCALAR) {
		mismatch(cfg, n, path, strlen(path), expect);
		return NULL;
	}
	return n->null ? NULL : n;
}

static void bad_value(struct rk_config *cfg, const struct rk_config_node *n,
                      const char *path, const char *expect)
{
	char got[96];
	field_error(cfg, n->line, path, strlen(path), "expected %s, got %s",
	            expect, describe(n, got, sizeof(got)));
}

/* "an integer in [1, 256]", or "... of at least 1" when there is no real
 * upper bound, and so on. */
static void range_text(char *buf, size_t size, const char *what, bool has_lo,
                       const char *lo, bool has_hi, const char *hi)
{
	if (has_lo && has_hi)
		snprintf(buf, size, "%s in [%s, %s]", what, lo, hi);
	else if (has_lo)
		snprintf(buf, size, "%s of at least %s", what, lo);
	else if (has_hi)
		snprintf(buf, size, "%s of at most %s", what, hi);
	else
		snprintf(buf, size, "%s", what);
}

static char *vformat(const char *fmt, va_list ap)
    __attribute__((format(printf, 1, 0)));

static char *vformat(const char *fmt, va_list ap)
{
	char *s = NULL;
	return vasprintf(&s, fmt, ap) < 0 ? NULL : s;
}

static void set_error(char **err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void set_error(char **err, const char *fmt, ...)
{
	if (err == NULL)
		return;
	va_list ap;
	va_start(ap, fmt);
	*err = vformat(fmt, ap);
	va_end(ap);
}

rk_status_t rk_config_parse(const char *text, size_t len, const char *name,
                            rk_config_t **out, char **err)
{
	*out = NULL;
	if (err != NULL)
		*err = NULL;
	if (name == NULL)
		name = "<config>";
	struct rk_config *cfg = calloc(1, sizeof(*cfg));
	if (cfg == NULL || (cfg->name = strdup(name)) == NULL) {
		free(cfg);
		set_error(err, "%s: out of memory", name);
		return RK_RESOURCE_EXHAUSTED;
	}
	rk_status_t status =
	    rk_config_tree_parse(text, len, name, &cfg->root, err);
	if (status != RK_OK) {
		rk_config_free(cfg);
		return status;
	}
	*out = cfg;
	return RK_OK;
}

/* Reads at most RK_CONFIG_MAX_BYTES + 1 bytes: enough for the parser to
 * refuse a file that is too long without reading all of one that is far
 * too long (or endless, like a device). */
rk_status_t rk_config_load(const char *path, rk_config_t **out, char **err)
{
	*out = NULL;
	if (err != NULL)
		*err = NULL;
	char why[128];
	FILE *f = fopen(path, "rb");
	if (f == NULL) {
		set_error(err, "%s: cannot open: %s", path,
		          strerror_r(errno, why, sizeof(why)));
		return RK_NOT_FOUND;
	}
	const size_t limit = (size_t)RK_CONFIG_MAX_BYTES + 1;
	size_t len = 0, cap = 0;
	char *text = NULL;
	while (len < limit) {
		if (len == cap) {
			size_t grown = cap != 0 ? cap * 2 : 4096;
			if (grown > limit)
				grown = limit;
			char *p = realloc(text, grown);
			if (p == NULL) {
				free(text);
				fclose(f);
				set_error(err, "%s: out of memory", path);
				return RK_RESOURCE_EXHAUSTED;
			}
			text = p;
			cap = grown;
		}
		size_t got = fread(text + len, 1, cap - len, f);
		if (got == 0)
			break;
		len += got;
	}
	if (ferror(f)) {
		int e = errno;
		free(text);
		fclose(f);
		set_error(err, "%s: cannot read: %s", path,
		          strerror_r(e, why, sizeof(why)));
		return RK_NOT_FOUND;
	}
	fclose(f);
	rk_status_t status = rk_config_parse(text, len, path, out, err);
	free(text);
	return status;
}

void rk_config_free(rk_config_t *cfg)
{
	if (cfg == NULL)
		return;
	rk_config_tree_free(cfg->root);
	problems_free(&cfg->errors);
	free(cfg->name);
	free(cfg);
}

const char *rk_config_name(const rk_config_t *cfg)
{
	return cfg->name;
}

bool rk_config_has(rk_config_t *cfg, const char *path)
{
	return resolve(cfg, path, MARK | REPORT).node != NULL;
}

const char *rk_config_string(rk_config_t *cfg, const char *path,
                             const char *def)
{
	const struct rk_config_node *n = scalar_at(cfg, path, "a string");
	return n != NULL ? n->text : def;
}

int64_t rk_config_int(rk_config_t *cfg, const char *path, int64_t def,
                      int64_t min, int64_t max)
{
	char lo[24], hi[24], expect[96];
	snprintf(lo, sizeof(lo), "%" PRId64, min);
	snprintf(hi, sizeof(hi), "%" PRId64, max);
	range_text(expect, sizeof(expect), "an integer", min != INT64_MIN, lo,
	           max != INT64_MAX, hi);
	const struct rk_config_node *n = scalar_at(cfg, path, expect);
	if (n == NULL)
		return def;
	int64_t v;
	if (!rk_config_parse_int(n->text, &v) || v < min || v > max) {
		bad_value(cfg, n, path, expect);
		return def;
	}
	return v;
}

bool rk_config_bool(rk_config_t *cfg, const char *path, bool def)
{
	const char *expect = "true or false";
	const struct rk_config_node *n = scalar_at(cfg, path, expect);
	if (n == NULL)
		return def;
	bool v;
	if (!rk_config_parse_bool(n->text, &v)) {
		bad_value(cfg, n, path, expect);
		return def;
	}
	return v;
}

/* The getters of amounts with units differ only in their words and in
 * the syntax of their values. */
static uint64_t amount(struct rk_config *cfg, const char *path, uint64_t def,
                       uint64_t min, uint64_t max, const char *what,
                       const char *examples,
                       bool (*parse)(const char *, uint64_t *),
                       void (*format)(char *, size_t, uint64_t))
{
	char lo[32], hi[32], range[96], expect[192];
	format(lo, sizeof(lo), min);
	format(hi, sizeof(hi), max);
	range_text(range, sizeof(range), what, min != 0, lo, max != UINT64_MAX,
	           hi);
	snprintf(expect, sizeof(expect), "%s (such as %s)", range, examples);
	const struct rk_config_node *n = scalar_at(cfg, path, expect);
	if (n == NULL)
		return def;
	uint64_t v;
	if (!parse(n->text, &v) || v < min || v > max) {
		bad_value(cfg, n, path, expect);
		return def;
	}
	return v;
}

uint64_t rk_config_duration_ms(rk_config_t *cfg, const char *path, uint64_t def,
                               uint64_t min_ms, uint64_t max_ms)
{
	return amount(cfg, path, def, min_ms, max_ms, "a duration",
	              "250ms, 5s, 2m, 1h, 1d", rk_config_parse_duration,
	              rk_config_format_duration);
}

uint64_t rk_config_size(rk_config_t *cfg, const char *path, uint64_t def,
                        uint64_t min, uint64_t max)
{
	return amount(cfg, path, def, min, max, "a size",
	              "512, 4KiB, 64MiB, 1GiB, 10MB", rk_config_parse_size,
	              rk_config_format_size);
}

int rk_config_choice(rk_config_t *cfg, const char *path,
                     const char *const *choices, int def)
{
	struct strbuf expect = {0};
	sb_str(&expect, "one of ");
	for (int i = 0; choices[i] != NULL; i++) {
		if (i > 0)
			sb_str(&expect, ", ");
		sb_str(&expect, "\"");
		sb_str(&expect, choices[i]);
		sb_str(&expect, "\"");
	}
	const char *what = expect.failed ? "one of the choices" : expect.p;
	const struct rk_config_node *n = scalar_at(cfg, path, what);
	int result = def;
	if (n != NULL) {
		int i = 0;
		while (choices[i] != NULL && strcmp(n->text, choices[i]) != 0)
			i++;
		if (choices[i] != NULL)
			result = i;
		else
			bad_value(cfg, n, path, what);
	}
	free(expect.p);
	return result;
}

size_t rk_config_len(rk_config_t *cfg, const char *path)
{
	path = path != NULL ? path : "";
	struct rk_config_node *n = resolve(cfg, path, MARK | REPORT).node;
	if (n == NULL)
		return 0;
	if (n->kind == RK_CONFIG_SCALAR) {
		mismatch(cfg, n, path, strlen(path), "a map or a sequence");
		return 0;
	}
	return n->n;
}

const char *rk_config_key(rk_config_t *cfg, const char *path, size_t i)
{
	path = path != NULL ? path : "";
	struct rk_config_node *n = resolve(cfg, path, MARK | REPORT).node;
	if (n == NULL)
		return NULL;
	if (n->kind != RK_CONFIG_MAP) {
		mismatch(cfg, n, path, strlen(path), "a map");
		return NULL;
	}
	return i < n->n ? n->keys[i] : NULL;
}

int rk_config_line(rk_config_t *cfg, const char *path)
{
	struct rk_config_node *n = resolve(cfg, path, 0).node;
	return n != NULL ? n->line : 0;
}

void rk_config_error(rk_config_t *cfg, const char *path, const char *fmt, ...)
{
	/* About an absent field ("required"), the nearest thing that is
	 * there gives the line: the section it belongs in. */
	struct found f = resolve(cfg, path, MARK);
	int line = f.node != NULL ? f.node->line : f.last->line;
	va_list ap;
	va_start(ap, fmt);
	char *what = vformat(fmt, ap);
	va_end(ap);
	if (what == NULL) {
		problems_add(&cfg->errors, line, NULL);
		return;
	}
	path = path != NULL ? path : "";
	field_error(cfg, line, path, strlen(path), "%s", what);
	free(what);
}

void rk_config_ignore(rk_config_t *cfg, const char *path)
{
	path = path != NULL ? path : "";
	struct rk_config_node *n = resolve(cfg, path, MARK | REPORT).node;
	if (n != NULL)
		mark_all(n);
}

/* Adds to OUT an "unknown field" problem for each unread child of N, whose
 * path is in PATH; looks inside children that were read. */
static void find_unread(const struct rk_config *cfg,
                        const struct rk_config_node *n, struct strbuf *path,
                        struct problems *out)
{
	for (size_t i = 0; i < n->n; i++) {
		size_t len = path->len;
		if (n->kind == RK_CONFIG_MAP) {
			if (len > 0)
				sb_str(path, ".");
			sb_key(path, n->keys[i]);
		} else {
			char index[32];
			snprintf(index, sizeof(index), "[%zu]", i);
			sb_str(path, index);
		}
		const struct rk_config_node *kid = n->kids[i];
		if (path->failed) {
			out->lost = true;
		} else if (!kid->read) {
			char *msg = NULL;
			if (asprintf(&msg, "%s:%d: unknown field %s", cfg->name,
			             kid->line,
			             path->p != NULL ? path->p : "") < 0)
				msg = NULL;
			problems_add(out, kid->line, msg);
		} else if (kid->kind != RK_CONFIG_SCALAR) {
			find_unread(cfg, kid, path, out);
		}
		sb_truncate(path, len);
	}
}

static int compare_problems(const void *a, const void *b)
{
	const struct problem *x = a, *y = b;
	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	return (x->seq > y->seq) - (x->seq < y->seq);
}

/* Equal messages next to each other, the first to arrive first. */
static int compare_messages(const void *a, const void *b)
{
	const struct problem *x = a, *y = b;
	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	int c = strcmp(x->msg, y->msg);
	if (c != 0)
		return c;
	return (x->seq > y->seq) - (x->seq < y->seq);
}

/* Sorts the N problems of ALL by line, then arrival, without repeats, and
 * returns how many are left. Sorting twice rather than checking each new
 * problem against the others keeps a file with a million bad values from
 * taking a million squared steps. */
static size_t sort_unique(struct problem *all, size_t n)
{
	qsort(all, n, sizeof(*all), compare_messages);
	size_t kept = 0;
	for (size_t i = 0; i < n; i++) {
		if (kept > 0 && all[kept - 1].line == all[i].line &&
		    strcmp(all[kept - 1].msg, all[i].msg) == 0)
			continue;
		all[kept++] = all[i];
	}
	qsort(all, kept, sizeof(*all), compare_problems);
	return kept;
}

rk_status_t rk_config_finish(rk_config_t *cfg, char **err)
{
	if (err != NULL)
		*err = NULL;
	struct problems unread = {0};
	struct strbuf path = {0};
	find_unread(cfg, cfg->root, &path, &unread);
	free(path.p);
	size_t total = cfg->errors.n + unread.n;
	bool lost = cfg->errors.lost || unread.lost;
	if (total == 0 && !lost) {
		problems_free(&unread);
		return RK_OK;
	}
	struct strbuf out = {0};
	struct problem *all = malloc((total + 1) * sizeof(*all));
	if (all != NULL) {
		for (size_t i = 0; i < total; i++) {
			all[i] = i < cfg->errors.n
			             ? cfg->errors.v[i]
			             : unread.v[i - cfg->errors.n];
			all[i].seq = i;
		}
		size_t kept = sort_unique(all, total);
		for (size_t i = 0; i < kept; i++) {
			if (i > 0)
				sb_str(&out, "\n");
			sb_str(&out, all[i].msg);
		}
		free(all);
	} else {
		out.failed = true;
	}
	if (lost) {
		if (out.len > 0)
			sb_str(&out, "\n");
		sb_str(&out, cfg->name);
		sb_str(&out, ": more problems were lost for lack of memory");
	}
	problems_free(&unread);
	if (err != NULL && !out.failed)
		*err = out.p;
	else
		free(out.p);
	return RK_INVALID_ARGUMENT;
}

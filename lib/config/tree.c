/*
 * YAML text to a tree of nodes: the half of the config module that knows
 * libyaml (config.c walks the tree and never sees a YAML event).
 *
 * We read libyaml's event stream rather than its document loader for three
 * reasons. The loader resolves aliases, which can blow a small file up
 * into a huge tree (the "billion laughs"); it keeps only marks, not the key
 * a value was written under; and it accepts duplicate keys. Driving the
 * events ourselves lets us refuse each of these with a message that points
 * at the line, and cap the nesting depth as we go.
 *
 * The builder keeps the open maps and sequences on a fixed stack of
 * RK_CONFIG_MAX_DEPTH entries; the bottom one is the root. A map on top of
 * the stack alternates between waiting for a key (builder.have_key false)
 * and waiting for that key's value. Every node is attached to its parent
 * the moment it is made, so on any error freeing the root frees all.
 *
 * A value under a map key takes the line and column of its key: for
 * "rpc:\n  listen: x" the map under rpc starts on the next line, but the
 * place a reader looks for rpc is the line that says "rpc:".
 *
 * Duplicate keys are found when a map ends: its keys are sorted (the same
 * order serves lookups later), so a map of n keys costs O(n log n) rather
 * than the O(n^2) of checking each key on arrival, which a 16 MiB file of
 * one-line keys would make very slow.
 */
#include "config/tree.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

struct builder {
	const char *name; /* the file name for messages, borrowed */
	const char *text; /* the input, to turn a byte offset into a line */
	size_t len;       /* its length */
	struct rk_config_node *root; /* the document once started, owned */
	struct rk_config_node *stack[RK_CONFIG_MAX_DEPTH]; /* open containers */
	int depth;     /* entries used in stack */
	char *key;     /* the key waiting for its value, owned */
	bool have_key; /* the map on top of stack has read key */
	int key_line;  /* 1-based position of key */
	int key_col;
	int documents;      /* documents started so far */
	rk_status_t status; /* RK_OK until the first error */
	char *err;          /* the first error's message, owned */
};

static void fail(struct builder *b, rk_status_t status, int line, int col,
                 const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Records the first error only: once the tree is wrong, what libyaml says
 * next is about our abandoned state, not about the file. */
static void fail(struct builder *b, rk_status_t status, int line, int col,
                 const char *fmt, ...)
{
	if (b->status != RK_OK)
		return;
	b->status = status;
	char what[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	char *msg = NULL;
	int n;
	if (line > 0)
		n = asprintf(&msg, "%s:%d:%d: %s", b->name, line, col, what);
	else
		n = asprintf(&msg, "%s: %s", b->name, what);
	b->err = n < 0 ? NULL : msg;
}

static void fail_at(struct builder *b, const yaml_mark_t *mark, const char *fmt,
                    ...) __attribute__((format(printf, 3, 4)));

static void fail_at(struct builder *b, const yaml_mark_t *mark, const char *fmt,
                    ...)
{
	char what[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	fail(b, RK_INVALID_ARGUMENT, (int)mark->line + 1, (int)mark->column + 1,
	     "%s", what);
}

static void out_of_memory(struct builder *b)
{
	fail(b, RK_RESOURCE_EXHAUSTED, 0, 0, "out of memory");
}

void rk_config_tree_free(struct rk_config_node *node)
{
	if (node == NULL)
		return;
	for (size_t i = 0; i < node->n; i++) {
		if (node->keys != NULL)
			free(node->keys[i]);
		rk_config_tree_free(node->kids[i]);
	}
	free(node->keys);
	free(node->kids);
	free(node->order);
	free(node->text);
	free(node);
}

void rk_config_quote(char *buf, size_t size, const char *text)
{
	size_t o = 0;
	buf[o++] = '"';
	for (const unsigned char *s = (const unsigned char *)text; *s; s++) {
		char esc[8];
		size_t n;
		if (*s == '"' || *s == '\\') {
			esc[0] = '\\';
			esc[1] = (char)*s;
			n = 2;
		} else if (*s == '\n') {
			memcpy(esc, "\\n", 2);
			n = 2;
		} else if (*s == '\t') {
			memcpy(esc, "\\t", 2);
			n = 2;
		} else if (*s < 0x20 || *s == 0x7f) {
			snprintf(esc, sizeof(esc), "\\x%02x", *s);
			n = 4;
		} else {
			esc[0] = (char)*s;
			n = 1;
		}
		/* Keep room for `..."` and the NUL whatever comes next. */
		if (o + n + 5 > size) {
			/* Never cut a UTF-8 character in two: drop the
			 * start of the one we are inside. */
			if ((*s & 0xc0) == 0x80) {
				while (o > 1 && ((unsigned char)buf[o - 1] &
				                 0xc0) == 0x80)
					o--;
				if (o > 1 && (unsigned char)buf[o - 1] >= 0xc0)
					o--;
			}
			memcpy(buf + o, "...", 3);
			o += 3;
			break;
		}
		memcpy(buf + o, esc, n);
		o += n;
	}
	buf[o++] = '"';
	buf[o] = '\0';
}

/* strcmp of a NUL-terminated key against LEN bytes that are not. */
static int compare_key(const char *key, const char *s, size_t len)
{
	int c = strncmp(key, s, len);
	if (c != 0)
		return c;
	return key[len] == '\0' ? 0 : 1;
}

long rk_config_tree_find(const struct rk_config_node *map, const char *key,
                         size_t len)
{
	size_t lo = 0, hi = map->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		size_t i = map->order[mid];
		int c = compare_key(map->keys[i], key, len);
		if (c == 0)
			return (long)i;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

/* qsort() takes no context, so we sort pointers into the keys array and
 * recover indexes by subtraction; comparing the pointers breaks ties, which
 * puts equal keys in file order. */
static int compare_key_ptr(const void *a, const void *b)
{
	char *const *x = *(char *const *const *)a;
	char *const *y = *(char *const *const *)b;
	int c = strcmp(*x, *y);
	if (c != 0)
		return c;
	return (x > y) - (x < y);
}

/* Fills map->order and refuses the map if a key appears twice, naming the
 * repeat that comes first in the file. */
static void index_map(struct builder *b, struct rk_config_node *map)
{
	if (map->n == 0)
		return;
	char ***sorted = malloc(map->n * sizeof(*sorted));
	map->order = malloc(map->n * sizeof(*map->order));
	if (sorted == NULL || map->order == NULL) {
		free(sorted);
		out_of_memory(b);
		return;
	}
	for (size_t i = 0; i < map->n; i++)
		sorted[i] = &map->keys[i];
	qsort(sorted, map->n, sizeof(*sorted), compare_key_ptr);
	size_t repeat = map->n; /* earliest index whose key came before */
	for (size_t i = 0; i < map->n; i++) {
		map->order[i] = (size_t)(sorted[i] - map->keys);
		if (i > 0 && strcmp(*sorted[i], *sorted[i - 1]) == 0 &&
		    map->order[i] < repeat)
			repeat = map->order[i];
	}
	free(sorted);
	if (repeat == map->n)
		return;
	size_t first = 0;
	while (strcmp(map->keys[first], map->keys[repeat]) != 0)
		first++;
	char quoted[96];
	rk_config_quote(quoted, sizeof(quoted), map->keys[repeat]);
	const struct rk_config_node *r = map->kids[repeat];
	fail(b, RK_INVALID_ARGUMENT, r->line, r->col,
	     "duplicate key %s (first at line %d)", quoted,
	     map->kids[first]->line);
}

static struct rk_config_node *new_node(enum rk_config_kind kind,
                                       const yaml_mark_t *mark)
{
	struct rk_config_node *n = calloc(1, sizeof(*n));
	if (n != NULL) {
		n->kind = kind;
		n->line = (int)mark->line + 1;
		n->col = (int)mark->column + 1;
	}
	return n;
}

/* Appends CHILD under KEY (NULL for a sequence), taking both, or returns
 * false and leaves both to the caller. */
static bool append(struct rk_config_node *parent, char *key,
                   struct rk_config_node *child)
{
	if (parent->n == parent->cap) {
		size_t cap = parent->cap != 0 ? parent->cap * 2 : 4;
		struct rk_config_node **kids =
		    realloc(parent->kids, cap * sizeof(*kids));
		if (kids == NULL)
			return false;
		parent->kids = kids;
		if (parent->kind == RK_CONFIG_MAP) {
			char **keys =
			    realloc(parent->keys, cap * sizeof(*keys));
			if (keys == NULL)
				return false;
			parent->keys = keys;
		}
		parent->cap = cap;
	}
	if (parent->kind == RK_CONFIG_MAP)
		parent->keys[parent->n] = key;
	parent->kids[parent->n++] = child;
	return true;
}

static const char *kind_name(const struct rk_config_node *n)
{
	switch (n->kind) {
	case RK_CONFIG_MAP:
		return "a map";
	case RK_CONFIG_SEQ:
		return "a sequence";
	default:
		return "a scalar";
	}
}

/* Hangs a new node (taking it) under the container on top of the stack, or
 * makes it the root. */
static void attach(struct builder *b, struct rk_config_node *node)
{
	if (b->depth == 0) {
		if (node->kind == RK_CONFIG_SCALAR && node->null) {
			/* "---" alone, or "~": an empty document. */
			free(node->text);
			node->text = NULL;
			node->null = false;
			node->kind = RK_CONFIG_MAP;
		} else if (node->kind != RK_CONFIG_MAP) {
			fail(b, RK_INVALID_ARGUMENT, node->line, node->col,
			     "the top level must be a map of fields, got %s",
			     kind_name(node));
			rk_config_tree_free(node);
			return;
		}
		node->line = 0;
		node->col = 0;
		b->root = node;
		return;
	}
	struct rk_config_node *parent = b->stack[b->depth - 1];
	char *key = NULL;
	if (parent->kind == RK_CONFIG_MAP) {
		key = b->key;
		b->key = NULL;
		b->have_key = false;
		node->line = b->key_line;
		node->col = b->key_col;
	}
	if (!append(parent, key, node)) {
		free(key);
		rk_config_tree_free(node);
		out_of_memory(b);
	}
}

static bool waiting_for_key(const struct builder *b)
{
	return b->depth > 0 && b->stack[b->depth - 1]->kind == RK_CONFIG_MAP &&
	       !b->have_key;
}

/* Anchors and aliases are refused rather than expanded: expanding them is
 * how a few hundred bytes become gigabytes, and a config that needs them
 * is better split or generated. Tags are refused because every value is
 * read as text and typed by its getter, so a tag would promise a type that
 * nothing checks. */
static bool check_properties(struct builder *b, const yaml_mark_t *mark,
                             const yaml_char_t *anchor, const yaml_char_t *tag)
{
	if (anchor != NULL) {
		fail_at(b, mark, "anchors (&%s) are not supported",
		        (const char *)anchor);
		return false;
	}
	if (tag != NULL) {
		/* Show "!!int" as written, not libyaml's expansion. */
		const char *t = (const char *)tag;
		const char *core = "tag:yaml.org,2002:";
		if (strncmp(t, core, strlen(core)) == 0)
			fail_at(b, mark, "tags (!!%s) are not supported",
			        t + strlen(core));
		else
			fail_at(b, mark, "tags (%s) are not supported", t);
		return false;
	}
	return true;
}

static bool is_null(const char *s)
{
	return s[0] == '\0' || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 ||
	       strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0;
}

static void on_scalar(struct builder *b, const yaml_event_t *ev)
{
	const yaml_mark_t *mark = &ev->start_mark;
	if (!check_properties(b, mark, ev->data.scalar.anchor,
	                      ev->data.scalar.tag))
		return;
	size_t n = ev->data.scalar.length;
	if (memchr(ev->data.scalar.value, '\0', n) != NULL) {
		fail_at(b, mark, "a NUL character in a value is not supported");
		return;
	}
	char *text = malloc(n + 1);
	if (text == NULL) {
		out_of_memory(b);
		return;
	}
	memcpy(text, ev->data.scalar.value, n);
	text[n] = '\0';
	if (waiting_for_key(b)) {
		b->key = text;
		b->have_key = true;
		b->key_line = (int)mark->line + 1;
		b->key_col = (int)mark->column + 1;
		return;
	}
	struct rk_config_node *node = new_node(RK_CONFIG_SCALAR, mark);
	if (node == NULL) {
		free(text);
		out_of_memory(b);
		return;
	}
	node->text = text;
	node->null =
	    ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && is_null(text);
	attach(b, node);
}

static void on_open(struct builder *b, const yaml_event_t *ev,
                    enum rk_config_kind kind)
{
	const yaml_mark_t *mark = &ev->start_mark;
	bool ok =
	    kind == RK_CONFIG_MAP
	        ? check_properties(b, mark, ev->data.mapping_start.anchor,
	                           ev->data.mapping_start.tag)
	        : check_properties(b, mark, ev->data.sequence_start.anchor,
	                           ev->data.sequence_start.tag);
	if (!ok)
		return;
	if (waiting_for_key(b)) {
		fail_at(b, mark, "a map key must be a scalar, got %s",
		        kind == RK_CONFIG_MAP ? "a map" : "a sequence");
		return;
	}
	if (b->depth == RK_CONFIG_MAX_DEPTH) {
		fail_at(b, mark, "nested deeper than %d levels",
		        RK_CONFIG_MAX_DEPTH);
		return;
	}
	struct rk_config_node *node = new_node(kind, mark);
	if (node == NULL) {
		out_of_memory(b);
		return;
	}
	attach(b, node);
	if (b->status == RK_OK)
		b->stack[b->depth++] = node;
}

static void on_event(struct builder *b, const yaml_event_t *ev)
{
	switch (ev->type) {
	case YAML_DOCUMENT_START_EVENT:
		if (++b->documents > 1)
			fail_at(b, &ev->start_mark,
			        "a second YAML document; a config file holds "
			        "one");
		break;
	case YAML_SCALAR_EVENT:
		on_scalar(b, ev);
		break;
	case YAML_MAPPING_START_EVENT:
		on_open(b, ev, RK_CONFIG_MAP);
		break;
	case YAML_SEQUENCE_START_EVENT:
		on_open(b, ev, RK_CONFIG_SEQ);
		break;
	case YAML_MAPPING_END_EVENT:
	case YAML_SEQUENCE_END_EVENT: {
		struct rk_config_node *node = b->stack[--b->depth];
		if (node->kind == RK_CONFIG_MAP)
			index_map(b, node);
		break;
	}
	case YAML_ALIAS_EVENT:
		fail_at(b, &ev->start_mark, "aliases (*%s) are not supported",
		        (const char *)ev->data.alias.anchor);
		break;
	default:
		break;
	}
}

/* Turns libyaml's own error into ours. A reader error (bad encoding) has
 * only a byte offset, which we turn into a line and column ourselves. */
static void yaml_failed(struct builder *b, const yaml_parser_t *p)
{
	const char *problem = p->problem != NULL ? p->problem : "invalid YAML";
	switch (p->error) {
	case YAML_MEMORY_ERROR:
		out_of_memory(b);
		break;
	case YAML_READER_ERROR: {
		size_t end =
		    p->problem_offset < b->len ? p->problem_offset : b->len;
		int line = 1;
		size_t start = 0;
		for (size_t i = 0; i < end; i++) {
			if (b->text[i] == '\n') {
				line++;
				start = i + 1;
			}
		}
		int col = (int)(end - start) + 1;
		if (p->problem_value != -1)
			fail(b, RK_INVALID_ARGUMENT, line, col, "%s (0x%02x)",
			     problem, (unsigned)p->problem_value);
		else
			fail(b, RK_INVALID_ARGUMENT, line, col, "%s", problem);
		break;
	}
	default:
		if (p->context != NULL)
			fail(b, RK_INVALID_ARGUMENT,
			     (int)p->problem_mark.line + 1,
			     (int)p->problem_mark.column + 1,
			     "%s (%s at line %d)", problem, p->context,
			     (int)p->context_mark.line + 1);
		else
			fail(b, RK_INVALID_ARGUMENT,
			     (int)p->problem_mark.line + 1,
			     (int)p->problem_mark.column + 1, "%s", problem);
		break;
	}
}

rk_status_t rk_config_tree_parse(const char *text, size_t len, const char *name,
                                 struct rk_config_node **root, char **err)
{
	struct builder b = {.name = name, .text = text, .len = len};
	*root = NULL;
	if (err != NULL)
		*err = NULL;
	if (text == NULL) {
		/* libyaml asserts on a NULL input even when empty. */
		b.text = text = "";
		b.len = len = 0;
	}
	if (len > RK_CONFIG_MAX_BYTES) {
		fail(&b, RK_INVALID_ARGUMENT, 0, 0,
		     "larger than %u MiB, the limit for a config file",
		     RK_CONFIG_MAX_BYTES / (1024 * 1024));
	} else {
		yaml_parser_t parser;
		if (!yaml_parser_initialize(&parser)) {
			out_of_memory(&b);
		} else {
			yaml_parser_set_input_string(
			    &parser, (const unsigned char *)text, len);
			bool done = false;
			while (!done && b.status == RK_OK) {
				yaml_event_t ev;
				if (!yaml_parser_parse(&parser, &ev)) {
					yaml_failed(&b, &parser);
					break;
				}
				done = ev.type == YAML_STREAM_END_EVENT;
				on_event(&b, &ev);
				yaml_event_delete(&ev);
			}
			yaml_parser_delete(&parser);
		}
	}
	if (b.status == RK_OK && b.root == NULL) {
		/* A file of comments only has no document at all. */
		b.root = calloc(1, sizeof(*b.root));
		if (b.root == NULL)
			out_of_memory(&b);
		else
			b.root->kind = RK_CONFIG_MAP;
	}
	free(b.key);
	if (b.status != RK_OK) {
		rk_config_tree_free(b.root);
		if (err != NULL)
			*err = b.err;
		else
			free(b.err);
		return b.status;
	}
	*root = b.root;
	return RK_OK;
}

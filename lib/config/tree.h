/*
 * Private to the config module: the tree that a YAML document is read into
 * (tree.c) and that the getters of config.c walk. Nothing outside
 * lib/config includes this header.
 */
#ifndef RK_CONFIG_TREE_H
#define RK_CONFIG_TREE_H

#include <stdbool.h>
#include <stddef.h>

#include <ringkv/status.h>

/* The largest document accepted, so that a wrong path (a log file, a core
 * dump) fails fast instead of filling memory. */
#define RK_CONFIG_MAX_BYTES (16u * 1024 * 1024)

/* The deepest nesting of maps and sequences accepted, the top-level map
 * counting as 1. No ringkv config needs more than a handful; the cap keeps
 * the recursive walks of config.c shallow whatever the file holds. */
#define RK_CONFIG_MAX_DEPTH 64

enum rk_config_kind {
	RK_CONFIG_SCALAR,
	RK_CONFIG_MAP,
	RK_CONFIG_SEQ,
};

struct rk_config_node {
	enum rk_config_kind kind; /* which of the fields below are used */
	int line;   /* 1-based; of its key if a map value; 0 for the root */
	int col;    /* 1-based column, likewise; 0 for the root */
	bool read;  /* some getter reached this node; see config.c */
	bool null;  /* SCALAR written as nothing, ~ or null: counts as absent */
	char *text; /* SCALAR: the value; never holds a NUL byte */
	size_t n;   /* MAP, SEQ: number of children */
	size_t cap; /* MAP, SEQ: allocated length of keys and kids */
	char **keys; /* MAP: keys[i] names kids[i], in file order */
	struct rk_config_node **kids; /* MAP, SEQ: the children, owned */
	size_t *order; /* MAP: indexes into keys, sorted by strcmp */
};

/* Parses LEN bytes of TEXT (a YAML document) into *ROOT, always a map: an
 * empty document gives an empty map. Refuses (RK_INVALID_ARGUMENT) invalid
 * YAML, a top level other than a map, duplicate keys, keys that are not
 * scalars, anchors, aliases and tags, NUL bytes in values, more than one
 * document, nesting deeper than RK_CONFIG_MAX_DEPTH and documents longer
 * than RK_CONFIG_MAX_BYTES; RK_RESOURCE_EXHAUSTED when out of memory. On
 * error *err (if ERR is not NULL) is "NAME:LINE:COL: what", caller frees.
 * On RK_OK the caller frees *root with rk_config_tree_free(). */
rk_status_t rk_config_tree_parse(const char *text, size_t len, const char *name,
                                 struct rk_config_node **root, char **err);

void rk_config_tree_free(struct rk_config_node *node);

/* The index of the key of MAP that is exactly the LEN bytes at KEY, or -1.
 * O(log n) through map->order. */
long rk_config_tree_find(const struct rk_config_node *map, const char *key,
                         size_t len);

/* Writes TEXT into BUF as a double-quoted string for messages: quotes,
 * backslashes and control characters escaped, cut with "..." to fit SIZE
 * (at least 16). */
void rk_config_quote(char *buf, size_t size, const char *text);

#endif

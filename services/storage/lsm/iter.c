/*
 * The empty iterator and the merging iterator.
 *
 * Merging keeps every child positioned and `cur` pointing at the child
 * with the smallest key, `second` at the smallest of the others. A step
 * that leaves cur below second needs one comparison; otherwise choosing
 * the next current child is a linear scan:
 * a merge has at most about 20 children (two memtables, up to 12 level-0
 * tables, one per other level), where a heap's bookkeeping costs as much.
 * Internal keys are unique (every write has its own sequence), so ties
 * cannot happen between children.
 *
 * Backward it is the mirror: `cur` is the child with the largest key. On
 * a change of direction every other child is moved to the other side of
 * cur's key (a seek, and a step back when going backward), as LevelDB's
 * merging iterator does.
 */
#include "iter.h"

#include <stdlib.h>

typedef struct empty_iter {
	rk_iter_t base;     /* must be first */
	rk_status_t status; /* reported by status() */
} empty_iter_t;

static void e_nop(rk_iter_t *it)
{
	(void)it;
}
static void e_seek(rk_iter_t *it, rk_slice_t k)
{
	(void)it;
	(void)k;
}
static bool e_valid(const rk_iter_t *it)
{
	(void)it;
	return false;
}
static rk_slice_t e_slice(const rk_iter_t *it)
{
	(void)it;
	return rk_slice(NULL, 0);
}
static rk_status_t e_status(const rk_iter_t *it)
{
	return ((const empty_iter_t *)it)->status;
}
static void e_free(rk_iter_t *it)
{
	free(it);
}

static const rk_iter_ops_t empty_ops = {
    .seek_first = e_nop,
    .seek = e_seek,
    .next = e_nop,
    .seek_last = e_nop,
    .prev = e_nop,
    .valid = e_valid,
    .key = e_slice,
    .value = e_slice,
    .status = e_status,
    .free = e_free,
};

rk_iter_t *rk_iter_empty(rk_status_t st)
{
	empty_iter_t *e = malloc(sizeof(*e));
	if (e == NULL)
		return NULL;
	e->base.ops = &empty_ops;
	e->status = st;
	return &e->base;
}

typedef struct child {
	rk_iter_t *it;  /* owned */
	bool valid;     /* cached rk_iter_valid(it) */
	rk_slice_t key; /* cached rk_iter_key(it) when valid */
} child_t;

typedef struct merging_iter {
	rk_iter_t base;  /* must be first */
	size_t n;        /* children */
	child_t *cur;    /* child with the smallest key, NULL if none valid */
	child_t *second; /* smallest of the others, NULL if none valid */
	bool backward;   /* cur/second are the largest (after a prev) */
	child_t kids[];  /* the children, with their positions cached */
} merging_iter_t;

/* Refreshes C's cache after it moved: one pair of indirect calls per
 * move instead of one per child per step. */
static void refresh(child_t *c)
{
	c->valid = rk_iter_valid(c->it);
	if (c->valid)
		c->key = rk_iter_key(c->it);
}

/* Points cur at the child whose key comes first in the order of travel
 * (smallest forward, largest backward) and second at the next one. */
static void find_first(merging_iter_t *m)
{
	int dir = m->backward ? -1 : 1;
	child_t *best = NULL, *second = NULL;
	for (size_t i = 0; i < m->n; i++) {
		child_t *c = &m->kids[i];
		if (!c->valid)
			continue;
		if (best == NULL || dir * rk_ikey_cmp(c->key, best->key) < 0) {
			second = best;
			best = c;
		} else if (second == NULL ||
		           dir * rk_ikey_cmp(c->key, second->key) < 0) {
			second = c;
		}
	}
	m->cur = best;
	m->second = second;
}

static void m_seek_first(rk_iter_t *it)
{
	merging_iter_t *m = (merging_iter_t *)it;
	for (size_t i = 0; i < m->n; i++) {
		rk_iter_seek_first(m->kids[i].it);
		refresh(&m->kids[i]);
	}
	m->backward = false;
	find_first(m);
}

static void m_seek(rk_iter_t *it, rk_slice_t k)
{
	merging_iter_t *m = (merging_iter_t *)it;
	for (size_t i = 0; i < m->n; i++) {
		rk_iter_seek(m->kids[i].it, k);
		refresh(&m->kids[i]);
	}
	m->backward = false;
	find_first(m);
}

static void m_seek_last(rk_iter_t *it)
{
	merging_iter_t *m = (merging_iter_t *)it;
	for (size_t i = 0; i < m->n; i++) {
		rk_iter_seek_last(m->kids[i].it);
		refresh(&m->kids[i]);
	}
	m->backward = true;
	find_first(m);
}

/* Puts every child but cur on the side of cur's key that the new
 * direction BACKWARD travels to: the first key after it, or the last
 * before it (keys are unique, so a seek lands after it). cur's key stays
 * valid meanwhile: only the other children move. */
static void turn(merging_iter_t *m, bool backward)
{
	rk_slice_t k = m->cur->key;
	for (size_t i = 0; i < m->n; i++) {
		child_t *c = &m->kids[i];
		if (c == m->cur)
			continue;
		rk_iter_seek(c->it, k);
		if (backward) {
			if (rk_iter_valid(c->it))
				rk_iter_prev(c->it);
			else
				rk_iter_seek_last(c->it);
		}
		refresh(c);
	}
	m->backward = backward;
	m->second = NULL; /* stale: the caller runs find_first() */
}

static void m_next(rk_iter_t *it)
{
	merging_iter_t *m = (merging_iter_t *)it;
	if (m->backward) {
		turn(m, false);
		rk_iter_next(m->cur->it);
		refresh(m->cur);
		find_first(m);
		return;
	}
	rk_iter_next(m->cur->it);
	refresh(m->cur);
	/* The others have not moved and none is below `second`: if cur is
	 * still below it, cur is still the smallest (one comparison; a scan
	 * mostly reads one level for long stretches). */
	if (m->cur->valid &&
	    (m->second == NULL || rk_ikey_cmp(m->cur->key, m->second->key) < 0))
		return;
	find_first(m);
}

/* m_next's mirror. */
static void m_prev(rk_iter_t *it)
{
	merging_iter_t *m = (merging_iter_t *)it;
	if (!m->backward) {
		turn(m, true);
		rk_iter_prev(m->cur->it);
		refresh(m->cur);
		find_first(m);
		return;
	}
	rk_iter_prev(m->cur->it);
	refresh(m->cur);
	if (m->cur->valid &&
	    (m->second == NULL || rk_ikey_cmp(m->cur->key, m->second->key) > 0))
		return;
	find_first(m);
}

static bool m_valid(const rk_iter_t *it)
{
	return ((const merging_iter_t *)it)->cur != NULL;
}

static rk_slice_t m_key(const rk_iter_t *it)
{
	return ((const merging_iter_t *)it)->cur->key;
}

static rk_slice_t m_value(const rk_iter_t *it)
{
	return rk_iter_value(((const merging_iter_t *)it)->cur->it);
}

static rk_status_t m_status(const rk_iter_t *it)
{
	const merging_iter_t *m = (const merging_iter_t *)it;
	for (size_t i = 0; i < m->n; i++) {
		rk_status_t st = rk_iter_status(m->kids[i].it);
		if (st != RK_OK)
			return st;
	}
	return RK_OK;
}

static void m_free(rk_iter_t *it)
{
	merging_iter_t *m = (merging_iter_t *)it;
	for (size_t i = 0; i < m->n; i++)
		rk_iter_free(m->kids[i].it);
	free(m);
}

static const rk_iter_ops_t merging_ops = {
    .seek_first = m_seek_first,
    .seek = m_seek,
    .next = m_next,
    .seek_last = m_seek_last,
    .prev = m_prev,
    .valid = m_valid,
    .key = m_key,
    .value = m_value,
    .status = m_status,
    .free = m_free,
};

rk_iter_t *rk_iter_merging(rk_iter_t **children, size_t n)
{
	merging_iter_t *m = malloc(sizeof(*m) + n * sizeof(child_t));
	if (m == NULL) {
		for (size_t i = 0; i < n; i++)
			rk_iter_free(children[i]);
		return NULL;
	}
	m->base.ops = &merging_ops;
	m->n = n;
	m->cur = NULL;
	m->second = NULL;
	m->backward = false;
	for (size_t i = 0; i < n; i++)
		m->kids[i] = (child_t){.it = children[i], .valid = false};
	return &m->base;
}

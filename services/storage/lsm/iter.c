/*
 * The empty iterator and the merging iterator.
 *
 * Merging keeps every child positioned and the valid ones in `order`,
 * sorted by key in the direction of travel, so `cur` is order[0]. A step
 * moves cur and slides it down the order to its new place: one
 * comparison while it stays first (a scan mostly reads one level for long
 * stretches), about half the children when the levels interleave, where
 * rescanning all of them cost two comparisons per child. A merge has at
 * most about 20 children (two memtables, up to 12 level-0 tables, one per
 * other level), where a heap's bookkeeping costs as much.
 * Internal keys are unique (every write has its own sequence), so ties
 * cannot happen between children.
 *
 * Backward it is the mirror: `order` runs from the largest key down. On
 * a change of direction every other child is moved to the other side of
 * cur's key (a seek, and a step back when going backward), as LevelDB's
 * merging iterator does, and the order is rebuilt.
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
	rk_iter_t base;   /* must be first */
	size_t n;         /* children */
	child_t *cur;     /* the first child in travel order, NULL if none */
	child_t **order;  /* the valid children in travel order (nv of them) */
	size_t nv;        /* valid children */
	bool backward;    /* order runs from the largest key down */
	child_t kids[];   /* the children, with their positions cached;
	                     `order` is stored after them */
} merging_iter_t;

/* Refreshes C's cache after it moved: one pair of indirect calls per
 * move instead of one per child per step. */
static void refresh(child_t *c)
{
	c->valid = rk_iter_valid(c->it);
	if (c->valid)
		c->key = rk_iter_key(c->it);
}

/* True when A comes before B in M's direction of travel. */
static bool before(const merging_iter_t *m, const child_t *a,
                   const child_t *b)
{
	int c = rk_ikey_cmp(a->key, b->key);
	return m->backward ? c > 0 : c < 0;
}

/* Rebuilds `order` from every child (after a seek or a turn). */
static void find_first(merging_iter_t *m)
{
	m->nv = 0;
	for (size_t i = 0; i < m->n; i++) {
		child_t *c = &m->kids[i];
		if (!c->valid)
			continue;
		size_t j = m->nv++;
		for (; j > 0 && before(m, c, m->order[j - 1]); j--)
			m->order[j] = m->order[j - 1];
		m->order[j] = c;
	}
	m->cur = m->nv ? m->order[0] : NULL;
}

/* After cur (order[0]) moved: drops it if it ran out, else slides it
 * down to its place. */
static void reorder(merging_iter_t *m)
{
	child_t *c = m->order[0];
	size_t i = 0;
	if (!c->valid) {
		m->nv--;
		for (; i < m->nv; i++)
			m->order[i] = m->order[i + 1];
	} else {
		for (; i + 1 < m->nv && before(m, m->order[i + 1], c); i++)
			m->order[i] = m->order[i + 1];
		m->order[i] = c;
	}
	m->cur = m->nv ? m->order[0] : NULL;
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
	m->backward = backward; /* the caller rebuilds the order */
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
	reorder(m);
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
	reorder(m);
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
	merging_iter_t *m =
	    malloc(sizeof(*m) + n * (sizeof(child_t) + sizeof(child_t *)));
	if (m == NULL) {
		for (size_t i = 0; i < n; i++)
			rk_iter_free(children[i]);
		return NULL;
	}
	m->base.ops = &merging_ops;
	m->n = n;
	m->cur = NULL;
	m->order = (child_t **)(void *)(m->kids + n);
	m->nv = 0;
	m->backward = false;
	for (size_t i = 0; i < n; i++)
		m->kids[i] = (child_t){.it = children[i], .valid = false};
	return &m->base;
}

/*
 * Versions, edits, table files and the level iterator (see version.h).
 *
 * Reading a key walks L0 newest table first (L0 tables overlap, and a
 * higher file number always holds newer writes), then one table per
 * deeper level, found by binary search on the tables' largest keys. The
 * first table that knows the key (value or tombstone) answers: levels
 * only ever push older data down.
 */
#include "version.h"

#include <stdint.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wal.h"

rk_file_t *rk_file_new(const char *dir, rk_cache_t *cache, uint64_t number,
                       uint64_t size, uint64_t entries, rk_slice_t smallest,
                       rk_slice_t largest)
{
	rk_file_t *f = calloc(1, sizeof(*f));
	if (f == NULL)
		return NULL;
	f->smallest = malloc(smallest.n);
	f->largest = malloc(largest.n);
	if (f->smallest == NULL || f->largest == NULL) {
		free(f->smallest);
		free(f->largest);
		free(f);
		return NULL;
	}
	memcpy(f->smallest, smallest.p, smallest.n);
	memcpy(f->largest, largest.p, largest.n);
	f->smallest_len = smallest.n;
	f->largest_len = largest.n;
	f->number = number;
	f->size = size;
	f->entries = entries;
	f->dir = dir;
	f->cache = cache;
	pthread_mutex_init(&f->mu, NULL);
	f->refs = 1;
	/* LevelDB's rule: one seek costs about what compacting 16 KiB does,
	 * so a table may cost size / 16 KiB seeks (at least 100) before
	 * merging it into the next level is cheaper than reading it. */
	uint64_t seeks = size / 16384;
	f->allowed_seeks = seeks < 100 ? 100 : seeks > INT32_MAX ? INT32_MAX
	                                                          : (int)seeks;
	return f;
}

void rk_file_ref(rk_file_t *f)
{
	__atomic_fetch_add(&f->refs, 1, __ATOMIC_RELAXED);
}

void rk_file_unref(rk_file_t *f)
{
	if (f == NULL || __atomic_fetch_sub(&f->refs, 1, __ATOMIC_ACQ_REL) != 1)
		return;
	rk_table_unref(f->table);
	if (__atomic_load_n(&f->obsolete, __ATOMIC_ACQUIRE)) {
		char path[4096];
		rk_lsm_file_name(path, sizeof(path), f->dir, f->number, "sst");
		unlink(path);
	}
	pthread_mutex_destroy(&f->mu);
	free(f->smallest);
	free(f->largest);
	free(f);
}

rk_status_t rk_file_table(rk_file_t *f, rk_table_t **out)
{
	/* Fast path: once opened, the table stays until the file goes. */
	rk_table_t *t = __atomic_load_n(&f->table, __ATOMIC_ACQUIRE);
	if (t != NULL) {
		rk_table_ref(t);
		*out = t;
		return RK_OK;
	}
	pthread_mutex_lock(&f->mu);
	rk_status_t st = RK_OK;
	if (f->table == NULL) {
		st = rk_table_open(f->dir, f->number, f->size, f->cache, &t,
		                   NULL, 0);
		if (st == RK_OK)
			__atomic_store_n(&f->table, t, __ATOMIC_RELEASE);
	}
	if (st == RK_OK) {
		rk_table_ref(f->table);
		*out = f->table;
	}
	pthread_mutex_unlock(&f->mu);
	return st;
}

void rk_edit_init(rk_edit_t *e)
{
	memset(e, 0, sizeof(*e));
}

void rk_edit_fini(rk_edit_t *e)
{
	for (size_t i = 0; i < e->nadd; i++)
		rk_file_unref(e->add[i]);
	free(e->add);
	free(e->add_levels);
	free(e->del_numbers);
	free(e->del_levels);
	memset(e, 0, sizeof(*e));
}

rk_status_t rk_edit_delete(rk_edit_t *e, int level, uint64_t number)
{
	uint64_t *n = realloc(e->del_numbers, (e->ndel + 1) * sizeof(*n));
	if (n == NULL)
		return RK_RESOURCE_EXHAUSTED;
	e->del_numbers = n;
	int *l = realloc(e->del_levels, (e->ndel + 1) * sizeof(*l));
	if (l == NULL)
		return RK_RESOURCE_EXHAUSTED;
	e->del_levels = l;
	e->del_numbers[e->ndel] = number;
	e->del_levels[e->ndel] = level;
	e->ndel++;
	return RK_OK;
}

rk_status_t rk_edit_add(rk_edit_t *e, int level, rk_file_t *f)
{
	rk_file_t **a = realloc(e->add, (e->nadd + 1) * sizeof(*a));
	if (a == NULL)
		return RK_RESOURCE_EXHAUSTED;
	e->add = a;
	int *l = realloc(e->add_levels, (e->nadd + 1) * sizeof(*l));
	if (l == NULL)
		return RK_RESOURCE_EXHAUSTED;
	e->add_levels = l;
	rk_file_ref(f);
	e->add[e->nadd] = f;
	e->add_levels[e->nadd] = level;
	e->nadd++;
	return RK_OK;
}

rk_version_t *rk_version_new(void)
{
	rk_version_t *v = calloc(1, sizeof(*v));
	if (v != NULL)
		v->refs = 1;
	return v;
}

static int by_number_desc(const void *a, const void *b)
{
	const rk_file_t *x = *(rk_file_t *const *)a,
	                *y = *(rk_file_t *const *)b;
	return x->number > y->number ? -1 : x->number < y->number ? 1 : 0;
}

static int by_smallest(const void *a, const void *b)
{
	const rk_file_t *x = *(rk_file_t *const *)a,
	                *y = *(rk_file_t *const *)b;
	return rk_ikey_cmp(rk_file_smallest(x), rk_file_smallest(y));
}

static bool deleted(const rk_edit_t *e, int level, uint64_t number)
{
	for (size_t i = 0; i < e->ndel; i++)
		if (e->del_levels[i] == level && e->del_numbers[i] == number)
			return true;
	return false;
}

rk_version_t *rk_version_apply(const rk_version_t *base, const rk_edit_t *e)
{
	rk_version_t *v = rk_version_new();
	if (v == NULL)
		return NULL;
	for (int l = 0; l < RK_LSM_LEVELS; l++) {
		size_t cap = base->n[l] + e->nadd;
		v->files[l] = malloc((cap ? cap : 1) * sizeof(rk_file_t *));
		if (v->files[l] == NULL) {
			rk_version_unref(v);
			return NULL;
		}
		for (size_t i = 0; i < base->n[l]; i++) {
			rk_file_t *f = base->files[l][i];
			if (deleted(e, l, f->number))
				continue;
			rk_file_ref(f);
			v->files[l][v->n[l]++] = f;
		}
		for (size_t i = 0; i < e->nadd; i++) {
			if (e->add_levels[i] != l)
				continue;
			rk_file_ref(e->add[i]);
			v->files[l][v->n[l]++] = e->add[i];
		}
		qsort(v->files[l], v->n[l], sizeof(rk_file_t *),
		      l == 0 ? by_number_desc : by_smallest);
	}
	return v;
}

void rk_version_ref(rk_version_t *v)
{
	__atomic_fetch_add(&v->refs, 1, __ATOMIC_RELAXED);
}

void rk_version_unref(rk_version_t *v)
{
	if (v == NULL || __atomic_fetch_sub(&v->refs, 1, __ATOMIC_ACQ_REL) != 1)
		return;
	for (int l = 0; l < RK_LSM_LEVELS; l++) {
		for (size_t i = 0; i < v->n[l]; i++)
			rk_file_unref(v->files[l][i]);
		free(v->files[l]);
	}
	free(v);
}

static int user_cmp(rk_slice_t a, rk_slice_t b)
{
	return rk_bytes_cmp(a.p, a.n, b.p, b.n);
}

/* True when user key K lies in F's range. */
static bool covers(const rk_file_t *f, rk_slice_t k)
{
	return user_cmp(k, rk_ikey_user(rk_file_smallest(f))) >= 0 &&
	       user_cmp(k, rk_ikey_user(rk_file_largest(f))) <= 0;
}

/* First table of a sorted level whose largest key is >= IKEY. */
static size_t find_file(rk_file_t *const *files, size_t n, rk_slice_t ikey)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (rk_ikey_cmp(rk_file_largest(files[mid]), ikey) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static rk_status_t file_get(rk_file_t *f, rk_slice_t ikey, rk_slice_t uk,
                            int *type, uint8_t **val, size_t *vlen)
{
	rk_table_t *t;
	rk_status_t st = rk_file_table(f, &t);
	if (st != RK_OK)
		return st;
	st = rk_table_get(t, ikey, uk, type, val, vlen);
	rk_table_unref(t);
	return st;
}

/* Charges F (read at LEVEL, its key not there) for a lookup that went on
 * to another table. */
static void charge_seek(rk_file_t *f, int level, rk_seek_charge_t *charge)
{
	if (__atomic_sub_fetch(&f->allowed_seeks, 1, __ATOMIC_RELAXED) == 0 &&
	    charge != NULL && level < RK_LSM_LEVELS - 1) {
		charge->file = f;
		charge->level = level;
	}
}

rk_status_t rk_version_get(rk_version_t *v, rk_slice_t user_key, uint64_t seq,
                           int *type, uint8_t **val, size_t *vlen,
                           rk_seek_charge_t *charge)
{
	if (charge != NULL)
		charge->file = NULL;
	uint8_t stackbuf[256];
	uint8_t *buf = stackbuf;
	if (user_key.n + RK_IKEY_TRAILER > sizeof(stackbuf)) {
		buf = malloc(user_key.n + RK_IKEY_TRAILER);
		if (buf == NULL)
			return RK_RESOURCE_EXHAUSTED;
	}
	rk_slice_t ikey = rk_slice(
	    buf, rk_ikey_make(buf, user_key.p, user_key.n, seq, RK_TYPE_VALUE));
	rk_status_t st = RK_NOT_FOUND;
	rk_file_t *first = NULL; /* the first table read */
	int first_level = 0;
	size_t reads = 0;
	for (size_t i = 0; i < v->n[0] && st == RK_NOT_FOUND; i++) {
		rk_file_t *f = v->files[0][i];
		if (!covers(f, user_key))
			continue;
		if (reads++ == 0)
			first = f;
		st = file_get(f, ikey, user_key, type, val, vlen);
	}
	for (int l = 1; l < RK_LSM_LEVELS && st == RK_NOT_FOUND; l++) {
		size_t i = find_file(v->files[l], v->n[l], ikey);
		if (i >= v->n[l] || !covers(v->files[l][i], user_key))
			continue;
		if (reads++ == 0) {
			first = v->files[l][i];
			first_level = l;
		}
		st = file_get(v->files[l][i], ikey, user_key, type, val, vlen);
	}
	if (reads > 1 && st != RK_DATA_LOSS && st != RK_INTERNAL &&
	    st != RK_RESOURCE_EXHAUSTED)
		charge_seek(first, first_level, charge);
	if (buf != stackbuf)
		free(buf);
	return st;
}

bool rk_version_overlaps(const rk_version_t *v, int level, rk_slice_t lo,
                         rk_slice_t hi)
{
	for (size_t i = 0; i < v->n[level]; i++) {
		const rk_file_t *f = v->files[level][i];
		if (user_cmp(rk_ikey_user(rk_file_largest(f)), lo) >= 0 &&
		    user_cmp(rk_ikey_user(rk_file_smallest(f)), hi) <= 0)
			return true;
	}
	return false;
}

typedef struct level_iter {
	rk_iter_t base;     /* must be first */
	rk_file_t **files;  /* referenced */
	size_t n;           /* count */
	size_t idx;         /* current file */
	rk_iter_t *cur;     /* over files[idx], NULL if none */
	bool fill_cache;    /* for the table iterators */
	rk_status_t status; /* first error */
} level_iter_t;

static bool open_file(level_iter_t *it, size_t idx)
{
	rk_iter_free(it->cur);
	it->cur = NULL;
	it->idx = idx;
	if (idx >= it->n)
		return false;
	rk_table_t *t;
	rk_status_t st = rk_file_table(it->files[idx], &t);
	if (st == RK_OK) {
		it->cur = rk_table_iter(t, it->fill_cache);
		rk_table_unref(t);
		if (it->cur == NULL)
			st = RK_RESOURCE_EXHAUSTED;
	}
	if (st != RK_OK) {
		it->status = st;
		return false;
	}
	return true;
}

static void settle(level_iter_t *it)
{
	while (it->cur != NULL && !rk_iter_valid(it->cur)) {
		rk_status_t st = rk_iter_status(it->cur);
		if (st != RK_OK) {
			it->status = st;
			return;
		}
		if (!open_file(it, it->idx + 1))
			return;
		rk_iter_seek_first(it->cur);
	}
}

/* settle() going backward: past the start of a file, the end of the one
 * before it. */
static void settle_back(level_iter_t *it)
{
	while (it->cur != NULL && !rk_iter_valid(it->cur)) {
		rk_status_t st = rk_iter_status(it->cur);
		if (st != RK_OK) {
			it->status = st;
			return;
		}
		if (it->idx == 0) {
			rk_iter_free(it->cur);
			it->cur = NULL;
			return;
		}
		if (!open_file(it, it->idx - 1))
			return;
		rk_iter_seek_last(it->cur);
	}
}

static void li_seek_last(rk_iter_t *base)
{
	level_iter_t *it = (level_iter_t *)base;
	if (it->n > 0 && open_file(it, it->n - 1))
		rk_iter_seek_last(it->cur);
	settle_back(it);
}

static void li_prev(rk_iter_t *base)
{
	level_iter_t *it = (level_iter_t *)base;
	rk_iter_prev(it->cur);
	settle_back(it);
}

static void li_seek_first(rk_iter_t *base)
{
	level_iter_t *it = (level_iter_t *)base;
	if (open_file(it, 0))
		rk_iter_seek_first(it->cur);
	settle(it);
}

static void li_seek(rk_iter_t *base, rk_slice_t k)
{
	level_iter_t *it = (level_iter_t *)base;
	if (open_file(it, find_file(it->files, it->n, k)))
		rk_iter_seek(it->cur, k);
	settle(it);
}

static void li_next(rk_iter_t *base)
{
	level_iter_t *it = (level_iter_t *)base;
	rk_iter_next(it->cur);
	settle(it);
}

static bool li_valid(const rk_iter_t *base)
{
	const level_iter_t *it = (const level_iter_t *)base;
	return it->status == RK_OK && it->cur != NULL && rk_iter_valid(it->cur);
}

static rk_slice_t li_key(const rk_iter_t *base)
{
	return rk_iter_key(((const level_iter_t *)base)->cur);
}

static rk_slice_t li_value(const rk_iter_t *base)
{
	return rk_iter_value(((const level_iter_t *)base)->cur);
}

static rk_status_t li_status(const rk_iter_t *base)
{
	return ((const level_iter_t *)base)->status;
}

static void li_free(rk_iter_t *base)
{
	level_iter_t *it = (level_iter_t *)base;
	rk_iter_free(it->cur);
	for (size_t i = 0; i < it->n; i++)
		rk_file_unref(it->files[i]);
	free(it->files);
	free(it);
}

static const rk_iter_ops_t level_ops = {
    .seek_first = li_seek_first,
    .seek = li_seek,
    .next = li_next,
    .seek_last = li_seek_last,
    .prev = li_prev,
    .valid = li_valid,
    .key = li_key,
    .value = li_value,
    .status = li_status,
    .free = li_free,
};

rk_iter_t *rk_level_iter(rk_file_t **files, size_t n, bool fill_cache)
{
	level_iter_t *it = calloc(1, sizeof(*it));
	if (it == NULL)
		return NULL;
	it->files = malloc((n ? n : 1) * sizeof(rk_file_t *));
	if (it->files == NULL) {
		free(it);
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		rk_file_ref(files[i]);
		it->files[i] = files[i];
	}
	it->base.ops = &level_ops;
	it->n = n;
	it->fill_cache = fill_cache;
	return &it->base;
}

size_t rk_version_iters(rk_version_t *v, rk_iter_t **iters, bool fill_cache)
{
	size_t k = 0;
	for (size_t i = 0; i < v->n[0]; i++) {
		rk_iter_t *it = rk_level_iter(&v->files[0][i], 1, fill_cache);
		iters[k++] = it ? it : rk_iter_empty(RK_RESOURCE_EXHAUSTED);
	}
	for (int l = 1; l < RK_LSM_LEVELS; l++) {
		if (v->n[l] == 0)
			continue;
		rk_iter_t *it = rk_level_iter(v->files[l], v->n[l], fill_cache);
		iters[k++] = it ? it : rk_iter_empty(RK_RESOURCE_EXHAUSTED);
	}
	return k;
}

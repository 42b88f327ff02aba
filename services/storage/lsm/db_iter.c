/*
 * The user-facing iterator: a consistent snapshot of the whole database.
 *
 * At creation it pins mem, imm and the current version (so nothing it
 * reads can be freed or unlinked), records the last sequence as its
 * snapshot and registers it with the database, so compaction keeps every
 * version the snapshot can see. Under it sits a merging iterator over all
 * sources in internal-key order; this layer skips entries newer than the
 * snapshot, shows only the newest remaining version of each user key, and
 * hides keys whose newest version is a tombstone.
 *
 * Backward (LevelDB's DBIter scheme): the versions of a user key come
 * newest first, so going back meets the oldest first. The iterator walks
 * back over all of a key's versions, keeping a copy of the newest visible
 * one, and stops on the first entry of a smaller key; the current key and
 * value are then those copies (`skip` and `val`), and the merge sits just
 * before the current key's entries.
 */
#include "db.h"

#include <stdlib.h>
#include <string.h>

#include "core/log.h"

struct rk_lsm_iter {
	rk_lsm_t *db;       /* borrowed; must outlive the iterator */
	rk_iter_t *in;      /* merge of every source, owned */
	uint64_t seq;       /* snapshot */
	bool valid;         /* positioned on a visible entry */
	uint8_t *skip;      /* user key being skipped, owned */
	size_t skip_len;    /* its length */
	size_t skip_cap;    /* allocated */
	bool backward;      /* after a prev: key in skip, value in val */
	uint8_t *val;       /* the current value when backward, owned */
	size_t val_len;     /* its length */
	size_t val_cap;     /* allocated */
	rk_status_t status; /* allocation failures of this layer */
};

static bool save_skip(rk_lsm_iter_t *it, rk_slice_t uk)
{
	if (uk.n > it->skip_cap) {
		uint8_t *p = realloc(it->skip, uk.n * 2 + 16);
		if (p == NULL) {
			it->status = RK_RESOURCE_EXHAUSTED;
			return false;
		}
		it->skip = p;
		it->skip_cap = uk.n * 2 + 16;
	}
	if (uk.n)
		memcpy(it->skip, uk.p, uk.n);
	it->skip_len = uk.n;
	return true;
}

static bool save_val(rk_lsm_iter_t *it, rk_slice_t v)
{
	if (v.n > it->val_cap) {
		uint8_t *p = realloc(it->val, v.n);
		if (p == NULL) {
			it->status = RK_RESOURCE_EXHAUSTED;
			return false;
		}
		it->val = p;
		it->val_cap = v.n;
	}
	if (v.n)
		memcpy(it->val, v.p, v.n);
	it->val_len = v.n;
	return true;
}

/* Moves IN back to just before the entries of the previous visible key,
 * copying that key and its newest visible value (see the top). */
static void find_prev(rk_lsm_iter_t *it)
{
	int type = RK_TYPE_DELETE; /* nothing held yet */
	while (rk_iter_valid(it->in)) {
		rk_slice_t ik = rk_iter_key(it->in);
		uint64_t tr = rk_ikey_trailer(ik);
		if ((tr >> 8) <= it->seq) {
			rk_slice_t uk = rk_ikey_user(ik);
			if (type != RK_TYPE_DELETE &&
			    rk_bytes_cmp(uk.p, uk.n, it->skip, it->skip_len) < 0)
				break; /* a smaller key: the held one is it */
			type = (int)(tr & 0xff);
			if (type != RK_TYPE_DELETE &&
			    (!save_skip(it, uk) ||
			     !save_val(it, rk_iter_value(it->in)))) {
				it->valid = false;
				return;
			}
		}
		rk_iter_prev(it->in);
	}
	it->valid = type != RK_TYPE_DELETE;
}

/* Moves IN to the next visible entry; SKIPPING hides it->skip's key. */
static void find_next(rk_lsm_iter_t *it, bool skipping)
{
	it->valid = false;
	while (rk_iter_valid(it->in)) {
		rk_slice_t ik = rk_iter_key(it->in);
		uint64_t tr = rk_ikey_trailer(ik);
		rk_slice_t uk = rk_ikey_user(ik);
		if ((tr >> 8) > it->seq) {
			rk_iter_next(it->in);
			continue;
		}
		if (skipping &&
		    rk_bytes_cmp(uk.p, uk.n, it->skip, it->skip_len) <= 0) {
			rk_iter_next(it->in);
			continue;
		}
		if ((tr & 0xff) == RK_TYPE_DELETE) {
			if (!save_skip(it, uk))
				return;
			skipping = true;
			rk_iter_next(it->in);
			continue;
		}
		it->valid = true;
		return;
	}
}

rk_status_t rk_lsm_iter_new(rk_lsm_t *db, rk_lsm_iter_t **out)
{
	if (db == NULL || out == NULL)
		return RK_INVALID_ARGUMENT;
	rk_lsm_iter_t *it = calloc(1, sizeof(*it));
	if (it == NULL)
		return RK_RESOURCE_EXHAUSTED;
	it->db = db;
	pthread_mutex_lock(&db->mu);
	if (db->nsnaps == db->snaps_cap) {
		size_t cap = db->snaps_cap ? db->snaps_cap * 2 : 8;
		uint64_t *s = realloc(db->snaps, cap * sizeof(*s));
		if (s == NULL) {
			pthread_mutex_unlock(&db->mu);
			free(it);
			return RK_RESOURCE_EXHAUSTED;
		}
		db->snaps = s;
		db->snaps_cap = cap;
	}
	it->seq = atomic_load(&db->last_seq);
	db->snaps[db->nsnaps++] = it->seq;
	size_t cap = 2 + db->current->n[0] + RK_LSM_LEVELS;
	rk_iter_t **kids = malloc(cap * sizeof(*kids));
	size_t n = 0;
	if (kids != NULL) {
		kids[n++] = rk_memtable_iter(db->mem);
		if (db->imm != NULL)
			kids[n++] = rk_memtable_iter(db->imm);
		n += rk_version_iters(db->current, kids + n,
		                       db->o.scan_fill_cache != 0);
	}
	pthread_mutex_unlock(&db->mu);
	bool ok = kids != NULL;
	for (size_t i = 0; i < n; i++)
		ok &= kids[i] != NULL;
	if (ok) {
		it->in = rk_iter_merging(kids, n);
	} else {
		for (size_t i = 0; i < n; i++)
			rk_iter_free(kids[i]);
	}
	free(kids);
	if (it->in == NULL) {
		rk_lsm_iter_free(it);
		return RK_RESOURCE_EXHAUSTED;
	}
	*out = it;
	return RK_OK;
}

void rk_lsm_iter_seek_first(rk_lsm_iter_t *it)
{
	it->backward = false;
	rk_iter_seek_first(it->in);
	find_next(it, false);
}

void rk_lsm_iter_seek(rk_lsm_iter_t *it, const void *key, size_t klen)
{
	uint8_t *buf = malloc(klen + RK_IKEY_TRAILER);
	if (buf == NULL) {
		it->status = RK_RESOURCE_EXHAUSTED;
		it->valid = false;
		return;
	}
	size_t n = rk_ikey_make(buf, key, klen, it->seq, RK_TYPE_VALUE);
	it->backward = false;
	rk_iter_seek(it->in, rk_slice(buf, n));
	free(buf);
	find_next(it, false);
}

int rk_lsm_iter_valid(const rk_lsm_iter_t *it)
{
	return it->valid;
}

void rk_lsm_iter_seek_last(rk_lsm_iter_t *it)
{
	it->backward = true;
	rk_iter_seek_last(it->in);
	find_prev(it);
}

void rk_lsm_iter_prev(rk_lsm_iter_t *it)
{
	if (!it->valid)
		return;
	if (!it->backward) {
		/* Step back over the current key's entries, newer invisible
		 * ones included, to just before them. */
		rk_slice_t uk = rk_ikey_user(rk_iter_key(it->in));
		if (!save_skip(it, uk)) {
			it->valid = false;
			return;
		}
		do {
			rk_iter_prev(it->in);
			if (!rk_iter_valid(it->in))
				break;
			uk = rk_ikey_user(rk_iter_key(it->in));
		} while (rk_bytes_cmp(uk.p, uk.n, it->skip, it->skip_len) == 0);
		it->backward = true;
	}
	find_prev(it);
}

void rk_lsm_iter_next(rk_lsm_iter_t *it)
{
	if (!it->valid)
		return;
	if (it->backward) {
		/* The merge is just before the current key's entries (or
		 * before everything): step onto them and past them. */
		it->backward = false;
		if (rk_iter_valid(it->in))
			rk_iter_next(it->in);
		else
			rk_iter_seek_first(it->in);
		find_next(it, true);
		return;
	}
	if (!save_skip(it, rk_ikey_user(rk_iter_key(it->in)))) {
		it->valid = false;
		return;
	}
	rk_iter_next(it->in);
	find_next(it, true);
}

const void *rk_lsm_iter_key(const rk_lsm_iter_t *it, size_t *klen)
{
	if (it->backward) {
		*klen = it->skip_len;
		return it->skip;
	}
	rk_slice_t uk = rk_ikey_user(rk_iter_key(it->in));
	*klen = uk.n;
	return uk.p;
}

const void *rk_lsm_iter_value(const rk_lsm_iter_t *it, size_t *vlen)
{
	if (it->backward) {
		*vlen = it->val_len;
		return it->val;
	}
	rk_slice_t v = rk_iter_value(it->in);
	*vlen = v.n;
	return v.p;
}

rk_status_t rk_lsm_iter_status(const rk_lsm_iter_t *it)
{
	if (it->status != RK_OK)
		return it->status;
	return rk_iter_status(it->in);
}

void rk_lsm_iter_free(rk_lsm_iter_t *it)
{
	if (it == NULL)
		return;
	rk_iter_free(it->in);
	rk_lsm_t *db = it->db;
	pthread_mutex_lock(&db->mu);
	for (size_t i = 0; i < db->nsnaps; i++) {
		if (db->snaps[i] == it->seq) {
			db->snaps[i] = db->snaps[--db->nsnaps];
			break;
		}
	}
	pthread_mutex_unlock(&db->mu);
	free(it->skip);
	free(it->val);
	free(it);
}

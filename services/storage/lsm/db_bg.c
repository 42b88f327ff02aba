/*
 * Background work: flushing the immutable memtable and leveled compaction
 * (docs/lsm-recovery-and-compaction.md).
 *
 * One task on a one-thread workpool does all of it, so versions and the
 * manifest have a single writer. The task loops: flush if there is an
 * immutable memtable, else run the most urgent compaction, until nothing
 * is due. A long compaction checks for a memtable to flush between output
 * tables, so writers never wait behind a whole compaction.
 *
 * Compaction merges its inputs in internal-key order and keeps, per user
 * key, the newest version plus any version a live snapshot can still see.
 * A tombstone goes only when no snapshot needs it, its GC grace has passed
 * and no deeper level could hold an older value for the key.
 */
#include "db.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"
#include "manifest.h"

typedef struct compaction {
	int level;         /* inputs from level and level + 1 */
	rk_file_t **in[2]; /* referenced */
	size_t n[2];       /* counts */
	bool manual;       /* always rewrite (no trivial move) */
} compaction_t;

static void compaction_free(compaction_t *c)
{
	for (int i = 0; i < 2; i++) {
		for (size_t j = 0; j < c->n[i]; j++)
			rk_file_unref(c->in[i][j]);
		free(c->in[i]);
	}
}

static uint64_t level_max_bytes(const rk_lsm_t *db, int level)
{
	uint64_t m = db->o.level1_max_bytes;
	for (int l = 1; l < level; l++)
		m *= 10;
	return m;
}

static uint64_t level_bytes(const rk_version_t *v, int level)
{
	uint64_t b = 0;
	for (size_t i = 0; i < v->n[level]; i++)
		b += v->files[level][i]->size;
	return b;
}

/* The level most over its budget, or -1. */
static int pick_level(const rk_lsm_t *db)
{
	const rk_version_t *v = db->current;
	double best = 1.0;
	int lvl = -1;
	double s0 = (double)v->n[0] / db->o.l0_compaction_trigger;
	if (s0 >= best) {
		best = s0;
		lvl = 0;
	}
	for (int l = 1; l < RK_LSM_LEVELS - 1; l++) {
		double s =
		    (double)level_bytes(v, l) / (double)level_max_bytes(db, l);
		if (s > best) {
			best = s;
			lvl = l;
		}
	}
	return lvl;
}

/* The level of the table lookups found worth compacting, handing the
 * table (one reference) to *SEED; -1 if there is none or it is gone from
 * the current version (mu held). */
static int take_seek_file(rk_lsm_t *db, rk_file_t **seed)
{
	rk_file_t *f = db->seek_file;
	int level = db->seek_level;
	db->seek_file = NULL;
	*seed = NULL;
	if (f == NULL)
		return -1;
	const rk_version_t *v = db->current;
	for (size_t i = 0; i < v->n[level]; i++)
		if (v->files[level][i] == f) {
			*seed = f;
			return level;
		}
	rk_file_unref(f);
	return -1;
}

void rk_db_maybe_schedule(rk_lsm_t *db)
{
	if (db->bg_running || db->shutting_down || db->bg_error != RK_OK)
		return;
	if (db->imm == NULL && pick_level(db) < 0 && db->seek_file == NULL)
		return;
	db->bg_running = true;
	if (rk_workpool_submit(db->pool, &db->bg_task) != RK_OK)
		db->bg_running = false;
}

/* Finishes builder B as table NUMBER and makes its file (*OUT, one
 * reference). The builder is done either way (abandoned on error). */
static rk_status_t finish_table(rk_lsm_t *db, rk_table_builder_t *b,
                                uint64_t number, rk_file_t **out)
{
	*out = NULL;
	uint64_t entries = b->entries, size;
	size_t sn = b->first_len, ln = b->last_len;
	uint8_t *sc = malloc(sn), *lc = malloc(ln);
	rk_status_t st = RK_RESOURCE_EXHAUSTED;
	if (sc == NULL || lc == NULL) {
		rk_table_builder_abandon(b);
		goto out;
	}
	memcpy(sc, b->first, sn); /* finish frees the builder's copies */
	memcpy(lc, b->last, ln);
	st = rk_table_builder_finish(b, &size);
	if (st == RK_OK) {
		*out = rk_file_new(db->dir, db->cache, number, size, entries,
		                   rk_slice(sc, sn), rk_slice(lc, ln));
		if (*out == NULL)
			st = RK_RESOURCE_EXHAUSTED;
	}
out:
	free(sc);
	free(lc);
	return st;
}

rk_status_t rk_db_build_table(rk_lsm_t *db, rk_iter_t *it, uint64_t number,
                              rk_file_t **out)
{
	*out = NULL;
	rk_iter_seek_first(it);
	if (!rk_iter_valid(it))
		return rk_iter_status(it);
	char path[4096];
	rk_lsm_file_name(path, sizeof(path), db->dir, number, "sst");
	rk_table_builder_t b;
	rk_status_t st =
	    rk_table_builder_open(&b, path, db->o.block_size, db->o.compression,
	                          db->o.bloom_bits_per_key);
	if (st != RK_OK)
		return st;
	for (; rk_iter_valid(it) && st == RK_OK; rk_iter_next(it))
		st = rk_table_builder_add(&b, rk_iter_key(it),
		                          rk_iter_value(it));
	if (st == RK_OK)
		st = rk_iter_status(it);
	if (st != RK_OK) {
		rk_table_builder_abandon(&b);
		return st;
	}
	return finish_table(db, &b, number, out);
}

rk_status_t rk_db_log_version(rk_lsm_t *db, rk_version_t *v,
                              uint64_t log_number)
{
	rk_manifest_t m = {
	    .next_file = db->next_file,
	    .last_seq = atomic_load(&db->last_seq),
	    .log_number = log_number,
	    .version = v,
	};
	char err[256];
	pthread_mutex_unlock(&db->mu);
	rk_status_t st = rk_manifest_write(db->dir, &m, err, sizeof(err));
	pthread_mutex_lock(&db->mu);
	if (st != RK_OK)
		rk_error("lsm: %s", err);
	return st;
}

/* The oldest log whose writes are not all in tables yet (mu held). */
static uint64_t live_log(const rk_lsm_t *db)
{
	return db->imm != NULL ? db->imm_log : db->wal->number;
}

/* Applies EDIT and installs it with LOG_NUMBER (mu held). */
static rk_status_t install(rk_lsm_t *db, rk_edit_t *e, uint64_t log_number)
{
	rk_version_t *v = rk_version_apply(db->current, e);
	if (v == NULL)
		return RK_RESOURCE_EXHAUSTED;
	rk_status_t st = rk_db_log_version(db, v, log_number);
	if (st != RK_OK) {
		for (size_t i = 0; i < e->nadd; i++) /* not named anywhere */
			__atomic_store_n(&e->add[i]->obsolete, true,
			                 __ATOMIC_RELEASE);
		rk_version_unref(v);
		return st;
	}
	for (size_t i = 0; i < e->ndel; i++) {
		const rk_version_t *c = db->current;
		int l = e->del_levels[i];
		for (size_t j = 0; j < c->n[l]; j++)
			if (c->files[l][j]->number == e->del_numbers[i])
				__atomic_store_n(&c->files[l][j]->obsolete,
				                 true, __ATOMIC_RELEASE);
	}
	rk_version_unref(db->current);
	db->current = v;
	return RK_OK;
}

/* Writes imm to a level-0 table (mu held; released during I/O). */
static rk_status_t flush_imm(rk_lsm_t *db)
{
	rk_memtable_t *imm = db->imm;
	uint64_t number = db->next_file++;
	uint64_t imm_log = db->imm_log;
	uint64_t log_number = db->wal->number;
	pthread_mutex_unlock(&db->mu);
	rk_file_t *f = NULL;
	rk_iter_t *it = rk_memtable_iter(imm);
	rk_status_t st =
	    it ? rk_db_build_table(db, it, number, &f) : RK_RESOURCE_EXHAUSTED;
	rk_iter_free(it);
	pthread_mutex_lock(&db->mu);
	rk_edit_t e;
	rk_edit_init(&e);
	if (st == RK_OK && f != NULL)
		st = rk_edit_add(&e, 0, f);
	if (st == RK_OK)
		st = install(db, &e, log_number);
	if (st == RK_OK) {
		db->imm = NULL;
		rk_memtable_unref(imm);
		char path[4096];
		rk_lsm_file_name(path, sizeof(path), db->dir, imm_log, "log");
		unlink(path);
		db->st.flushes++;
		db->st.flush_bytes += f ? f->size : 0;
	} else if (f != NULL) {
		__atomic_store_n(&f->obsolete, true, __ATOMIC_RELEASE);
	}
	rk_file_unref(f);
	rk_edit_fini(&e);
	pthread_cond_broadcast(&db->bg_cv);
	return st;
}

static rk_status_t add_input(compaction_t *c, int which, rk_file_t *f)
{
	rk_file_t **a = realloc(c->in[which], (c->n[which] + 1) * sizeof(*a));
	if (a == NULL)
		return RK_RESOURCE_EXHAUSTED;
	c->in[which] = a;
	rk_file_ref(f);
	a[c->n[which]++] = f;
	return RK_OK;
}

static int ucmp(rk_slice_t a, rk_slice_t b)
{
	return rk_bytes_cmp(a.p, a.n, b.p, b.n);
}

/* User-key range of inputs WHICH. */
static void range(const compaction_t *c, int which, rk_slice_t *lo,
                  rk_slice_t *hi)
{
	for (size_t i = 0; i < c->n[which]; i++) {
		rk_slice_t s = rk_ikey_user(rk_file_smallest(c->in[which][i]));
		rk_slice_t l = rk_ikey_user(rk_file_largest(c->in[which][i]));
		if (i == 0 || ucmp(s, *lo) < 0)
			*lo = s;
		if (i == 0 || ucmp(l, *hi) > 0)
			*hi = l;
	}
}

static bool overlaps(const rk_file_t *f, rk_slice_t lo, rk_slice_t hi)
{
	return ucmp(rk_ikey_user(rk_file_largest(f)), lo) >= 0 &&
	       ucmp(rk_ikey_user(rk_file_smallest(f)), hi) <= 0;
}

/* Fills C for LEVEL: all of it when ALL, else the usual pick (mu held). */
/* Chooses the inputs of a compaction of LEVEL: every table (ALL), SEED
 * and what overlaps it, or the level's next table in turn. */
static rk_status_t pick(rk_lsm_t *db, int level, bool all, rk_file_t *seed,
                        compaction_t *c)
{
	const rk_version_t *v = db->current;
	memset(c, 0, sizeof(*c));
	c->level = level;
	c->manual = all;
	rk_status_t st = RK_OK;
	if (all) {
		for (size_t i = 0; i < v->n[level] && st == RK_OK; i++)
			st = add_input(c, 0, v->files[level][i]);
	} else if (level == 0) {
		/* The oldest L0 table (or the seed) and every L0 table
		 * overlapping the growing range, until it stops growing. */
		st = add_input(c, 0, seed ? seed : v->files[0][v->n[0] - 1]);
		bool grew = true;
		while (grew && st == RK_OK) {
			grew = false;
			rk_slice_t lo, hi;
			range(c, 0, &lo, &hi);
			for (size_t i = 0; i < v->n[0] && st == RK_OK; i++) {
				rk_file_t *f = v->files[0][i];
				bool have = false;
				for (size_t j = 0; j < c->n[0]; j++)
					have |= c->in[0][j] == f;
				if (!have && overlaps(f, lo, hi)) {
					st = add_input(c, 0, f);
					grew = true;
				}
			}
		}
	} else if (seed != NULL) {
		st = add_input(c, 0, seed);
	} else {
		size_t i = 0;
		if (db->compact_ptr[level] != NULL) {
			rk_slice_t p = rk_slice(db->compact_ptr[level],
			                        db->compact_ptr_len[level]);
			while (i < v->n[level] &&
			       rk_ikey_cmp(rk_file_largest(v->files[level][i]),
			                   p) <= 0)
				i++;
			if (i == v->n[level])
				i = 0;
		}
		st = add_input(c, 0, v->files[level][i]);
	}
	if (st != RK_OK || c->n[0] == 0)
		return st;
	rk_slice_t lo, hi;
	range(c, 0, &lo, &hi);
	for (size_t i = 0; i < v->n[level + 1] && st == RK_OK; i++)
		if (overlaps(v->files[level + 1][i], lo, hi))
			st = add_input(c, 1, v->files[level + 1][i]);
	return st;
}

/* Merges C into level + 1 (mu held; released during I/O). */
static rk_status_t run(rk_lsm_t *db, compaction_t *c)
{
	int out_level = c->level + 1;
	rk_edit_t e;
	rk_edit_init(&e);
	rk_status_t st = RK_OK;
	for (int w = 0; w < 2; w++)
		for (size_t i = 0; i < c->n[w] && st == RK_OK; i++)
			st = rk_edit_delete(&e, c->level + w,
			                    c->in[w][i]->number);
	if (st != RK_OK)
		goto out;
	if (c->n[0] == 1 && c->n[1] == 0 && !c->manual) { /* trivial move */
		st = rk_edit_add(&e, out_level, c->in[0][0]);
		if (st == RK_OK) {
			/* the same file stays live: do not mark it obsolete */
			e.ndel = 0;
			rk_version_t *v = rk_version_apply(db->current, &e);
			if (v == NULL) {
				st = RK_RESOURCE_EXHAUSTED;
				goto out;
			}
			/* drop the file from its old level in V */
			int l = c->level;
			for (size_t i = 0; i < v->n[l]; i++) {
				if (v->files[l][i] == c->in[0][0]) {
					rk_file_unref(v->files[l][i]);
					memmove(&v->files[l][i],
					        &v->files[l][i + 1],
					        (v->n[l] - i - 1) *
					            sizeof(rk_file_t *));
					v->n[l]--;
					break;
				}
			}
			st = rk_db_log_version(db, v, live_log(db));
			if (st == RK_OK) {
				rk_version_unref(db->current);
				db->current = v;
				db->st.trivial_moves++;
				db->st.compactions++;
			} else {
				rk_version_unref(v);
			}
		}
		goto out;
	}

	uint64_t smallest_snap = rk_db_smallest_snapshot(db);
	rk_version_t *base = db->current;
	rk_version_ref(base);
	uint64_t now = rk_clock_unix_ms();
	uint64_t grace = db->o.gc_grace_ms;
	pthread_mutex_unlock(&db->mu);

	size_t nk = c->n[0] + 1;
	rk_iter_t **kids = malloc(nk * sizeof(*kids));
	size_t k = 0;
	uint64_t read_bytes = 0, write_bytes = 0, tomb = 0, dropped = 0;
	if (kids != NULL) {
		if (c->level == 0) {
			for (size_t i = 0; i < c->n[0]; i++)
				kids[k++] =
				    rk_level_iter(&c->in[0][i], 1, false);
		} else {
			kids[k++] = rk_level_iter(c->in[0], c->n[0], false);
		}
		if (c->n[1])
			kids[k++] = rk_level_iter(c->in[1], c->n[1], false);
		for (size_t i = 0; i < k; i++)
			if (kids[i] == NULL)
				st = RK_RESOURCE_EXHAUSTED;
	}
	for (int w = 0; w < 2; w++)
		for (size_t i = 0; i < c->n[w]; i++)
			read_bytes += c->in[w][i]->size;
	rk_iter_t *it = NULL;
	if (kids == NULL || st != RK_OK) {
		for (size_t i = 0; kids && i < k; i++)
			rk_iter_free(kids[i]);
		st = RK_RESOURCE_EXHAUSTED;
	} else {
		it = rk_iter_merging(kids, k);
		if (it == NULL)
			st = RK_RESOURCE_EXHAUSTED;
	}
	free(kids);

	rk_table_builder_t b;
	bool open = false;
	uint64_t number = 0;
	uint8_t *cur_key = NULL; /* current user key */
	size_t cur_len = 0, cur_cap = 0;
	bool has_cur = false;
	uint64_t last_seq_for_key = 0;
	if (it != NULL)
		rk_iter_seek_first(it);
	while (st == RK_OK && it != NULL && rk_iter_valid(it)) {
		rk_slice_t ik = rk_iter_key(it);
		rk_slice_t uk = rk_ikey_user(ik);
		uint64_t tr = rk_ikey_trailer(ik);
		uint64_t seq = tr >> 8;
		int type = (int)(tr & 0xff);
		bool new_key =
		    !has_cur || ucmp(uk, rk_slice(cur_key, cur_len)) != 0;
		if (new_key) {
			if (uk.n > cur_cap) {
				uint8_t *nk2 = realloc(cur_key, uk.n * 2 + 16);
				if (nk2 == NULL) {
					st = RK_RESOURCE_EXHAUSTED;
					break;
				}
				cur_key = nk2;
				cur_cap = uk.n * 2 + 16;
			}
			memcpy(cur_key, uk.p, uk.n);
			cur_len = uk.n;
			has_cur = true;
			last_seq_for_key = UINT64_MAX;
		}
		bool drop = false;
		if (last_seq_for_key <= smallest_snap) {
			drop = true; /* hidden by a newer version all can see */
			dropped++;
		} else if (type == RK_TYPE_DELETE && seq <= smallest_snap) {
			rk_slice_t v = rk_iter_value(it);
			uint64_t ts = v.n == 8 ? rk_get_u64(v.p) : UINT64_MAX;
			bool base_level = true;
			for (int l = out_level + 1;
			     l < RK_LSM_LEVELS && base_level; l++)
				base_level =
				    !rk_version_overlaps(base, l, uk, uk);
			if (ts != UINT64_MAX && ts <= now &&
			    now - ts >= grace && base_level) {
				drop = true;
				tomb++;
			}
		}
		last_seq_for_key = seq;
		if (!drop) {
			if (open && new_key &&
			    rk_table_builder_size(&b) >=
			        db->o.target_file_size) {
				/* finish this output at a user-key boundary */
				rk_file_t *f;
				open = false;
				st = finish_table(db, &b, number, &f);
				if (st == RK_OK) {
					write_bytes += f->size;
					st = rk_edit_add(&e, out_level, f);
				}
				rk_file_unref(f);
				if (st != RK_OK)
					break;
				/* let a waiting memtable out before going on */
				pthread_mutex_lock(&db->mu);
				if (db->imm != NULL)
					st = flush_imm(db);
				pthread_mutex_unlock(&db->mu);
				if (st != RK_OK)
					break;
			}
			if (!open) {
				pthread_mutex_lock(&db->mu);
				number = db->next_file++;
				pthread_mutex_unlock(&db->mu);
				char path[4096];
				rk_lsm_file_name(path, sizeof(path), db->dir,
				                 number, "sst");
				st = rk_table_builder_open(
				    &b, path, db->o.block_size,
				    db->o.compression,
				    db->o.bloom_bits_per_key);
				if (st != RK_OK)
					break;
				open = true;
			}
			st = rk_table_builder_add(&b, ik, rk_iter_value(it));
		}
		if (st == RK_OK)
			rk_iter_next(it);
	}
	if (st == RK_OK && it != NULL)
		st = rk_iter_status(it);
	if (open && st == RK_OK) {
		rk_file_t *f;
		st = finish_table(db, &b, number, &f);
		if (st == RK_OK) {
			write_bytes += f->size;
			st = rk_edit_add(&e, out_level, f);
		}
		rk_file_unref(f);
	} else if (open) {
		rk_table_builder_abandon(&b);
	}
	free(cur_key);
	rk_iter_free(it);
	rk_version_unref(base);

	pthread_mutex_lock(&db->mu);
	if (st == RK_OK)
		st = install(db, &e, live_log(db));
	if (st == RK_OK) {
		db->st.compactions++;
		db->st.compact_read_bytes += read_bytes;
		db->st.compact_write_bytes += write_bytes;
		db->st.tombstones_dropped += tomb;
		db->st.versions_dropped += dropped;
	} else {
		for (size_t i = 0; i < e.nadd; i++)
			__atomic_store_n(&e.add[i]->obsolete, true,
			                 __ATOMIC_RELEASE);
	}
out:
	if (st == RK_OK && c->level > 0 && c->n[0] > 0) {
		rk_slice_t l = rk_file_largest(c->in[0][c->n[0] - 1]);
		uint8_t *p = realloc(db->compact_ptr[c->level], l.n);
		if (p != NULL) {
			memcpy(p, l.p, l.n);
			db->compact_ptr[c->level] = p;
			db->compact_ptr_len[c->level] = l.n;
		}
	}
	rk_edit_fini(&e);
	return st;
}

static void bg_main(rk_task_t *task)
{
	rk_lsm_t *db = (rk_lsm_t *)((char *)task - offsetof(rk_lsm_t, bg_task));
	pthread_mutex_lock(&db->mu);
	while (!db->shutting_down && db->bg_error == RK_OK) {
		rk_status_t st;
		if (db->imm != NULL) {
			st = flush_imm(db);
		} else {
			rk_file_t *seed = NULL;
			int level = pick_level(db);
			if (level < 0) /* sizes are fine: lookups may not be */
				level = take_seek_file(db, &seed);
			if (level < 0)
				break;
			compaction_t c;
			st = pick(db, level, false, seed, &c);
			rk_file_unref(seed); /* pick took its own reference */
			if (st == RK_OK) {
				if (seed != NULL)
					db->st.seek_compactions++;
				st = run(db, &c);
			}
			compaction_free(&c);
		}
		if (st != RK_OK) {
			rk_error("lsm: background work failed (%s); writes "
			         "stop until the database is reopened",
			         rk_status_name(st));
			db->bg_error = st;
		}
		pthread_cond_broadcast(&db->bg_cv);
	}
	db->bg_running = false;
	pthread_cond_broadcast(&db->bg_cv);
	pthread_mutex_unlock(&db->mu);
}

void rk_db_bg_init(rk_lsm_t *db);
void rk_db_bg_init(rk_lsm_t *db)
{
	db->bg_task.fn = bg_main;
}

rk_status_t rk_db_compact_all(rk_lsm_t *db)
{
	while (db->bg_running)
		pthread_cond_wait(&db->bg_cv, &db->mu);
	db->bg_running = true; /* keeps the background task out */
	rk_status_t st = db->bg_error;
	int deepest = 1;
	for (int l = 1; l < RK_LSM_LEVELS; l++)
		if (db->current->n[l] > 0)
			deepest = l;
	/* Push everything into the level below the deepest one in use, so
	 * every table is rewritten and every droppable entry goes. */
	for (int l = 0; l <= deepest && l < RK_LSM_LEVELS - 1 && st == RK_OK;
	     l++) {
		if (db->imm != NULL && (st = flush_imm(db)) != RK_OK)
			break;
		if (db->current->n[l] == 0)
			continue;
		compaction_t c;
		st = pick(db, l, true, NULL, &c);
		if (st == RK_OK)
			st = run(db, &c);
		compaction_free(&c);
	}
	if (st != RK_OK && db->bg_error == RK_OK)
		db->bg_error = st;
	db->bg_running = false;
	pthread_cond_broadcast(&db->bg_cv);
	rk_db_maybe_schedule(db);
	return st;
}

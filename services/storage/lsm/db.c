/*
 * rk_lsm: opening and recovering a database, reads, the public write
 * wrappers, flush/compact, stats and close. The write path is db_write.c,
 * background work db_bg.c, iterators db_iter.c; the rules they follow are
 * docs/lsm-recovery-and-compaction.md.
 *
 * Recovery (rk_lsm_open): lock the directory, read the manifest, replay
 * the logs it still needs into memtables (written out as level-0 tables
 * as they fill and at the end), stop at the first torn or corrupt record,
 * start a new log, install a manifest naming the new tables and the new
 * log, and only then delete the replayed logs and orphaned tables.
 *
 * A read takes mu just long enough to reference mem, imm and the current
 * version and to read the last sequence; the lookups themselves run
 * unlocked against those pinned, immutable (or append-only) structures.
 */
#include "db.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "batch.h"
#include "core/log.h"
#include "manifest.h"

void rk_db_bg_init(rk_lsm_t *db);

void rk_lsm_options_default(rk_lsm_options_t *o)
{
	memset(o, 0, sizeof(*o));
	o->create_if_missing = 1;
	o->paranoid_checks = 0;
	o->sync = RK_LSM_SYNC_BATCH;
	o->sync_period_ms = 100;
	o->write_buffer_size = 4u << 20;
	o->block_size = 4096;
	o->block_cache_bytes = 8u << 20;
	o->compression = 1;
	o->bloom_bits_per_key = 10;
	o->target_file_size = 2u << 20;
	o->level1_max_bytes = 10u << 20;
	o->l0_compaction_trigger = 4;
	o->l0_slowdown_trigger = 8;
	o->l0_stop_trigger = 12;
	o->gc_grace_ms = 10ull * 24 * 3600 * 1000;
	o->max_key_bytes = 65535;
	o->max_value_bytes = 64u << 20;
}

rk_status_t rk_db_new_log(rk_lsm_t *db, uint64_t number, rk_wal_t **out,
                          char *err, size_t errlen)
{
	/* A full memtable leaves about its own bytes of log (a record takes
	 * about the bytes of its memtable entry). */
	rk_status_t st = rk_wal_create(db->dir, number, db->o.write_buffer_size,
	                               out, err, errlen);
	if (st == RK_OK) /* see prefault_ahead() in wal.c */
		(*out)->prefault = db->o.sync == RK_LSM_SYNC_PERIODIC;
	return st;
}

static rk_status_t fail(char *err, size_t errlen, rk_status_t st,
                        const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static rk_status_t fail(char *err, size_t errlen, rk_status_t st,
                        const char *fmt, ...)
{
	if (err != NULL && errlen > 0) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return st;
}

static bool check_options(const rk_lsm_options_t *o)
{
	return o->sync <= RK_LSM_SYNC_PERIODIC &&
	       (o->sync != RK_LSM_SYNC_PERIODIC || o->sync_period_ms > 0) &&
	       o->write_buffer_size >= 4096 && o->block_size >= 256 &&
	       o->block_size <= (16u << 20) && o->bloom_bits_per_key >= 1 &&
	       o->bloom_bits_per_key <= 64 && o->target_file_size >= 4096 &&
	       o->level1_max_bytes >= 4096 && o->l0_compaction_trigger >= 1 &&
	       o->l0_slowdown_trigger >= 1 &&
	       o->l0_stop_trigger > o->l0_slowdown_trigger &&
	       o->max_key_bytes <= 65535 && o->max_value_bytes <= (1u << 29);
}

/* Parses "NNNNNN.ext"; returns true and the number when it matches. */
static bool parse_name(const char *name, const char *ext, uint64_t *num)
{
	char *end;
	errno = 0;
	unsigned long long n = strtoull(name, &end, 10);
	if (end == name || errno != 0 || *end != '.' || strcmp(end + 1, ext))
		return false;
	*num = n;
	return true;
}

typedef struct recovery {
	rk_lsm_t *db;       /* the database being opened */
	rk_memtable_t *mem; /* filling */
	rk_edit_t *edit;    /* tables written so far */
	uint64_t max_seq;   /* newest sequence replayed */
	rk_status_t st;     /* a table write failure */
} recovery_t;

static rk_status_t check_op(void *arg, uint64_t seq, int type, rk_slice_t k,
                            rk_slice_t v)
{
	(void)arg, (void)seq, (void)type, (void)k, (void)v;
	return RK_OK;
}

static rk_status_t replay_op(void *arg, uint64_t seq, int type, rk_slice_t k,
                             rk_slice_t v)
{
	recovery_t *r = arg;
	if (seq > r->max_seq)
		r->max_seq = seq;
	return rk_memtable_add(r->mem, seq, type, k, v);
}

/* Writes R->mem out as a level-0 table and starts a fresh one. */
static rk_status_t recovery_flush(recovery_t *r)
{
	if (rk_memtable_count(r->mem) == 0)
		return RK_OK;
	rk_file_t *f = NULL;
	rk_iter_t *it = rk_memtable_iter(r->mem);
	rk_status_t st =
	    it ? rk_db_build_table(r->db, it, r->db->next_file++, &f)
	       : RK_RESOURCE_EXHAUSTED;
	rk_iter_free(it);
	if (st == RK_OK && f != NULL)
		st = rk_edit_add(r->edit, 0, f);
	if (f != NULL)
		r->db->st.flush_bytes += f->size;
	rk_file_unref(f);
	rk_memtable_unref(r->mem);
	r->mem = NULL;
	if (st == RK_OK)
		st = rk_memtable_new(&r->mem);
	return st;
}

static rk_status_t replay_record(void *arg, const uint8_t *p, size_t n)
{
	recovery_t *r = arg;
	/* Check the whole batch first: all of it goes in or none. */
	rk_status_t st = rk_batch_walk(p, n, check_op, NULL);
	if (st != RK_OK)
		return st;
	st = rk_batch_walk(p, n, replay_op, r);
	if (st == RK_DATA_LOSS)
		st = RK_INTERNAL;
	if (st == RK_OK &&
	    rk_memtable_bytes(r->mem) >= r->db->o.write_buffer_size)
		st = recovery_flush(r);
	return st;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static bool in_version(const rk_version_t *v, uint64_t number)
{
	for (int l = 0; l < RK_LSM_LEVELS; l++)
		for (size_t i = 0; i < v->n[l]; i++)
			if (v->files[l][i]->number == number)
				return true;
	return false;
}

/* Lists DIR: logs >= MIN_LOG (sorted) into *LOGS, the largest file number
 * into *MAX, and whether any .log/.sst exists at all. */
static rk_status_t list_dir(const char *dir, uint64_t min_log, uint64_t **logs,
                            size_t *nlogs, uint64_t *max, bool *any)
{
	DIR *d = opendir(dir);
	if (d == NULL)
		return RK_INTERNAL;
	struct dirent *e;
	size_t cap = 0;
	*logs = NULL;
	*nlogs = 0;
	*max = 0;
	*any = false;
	while ((e = readdir(d)) != NULL) {
		uint64_t n;
		bool is_log = parse_name(e->d_name, "log", &n);
		if (!is_log && !parse_name(e->d_name, "sst", &n))
			continue;
		*any = true;
		if (n > *max)
			*max = n;
		if (!is_log || n < min_log)
			continue;
		if (*nlogs == cap) {
			cap = cap ? cap * 2 : 8;
			uint64_t *p = realloc(*logs, cap * sizeof(*p));
			if (p == NULL) {
				closedir(d);
				return RK_RESOURCE_EXHAUSTED;
			}
			*logs = p;
		}
		(*logs)[(*nlogs)++] = n;
	}
	closedir(d);
	if (*nlogs > 1)
		qsort(*logs, *nlogs, sizeof(uint64_t), cmp_u64);
	return RK_OK;
}

/* Removes logs below LOG_NUMBER and tables V does not name. */
static void remove_obsolete(rk_lsm_t *db, const rk_version_t *v,
                            uint64_t log_number)
{
	DIR *d = opendir(db->dir);
	if (d == NULL)
		return;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		uint64_t n;
		char path[4096];
		if ((parse_name(e->d_name, "log", &n) && n < log_number) ||
		    (parse_name(e->d_name, "sst", &n) && !in_version(v, n))) {
			snprintf(path, sizeof(path), "%s/%s", db->dir,
			         e->d_name);
			unlink(path);
		}
	}
	closedir(d);
}

static rk_status_t recover(rk_lsm_t *db, char *err, size_t errlen)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/MANIFEST.tmp", db->dir);
	unlink(path);
	rk_manifest_t m;
	rk_status_t st = rk_manifest_read(db->dir, db->cache, &m, err, errlen);
	uint64_t *logs = NULL;
	size_t nlogs = 0;
	uint64_t max = 0;
	bool any = false;
	if (st == RK_NOT_FOUND) {
		st = list_dir(db->dir, 0, &logs, &nlogs, &max, &any);
		free(logs);
		logs = NULL;
		if (st != RK_OK)
			return fail(err, errlen, st, "cannot list %s", db->dir);
		if (any)
			return fail(err, errlen, RK_DATA_LOSS,
			            "%s holds tables or logs but no MANIFEST",
			            db->dir);
		if (!db->o.create_if_missing)
			return fail(err, errlen, RK_NOT_FOUND,
			            "no database in %s", db->dir);
		m = (rk_manifest_t){.next_file = 1,
		                    .version = rk_version_new()};
		if (m.version == NULL)
			return RK_RESOURCE_EXHAUSTED;
		st = rk_manifest_write(db->dir, &m, err, errlen);
		if (st != RK_OK) {
			rk_version_unref(m.version);
			return st;
		}
	} else if (st != RK_OK) {
		return st;
	}
	db->current = m.version;
	atomic_store(&db->last_seq, m.last_seq);
	st = list_dir(db->dir, m.log_number, &logs, &nlogs, &max, &any);
	if (st != RK_OK)
		return fail(err, errlen, st, "cannot list %s", db->dir);
	db->next_file = m.next_file > max + 1 ? m.next_file : max + 1;

	rk_edit_t edit;
	rk_edit_init(&edit);
	recovery_t r = {.db = db, .edit = &edit, .max_seq = m.last_seq};
	st = rk_memtable_new(&r.mem);
	bool stopped = false;
	for (size_t i = 0; i < nlogs && st == RK_OK; i++) {
		rk_lsm_file_name(path, sizeof(path), db->dir, logs[i], "log");
		if (stopped) { /* never replay past a hole */
			uint64_t n;
			if (rk_wal_data_bytes(path, &n) == RK_OK)
				db->st.recovery_dropped_bytes += n;
			continue;
		}
		rk_wal_report_t rep;
		st = rk_wal_replay(path, replay_record, &r, &rep);
		db->st.recovery_records += rep.records;
		if (st == RK_OK && rep.dropped_bytes > 0) {
			stopped = true;
			db->st.recovery_dropped_bytes += rep.dropped_bytes;
			char why[300];
			snprintf(why, sizeof(why),
			         "%06" PRIu64 ".log: %s, %" PRIu64
			         " bytes dropped",
			         logs[i], rep.reason, rep.dropped_bytes);
			memcpy(db->st.recovery_drop_reason, why,
			       sizeof(db->st.recovery_drop_reason) - 1);
			rk_warn("lsm: recovery: %s",
			        db->st.recovery_drop_reason);
		}
	}
	free(logs);
	if (st == RK_OK && db->o.paranoid_checks &&
	    db->st.recovery_dropped_bytes > 0)
		st = fail(err, errlen, RK_DATA_LOSS, "commit log damaged: %s",
		          db->st.recovery_drop_reason);
	if (st == RK_OK)
		st = recovery_flush(&r);
	if (r.max_seq > atomic_load(&db->last_seq))
		atomic_store(&db->last_seq, r.max_seq);
	uint64_t log_number = db->next_file++;
	if (st == RK_OK)
		st = rk_db_new_log(db, log_number, &db->wal, err, errlen);
	if (st == RK_OK) {
		rk_version_t *v = rk_version_apply(db->current, &edit);
		if (v == NULL) {
			st = RK_RESOURCE_EXHAUSTED;
		} else {
			rk_manifest_t nm = {db->next_file,
			                    atomic_load(&db->last_seq),
			                    log_number, v};
			st = rk_manifest_write(db->dir, &nm, err, errlen);
			if (st == RK_OK) {
				rk_version_unref(db->current);
				db->current = v;
				remove_obsolete(db, v, log_number);
			} else {
				rk_version_unref(v);
			}
		}
	}
	rk_edit_fini(&edit);
	db->mem = r.mem;
	if (st != RK_OK && err != NULL && errlen > 0 && err[0] == '\0')
		snprintf(err, errlen, "recovery failed: %s",
		         rk_status_name(st));
	return st;
}

rk_status_t rk_lsm_open(const char *dir, const rk_lsm_options_t *o,
                        rk_lsm_t **out, char *err, size_t errlen)
{
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (dir == NULL || o == NULL || out == NULL || !check_options(o))
		return fail(err, errlen, RK_INVALID_ARGUMENT,
		            "bad arguments or options%s", "");
	if (o->create_if_missing && mkdir(dir, 0755) != 0 && errno != EEXIST)
		return fail(err, errlen, RK_INTERNAL, "cannot create %s", dir);
	rk_lsm_t *db = calloc(1, sizeof(*db));
	if (db == NULL)
		return RK_RESOURCE_EXHAUSTED;
	db->o = *o;
	db->lock_fd = -1;
	pthread_mutex_init(&db->mu, NULL);
	pthread_cond_init(&db->bg_cv, NULL);
	pthread_cond_init(&db->sync_cv, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&db->wq_cv, &ca);
	pthread_condattr_destroy(&ca);
	rk_db_bg_init(db);
	rk_status_t st = RK_RESOURCE_EXHAUSTED;
	db->dir = strdup(dir);
	if (db->dir == NULL)
		goto bad;
	char path[4096];
	snprintf(path, sizeof(path), "%s/LOCK", dir);
	db->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (db->lock_fd < 0) {
		st = fail(err, errlen,
		          errno == ENOENT ? RK_NOT_FOUND : RK_INTERNAL,
		          "cannot open %s", path);
		goto bad;
	}
	if (flock(db->lock_fd, LOCK_EX | LOCK_NB) != 0) {
		st = fail(err, errlen, RK_FAILED_PRECONDITION,
		          "%s is in use by another process or handle", dir);
		goto bad;
	}
	if ((st = rk_cache_new(o->block_cache_bytes, &db->cache)) != RK_OK)
		goto bad;
	if ((st = recover(db, err, errlen)) != RK_OK)
		goto bad;
	if ((st = rk_workpool_new(1, &db->pool)) != RK_OK)
		goto bad;
	if (o->sync == RK_LSM_SYNC_PERIODIC) {
		if (pthread_create(&db->syncer, NULL, rk_db_syncer_main, db) !=
		    0) {
			st = RK_RESOURCE_EXHAUSTED;
			goto bad;
		}
		db->syncer_started = true;
	}
	pthread_mutex_lock(&db->mu);
	rk_db_maybe_schedule(db);
	pthread_mutex_unlock(&db->mu);
	*out = db;
	return RK_OK;
bad:
	rk_lsm_close(db);
	return st;
}

void rk_lsm_close(rk_lsm_t *db)
{
	if (db == NULL)
		return;
	pthread_mutex_lock(&db->mu);
	db->shutting_down = true;
	pthread_cond_broadcast(&db->sync_cv);
	while (db->bg_running)
		pthread_cond_wait(&db->bg_cv, &db->mu);
	pthread_mutex_unlock(&db->mu);
	if (db->syncer_started)
		pthread_join(db->syncer, NULL);
	rk_workpool_free(db->pool);
	if (db->wal != NULL && db->o.sync == RK_LSM_SYNC_PERIODIC)
		rk_wal_sync(db->wal);
	rk_wal_unref(db->wal);
	rk_memtable_unref(db->mem);
	rk_memtable_unref(db->imm);
	rk_version_unref(db->current);
	rk_cache_free(db->cache);
	for (int l = 0; l < RK_LSM_LEVELS; l++)
		free(db->compact_ptr[l]);
	rk_file_unref(db->seek_file);
	free(db->snaps);
	if (db->lock_fd >= 0)
		close(db->lock_fd);
	pthread_mutex_destroy(&db->mu);
	pthread_cond_destroy(&db->bg_cv);
	pthread_cond_destroy(&db->sync_cv);
	pthread_cond_destroy(&db->wq_cv);
	free(db->dir);
	free(db);
}

static bool key_ok(const rk_lsm_t *db, const void *key, size_t klen)
{
	return (key != NULL || klen == 0) && klen <= db->o.max_key_bytes;
}

rk_status_t rk_lsm_write(rk_lsm_t *db, rk_lsm_batch_t *b)
{
	if (db == NULL || b == NULL)
		return RK_INVALID_ARGUMENT;
	return rk_db_write(db, b, false);
}

static rk_status_t write_one(rk_lsm_t *db, int type, const void *key,
                             size_t klen, const void *val, size_t vlen)
{
	if (db == NULL || !key_ok(db, key, klen) ||
	    vlen > db->o.max_value_bytes)
		return RK_INVALID_ARGUMENT;
	/* A batch of one on the stack: its buffer is the only allocation. */
	rk_lsm_batch_t b = {0};
	uint8_t small[256];
	size_t need = RK_BATCH_HEADER + 1 + 5 + klen + 5 + vlen + 8;
	b.buf = need <= sizeof(small) ? small : malloc(need);
	if (b.buf == NULL)
		return RK_RESOURCE_EXHAUSTED;
	b.cap = need <= sizeof(small) ? sizeof(small) : need;
	rk_lsm_batch_clear(&b);
	rk_status_t st = type == RK_TYPE_VALUE
	                     ? rk_lsm_batch_put(&b, key, klen, val, vlen)
	                     : rk_lsm_batch_delete(&b, key, klen);
	if (st == RK_OK)
		st = rk_db_write(db, &b, false);
	if (b.buf != small)
		free(b.buf);
	return st;
}

rk_status_t rk_lsm_put(rk_lsm_t *db, const void *key, size_t klen,
                       const void *val, size_t vlen)
{
	if (val == NULL && vlen > 0)
		return RK_INVALID_ARGUMENT;
	return write_one(db, RK_TYPE_VALUE, key, klen, val, vlen);
}

rk_status_t rk_lsm_delete(rk_lsm_t *db, const void *key, size_t klen)
{
	return write_one(db, RK_TYPE_DELETE, key, klen, NULL, 0);
}

rk_status_t rk_lsm_get(rk_lsm_t *db, const void *key, size_t klen, void **val,
                       size_t *vlen)
{
	if (db == NULL || val == NULL || vlen == NULL || !key_ok(db, key, klen))
		return RK_INVALID_ARGUMENT;
	pthread_mutex_lock(&db->mu);
	rk_memtable_t *mem = db->mem, *imm = db->imm;
	rk_version_t *v = db->current;
	rk_memtable_ref(mem);
	if (imm != NULL)
		rk_memtable_ref(imm);
	rk_version_ref(v);
	uint64_t seq = atomic_load(&db->last_seq);
	pthread_mutex_unlock(&db->mu);

	rk_slice_t k = rk_slice(key, klen), found;
	int r = rk_memtable_get(mem, k, seq, &found);
	if (r == 0 && imm != NULL)
		r = rk_memtable_get(imm, k, seq, &found);
	rk_status_t st;
	if (r == RK_TYPE_VALUE + 1) {
		*val = malloc(found.n ? found.n : 1);
		st = *val ? RK_OK : RK_RESOURCE_EXHAUSTED;
		if (st == RK_OK) {
			if (found.n)
				memcpy(*val, found.p, found.n);
			*vlen = found.n;
		}
	} else if (r == RK_TYPE_DELETE + 1) {
		st = RK_NOT_FOUND;
	} else {
		int type;
		uint8_t *v2;
		size_t n2;
		rk_seek_charge_t charge;
		st = rk_version_get(v, k, seq, &type, &v2, &n2, &charge);
		if (charge.file != NULL) {
			pthread_mutex_lock(&db->mu);
			if (db->seek_file == NULL) {
				rk_file_ref(charge.file);
				db->seek_file = charge.file;
				db->seek_level = charge.level;
				rk_db_maybe_schedule(db);
			}
			pthread_mutex_unlock(&db->mu);
		}
		if (st == RK_OK && type == RK_TYPE_DELETE) {
			free(v2);
			st = RK_NOT_FOUND;
		} else if (st == RK_OK) {
			*val = v2;
			*vlen = n2;
		}
	}
	rk_memtable_unref(mem);
	rk_memtable_unref(imm);
	rk_version_unref(v);
	return st;
}

rk_status_t rk_lsm_flush(rk_lsm_t *db)
{
	if (db == NULL)
		return RK_INVALID_ARGUMENT;
	rk_status_t st = rk_db_write(db, NULL, true);
	pthread_mutex_lock(&db->mu);
	while (st == RK_OK && db->imm != NULL && db->bg_error == RK_OK) {
		rk_db_maybe_schedule(db);
		pthread_cond_wait(&db->bg_cv, &db->mu);
	}
	if (st == RK_OK)
		st = db->bg_error;
	pthread_mutex_unlock(&db->mu);
	return st;
}

rk_status_t rk_lsm_compact(rk_lsm_t *db)
{
	rk_status_t st = rk_lsm_flush(db);
	if (st != RK_OK)
		return st;
	pthread_mutex_lock(&db->mu);
	st = rk_db_compact_all(db);
	pthread_mutex_unlock(&db->mu);
	return st;
}

uint64_t rk_db_smallest_snapshot(rk_lsm_t *db)
{
	uint64_t s = atomic_load(&db->last_seq);
	for (size_t i = 0; i < db->nsnaps; i++)
		if (db->snaps[i] < s)
			s = db->snaps[i];
	return s;
}

void rk_lsm_stats(rk_lsm_t *db, rk_lsm_stats_t *out)
{
	pthread_mutex_lock(&db->mu);
	*out = db->st;
	out->background_error = db->bg_error;
	out->last_seq = atomic_load(&db->last_seq);
	uint64_t largest = 0;
	out->table_bytes = 0;
	for (int l = 0; l < RK_LSM_LEVELS; l++) {
		out->level_tables[l] = db->current->n[l];
		out->level_bytes[l] = 0;
		for (size_t i = 0; i < db->current->n[l]; i++)
			out->level_bytes[l] += db->current->files[l][i]->size;
		out->table_bytes += out->level_bytes[l];
		if (out->level_bytes[l] > largest)
			largest = out->level_bytes[l];
	}
	out->memtable_bytes = rk_memtable_bytes(db->mem) +
	                      (db->imm ? rk_memtable_bytes(db->imm) : 0);
	pthread_mutex_unlock(&db->mu);
	out->user_bytes = atomic_load(&db->user_bytes);
	out->log_bytes = atomic_load(&db->log_bytes);
	out->write_amp = out->user_bytes
	                     ? (double)(out->log_bytes + out->flush_bytes +
	                                out->compact_write_bytes) /
	                           (double)out->user_bytes
	                     : 0.0;
	out->space_amp =
	    largest ? (double)out->table_bytes / (double)largest : 0.0;
	rk_cache_counters(db->cache, &out->cache_hits, &out->cache_misses,
	                  &out->cache_bytes);
}

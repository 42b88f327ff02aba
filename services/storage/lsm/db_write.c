/*
 * The write path: group commit, the durability policies, memtable
 * switching and the gradual slowdown (docs/lsm-commit-log.md and
 * docs/lsm-recovery-and-compaction.md).
 *
 * Writers queue on `wq` under mu. The writer at the head is the leader: it
 * makes room (may sleep or wait), takes the batches queued behind it as one
 * group (not under `always`, where every call gets its own fdatasync),
 * numbers them, and then, without mu, appends them to the log with one
 * writev, syncs if the policy says so, and inserts them into the memtable.
 * Only then does it publish the group's last sequence, so a reader's
 * snapshot never sees half a batch, and wake the group. Writers that came
 * during the sync form the next group: that is the group commit.
 */
#include "db.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "batch.h"
#include "core/clock.h"
#include "core/log.h"

#define GROUP_MAX_BYTES (1u << 20)

static rk_status_t insert_op(void *arg, uint64_t seq, int type, rk_slice_t key,
                             rk_slice_t val)
{
	return rk_memtable_add(arg, seq, type, key, val);
}

static void wait_bg(rk_lsm_t *db)
{
	uint64_t t0 = rk_clock_mono_ns();
	pthread_cond_wait(&db->bg_cv, &db->mu);
	db->st.stall_count++;
	db->st.stall_us += (rk_clock_mono_ns() - t0) / 1000;
}

/* Makes sure mem has room (mu held; may release it while waiting). With
 * FORCE, switches to a new memtable if the current one is not empty. */
static rk_status_t make_room(rk_lsm_t *db, bool force)
{
	bool allow_delay = !force;
	for (;;) {
		if (db->bg_error != RK_OK)
			return db->bg_error;
		size_t l0 = db->current->n[0];
		if (allow_delay && l0 >= (size_t)db->o.l0_slowdown_trigger &&
		    l0 < (size_t)db->o.l0_stop_trigger) {
			/* Gradual: the further behind, the longer the pause. */
			uint64_t us =
			    1000 * (l0 - (size_t)db->o.l0_slowdown_trigger + 1);
			pthread_mutex_unlock(&db->mu);
			usleep((useconds_t)us);
			pthread_mutex_lock(&db->mu);
			db->st.slowdown_count++;
			db->st.slowdown_us += us;
			allow_delay = false;
			continue;
		}
		if (!force &&
		    rk_memtable_bytes(db->mem) < db->o.write_buffer_size)
			return RK_OK;
		if (force && rk_memtable_count(db->mem) == 0)
			return RK_OK;
		if (db->imm != NULL || l0 >= (size_t)db->o.l0_stop_trigger) {
			rk_db_maybe_schedule(db);
			wait_bg(db);
			continue;
		}
		rk_memtable_t *m;
		rk_wal_t *w;
		uint64_t number = db->next_file++;
		char err[256];
		rk_status_t st = rk_memtable_new(&m);
		if (st != RK_OK)
			return st;
		st = rk_wal_create(db->dir, number, &w, err, sizeof(err));
		if (st != RK_OK) {
			rk_memtable_unref(m);
			rk_warn("lsm: cannot start a new log: %s", err);
			return st;
		}
		/* The old log must be durable before the new one holds later
		 * writes, or a power cut could leave a hole (periodic mode). */
		if (db->o.sync == RK_LSM_SYNC_PERIODIC &&
		    (st = rk_wal_sync(db->wal)) != RK_OK) {
			db->bg_error = st;
			rk_memtable_unref(m);
			rk_wal_unref(w);
			return st;
		}
		db->imm_log = db->wal->number;
		rk_wal_unref(db->wal);
		db->wal = w;
		db->imm = db->mem;
		db->mem = m;
		force = false;
		rk_db_maybe_schedule(db);
	}
}

static size_t queued(const rk_lsm_t *db)
{
	size_t n = 0;
	for (const rk_writer_t *x = db->wq_head; x != NULL; x = x->next)
		n++;
	return n;
}

/* Group commit window (batch policy, mu held): when the last group shows
 * that several threads write, wait until writers stop arriving for
 * GATHER_QUIET_US (bounded by GATHER_MAX_US) so that one fdatasync covers
 * them all, instead of alternating half-size groups. A lone writer never
 * waits. */
#define GATHER_QUIET_US 100
#define GATHER_MAX_US   2000

static void gather(rk_lsm_t *db)
{
	uint64_t deadline = rk_clock_mono_ns() + GATHER_MAX_US * 1000ull;
	size_t n = queued(db);
	while (rk_clock_mono_ns() < deadline) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		uint64_t ns = (uint64_t)ts.tv_nsec + GATHER_QUIET_US * 1000ull;
		ts.tv_sec += (time_t)(ns / 1000000000u);
		ts.tv_nsec = (long)(ns % 1000000000u);
		pthread_cond_timedwait(&db->wq_cv, &db->mu, &ts);
		size_t m = queued(db);
		if (m == n)
			break; /* quiet: nobody else is coming soon */
		n = m;
	}
}

rk_status_t rk_db_write(rk_lsm_t *db, rk_lsm_batch_t *b, bool force_switch)
{
	if (b != NULL && b->count == 0)
		return RK_OK;
	rk_writer_t w = {.batch = b};
	pthread_cond_init(&w.cv, NULL);
	pthread_mutex_lock(&db->mu);
	if (db->wq_tail != NULL)
		db->wq_tail->next = &w;
	else
		db->wq_head = &w;
	db->wq_tail = &w;
	pthread_cond_signal(&db->wq_cv);
	while (!w.done && db->wq_head != &w)
		pthread_cond_wait(&w.cv, &db->mu);
	if (w.done) {
		pthread_mutex_unlock(&db->mu);
		pthread_cond_destroy(&w.cv);
		return w.status;
	}

	rk_status_t st = make_room(db, force_switch);
	if (st == RK_OK && b != NULL && db->o.sync == RK_LSM_SYNC_BATCH &&
	    db->last_group > 1)
		gather(db);
	rk_writer_t *last = &w;
	if (st == RK_OK && b != NULL) {
		size_t bytes = b->len, n = 1;
		if (db->o.sync != RK_LSM_SYNC_ALWAYS) {
			while (
			    last->next != NULL && last->next->batch != NULL &&
			    bytes + last->next->batch->len <= GROUP_MAX_BYTES) {
				last = last->next;
				bytes += last->batch->len;
				n++;
			}
		}
		db->last_group = n;
		rk_slice_t stackv[64];
		rk_slice_t *v = n <= 64 ? stackv : malloc(n * sizeof(*v));
		uint64_t seq = atomic_load(&db->last_seq) + 1;
		uint64_t ubytes = 0;
		size_t i = 0;
		for (rk_writer_t *x = &w;; x = x->next) {
			rk_put_u64(x->batch->buf, seq);
			seq += x->batch->count;
			ubytes += x->batch->user_bytes;
			if (v != NULL)
				v[i++] = rk_slice(x->batch->buf, x->batch->len);
			if (x == last)
				break;
		}
		rk_wal_t *wal = db->wal;
		rk_memtable_t *mem = db->mem;
		rk_wal_ref(wal);
		rk_memtable_ref(mem);
		pthread_mutex_unlock(&db->mu);

		st = v != NULL ? rk_wal_append(wal, v, n)
		               : RK_RESOURCE_EXHAUSTED;
		bool synced = false;
		if (st == RK_OK && db->o.sync != RK_LSM_SYNC_PERIODIC) {
			st = rk_wal_sync(wal);
			synced = true;
		}
		for (rk_writer_t *x = &w; st == RK_OK; x = x->next) {
			st = rk_batch_walk(x->batch->buf, x->batch->len,
			                   insert_op, mem);
			if (x == last)
				break;
		}
		if (v != stackv)
			free(v);
		rk_memtable_unref(mem);
		rk_wal_unref(wal);
		atomic_fetch_add(&db->user_bytes, ubytes);
		atomic_fetch_add(&db->log_bytes, bytes + 8 * n);

		pthread_mutex_lock(&db->mu);
		if (st == RK_OK) {
			atomic_store(&db->last_seq, seq - 1);
		} else if (synced || st == RK_INTERNAL) {
			/* A failed fdatasync may have lost pages: stop. A
			 * failed memtable insert leaves the log ahead of it. */
			db->bg_error = st;
		}
		db->st.write_groups++;
		if (synced)
			db->st.syncs++;
	}
	for (;;) {
		rk_writer_t *x = db->wq_head;
		db->wq_head = x->next;
		if (db->wq_head == NULL)
			db->wq_tail = NULL;
		if (x != &w) {
			x->status = st;
			x->done = true;
			pthread_cond_signal(&x->cv);
		}
		if (x == last)
			break;
	}
	if (db->wq_head != NULL)
		pthread_cond_signal(&db->wq_head->cv);
	pthread_mutex_unlock(&db->mu);
	pthread_cond_destroy(&w.cv);
	return st;
}

void *rk_db_syncer_main(void *arg)
{
	rk_lsm_t *db = arg;
	pthread_mutex_lock(&db->mu);
	while (!db->shutting_down) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		uint64_t ns = (uint64_t)ts.tv_nsec +
		              (uint64_t)db->o.sync_period_ms * 1000000u;
		ts.tv_sec += (time_t)(ns / 1000000000u);
		ts.tv_nsec = (long)(ns % 1000000000u);
		pthread_cond_timedwait(&db->sync_cv, &db->mu, &ts);
		if (db->shutting_down)
			break;
		rk_wal_t *w = db->wal; /* synced even if clean: cheap */
		if (w == NULL)
			continue;
		rk_wal_ref(w);
		pthread_mutex_unlock(&db->mu);
		rk_status_t st = rk_wal_sync(w);
		rk_wal_unref(w);
		pthread_mutex_lock(&db->mu);
		db->st.syncs++;
		if (st != RK_OK && db->bg_error == RK_OK) {
			rk_error("lsm: periodic fdatasync failed; writes stop");
			db->bg_error = st;
		}
	}
	pthread_mutex_unlock(&db->mu);
	return NULL;
}

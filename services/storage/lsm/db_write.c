/*
 * The write path: group commit, the durability policies, memtable
 * switching and the gradual slowdown (docs/lsm-commit-log.md and
 * docs/lsm-recovery-and-compaction.md).
 *
 * Writers queue on `wq` under mu. The writer at the head is the leader: it
 * makes room (may sleep or wait), takes the batches queued behind it as one
 * group (not under `always`, where every call gets its own fdatasync),
 * numbers them, and then, without mu, copies them into the log, syncs if
 * the policy says so, and inserts them into the memtable.
 * Only then does it publish the group's last sequence, so a reader's
 * snapshot never sees half a batch, and wake the group. Writers that came
 * during the sync form the next group: that is the group commit. Under
 * `batch` the leader first gathers (see gather()) so that a steady set of
 * writers shares one fdatasync instead of taking turns in halves.
 *
 * Followers sleep on a futex on their own rk_writer_t.state, not on db->mu:
 * the leader unlinks its group under mu, drops mu, then hands the lead to
 * the next queued writer and wakes its followers one by one, so waking 8
 * writers costs 8 futex wakes and no convoy on db->mu.
 */
#include "db.h"

#include <errno.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <string.h>
#include <stdlib.h>
#include <sys/syscall.h>
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
		st = rk_db_new_log(db, number, &w, err, sizeof(err));
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

/* A small id per writing thread, for telling group members apart. */
static atomic_uint next_tid = 1;
static _Thread_local unsigned my_tid;

static unsigned thread_id(void)
{
	if (my_tid == 0)
		my_tid = atomic_fetch_add(&next_tid, 1);
	return my_tid;
}

/* Distinct threads in the last two groups (mu held). */
static size_t recent_writers(const rk_lsm_t *db)
{
	size_t n = db->nrecent[0];
	for (size_t j = 0; j < db->nrecent[1]; j++) {
		size_t i = 0;
		while (i < db->nrecent[0] &&
		       db->recent[0][i] != db->recent[1][j])
			i++;
		n += i == db->nrecent[0];
	}
	return n;
}

/* Group commit gathering (batch policy, mu held).
 *
 * A plain writer queue splits a steady set of writers into two halves
 * that take turns: while group A syncs, the others queue up as group B;
 * B's leader starts the moment A is done, before A's writers (just woken)
 * are back, so each fdatasync carries half of them. Instead, the leader
 * waits until as many writers are queued as there were distinct threads
 * in the last two groups (those that are still writing come back within
 * microseconds of being woken), bounded by half of the mean fdatasync time
 * (and GATHER_MAX_US), so that a thread that stopped writing costs at most
 * that once or twice before it drops out of the count. A lone writer
 * never waits. */
#define GATHER_MIN_US 20
#define GATHER_MAX_US 2000

static void gather(rk_lsm_t *db)
{
	size_t want = recent_writers(db);
	if (want <= 1 || db->wq_len >= want)
		return;
	uint64_t us = db->sync_ns / 2000;
	us = us < GATHER_MIN_US   ? GATHER_MIN_US
	     : us > GATHER_MAX_US ? GATHER_MAX_US
	                          : us;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	uint64_t ns = (uint64_t)ts.tv_nsec + us * 1000u;
	ts.tv_sec += (time_t)(ns / 1000000000u);
	ts.tv_nsec = (long)(ns % 1000000000u);
	uint64_t t0 = rk_clock_mono_ns();
	db->gather_want = want;
	while (db->wq_len < want &&
	       pthread_cond_timedwait(&db->wq_cv, &db->mu, &ts) == 0)
		;
	db->gather_want = 0;
	db->st.gather_us += (rk_clock_mono_ns() - t0) / 1000;
}

/* Remembers the thread ids of the group FIRST..LAST (mu held). */
static void remember_group(rk_lsm_t *db, const rk_writer_t *first,
                           const rk_writer_t *last)
{
	memcpy(db->recent[1], db->recent[0], sizeof(db->recent[0]));
	db->nrecent[1] = db->nrecent[0];
	size_t n = 0;
	for (const rk_writer_t *x = first; n < RK_DB_RECENT; x = x->next) {
		db->recent[0][n++] = x->tid;
		if (x == last)
			break;
	}
	db->nrecent[0] = n;
}

/* Tells queued writer X its fate. X may return, and its rk_writer_t
 * vanish, as soon as the store is done; the wake that follows may then
 * land on a word some later futex wait uses, which only costs that waiter
 * a spurious wake-up (every wait re-checks its word in a loop). */
static void set_state(rk_writer_t *x, int state, rk_status_t st)
{
	x->status = st;
	atomic_store_explicit(&x->state, state, memory_order_release);
	syscall(SYS_futex, &x->state, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

rk_status_t rk_db_write(rk_lsm_t *db, rk_lsm_batch_t *b, bool force_switch)
{
	if (b != NULL && b->count == 0)
		return RK_OK;
	rk_writer_t w = {.batch = b, .tid = thread_id()};
	atomic_init(&w.state, RK_WRITER_WAITING);
	pthread_mutex_lock(&db->mu);
	if (db->wq_tail != NULL)
		db->wq_tail->next = &w;
	else
		db->wq_head = &w;
	db->wq_tail = &w;
	if (++db->wq_len == db->gather_want)
		pthread_cond_signal(&db->wq_cv);
	if (db->wq_head != &w) {
		pthread_mutex_unlock(&db->mu);
		int state;
		while ((state = atomic_load_explicit(&w.state,
		                                     memory_order_acquire)) ==
		       RK_WRITER_WAITING)
			syscall(SYS_futex, &w.state, FUTEX_WAIT_PRIVATE,
			        RK_WRITER_WAITING, NULL, NULL, 0);
		if (state == RK_WRITER_DONE)
			return w.status;
		pthread_mutex_lock(&db->mu); /* it leads now */
	}

	rk_status_t st = make_room(db, force_switch);
	if (st == RK_OK && b != NULL && db->o.sync == RK_LSM_SYNC_BATCH)
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
		remember_group(db, &w, last);
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
		uint64_t sync_ns = 0;
		if (st == RK_OK && db->o.sync != RK_LSM_SYNC_PERIODIC) {
			uint64_t t0 = rk_clock_mono_ns();
			st = rk_wal_sync(wal);
			sync_ns = rk_clock_mono_ns() - t0;
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
		if (synced) {
			db->st.syncs++;
			db->st.sync_us += sync_ns / 1000;
			db->sync_ns = db->sync_ns
			                  ? (db->sync_ns * 7 + sync_ns) / 8
			                  : sync_ns;
		}
	}
	/* Unlink the group, then wake its writers and hand the lead on
	 * without db->mu. A woken writer may return at once and its rk_writer_t
	 * vanish, so each link is read before its writer is woken. */
	rk_writer_t *first = db->wq_head;
	db->wq_head = last->next;
	if (db->wq_head == NULL)
		db->wq_tail = NULL;
	for (rk_writer_t *x = first;; x = x->next) {
		db->wq_len--;
		if (x == last)
			break;
	}
	rk_writer_t *next_leader = db->wq_head;
	pthread_mutex_unlock(&db->mu);
	if (next_leader != NULL)
		set_state(next_leader, RK_WRITER_LEADS, RK_OK);
	for (rk_writer_t *x = first->next, *nx; x != NULL && first != last;
	     x = nx) {
		nx = x == last ? NULL : x->next;
		set_state(x, RK_WRITER_DONE, st);
	}
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

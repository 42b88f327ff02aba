/*
 * Frame sealing; see seal.h for the contract and docs/sealing.md for the
 * bytes.
 *
 * Sealing is lock-free: the only shared state it changes is the frame
 * counter, an atomic taken with fetch_add, so every frame gets a counter
 * no other frame of this sealer had, and with the random sender id that
 * makes every nonce unique. The key sits in sodium_malloc'd memory (guard
 * pages, mlock'd so it is never swapped) that is made read-only once
 * written.
 *
 * Opening authenticates first, outside any lock: a frame whose tag fails
 * never touches the replay state, so forgeries cost the receiver only the
 * AEAD. Only a good frame, with check_replay, takes the mutex for the
 * replay decision, which is a clock read, one hash chain walk and a few
 * bit operations.
 *
 * The sender table. RK_SEAL_MAX_SENDERS entries in one array, chained from
 * RK_SEAL_BUCKETS buckets by 1-based index (0 ends a chain, so a calloc'd
 * table is empty). A bucket is chosen by SipHash of the sender id under a
 * per-sealer random key: ids are picked by whoever holds a key, and a
 * keyed hash keeps chains short whatever they pick. Freed entries go on a
 * free list; entries never used yet are taken from `fresh`, so the table's
 * pages are touched only as senders arrive.
 *
 * Per sender, `highest` is the highest counter accepted and `bitmap` marks
 * which of the counters in [highest - RK_SEAL_REPLAY_BITS, highest] were
 * accepted. The bitmap is a ring of RK_SEAL_REPLAY_BITS / 64 + 1 words
 * (RFC 6479): counter c lives in word (c / 64) mod REPLAY_WORDS, bit
 * c mod 64. The window spans exactly REPLAY_WORDS distinct word numbers,
 * so no two counters in it share a bit; moving `highest` up clears the
 * words that come into the window, which is at most REPLAY_WORDS stores
 * however far it moves, and never a shift of the whole bitmap.
 *
 * Forgetting senders. An entry may be dropped once every frame it ever
 * accepted would be refused on its timestamp, so that no replay can slip
 * through the fresh entry made if the sender comes back. That is when the
 * receiver's clock is more than the window past the newest timestamp the
 * entry accepted (`newest_ms`, in the sender's clock: a sender whose clock
 * runs ahead of ours is kept correspondingly longer, which idleness
 * measured on our own clock would not do). Entries are dropped in a sweep
 * of the whole table, run only when it is full and a new sender arrives;
 * a sweep drops every idle entry at once, so its cost is shared by the
 * senders that then fill the space. `sweep_after` is a lower bound on the
 * time the first entry can become idle, so a table full of active senders
 * refuses newcomers without sweeping again and again.
 *
 * The clock is read inside the mutex. Read outside, a thread could check a
 * frame against a stale clock after another thread, with a later clock,
 * dropped its sender; the stale check could then let an old frame in. The
 * design assumes the receiver's wall clock does not step backwards by more
 * than the window; if it does, frames of dropped senders can pass again.
 */
#include "crypto/seal.h"

#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"

#define RK_SEAL_BUCKETS 8192 /* power of two; load at most 0.5 */
#define REPLAY_WORDS    (RK_SEAL_REPLAY_BITS / 64 + 1)

_Static_assert(RK_SEAL_REPLAY_BITS % 64 == 0,
               "the replay ring is made of whole words");
_Static_assert((RK_SEAL_BUCKETS & (RK_SEAL_BUCKETS - 1)) == 0,
               "buckets are chosen by masking");
_Static_assert(RK_SEAL_MAX_SENDERS < UINT32_MAX, "entries are uint32 indices");

/* What the receiver remembers about one sender. */
struct sender {
	uint64_t id;                   /* the sender id from the nonce */
	uint64_t highest;              /* highest counter accepted */
	uint64_t newest_ms;            /* newest unix_ms accepted */
	uint32_t next;                 /* 1 + index of next in chain; 0 ends */
	uint64_t bitmap[REPLAY_WORDS]; /* ring of accepted counters */
};

struct rk_sealer {
	/* Written by every seal: a cache line of its own, so sealing
	 * threads do not also bounce the read-only fields and the lock. */
	_Alignas(64) _Atomic uint64_t counter; /* next counter to seal */

	/* Read-only once made (the clock may change before use, in tests). */
	_Alignas(64) uint8_t *key;    /* sodium_malloc'd, read-only */
	uint64_t sender_id;           /* ours, random per sealer */
	uint64_t window_ms;           /* replay window */
	uint64_t (*clock_fn)(void *); /* unix ms */
	void *clock_arg;              /* passed to clock_fn */
	uint8_t hash_key[crypto_shorthash_KEYBYTES]; /* for bucket choice */

	_Alignas(64) pthread_mutex_t mu; /* guards everything below */
	uint32_t used;                   /* entries in the table */
	uint32_t fresh;                  /* entries ever taken from the array */
	uint32_t free_head;              /* 1 + index of first freed entry */
	uint64_t sweep_after;            /* no entry is idle at or before */
	struct sender *senders;          /* RK_SEAL_MAX_SENDERS entries */
	uint32_t buckets[RK_SEAL_BUCKETS]; /* 1 + index of chain head */
};

static uint64_t wall_clock(void *arg)
{
	(void)arg;
	return rk_clock_unix_ms();
}

static void store_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t load_le64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static uint64_t sat_add(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

rk_status_t rk_sealer_new(const uint8_t key[RK_SEAL_KEY_BYTES],
                          uint32_t window_ms, rk_sealer_t **out)
{
	*out = NULL;
	if (sodium_init() < 0)
		return RK_INTERNAL;
	/* aligned_alloc wants a size that is a multiple of the alignment;
	 * the _Alignas members make sizeof one. */
	rk_sealer_t *s = aligned_alloc(64, sizeof(*s));
	if (s == NULL)
		return RK_RESOURCE_EXHAUSTED;
	memset(s, 0, sizeof(*s));
	s->senders = calloc(RK_SEAL_MAX_SENDERS, sizeof(struct sender));
	s->key = sodium_malloc(RK_SEAL_KEY_BYTES);
	if (s->senders == NULL || s->key == NULL) {
		free(s->senders);
		if (s->key != NULL)
			sodium_free(s->key);
		free(s);
		return RK_RESOURCE_EXHAUSTED;
	}
	memcpy(s->key, key, RK_SEAL_KEY_BYTES);
	sodium_mprotect_readonly(s->key);
	atomic_init(&s->counter, 0);
	randombytes_buf(&s->sender_id, sizeof(s->sender_id));
	randombytes_buf(s->hash_key, sizeof(s->hash_key));
	s->window_ms = window_ms != 0 ? window_ms : RK_SEAL_DEFAULT_WINDOW_MS;
	s->clock_fn = wall_clock;
	s->clock_arg = NULL;
	pthread_mutex_init(&s->mu, NULL);
	*out = s;
	return RK_OK;
}

void rk_sealer_free(rk_sealer_t *s)
{
	if (s == NULL)
		return;
	pthread_mutex_destroy(&s->mu);
	sodium_free(s->key); /* zeroes it */
	free(s->senders);
	free(s);
}

void rk_sealer_set_clock(rk_sealer_t *s, uint64_t (*clock_fn)(void *),
                         void *arg)
{
	s->clock_fn = clock_fn != NULL ? clock_fn : wall_clock;
	s->clock_arg = clock_fn != NULL ? arg : NULL;
}

rk_status_t rk_seal(rk_sealer_t *s, const uint8_t *ad, size_t adlen,
                    const uint8_t *plain, size_t len, uint8_t *out)
{
	if (len > crypto_aead_xchacha20poly1305_ietf_MESSAGEBYTES_MAX ||
	    len > SIZE_MAX - RK_SEAL_OVERHEAD)
		return RK_INVALID_ARGUMENT;
	/* Relaxed is enough: only uniqueness matters, not order. 2^64
	 * frames would take millennia, so the counter never wraps. */
	uint64_t counter =
	    atomic_fetch_add_explicit(&s->counter, 1, memory_order_relaxed);
	store_le64(out, s->sender_id);
	store_le64(out + 8, counter);
	store_le64(out + 16, s->clock_fn(s->clock_arg));
	crypto_aead_xchacha20poly1305_ietf_encrypt(out + RK_SEAL_NONCE_BYTES,
	                                           NULL, plain, len, ad, adlen,
	                                           NULL, out, s->key);
	return RK_OK;
}

static uint32_t bucket_of(const rk_sealer_t *s, const uint8_t id_le[8])
{
	uint8_t h[crypto_shorthash_BYTES];
	crypto_shorthash(h, id_le, 8, s->hash_key);
	return (uint32_t)load_le64(h) & (RK_SEAL_BUCKETS - 1);
}

static struct sender *sender_find(rk_sealer_t *s, uint32_t bucket, uint64_t id)
{
	for (uint32_t i = s->buckets[bucket]; i != 0;
	     i = s->senders[i - 1].next)
		if (s->senders[i - 1].id == id)
			return &s->senders[i - 1];
	return NULL;
}

static bool sender_idle(const rk_sealer_t *s, const struct sender *e,
                        uint64_t now)
{
	return now > e->newest_ms && now - e->newest_ms > s->window_ms;
}

/* Drops every idle sender. True if that made room. */
static bool senders_sweep(rk_sealer_t *s, uint64_t now)
{
	if (now <= s->sweep_after)
		return false; /* nothing can be idle yet */
	uint64_t oldest = UINT64_MAX;
	for (uint32_t b = 0; b < RK_SEAL_BUCKETS; b++) {
		uint32_t *link = &s->buckets[b];
		while (*link != 0) {
			uint32_t i = *link;
			struct sender *e = &s->senders[i - 1];
			if (sender_idle(s, e, now)) {
				*link = e->next;
				e->next = s->free_head;
				s->free_head = i;
				s->used--;
			} else {
				if (e->newest_ms < oldest)
					oldest = e->newest_ms;
				link = &e->next;
			}
		}
	}
	s->sweep_after = sat_add(oldest, s->window_ms);
	return s->used < RK_SEAL_MAX_SENDERS;
}

/* A new, empty entry for ID, or NULL when the table is full of senders
 * that cannot be forgotten yet. */
static struct sender *sender_add(rk_sealer_t *s, uint32_t bucket, uint64_t id,
                                 uint64_t unix_ms, uint64_t now)
{
	if (s->used == RK_SEAL_MAX_SENDERS && !senders_sweep(s, now))
		return NULL;
	uint32_t i;
	if (s->free_head != 0) {
		i = s->free_head;
		s->free_head = s->senders[i - 1].next;
	} else {
		i = ++s->fresh;
	}
	struct sender *e = &s->senders[i - 1];
	memset(e, 0, sizeof(*e));
	e->id = id;
	e->newest_ms = unix_ms;
	e->next = s->buckets[bucket];
	s->buckets[bucket] = i;
	s->used++;
	/* Keep sweep_after a lower bound: this entry may go idle before
	 * every entry the last sweep saw. */
	uint64_t idle_after = sat_add(unix_ms, s->window_ms);
	if (idle_after < s->sweep_after)
		s->sweep_after = idle_after;
	return e;
}

/* Accepts COUNTER from E once: false if it was accepted before or is too
 * old for the bitmap to tell. */
static bool sender_accept(struct sender *e, uint64_t counter)
{
	if (counter > e->highest) {
		uint64_t from = e->highest / 64, to = counter / 64;
		uint64_t n =
		    to - from < REPLAY_WORDS ? to - from : REPLAY_WORDS;
		for (uint64_t w = to - n + 1; n > 0; n--, w++)
			e->bitmap[w % REPLAY_WORDS] = 0;
		e->highest = counter;
	} else if (e->highest - counter > RK_SEAL_REPLAY_BITS) {
		return false;
	}
	uint64_t *word = &e->bitmap[(counter / 64) % REPLAY_WORDS];
	uint64_t bit = (uint64_t)1 << (counter % 64);
	if (*word & bit)
		return false;
	*word |= bit;
	return true;
}

/* The replay decision for an authenticated nonce. */
static rk_status_t replay_check(rk_sealer_t *s, const uint8_t *nonce,
                                const char **why)
{
	uint64_t id = load_le64(nonce);
	uint64_t counter = load_le64(nonce + 8);
	uint64_t unix_ms = load_le64(nonce + 16);
	uint32_t bucket = bucket_of(s, nonce);
	rk_status_t st = RK_OK;

	pthread_mutex_lock(&s->mu);
	uint64_t now = s->clock_fn(s->clock_arg);
	uint64_t skew = now > unix_ms ? now - unix_ms : unix_ms - now;
	if (skew > s->window_ms) {
		*why = "timestamp outside the replay window";
		st = RK_UNAUTHENTICATED;
		goto out;
	}
	struct sender *e = sender_find(s, bucket, id);
	if (e == NULL) {
		e = sender_add(s, bucket, id, unix_ms, now);
		if (e == NULL) {
			*why = "too many senders";
			st = RK_RESOURCE_EXHAUSTED;
			goto out;
		}
		e->highest = counter;
	}
	if (!sender_accept(e, counter)) {
		*why = "replayed frame";
		st = RK_UNAUTHENTICATED;
		goto out;
	}
	if (unix_ms > e->newest_ms)
		e->newest_ms = unix_ms;
out:
	pthread_mutex_unlock(&s->mu);
	return st;
}

rk_status_t rk_open(rk_sealer_t *s, const uint8_t *ad, size_t adlen,
                    const uint8_t *in, size_t len, uint8_t *out,
                    bool check_replay, const char **why)
{
	const char *ignored;
	if (why == NULL)
		why = &ignored;
	*why = NULL;
	if (len < RK_SEAL_OVERHEAD) {
		*why = "frame too short";
		return RK_UNAUTHENTICATED;
	}
	size_t plain_len = len - RK_SEAL_OVERHEAD;
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(
	        out, NULL, NULL, in + RK_SEAL_NONCE_BYTES,
	        len - RK_SEAL_NONCE_BYTES, ad, adlen, in, s->key) != 0) {
		*why = "bad tag or wrong key";
		return RK_UNAUTHENTICATED;
	}
	if (!check_replay)
		return RK_OK;
	rk_status_t st = replay_check(s, in, why);
	/* The plaintext of a refused frame must not be mistaken for a
	 * good one by a caller that ignores the status. */
	if (st != RK_OK && plain_len > 0)
		sodium_memzero(out, plain_len);
	return st;
}

/*
 * Tests of frame sealing (lib/crypto/seal.c).
 *
 * Frames from many senders, or with chosen counters and timestamps, are
 * made here by hand with libsodium from the layout in docs/sealing.md
 * (craft_frame), which also checks that the layout is what the code does.
 * Time is a fake clock set through rk_sealer_set_clock, never a sleep.
 */
#include <pthread.h>
#include <stdbool.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <sodium.h>

#include "crypto/seal.h"

#define T0 1700000000000ull /* a fixed "now" for the fake clock, unix ms */

static const uint8_t test_key[RK_SEAL_KEY_BYTES] = {
    0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a,
    0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15,
    0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f};

static uint64_t fake_clock(void *arg)
{
	return *(const uint64_t *)arg;
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

/* A sealed frame made from the documented layout alone: nonce =
 * id | counter | unix_ms (each LE), then XChaCha20-Poly1305-IETF. OUT
 * holds len + RK_SEAL_OVERHEAD bytes. */
static void craft_frame(uint8_t *out, const uint8_t *key, uint64_t id,
                        uint64_t counter, uint64_t unix_ms, const uint8_t *ad,
                        size_t adlen, const uint8_t *plain, size_t len)
{
	store_le64(out, id);
	store_le64(out + 8, counter);
	store_le64(out + 16, unix_ms);
	crypto_aead_xchacha20poly1305_ietf_encrypt(out + RK_SEAL_NONCE_BYTES,
	                                           NULL, plain, len, ad, adlen,
	                                           NULL, out, key);
}

static rk_sealer_t *new_sealer(const uint8_t *key, uint32_t window_ms,
                               uint64_t *clock)
{
	rk_sealer_t *s = NULL;
	assert_int_equal(rk_sealer_new(key, window_ms, &s), RK_OK);
	assert_non_null(s);
	if (clock != NULL)
		rk_sealer_set_clock(s, fake_clock, clock);
	return s;
}

/* Opens a crafted 8-byte frame through RX; returns the status. */
static rk_status_t open_crafted(rk_sealer_t *rx, uint64_t id, uint64_t counter,
                                uint64_t unix_ms, const char **why)
{
	uint8_t plain[8], frame[8 + RK_SEAL_OVERHEAD], out[8];
	store_le64(plain, counter);
	craft_frame(frame, test_key, id, counter, unix_ms, NULL, 0, plain,
	            sizeof(plain));
	rk_status_t st =
	    rk_open(rx, NULL, 0, frame, sizeof(frame), out, true, why);
	if (st == RK_OK)
		assert_memory_equal(out, plain, sizeof(plain));
	return st;
}

static void test_seal_round_trip_returns_the_plaintext(void **state)
{
	(void)state;
	rk_sealer_t *tx = new_sealer(test_key, 0, NULL);
	rk_sealer_t *rx = new_sealer(test_key, 0, NULL);
	static const size_t lens[] = {0, 1, 100, 5000};
	const uint8_t ad[] = "header";
	for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++) {
		size_t len = lens[k];
		uint8_t *plain = malloc(len + 1);
		uint8_t *frame = malloc(len + RK_SEAL_OVERHEAD);
		uint8_t *out = malloc(len + 1);
		assert_non_null(plain);
		assert_non_null(frame);
		assert_non_null(out);
		randombytes_buf(plain, len);
		assert_int_equal(rk_seal(tx, ad, sizeof(ad), plain, len, frame),
		                 RK_OK);
		/* Encrypted: the plaintext does not show through. */
		if (len >= 100)
			assert_memory_not_equal(frame + RK_SEAL_NONCE_BYTES,
			                        plain, len);
		const char *why = "unset";
		assert_int_equal(rk_open(rx, ad, sizeof(ad), frame,
		                         len + RK_SEAL_OVERHEAD, out, true,
		                         &why),
		                 RK_OK);
		assert_null(why);
		assert_memory_equal(out, plain, len);
		free(plain);
		free(frame);
		free(out);
	}
	rk_sealer_free(tx);
	rk_sealer_free(rx);
}

static void test_seal_nonce_is_sender_counter_and_clock(void **state)
{
	(void)state;
	uint64_t now = T0;
	rk_sealer_t *a = new_sealer(test_key, 0, &now);
	rk_sealer_t *b = new_sealer(test_key, 0, &now);
	uint8_t f[3][RK_SEAL_OVERHEAD], g[RK_SEAL_OVERHEAD];
	for (int i = 0; i < 3; i++) {
		now = T0 + (uint64_t)i * 7;
		assert_int_equal(rk_seal(a, NULL, 0, NULL, 0, f[i]), RK_OK);
	}
	assert_int_equal(rk_seal(b, NULL, 0, NULL, 0, g), RK_OK);
	uint64_t id = load_le64(f[0]);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(load_le64(f[i]), id);
		assert_int_equal(load_le64(f[i] + 8), (uint64_t)i);
		assert_int_equal(load_le64(f[i] + 16), T0 + (uint64_t)i * 7);
	}
	/* Each sealer draws its own sender id (a 2^-64 chance to fail). */
	assert_int_not_equal(load_le64(g), id);
	rk_sealer_free(a);
	rk_sealer_free(b);
}

/* The test vector of docs/sealing.md, checked against an independent
 * HChaCha20 + ChaCha20-Poly1305 implementation when it was written. */
static void test_open_accepts_the_documented_test_vector(void **state)
{
	(void)state;
	static const char hex[] =
	    "01020304050607082a000000000000000068e5cf8b010000"
	    "58f5fe97988b5077576d7da261b8aaa1c537fa632e"
	    "d575ec4fd59277a7";
	uint8_t frame[64];
	size_t len = 0;
	assert_int_equal(sodium_hex2bin(frame, sizeof(frame), hex, strlen(hex),
	                                NULL, &len, NULL),
	                 0);
	assert_int_equal(len, 13 + RK_SEAL_OVERHEAD);
	uint64_t now = T0;
	rk_sealer_t *rx = new_sealer(test_key, 0, &now);
	uint8_t out[13];
	const char *why = NULL;
	assert_int_equal(rk_open(rx, (const uint8_t *)"ringkv", 6, frame, len,
	                         out, true, &why),
	                 RK_OK);
	assert_memory_equal(out, "hello, ringkv", 13);
	rk_sealer_free(rx);
}

static void test_open_refuses_any_flipped_byte(void **state)
{
	(void)state;
	rk_sealer_t *tx = new_sealer(test_key, 0, NULL);
	rk_sealer_t *rx = new_sealer(test_key, 0, NULL);
	uint8_t plain[100], frame[100 + RK_SEAL_OVERHEAD],
	    bad[100 + RK_SEAL_OVERHEAD], out[100];
	randombytes_buf(plain, sizeof(plain));
	assert_int_equal(rk_seal(tx, NULL, 0, plain, sizeof(plain), frame),
	                 RK_OK);
	static const uint8_t flips[] = {0x01, 0x80, 0xff};
	for (size_t i = 0; i < sizeof(frame); i++) {
		for (size_t f = 0; f < sizeof(flips); f++) {
			memcpy(bad, frame, sizeof(frame));
			bad[i] ^= flips[f];
			const char *why = NULL;
			rk_status_t st = rk_open(rx, NULL, 0, bad, sizeof(bad),
			                         out, true, &why);
			if (st != RK_UNAUTHENTICATED)
				fail_msg("byte %zu ^ 0x%02x: status %d", i,
				         flips[f], st);
			assert_string_equal(why, "bad tag or wrong key");
		}
	}
	/* None of the forgeries touched the replay state: the genuine
	 * frame, whose nonce they mostly shared, is still accepted. */
	const char *why = NULL;
	assert_int_equal(
	    rk_open(rx, NULL, 0, frame, sizeof(frame), out, true, &why), RK_OK);
	assert_memory_equal(out, plain, sizeof(plain));
	rk_sealer_free(tx);
	rk_sealer_free(rx);
}

static void test_open_refuses_wrong_key(void **state)
{
	(void)state;
	uint8_t other_key[RK_SEAL_KEY_BYTES];
	memcpy(other_key, test_key, sizeof(other_key));
	other_key[31] ^= 1;
	rk_sealer_t *tx = new_sealer(test_key, 0, NULL);
	rk_sealer_t *rx = new_sealer(other_key, 0, NULL);
	uint8_t plain[32] = "secret", frame[32 + RK_SEAL_OVERHEAD], out[32];
	assert_int_equal(rk_seal(tx, NULL, 0, plain, sizeof(plain), frame),
	                 RK_OK);
	const char *why = NULL;
	assert_int_equal(
	    rk_open(rx, NULL, 0, frame, sizeof(frame), out, false, &why),
	    RK_UNAUTHENTICATED);
	assert_string_equal(why, "bad tag or wrong key");
	rk_sealer_free(tx);
	rk_sealer_free(rx);
}

static void test_open_refuses_different_additional_data(void **state)
{
	(void)state;
	rk_sealer_t *s = new_sealer(test_key, 0, NULL);
	uint8_t plain[32] = "payload", frame[32 + RK_SEAL_OVERHEAD], out[32];
	const uint8_t ad[] = {1, 1, 0, 0}, ad2[] = {1, 2, 0, 0};
	assert_int_equal(
	    rk_seal(s, ad, sizeof(ad), plain, sizeof(plain), frame), RK_OK);
	const char *why = NULL;
	assert_int_equal(rk_open(s, ad2, sizeof(ad2), frame, sizeof(frame), out,
	                         false, &why),
	                 RK_UNAUTHENTICATED);
	assert_string_equal(why, "bad tag or wrong key");
	why = NULL;
	assert_int_equal(
	    rk_open(s, NULL, 0, frame, sizeof(frame), out, false, &why),
	    RK_UNAUTHENTICATED);
	assert_string_equal(why, "bad tag or wrong key");
	assert_int_equal(
	    rk_open(s, ad, 3, frame, sizeof(frame), out, false, NULL),
	    RK_UNAUTHENTICATED);
	assert_int_equal(
	    rk_open(s, ad, sizeof(ad), frame, sizeof(frame), out, false, NULL),
	    RK_OK);
	assert_memory_equal(out, plain, sizeof(plain));
	rk_sealer_free(s);
}

static void test_open_refuses_frame_shorter_than_overhead(void **state)
{
	(void)state;
	rk_sealer_t *s = new_sealer(test_key, 0, NULL);
	uint8_t frame[RK_SEAL_OVERHEAD], out[1];
	assert_int_equal(rk_seal(s, NULL, 0, NULL, 0, frame), RK_OK);
	const size_t lens[] = {0, 1, RK_SEAL_NONCE_BYTES, RK_SEAL_OVERHEAD - 1};
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		const char *why = NULL;
		assert_int_equal(
		    rk_open(s, NULL, 0, frame, lens[i], out, true, &why),
		    RK_UNAUTHENTICATED);
		assert_string_equal(why, "frame too short");
	}
	/* Exactly the overhead is an empty frame, not a short one. */
	assert_int_equal(
	    rk_open(s, NULL, 0, frame, sizeof(frame), out, true, NULL), RK_OK);
	rk_sealer_free(s);
}

static void test_open_refuses_the_same_frame_twice(void **state)
{
	(void)state;
	rk_sealer_t *tx = new_sealer(test_key, 0, NULL);
	rk_sealer_t *rx = new_sealer(test_key, 0, NULL);
	uint8_t plain[100], frame[100 + RK_SEAL_OVERHEAD], out[100];
	memset(plain, 'p', sizeof(plain));
	assert_int_equal(rk_seal(tx, NULL, 0, plain, sizeof(plain), frame),
	                 RK_OK);
	const char *why = NULL;
	assert_int_equal(
	    rk_open(rx, NULL, 0, frame, sizeof(frame), out, true, &why), RK_OK);
	memset(out, 0, sizeof(out));
	assert_int_equal(
	    rk_open(rx, NULL, 0, frame, sizeof(frame), out, true, &why),
	    RK_UNAUTHENTICATED);
	assert_string_equal(why, "replayed frame");
	/* A refused frame's plaintext is not left behind for a careless
	 * caller. */
	uint8_t zero[100] = {0};
	assert_memory_equal(out, zero, sizeof(out));
	/* Without the replay check (responses) it opens again. */
	assert_int_equal(
	    rk_open(rx, NULL, 0, frame, sizeof(frame), out, false, &why),
	    RK_OK);
	assert_memory_equal(out, plain, sizeof(plain));
	rk_sealer_free(tx);
	rk_sealer_free(rx);
}

static void test_open_accepts_reordered_frames_in_the_window_once(void **state)
{
	(void)state;
	/* Counters 0..BITS: the newest plus the BITS below it, the most
	 * the bitmap can accept out of order. */
	enum { N = RK_SEAL_REPLAY_BITS + 1, LEN = 8 };
	rk_sealer_t *tx = new_sealer(test_key, 0, NULL);
	rk_sealer_t *rx = new_sealer(test_key, 0, NULL);
	uint8_t(*frames)[LEN + RK_SEAL_OVERHEAD] = malloc(N * sizeof(*frames));
	size_t *order = malloc(N * sizeof(*order));
	assert_non_null(frames);
	assert_non_null(order);
	for (size_t i = 0; i < N; i++) {
		uint8_t plain[LEN];
		store_le64(plain, i);
		assert_int_equal(rk_seal(tx, NULL, 0, plain, LEN, frames[i]),
		                 RK_OK);
		order[i] = i;
	}
	/* Newest first, so every other one arrives late; the rest in a
	 * random order. */
	unsigned seed = (unsigned)time(NULL);
	printf("seed %u\n", seed);
	srand(seed);
	order[0] = N - 1;
	order[N - 1] = 0;
	for (size_t i = N - 1; i > 1; i--) {
		size_t j = 1 + (size_t)rand() % i;
		size_t t = order[i];
		order[i] = order[j];
		order[j] = t;
	}
	for (size_t k = 0; k < N; k++) {
		uint8_t out[LEN];
		const char *why = NULL;
		size_t i = order[k];
		rk_status_t st = rk_open(rx, NULL, 0, frames[i],
		                         sizeof(*frames), out, true, &why);
		if (st != RK_OK)
			fail_msg("frame %zu (opened %zu-th): %s", i, k, why);
		assert_int_equal(load_le64(out), i);
	}
	for (size_t i = 0; i < N; i++) {
		uint8_t out[LEN];
		const char *why = NULL;
		assert_int_equal(rk_open(rx, NULL, 0, frames[i],
		                         sizeof(*frames), out, true, &why),
		                 RK_UNAUTHENTICATED);
		assert_string_equal(why, "replayed frame");
	}
	free(frames);
	free(order);
	rk_sealer_free(tx);
	rk_sealer_free(rx);
}

static void test_open_refuses_counter_older_than_the_bitmap(void **state)
{
	(void)state;
	uint64_t now = T0;
	rk_sealer_t *rx = new_sealer(test_key, 0, &now);
	const uint64_t id = 77, top = 3 * RK_SEAL_REPLAY_BITS + 5;
	const char *why = NULL;
	assert_int_equal(open_crafted(rx, id, top, T0, &why), RK_OK);
	/* One below the window: never seen, but too old to tell. */
	assert_int_equal(
	    open_crafted(rx, id, top - RK_SEAL_REPLAY_BITS - 1, T0, &why),
	    RK_UNAUTHENTICATED);
	assert_string_equal(why, "replayed frame");
	assert_int_equal(open_crafted(rx, id, 0, T0, &why), RK_UNAUTHENTICATED);
	assert_string_equal(why, "replayed frame");
	/* The oldest counter the window still holds is accepted, once. */
	assert_int_equal(
	    open_crafted(rx, id, top - RK_SEAL_REPLAY_BITS, T0, &why), RK_OK);
	assert_int_equal(
	    open_crafted(rx, id, top - RK_SEAL_REPLAY_BITS, T0, &why),
	    RK_UNAUTHENTICATED);
	assert_string_equal(why, "replayed frame");
	/* A jump far ahead forgets the old bits: counters accepted before
	 * are now simply too old, and those near the new top are new. */
	const uint64_t far = top + 10 * RK_SEAL_REPLAY_BITS;
	assert_int_equal(open_crafted(rx, id, far, T0, &why), RK_OK);
	assert_int_equal(open_crafted(rx, id, top, T0, &why),
	                 RK_UNAUTHENTICATED);
	assert_int_equal(open_crafted(rx, id, far - 1, T0, &why), RK_OK);
	assert_int_equal(
	    open_crafted(rx, id, far - RK_SEAL_REPLAY_BITS, T0, &why), RK_OK);
	assert_int_equal(open_crafted(rx, id, far - 1, T0, &why),
	                 RK_UNAUTHENTICATED);
	rk_sealer_free(rx);
}

/* Random counters, near the top, far ahead, behind and at the edge of the
 * window, from one sender: every decision must match the rule written
 * in docs/sealing.md, kept here as a plain set of accepted counters. */
static void test_open_replay_decisions_match_a_model(void **state)
{
	(void)state;
	enum { STEPS = 20000, SPACE_BITS = 1 << 24 };
	uint8_t *seen = calloc(SPACE_BITS / 8, 1);
	assert_non_null(seen);
	uint64_t now = T0;
	rk_sealer_t *rx = new_sealer(test_key, 0, &now);
	unsigned seed = (unsigned)time(NULL);
	printf("seed %u\n", seed);
	srand(seed);
	uint64_t highest = 0;
	bool any = false;
	for (int step = 0; step < STEPS; step++) {
		uint64_t c;
		int kind = rand() % 100;
		if (kind < 35)
			c = highest + 1 + (uint64_t)(rand() % 200);
		else if (kind < 40)
			c = highest + 64 * 65 + (uint64_t)(rand() % 20000);
		else if (kind < 80)
			c = highest -
			    (uint64_t)(rand() % (RK_SEAL_REPLAY_BITS + 4));
		else if (kind < 90)
			c = highest - RK_SEAL_REPLAY_BITS +
			    (uint64_t)(rand() % 3) - 1;
		else
			c = (uint64_t)rand() % (highest + 1);
		if (c > highest + (1u << 30)) /* wrapped below zero */
			c = 0;
		if (c >= SPACE_BITS)
			break;
		bool fresh = !(seen[c / 8] & (1u << (c % 8)));
		bool expect = !any || c > highest ||
		              (highest - c <= RK_SEAL_REPLAY_BITS && fresh);
		const char *why = NULL;
		rk_status_t st = open_crafted(rx, 5, c, T0, &why);
		if ((st == RK_OK) != expect)
			fail_msg("step %d: counter %llu (highest %llu): got "
			         "%s, model says %s",
			         step, (unsigned long long)c,
			         (unsigned long long)highest,
			         st == RK_OK ? "accepted" : why,
			         expect ? "accept" : "refuse");
		if (expect) {
			seen[c / 8] |= (uint8_t)(1u << (c % 8));
			if (!any || c > highest)
				highest = c;
			any = true;
		}
	}
	free(seen);
	rk_sealer_free(rx);
}

static void test_open_refuses_timestamp_outside_the_window(void **state)
{
	(void)state;
	const uint32_t window = 1000;
	uint64_t tx_now = T0, rx_now = T0;
	rk_sealer_t *tx = new_sealer(test_key, window, &tx_now);
	rk_sealer_t *rx = new_sealer(test_key, window, &rx_now);
	uint8_t plain[16] = "stamped", frame[16 + RK_SEAL_OVERHEAD], out[16];
	const char *why = NULL;

	struct {
		int64_t skew;       /* sender clock minus receiver clock */
		rk_status_t expect; /* what rk_open says */
	} cases[] = {
	    {-(int64_t)window - 1, RK_UNAUTHENTICATED},
	    {(int64_t)window + 1, RK_UNAUTHENTICATED},
	    {-(int64_t)window - 3600000, RK_UNAUTHENTICATED},
	    {-(int64_t)window, RK_OK},
	    {(int64_t)window, RK_OK},
	    {0, RK_OK},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		tx_now = (uint64_t)((int64_t)T0 + cases[i].skew);
		assert_int_equal(
		    rk_seal(tx, NULL, 0, plain, sizeof(plain), frame), RK_OK);
		why = NULL;
		rk_status_t st =
		    rk_open(rx, NULL, 0, frame, sizeof(frame), out, true, &why);
		if (st != cases[i].expect)
			fail_msg("skew %lld: status %d (%s)",
			         (long long)cases[i].skew, st, why ? why : "-");
		if (st != RK_OK)
			assert_string_equal(
			    why, "timestamp outside the replay window");
	}

	/* A stale frame is refused without being recorded: once the
	 * receiver's clock agrees with it, it is accepted (once). */
	tx_now = T0 - 5000;
	assert_int_equal(rk_seal(tx, NULL, 0, plain, sizeof(plain), frame),
	                 RK_OK);
	assert_int_equal(
	    rk_open(rx, NULL, 0, frame, sizeof(frame), out, true, &why),
	    RK_UNAUTHENTICATED);
	/* Responses are not checked for replay, so not for time either. */
	assert_int_equal(
	    rk_open(rx, NULL, 0, frame, sizeof(frame), out, false, &why),
	    RK_OK);
	rx_now = T0 - 5000;
	assert_int_equal(
	    rk_open(rx, NULL, 0, frame, sizeof(frame), out, true, &why), RK_OK);
	assert_int_equal(
	    rk_open(rx, NULL, 0, frame, sizeof(frame), out, true, &why),
	    RK_UNAUTHENTICATED);
	assert_string_equal(why, "replayed frame");
	rk_sealer_free(tx);
	rk_sealer_free(rx);
}

static void test_sender_table_is_bounded_and_forgets_idle_senders(void **state)
{
	(void)state;
	const uint32_t window = 1000;
	const uint64_t half = RK_SEAL_MAX_SENDERS / 2;
	uint64_t now = T0;
	rk_sealer_t *rx = new_sealer(test_key, window, &now);
	const char *why = NULL;

	/* Fill the table: the first half of the senders at T0, the
	 * second half half a window later. */
	for (uint64_t id = 1; id <= RK_SEAL_MAX_SENDERS; id++) {
		if (id == half + 1)
			now = T0 + window / 2;
		rk_status_t st = open_crafted(rx, id, 5, now, &why);
		if (st != RK_OK)
			fail_msg("sender %llu: %s", (unsigned long long)id,
			         why);
	}
	/* Full of active senders: a newcomer is refused... */
	assert_int_equal(open_crafted(rx, 100000, 0, now, &why),
	                 RK_RESOURCE_EXHAUSTED);
	assert_string_equal(why, "too many senders");
	/* ...but senders already known are still served. */
	assert_int_equal(open_crafted(rx, 1, 6, now, &why), RK_OK);
	assert_int_equal(open_crafted(rx, RK_SEAL_MAX_SENDERS, 6, now, &why),
	                 RK_OK);

	/* Past the window for the first half (except sender 1, seen again
	 * just now), inside it for the second. */
	now = T0 + window + 1;
	for (uint64_t k = 0; k < half - 1; k++) {
		rk_status_t st = open_crafted(rx, 200000 + k, 0, now, &why);
		if (st != RK_OK)
			fail_msg("newcomer %llu: %s", (unsigned long long)k,
			         why);
	}
	/* Only the idle ones made room. */
	assert_int_equal(open_crafted(rx, 300000, 0, now, &why),
	                 RK_RESOURCE_EXHAUSTED);
	assert_string_equal(why, "too many senders");
	/* The active senders kept their replay state... */
	assert_int_equal(open_crafted(rx, 1, 6, now, &why), RK_UNAUTHENTICATED);
	assert_string_equal(why, "replayed frame");
	assert_int_equal(open_crafted(rx, half + 1, 5, now, &why),
	                 RK_UNAUTHENTICATED);
	assert_string_equal(why, "replayed frame");
	/* ...and a forgotten sender's old frame is refused on its time. */
	assert_int_equal(open_crafted(rx, 2, 5, T0, &why), RK_UNAUTHENTICATED);
	assert_string_equal(why, "timestamp outside the replay window");
	rk_sealer_free(rx);
}

/* The table empties and refills, generation after generation: what a
 * sweep learnt about the entries it kept must not stop later sweeps from
 * finding the entries added after it. */
static void test_sender_table_forgets_generation_after_generation(void **state)
{
	(void)state;
	const uint32_t window = 1000;
	uint64_t now = T0;
	rk_sealer_t *rx = new_sealer(test_key, window, &now);
	const char *why = NULL;
	for (uint64_t gen = 0; gen < 4; gen++) {
		now = T0 + gen * (window + 1);
		for (uint64_t k = 0; k < RK_SEAL_MAX_SENDERS; k++) {
			uint64_t id = gen * RK_SEAL_MAX_SENDERS + k + 1;
			/* Half of each generation with its sender's clock
			 * a little behind ours. */
			uint64_t ts = k % 2 ? now - window / 2 : now;
			rk_status_t st = open_crafted(rx, id, k, ts, &why);
			if (st != RK_OK)
				fail_msg("generation %llu sender %llu: %s",
				         (unsigned long long)gen,
				         (unsigned long long)k, why);
		}
		assert_int_equal(open_crafted(rx, UINT64_MAX, 0, now, &why),
		                 RK_RESOURCE_EXHAUSTED);
	}
	rk_sealer_free(rx);
}

/* A sender whose clock runs ahead is remembered until its own timestamps
 * leave the window, not merely until it has been quiet for a window by
 * the receiver's clock: otherwise its frames could be replayed. */
static void test_sender_with_fast_clock_is_kept_while_replayable(void **state)
{
	(void)state;
	const uint32_t window = 1000;
	uint64_t now = T0;
	rk_sealer_t *rx = new_sealer(test_key, window, &now);
	const char *why = NULL;
	const uint64_t fast = 1;
	assert_int_equal(open_crafted(rx, fast, 9, T0 + window, &why), RK_OK);
	for (uint64_t id = 2; id <= RK_SEAL_MAX_SENDERS; id++)
		assert_int_equal(open_crafted(rx, id, 0, T0, &why), RK_OK);
	/* Quiet for more than a window by our clock; its frame is still
	 * within the window. */
	now = T0 + window + 1;
	for (uint64_t k = 0; k < RK_SEAL_MAX_SENDERS - 1; k++)
		assert_int_equal(open_crafted(rx, 500000 + k, 0, now, &why),
		                 RK_OK);
	assert_int_equal(open_crafted(rx, 900000, 0, now, &why),
	                 RK_RESOURCE_EXHAUSTED);
	assert_int_equal(open_crafted(rx, fast, 9, T0 + window, &why),
	                 RK_UNAUTHENTICATED);
	assert_string_equal(why, "replayed frame");
	/* Once its frames are out of the window it goes, and only it: the
	 * newcomers, a millisecond younger, are still active. */
	now = T0 + 2 * window + 1;
	assert_int_equal(open_crafted(rx, 900000, 0, now, &why), RK_OK);
	assert_int_equal(open_crafted(rx, 900001, 0, now, &why),
	                 RK_RESOURCE_EXHAUSTED);
	assert_int_equal(open_crafted(rx, fast, 9, T0 + window, &why),
	                 RK_UNAUTHENTICATED);
	assert_string_equal(why, "timestamp outside the replay window");
	rk_sealer_free(rx);
}

/* Many threads seal and open through one sealer at once. Phases are
 * separated by a barrier: in phase p each thread seals round p and opens
 * its neighbour's round p - 1, so sealing and opening overlap. A round
 * is THREADS * PER_ROUND < RK_SEAL_REPLAY_BITS frames, so however the
 * threads interleave, no genuine frame falls out of the window: any
 * refusal is a false rejection. */
enum { THREADS = 4, ROUNDS = 16, PER_ROUND = 1000, FRAME_PLAIN = 100 };
_Static_assert(THREADS *PER_ROUND <= RK_SEAL_REPLAY_BITS,
               "a round fits in the replay window");

struct conc {
	rk_sealer_t *s;            /* shared by every thread */
	pthread_barrier_t barrier; /* between phases */
	atomic_int failures;       /* false rejections, bad data */
	uint8_t (*frames)[THREADS][PER_ROUND][FRAME_PLAIN + RK_SEAL_OVERHEAD];
	uint8_t (*nonces)[RK_SEAL_NONCE_BYTES]; /* every nonce sealed */
};

struct conc_arg {
	struct conc *c; /* shared state */
	int t;          /* thread number */
};

static void fill_plain(uint8_t *p, int t, int round, int i)
{
	memset(p, (t * 31 + round * 7 + i) & 0xff, FRAME_PLAIN);
	store_le64(p,
	           ((uint64_t)t << 40) | ((uint64_t)round << 20) | (uint64_t)i);
}

static void *conc_main(void *argp)
{
	struct conc_arg *arg = argp;
	struct conc *c = arg->c;
	int t = arg->t, peer = (t + 1) % THREADS;
	for (int p = 0; p <= ROUNDS; p++) {
		if (p < ROUNDS) {
			for (int i = 0; i < PER_ROUND; i++) {
				uint8_t plain[FRAME_PLAIN];
				uint8_t *frame = c->frames[p % 2][t][i];
				fill_plain(plain, t, p, i);
				if (rk_seal(c->s, NULL, 0, plain, FRAME_PLAIN,
				            frame) != RK_OK)
					atomic_fetch_add(&c->failures, 1);
				memcpy(
				    c->nonces[(t * ROUNDS + p) * PER_ROUND + i],
				    frame, RK_SEAL_NONCE_BYTES);
			}
		}
		if (p > 0) {
			int r = p - 1;
			for (int i = 0; i < PER_ROUND; i++) {
				uint8_t plain[FRAME_PLAIN], out[FRAME_PLAIN];
				const char *why = NULL;
				fill_plain(plain, peer, r, i);
				if (rk_open(c->s, NULL, 0,
				            c->frames[r % 2][peer][i],
				            FRAME_PLAIN + RK_SEAL_OVERHEAD, out,
				            true, &why) != RK_OK ||
				    memcmp(out, plain, FRAME_PLAIN) != 0)
					atomic_fetch_add(&c->failures, 1);
			}
		}
		pthread_barrier_wait(&c->barrier);
	}
	return NULL;
}

static int cmp_nonce(const void *a, const void *b)
{
	return memcmp(a, b, RK_SEAL_NONCE_BYTES);
}

static void test_concurrent_seal_and_open_never_reject_or_reuse(void **state)
{
	(void)state;
	const size_t total = (size_t)THREADS * ROUNDS * PER_ROUND;
	struct conc c;
	c.s = new_sealer(test_key, 0, NULL);
	atomic_init(&c.failures, 0);
	c.frames = malloc(2 * sizeof(*c.frames));
	c.nonces = malloc(total * sizeof(*c.nonces));
	assert_non_null(c.frames);
	assert_non_null(c.nonces);
	assert_int_equal(pthread_barrier_init(&c.barrier, NULL, THREADS), 0);
	pthread_t th[THREADS];
	struct conc_arg args[THREADS];
	for (int t = 0; t < THREADS; t++) {
		args[t] = (struct conc_arg){&c, t};
		assert_int_equal(
		    pthread_create(&th[t], NULL, conc_main, &args[t]), 0);
	}
	for (int t = 0; t < THREADS; t++)
		pthread_join(th[t], NULL);
	assert_int_equal(atomic_load(&c.failures), 0);

	qsort(c.nonces, total, sizeof(*c.nonces), cmp_nonce);
	for (size_t i = 1; i < total; i++)
		if (memcmp(c.nonces[i - 1], c.nonces[i], RK_SEAL_NONCE_BYTES) ==
		    0)
			fail_msg(
			    "nonce repeated (counter %llu)",
			    (unsigned long long)load_le64(c.nonces[i] + 8));
	/* And the counters are exactly 0..total-1: none lost, none
	 * doubled. */
	uint8_t *seen = calloc(total, 1);
	assert_non_null(seen);
	for (size_t i = 0; i < total; i++) {
		uint64_t ctr = load_le64(c.nonces[i] + 8);
		assert_true(ctr < total);
		assert_int_equal(seen[ctr], 0);
		seen[ctr] = 1;
	}
	free(seen);
	pthread_barrier_destroy(&c.barrier);
	free(c.frames);
	free(c.nonces);
	rk_sealer_free(c.s);
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_seal_round_trip_returns_the_plaintext),
	    cmocka_unit_test(test_seal_nonce_is_sender_counter_and_clock),
	    cmocka_unit_test(test_open_accepts_the_documented_test_vector),
	    cmocka_unit_test(test_open_refuses_any_flipped_byte),
	    cmocka_unit_test(test_open_refuses_wrong_key),
	    cmocka_unit_test(test_open_refuses_different_additional_data),
	    cmocka_unit_test(test_open_refuses_frame_shorter_than_overhead),
	    cmocka_unit_test(test_open_refuses_the_same_frame_twice),
	    cmocka_unit_test(
	        test_open_accepts_reordered_frames_in_the_window_once),
	    cmocka_unit_test(test_open_refuses_counter_older_than_the_bitmap),
	    cmocka_unit_test(test_open_replay_decisions_match_a_model),
	    cmocka_unit_test(test_open_refuses_timestamp_outside_the_window),
	    cmocka_unit_test(
	        test_sender_table_is_bounded_and_forgets_idle_senders),
	    cmocka_unit_test(
	        test_sender_table_forgets_generation_after_generation),
	    cmocka_unit_test(
	        test_sender_with_fast_clock_is_kept_while_replayable),
	    cmocka_unit_test(
	        test_concurrent_seal_and_open_never_reject_or_reuse),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

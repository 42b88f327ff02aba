/*
 * Frame sealing with the cluster key: authenticated encryption of every
 * frame between ringkv services (libsodium's XChaCha20-Poly1305-IETF), with
 * protection against replayed frames.
 *
 * The 24-byte nonce is not random: it is
 *
 *	sender_id (8 bytes LE) | counter (8 bytes LE) | unix_ms (8 bytes LE)
 *
 * where sender_id is drawn at random when the sealer is made (so two
 * processes, or one process before and after a restart, never share a
 * nonce), counter rises by one for every frame sealed, and unix_ms is the
 * sender's wall clock. The nonce is authenticated as part of the AEAD, so
 * none of it can be altered without failing the tag.
 *
 * Replay protection (rk_open with check_replay): a frame is refused if its
 * unix_ms is further than the replay window from the receiver's clock
 * (default 30 s: the clock skew the cluster tolerates), or if the same
 * (sender_id, counter) was accepted before. Per sender the receiver keeps
 * the highest counter and a bitmap of the RK_SEAL_REPLAY_BITS counters
 * below it, so frames that overtake each other (many calls in flight) are
 * accepted once each. Senders are forgotten once idle longer than the
 * window: any frame of theirs that could still be replayed is by then
 * outside the window and refused on its timestamp.
 *
 * Responses are not checked for replay; instead the RPC layer binds each
 * response to its request by passing the request's nonce as additional
 * data, so an old response cannot answer a new request.
 *
 * A sealer is thread-safe: many threads seal and open through one.
 */
#ifndef RK_SEAL_H
#define RK_SEAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ringkv/status.h>

#define RK_SEAL_KEY_BYTES   32
#define RK_SEAL_NONCE_BYTES 24
#define RK_SEAL_TAG_BYTES   16
/* Bytes a sealed frame adds to its plaintext. */
#define RK_SEAL_OVERHEAD (RK_SEAL_NONCE_BYTES + RK_SEAL_TAG_BYTES)
/* Width of the per-sender window of counters accepted out of order. */
#define RK_SEAL_REPLAY_BITS 4096
#define RK_SEAL_DEFAULT_WINDOW_MS 30000
/* Senders the replay table tracks at once; a new sender beyond this is
 * refused unless an idle one can be forgotten. */
#define RK_SEAL_MAX_SENDERS 4096

typedef struct rk_sealer rk_sealer_t;

/* Makes a sealer for KEY (copied into locked memory). WINDOW_MS is the
 * replay window; 0 means RK_SEAL_DEFAULT_WINDOW_MS. Caller frees with
 * rk_sealer_free(). RK_INTERNAL if libsodium cannot initialise. */
rk_status_t rk_sealer_new(const uint8_t key[RK_SEAL_KEY_BYTES],
                          uint32_t window_ms, rk_sealer_t **out);
void rk_sealer_free(rk_sealer_t *s);

/* Seals PLAIN[0..len) with additional data AD into OUT, which must hold
 * len + RK_SEAL_OVERHEAD bytes: OUT = nonce | ciphertext | tag. */
rk_status_t rk_seal(rk_sealer_t *s, const uint8_t *ad, size_t adlen,
                    const uint8_t *plain, size_t len, uint8_t *out);

/* Opens IN[0..len) (nonce | ciphertext | tag) with additional data AD into
 * OUT, which must hold len - RK_SEAL_OVERHEAD bytes. Returns RK_OK, or
 * RK_UNAUTHENTICATED with *why (static text, may be NULL) one of "frame too
 * short", "bad tag or wrong key", "timestamp outside the replay window",
 * "replayed frame", or RK_RESOURCE_EXHAUSTED "too many senders" when the
 * sender table is full of senders active within the window. The replay
 * state is updated only for a frame whose tag is good. */
rk_status_t rk_open(rk_sealer_t *s, const uint8_t *ad, size_t adlen,
                    const uint8_t *in, size_t len, uint8_t *out,
                    bool check_replay, const char **why);

/* For tests: use CLOCK_FN instead of the wall clock (unix ms). */
void rk_sealer_set_clock(rk_sealer_t *s, uint64_t (*clock_fn)(void *),
                         void *arg);

#endif

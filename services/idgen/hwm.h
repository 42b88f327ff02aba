/*
 * The high-water mark of ringkv-idgen: a Unix ms such that no ID at or
 * after it has been issued, persisted ahead of use so that a restart
 * never reissues an ID even if the clock went back meanwhile.
 *
 * One file per (datacenter, worker) identity in the service's data
 * directory, "idgen-dc<D>-w<W>.hwm", replaced atomically (write a temp
 * file, fsync, rename, fsync the directory); its 32-byte format is in
 * docs/idgen.md. Beside it "idgen-dc<D>-w<W>.lock" is held with an
 * exclusive flock while the service runs, so a second process with the
 * same identity in the same directory refuses to start.
 *
 * Not thread-safe: the generator calls rk_hwm_store() under its own lock.
 */
#ifndef RK_IDGEN_HWM_H
#define RK_IDGEN_HWM_H

#include <stddef.h>
#include <stdint.h>

#include <ringkv/status.h>

#define RK_HWM_FILE_BYTES 32

typedef struct rk_hwm rk_hwm_t;

/* Opens the mark of (DC, WORKER) in DIR (made, mode 0700, if missing) and
 * locks it. *MARK_MS receives the persisted mark, 0 if there was none.
 * Errors, with WHY (LEN bytes) saying what and where:
 *   RK_ALREADY_EXISTS  another process holds this identity in DIR
 *   RK_DATA_LOSS       the file is torn or corrupt (the service must not
 *                      guess a mark: the operator decides)
 *   RK_FAILED_PRECONDITION  the file belongs to another identity
 *   RK_UNAVAILABLE     DIR or a file cannot be made, read or locked
 * On RK_OK the caller closes *OUT with rk_hwm_close(). */
rk_status_t rk_hwm_open(const char *dir, uint32_t dc, uint32_t worker,
                        rk_hwm_t **out, uint64_t *mark_ms, char *why,
                        size_t len);

/* Persists MARK_MS (write temp, fsync, rename, fsync dir). A mark below
 * the stored one is kept at the stored one. RK_UNAVAILABLE with WHY on an
 * I/O error (the old mark stays in force). */
rk_status_t rk_hwm_store(rk_hwm_t *h, uint64_t mark_ms, char *why, size_t len);

/* The mark last persisted. */
uint64_t rk_hwm_mark(const rk_hwm_t *h);

/* How many times a mark was persisted since open. */
uint64_t rk_hwm_stores(const rk_hwm_t *h);

/* The mark file's path (borrowed from H). */
const char *rk_hwm_path(const rk_hwm_t *h);

/* Encodes / decodes the 32-byte record (exposed for tests). Decode:
 * RK_DATA_LOSS on a bad magic, version or checksum. */
void rk_hwm_encode(uint32_t dc, uint32_t worker, uint64_t mark_ms,
                   uint8_t out[RK_HWM_FILE_BYTES]);
rk_status_t rk_hwm_decode(const uint8_t in[RK_HWM_FILE_BYTES], uint32_t *dc,
                          uint32_t *worker, uint64_t *mark_ms);

/* Releases the lock and frees. NULL is ok. */
void rk_hwm_close(rk_hwm_t *h);

#endif

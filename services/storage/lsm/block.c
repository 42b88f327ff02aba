/*
 * Blocks (docs/lsm-sstable.md).
 *
 * The builder shares each key's prefix with the previous key except every
 * `interval` entries, where the key is stored whole and its offset goes in
 * the restart array. Seeking binary-searches the restart keys, then walks
 * at most `interval` entries.
 *
 * The reader trusts nothing: every varint, length and offset is checked
 * against the block's end, keys must be at least an internal-key trailer
 * long, and a malformed entry stops the iterator with RK_DATA_LOSS.
 */
#include "block.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static bool grow(uint8_t **buf, size_t *cap, size_t need)
{
	if (need <= *cap)
		return true;
	size_t c = *cap ? *cap : 256;
	while (c < need)
		c *= 2;
	uint8_t *n = realloc(*buf, c);
	if (n == NULL)
		return false;
	*buf = n;
	*cap = c;
	return true;
}

void rk_block_builder_init(rk_block_builder_t *b, int interval)
{
	memset(b, 0, sizeof(*b));
	b->interval = interval;
	rk_block_builder_reset(b);
}

void rk_block_builder_fini(rk_block_builder_t *b)
{
	free(b->buf);
	free(b->restarts);
	free(b->last);
}

void rk_block_builder_reset(rk_block_builder_t *b)
{
	b->len = 0;
	b->nrestarts = 0;
	b->counter = 0;
	b->last_len = 0;
	b->entries = 0;
	b->failed = false;
}

size_t rk_block_builder_size(const rk_block_builder_t *b)
{
	return b->len + 4 * (b->nrestarts + 1) + 4;
}

void rk_block_builder_add(rk_block_builder_t *b, rk_slice_t key, rk_slice_t val)
{
	size_t shared = 0;
	if (b->counter < b->interval && b->entries > 0) {
		size_t lim = key.n < b->last_len ? key.n : b->last_len;
		while (shared < lim && b->last[shared] == key.p[shared])
			shared++;
	} else {
		if (b->nrestarts == b->rcap) {
			size_t c = b->rcap ? b->rcap * 2 : 16;
			uint32_t *r = realloc(b->restarts, c * sizeof(*r));
			if (r == NULL) {
				b->failed = true;
				return;
			}
			b->restarts = r;
			b->rcap = c;
		}
		b->restarts[b->nrestarts++] = (uint32_t)b->len;
		b->counter = 0;
	}
	size_t nonshared = key.n - shared;
	if (!grow(&b->buf, &b->cap, b->len + 15 + nonshared + val.n) ||
	    !grow(&b->last, &b->last_cap, key.n)) {
		b->failed = true;
		return;
	}
	uint8_t *p = b->buf + b->len;
	p = rk_put_varint(p, shared);
	p = rk_put_varint(p, nonshared);
	p = rk_put_varint(p, val.n);
	memcpy(p, key.p + shared, nonshared);
	p += nonshared;
	if (val.n)
		memcpy(p, val.p, val.n);
	p += val.n;
	b->len = (size_t)(p - b->buf);
	memcpy(b->last + shared, key.p + shared, nonshared);
	b->last_len = key.n;
	b->counter++;
	b->entries++;
}

rk_status_t rk_block_builder_finish(rk_block_builder_t *b, rk_slice_t *out)
{
	if (b->nrestarts == 0) { /* an empty block still has one restart */
		b->restarts = b->restarts ? b->restarts : malloc(4 * 16);
		if (b->restarts == NULL)
			return RK_RESOURCE_EXHAUSTED;
		if (b->rcap == 0)
			b->rcap = 16;
		b->restarts[b->nrestarts++] = 0;
	}
	if (b->failed || !grow(&b->buf, &b->cap, b->len + 4 * b->nrestarts + 4))
		return RK_RESOURCE_EXHAUSTED;
	for (size_t i = 0; i < b->nrestarts; i++) {
		rk_put_u32(b->buf + b->len, b->restarts[i]);
		b->len += 4;
	}
	rk_put_u32(b->buf + b->len, (uint32_t)b->nrestarts);
	b->len += 4;
	*out = rk_slice(b->buf, b->len);
	return RK_OK;
}

rk_status_t rk_block_new(uint8_t *data, size_t size, rk_block_t **out)
{
	if (size < 4 || size > UINT32_MAX)
		goto bad;
	uint32_t nr = rk_get_u32(data + size - 4);
	if (nr == 0 || nr > (size - 4) / 4)
		goto bad;
	uint32_t roff = (uint32_t)(size - 4 - 4 * (size_t)nr);
	for (uint32_t i = 0; i < nr; i++) {
		uint32_t r = rk_get_u32(data + roff + 4 * i);
		if (r > roff ||
		    (i > 0 && r <= rk_get_u32(data + roff + 4 * (i - 1))) ||
		    (i == 0 && r != 0))
			goto bad;
	}
	rk_block_t *b = malloc(sizeof(*b));
	if (b == NULL) {
		free(data);
		return RK_RESOURCE_EXHAUSTED;
	}
	b->data = data;
	b->size = size;
	b->restart_off = roff;
	b->nrestarts = nr;
	b->refs = 1;
	*out = b;
	return RK_OK;
bad:
	free(data);
	return RK_DATA_LOSS;
}

void rk_block_ref(rk_block_t *b)
{
	__atomic_fetch_add(&b->refs, 1, __ATOMIC_RELAXED);
}

void rk_block_unref(rk_block_t *b)
{
	if (b == NULL || __atomic_fetch_sub(&b->refs, 1, __ATOMIC_ACQ_REL) != 1)
		return;
	free(b->data);
	free(b);
}

void rk_block_iter_init(rk_block_iter_t *it)
{
	memset(it, 0, sizeof(*it));
	it->key = it->inline_key;
	it->key_cap = sizeof(it->inline_key);
}

void rk_block_iter_set(rk_block_iter_t *it, rk_block_t *b)
{
	if (b != NULL)
		rk_block_ref(b);
	rk_block_unref(it->b);
	it->b = b;
	it->valid = false;
	it->nback = 0;
}

void rk_block_iter_fini(rk_block_iter_t *it)
{
	rk_block_unref(it->b);
	if (it->key != it->inline_key)
		free(it->key);
	free(it->back);
	free(it->back_keys);
	rk_block_iter_init(it);
}

static void corrupt(rk_block_iter_t *it)
{
	it->valid = false;
	it->status = RK_DATA_LOSS;
}

/* Makes room for an N-byte key at it->key, keeping its first KEEP bytes. */
static bool key_room(rk_block_iter_t *it, size_t n, size_t keep)
{
	if (n <= it->key_cap)
		return true;
	size_t cap = n * 2;
	uint8_t *k = it->key == it->inline_key ? malloc(cap)
	                                       : realloc(it->key, cap);
	if (k == NULL) {
		it->valid = false;
		it->status = RK_RESOURCE_EXHAUSTED;
		return false;
	}
	if (it->key == it->inline_key)
		memcpy(k, it->inline_key, keep);
	it->key = k;
	it->key_cap = cap;
	return true;
}

/* Decodes the entry at OFF, sharing with the current key. */
static bool decode_at(rk_block_iter_t *it, uint32_t off)
{
	const uint8_t *base = it->b->data;
	const uint8_t *p = base + off, *end = base + it->b->restart_off;
	uint32_t shared, nonshared, vlen;
	if (off >= it->b->restart_off) {
		it->valid = false;
		return false;
	}
	p = rk_get_varint32(p, end, &shared);
	if (p != NULL)
		p = rk_get_varint32(p, end, &nonshared);
	if (p != NULL)
		p = rk_get_varint32(p, end, &vlen);
	if (p == NULL || shared > it->key_len ||
	    (size_t)(end - p) < (size_t)nonshared + vlen ||
	    shared + (size_t)nonshared < RK_IKEY_TRAILER) {
		corrupt(it);
		return false;
	}
	size_t klen = shared + (size_t)nonshared;
	if (!key_room(it, klen, shared))
		return false;
	memcpy(it->key + shared, p, nonshared);
	it->key_len = klen;
	it->val = rk_slice(p + nonshared, vlen);
	it->off = off;
	it->next_off = (uint32_t)(p + nonshared + vlen - base);
	it->valid = true;
	return true;
}

static uint32_t restart(const rk_block_t *b, uint32_t i)
{
	return rk_get_u32(b->data + b->restart_off + 4 * (size_t)i);
}

void rk_block_iter_seek_first(rk_block_iter_t *it)
{
	it->key_len = 0;
	if (it->b == NULL || it->status != RK_OK) {
		it->valid = false;
		return;
	}
	decode_at(it, 0);
}

void rk_block_iter_next(rk_block_iter_t *it)
{
	decode_at(it, it->next_off);
}

void rk_block_iter_seek(rk_block_iter_t *it, rk_slice_t target)
{
	if (it->b == NULL || it->status != RK_OK) {
		it->valid = false;
		return;
	}
	/* Last restart whose key is < target. */
	uint32_t lo = 0, hi = it->b->nrestarts - 1;
	while (lo < hi) {
		uint32_t mid = (lo + hi + 1) / 2;
		it->key_len = 0;
		if (!decode_at(it, restart(it->b, mid))) {
			if (it->status != RK_OK)
				return;
			hi = mid - 1; /* empty tail: cannot happen when valid */
			continue;
		}
		if (rk_ikey_cmp(rk_slice(it->key, it->key_len), target) < 0)
			lo = mid;
		else
			hi = mid - 1;
	}
	it->key_len = 0;
	if (!decode_at(it, restart(it->b, lo)))
		return;
	while (rk_ikey_cmp(rk_slice(it->key, it->key_len), target) < 0) {
		if (!decode_at(it, it->next_off))
			return;
	}
}

/* Appends the current entry to `back`. */
static bool push_back(rk_block_iter_t *it)
{
	if (it->nback == it->back_cap) {
		uint32_t cap = it->back_cap ? it->back_cap * 2 : 16;
		rk_block_back_t *b = realloc(it->back, cap * sizeof(*b));
		if (b == NULL)
			goto oom;
		it->back = b;
		it->back_cap = cap;
	}
	if (it->back_keys_len + it->key_len > it->back_keys_cap) {
		size_t cap = (it->back_keys_len + it->key_len) * 2;
		uint8_t *k = realloc(it->back_keys, cap);
		if (k == NULL)
			goto oom;
		it->back_keys = k;
		it->back_keys_cap = cap;
	}
	memcpy(it->back_keys + it->back_keys_len, it->key, it->key_len);
	it->back[it->nback++] = (rk_block_back_t){
	    .off = it->off,
	    .next_off = it->next_off,
	    .key_at = (uint32_t)it->back_keys_len,
	    .key_len = (uint32_t)it->key_len,
	    .val = it->val,
	};
	it->back_keys_len += it->key_len;
	return true;
oom:
	it->valid = false;
	it->status = RK_RESOURCE_EXHAUSTED;
	return false;
}

/* Decodes from restart point R up to the entry that ends at END (the
 * start of the next entry, or of the restart array), keeping every entry
 * in `back`, and stays on the last one. */
static void decode_back(rk_block_iter_t *it, uint32_t r, uint32_t end)
{
	it->nback = 0;
	it->back_keys_len = 0;
	it->key_len = 0;
	if (!decode_at(it, restart(it->b, r)))
		return;
	for (;;) {
		if (!push_back(it))
			return;
		if (it->next_off >= end)
			break;
		if (!decode_at(it, it->next_off))
			return;
	}
	if (it->next_off != end) {
		corrupt(it); /* the entries do not end where they should */
		return;
	}
	it->back_i = it->nback - 1;
}

void rk_block_iter_seek_last(rk_block_iter_t *it)
{
	if (it->b == NULL || it->status != RK_OK) {
		it->valid = false;
		return;
	}
	decode_back(it, it->b->nrestarts - 1, it->b->restart_off);
}

void rk_block_iter_prev(rk_block_iter_t *it)
{
	if (!it->valid || it->off == 0) {
		it->valid = false;
		return;
	}
	if (it->back_i > 0 && it->back_i < it->nback &&
	    it->back[it->back_i].off == it->off) {
		const rk_block_back_t *e = &it->back[--it->back_i];
		if (!key_room(it, e->key_len, 0))
			return;
		memcpy(it->key, it->back_keys + e->key_at, e->key_len);
		it->key_len = e->key_len;
		it->val = e->val;
		it->off = e->off;
		it->next_off = e->next_off;
		return;
	}
	uint32_t end = it->off;
	/* Last restart point before END (they ascend, the first is 0). */
	uint32_t lo = 0, hi = it->b->nrestarts - 1;
	while (lo < hi) {
		uint32_t mid = (lo + hi + 1) / 2;
		if (restart(it->b, mid) < end)
			lo = mid;
		else
			hi = mid - 1;
	}
	decode_back(it, lo, end);
}

/*
 * Private to the config module: the written forms of the values its
 * getters read, as pure functions of text (no tree, no errors recorded), so
 * that one place says what "64MiB" or "0x10" means. docs/config.md gives
 * the same rules to the people who write the files.
 */
#ifndef RK_CONFIG_VALUE_H
#define RK_CONFIG_VALUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* An optional sign, then decimal digits or 0x and hex digits. False on
 * anything else, including a value outside int64_t: never a wrapped one. */
bool rk_config_parse_int(const char *text, int64_t *out);

/* true/yes/on or false/no/off, in any case. */
bool rk_config_parse_bool(const char *text, bool *out);

/* Decimal digits and one of ms, s, m, h, d written right after them, or
 * the digits alone for milliseconds. False if it overflows uint64_t. */
bool rk_config_parse_duration(const char *text, uint64_t *ms);

/* Decimal digits and one of B, KiB, MiB, GiB, TiB (powers of 1024) or KB,
 * MB, GB, TB (powers of 1000), or the digits alone for bytes. False if it
 * overflows uint64_t. */
bool rk_config_parse_size(const char *text, uint64_t *bytes);

/* MS or BYTES in the largest unit that shows it exactly ("90s", "4KiB",
 * "1500ms", "0B"), for the bounds in messages. */
void rk_config_format_duration(char *buf, size_t size, uint64_t ms);
void rk_config_format_size(char *buf, size_t size, uint64_t bytes);

#endif

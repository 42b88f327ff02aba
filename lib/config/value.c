/*
 * The written forms of config values; see value.h. Every parser here is
 * strict: the whole text must match, with no spaces, fractions or signs
 * beyond what value.h lists, because a value that is almost right is more
 * often a mistake than an intent ("5 s", "1.5s", "4kb" are refused, and
 * the getter's message says what would have been accepted).
 *
 * Overflow is checked before each multiplication, so a long run of digits
 * or a large count of a large unit is refused rather than wrapped to a
 * small number that would pass a range check.
 */
#include "config/value.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

struct unit {
	const char *name; /* the suffix as written */
	uint64_t scale;   /* what one of it is worth */
};

/* Largest first, so that a bound is shown in the biggest exact unit; the
 * empty suffix (a bare number) is for parsing only. */
static const struct unit duration_units[] = {
    {"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000},
    {"ms", 1},       {"", 1},        {NULL, 0},
};

static const struct unit size_units[] = {
    {"TiB", 1ull << 40},
    {"TB", 1000000000000ull},
    {"GiB", 1ull << 30},
    {"GB", 1000000000},
    {"MiB", 1ull << 20},
    {"MB", 1000000},
    {"KiB", 1ull << 10},
    {"KB", 1000},
    {"B", 1},
    {"", 1},
    {NULL, 0},
};

/* Decimal digits, at least one, that fit a uint64_t. */
static bool parse_count(const char **s, uint64_t *out)
{
	const char *p = *s;
	uint64_t v = 0;
	if (!is_digit(*p))
		return false;
	for (; is_digit(*p); p++) {
		unsigned d = (unsigned)(*p - '0');
		if (v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*s = p;
	*out = v;
	return true;
}

/* A count and one of UNITS, written together ("64MiB"), without overflow. */
static bool parse_amount(const char *s, const struct unit *units, uint64_t *out)
{
	uint64_t v;
	if (!parse_count(&s, &v))
		return false;
	for (const struct unit *u = units; u->name != NULL; u++) {
		if (strcmp(s, u->name) != 0)
			continue;
		if (v > UINT64_MAX / u->scale)
			return false;
		*out = v * u->scale;
		return true;
	}
	return false;
}

static void format_amount(char *buf, size_t size, uint64_t v,
                          const struct unit *units)
{
	for (const struct unit *u = units; u->name != NULL; u++) {
		if (u->name[0] != '\0' && (v != 0 || u->scale == 1) &&
		    v % u->scale == 0) {
			snprintf(buf, size, "%" PRIu64 "%s", v / u->scale,
			         u->name);
			return;
		}
	}
	snprintf(buf, size, "%" PRIu64, v);
}

static int digit_value(char c, unsigned base)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (base == 16 && c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (base == 16 && c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

bool rk_config_parse_int(const char *s, int64_t *out)
{
	bool neg = false;
	if (*s == '+' || *s == '-')
		neg = *s++ == '-';
	unsigned base = 10;
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		s += 2;
	}
	uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
	uint64_t v = 0;
	if (*s == '\0')
		return false;
	for (; *s != '\0'; s++) {
		int d = digit_value(*s, base);
		if (d < 0 || v > (limit - (unsigned)d) / base)
			return false;
		v = v * base + (unsigned)d;
	}
	if (!neg)
		*out = (int64_t)v;
	else
		*out = v == 0 ? 0 : -(int64_t)(v - 1) - 1;
	return true;
}

bool rk_config_parse_bool(const char *text, bool *out)
{
	static const char *const yes[] = {"true", "yes", "on"};
	static const char *const no[] = {"false", "no", "off"};
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(text, yes[i]) == 0) {
			*out = true;
			return true;
		}
		if (strcasecmp(text, no[i]) == 0) {
			*out = false;
			return true;
		}
	}
	return false;
}

bool rk_config_parse_duration(const char *text, uint64_t *ms)
{
	return parse_amount(text, duration_units, ms);
}

bool rk_config_parse_size(const char *text, uint64_t *bytes)
{
	return parse_amount(text, size_units, bytes);
}

void rk_config_format_duration(char *buf, size_t size, uint64_t ms)
{
	format_amount(buf, size, ms, duration_units);
}

void rk_config_format_size(char *buf, size_t size, uint64_t bytes)
{
	format_amount(buf, size, bytes, size_units);
}

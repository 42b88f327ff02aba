/* Time sources, in one place so every module reads them the same way. */
#ifndef RK_CLOCK_H
#define RK_CLOCK_H

#include <stdint.h>

/* Monotonic milliseconds / nanoseconds: for deadlines and latencies. */
uint64_t rk_clock_mono_ms(void);
uint64_t rk_clock_mono_ns(void);

/* Wall-clock milliseconds since the Unix epoch: for what crosses machines. */
uint64_t rk_clock_unix_ms(void);

#endif

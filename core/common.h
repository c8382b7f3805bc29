/* common.h - assertions, branch hints and small helpers shared by every module. */
#ifndef AU_COMMON_H
#define AU_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#define AU_LIKELY(x)   __builtin_expect(!!(x), 1)
#define AU_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define AU_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define AU_CONTAINER_OF(ptr, type, member) \
    ((type *)(void *)((char *)(ptr) - offsetof(type, member)))
#define AU_MIN(a, b) ((a) < (b) ? (a) : (b))
#define AU_MAX(a, b) ((a) > (b) ? (a) : (b))
#define AU_UNUSED(x) ((void)(x))

/* Always-on assertion for programmer errors (never for bad peer input):
 * logs file/line/expression and a backtrace, then aborts. */
void au_assert_fail(const char *expr, const char *file, int line, const char *func)
    __attribute__((noreturn, cold));
#define AU_ASSERT(e) \
    (AU_LIKELY(e) ? (void)0 : au_assert_fail(#e, __FILE__, __LINE__, __func__))

/* Big-endian helpers used by the wire codecs. */
static inline uint16_t au_rd16(const uint8_t *p) { return (uint16_t)((p[0] << 8) | p[1]); }
static inline uint32_t au_rd32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline void au_wr16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static inline void au_wr32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}

/* Monotonic and wall clocks in milliseconds. */
uint64_t au_now_ms(void);
uint64_t au_now_us(void);
uint64_t au_wall_ms(void);

#endif

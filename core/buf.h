/* buf.h - reference-counted byte buffers.
 * A message delivered to many connections (possibly on many shards) is serialised once into an
 * au_buf and every connection's send queue holds a reference to the same bytes. The count is atomic
 * because references cross shards; a buffer private to one connection is just a buffer with refs == 1. */
#ifndef AU_BUF_H
#define AU_BUF_H

#include "core/common.h"
#include <stdatomic.h>

struct au_buf {
    atomic_uint refs;
    uint32_t len;        /* bytes used */
    uint32_t cap;        /* bytes allocated in data[] */
    uint32_t _pad;
    uint8_t data[];
};

struct au_buf *au_buf_new(uint32_t cap);               /* refs = 1, len = 0; aborts on OOM */
struct au_buf *au_buf_from(const void *p, uint32_t len); /* copy */
static inline struct au_buf *au_buf_ref(struct au_buf *b)
{
    atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
    return b;
}
void au_buf_unref(struct au_buf *b);
static inline void au_buf_ref_n(struct au_buf *b, unsigned n)
{
    atomic_fetch_add_explicit(&b->refs, n, memory_order_relaxed);
}

#endif

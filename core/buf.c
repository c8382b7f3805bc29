/* buf.c - reference-counted buffers (see buf.h). */
#include "core/buf.h"

#include <stdlib.h>
#include <string.h>

struct au_buf *au_buf_new(uint32_t cap)
{
    struct au_buf *b = malloc(sizeof *b + cap);
    AU_ASSERT(b != NULL);
    atomic_init(&b->refs, 1);
    b->len = 0;
    b->cap = cap;
    return b;
}

struct au_buf *au_buf_from(const void *p, uint32_t len)
{
    struct au_buf *b = au_buf_new(len);
    memcpy(b->data, p, len);
    b->len = len;
    return b;
}

void au_buf_unref(struct au_buf *b)
{
    if (!b) return;
    unsigned prev = atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel);
    AU_ASSERT(prev > 0);
    if (prev == 1) free(b);
}

/* xq.c - SPSC queue setup (see xq.h). */
#include "core/xq.h"

#include <stdlib.h>

void au_xq_init(struct au_xq *q, size_t capacity)
{
    AU_ASSERT(capacity && (capacity & (capacity - 1)) == 0);
    atomic_init(&q->head, 0);
    atomic_init(&q->tail, 0);
    q->mask = capacity - 1;
    q->slots = calloc(capacity, sizeof(void *));
    AU_ASSERT(q->slots != NULL);
}

void au_xq_free(struct au_xq *q)
{
    free(q->slots);
    q->slots = NULL;
}

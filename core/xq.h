/* xq.h - lock-free single-producer single-consumer queue of pointers (one per ordered shard pair).
 * The producer shard pushes, the consumer shard pops; capacity is a power of two fixed at init.
 * Seastar-style: a full queue is not waited on — the producer keeps an overflow list and retries. */
#ifndef AU_XQ_H
#define AU_XQ_H

#include "core/common.h"
#include <stdatomic.h>

struct au_xq {
    _Alignas(64) atomic_size_t head;   /* next slot to read (consumer) */
    _Alignas(64) atomic_size_t tail;   /* next slot to write (producer) */
    _Alignas(64) size_t mask;
    void **slots;
};

void au_xq_init(struct au_xq *q, size_t capacity);
void au_xq_free(struct au_xq *q);

static inline bool au_xq_push(struct au_xq *q, void *item)
{
    size_t t = atomic_load_explicit(&q->tail, memory_order_relaxed);
    size_t h = atomic_load_explicit(&q->head, memory_order_acquire);
    if (t - h > q->mask) return false;
    q->slots[t & q->mask] = item;
    atomic_store_explicit(&q->tail, t + 1, memory_order_release);
    return true;
}

static inline void *au_xq_pop(struct au_xq *q)
{
    size_t h = atomic_load_explicit(&q->head, memory_order_relaxed);
    size_t t = atomic_load_explicit(&q->tail, memory_order_acquire);
    if (h == t) return NULL;
    void *item = q->slots[h & q->mask];
    atomic_store_explicit(&q->head, h + 1, memory_order_release);
    return item;
}

static inline bool au_xq_empty(struct au_xq *q)
{
    return atomic_load_explicit(&q->head, memory_order_relaxed) ==
           atomic_load_explicit(&q->tail, memory_order_acquire);
}

#endif

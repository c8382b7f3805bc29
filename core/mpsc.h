/* mpsc.h - Vyukov's intrusive multi-producer single-consumer queue (unbounded, lock-free).
 *
 * Producers (event-loop shards) push with one atomic exchange and one store: wait-free, never
 * blocks, never allocates (the node is embedded in the caller's request). The single consumer (a
 * worker thread of core/workpool.c) pops in FIFO order per producer. Between a producer's exchange
 * and its link store the queue is briefly "inconsistent": pop then returns NULL although an item is
 * on its way; mpsc_idle() tells the consumer whether it may sleep (it returns false in that window). */
#ifndef AU_CORE_MPSC_H
#define AU_CORE_MPSC_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

struct mpsc_node {
    _Atomic(struct mpsc_node *) next;
};

struct mpsc {
    _Alignas(64) _Atomic(struct mpsc_node *) tail; /* producers exchange here */
    _Alignas(64) struct mpsc_node *head;           /* consumer only */
    struct mpsc_node stub;
};

static inline void mpsc_init(struct mpsc *q)
{
    atomic_store_explicit(&q->stub.next, NULL, memory_order_relaxed);
    q->head = &q->stub;
    atomic_store_explicit(&q->tail, &q->stub, memory_order_release);
}

/* Any thread. seq_cst exchange: a consumer that announced sleep (seq_cst store, then mpsc_idle)
 * either sees this node or the producer sees the announcement (Dekker pattern, see core/workpool.h). */
static inline void mpsc_push(struct mpsc *q, struct mpsc_node *n)
{
    atomic_store_explicit(&n->next, NULL, memory_order_relaxed);
    struct mpsc_node *prev = atomic_exchange_explicit(&q->tail, n, memory_order_seq_cst);
    atomic_store_explicit(&prev->next, n, memory_order_release);
}

/* Consumer only. NULL when empty or while a push is half done (see mpsc_idle). */
static inline struct mpsc_node *mpsc_pop(struct mpsc *q)
{
    struct mpsc_node *head = q->head;
    struct mpsc_node *next = atomic_load_explicit(&head->next, memory_order_acquire);
    if (head == &q->stub) {
        if (!next) return NULL;
        q->head = next;
        head = next;
        next = atomic_load_explicit(&head->next, memory_order_acquire);
    }
    if (next) {
        q->head = next;
        return head;
    }
    if (head != atomic_load_explicit(&q->tail, memory_order_acquire)) return NULL; /* push in progress */
    mpsc_push(q, &q->stub);
    next = atomic_load_explicit(&head->next, memory_order_acquire);
    if (next) {
        q->head = next;
        return head;
    }
    return NULL;
}

/* Consumer only: true when nothing is queued nor being pushed (after pop returned NULL). */
static inline bool mpsc_idle(struct mpsc *q)
{
    return atomic_load_explicit(&q->tail, memory_order_seq_cst) == q->head &&
           atomic_load_explicit(&q->head->next, memory_order_acquire) == NULL;
}

#endif

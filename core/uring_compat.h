/* uring_compat.h - io_uring features newer than liburing 2.3, set through raw SQE fields.
 * Everything here is supported by the running kernel (6.x); only the helpers are missing. */
#ifndef AU_URING_COMPAT_H
#define AU_URING_COMPAT_H

#include <liburing.h>

/* msg_ring command values (include/uapi/linux/io_uring.h). */
#ifndef IORING_MSG_DATA
#define IORING_MSG_DATA 0
#endif
#ifndef IORING_MSG_SEND_FD
#define IORING_MSG_SEND_FD 1
#endif

/* Post a CQE with (res = len, user_data = data) on the ring `ring_fd`. */
static inline void au_prep_msg_ring_data(struct io_uring_sqe *sqe, int ring_fd, unsigned len, uint64_t data)
{
    io_uring_prep_rw(IORING_OP_MSG_RING, sqe, ring_fd, NULL, len, data);
    sqe->addr = IORING_MSG_DATA;
}

/* Install our fixed file `src_slot` into the target ring's table at a free slot chosen by the
 * kernel (IORING_FILE_INDEX_ALLOC); the target gets a CQE with res = the new slot (or -errno)
 * and user_data = data. Our slot stays ours until we close it. */
static inline void au_prep_msg_ring_fd_alloc(struct io_uring_sqe *sqe, int ring_fd, unsigned src_slot,
                                             uint64_t data)
{
    io_uring_prep_rw(IORING_OP_MSG_RING, sqe, ring_fd, NULL, 0, data);
    sqe->addr = IORING_MSG_SEND_FD;
    sqe->addr3 = src_slot;
    sqe->file_index = IORING_FILE_INDEX_ALLOC; /* raw value: the kernel allocates (not index + 1) */
}

/* Multishot recv into the provided-buffer group `bgid`, on a fixed file. */
static inline void au_prep_recv_multishot_fixed(struct io_uring_sqe *sqe, unsigned slot, int bgid)
{
    io_uring_prep_recv_multishot(sqe, (int)slot, NULL, 0, 0);
    sqe->flags |= IOSQE_FIXED_FILE | IOSQE_BUFFER_SELECT;
    sqe->buf_group = (uint16_t)bgid;
}

/* Socket commands of IORING_OP_URING_CMD (include/uapi/linux/io_uring.h, kernel 6.7+). */
#ifndef SOCKET_URING_OP_GETSOCKOPT
#define SOCKET_URING_OP_GETSOCKOPT 2
#endif

/* getsockopt(level, optname) on the fixed file `slot`, asynchronously: the kernel writes optlen bytes to
 * optval and completes with res = that length (or -errno). The raw fields are the uapi's level/optname
 * (over addr), optlen (over file_index) and optval (over addr3). */
static inline void au_prep_getsockopt_fixed(struct io_uring_sqe *sqe, unsigned slot, int level, int optname,
                                            void *optval, unsigned optlen)
{
    io_uring_prep_rw(IORING_OP_URING_CMD, sqe, (int)slot, NULL, 0, 0);
    sqe->flags |= IOSQE_FIXED_FILE;
    sqe->off = SOCKET_URING_OP_GETSOCKOPT; /* cmd_op: the low 32 bits of off */
    sqe->addr = (uint64_t)(uint32_t)level | (uint64_t)(uint32_t)optname << 32;
    sqe->file_index = optlen;
    sqe->addr3 = (uint64_t)(uintptr_t)optval;
}

#endif

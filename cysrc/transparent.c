/*
 * Transparent mode: syscalls made by foreign code (OpenSSL, libpq, any C
 * extension, glibc itself) become cancellation points for workers that opt
 * in. Foreign code has no flag check before its syscalls, so the rule of the
 * trampoline is applied to the interrupted context instead: act only where
 * the kernel has produced nothing.
 *
 * 1. Restartable calls. A blocking call that our SA_RESTART handler
 *    interrupts before transferring anything returns -ERESTARTSYS in the
 *    kernel, which rewinds the saved PC onto the syscall instruction and
 *    puts the syscall number back in the number register before running the
 *    handler. A thread interrupted just *before* executing a syscall
 *    instruction looks the same. In both cases, if the number is on the
 *    allow-list, the handler writes -ECANCELED to the result register and
 *    steps the PC past the instruction: the syscall never runs (again), and
 *    the libc wrapper returns -1/ECANCELED to its caller.
 * 2. EINTR-style calls (poll, select, epoll_wait, nanosleep...) return
 *    -EINTR past the instruction, and the number is gone from the context.
 *    The re-sender reads /proc/self/task/TID/syscall before signalling: if
 *    the thread is blocked in an allow-listed call, its return PC is
 *    published in the slot, and the handler converts -EINTR at exactly that
 *    PC into -ECANCELED. EINTR already means "nothing happened", so the
 *    conversion loses nothing. (A residual case stays: the same return PC
 *    reused by a different syscall, i.e. glibc's generic syscall(), between
 *    the probe and the signal; only -EINTR results are ever converted.)
 * 3. A signal that lands anywhere else (Python code, a futex wait, another
 *    signal handler) does nothing and leaves the signal unblocked: the
 *    re-sender tries again with a bounded back-off until the job acts on the
 *    request (state DISABLE) or ends.
 *
 * Never on the list: futex (glibc aborts on futex errors it does not expect;
 * CPython's own locks must not fail), close (MASKED mode exempts it: the fd
 * would be released anyway), and anything that is not a blocking wait.
 */
#define _GNU_SOURCE
#include "cancel_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include "aioc_sysnums.h"
#include <time.h>
#include <unistd.h>

#define FIRST_DELAY_NS 1000000LL      /* 1 ms */
#define MAX_DELAY_NS 50000000LL       /* 50 ms */

/*
 * Safe to fail with ECANCELED when stopped on the syscall instruction: the
 * kernel returns -ERESTARTSYS from these only if nothing was transferred
 * (reads and receives return the partial count instead, writes and sends
 * likewise, accept before dequeuing a connection, wait4/waitid before reaping,
 * openat of a FIFO before a peer arrived, connect with the handshake in
 * flight — the socket then stays connecting, as with the trampoline — and
 * lock waits before the lock is granted).
 */
static int restart_safe(long nr, long arg1)
{
    switch (nr) {
    case SYS_read: case SYS_readv: case SYS_pread64: case SYS_preadv:
    case SYS_preadv2: case SYS_recvfrom: case SYS_recvmsg:
    case SYS_write: case SYS_writev: case SYS_pwrite64: case SYS_pwritev:
    case SYS_pwritev2: case SYS_sendto: case SYS_sendmsg:
    case SYS_accept: case SYS_accept4: case SYS_connect:
    case SYS_wait4: case SYS_waitid: case SYS_openat: case SYS_flock:
#ifdef SYS_open
    case SYS_open:
#endif
        return 1;
    case SYS_fcntl:
        /* Only the blocking lock commands: F_GETFL & co. never block, and
         * failing them would break code that never asked to be cancelled. */
        return arg1 == F_SETLKW || arg1 == F_OFD_SETLKW;
    default:
        return 0;
    }
}

/* Calls whose -EINTR may become -ECANCELED (case 2 above): the pure waits,
 * plus the restartable ones, which return -EINTR too when a timeout
 * (SO_RCVTIMEO, SO_SNDTIMEO) is set. */
static int eintr_safe(long nr, long arg1)
{
    switch (nr) {
#ifdef SYS_poll
    case SYS_poll:
#endif
#ifdef SYS_select
    case SYS_select:
#endif
#ifdef SYS_epoll_wait
    case SYS_epoll_wait:
#endif
    case SYS_ppoll: case SYS_pselect6: case SYS_epoll_pwait:
    case SYS_epoll_pwait2: case SYS_nanosleep: case SYS_clock_nanosleep:
        return 1;
    default:
        return restart_safe(nr, arg1);
    }
}

#if defined(__x86_64__)
/* syscall: 0f 05. Number in rax (restored from orig_rax on a restart),
 * result in rax, second argument in rsi. */
int aioc_foreign_cancel(aioc_slot *s, ucontext_t *uc)
{
    greg_t *g = uc->uc_mcontext.gregs;
    const unsigned char *ip = (const unsigned char *)g[REG_RIP];
    /* ip[0] is the current instruction, so readable; ip[1] only if ip[0]
     * starts a multi-byte instruction (0f is always an escape byte). */
    if (ip[0] == 0x0f && ip[1] == 0x05) {
        if (!restart_safe(g[REG_RAX], g[REG_RSI]))
            return 0;
        g[REG_RAX] = -ECANCELED;
        g[REG_RIP] += 2;
        return 1;
    }
    if (s->expect_pc && (uintptr_t)g[REG_RIP] == s->expect_pc
        && g[REG_RAX] == -EINTR) {
        g[REG_RAX] = -ECANCELED;
        return 1;
    }
    return 0;
}
#elif defined(__aarch64__)
/* svc #0: d4000001. Number in x8, result in x0 (restored from orig_x0 on a
 * restart), second argument in x1. */
int aioc_foreign_cancel(aioc_slot *s, ucontext_t *uc)
{
    mcontext_t *m = &uc->uc_mcontext;
    if (*(const uint32_t *)m->pc == 0xd4000001u) {
        if (!restart_safe((long)m->regs[8], (long)m->regs[1]))
            return 0;
        m->regs[0] = (unsigned long)-ECANCELED;
        m->pc += 4;
        return 1;
    }
    if (s->expect_pc && m->pc == s->expect_pc && (long)m->regs[0] == -EINTR) {
        m->regs[0] = (unsigned long)-ECANCELED;
        return 1;
    }
    return 0;
}
#endif

/* ---- the re-sender ------------------------------------------------------ */

static pthread_cond_t wake;
static int running;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Publishes the return PC of the allow-listed call the thread blocks in, if
 * any. /proc reports "nr a1..a6 sp pc" while the thread is in a syscall,
 * "running" or "-1 sp pc" otherwise. */
static void probe(aioc_slot *s)
{
    char path[64], line[256];
    long nr, a0, a1;
    unsigned long pc = 0;
    FILE *f;
    s->expect_pc = 0;
    snprintf(path, sizeof path, "/proc/self/task/%d/syscall", (int)s->tid);
    if (!(f = fopen(path, "re")))
        return;
    if (fgets(line, sizeof line, f)
        && sscanf(line, "%ld %lx %lx %*x %*x %*x %*x %*x %lx",
                  &nr, &a0, &a1, &pc) == 4
        && eintr_safe(nr, a1))
        s->expect_pc = pc;
    fclose(f);
}

static void *resender_main(void *unused)
{
    (void)unused;
    pthread_mutex_lock(&aioc_lock);
    for (;;) {
        int64_t now = now_ns(), next = INT64_MAX;
        int i, n = aioc_slot_count();
        for (i = 0; i < n; i++) {
            aioc_slot *s = aioc_slot_at(i);
            if (!s->in_use || !s->transparent || !s->cancel
                || s->state == AIOC_DISABLE)
                continue;
            if (s->resend_at_ns <= now) {
                probe(s);
                aioc_send_cancel(s, s->tid);
                s->resend_at_ns = now + s->resend_delay_ns;
                if (s->resend_delay_ns < MAX_DELAY_NS)
                    s->resend_delay_ns *= 2;
            }
            if (s->resend_at_ns < next)
                next = s->resend_at_ns;
        }
        if (next == INT64_MAX) {
            pthread_cond_wait(&wake, &aioc_lock);
        } else {
            struct timespec until = {next / 1000000000LL, next % 1000000000LL};
            pthread_cond_timedwait(&wake, &aioc_lock, &until);
        }
    }
    return NULL;
}

static void start(void)
{
    pthread_condattr_t attr;
    pthread_attr_t tattr;
    pthread_t thread;
    sigset_t all, old;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&wake, &attr);
    pthread_condattr_destroy(&attr);
    /* No signal of the application's, nor ours, is ever delivered there. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_attr_init(&tattr);
    pthread_attr_setdetachstate(&tattr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&tattr, 64 * 1024);
    running = pthread_create(&thread, &tattr, resender_main, NULL) == 0;
    pthread_attr_destroy(&tattr);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

void aioc_resender_kick(aioc_slot *s)
{
    s->resend_at_ns = 0;
    s->resend_delay_ns = FIRST_DELAY_NS;
    if (!running)
        start();
    if (running)
        pthread_cond_signal(&wake);
    else
        aioc_send_cancel(s, s->tid);   /* no thread: one plain attempt */
}

void aioc_resender_atfork_child(void)
{
    running = 0;   /* the thread was not copied into the child */
}

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
 *    -EINTR past the instruction. The re-sender reads
 *    /proc/self/task/TID/syscall before signalling: if the thread is
 *    blocked in an allow-listed call, that call is published in the slot —
 *    number, six argument registers, stack pointer, return PC — and the
 *    handler converts -EINTR into -ECANCELED only if the interrupted context
 *    still shows that very call. The return PC alone is not enough: since
 *    glibc 2.41 every cancellable wrapper (poll, clock_nanosleep, read, and
 *    the futex waits behind pthread_cond_timedwait and sem_clockwait that
 *    CPython's GIL and locks use) returns through the one `syscall` in
 *    __syscall_cancel_arch, musl's through __syscall_cp_asm, and generic
 *    syscall() is one site everywhere. Between the probe and the signal the
 *    thread may leave the poll and wait on a futex at that PC; a futex's
 *    -EINTR turned into -ECANCELED makes glibc abort. The argument
 *    registers and the stack pointer survive the syscall (x86_64: rdi, rsi,
 *    rdx, r10, r8, r9; aarch64: x1-x5, x0 holds the result, and x8 still
 *    holds the number, which is compared too and never futex), so a
 *    different call at the same site does not match: a timed futex wait
 *    has the futex word's address in its first argument and a timeout
 *    pointer in its fourth, where every call on the EINTR list has an fd,
 *    a count, a clock id or a pollfd/fd_set/timespec pointer of its own.
 *    EINTR already means "nothing happened", so a conversion loses nothing.
 * 3. A signal that lands anywhere else (Python code, a futex wait) does
 *    nothing and leaves the signal unblocked: the re-sender tries again with
 *    a bounded back-off until the job acts on the request (state DISABLE) or
 *    ends, never with an instance still pending (at most one per thread).
 * 4. A signal that lands inside a foreign signal handler running on top of
 *    the job (the interrupted context blocks signals the job's mask does
 *    not) is deferred as the trampoline path defers: re-queued, left
 *    blocked in that context, so it fires again when the handler returns
 *    and acts on the job's own call. The handler's syscalls are untouched.
 *
 * Never on the list: futex (glibc aborts on futex errors it does not expect;
 * CPython's own locks must not fail), close (MASKED mode exempts it: the fd
 * would be released anyway), and anything that is not a blocking wait.
 */
#define _GNU_SOURCE
#include "cancel_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
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

/* Whether the interrupted context blocks a signal that the job's own mask
 * does not: the kernel adds the handled signal (and the handler's sa_mask)
 * while a handler runs, so this is a foreign handler on top of the job's
 * code (or a block the job made itself, which it undoes by restoring its
 * mask; both release the deferred instance). Unknown mask: not nested. */
int aioc_nested(aioc_slot *s, ucontext_t *uc, int sig)
{
    int i;
    if (!s->job_mask_known)
        return 0;
    for (i = 1; i < 65; i++)
        if (i != sig && sigismember(&uc->uc_sigmask, i) == 1
            && sigismember(&s->job_mask, i) != 1)
            return 1;
    return 0;
}

/* The probed call's argument registers, compared with the context. */
static int args_match(aioc_slot *s, unsigned long a0, unsigned long a1,
                      unsigned long a2, unsigned long a3, unsigned long a4,
                      unsigned long a5, int skip_a0)
{
    return (skip_a0 || a0 == s->expect_args[0]) && a1 == s->expect_args[1]
        && a2 == s->expect_args[2] && a3 == s->expect_args[3]
        && a4 == s->expect_args[4] && a5 == s->expect_args[5];
}

#if defined(__x86_64__)
/* syscall: 0f 05. Number in rax (restored from orig_rax on a restart),
 * result in rax, arguments in rdi, rsi, rdx, r10, r8, r9 (preserved). */
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
    /* The number is gone (rax holds the result): the six argument
     * registers and the stack pointer identify the probed call. */
    if (s->expect_pc && (uintptr_t)g[REG_RIP] == s->expect_pc
        && g[REG_RAX] == -EINTR && (uintptr_t)g[REG_RSP] == s->expect_sp
        && args_match(s, g[REG_RDI], g[REG_RSI], g[REG_RDX], g[REG_R10],
                      g[REG_R8], g[REG_R9], 0)) {
        g[REG_RAX] = -ECANCELED;
        return 1;
    }
    return 0;
}
#elif defined(__aarch64__)
/* svc #0: d4000001. Number in x8 (kept), result in x0 (restored from
 * orig_x0 on a restart), arguments in x0-x5 (x1-x5 kept). */
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
    if (s->expect_pc && m->pc == s->expect_pc && (long)m->regs[0] == -EINTR
        && (long)m->regs[8] == s->expect_nr && (long)m->regs[8] != SYS_futex
        && m->sp == s->expect_sp
        && args_match(s, 0, m->regs[1], m->regs[2], m->regs[3], m->regs[4],
                      m->regs[5], 1)) {
        m->regs[0] = (unsigned long)-ECANCELED;
        return 1;
    }
    return 0;
}
#endif

/* ---- the re-sender ------------------------------------------------------ */

static int wake_fd = -1;       /* eventfd: kicks (and the handler) wake it */
static int running;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Publishes the allow-listed call the thread blocks in, if any. /proc
 * reports "nr a0..a5 sp pc" while the thread is in a syscall, "running" or
 * "-1 sp pc" otherwise. expect_pc goes last and is what the handler checks
 * first; no instance is pending while we write (the caller checked
 * sig_out), so the handler never sees a half-written probe. */
static void probe(aioc_slot *s)
{
    char path[64], line[256];
    long nr;
    unsigned long a[6], sp, pc;
    FILE *f;
    int i;
    s->expect_pc = 0;
    snprintf(path, sizeof path, "/proc/self/task/%d/syscall", (int)s->tid);
    if (!(f = fopen(path, "re")))
        return;
    if (fgets(line, sizeof line, f)
        && sscanf(line, "%ld %lx %lx %lx %lx %lx %lx %lx %lx", &nr, &a[0],
                  &a[1], &a[2], &a[3], &a[4], &a[5], &sp, &pc) == 9
        && nr != SYS_futex && eintr_safe(nr, (long)a[1])) {
        s->expect_nr = nr;
        for (i = 0; i < 6; i++)
            s->expect_args[i] = a[i];
        s->expect_sp = sp;
        __atomic_store_n(&s->expect_pc, pc, __ATOMIC_RELEASE);
    }
    fclose(f);
}

/* One attempt for slot s (registry lock held). */
static void attempt(aioc_slot *s)
{
    int was_retry = s->retry, err;
    if (!aioc_handler_intact()) {
        aioc_count(AIOC_STAT_REPLACED);
        return;
    }
    /* Never a second instance: a thread that keeps the signal blocked
     * (its own pthread_sigmask, a deferral) would pile them up until the
     * user's RLIMIT_SIGPENDING is gone. The one pending acts when it is
     * delivered, or is drained at the job's end. */
    if (__atomic_load_n(&s->sig_out, __ATOMIC_SEQ_CST)) {
        aioc_count(AIOC_STAT_HELD);
        return;
    }
    if (s->transparent)
        probe(s);
    if (aioc_test_after_probe)
        aioc_test_after_probe(s);
    err = aioc_send_cancel(s, s->tid);
    if (err == 0) {
        s->retry = 0;
        if (was_retry)
            aioc_count(AIOC_STAT_RETRIED);
    } else if (err != ESRCH) {
        s->retry = 1;
    }
}

static void *resender_main(void *unused)
{
    struct pollfd pfd;
    (void)unused;
    pfd.fd = wake_fd;
    pfd.events = POLLIN;
    pthread_mutex_lock(&aioc_lock);
    for (;;) {
        int64_t now = now_ns(), next = INT64_MAX;
        int i, n = aioc_slot_count();
        uint64_t drained;
        for (i = 0; i < n; i++) {
            aioc_slot *s = aioc_slot_at(i);
            if (!s->in_use || !s->cancel || s->state == AIOC_DISABLE) {
                continue;
            }
            if (!s->transparent && !s->retry)
                continue;
            if (s->resend_delay_ns < FIRST_DELAY_NS)
                s->resend_delay_ns = FIRST_DELAY_NS;   /* a poke, never kicked */
            if (s->resend_at_ns <= now) {
                attempt(s);
                if (!s->transparent && !s->retry)
                    continue;          /* queued at last: done */
                s->resend_at_ns = now + s->resend_delay_ns;
                if (s->resend_delay_ns < MAX_DELAY_NS)
                    s->resend_delay_ns *= 2;
            }
            if (s->resend_at_ns < next)
                next = s->resend_at_ns;
        }
        pthread_mutex_unlock(&aioc_lock);
        if (next == INT64_MAX) {
            poll(&pfd, 1, -1);
        } else {
            int64_t wait = next - now_ns();
            struct timespec ts = {0, 0};
            if (wait > 0) {
                ts.tv_sec = wait / 1000000000LL;
                ts.tv_nsec = wait % 1000000000LL;
            }
            ppoll(&pfd, 1, &ts, NULL);
        }
        while (read(wake_fd, &drained, sizeof drained) > 0)
            ;
        pthread_mutex_lock(&aioc_lock);
    }
    return NULL;
}

static void start(void)
{
    pthread_attr_t tattr;
    pthread_t thread;
    sigset_t all, old;
    wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (wake_fd < 0)
        return;
    /* No signal of the application's, nor ours, is ever delivered there. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_attr_init(&tattr);
    pthread_attr_setdetachstate(&tattr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&tattr, 64 * 1024);
    running = pthread_create(&thread, &tattr, resender_main, NULL) == 0;
    pthread_attr_destroy(&tattr);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (!running) {
        close(wake_fd);
        wake_fd = -1;
    }
}

void aioc_resender_poke(void)
{
    static const uint64_t one = 1;
    int fd = __atomic_load_n(&wake_fd, __ATOMIC_ACQUIRE);
    if (fd >= 0 && write(fd, &one, sizeof one) < 0) {
        /* EAGAIN: the counter is saturated, so it is awake anyway. */
    }
}

void aioc_resender_kick(aioc_slot *s, long long delay_ns)
{
    s->resend_at_ns = delay_ns ? now_ns() + delay_ns : 0;
    s->resend_delay_ns = FIRST_DELAY_NS;
    if (!running)
        start();
    if (running)
        aioc_resender_poke();
    else if (!s->retry)
        aioc_deliver(s);   /* no thread: one plain attempt */
}

void aioc_resender_atfork_child(void)
{
    /* The thread was not copied into the child, and its eventfd must not
     * wake the parent's: the child starts its own on first use. */
    running = 0;
    if (wake_fd >= 0)
        close(wake_fd);
    wake_fd = -1;
}

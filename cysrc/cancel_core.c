/*
 * aiocancel's cancellation core; see cancel_core.h and ARCHITECTURE.md. The
 * design is from two posts by Rich Felker (musl libc), not in this
 * repository: "New pthread cancellation." (17 Apr 2011: race-free
 * cancellation through a trampoline whose code range the handler checks)
 * and "Masked cancellation mode draft" (21 Feb 2015: the MASKED state).
 *
 * Who touches what:
 *   - the owning thread reads and writes its slot's state and acted fields;
 *   - cancel requests (any thread) set the cancel flag and send the signal,
 *     holding `lock` so that the target cannot unregister (and have its tid
 *     reused) or begin its next job in between (a job's end takes no lock:
 *     see aioc_job_end);
 *   - the signal handler reads a slot found through si_value, never TLS, so
 *     it is safe even in a thread whose TLS it would be the first to touch.
 * Slots are never freed, only recycled, so an index carried by a signal that
 * is still queued always names valid memory; the handler checks the tid.
 */
#define _GNU_SOURCE
#include "cancel_internal.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

extern long aioc_syscall_cp_asm(const volatile int *cancel, long nr, long a,
                                long b, long c, long d, long e, long f);
extern const char aioc_cp_begin[], aioc_cp_end[], aioc_cp_cancel[];

#if defined(__x86_64__)
#define AIOC_PC(uc) ((uc)->uc_mcontext.gregs[REG_RIP])
#define AIOC_SP(uc) ((uc)->uc_mcontext.gregs[REG_RSP])
#elif defined(__aarch64__)
#define AIOC_PC(uc) ((uc)->uc_mcontext.pc)
#define AIOC_SP(uc) ((uc)->uc_mcontext.sp)
#else
#error "aiocancel: no trampoline for this architecture"
#endif

#define CHUNK_SLOTS 256
#define MAX_CHUNKS 1024

static aioc_slot *chunks[MAX_CHUNKS];
static int nslots;             /* published with release after the chunk */
static int free_head = -1;
pthread_mutex_t aioc_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_key_t self_key;
static int cancel_sig;         /* 0 until aioc_init succeeded */
/* si_uid of our instances, read once by aioc_init: the field only informs
 * (the kernel does not check it for a signal to our own process, and the
 * handler never reads it), so a syscall per send on the cancel path would
 * buy nothing. The pid is asked every time: it is rt_tgsigqueueinfo's tgid,
 * and a child made without fork handlers (_Fork, clone) must not aim at
 * its parent's threads. */
static uid_t sender_uid;

/* Event counters (aioc_stats): relaxed atomics, lock-free on every supported
 * architecture, so the signal handler may bump them. */
static unsigned long stats[AIOC_NSTATS];
#define COUNT(i) __atomic_fetch_add(&stats[i], 1, __ATOMIC_RELAXED)
void aioc_count(int stat) { COUNT(stat); }

/* 0: no send has failed; 1: one has, not yet reported; 2: reported. */
static int send_failure_note;

void (*volatile aioc_test_after_probe)(aioc_slot *s);

/* Never the "always zero" flag of a real slot: threads that are not
 * cancellation points still go through the trampoline, which then behaves as
 * a plain syscall (the handler ignores them: DISABLE or no slot). */
static const volatile int never_cancelled = 0;

static aioc_slot *slot_at(int index)
{
    if (index < 0 || index >= __atomic_load_n(&nslots, __ATOMIC_ACQUIRE))
        return NULL;
    return &chunks[index / CHUNK_SLOTS][index % CHUNK_SLOTS];
}

aioc_slot *aioc_slot_at(int index) { return slot_at(index); }
int aioc_slot_count(void) { return __atomic_load_n(&nslots, __ATOMIC_ACQUIRE); }

static pid_t sys_gettid(void) { return (pid_t)syscall(SYS_gettid); }

/* rt_tgsigqueueinfo rather than tgkill: the slot index rides in si_value, so
 * the handler never needs thread-local storage to find its state. Raw
 * syscalls only: the handler re-queues through here. */
int aioc_send_cancel(aioc_slot *s, pid_t tid)
{
    siginfo_t si;
    long r;
    int err;
    memset(&si, 0, sizeof si);
    si.si_signo = cancel_sig;
    si.si_code = SI_QUEUE;
    si.si_pid = (pid_t)syscall(SYS_getpid);
    si.si_uid = sender_uid;
    si.si_value.sival_int = s->index;
    /* Before the send: the target may handle the instance (and clear the
     * mark) before the syscall returns here. */
    __atomic_store_n(&s->sig_out, 1, __ATOMIC_SEQ_CST);
    r = syscall(SYS_rt_tgsigqueueinfo, si.si_pid, tid, cancel_sig, &si);
    if (r == 0)
        return 0;
    err = errno;
    __atomic_store_n(&s->sig_out, 0, __ATOMIC_SEQ_CST);
    /* ESRCH here would mean a signal aimed at an exited thread: the registry
     * lock makes that impossible, and the counter lets tests prove it. */
    if (err == ESRCH) {
        COUNT(AIOC_STAT_SEND_ESRCH);
    } else {
        int expected = 0;
        COUNT(AIOC_STAT_SEND_FAILED);
        __atomic_compare_exchange_n(&send_failure_note, &expected, 1, 0,
                                    __ATOMIC_RELAXED, __ATOMIC_RELAXED);
    }
    return err;
}

int aioc_take_send_failure_note(void)
{
    int expected = 1;
    return __atomic_compare_exchange_n(&send_failure_note, &expected, 2, 0,
                                       __ATOMIC_RELAXED, __ATOMIC_RELAXED);
}

void aioc_deliver(aioc_slot *s)
{
    int err;
    /* At most one instance pending per thread: the one out there carries
     * whatever request is flagged when it is handled. */
    if (__atomic_load_n(&s->sig_out, __ATOMIC_SEQ_CST)) {
        COUNT(AIOC_STAT_HELD);
        return;
    }
    err = aioc_send_cancel(s, s->tid);
    if (err && err != ESRCH) {
        /* RLIMIT_SIGPENDING used up (by any process of this user): the
         * request must not be lost, so the re-sender tries again. */
        s->retry = 1;
        aioc_resender_kick(s, 1000000);   /* 1 ms, doubling to 50 ms */
    }
}

/* The instance being handled is no longer pending: senders may queue
 * another one. */
static void instance_done(aioc_slot *s)
{
    __atomic_store_n(&s->sig_out, 0, __ATOMIC_SEQ_CST);
}

/* Re-queue the instance being handled to ourselves, left blocked in the
 * context we return to (the 2011 post's deferral). */
static void defer(aioc_slot *s, ucontext_t *uc, int sig, pid_t tid)
{
    uintptr_t pc = (uintptr_t)AIOC_PC(uc), sp = (uintptr_t)AIOC_SP(uc);
    sigaddset(&uc->uc_sigmask, sig);
    s->blocked = AIOC_LEFT_QUEUED;
    COUNT(AIOC_STAT_DEFERRED);
    /* On a kernel the re-queued signal stays blocked until an outer handler
     * returns, so it never comes straight back to the context it was
     * deferred at. Valgrind ignores changes to uc_sigmask and delivers it
     * again at once: the same (PC, SP) means no outer handler lies between,
     * and re-queuing would loop forever. The flag carries the request to
     * the next cancellation point. */
    if (pc == s->deferred_pc && sp == s->deferred_sp) {
        instance_done(s);
        return;
    }
    s->deferred_pc = pc;
    s->deferred_sp = sp;
    if (aioc_send_cancel(s, tid) != 0) {
        /* Nothing re-queued: let the re-sender try (the flag still carries
         * the request to the next cancellation point meanwhile). */
        s->retry = 1;
        aioc_resender_poke();
    }
    /* sig_out stays set: the re-queued instance is pending. */
}

/*
 * The 2011 design. A request acts only where no syscall result can exist yet:
 * PC in [aioc_cp_begin, aioc_cp_end) -> resume at aioc_cp_cancel. Anywhere
 * else (the syscall returned, or we interrupted another signal handler that
 * interrupted the syscall) the signal is re-queued to ourselves and left
 * blocked in the mask the kernel restores on return: it fires again only
 * when an outer handler returns and restores the trampoline's mask, and then
 * sees the trampoline's PC. If nothing outer exists, the flag alone carries
 * the request to the next cancellation point.
 */
static void cancel_handler(int sig, siginfo_t *si, void *ctx)
{
    int saved_errno = errno;
    ucontext_t *uc = ctx;
    aioc_slot *s;
    pid_t tid;
    uintptr_t pc;

    COUNT(AIOC_STAT_HANDLED);
    if (si->si_code != SI_QUEUE)
        goto ignore;
    s = slot_at(si->si_value.sival_int);
    if (!s)
        goto ignore;
    tid = sys_gettid();
    if (s->tid != tid)
        goto ignore;
    if (!__atomic_load_n(&s->cancel, __ATOMIC_ACQUIRE) || s->state == AIOC_DISABLE) {
        instance_done(s);
        goto ignore;
    }
    pc = (uintptr_t)AIOC_PC(uc);
    if (pc >= (uintptr_t)aioc_cp_begin && pc < (uintptr_t)aioc_cp_end) {
        sigaddset(&uc->uc_sigmask, sig);
        /* Nothing re-queued here: once instance_done has run, sig_out says
         * exactly whether a sender queued another instance since, and the
         * cancellation point we resume in acts (state DISABLE) before it
         * settles, so such an instance is ignored when the unblock lets it
         * in. aioc_settle only unblocks, without the lock and the drain. An
         * earlier deferral not yet settled (nested handlers) keeps the
         * draining kind. */
        if (s->blocked != AIOC_LEFT_QUEUED)
            s->blocked = AIOC_LEFT_IDLE;
        AIOC_PC(uc) = (uintptr_t)aioc_cp_cancel;
        COUNT(AIOC_STAT_REDIRECTED);
        instance_done(s);
        goto out;
    }
    if (s->transparent) {
        /* Inside a foreign signal handler that runs on top of the job's
         * call: its syscalls are not the job's. Defer exactly as for the
         * trampoline; the request acts on the job's own call when the
         * handler returns and restores the job's mask. */
        if (aioc_nested(s, uc, sig)) {
            COUNT(AIOC_STAT_NESTED);
            defer(s, uc, sig, tid);
            goto out;
        }
        /* Foreign code checks no flag before its next syscall, so leaving
         * the signal blocked could strand the request; the re-sender tries
         * again instead (transparent.c). */
        if (aioc_foreign_cancel(s, uc)) {
            s->state = AIOC_DISABLE;
            s->acted = 1;
            COUNT(AIOC_STAT_FOREIGN);
        }
        instance_done(s);
        goto out;
    }
    defer(s, uc, sig, tid);
    goto out;
ignore:
    COUNT(AIOC_STAT_IGNORED);
out:
    errno = saved_errno;
}

/* Lock held: the slot's thread is gone or going; recycle the slot. */
static void recycle(aioc_slot *s)
{
    s->tid = 0;
    s->in_use = 0;
    s->ident = 0;
    __atomic_add_fetch(&s->generation, 1, __ATOMIC_SEQ_CST);
    s->cancel = 0;
    s->sig_out = s->retry = s->blocked = 0;
    s->next_free = free_head;
    free_head = s->index;
}

/* pthread-key destructor, in the exiting thread. aioc_unregister may have
 * recycled the slot already, from another thread (interpreter shutdown), and
 * it may belong to a new thread by now: only our own tid releases it. */
static void slot_release(void *p)
{
    aioc_slot *s = p;
    pid_t tid = sys_gettid();
    pthread_mutex_lock(&aioc_lock);
    if (s->in_use && s->tid == tid)
        recycle(s);
    pthread_mutex_unlock(&aioc_lock);
}

void aioc_unregister(aioc_slot *s, uint64_t serial)
{
    int released;
    pthread_mutex_lock(&aioc_lock);
    released = s->in_use && s->serial == serial;
    if (released)
        recycle(s);
    pthread_mutex_unlock(&aioc_lock);
    /* A slot is owned by one thread: if the caller's key names it, the
     * caller is its (exiting) owner, and must not reach it again. */
    if (released && pthread_getspecific(self_key) == s)
        pthread_setspecific(self_key, NULL);
}

static void fork_prepare(void) { pthread_mutex_lock(&aioc_lock); }
static void fork_parent(void) { pthread_mutex_unlock(&aioc_lock); }

void aioc_atfork_child(void)
{
    aioc_slot *me = pthread_getspecific(self_key);
    int i, n = nslots;
    pthread_mutex_init(&aioc_lock, NULL);
    aioc_resender_atfork_child();
    free_head = -1;
    for (i = n - 1; i >= 0; i--) {
        aioc_slot *s = slot_at(i);
        if (s == me) {
            s->tid = sys_gettid();
            /* The child is a new process: a request aimed at the parent's
             * thread (or at the job it was running) is not for it. Clear the
             * flag and move the generation on so that a (slot, generation)
             * copied from the parent names nothing here. Pending signals
             * are not inherited, but the mask is: the handler may have left
             * the cancel signal blocked while deferring, so unblock it. */
            s->cancel = 0;
            s->generation++;
            if (s->sent || s->blocked || s->sig_out) {
                sigset_t set;
                sigemptyset(&set);
                sigaddset(&set, cancel_sig);
                pthread_sigmask(SIG_UNBLOCK, &set, NULL);
            }
            s->sent = 0;
            s->sig_out = s->retry = s->blocked = 0;
            continue;
        }
        /* Threads other than the forking one do not exist in the child;
         * the free list is rebuilt from every other slot. */
        recycle(s);
    }
}

int aioc_handler_intact(void)
{
    struct sigaction cur;
    if (!cancel_sig || sigaction(cancel_sig, NULL, &cur) != 0)
        return 0;
    return (cur.sa_flags & SA_SIGINFO) && cur.sa_sigaction == cancel_handler;
}

static int signal_is_free(int sig)
{
    struct sigaction old;
    if (sigaction(sig, NULL, &old) != 0)
        return 0;
    return !(old.sa_flags & SA_SIGINFO) && old.sa_handler == SIG_DFL;
}

int aioc_init(int sig)
{
    struct sigaction sa;
    int err;

    if (cancel_sig)
        return cancel_sig;
    if (sig > 0) {
        if (sig < SIGRTMIN || sig > SIGRTMAX)
            return -EINVAL;
        if (!signal_is_free(sig))
            return -EBUSY;
    } else {
        for (sig = SIGRTMIN; sig <= SIGRTMAX; sig++)
            if (signal_is_free(sig))
                break;
        if (sig > SIGRTMAX)
            return -EAGAIN;
    }
    if ((err = pthread_key_create(&self_key, slot_release)) != 0)
        return -err;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = cancel_handler;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (sigaction(sig, &sa, NULL) != 0) {
        err = errno;
        pthread_key_delete(self_key);
        return -err;
    }
    pthread_atfork(fork_prepare, fork_parent, aioc_atfork_child);
    sender_uid = getuid();
    cancel_sig = sig;
    return sig;
}

int aioc_signal(void) { return cancel_sig; }

void aioc_stats(unsigned long out[AIOC_NSTATS])
{
    int i;
    for (i = 0; i < AIOC_NSTATS; i++)
        out[i] = __atomic_load_n(&stats[i], __ATOMIC_RELAXED);
}

aioc_slot *aioc_self(void)
{
    return cancel_sig ? pthread_getspecific(self_key) : NULL;
}

/* Called with lock held. */
static uint64_t registrations;   /* lock held */

static aioc_slot *slot_alloc(void)
{
    aioc_slot *s;
    if (free_head < 0) {
        int base = nslots, i;
        aioc_slot *chunk;
        if (base / CHUNK_SLOTS >= MAX_CHUNKS)
            return NULL;
        chunk = calloc(CHUNK_SLOTS, sizeof *chunk);
        if (!chunk)
            return NULL;
        for (i = CHUNK_SLOTS - 1; i >= 0; i--) {
            chunk[i].index = base + i;
            chunk[i].state = AIOC_ENABLE;
            chunk[i].next_free = free_head;
            free_head = base + i;
        }
        chunks[base / CHUNK_SLOTS] = chunk;
        __atomic_store_n(&nslots, base + CHUNK_SLOTS, __ATOMIC_RELEASE);
    }
    s = slot_at(free_head);
    free_head = s->next_free;
    return s;
}

aioc_slot *aioc_register(void)
{
    aioc_slot *s = aioc_self();
    if (s || !cancel_sig)
        return s;
    pthread_mutex_lock(&aioc_lock);
    s = slot_alloc();
    if (s) {
        s->in_use = 1;
        s->serial = ++registrations;
        s->ident = (unsigned long)pthread_self();
        s->generation++;
        /* A recycled slot must not carry its previous thread's modes. */
        s->cancel = 0;
        s->sent = 0;
        s->acted = 0;
        s->transparent = 0;
        s->expect_pc = 0;
        s->sig_out = s->retry = s->blocked = 0;
        s->job_mask_known = 0;
        s->deferred_pc = s->deferred_sp = 0;
        s->state = AIOC_ENABLE;
        s->tid = sys_gettid();
    }
    pthread_mutex_unlock(&aioc_lock);
    if (s && pthread_setspecific(self_key, s) != 0) {
        slot_release(s);
        return NULL;
    }
    if (s) {
        /* Threads inherit their creator's signal mask, which may hold the
         * cancel signal blocked (a deferred request leaves it so): nothing
         * is pending for a fresh registration, so it must be interruptible. */
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, cancel_sig);
        pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    }
    return s;
}

void aioc_set_transparent(aioc_slot *s, int on)
{
    s->transparent = on;
}

int aioc_setstate(aioc_slot *s, int state)
{
    int old = s->state;
    s->state = state;
    return old;
}

/* Called with lock held. */
static int request(aioc_slot *s)
{
    if (!__atomic_load_n(&s->cancel, __ATOMIC_RELAXED)) {
        /* Flag before signal: the handler, and a trampoline entered after
         * this store, must see it. */
        __atomic_store_n(&s->cancel, 1, __ATOMIC_SEQ_CST);
        s->sent = 1;
        /* An RT signal whose handler is gone would kill the process
         * (SIG_DFL) or reach someone else's handler: send nothing, and let
         * the caller say so. */
        if (!aioc_handler_intact()) {
            COUNT(AIOC_STAT_REPLACED);
            return AIOC_REQ_REPLACED;
        }
        COUNT(AIOC_STAT_SENT);
        if (s->transparent)
            aioc_resender_kick(s, 0);   /* probes /proc first, then signals */
        else
            aioc_deliver(s);
    }
    return 1;
}

int aioc_cancel_ident(unsigned long ident)
{
    int i, n, r = 0;
    pthread_mutex_lock(&aioc_lock);
    n = nslots;
    for (i = 0; i < n; i++) {
        aioc_slot *s = slot_at(i);
        if (s->in_use && s->ident == ident) {
            r = request(s);
            break;
        }
    }
    pthread_mutex_unlock(&aioc_lock);
    return r;
}

int aioc_cancel_job(int index, uint64_t generation)
{
    int r = 0;
    aioc_slot *s;
    pthread_mutex_lock(&aioc_lock);
    s = slot_at(index);
    if (s && s->in_use
            && __atomic_load_n(&s->generation, __ATOMIC_SEQ_CST) == generation)
        r = request(s);
    pthread_mutex_unlock(&aioc_lock);
    return r;
}

/* Every signal sent for an earlier generation was queued before we took the
 * lock in aioc_job_begin, so one drain with the signal blocked removes them
 * all; the handler may also have left it blocked. Returns the mask the
 * thread had (with the cancel signal left out). */
static void reset_signal(int drain, sigset_t *old)
{
    static const struct timespec zero = {0, 0};
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, cancel_sig);
    if (drain) {
        pthread_sigmask(SIG_BLOCK, &set, NULL);
        while (sigtimedwait(&set, NULL, &zero) == cancel_sig)
            ;
    }
    /* Also undoes a job that blocked the signal itself: the next job must be
     * interruptible in its syscalls, not only at flag checks. */
    pthread_sigmask(SIG_UNBLOCK, &set, old);
    sigdelset(old, cancel_sig);
}

void aioc_settle(aioc_slot *s)
{
    static const struct timespec zero = {0, 0};
    sigset_t set;
    int left;
    if (!s || !(left = s->blocked))
        return;
    s->blocked = 0;
    sigemptyset(&set);
    sigaddset(&set, cancel_sig);
    if (left == AIOC_LEFT_IDLE) {
        /* After a redirect (see cancel_handler): the handled instance was
         * the pending one, and sig_out is left alone, so it stays exact: an
         * instance a sender queued since (transparent re-sender, or a retry
         * racing the redirect) keeps it set and, once unblocked, reaches
         * the handler, which ignores it (the point acted: state DISABLE).
         * Nothing is re-queued, so nothing comes back blocked. Every caller
         * settles a redirect after acting; a state that is not DISABLE
         * (never seen) takes the draining path below. */
        if (s->state == AIOC_DISABLE) {
            pthread_sigmask(SIG_UNBLOCK, &set, NULL);
            return;
        }
    }
    /* The lock keeps senders out between the drain and clearing sig_out:
     * otherwise an instance queued in between would be forgotten (sig_out
     * 0 while one is pending, so a second could be queued). */
    pthread_mutex_lock(&aioc_lock);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    while (sigtimedwait(&set, NULL, &zero) == cancel_sig)
        ;
    __atomic_store_n(&s->sig_out, 0, __ATOMIC_SEQ_CST);
    pthread_mutex_unlock(&aioc_lock);
    /* A request still pending (the flag) acts at the next cancellation
     * point's check; in transparent mode the re-sender signals again. */
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
}

uint64_t aioc_job_begin(aioc_slot *s, int state)
{
    uint64_t gen;
    int drain;
    pthread_mutex_lock(&aioc_lock);
    gen = __atomic_add_fetch(&s->generation, 1, __ATOMIC_SEQ_CST);
    /* sig_out is exact under the lock: every send sets it first (and
     * clears it if the send failed), and it is cleared only where the
     * instance it marks is handled (instance_done) or drained. No mark and
     * nothing left blocked: nothing of ours is pending, and the drain (a
     * block and a sigtimedwait) would find nothing. `sent` (a request was
     * flagged) is not enough reason: the handled instance took it away. */
    drain = s->sig_out || s->blocked;
    s->sent = 0;
    s->cancel = 0;
    s->retry = 0;
    /* No sender touches this slot again before a request for `gen`, which
     * needs the value we return: the drain below is not racing anyone. */
    s->sig_out = 0;
    s->blocked = 0;
    pthread_mutex_unlock(&aioc_lock);
    s->acted = 0;
    s->expect_pc = 0;
    s->deferred_pc = s->deferred_sp = 0;
    s->job_mask_known = 0;
    reset_signal(drain, &s->job_mask);
    s->job_mask_known = 1;
    s->state = state;
    return gen;
}

int aioc_job_end(aioc_slot *s)
{
    int acted = s->acted;
    s->state = AIOC_DISABLE;
    /* No lock. The sender of the request that just ended this job is often
     * still inside its locked section when we get here (the wake-up it
     * caused can displace it from its CPU): waiting for it cost a cancel
     * about 6 us, the worker's whole share of bench P3's gap. A sender that
     * read the generation before this bump finishes its request as if it
     * had come just before the end:
     * the flag, and at most one instance, which meets state DISABLE (the
     * handler ignores it) or the drain of the next aioc_job_begin, whose
     * lock waits for that sender. The re-sender skips DISABLE slots, so a
     * retry mark that such a sender leaves set is inert until aioc_job_begin
     * clears it. */
    __atomic_add_fetch(&s->generation, 1, __ATOMIC_SEQ_CST);
    __atomic_store_n(&s->retry, 0, __ATOMIC_SEQ_CST);
    s->acted = 0;
    s->job_mask_known = 0;
    /* Between jobs (and in anything the worker starts) the signal is not
     * left blocked. */
    aioc_settle(s);
    return acted;
}

static int act(aioc_slot *s)
{
    int how = s->state == AIOC_ENABLE ? AIOC_ACTED_ENABLE : AIOC_ACTED_MASKED;
    s->state = AIOC_DISABLE;   /* one-off (2015 post) */
    s->acted = 1;
    return how;
}

int aioc_testcancel(void)
{
    aioc_slot *s = aioc_self();
    int how;
    if (!s || s->state == AIOC_DISABLE || !__atomic_load_n(&s->cancel, __ATOMIC_ACQUIRE))
        return AIOC_ACTED_NONE;
    how = act(s);
    aioc_settle(s);
    return how;
}

long aioc_syscall_cp(long nr, long a, long b, long c, long d, long e, long f,
                     int *acted)
{
    aioc_slot *s = aioc_self();
    long r;

    *acted = AIOC_ACTED_NONE;
    if (!s || s->state == AIOC_DISABLE)
        return aioc_syscall_cp_asm(&never_cancelled, nr, a, b, c, d, e, f);
    r = aioc_syscall_cp_asm(&s->cancel, nr, a, b, c, d, e, f);
    /* Calls that fail with EINTR instead of restarting (poll, nanosleep,
     * sockets with timeouts...) return past aioc_cp_end; the flag tells us
     * the interruption was ours (musl's __syscall_cp_c does the same). */
    if (r == -EINTR && __atomic_load_n(&s->cancel, __ATOMIC_ACQUIRE))
        r = -ECANCELED;
    if (r == -ECANCELED && __atomic_load_n(&s->cancel, __ATOMIC_ACQUIRE))
        *acted = act(s);
    /* The handler redirected or deferred: never return to the caller with
     * the cancel signal left blocked. */
    if (s->blocked)
        aioc_settle(s);
    return r;
}

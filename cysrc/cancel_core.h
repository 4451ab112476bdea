/*
 * aiocancel's cancellation core: per-thread cancel state, the cancel signal
 * and its handler, cancel requests aimed at (thread, job generation), and the
 * C entry point of every cancellable syscall. Python-free: the handler and the
 * syscall path run without the GIL.
 */
#ifndef AIOC_CANCEL_CORE_H
#define AIOC_CANCEL_CORE_H

#include <stdint.h>
#include <signal.h>
#include <sys/types.h>

#define AIOC_ENABLE  0
#define AIOC_DISABLE 1
#define AIOC_MASKED  2

/* How a cancellation point acted, reported to the Python layer. */
#define AIOC_ACTED_NONE    0
#define AIOC_ACTED_MASKED  1   /* raise Cancelled (OSError, ECANCELED) */
#define AIOC_ACTED_ENABLE  2   /* raise ThreadCancelled (BaseException) */

#define AIOC_LEFT_QUEUED 1
#define AIOC_LEFT_IDLE   2

typedef struct aioc_slot {
    volatile int cancel;      /* pending request; the trampoline loads it */
    volatile int state;       /* AIOC_ENABLE / AIOC_DISABLE / AIOC_MASKED */
    volatile pid_t tid;       /* kernel tid while registered, else 0 */
    int index;                /* travels in si_value so the handler needs no TLS */
    int acted;                /* a cancellation point reported during this job */
    volatile int transparent; /* foreign syscalls are cancellation points too */
    /* One instance of the cancel signal is queued to this thread and not yet
     * handled or drained. Set (registry lock held) before a send, cleared by
     * the handler when it is done with the instance (kept set when it
     * re-queues it) and by the drains: senders never queue a second one. */
    volatile int sig_out;
    /* The handler left the cancel signal blocked in the interrupted context:
     * AIOC_LEFT_QUEUED after a deferral (an instance of ours may be pending:
     * aioc_settle drains it under the registry lock, then unblocks),
     * AIOC_LEFT_IDLE after a redirect (the instance handled was the one
     * pending and the cancellation point acts before settling: aioc_settle
     * only unblocks); 0 if not left blocked. */
    volatile int blocked;
    /* A send failed (EAGAIN: RLIMIT_SIGPENDING); the re-sender retries. */
    volatile int retry;
    /* Transparent mode, EINTR-style calls: the allow-listed syscall the
     * thread was seen blocked in (/proc/self/task/TID/syscall), published
     * before the signal that may interrupt it; expect_pc 0 if none. The
     * handler converts -EINTR only if the interrupted context still shows
     * this call: same return PC, stack pointer and argument registers (and
     * number, where the kernel leaves it in a register). */
    volatile uintptr_t expect_pc, expect_sp;
    volatile long expect_nr;
    volatile unsigned long expect_args[6];
    /* The signal mask the job runs with (recorded by aioc_job_begin): a
     * context that blocks more is inside a signal handler (or a block of
     * its own) and is deferred, never acted on (transparent mode). */
    sigset_t job_mask;
    volatile int job_mask_known;
    /* Where the handler last deferred (PC, SP); see cancel_handler. */
    volatile uintptr_t deferred_pc, deferred_sp;
    /* Fields below are owned by the registry lock. */
    int in_use;
    int sent;                 /* a signal went out since the last job_begin */
    int next_free;
    unsigned long ident;      /* pthread_self(), i.e. threading.get_ident() */
    uint64_t generation;
    uint64_t serial;          /* which registration owns the slot */
    int64_t resend_at_ns;     /* re-sender: next attempt */
    int64_t resend_delay_ns;
} aioc_slot;

/* Installs the signal handler (the Python layer calls it on first use, not
 * at import). sig <= 0 picks the first real-time signal
 * without a handler. Returns the signal, or -errno (-EBUSY: sig has a handler,
 * -EINVAL: not a real-time signal, -EAGAIN: none free). Idempotent. */
int aioc_init(int sig);
int aioc_signal(void);

/* A slot by index (NULL if out of range). */
aioc_slot *aioc_slot_at(int index);
/* The calling thread's slot, or NULL if it never registered. */
aioc_slot *aioc_self(void);
/* Registers the calling thread (idempotent); NULL on allocation failure. */
aioc_slot *aioc_register(void);
/* Unregisters registration `serial` of slot s, if it still holds it: called
 * when the Python thread state is torn down, which on 3.11 happens before
 * Thread.join() returns but before the pthread-key destructor runs. */
void aioc_unregister(aioc_slot *s, uint64_t serial);

int aioc_setstate(aioc_slot *s, int state);  /* returns the old state */

/* Cancel requests. Both return 1 if the target was flagged (or already was),
 * 0 if no live registered thread / no such job, AIOC_REQ_REPLACED if it was
 * flagged but no signal was sent because another handler has replaced
 * aiocancel's (a blocked call is then not interrupted; the flag still acts
 * at the next cancellation point's check). A signal that cannot be queued
 * (EAGAIN) is retried by the re-sender thread until delivered or the job
 * ends; at most one instance is ever pending per thread. */
#define AIOC_REQ_REPLACED 2
int aioc_cancel_ident(unsigned long ident);
int aioc_cancel_job(int index, uint64_t generation);

/* Job bracketing for executor workers: a fresh generation, flag cleared, no
 * stale cancel signal pending, the signal unblocked. */
uint64_t aioc_job_begin(aioc_slot *s, int state);
/* Ends the generation so late requests miss; returns whether a cancellation
 * point acted during the job. */
int aioc_job_end(aioc_slot *s);

/* The calling thread, outside any signal handler: if aiocancel's handler
 * left the cancel signal blocked (redirect, deferral), drain the re-queued
 * instance (the flag carries the request) and unblock it, so that the code
 * that runs next and any child it starts see it unblocked. Cheap when
 * nothing was left blocked. Called by every cancellation point on return,
 * aioc_job_end, and the Python layer's state changes. */
void aioc_settle(aioc_slot *s);

/* Whether aiocancel's handler is still installed for its signal. */
int aioc_handler_intact(void);
/* 1 exactly once per process, after the first failed send (EAGAIN): the
 * Python layer logs it. */
int aioc_take_send_failure_note(void);

/* Test hook (C tests only): called by the re-sender, registry lock held,
 * between its /proc probe of s and the signal it then sends. */
extern void (*volatile aioc_test_after_probe)(aioc_slot *s);

/* A cancellation point without a syscall: returns AIOC_ACTED_*. */
int aioc_testcancel(void);

/* Runs syscall nr: a cancellation point for registered threads in ENABLE or
 * MASKED state, a plain syscall otherwise. Returns the kernel's result
 * (-errno on error); *acted is set to AIOC_ACTED_* and, when it is not NONE,
 * the result is -ECANCELED and the state has become DISABLE. */
long aioc_syscall_cp(long nr, long a, long b, long c, long d, long e, long f,
                     int *acted);

/* Transparent mode for the calling thread's jobs (see transparent.c). */
void aioc_set_transparent(aioc_slot *s, int on);

/* Event counters since aioc_init, for tests and the stress command. */
#define AIOC_STAT_SENT        0  /* requests that sent the signal */
#define AIOC_STAT_SEND_ESRCH  1  /* ...to a thread that no longer existed */
#define AIOC_STAT_SEND_FAILED 2  /* sends that failed otherwise (queue full) */
#define AIOC_STAT_HANDLED     3  /* handler runs */
#define AIOC_STAT_REDIRECTED  4  /* ...that sent the thread to the cancel path */
#define AIOC_STAT_DEFERRED    5  /* ...that re-queued (syscall done, or nested) */
#define AIOC_STAT_IGNORED     6  /* ...with nothing to do (stale, DISABLE) */
#define AIOC_STAT_FOREIGN     7  /* ...that failed a foreign syscall (transparent) */
#define AIOC_STAT_REPLACED    8  /* requests/re-sends not sent: handler replaced */
#define AIOC_STAT_RETRIED     9  /* sends that succeeded on a retry after EAGAIN */
#define AIOC_STAT_HELD       10  /* re-sends skipped: one instance still pending */
#define AIOC_STAT_NESTED     11  /* transparent: deferred inside a foreign handler */
#define AIOC_NSTATS          12
void aioc_stats(unsigned long out[AIOC_NSTATS]);

/* fork: called in the child; only the calling thread survives. */
void aioc_atfork_child(void);

#endif

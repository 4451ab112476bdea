/*
 * The cancellation core's own tests, in C: one source for every architecture.
 * Links cysrc/cancel_core.c and asm/<arch>/syscall_cp.S, no Python, so it
 * runs natively, under qemu-user for aarch64 (.ci/aarch64.sh) and under
 * valgrind or ASan (.ci/memcheck.sh). tests/test_c_core.py builds and runs it
 * natively as part of the test-suite.
 *
 *   core_test [race-iterations]      (default 20000)
 *
 * One line per test, with the counts it checked; exit status 1 if any check
 * failed. Blocking is waited for, never slept for: a thread counts as blocked
 * when /proc says it sleeps in the expected syscall on the expected fd.
 */
#define _GNU_SOURCE
#include "cancel_core.h"
#include "cancel_internal.h"   /* aioc_send_cancel: a late instance */

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int failures;
static long race_iterations = 20000;
/* qemu-user (7.x) aborts when a forked child of a multithreaded guest
 * creates a thread; .ci/aarch64.sh sets AIOC_CORE_TEST_QEMU=1 so that the
 * fork test skips that one step there (and says so). */
static int under_qemu;

#define CHECK(cond, ...) do {                                              \
        if (!(cond)) {                                                     \
            failures++;                                                    \
            fprintf(stderr, "FAIL %s:%d: %s: ", __func__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                  \
            fputc('\n', stderr);                                           \
        }                                                                  \
    } while (0)

static void die(const char *what)
{
    perror(what);
    exit(2);
}

static pid_t gettid_(void) { return (pid_t)syscall(SYS_gettid); }

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* xorshift: each thread keeps its own state, so runs are reproducible per
 * seed without locking. */
static uint32_t rnd(uint32_t *state)
{
    uint32_t x = *state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *state = x;
}

static void spin(uint32_t n)
{
    volatile uint32_t i;
    for (i = 0; i < n; i++)
        ;
}

static long cp(long nr, long a, long b, long c, long d, int *acted)
{
    return aioc_syscall_cp(nr, a, b, c, d, 0, 0, acted);
}

static int pending_bytes(int fd)
{
    int n = -1;
    if (ioctl(fd, FIONREAD, &n) != 0)
        die("FIONREAD");
    return n;
}

static int fd_count(void)
{
    char path[64];
    int fd, n = 0;
    for (fd = 0; fd < 4096; fd++) {
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        if (access(path, F_OK) == 0)
            n++;
    }
    return n;
}

/*
 * Waits until thread `tid` sleeps in syscall `nr` with first argument arg0.
 * Under qemu-user /proc shows the host's syscall number, so the x86_64 and
 * the aarch64 numbers of the call are both accepted (nr_alt); the fd in
 * arg0 keeps a sleep in some other read (valgrind's scheduler pipe) from
 * passing (-1: any arg0, for ppoll, whose array qemu copies). Returns 1
 * when seen, 0 after 10 s.
 */
static int wait_blocked(pid_t tid, long nr, long nr_alt, long arg0)
{
    char path[64], buf[512];
    double deadline = now() + 10.0;
    char state = 0;
    long got_nr = -2;
    unsigned long got_a0 = 0;
    while (now() < deadline) {
        FILE *f;
        char *p;
        state = 0;
        got_nr = -2;
        snprintf(path, sizeof path, "/proc/self/task/%d/stat", (int)tid);
        if ((f = fopen(path, "r"))) {
            if (fgets(buf, sizeof buf, f) && (p = strrchr(buf, ')')))
                state = p[2];
            fclose(f);
        }
        snprintf(path, sizeof path, "/proc/self/task/%d/syscall", (int)tid);
        if (state == 'S' && (f = fopen(path, "r"))) {
            if (fscanf(f, "%ld %lx", &got_nr, &got_a0) != 2)
                got_nr = -2;
            fclose(f);
        }
        if (state == 'S' && (got_nr == nr || got_nr == nr_alt)
            && (arg0 == -1 || got_a0 == (unsigned long)arg0))
            return 1;
        usleep(200);
    }
    fprintf(stderr, "thread %d: state %c, syscall %ld(%#lx...), wanted %ld/%ld(%#lx)\n",
            (int)tid, state ? state : '?', got_nr, got_a0, nr, nr_alt,
            (unsigned long)arg0);
    return 0;
}

/* The syscall numbers of the blocking calls, for wait_blocked: this
 * architecture's and the other one's (see there). */
#if defined(__x86_64__)
#define NR_ALT(x86, a64) (a64)
#else
#define NR_ALT(x86, a64) (x86)
#endif
#define ALT_READ      NR_ALT(0, 63)
#define ALT_ACCEPT4   NR_ALT(288, 242)
#define ALT_PPOLL     NR_ALT(271, 73)
#define ALT_NANOSLEEP NR_ALT(230, 115)
#define ALT_FUTEX     NR_ALT(202, 98)

static void stats_now(unsigned long out[AIOC_NSTATS]) { aioc_stats(out); }

/* ---- a thread running one blocking call in a job ------------------------- */

struct call {
    pthread_t th;
    aioc_slot *slot;
    uint64_t gen;
    pid_t tid;
    int state;              /* the job's cancel state */
    long nr, a, b, c, d;    /* the call */
    sem_t started;
    long r;
    int acted, state_after, end_acted;
    int sig_blocked_after;  /* the cancel signal blocked when the call returned */
};

static int cancel_sig_blocked(void)
{
    sigset_t m;
    pthread_sigmask(SIG_BLOCK, NULL, &m);
    return sigismember(&m, aioc_signal()) == 1;
}

static void *call_main(void *p)
{
    struct call *k = p;
    k->slot = aioc_register();
    if (!k->slot)
        die("aioc_register");
    k->tid = gettid_();
    k->gen = aioc_job_begin(k->slot, k->state);
    sem_post(&k->started);
    k->r = cp(k->nr, k->a, k->b, k->c, k->d, &k->acted);
    k->sig_blocked_after = cancel_sig_blocked();
    k->state_after = k->slot->state;
    k->end_acted = aioc_job_end(k->slot);
    return NULL;
}

static void call_start(struct call *k, int state, long nr, long a, long b,
                       long c, long d)
{
    memset(k, 0, sizeof *k);
    k->state = state;
    k->nr = nr;
    k->a = a;
    k->b = b;
    k->c = c;
    k->d = d;
    sem_init(&k->started, 0, 0);
    if (pthread_create(&k->th, NULL, call_main, k) != 0)
        die("pthread_create");
    sem_wait(&k->started);
}

static void call_join(struct call *k)
{
    pthread_join(k->th, NULL);
    sem_destroy(&k->started);
}

/* Joins within 10 s, or fails and unblocks the call by writing to wake_fd
 * (a request that never acted must not hang the whole run). */
static void call_join_or_wake(struct call *k, int wake_fd)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10;
    if (pthread_timedjoin_np(k->th, NULL, &until) != 0) {
        CHECK(0, "the call was still blocked 10 s after the request");
        if (write(wake_fd, "w", 1) != 1)
            die("write");
        pthread_join(k->th, NULL);
    }
    sem_destroy(&k->started);
}

static void report(const char *name, const char *fmt, ...)
{
    va_list ap;
    printf("%-34s ", name);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

/* ---- tests --------------------------------------------------------------- */

static void test_blocked_read_cancelled(void)
{
    int p[2];
    char buf[8];
    struct call k;
    unsigned long before[AIOC_NSTATS], after[AIOC_NSTATS];
    int blocked;
    if (pipe(p) != 0)
        die("pipe");
    stats_now(before);
    call_start(&k, AIOC_MASKED, SYS_read, p[0], (long)buf, sizeof buf, 0);
    blocked = wait_blocked(k.tid, SYS_read, ALT_READ, p[0]);
    CHECK(blocked, "reader never blocked in read(%d)", p[0]);
    CHECK(aioc_cancel_job(k.slot->index, k.gen) == 1, "request missed");
    call_join_or_wake(&k, p[1]);
    stats_now(after);
    CHECK(k.r == -ECANCELED, "read returned %ld", k.r);
    CHECK(k.acted == AIOC_ACTED_MASKED, "acted %d", k.acted);
    CHECK(k.state_after == AIOC_DISABLE, "state after %d", k.state_after);
    CHECK(k.end_acted == 1, "job_end says nothing acted");
    CHECK(!k.sig_blocked_after, "the cancel signal was left blocked after "
          "the cancelled call returned");
    CHECK(after[AIOC_STAT_REDIRECTED] > before[AIOC_STAT_REDIRECTED],
          "the handler did not redirect a thread blocked in read");
    /* The kernel produced nothing: a byte written now is still there. */
    CHECK(k.r != -ECANCELED
          || (write(p[1], "x", 1) == 1 && pending_bytes(p[0]) == 1),
          "pipe lost data");
    report("blocked_read_cancelled", "blocked=%d redirected=%lu", blocked,
           after[AIOC_STAT_REDIRECTED] - before[AIOC_STAT_REDIRECTED]);
    close(p[0]);
    close(p[1]);
}

/* A request pending before the call: nothing enters the kernel, even a read
 * that would return data at once. */
static void *pending_main(void *p)
{
    int *fds = p;
    char buf[8];
    int acted;
    aioc_slot *s = aioc_register();
    uint64_t gen = aioc_job_begin(s, AIOC_MASKED);
    long r;
    CHECK(aioc_cancel_job(s->index, gen) == 1, "self request missed");
    r = cp(SYS_read, fds[0], (long)buf, sizeof buf, 0, &acted);
    CHECK(r == -ECANCELED, "read returned %ld with a pending request", r);
    CHECK(acted == AIOC_ACTED_MASKED, "acted %d", acted);
    /* One-off: the state is DISABLE now, the same read runs. */
    CHECK(s->state == AIOC_DISABLE, "state %d after ECANCELED", s->state);
    CHECK(aioc_testcancel() == AIOC_ACTED_NONE, "testcancel acted in DISABLE");
    r = cp(SYS_read, fds[0], (long)buf, sizeof buf, 0, &acted);
    CHECK(r == 4 && memcmp(buf, "data", 4) == 0, "second read returned %ld", r);
    CHECK(acted == AIOC_ACTED_NONE, "acted %d in DISABLE", acted);
    CHECK(aioc_job_end(s) == 1, "job_end says nothing acted");
    return NULL;
}

static void test_pending_before_call_and_one_off(void)
{
    int p[2];
    pthread_t th;
    if (pipe(p) != 0)
        die("pipe");
    CHECK(write(p[1], "data", 4) == 4, "write");
    pthread_create(&th, NULL, pending_main, p);
    pthread_join(th, NULL);
    report("pending_before_call_one_off", "ok");
    close(p[0]);
    close(p[1]);
}

/* DISABLE keeps the request pending; ENABLE reports ACTED_ENABLE. */
static void *states_main(void *p)
{
    int *fds = p;
    char buf[8];
    int acted;
    aioc_slot *s = aioc_register();
    long r;
    aioc_setstate(s, AIOC_DISABLE);
    CHECK(aioc_cancel_ident((unsigned long)pthread_self()) == 1, "missed");
    r = cp(SYS_read, fds[0], (long)buf, 1, 0, &acted);
    CHECK(r == 1 && acted == AIOC_ACTED_NONE, "DISABLE read: %ld/%d", r, acted);
    CHECK(s->cancel == 1, "request not kept pending in DISABLE");
    aioc_setstate(s, AIOC_ENABLE);
    r = cp(SYS_read, fds[0], (long)buf, 1, 0, &acted);
    CHECK(r == -ECANCELED && acted == AIOC_ACTED_ENABLE,
          "ENABLE read: %ld/%d", r, acted);
    CHECK(s->state == AIOC_DISABLE, "state %d after acting", s->state);
    return NULL;
}

static void test_disable_then_enable(void)
{
    int p[2];
    pthread_t th;
    if (pipe(p) != 0)
        die("pipe");
    CHECK(write(p[1], "ab", 2) == 2, "write");
    pthread_create(&th, NULL, states_main, p);
    pthread_join(th, NULL);
    CHECK(pending_bytes(p[0]) == 1, "ENABLE cancel consumed data");
    report("disable_then_enable", "ok");
    close(p[0]);
    close(p[1]);
}

/* A request for an ended job misses the next one. */
static void *generations_main(void *p)
{
    int *fds = p;
    char buf[8];
    int acted;
    aioc_slot *s = aioc_register();
    uint64_t g1, g2;
    long r;
    g1 = aioc_job_begin(s, AIOC_MASKED);
    CHECK(aioc_job_end(s) == 0, "empty job acted");
    CHECK(aioc_cancel_job(s->index, g1) == 0, "request for an ended job hit");
    g2 = aioc_job_begin(s, AIOC_MASKED);
    CHECK(g2 > g1, "generation did not move on");
    CHECK(aioc_cancel_job(s->index, g1) == 0, "stale request hit job 2");
    r = cp(SYS_read, fds[0], (long)buf, 1, 0, &acted);
    CHECK(r == 1 && acted == AIOC_ACTED_NONE, "job 2 read: %ld/%d", r, acted);
    CHECK(aioc_cancel_job(s->index, g2) == 1, "request for job 2 missed");
    r = cp(SYS_read, fds[0], (long)buf, 1, 0, &acted);
    CHECK(r == -ECANCELED, "job 2 second read: %ld", r);
    CHECK(aioc_job_end(s) == 1, "job 2 end");
    aioc_job_begin(s, AIOC_MASKED);
    CHECK(s->cancel == 0, "job 2's request leaked into job 3");
    r = cp(SYS_read, fds[0], (long)buf, 1, 0, &acted);
    CHECK(r == 1, "job 3 read: %ld", r);
    aioc_job_end(s);
    CHECK(aioc_cancel_job(s->index + 100000, 1) == 0, "bad slot hit");
    CHECK(aioc_cancel_job(-1, 1) == 0, "negative slot hit");
    return NULL;
}

static void test_job_generations(void)
{
    int p[2];
    pthread_t th;
    if (pipe(p) != 0)
        die("pipe");
    CHECK(write(p[1], "abc", 3) == 3, "write");
    pthread_create(&th, NULL, generations_main, p);
    pthread_join(th, NULL);
    report("job_generations", "ok");
    close(p[0]);
    close(p[1]);
}

/*
 * aioc_job_end moves the generation on without the registry lock, so a
 * sender that read the ending job's generation can finish its request after
 * the job ended. Such a request must reach no later job: a sender hammers
 * whatever job runs while the worker runs short jobs back to back, each one
 * cancellation point that returns at once unless a request acts. Every job
 * that was cancelled must be one that a request (returning 1) was aimed at.
 * The worker starts once the sender runs, and goes on past `n` jobs (up to
 * END_RACE_SPAN times as many) until requests have hit at least
 * END_RACE_HITS jobs: a loaded machine may schedule the two threads apart.
 */
#define END_RACE_SPAN 50
#define END_RACE_HITS 20

struct end_race {
    aioc_slot *volatile slot;
    volatile uint64_t current;   /* the running job's generation; 0: none yet */
    uint64_t first;              /* job i has generation first + 2 i */
    volatile int sender_up, done;
    volatile long hits;          /* jobs a request (returning 1) hit */
    long n, jobs;
    unsigned char *hit, *acted;
};

static void *end_race_worker(void *p)
{
    struct end_race *e = p;
    aioc_slot *s = aioc_register();
    int zero = open("/dev/zero", O_RDONLY | O_CLOEXEC), acted;
    long i, r;
    char b;
    if (zero < 0)
        die("/dev/zero");
    while (!__atomic_load_n(&e->sender_up, __ATOMIC_SEQ_CST))
        sched_yield();
    for (i = 0; i < e->n * END_RACE_SPAN; i++) {
        uint64_t g;
        if (i >= e->n && __atomic_load_n(&e->hits, __ATOMIC_SEQ_CST) >= END_RACE_HITS)
            break;
        g = aioc_job_begin(s, AIOC_MASKED);
        if (i == 0) {
            e->first = g;
            e->slot = s;
        }
        __atomic_store_n(&e->current, g, __ATOMIC_SEQ_CST);
        /* Now and then, let a sender that shares our CPU run: inside a job
         * here, right after its end below (the window this test is about). */
        if (i % 8 == 3)
            sched_yield();
        r = cp(SYS_read, zero, (long)&b, 1, 0, &acted);
        CHECK(r == 1 || (r == -ECANCELED && acted == AIOC_ACTED_MASKED),
              "job %ld: %ld/%d", i, r, acted);
        e->acted[i] = r == -ECANCELED;
        aioc_job_end(s);
        if (i % 8 == 7)
            sched_yield();
    }
    e->jobs = i;
    close(zero);
    __atomic_store_n(&e->done, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

static void *end_race_sender(void *p)
{
    struct end_race *e = p;
    __atomic_store_n(&e->sender_up, 1, __ATOMIC_SEQ_CST);
    while (!__atomic_load_n(&e->done, __ATOMIC_SEQ_CST)) {
        uint64_t g = __atomic_load_n(&e->current, __ATOMIC_SEQ_CST);
        if (g && aioc_cancel_job(e->slot->index, g) == 1
                && !e->hit[(g - e->first) / 2]) {
            e->hit[(g - e->first) / 2] = 1;
            __atomic_add_fetch(&e->hits, 1, __ATOMIC_SEQ_CST);
        }
    }
    return NULL;
}

static void test_end_races_request(void)
{
    struct end_race e;
    pthread_t worker, sender;
    long i, hits = 0, cancelled = 0, stray = 0;
    memset(&e, 0, sizeof e);
    e.n = race_iterations;
    e.hit = calloc((size_t)(e.n * END_RACE_SPAN), 1);
    e.acted = calloc((size_t)(e.n * END_RACE_SPAN), 1);
    if (!e.hit || !e.acted)
        die("calloc");
    pthread_create(&worker, NULL, end_race_worker, &e);
    pthread_create(&sender, NULL, end_race_sender, &e);
    pthread_join(worker, NULL);
    pthread_join(sender, NULL);
    for (i = 0; i < e.jobs; i++) {
        hits += e.hit[i];
        cancelled += e.acted[i];
        stray += e.acted[i] && !e.hit[i];
    }
    CHECK(stray == 0, "%ld jobs cancelled by a request aimed at another", stray);
    CHECK(hits >= END_RACE_HITS, "requests hit %ld jobs in %ld: the race was "
          "hardly run", hits, e.jobs);
    report("end_races_request", "jobs=%ld requests_hit=%ld cancelled=%ld stray=%ld",
           e.jobs, hits, cancelled, stray);
    free(e.hit);
    free(e.acted);
}

/* Calls that come back with EINTR (ppoll) or restart (clock_nanosleep). */
static void test_eintr_and_restart_calls(void)
{
    int p[2];
    struct pollfd pfd;
    struct timespec ts = {30, 0};
    struct call k;
    if (pipe(p) != 0)
        die("pipe");
    pfd.fd = p[0];
    pfd.events = POLLIN;
    call_start(&k, AIOC_MASKED, SYS_ppoll, (long)&pfd, 1, (long)&ts, 0);
    CHECK(wait_blocked(k.tid, SYS_ppoll, ALT_PPOLL, -1),
          "never blocked in ppoll");
    CHECK(aioc_cancel_job(k.slot->index, k.gen) == 1, "ppoll request missed");
    call_join(&k);
    CHECK(k.r == -ECANCELED && k.acted == AIOC_ACTED_MASKED,
          "ppoll: %ld/%d", k.r, k.acted);

    call_start(&k, AIOC_MASKED, SYS_clock_nanosleep, CLOCK_MONOTONIC, 0,
               (long)&ts, 0);
    CHECK(wait_blocked(k.tid, SYS_clock_nanosleep, ALT_NANOSLEEP,
                       CLOCK_MONOTONIC), "never blocked in clock_nanosleep");
    CHECK(aioc_cancel_job(k.slot->index, k.gen) == 1, "sleep request missed");
    call_join(&k);
    CHECK(k.r == -ECANCELED && k.acted == AIOC_ACTED_MASKED,
          "clock_nanosleep: %ld/%d", k.r, k.acted);
    report("eintr_and_restart_calls", "ppoll, clock_nanosleep");
    close(p[0]);
    close(p[1]);
}

/*
 * The 2011 post's third case: a signal handler runs on top of the blocked
 * syscall and the cancel request arrives during it. The cancel handler must
 * not act inside that handler: it re-queues the signal, left blocked, and
 * acts once the outer handler returns and the syscall is restarted.
 */
static volatile sig_atomic_t outer_entered, outer_release, outer_saw_pending;
static int the_cancel_sig;

static void outer_handler(int sig)
{
    static const struct timespec tick = {0, 100000};
    sigset_t pending;
    int i;
    (void)sig;
    outer_entered = 1;
    while (!outer_release)
        nanosleep(&tick, NULL);
    /* The cancel signal fired inside us, deferred, and is now queued again
     * and blocked: that is what "acts after the outer handler" means.
     * (Bounded, so that a failure is reported rather than hanging.) */
    for (i = 0; i < 50000; i++) {
        sigpending(&pending);
        if (sigismember(&pending, the_cancel_sig)) {
            outer_saw_pending = 1;
            break;
        }
        nanosleep(&tick, NULL);
    }
}

static void test_nested_handler(void)
{
    int p[2];
    char buf[8];
    struct call k;
    struct sigaction sa, old;
    unsigned long before[AIOC_NSTATS], after[AIOC_NSTATS];
    if (pipe(p) != 0)
        die("pipe");
    the_cancel_sig = aioc_signal();
    outer_entered = outer_release = outer_saw_pending = 0;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = outer_handler;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, &old);
    call_start(&k, AIOC_MASKED, SYS_read, p[0], (long)buf, sizeof buf, 0);
    CHECK(wait_blocked(k.tid, SYS_read, ALT_READ, p[0]), "never blocked");
    syscall(SYS_tgkill, getpid(), k.tid, SIGUSR1);
    while (!outer_entered)
        usleep(100);
    stats_now(before);
    CHECK(aioc_cancel_job(k.slot->index, k.gen) == 1, "request missed");
    /* Wait until the cancel handler has run nested and deferred. */
    for (;;) {
        stats_now(after);
        if (after[AIOC_STAT_DEFERRED] > before[AIOC_STAT_DEFERRED])
            break;
        usleep(100);
    }
    outer_release = 1;
    call_join_or_wake(&k, p[1]);
    stats_now(after);
    CHECK(outer_saw_pending, "cancel signal was not left pending+blocked");
    CHECK(k.r == -ECANCELED, "read returned %ld", k.r);
    CHECK(!k.sig_blocked_after, "the cancel signal was left blocked after "
          "the cancelled call returned");
    CHECK(after[AIOC_STAT_REDIRECTED] > before[AIOC_STAT_REDIRECTED],
          "no redirect after the outer handler returned");
    CHECK(k.r != -ECANCELED
          || (write(p[1], "x", 1) == 1 && pending_bytes(p[0]) == 1),
          "data lost");
    sigaction(SIGUSR1, &old, NULL);
    report("nested_handler", "deferred=%lu redirected=%lu",
           after[AIOC_STAT_DEFERRED] - before[AIOC_STAT_DEFERRED],
           after[AIOC_STAT_REDIRECTED] - before[AIOC_STAT_REDIRECTED]);
    close(p[0]);
    close(p[1]);
}

/* ---- races: a reader or acceptor against producer + canceller ------------ */

struct race {
    int kind;                   /* RACE_READ / RACE_ACCEPT */
    int fd;                     /* pipe read end / listening socket */
    aioc_slot *slot;
    volatile uint64_t gen;
    sem_t go, done, next;
    volatile int stop;
    long r;
    int acted, end_acted;
    uint32_t seed;
    unsigned char buf[4096];    /* what the last read returned */
};

#define RACE_READ 0
#define RACE_ACCEPT 1

static void *race_worker(void *p)
{
    struct race *x = p;
    x->slot = aioc_register();
    for (;;) {
        sem_wait(&x->next);
        if (x->stop)
            break;
        x->gen = aioc_job_begin(x->slot, AIOC_MASKED);
        sem_post(&x->go);
        spin(rnd(&x->seed) % 64);
        if (x->kind == RACE_READ)
            x->r = cp(SYS_read, x->fd, (long)x->buf, sizeof x->buf, 0,
                      &x->acted);
        else
            x->r = cp(SYS_accept4, x->fd, 0, 0, SOCK_CLOEXEC, &x->acted);
        x->end_acted = aioc_job_end(x->slot);
        sem_post(&x->done);
    }
    return NULL;
}

struct race_counts {
    long iterations, results, cancelled, missed, stale, produced;
};

/*
 * Each iteration picks a plan: produce only, cancel only, or both in either
 * order with random spins in between, and sometimes a stale request for the
 * previous job first. Checked every iteration: a job ends cancelled only if
 * a request was aimed at it; ECANCELED means the kernel produced nothing
 * (the pipe's byte count / the pending connections are exactly
 * produced - consumed); a result is always delivered.
 */
static void run_race(int kind, struct race_counts *c)
{
    struct race x;
    pthread_t th;
    int p[2] = {-1, -1}, wfd = -1, lst = -1;
    long produced = 0, consumed = 0, i;
    uint32_t seed = 0x9e3779b9u ^ (uint32_t)kind;
    struct sockaddr_un addr;
    socklen_t alen;
    uint64_t prev_gen = 0;

    memset(&x, 0, sizeof x);
    memset(c, 0, sizeof *c);
    x.kind = kind;
    x.seed = 12345u + kind;
    if (kind == RACE_READ) {
        if (pipe(p) != 0)
            die("pipe");
        x.fd = p[0];
        wfd = p[1];
    } else {
        lst = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        memset(&addr, 0, sizeof addr);
        addr.sun_family = AF_UNIX;
        /* autobind to an abstract address */
        if (lst < 0 || bind(lst, (struct sockaddr *)&addr, sizeof(sa_family_t)) != 0
            || listen(lst, 1024) != 0)
            die("listen");
        alen = sizeof addr;
        getsockname(lst, (struct sockaddr *)&addr, &alen);
        x.fd = lst;
    }
    sem_init(&x.go, 0, 0);
    sem_init(&x.done, 0, 0);
    sem_init(&x.next, 0, 0);
    pthread_create(&th, NULL, race_worker, &x);
    for (i = 0; i < race_iterations; i++) {
        uint32_t plan = rnd(&seed) % 8, order = rnd(&seed);
        int produce = plan != 1 && plan != 2;   /* 1,2: cancel only */
        int cancel = plan != 0;                 /* 0: produce only */
        int requested = 0, step;
        uint64_t gen;
        sem_post(&x.next);
        sem_wait(&x.go);
        gen = x.gen;
        if (plan == 7 && prev_gen) {
            CHECK(aioc_cancel_job(x.slot->index, prev_gen) == 0,
                  "a request for ended job %llu hit", (unsigned long long)prev_gen);
            c->stale++;
        }
        for (step = 0; step < 2; step++) {
            int do_cancel = (step == 0) == (int)(order & 1);
            spin(rnd(&seed) % 256);
            if (do_cancel && cancel) {
                requested = 1;
                aioc_cancel_job(x.slot->index, gen);
            } else if (!do_cancel && produce) {
                if (kind == RACE_READ) {
                    /* bytes of a numbered stream, so that order, loss and
                     * duplication all show */
                    unsigned char out[8];
                    int n = 1 + rnd(&seed) % 8, j;
                    for (j = 0; j < n; j++)
                        out[j] = (unsigned char)((produced + j) % 251);
                    if (write(wfd, out, n) != n)
                        die("write");
                    produced += n;
                } else {
                    /* Non-blocking: when cancelled accepts let the queue
                     * fill the listen backlog, a blocking connect would wait
                     * for an accept that only this thread can start (seen
                     * with musl's timing). EAGAIN: nothing was produced. */
                    int cl = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
                    if (cl < 0)
                        die("socket");
                    if (connect(cl, (struct sockaddr *)&addr, alen) == 0)
                        produced++;     /* the connection stays queued */
                    else if (errno != EAGAIN)
                        die("connect");
                    close(cl);
                }
            }
        }
        sem_wait(&x.done);
        prev_gen = gen;
        c->iterations++;
        if (x.r == -ECANCELED) {
            c->cancelled++;
            CHECK(requested, "job %ld cancelled without a request", i);
            CHECK(x.acted == AIOC_ACTED_MASKED && x.end_acted == 1,
                  "acted %d/%d", x.acted, x.end_acted);
        } else {
            CHECK(x.r >= 0, "iteration %ld: call failed with %ld", i, x.r);
            CHECK(x.acted == AIOC_ACTED_NONE && x.end_acted == 0,
                  "result %ld but acted %d/%d", x.r, x.acted, x.end_acted);
            c->results++;
            if (requested)
                c->missed++;       /* the result won: the request waits */
            if (kind == RACE_READ) {
                long j;
                CHECK(x.r > 0, "read returned EOF");
                for (j = 0; j < x.r; j++)
                    if (x.buf[j] != (unsigned char)((consumed + j) % 251))
                        break;
                CHECK(j == x.r, "byte %ld of the stream is wrong", consumed + j);
                consumed += x.r;
            } else {
                consumed++;
                close((int)x.r);
            }
        }
        if (kind == RACE_READ)
            CHECK(produced == consumed + pending_bytes(p[0]),
                  "iteration %ld: %ld bytes written, %ld read, %d left", i,
                  produced, consumed, pending_bytes(p[0]));
        if (failures > 20)
            break;
    }
    x.stop = 1;
    sem_post(&x.next);
    pthread_join(th, NULL);
    if (kind == RACE_READ) {
        c->produced = produced;
        close(p[0]);
        close(p[1]);
    } else {
        /* Every connection made is accepted once: by the worker, or now. */
        long drained = 0;
        int fd;
        fcntl(lst, F_SETFL, O_NONBLOCK);
        while ((fd = accept4(lst, NULL, NULL, SOCK_CLOEXEC)) >= 0) {
            close(fd);
            drained++;
        }
        CHECK(consumed + drained == produced, "connections: %ld made, %ld + %ld accepted",
              produced, consumed, drained);
        c->produced = produced;
        close(lst);
    }
    sem_destroy(&x.go);
    sem_destroy(&x.done);
    sem_destroy(&x.next);
}

static void test_read_race(void)
{
    struct race_counts c;
    int fds = fd_count();
    run_race(RACE_READ, &c);
    CHECK(fd_count() == fds, "fd count %d -> %d", fds, fd_count());
    CHECK(c.cancelled > 0 && c.results > 0, "one outcome never happened");
    report("read_race", "iterations=%ld results=%ld cancelled=%ld "
           "result_beat_request=%ld stale_rejected=%ld bytes=%ld",
           c.iterations, c.results, c.cancelled, c.missed, c.stale, c.produced);
}

static void test_accept_race(void)
{
    struct race_counts c;
    int fds = fd_count();
    run_race(RACE_ACCEPT, &c);
    CHECK(fd_count() == fds, "fd count %d -> %d", fds, fd_count());
    CHECK(c.cancelled > 0 && c.results > 0, "one outcome never happened");
    report("accept_race", "iterations=%ld accepted=%ld cancelled=%ld "
           "result_beat_request=%ld stale_rejected=%ld connections=%ld",
           c.iterations, c.results, c.cancelled, c.missed, c.stale, c.produced);
}

/* ---- thread lifecycle: requests racing with exits ------------------------ */

#define LIFE_THREADS 64

struct life {
    pthread_t th;
    volatile int alive;      /* registered and not yet exiting */
    volatile int done;
    uint32_t seed;
    int p[2];
};

static void *life_main(void *p)
{
    struct life *l = p;
    char buf[1];
    int acted;
    aioc_slot *s = aioc_register();
    aioc_setstate(s, AIOC_MASKED);
    l->alive = 1;
    spin(rnd(&l->seed) % 20000);
    /* Sometimes block, so that a request finds it in the kernel. */
    if (rnd(&l->seed) % 2)
        cp(SYS_read, l->p[0], (long)buf, 1, 0, &acted);
    l->alive = 0;
    l->done = 1;
    return NULL;   /* the slot is released by the TSD destructor */
}

static void test_exit_race(void)
{
    static struct life lives[LIFE_THREADS];
    unsigned long before[AIOC_NSTATS], after[AIOC_NSTATS];
    long started = 0, requests = 0, hits = 0;
    uint32_t seed = 777;
    int i, round, rounds = (int)(race_iterations / 200 + 10);
    int fds = fd_count();
    stats_now(before);
    for (i = 0; i < LIFE_THREADS; i++) {
        if (pipe(lives[i].p) != 0)
            die("pipe");
        lives[i].seed = 99u + i;
    }
    for (round = 0; round < rounds; round++) {
        for (i = 0; i < LIFE_THREADS; i++) {
            lives[i].done = lives[i].alive = 0;
            if (pthread_create(&lives[i].th, NULL, life_main, &lives[i]) != 0)
                die("pthread_create");
            started++;
        }
        /* Hammer every thread, alive or exiting, by its pthread_t (which
         * glibc reuses for the next thread on the cached stack). */
        for (;;) {
            int left = 0;
            for (i = 0; i < LIFE_THREADS; i++) {
                if (!lives[i].done)
                    left++;
                requests++;
                hits += aioc_cancel_ident((unsigned long)lives[i].th);
                spin(rnd(&seed) % 512);
            }
            if (!left)
                break;
        }
        for (i = 0; i < LIFE_THREADS; i++)
            pthread_join(lives[i].th, NULL);
    }
    for (i = 0; i < LIFE_THREADS; i++) {
        close(lives[i].p[0]);
        close(lives[i].p[1]);
    }
    stats_now(after);
    CHECK(after[AIOC_STAT_SEND_ESRCH] == before[AIOC_STAT_SEND_ESRCH],
          "%lu signals went to threads that no longer existed",
          after[AIOC_STAT_SEND_ESRCH] - before[AIOC_STAT_SEND_ESRCH]);
    CHECK(after[AIOC_STAT_SEND_FAILED] == before[AIOC_STAT_SEND_FAILED],
          "%lu sends failed", after[AIOC_STAT_SEND_FAILED] - before[AIOC_STAT_SEND_FAILED]);
    CHECK(fd_count() == fds, "fd count %d -> %d", fds, fd_count());
    report("exit_race", "threads=%ld requests=%ld hit_live=%ld signals=%lu "
           "esrch=%lu", started, requests, hits,
           after[AIOC_STAT_SENT] - before[AIOC_STAT_SENT],
           after[AIOC_STAT_SEND_ESRCH] - before[AIOC_STAT_SEND_ESRCH]);
}

/* ---- transparent mode: unrelated calls sharing one syscall site ----------
 *
 * glibc >= 2.41 returns every cancellable call (poll, read, the futex waits
 * of pthread_cond_timedwait) through one `syscall` instruction; musl does
 * the same, and generic syscall() is one site everywhere, which is what this
 * test uses so that it runs on every libc. The interleaving that aborted
 * glibc is forced deterministically: the re-sender probes the thread while
 * it blocks in ppoll (an EINTR-style call on the allow-list), then the test
 * hook moves the thread on into a timed futex wait through the same site
 * and waits until /proc shows it there, and only then does the re-sender
 * send the signal. The futex must come back with EINTR (glibc aborts on
 * ECANCELED from a futex); the request must still act, on the next ppoll.
 *
 * shared_site_libc does the same with libc's own poll() and
 * pthread_cond_timedwait(): one site on glibc >= 2.41 and musl (checked
 * there), two on older glibc (reported). A futex ECANCELED would abort
 * glibc here, so the test cannot pass by luck.
 */
static int shared_word;
/* <linux/futex.h>'s values: musl-gcc has no kernel headers. */
#define FUTEX_WAKE 1
#define FUTEX_WAIT_BITSET 9
#define FUTEX_PRIVATE_FLAG 128
#define FUTEX_BITSET_MATCH_ANY 0xffffffff

struct shared_site {
    int libc;                        /* poll() + pthread_cond_timedwait() */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    aioc_slot *slot;
    pid_t tid;
    int p[2];
    sem_t started;
    long futex_eintr, futex_ecanceled, futex_other, polls;
    long poll_r;
    int poll_errno, state_after;
    /* filled by the hook */
    volatile int hook_runs, probe_published, futex_seen, same_pc, hook_done;
    unsigned long handled_at_hook;
    volatile int stop;               /* the test gave up: leave the loop */
};

static struct shared_site *shared_target;

static unsigned long proc_syscall_pc(pid_t tid, long *nr)
{
    char path[64], line[256];
    unsigned long a[6], sp = 0, pc = 0;
    FILE *f;
    *nr = -2;
    snprintf(path, sizeof path, "/proc/self/task/%d/syscall", (int)tid);
    if ((f = fopen(path, "r"))) {
        if (!fgets(line, sizeof line, f)
            || sscanf(line, "%ld %lx %lx %lx %lx %lx %lx %lx %lx", nr, &a[0],
                      &a[1], &a[2], &a[3], &a[4], &a[5], &sp, &pc) != 9)
            pc = 0;
        fclose(f);
    }
    return pc;
}

static void shared_site_hook(aioc_slot *s)
{
    struct shared_site *x = shared_target;
    long nr;
    unsigned long pc;
    if (!x || s != x->slot || x->hook_runs++)
        return;                      /* only the first attempt is forced */
    x->probe_published = s->expect_pc != 0;
    /* Move the thread on: its ppoll returns, it drains the byte and waits
     * on the futex, through the same syscall() instruction. */
    if (write(x->p[1], "m", 1) != 1)
        die("write");
    x->futex_seen = wait_blocked(x->tid, SYS_futex, ALT_FUTEX,
                                 x->libc ? -1 : (long)&shared_word);
    pc = proc_syscall_pc(x->tid, &nr);
    x->same_pc = pc != 0 && pc == s->expect_pc;
    {
        unsigned long st[AIOC_NSTATS];
        stats_now(st);
        x->handled_at_hook = st[AIOC_STAT_HANDLED];
    }
    x->hook_done = 1;
}

static void *shared_site_main(void *p)
{
    struct shared_site *x = p;
    struct pollfd pfd = {x->p[0], POLLIN, 0};
    char b;
    x->slot = aioc_register();
    aioc_set_transparent(x->slot, 1);
    aioc_job_begin(x->slot, AIOC_MASKED);
    x->tid = gettid_();
    sem_post(&x->started);
    for (;;) {
        struct timespec until;
        long r = x->libc ? poll(&pfd, 1, -1)
                         : syscall(SYS_ppoll, &pfd, 1, NULL, NULL, 8);
        x->polls++;
        if (x->stop) {
            x->poll_r = r;
            x->poll_errno = r < 0 ? errno : 0;
            break;
        }
        if (r < 0 && errno == EINTR)
            continue;                /* a signal that was not a cancel */
        if (r <= 0) {
            x->poll_r = r;
            x->poll_errno = errno;
            break;
        }
        if (syscall(SYS_read, x->p[0], &b, 1) != 1)
            die("read");
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += 20;
        if (x->stop)
            break;
        if (x->libc) {
            /* glibc retries an interrupted wait itself (and aborts on
             * ECANCELED); the test wakes it once the signal was handled. */
            pthread_mutex_lock(&x->mu);
            r = pthread_cond_timedwait(&x->cv, &x->mu, &until);
            pthread_mutex_unlock(&x->mu);
            if (r == ECANCELED)
                x->futex_ecanceled++;
            else
                x->futex_other++;
            continue;
        }
        r = syscall(SYS_futex, &shared_word,
                    FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG, 0, &until, NULL,
                    FUTEX_BITSET_MATCH_ANY);
        if (r < 0 && errno == EINTR)
            x->futex_eintr++;
        else if (r < 0 && errno == ECANCELED)
            x->futex_ecanceled++;    /* what made glibc abort */
        else
            x->futex_other++;
    }
    x->state_after = x->slot->state;
    aioc_job_end(x->slot);
    return NULL;
}

static void run_shared_site(int libc)
{
    const char *name = libc ? "shared_site_libc" : "shared_site";
    struct shared_site x;
    int joined = 0, i;
    pthread_t th;
    struct timespec until;
    unsigned long before[AIOC_NSTATS], after[AIOC_NSTATS];
    if (under_qemu) {
        /* qemu-user's /proc shows the host's syscalls, never the guest's:
         * the probe cannot see a guest's ppoll there. */
        report(name, "skipped under qemu-user (no guest /proc syscall)");
        return;
    }
    memset(&x, 0, sizeof x);
    x.libc = libc;
    pthread_mutex_init(&x.mu, NULL);
    {
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&x.cv, &ca);
        pthread_condattr_destroy(&ca);
    }
    if (pipe(x.p) != 0)
        die("pipe");
    sem_init(&x.started, 0, 0);
    stats_now(before);
    shared_target = &x;
    aioc_test_after_probe = shared_site_hook;
    pthread_create(&th, NULL, shared_site_main, &x);
    sem_wait(&x.started);
    {
        /* glibc's poll() is ppoll on aarch64 and may be either on x86_64 */
        long nr;
        for (i = 0; i < 10000; i++) {
            proc_syscall_pc(x.tid, &nr);
            if (nr == SYS_ppoll
#ifdef SYS_poll
                || nr == SYS_poll
#endif
                )
                break;
            usleep(1000);
        }
        CHECK(i < 10000, "never blocked in poll");
    }
    CHECK(aioc_cancel_ident((unsigned long)th) == 1, "request missed");
    /* 15 s in all; the libc variant's cond wait is woken once the cancel
     * signal has been handled in it. */
    for (i = 0; i < 1500 && !joined; i++) {
        unsigned long st[AIOC_NSTATS];
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 10000000;
        if (until.tv_nsec >= 1000000000) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000;
        }
        joined = pthread_timedjoin_np(th, NULL, &until) == 0;
        stats_now(st);
        if (!joined && libc && x.hook_done && st[AIOC_STAT_HANDLED] > x.handled_at_hook) {
            pthread_mutex_lock(&x.mu);
            pthread_cond_signal(&x.cv);
            pthread_mutex_unlock(&x.mu);
        }
    }
    if (!joined) {
        CHECK(0, "the thread was never cancelled (polls %ld)", x.polls);
        x.stop = 1;
        shared_word = 1;             /* a waiting futex returns EAGAIN */
        syscall(SYS_futex, &shared_word, FUTEX_WAKE | FUTEX_PRIVATE_FLAG, 1,
                NULL, NULL, 0);
        if (write(x.p[1], "s", 1) != 1)
            die("write");
        pthread_mutex_lock(&x.mu);
        pthread_cond_signal(&x.cv);
        pthread_mutex_unlock(&x.mu);
        pthread_join(th, NULL);
        shared_word = 0;
    }
    aioc_test_after_probe = NULL;
    shared_target = NULL;
    stats_now(after);
    CHECK(x.hook_runs >= 1, "the re-sender never reached the hook");
    CHECK(x.probe_published, "the probe did not publish the blocked ppoll");
    CHECK(x.futex_seen, "the thread never blocked in the futex wait");
    /* One site: syscall() always; libc's wrappers on glibc >= 2.41 and
     * musl (older glibc: reported only). */
#if defined(__GLIBC__) && (__GLIBC__ == 2 && __GLIBC_MINOR__ < 41)
    CHECK(x.same_pc || libc, "ppoll and futex did not share the return PC");
#else
    CHECK(x.same_pc, "poll and futex did not share the return PC");
#endif
    CHECK(x.futex_ecanceled == 0, "a futex wait returned ECANCELED %ld time(s)",
          x.futex_ecanceled);
    CHECK(libc || (x.futex_eintr == 1 && x.futex_other == 0),
          "futex: %ld EINTR, %ld other", x.futex_eintr, x.futex_other);
    CHECK(x.poll_r == -1 && x.poll_errno == ECANCELED,
          "the last ppoll returned %ld (%s)", x.poll_r, strerror(x.poll_errno));
    CHECK(x.state_after == AIOC_DISABLE, "state %d after acting", x.state_after);
    report(name, "same_pc=%d futex_eintr=%ld futex_ecanceled=%ld "
           "polls=%ld foreign=%lu", x.same_pc, x.futex_eintr, x.futex_ecanceled,
           x.polls, after[AIOC_STAT_FOREIGN] - before[AIOC_STAT_FOREIGN]);
    close(x.p[0]);
    close(x.p[1]);
    sem_destroy(&x.started);
    pthread_cond_destroy(&x.cv);
    pthread_mutex_destroy(&x.mu);
}

static void test_shared_site(void) { run_shared_site(0); }
static void test_shared_site_libc(void) { run_shared_site(1); }

/* ---- fork ------------------------------------------------------------------ */

static void test_fork(void)
{
    int p[2], q[2], status = 0;
    char buf[8];
    struct call parent_reader;
    aioc_slot *me = aioc_register();
    pid_t pid;
    if (pipe(p) != 0 || pipe(q) != 0)
        die("pipe");
    /* A busy worker blocked in read, and a request pending on this thread. */
    call_start(&parent_reader, AIOC_MASKED, SYS_read, p[0], (long)buf, 1, 0);
    CHECK(wait_blocked(parent_reader.tid, SYS_read, ALT_READ, p[0]),
          "parent reader never blocked");
    aioc_setstate(me, AIOC_DISABLE);
    CHECK(aioc_cancel_ident((unsigned long)pthread_self()) == 1, "self request");
    pid = fork();
    if (pid < 0)
        die("fork");
    if (pid == 0) {
        struct call k;
        int bad = 0, acted;
        char b[1];
        if (me->cancel != 0)
            bad |= 1;                        /* the parent's request came along */
        if (me->tid != gettid_())
            bad |= 2;
        aioc_setstate(me, AIOC_MASKED);
        if (cp(SYS_read, q[0], (long)b, 0, 0, &acted) != 0)
            bad |= 4;                        /* a zero-byte read, not cancelled */
        /* A request in the child: the signal reaches this thread (an RT
         * signal without our handler would kill it) and the next
         * cancellation point acts. */
        if (aioc_cancel_ident((unsigned long)pthread_self()) != 1
            || cp(SYS_read, q[0], (long)b, 0, 0, &acted) != -ECANCELED)
            bad |= 64;
        aioc_setstate(me, AIOC_DISABLE);
        if (under_qemu)
            _exit(bad);
        call_start(&k, AIOC_MASKED, SYS_read, q[0], (long)b, 1, 0);
        if (!wait_blocked(k.tid, SYS_read, ALT_READ, q[0]))
            bad |= 8;
        if (aioc_cancel_job(k.slot->index, k.gen) != 1)
            bad |= 16;
        call_join(&k);
        if (k.r != -ECANCELED)
            bad |= 32;
        _exit(bad);
    }
    CHECK(waitpid(pid, &status, 0) == pid, "waitpid");
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
          "child status %#x (bits: 1 request inherited, 2 tid, 4 not clean, "
          "64 self-request, 8/16/32 cancel of a thread failed)", status);
    CHECK(me->cancel == 1, "the parent's own request was lost");
    CHECK(aioc_cancel_job(parent_reader.slot->index, parent_reader.gen) == 1,
          "parent worker not cancellable after fork");
    call_join(&parent_reader);
    CHECK(parent_reader.r == -ECANCELED, "parent reader: %ld", parent_reader.r);
    report("fork", under_qemu ? "child clean, child self-cancel (no thread: "
           "qemu), parent unaffected" : "child clean, child self-cancel, "
           "child cancels a blocked thread, parent unaffected");
    close(p[0]);
    close(p[1]);
    close(q[0]);
    close(q[1]);
}

/* The cancel path's bookkeeping: after a redirect the point settles without
 * draining, and the next job begins without draining, so both must find
 * nothing of ours pending: the cancel signal neither pending nor blocked,
 * sig_out clear. An instance queued after the point acted (a re-send racing
 * the redirect) is ignored in DISABLE state; one still pending at job_end
 * (blocked by the job itself, no request flagged) never reaches the next
 * job: job_begin leaves nothing pending and sig_out clear. */
static int cancel_sig_pending(void)
{
    sigset_t m;
    sigpending(&m);
    return sigismember(&m, aioc_signal()) == 1;
}

static void *quiet_main(void *p)
{
    struct call *k = p;
    sigset_t set;
    unsigned long before[AIOC_NSTATS], after[AIOC_NSTATS];
    char buf[8];
    int acted, i;
    long r;
    call_main(k);     /* the cancelled read, then job_end */
    CHECK(!cancel_sig_pending(), "a cancel instance pending after the job");
    CHECK(k->slot->sig_out == 0 && k->slot->blocked == 0,
          "sig_out %d, blocked %d after the job", k->slot->sig_out,
          k->slot->blocked);
    /* A late instance in DISABLE state: handled at once, ignored. */
    k->gen = aioc_job_begin(k->slot, AIOC_MASKED);
    CHECK(!cancel_sig_pending() && !cancel_sig_blocked(),
          "job 2 began with the cancel signal pending or blocked");
    k->slot->state = AIOC_DISABLE;
    stats_now(before);
    CHECK(aioc_send_cancel(k->slot, k->tid) == 0, "late send failed");
    /* A kernel delivers it on the send's return; valgrind when it polls. */
    for (i = 0; i < 50000 && __atomic_load_n(&k->slot->sig_out, __ATOMIC_SEQ_CST); i++)
        usleep(100);
    stats_now(after);
    CHECK(after[AIOC_STAT_IGNORED] == before[AIOC_STAT_IGNORED] + 1,
          "the late instance was not ignored");
    CHECK(k->slot->sig_out == 0 && !cancel_sig_blocked(),
          "the late instance left sig_out %d / the signal blocked",
          k->slot->sig_out);
    /* One the job keeps blocked until it ends: job_begin drains it. */
    sigemptyset(&set);
    sigaddset(&set, aioc_signal());
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    CHECK(aioc_send_cancel(k->slot, k->tid) == 0, "blocked send failed");
    CHECK(cancel_sig_pending(), "the blocked instance is not pending");
    aioc_job_end(k->slot);
    aioc_job_begin(k->slot, AIOC_MASKED);
    CHECK(!cancel_sig_pending() && !cancel_sig_blocked()
          && k->slot->sig_out == 0, "job 3 began with the instance left");
    CHECK(write((int)k->d, "x", 1) == 1, "write");
    r = cp(SYS_read, k->a, (long)buf, 1, 0, &acted);
    CHECK(r == 1 && acted == AIOC_ACTED_NONE, "job 3 read: %ld/%d", r, acted);
    aioc_job_end(k->slot);
    return NULL;
}

static void test_redirect_settles_quietly(void)
{
    int p[2], i, n = 20;
    char buf[8];
    struct call k;
    if (pipe(p) != 0)
        die("pipe");
    for (i = 0; i < n; i++) {
        memset(&k, 0, sizeof k);
        k.state = AIOC_MASKED;
        k.nr = SYS_read;
        k.a = p[0];
        k.b = (long)buf;
        k.c = sizeof buf;
        k.d = p[1];   /* read ignores it; job 3 writes its byte there */
        sem_init(&k.started, 0, 0);
        if (pthread_create(&k.th, NULL, quiet_main, &k) != 0)
            die("pthread_create");
        sem_wait(&k.started);
        CHECK(wait_blocked(k.tid, SYS_read, ALT_READ, p[0]),
              "reader never blocked");
        CHECK(aioc_cancel_job(k.slot->index, k.gen) == 1, "request missed");
        call_join_or_wake(&k, p[1]);
        CHECK(k.r == -ECANCELED && k.end_acted == 1, "read returned %ld", k.r);
        CHECK(!k.sig_blocked_after, "signal left blocked after the point");
    }
    report("redirect_settles_quietly", "%d jobs", n);
    close(p[0]);
    close(p[1]);
}

static const struct {
    const char *name;
    void (*fn)(void);
} tests[] = {
    {"blocked_read_cancelled", test_blocked_read_cancelled},
    {"redirect_settles_quietly", test_redirect_settles_quietly},
    {"pending_before_call_one_off", test_pending_before_call_and_one_off},
    {"disable_then_enable", test_disable_then_enable},
    {"job_generations", test_job_generations},
    {"end_races_request", test_end_races_request},
    {"eintr_and_restart_calls", test_eintr_and_restart_calls},
    {"nested_handler", test_nested_handler},
    {"read_race", test_read_race},
    {"accept_race", test_accept_race},
    {"exit_race", test_exit_race},
    {"shared_site", test_shared_site},
    {"shared_site_libc", test_shared_site_libc},
    {"fork", test_fork},
};

/* core_test [iterations [test-name...]] */
int main(int argc, char **argv)
{
    int sig, i, j;
    if (argc > 1)
        race_iterations = atol(argv[1]);
    if (race_iterations < 100)
        race_iterations = 100;
    setvbuf(stdout, NULL, _IOLBF, 0);
    under_qemu = getenv("AIOC_CORE_TEST_QEMU") != NULL;
    sig = aioc_init(0);
    if (sig <= 0) {
        fprintf(stderr, "aioc_init: %s\n", strerror(-sig));
        return 2;
    }
    printf("cancel signal %d, %ld race iterations per race\n", sig, race_iterations);
    for (i = 0; i < (int)(sizeof tests / sizeof tests[0]); i++) {
        int wanted = argc <= 2;
        for (j = 2; j < argc; j++)
            wanted |= strcmp(argv[j], tests[i].name) == 0;
        if (wanted)
            tests[i].fn();
    }
    if (failures) {
        printf("FAILED: %d check(s)\n", failures);
        return 1;
    }
    printf("all core tests passed\n");
    return 0;
}

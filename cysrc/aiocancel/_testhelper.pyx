# cython: language_level=3
"""Test-only helpers that must run as C inside a thread (aiocancel._testhelper).

`install_slow_handler(sig)` installs a C handler for `sig` that models the
2011 post's third case: a signal handler that runs while the thread is blocked
in a cancellable syscall. It records that it started, then waits until the
test releases it AND the cancel signal has been re-queued to this thread and
left blocked (that is, aiocancel's handler ran nested inside this one and
deferred). It then records what it saw and returns. Everything it does is
async-signal-safe.
"""
cdef extern from *:
    """
    #include <signal.h>
    #include <string.h>
    #include <time.h>
    static volatile sig_atomic_t th_entered, th_release, th_done;
    static volatile sig_atomic_t th_cancel_pending_at_end, th_iterations;
    static volatile int th_cancel_sig;

    static void th_handler(int sig) {
        struct timespec pause = {0, 200000};
        sigset_t pending;
        (void)sig;
        th_entered = 1;
        for (;;) {
            th_iterations++;
            nanosleep(&pause, NULL);
            if (!th_release)
                continue;
            sigpending(&pending);
            if (sigismember(&pending, th_cancel_sig)) {
                th_cancel_pending_at_end = 1;
                break;
            }
        }
        th_done = 1;
    }
    /* Both test handlers are installed this way: SA_RESTART (no effect
     * for SIG_DFL), nothing blocked while they run. */
    static int th_sigaction(int sig, void (*handler)(int)) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = handler;
        sa.sa_flags = SA_RESTART;
        sigemptyset(&sa.sa_mask);
        return sigaction(sig, &sa, NULL);
    }
    static int th_install(int sig, int cancel_sig) {
        th_cancel_sig = cancel_sig;
        th_entered = th_release = th_done = 0;
        th_cancel_pending_at_end = th_iterations = 0;
        return th_sigaction(sig, th_handler);
    }
    static int th_restore(int sig) {
        return th_sigaction(sig, SIG_DFL);
    }
    """
    int th_entered, th_release, th_done, th_cancel_pending_at_end, th_iterations
    int th_install(int sig, int cancel_sig)
    int th_restore(int sig)


def install_slow_handler(int sig, int cancel_sig):
    if th_install(sig, cancel_sig) != 0:
        raise OSError("sigaction failed")


def restore_default(int sig):
    th_restore(sig)


def release():
    global th_release
    th_release = 1


def state():
    return dict(entered=bool(th_entered), done=bool(th_done),
                cancel_pending_at_end=bool(th_cancel_pending_at_end),
                iterations=th_iterations)


# ---- a foreign handler that blocks in its own read (transparent mode) -------
#
# `install_reading_handler(sig, fd)`: a C handler for `sig` that reads one
# byte from `fd` with libc's read() (blocking until the test writes it) and
# records what the read returned and its errno. Transparent mode must leave
# that read alone (it is the handler's, not the job's) and act on the job's
# own call once the handler has returned.

cdef extern from *:
    """
    #include <errno.h>
    #include <unistd.h>
    static volatile sig_atomic_t rh_entered, rh_done;
    static volatile long rh_result;
    static volatile int rh_errno, rh_fd;
    static void rh_handler(int sig) {
        char b;
        int saved = errno;
        (void)sig;
        rh_entered = 1;
        rh_result = read(rh_fd, &b, 1);
        rh_errno = rh_result < 0 ? errno : 0;
        rh_done = 1;
        errno = saved;
    }
    static int rh_install(int sig, int fd) {
        rh_fd = fd;
        rh_entered = rh_done = 0;
        rh_result = -2;
        rh_errno = 0;
        return th_sigaction(sig, rh_handler);   /* the block above */
    }
    """
    int rh_entered, rh_done, rh_errno
    long rh_result
    int rh_install(int sig, int fd)


def install_reading_handler(int sig, int fd):
    if rh_install(sig, fd) != 0:
        raise OSError("sigaction failed")


def reading_handler_state():
    return dict(entered=bool(rh_entered), done=bool(rh_done),
                result=rh_result, errno=rh_errno)

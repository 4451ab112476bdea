/* Shared between cancel_core.c and transparent.c; not part of the API. */
#ifndef AIOC_CANCEL_INTERNAL_H
#define AIOC_CANCEL_INTERNAL_H

#include "cancel_core.h"
#include <pthread.h>
#include <ucontext.h>

#define AIOC_HIDDEN __attribute__((visibility("hidden")))

AIOC_HIDDEN extern pthread_mutex_t aioc_lock;   /* the registry lock */
AIOC_HIDDEN int aioc_slot_count(void);
/* Queues one instance of the cancel signal to tid; 0 or an errno. Marks
 * s->sig_out before the send (the handler may run before the call returns)
 * and clears it again if the send failed. Async-signal-safe. */
AIOC_HIDDEN int aioc_send_cancel(aioc_slot *s, pid_t tid);
/* Registry lock held: sends unless an instance is already pending, and
 * hands a failed send (EAGAIN) to the re-sender. */
AIOC_HIDDEN void aioc_deliver(aioc_slot *s);
AIOC_HIDDEN void aioc_count(int stat);

/* transparent.c */
AIOC_HIDDEN int aioc_foreign_cancel(aioc_slot *s, ucontext_t *uc);  /* handler */
AIOC_HIDDEN int aioc_nested(aioc_slot *s, ucontext_t *uc, int sig); /* handler */
/* Registry lock held: the re-sender attempts s after delay_ns (transparent
 * mode: probe, then signal, until the job acts or ends; otherwise: retry a
 * failed send until it is queued). Starts the thread on first use. */
AIOC_HIDDEN void aioc_resender_kick(aioc_slot *s, long long delay_ns);
/* Async-signal-safe: wake the re-sender (if running) to look at s->retry. */
AIOC_HIDDEN void aioc_resender_poke(void);
AIOC_HIDDEN void aioc_resender_atfork_child(void);

#endif

/* Shared between cancel_core.c and transparent.c; not part of the API. */
#ifndef AIOC_CANCEL_INTERNAL_H
#define AIOC_CANCEL_INTERNAL_H

#include "cancel_core.h"
#include <pthread.h>
#include <ucontext.h>

#define AIOC_HIDDEN __attribute__((visibility("hidden")))

AIOC_HIDDEN extern pthread_mutex_t aioc_lock;   /* the registry lock */
AIOC_HIDDEN int aioc_slot_count(void);
AIOC_HIDDEN void aioc_send_cancel(aioc_slot *s, pid_t tid);

/* transparent.c */
AIOC_HIDDEN int aioc_foreign_cancel(aioc_slot *s, ucontext_t *uc);  /* handler */
AIOC_HIDDEN void aioc_resender_kick(aioc_slot *s);   /* aioc_lock held */
AIOC_HIDDEN void aioc_resender_atfork_child(void);

#endif

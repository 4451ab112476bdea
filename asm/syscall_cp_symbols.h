/*
 * The symbols every trampoline (asm/<arch>/syscall_cp.S) defines: global, so
 * that the C core can compare an interrupted PC with [aioc_cp_begin,
 * aioc_cp_end) and send the thread to aioc_cp_cancel; hidden, so that they
 * never leave the shared object that links the core (aiocancel._cancel).
 * The `.type` line stays in each file: its spelling is the architecture's.
 */
#define AIOC_CP_SYMBOLS \
	.globl	aioc_syscall_cp_asm; \
	.hidden	aioc_syscall_cp_asm; \
	.globl	aioc_cp_begin; \
	.hidden	aioc_cp_begin; \
	.globl	aioc_cp_end; \
	.hidden	aioc_cp_end; \
	.globl	aioc_cp_cancel; \
	.hidden	aioc_cp_cancel

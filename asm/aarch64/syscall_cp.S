/*
 * Cancellable syscall trampoline, aarch64 (the design of musl's
 * src/thread/aarch64/syscall_cp.s). Same contract as the x86_64 file:
 *
 *   long aioc_syscall_cp_asm(const volatile int *cancel, long nr,
 *                            long a, long b, long c, long d, long e, long f);
 *
 * A restarted syscall has its PC rewound by 4 onto `svc #0`, which is inside
 * [aioc_cp_begin, aioc_cp_end); a completed one returns to aioc_cp_end.
 */
#include "../syscall_cp_symbols.h"

	.text
	AIOC_CP_SYMBOLS
	.type	aioc_syscall_cp_asm,%function
aioc_syscall_cp_asm:
aioc_cp_begin:
	ldr	w0,[x0]
	cbnz	w0,aioc_cp_cancel
	mov	x8,x1			/* syscall number */
	mov	x0,x2
	mov	x1,x3
	mov	x2,x4
	mov	x3,x5
	mov	x4,x6
	mov	x5,x7
	svc	0
aioc_cp_end:
	ret
aioc_cp_cancel:
	mov	x0,#-125		/* -ECANCELED */
	ret
	.size	aioc_syscall_cp_asm,.-aioc_syscall_cp_asm

	.section .note.GNU-stack,"",%progbits

/*
 * Cancellable syscall trampoline, x86_64 (the design of musl's
 * src/thread/x86_64/syscall_cp.s).
 *
 *   long aioc_syscall_cp_asm(const volatile int *cancel, long nr,
 *                            long a, long b, long c, long d, long e, long f);
 *
 * The cancel signal handler compares the interrupted PC with
 * [aioc_cp_begin, aioc_cp_end):
 *   - inside: the syscall has not run, or the kernel rewound the PC onto the
 *     `syscall` instruction to restart it, so no result exists yet and the
 *     handler may send the thread to aioc_cp_cancel;
 *   - at aioc_cp_end or later: the kernel already produced a result (or an
 *     EINTR that the C wrapper interprets), which must not be lost.
 * The flag load must sit inside the range: a request that arrives after the
 * load but before `syscall` is then still caught by the handler.
 */
#include "../syscall_cp_symbols.h"

	.text
	AIOC_CP_SYMBOLS
	.type	aioc_syscall_cp_asm,@function
aioc_syscall_cp_asm:
	.cfi_startproc
aioc_cp_begin:
	mov	(%rdi),%eax
	test	%eax,%eax
	jnz	aioc_cp_cancel
	mov	%rsi,%rax		/* syscall number */
	mov	%rdx,%rdi
	mov	%rcx,%rsi
	mov	%r8,%rdx
	mov	%r9,%r10		/* 4th syscall argument goes in r10, not rcx */
	mov	8(%rsp),%r8
	mov	16(%rsp),%r9
	syscall
aioc_cp_end:
	ret
aioc_cp_cancel:
	mov	$-125,%rax		/* -ECANCELED */
	ret
	.cfi_endproc
	.size	aioc_syscall_cp_asm,.-aioc_syscall_cp_asm

	.section .note.GNU-stack,"",@progbits

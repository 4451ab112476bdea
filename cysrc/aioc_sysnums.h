/* Syscall numbers and fcntl commands newer than the oldest headers we build
 * against (manylinux2014's CentOS 7: kernel 3.10 headers, glibc 2.17).
 *
 * The numbers are fixed ABI, so defining them here is safe; a kernel older
 * than the call returns -ENOSYS, which the wrappers raise as OSError
 * (preadv/pwritev with flags: Linux 4.6; epoll_pwait2: 5.11; OFD locks: 3.15).
 */
#ifndef AIOC_SYSNUMS_H
#define AIOC_SYSNUMS_H

#include <fcntl.h>
#include <sys/syscall.h>

#if defined(__x86_64__)
#  ifndef SYS_preadv2
#    define SYS_preadv2 327
#  endif
#  ifndef SYS_pwritev2
#    define SYS_pwritev2 328
#  endif
#elif defined(__aarch64__)          /* the generic (asm-generic/unistd.h) table */
#  ifndef SYS_preadv2
#    define SYS_preadv2 286
#  endif
#  ifndef SYS_pwritev2
#    define SYS_pwritev2 287
#  endif
#endif

#ifndef SYS_epoll_pwait2            /* the same number on every architecture */
#  define SYS_epoll_pwait2 441
#endif

#ifndef F_OFD_SETLKW                /* glibc < 2.20 (same value everywhere) */
#  define F_OFD_SETLKW 38
#endif

#endif

# Socket helpers shared by the cancellable socket calls (_syscalls, _sockets):
# the socket object's timeout, address encoding/decoding. Implemented in
# _sockbase.pyx.
from aiocancel._sysbase cimport pollfd

cdef extern from "<sys/socket.h>" nogil:
    ctypedef unsigned int socklen_t
    ctypedef unsigned short sa_family_t
    struct sockaddr:
        sa_family_t sa_family
    struct sockaddr_storage:
        sa_family_t ss_family
    int AF_INET, AF_INET6, AF_UNIX, SOL_SOCKET, SO_DOMAIN, SO_ERROR
    int SOCK_CLOEXEC, SOCK_STREAM
    int getsockopt(int, int, int, void *, socklen_t *)

cdef extern from "<sys/un.h>" nogil:
    struct sockaddr_un:
        sa_family_t sun_family
        char sun_path[108]

cdef extern from "<netinet/in.h>" nogil:
    struct sockaddr_in:
        pass
    struct sockaddr_in6:
        unsigned int sin6_flowinfo
        unsigned int sin6_scope_id
    unsigned short htons(unsigned short)
    unsigned short ntohs(unsigned short)
    unsigned int htonl(unsigned int)
    unsigned int ntohl(unsigned int)

cdef extern from "<netdb.h>" nogil:
    struct addrinfo:
        int ai_family
        int ai_socktype
        int ai_flags
        socklen_t ai_addrlen
        sockaddr *ai_addr
    int getaddrinfo(const char *, const char *, const addrinfo *, addrinfo **)
    void freeaddrinfo(addrinfo *)
    const char *gai_strerror(int)
    int getnameinfo(const sockaddr *, socklen_t, char *, socklen_t, char *,
                    socklen_t, int)
    int NI_NUMERICHOST, NI_NUMERICSERV, NI_MAXHOST

cdef extern from *:
    """
    #include <netinet/in.h>
    #include <sys/un.h>
    #include <stddef.h>
    static inline unsigned short aioc_port(const struct sockaddr *a) {
        return ntohs(a->sa_family == AF_INET6
            ? ((const struct sockaddr_in6 *)a)->sin6_port
            : ((const struct sockaddr_in *)a)->sin_port);
    }
    static inline void aioc_set_port(struct sockaddr *a, unsigned short port) {
        if (a->sa_family == AF_INET6)
            ((struct sockaddr_in6 *)a)->sin6_port = htons(port);
        else
            ((struct sockaddr_in *)a)->sin_port = htons(port);
    }
    #define AIOC_SUN_PATH_OFFSET offsetof(struct sockaddr_un, sun_path)
    """
    unsigned short aioc_port(const sockaddr *) nogil
    void aioc_set_port(sockaddr *, unsigned short) nogil
    size_t AIOC_SUN_PATH_OFFSET


cdef double _timeout(object sock) except? -2.0
cdef int _wait_fd(int fd, short events, double deadline) except -1
cdef long _sock_call(object sock, int fd, short events, long nr, long a,
                     long b, long c, long d, long e, long f) except -1
cdef object _decode_addr(sockaddr_storage *ss, socklen_t length)
cdef int _family(int fd) except -1
cdef socklen_t _encode_addr(int family, object address,
                            sockaddr_storage *ss) except 0
cdef int _connect_result(int fd) except -1
cdef Py_ssize_t _pin_recv_buffer(object buffer, Py_buffer *view,
                                 Py_ssize_t nbytes, str name,
                                 str too_small) except -1

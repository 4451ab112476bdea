# ---- socket helpers ---------------------------------------------------------
# What the cancellable socket calls (sockets.pxi) share: the socket object's
# timeout, a cancellable wait for readiness, address encoding/decoding.

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


cdef double _timeout(object sock) except? -2.0:
    """A socket object's timeout in seconds, -1.0 for blocking (or an fd)."""
    if isinstance(sock, int):
        return -1.0
    gettimeout = getattr(sock, "gettimeout", None)
    if gettimeout is None:
        return -1.0
    t = gettimeout()
    return -1.0 if t is None else t


cdef int _wait_fd(int fd, short events, double deadline) except -1:
    """Cancellable wait for `events` on fd until the monotonic `deadline`;
    raises socket.timeout (TimeoutError) when it passes, as socket does."""
    cdef pollfd p
    cdef timespec ts
    cdef long r
    while True:
        # Checked first too: a socket can poll ready (POLLHUP, POLLERR) while
        # its call keeps failing with EAGAIN (recv with MSG_ERRQUEUE on an
        # unconnected socket): the timeout must still end the loop, as in
        # the socket module.
        if _now() >= deadline:
            raise _socket.timeout("timed out")
        p.fd = fd
        p.events = events
        p.revents = 0
        _to_timespec(deadline - _now(), &ts)
        r = _call(SYS_ppoll, <long>&p, 1, <long>&ts, 0, 0, 0)
        if r > 0:
            return 0


cdef long _sock_call(object sock, int fd, short events, long nr, long a,
                     long b, long c, long d, long e, long f) except -1:
    """A socket syscall honouring the socket object's timeout: blocking
    sockets block in the syscall; sockets with a timeout wait in ppoll."""
    cdef double timeout = _timeout(sock)
    cdef double deadline
    cdef long r
    if timeout < 0:
        return _call(nr, a, b, c, d, e, f)
    deadline = _now() + timeout
    while True:
        r = _attempt(nr, a, b, c, d, e, f)
        if r >= 0:
            return r
        if (r != -EAGAIN and r != -EWOULDBLOCK) or timeout == 0:
            _raise_errno(r)
        _wait_fd(fd, events, deadline)


# Linux's MAX_RW_COUNT on 4 KiB pages (larger pages only lower it).
cdef Py_ssize_t _MAX_RW_COUNT = 0x7ffff000


cdef object _bytes_call(object sock, int fd, short events, long nr,
                        Py_ssize_t n, long c, long d, long e):
    """The bytes a reading call returns: `n` bytes allocated, filled by
    ``nr(fd, buf, n, c, d, e)`` through `_sock_call` (`sock` None: a plain
    fd, no timeout) and shrunk to the count the kernel returned."""
    cdef PyObject *buf = _bytes_alloc(n)
    cdef long r
    # The kernel moves at most MAX_RW_COUNT (INT_MAX rounded down to a page)
    # bytes per read/recv whatever the length; asking for no more changes
    # no result, and keeps checkers that take the length at its word
    # (valgrind flags recvfrom of 2**31 into a 2**31-byte buffer) quiet.
    cdef Py_ssize_t ask = n if n < _MAX_RW_COUNT else _MAX_RW_COUNT
    try:
        if sock is None:       # a plain fd: no timeout to look up (bench P1)
            r = _call(nr, fd, <long>PyBytes_AS_STRING(buf), ask, c, d, e)
        else:
            r = _sock_call(sock, fd, events, nr, fd, <long>PyBytes_AS_STRING(buf),
                           ask, c, d, e)
    except BaseException:
        _bytes_drop(buf)
        raise
    return _bytes_finish(buf, r)


cdef object _decode_addr(sockaddr_storage *ss, socklen_t length):
    """A sockaddr as the socket module returns it."""
    cdef char host[1025]
    cdef sockaddr *sa = <sockaddr *>ss
    cdef sockaddr_un *un
    cdef sockaddr_in6 *in6
    cdef size_t pathlen
    cdef int err
    if length == 0:
        return None
    if sa.sa_family == AF_INET or sa.sa_family == AF_INET6:
        err = getnameinfo(sa, length, host, sizeof(host), NULL, 0, NI_NUMERICHOST)
        if err:
            raise _socket.gaierror(err, gai_strerror(err).decode())
        if sa.sa_family == AF_INET:
            return (host.decode("ascii"), aioc_port(sa))
        in6 = <sockaddr_in6 *>ss
        return (host.decode("ascii"), aioc_port(sa), ntohl(in6.sin6_flowinfo),
                in6.sin6_scope_id)
    if sa.sa_family == AF_UNIX:
        un = <sockaddr_un *>ss
        pathlen = length - AIOC_SUN_PATH_OFFSET if length > AIOC_SUN_PATH_OFFSET else 0
        if pathlen > 0 and un.sun_path[0] == 0:
            return un.sun_path[:pathlen]   # Linux abstract namespace: bytes
        import os
        return os.fsdecode(un.sun_path[:strlen(un.sun_path)])
    return (<char *>ss)[:length]


cdef int _int_sockopt(int fd, int name) except? -1:
    cdef int value = 0
    cdef socklen_t size = sizeof(value)
    if getsockopt(fd, SOL_SOCKET, name, &value, &size) != 0:
        PyErr_SetFromErrno(OSError)
        return -1
    return value


cdef int _family(int fd) except -1:
    return _int_sockopt(fd, SO_DOMAIN)


cdef socklen_t _encode_addr(int family, object address,
                            sockaddr_storage *ss) except 0:
    """Fill `ss` from a socket-module address; resolve host names."""
    cdef addrinfo hints
    cdef addrinfo *res = NULL
    cdef sockaddr_un *un
    cdef sockaddr_in6 *in6
    cdef bytes path, host_b
    cdef const char *host_p
    cdef socklen_t length
    cdef int err
    memset(ss, 0, sizeof(sockaddr_storage))
    if family == AF_UNIX:
        import os
        path = os.fsencode(address) if not isinstance(address, bytes) else address
        if len(path) > sizeof(un.sun_path):
            raise OSError(EINVAL, "AF_UNIX path too long")
        un = <sockaddr_un *>ss
        un.sun_family = AF_UNIX
        memcpy(un.sun_path, <char *>path, len(path))
        if len(path) and path[0] == 0:
            return <socklen_t>(AIOC_SUN_PATH_OFFSET + len(path))
        return <socklen_t>(AIOC_SUN_PATH_OFFSET + len(path) + 1)
    if family != AF_INET and family != AF_INET6:
        raise OSError(EINVAL, f"unsupported address family {family}")
    name = 'AF_INET6' if family == AF_INET6 else 'AF_INET'
    if not isinstance(address, tuple):
        raise TypeError(f"{name} address must be tuple, not "
                        f"{type(address).__name__}")
    if not 2 <= len(address) <= (4 if family == AF_INET6 else 2):
        raise TypeError(f"{name} address must be "
                        + ("a tuple (host, port[, flowinfo[, scopeid]])"
                           if family == AF_INET6 else "a pair (host, port)"))
    host, port = address[0], address[1]
    if not isinstance(port, int):
        raise TypeError(f"port must be an int, not {type(port).__name__}")
    if not 0 <= port <= 65535:
        raise OverflowError("port must be 0-65535.")
    if host == "" or host == b"":
        host_b = b"::" if family == AF_INET6 else b"0.0.0.0"
    elif host == "<broadcast>":
        host_b = b"255.255.255.255"
    elif isinstance(host, str):
        host_b = host.encode("idna")
    elif isinstance(host, (bytes, bytearray)):
        host_b = bytes(host)
    else:
        raise TypeError(f"str, bytes or bytearray expected, not {type(host).__name__}")
    if b"\0" in host_b:
        # getaddrinfo would stop at the NUL and connect somewhere else.
        raise TypeError("host name must not contain null character")
    host_p = host_b
    memset(&hints, 0, sizeof(hints))
    hints.ai_family = family
    hints.ai_socktype = SOCK_STREAM
    with nogil:
        err = getaddrinfo(host_p, NULL, &hints, &res)
    if err:
        raise _socket.gaierror(err, gai_strerror(err).decode())
    try:
        length = res.ai_addrlen
        memcpy(ss, res.ai_addr, length)
    finally:
        freeaddrinfo(res)
    aioc_set_port(<sockaddr *>ss, port)
    if family == AF_INET6:
        in6 = <sockaddr_in6 *>ss
        if len(address) > 2:
            in6.sin6_flowinfo = htonl(address[2])
        if len(address) > 3:
            in6.sin6_scope_id = address[3]
    return length


cdef int _connect_result(int fd) except -1:
    cdef int err = _int_sockopt(fd, SO_ERROR)
    if err:
        _raise_errno(-err)
    return 0


cdef Py_ssize_t _pin_recv_buffer(object buffer, Py_buffer *view,
                                 Py_ssize_t nbytes, str name,
                                 str too_small) except -1:
    """Pin the writable buffer of a recv*_into call (the caller releases it)
    and return how many bytes to receive: `nbytes`, or all of it for 0.
    Errors and their texts are the socket method's."""
    if nbytes < 0:
        raise ValueError(f"negative buffersize in {name}")
    _get_buffer(buffer, view, True)
    if nbytes == 0:
        return view.len
    if nbytes > view.len:
        PyBuffer_Release(view)
        raise ValueError(too_small)
    return nbytes

# ---- sockets ----------------------------------------------------------------
# Cancellable socket calls (aiocancel.syscalls): recv, recv_into, send,
# sendall, accept, connect, recvfrom, recvfrom_into, recvmsg, sendto and
# sendmsg, with the results and errors of the ``socket.socket`` methods of the
# same names (accept: ``socket._accept``). `sock` is a socket
# object (its timeout is honoured: blocking sockets block in the syscall,
# sockets with a timeout wait in a cancellable ppoll and raise
# ``TimeoutError``, non-blocking ones raise ``BlockingIOError``) or an fd.
#
# Each is a cancellation point (see aiocancel.syscalls): cancelled only while
# nothing was received or sent, so a datagram the kernel delivered, and any
# file descriptors it carried (SCM_RIGHTS), are always returned.

cdef extern from "<sys/socket.h>" nogil:
    struct msghdr:
        void *msg_name
        socklen_t msg_namelen
        iovec *msg_iov
        size_t msg_iovlen
        void *msg_control
        size_t msg_controllen
        int msg_flags
    struct cmsghdr:
        size_t cmsg_len
        int cmsg_level
        int cmsg_type
    cmsghdr *CMSG_FIRSTHDR(msghdr *)
    cmsghdr *CMSG_NXTHDR(msghdr *, cmsghdr *)
    unsigned char *CMSG_DATA(cmsghdr *)
    size_t CMSG_LEN(size_t)
    size_t CMSG_SPACE(size_t)
    int SCM_RIGHTS

cdef enum:
    SOCKLEN_LIMIT = 0x7fffffff


def recv(sock, Py_ssize_t n, int flags=0):
    """Receive up to `n` bytes, like ``socket.recv``; a cancellation point.

    `sock` is a socket object (its timeout is honoured) or an fd."""
    cdef int f = _fd(sock)
    if n < 0:
        raise ValueError("negative buffersize in recv")
    if n == 0:
        return b""   # as socket.recv: no syscall (recv of 0 blocks on AF_UNIX)
    return _bytes_call(sock, f, POLLIN, SYS_recvfrom, n, flags, 0, 0)


def recv_into(sock, buffer, Py_ssize_t nbytes=0, int flags=0):
    """Receive into a writable buffer, like ``socket.recv_into``."""
    cdef int f = _fd(sock)
    cdef Py_buffer view
    nbytes = _pin_recv_buffer(buffer, &view, nbytes, "recv_into",
                              "buffer too small for requested bytes")
    try:
        return _sock_call(sock, f, POLLIN, SYS_recvfrom, f, <long>view.buf,
                          nbytes, flags, 0, 0)
    finally:
        PyBuffer_Release(&view)


def send(sock, data, int flags=0):
    """Send bytes, like ``socket.send``; return how many were sent."""
    cdef int f = _fd(sock)
    cdef Py_buffer view
    _get_buffer(data, &view, False)
    try:
        return _sock_call(sock, f, POLLOUT, SYS_sendto, f, <long>view.buf,
                          view.len, flags, 0, 0)
    finally:
        PyBuffer_Release(&view)


def sendall(sock, data, int flags=0):
    """Send all of `data`, like ``socket.sendall``.

    On cancellation the raised `Cancelled` has ``bytes_sent``: the part of
    `data` that did reach the kernel before the request acted."""
    cdef int f = _fd(sock)
    cdef Py_buffer view
    cdef Py_ssize_t done = 0
    cdef double timeout = _timeout(sock)
    cdef double deadline = _now() + timeout
    cdef long r
    _get_buffer(data, &view, False)
    try:
        while done < view.len:
            try:
                if timeout < 0:
                    r = _call(SYS_sendto, f, <long>view.buf + done,
                              view.len - done, flags, 0, 0)
                else:
                    r = _attempt(SYS_sendto, f, <long>view.buf + done,
                                 view.len - done, flags, 0, 0)
                    if r == -EAGAIN or r == -EWOULDBLOCK:
                        if timeout == 0:
                            _raise_errno(r)
                        _wait_fd(f, POLLOUT, deadline)
                        continue
                    if r < 0:
                        _raise_errno(r)
                done += r
                # A send interrupted by a signal returns a partial count, not
                # EINTR: run the Python handlers before sending more, as
                # socket.sendall does.
                if done < view.len:
                    PyErr_CheckSignals()
            except OSError as exc:
                exc.bytes_sent = done
                raise
    finally:
        PyBuffer_Release(&view)


def accept(sock, int flags=SOCK_CLOEXEC):
    """Accept a connection; return ``(fd, address)`` like ``socket._accept``.

    A cancellation point: cancelled only before the kernel accepted, so an
    accepted connection is always returned. The new fd is close-on-exec, as
    with the socket module; `flags` are accept4's (SOCK_CLOEXEC,
    SOCK_NONBLOCK)."""
    cdef int f = _fd(sock)
    cdef sockaddr_storage ss
    cdef socklen_t length = sizeof(ss)
    cdef long r
    memset(&ss, 0, sizeof(ss))
    r = _sock_call(sock, f, POLLIN, SYS_accept4, f, <long>&ss, <long>&length,
                   flags, 0, 0)
    try:
        return (<int>r, _decode_addr(&ss, length))
    except BaseException:
        _os.close(r)
        raise


def connect(sock, address):
    """Connect, like ``socket.connect``; a cancellation point.

    Host names are resolved first (getaddrinfo, not cancellable). If the
    request acts while the handshake is in flight, the socket is left
    connecting: close it."""
    cdef int f = _fd(sock)
    cdef sockaddr_storage ss
    cdef socklen_t length = _encode_addr(_family(f), address, &ss)
    cdef double timeout = _timeout(sock)
    cdef double deadline = _now() + timeout
    cdef long r = _attempt(SYS_connect, f, <long>&ss, length, 0, 0, 0)
    if r == 0:
        return None
    if r == -EINPROGRESS and timeout != 0:
        # A socket with a timeout (non-blocking underneath): wait for the
        # handshake as socket.connect does, cancellably.
        if timeout > 0:
            _wait_fd(f, POLLOUT, deadline)
        else:
            _wait_fd(f, POLLOUT, 1e300)
        _connect_result(f)
        return None
    _raise_errno(r)


# ---- datagrams and messages -------------------------------------------------

cdef object _sender_address(sockaddr_storage *ss, socklen_t length):
    return _decode_addr(ss, length if length <= sizeof(sockaddr_storage)
                        else sizeof(sockaddr_storage))


def recvfrom(sock, Py_ssize_t n, int flags=0):
    """Receive up to `n` bytes and the sender's address, like
    ``socket.recvfrom``: return ``(data, address)`` (address None when the
    socket has none, e.g. a connected stream). A cancellation point."""
    cdef int f = _fd(sock)
    cdef sockaddr_storage ss
    cdef socklen_t length = sizeof(ss)
    if n < 0:
        raise ValueError("negative buffersize in recvfrom")
    memset(&ss, 0, sizeof(ss))
    data = _bytes_call(sock, f, POLLIN, SYS_recvfrom, n, flags, <long>&ss,
                       <long>&length)
    return (data, _sender_address(&ss, length))


def recvfrom_into(sock, buffer, Py_ssize_t nbytes=0, int flags=0):
    """Receive into a writable buffer, like ``socket.recvfrom_into``: return
    ``(nbytes, address)``. A cancellation point."""
    cdef int f = _fd(sock)
    cdef sockaddr_storage ss
    cdef socklen_t length = sizeof(ss)
    cdef Py_buffer view
    cdef long r
    nbytes = _pin_recv_buffer(buffer, &view, nbytes, "recvfrom_into",
                              "nbytes is greater than the length of the buffer")
    try:
        memset(&ss, 0, sizeof(ss))
        r = _sock_call(sock, f, POLLIN, SYS_recvfrom, f, <long>view.buf,
                       nbytes, flags, <long>&ss, <long>&length)
    finally:
        PyBuffer_Release(&view)
    return (r, _sender_address(&ss, length))


def sendto(sock, data, *args):
    """Send a datagram to an address, like ``socket.sendto``:
    ``sendto(sock, data, address)`` or ``sendto(sock, data, flags, address)``;
    return the number of bytes sent. A cancellation point (cancelled only if
    nothing was sent)."""
    cdef int f = _fd(sock)
    cdef int flags = 0
    cdef sockaddr_storage ss
    cdef socklen_t length
    cdef Py_buffer view
    if len(args) == 1:
        address = args[0]
    elif len(args) == 2:
        flags, address = args
    else:
        raise TypeError(f"sendto() takes 2 or 3 arguments ({len(args) + 1} given)")
    _get_buffer(data, &view, False)
    try:
        length = _encode_addr(_family(f), address, &ss)
        return _sock_call(sock, f, POLLOUT, SYS_sendto, f, <long>view.buf,
                          view.len, flags, <long>&ss, length)
    finally:
        PyBuffer_Release(&view)


# ---- recvmsg / sendmsg ------------------------------------------------------

cdef Py_ssize_t _cmsg_data_len(msghdr *msg, cmsghdr *c):
    """Bytes of c's data that lie inside the control buffer (the kernel
    truncates with MSG_CTRUNC), or -1 if even the header does not fit."""
    cdef char *end = <char *>msg.msg_control + msg.msg_controllen
    cdef char *data = <char *>CMSG_DATA(c)
    cdef size_t want
    if <char *>c + CMSG_LEN(0) > end or c.cmsg_len < CMSG_LEN(0):
        return -1
    want = c.cmsg_len - CMSG_LEN(0)
    if data + want > end:
        return end - data
    return want


cdef list _decode_cmsgs(msghdr *msg):
    cdef list out = []
    cdef cmsghdr *c
    cdef Py_ssize_t n
    if msg.msg_controllen == 0:
        return out
    c = CMSG_FIRSTHDR(msg)
    while c is not NULL:
        n = _cmsg_data_len(msg, c)
        if n < 0:
            break
        out.append((c.cmsg_level, c.cmsg_type, (<char *>CMSG_DATA(c))[:n]))
        c = CMSG_NXTHDR(msg, c)
    return out


cdef void _close_passed_fds(msghdr *msg) noexcept:
    """Close SCM_RIGHTS fds of a message whose result cannot be delivered
    (as the socket module does), so that an error never leaks them."""
    cdef cmsghdr *c
    cdef Py_ssize_t n, i
    cdef int *fds
    if msg.msg_controllen == 0:
        return
    c = CMSG_FIRSTHDR(msg)
    while c is not NULL:
        n = _cmsg_data_len(msg, c)
        if n < 0:
            break
        if c.cmsg_level == SOL_SOCKET and c.cmsg_type == SCM_RIGHTS:
            fds = <int *>CMSG_DATA(c)
            for i in range(n // sizeof(int)):
                if fds[i] >= 0:
                    close(fds[i])
        c = CMSG_NXTHDR(msg, c)


def recvmsg(sock, Py_ssize_t bufsize, Py_ssize_t ancbufsize=0, int flags=0):
    """Receive data, ancillary data and the sender's address, like
    ``socket.recvmsg``: return ``(data, ancdata, msg_flags, address)``,
    ancdata a list of ``(level, type, data)``. A cancellation point: a
    message the kernel delivered is returned whole, with any fds it carried.
    """
    cdef int f = _fd(sock)
    cdef sockaddr_storage ss
    cdef msghdr msg
    cdef iovec iov
    cdef PyObject *buf
    cdef long r
    if bufsize < 0:
        raise ValueError("negative buffer size in recvmsg()")
    if ancbufsize < 0 or ancbufsize > SOCKLEN_LIMIT:
        raise ValueError("invalid ancillary data buffer length")
    memset(&msg, 0, sizeof(msg))
    memset(&ss, 0, sizeof(ss))
    buf = _bytes_alloc(bufsize)
    try:
        msg.msg_control = PyMem_Calloc(ancbufsize or 1, 1)
        if msg.msg_control is NULL:
            raise MemoryError()
        iov.iov_base = PyBytes_AS_STRING(buf)
        iov.iov_len = bufsize
        msg.msg_iov = &iov
        msg.msg_iovlen = 1
        msg.msg_name = &ss
        msg.msg_namelen = sizeof(ss)
        msg.msg_controllen = ancbufsize
        r = _sock_call(sock, f, POLLIN, SYS_recvmsg, f, <long>&msg, flags,
                       0, 0, 0)
    except BaseException:
        _bytes_drop(buf)
        PyMem_Free(msg.msg_control)
        raise
    try:
        data = _bytes_finish(buf, r)
        result = (data, _decode_cmsgs(&msg), msg.msg_flags,
                  _sender_address(&ss, msg.msg_namelen))
    except BaseException:
        _close_passed_fds(&msg)
        raise
    finally:
        PyMem_Free(msg.msg_control)
    return result


def sendmsg(sock, buffers, ancdata=(), int flags=0, address=None):
    """Send the buffers as one message, with ancillary data ``(level, type,
    data)`` items, to `address` if given, like ``socket.sendmsg``; return
    the number of bytes sent. A cancellation point (cancelled only if
    nothing was sent)."""
    cdef int f = _fd(sock)
    cdef IOVecs iovs = IOVecs()
    cdef IOVecs items = IOVecs()
    cdef sockaddr_storage ss
    cdef msghdr msg
    cdef cmsghdr *c
    cdef size_t controllen = 0
    cdef Py_ssize_t i
    memset(&msg, 0, sizeof(msg))
    try:
        buffers = list(buffers)
    except TypeError:
        raise TypeError("sendmsg() argument 1 must be an iterable") from None
    try:
        ancdata = list(ancdata)
    except TypeError:
        raise TypeError("sendmsg() argument 2 must be an iterable") from None
    levels = []
    for item in ancdata:
        try:
            level, kind, _ = item
        except (TypeError, ValueError):
            # socket.sendmsg's own text ("3-item sequence" before 3.14,
            # "3-item tuple" since).
            raise (_stdlib_errors.sendmsg_item_error(item) or TypeError(
                "[sendmsg() ancillary data items]() argument must be a "
                f"3-item tuple, not {type(item).__name__}")) from None
        try:
            levels.append((_operator.index(level), _operator.index(kind)))
        except TypeError:
            raise (_stdlib_errors.sendmsg_item_error(item) or TypeError(
                "[sendmsg() ancillary data items]() argument must be a "
                "3-item tuple of two integers and a bytes-like object")) from None
    iovs.fill(buffers, False, "sendmsg() argument 1")
    items.fill([item[2] for item in ancdata], False, "sendmsg() argument 2")
    for i in range(items.count):
        controllen += CMSG_SPACE(items.iov[i].iov_len)
        if controllen > SOCKLEN_LIMIT:
            raise OSError("too much ancillary data")
    if address is not None:
        msg.msg_namelen = _encode_addr(_family(f), address, &ss)
        msg.msg_name = &ss
    msg.msg_iov = iovs.iov
    msg.msg_iovlen = iovs.count
    try:
        if controllen:
            # Zeroed: glibc's CMSG_NXTHDR reads the next header's cmsg_len.
            msg.msg_control = PyMem_Calloc(controllen, 1)
            if msg.msg_control is NULL:
                raise MemoryError()
            msg.msg_controllen = controllen
            c = CMSG_FIRSTHDR(&msg)
            for i in range(items.count):
                c.cmsg_level, c.cmsg_type = levels[i]
                c.cmsg_len = CMSG_LEN(items.iov[i].iov_len)
                memcpy(CMSG_DATA(c), items.iov[i].iov_base, items.iov[i].iov_len)
                c = CMSG_NXTHDR(&msg, c)
        return _sock_call(sock, f, POLLOUT, SYS_sendmsg, f, <long>&msg,
                          flags, 0, 0, 0)
    finally:
        PyMem_Free(msg.msg_control)
        iovs.release()
        items.release()

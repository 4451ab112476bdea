# ---- patch-mode stand-ins ---------------------------------------------------
# The stand-ins aiocancel.patch() installs, compiled: outside workers a
# patched call costs one C-level state check and the call of the original.
#
# `StandIn(original, cancellable, keep_cancelled)` is called like `original`
# and, by the calling thread's state (aiocancel._cancel.cp_mode):
#
# * 0 (unregistered, or DISABLE): calls `original`;
# * 1 (MASKED or ENABLE: a worker's job, a masked() block): calls
#   `cancellable`, a cancellation point;
# * 2 (DISABLE after a cancellation point acted on a still pending request):
#   raises Cancelled, unless `keep_cancelled` is false (calls that cleanup
#   needs), which then call `original`.
#
# As a class attribute it binds like a function, so it can replace methods.

cdef extern from "Python.h":
    object PyMethod_New(object func, object self)


cdef class StandIn:
    cdef readonly object original
    cdef readonly object cancellable
    cdef bint keep_cancelled
    cdef dict __dict__

    def __init__(self, original, cancellable, bint keep_cancelled=True):
        self.original = original
        self.cancellable = cancellable
        self.keep_cancelled = keep_cancelled
        # What functools.update_wrapper copies: names, docs, signature.
        for name in ("__module__", "__name__", "__qualname__", "__doc__"):
            value = getattr(original, name, None)
            if value is not None:
                setattr(self, name, value)
        self.__wrapped__ = original

    def __call__(self, *args, **kwargs):
        cdef int mode = cp_mode()
        if mode == 0:
            return self.original(*args, **kwargs)
        if mode == 1:
            return self.cancellable(*args, **kwargs)
        if self.keep_cancelled:
            raise Cancelled()
        return self.original(*args, **kwargs)

    def __get__(self, obj, objtype):
        if obj is None:
            return self
        return PyMethod_New(self, obj)

    def __reduce__(self):
        # Pickled by name, as the function it stands in for.
        return self.__qualname__

    def __repr__(self):
        return f"<aiocancel stand-in for {self.original!r}>"

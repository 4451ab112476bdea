"""The syscall table (aiocancel/_table.py) and everything that must agree
with it: ``aiocancel.syscalls`` (its ``__all__`` and where each function
comes from), the compiled stubs (every ``aiocancel/_*.pyi``, parsed), the
``aiocancel.aio`` awaitables, the fallback and ``aiocancel.patch()``'s
stand-ins. Adding a syscall without its table entry, stub, awaitable or
fallback fails here, naming what is missing."""
from __future__ import annotations

import _socket
import ast
import errno
import glob
import inspect
import os
import socket

import pytest

import aiocancel
from aiocancel import _core, _fallback, _table, aio, syscalls

PACKAGE = os.path.dirname(os.path.abspath(aiocancel.__file__))
BY_NAME = {entry.name: entry for entry in _table.TABLE}

# The stubs' public functions that are no syscall: the cancellation-state
# API of the compiled core (aiocancel/_cancel.pyi today).
STATE_FUNCTIONS = {"cancel_signal", "setcancelstate", "getcancelstate",
                   "cancel_thread", "testcancel"}


def _shape(sig: inspect.Signature) -> list[tuple[str, object, bool]]:
    """Names, kinds and whether each has a default (default values differ
    by platform, e.g. accept's SOCK_CLOEXEC)."""
    return [(p.name, p.kind, p.default is not inspect.Parameter.empty)
            for p in sig.parameters.values()]


def _stub_signature(node: ast.FunctionDef) -> inspect.Signature:
    params = ast.unparse(node.args)
    # Defaults in stubs are `...`; annotations are not the table's concern.
    tree = ast.parse(f"def f({params}): pass").body[0]
    assert isinstance(tree, ast.FunctionDef)
    for arg in (tree.args.posonlyargs + tree.args.args + tree.args.kwonlyargs
                + [a for a in (tree.args.vararg, tree.args.kwarg) if a]):
        arg.annotation = None
    return _table.signature(ast.unparse(tree.args))


def _stub_functions() -> dict[str, list[tuple[str, inspect.Signature]]]:
    """Public top-level function name -> [(stub file, signature)] over every
    aiocancel/_*.pyi (an @overload'ed function counts once, by its first
    declaration)."""
    found: dict[str, list[tuple[str, inspect.Signature]]] = {}
    for path in sorted(glob.glob(os.path.join(PACKAGE, "_*.pyi"))):
        with open(path) as f:
            tree = ast.parse(f.read(), path)
        seen = set()
        for node in tree.body:
            if (isinstance(node, ast.FunctionDef) and not node.name.startswith("_")
                    and node.name not in seen):
                seen.add(node.name)
                found.setdefault(node.name, []).append(
                    (os.path.basename(path), _stub_signature(node)))
    return found


def test_table_file_parses_its_format_and_names_a_bad_line():
    entries = _table.parse("# name module aio stdlib patch params\n\n"
                           "read  syscalls  read  os.read  divert  fd, n\n"
                           "poll  syscalls  poll  -        -       fds, timeout=...\n")
    assert entries == (
        _table.Syscall("read", "syscalls", "fd, n", "read", "os.read", "divert"),
        _table.Syscall("poll", "syscalls", "fds, timeout=...", "poll", None, None))
    with pytest.raises(ValueError, match=r"syscalls\.tbl, line 2: .*'read syscalls'"):
        _table.parse("# comment\nread syscalls\n")
    with pytest.raises(ValueError, match="line 1"):
        _table.parse("read syscalls read os.read sometimes fd, n\n")


def test_table_names_are_unique_and_are_syscalls_all():
    assert len(set(_table.NAMES)) == len(_table.NAMES)
    assert sorted(syscalls.__all__) == sorted(_table.NAMES)
    assert _table.HAND_WRITTEN <= set(_table.NAMES)


@pytest.mark.parametrize("name", _table.NAMES)
def test_syscalls_takes_the_function_from_the_tables_module(name):
    entry = BY_NAME[name]
    assert getattr(syscalls, name) is getattr(getattr(_core, entry.module), name)


def test_every_stub_function_is_in_the_table_once_with_its_parameters():
    stubs = _stub_functions()
    missing = [name for name in _table.NAMES if name not in stubs]
    assert not missing, f"no stub declares {missing}"
    twice = {name: [f for f, _ in where] for name, where in stubs.items()
             if len(where) > 1}
    assert not twice, f"declared in more than one stub: {twice}"
    unknown = set(stubs) - set(_table.NAMES) - STATE_FUNCTIONS
    assert not unknown, f"stub functions missing from the syscall table: {unknown}"
    for name in _table.NAMES:
        (path, sig), = stubs[name]
        assert _shape(sig) == _shape(_table.signature(BY_NAME[name].params)), (
            name, path)


@pytest.mark.parametrize("name", _table.NAMES)
def test_aio_awaitable_has_the_tables_parameters(name):
    entry = BY_NAME[name]
    assert entry.aio is not None and entry.aio in aio.__all__, name
    awaitable = getattr(aio, entry.aio)
    assert inspect.iscoroutinefunction(awaitable), entry.aio
    assert _shape(inspect.signature(awaitable)) == _shape(
        _table.signature(entry.params)), entry.aio


def test_aio_has_nothing_the_table_lacks():
    assert set(aio.__all__) == {e.aio for e in _table.TABLE if e.aio is not None}


@pytest.mark.parametrize("name", _table.NAMES)
def test_fallback_has_the_tables_parameters(name):
    assert _shape(inspect.signature(getattr(_fallback, name))) == _shape(
        _table.signature(BY_NAME[name].params)), name


@pytest.mark.parametrize("entry", [e for e in _table.TABLE
                                   if e.name not in _table.HAND_WRITTEN],
                         ids=lambda e: e.name)
def test_generated_entries_give_every_default(entry):
    """A generated fallback applies the table's defaults: none may be `...`."""
    for param in _table.signature(entry.params).parameters.values():
        assert param.default is not Ellipsis, (entry.name, param.name)


@pytest.mark.parametrize("entry", [e for e in _table.TABLE if e.stdlib is not None],
                         ids=lambda e: e.name)
def test_stdlib_counterpart_exists_here(entry):
    owner, attr = _table.resolve(entry.stdlib)
    assert owner is not None and callable(getattr(owner, attr)), entry.stdlib


@pytest.mark.parametrize("entry", [e for e in _table.TABLE if e.patch is not None],
                         ids=lambda e: e.name)
def test_patch_replaces_the_stdlib_counterpart(entry):
    owner, attr = _table.resolve(entry.stdlib)
    original = getattr(owner, attr)
    aiocancel.patch()
    try:
        stand_in = owner.__dict__[attr]
        assert stand_in is not original
        assert stand_in.cancellable is getattr(syscalls, entry.name)
    finally:
        aiocancel.unpatch()
    assert getattr(owner, attr) is original


@pytest.mark.parametrize("entry", [e for e in _table.TABLE if e.stdlib is None
                                   and e.name not in _table.HAND_WRITTEN],
                         ids=lambda e: e.name)
def test_fallback_without_a_stdlib_counterpart_raises_enosys(entry):
    """futex and System V IPC exist only in the compiled core: whatever the
    arguments, the fallback's call says so (README: a call the platform's
    stdlib lacks raises OSError(ENOSYS))."""
    with pytest.raises(OSError) as info:
        getattr(_fallback, entry.name)()
    assert info.value.errno == errno.ENOSYS
    assert entry.name in str(info.value) and "fallback mode" in str(info.value)


@pytest.mark.parametrize("entry", [e for e in _table.TABLE if e.stdlib is not None],
                         ids=lambda e: e.name)
def test_fallback_calls_the_tables_stdlib_counterpart(entry):
    """The fallback bound, at import, the very callable the table names
    (a socket method: the C base class's, which patch() never replaces)."""
    owner, attr = _table.resolve(entry.stdlib)
    if owner is socket.socket:
        owner = _socket.socket
    assert _fallback._std[entry.name] is getattr(owner, attr)

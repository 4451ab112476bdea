"""Filter a valgrind log down to the errors that involve aiocancel's code.

CPython and glibc produce memcheck reports of their own under valgrind
(optimized string functions reading past the end, values CPython never
initializes on purpose); CPython's suppression file (Misc/valgrind-python.supp)
covers only part of them and depends on the exact build. An error counts
here if any stack of its report (the access, and where the block was
allocated or freed) has a frame in aiocancel's own code: its C core, its
Cython modules, or its trampoline. Those are printed; the exit status is 1
if there is one. The remaining reports are only counted.

usage: python valgrind_ours.py LOGFILE
"""
from __future__ import annotations

import re
import sys

OURS = re.compile(r"cancel_core\.c|transparent\.c|syscall_cp\.S|_cancel\.pyx|"
                  r"_syscalls\.pyx|\w+\.pxi|_testhelper\.pyx|aiocancel/_\w+\.cpython|"
                  r"aioc_\w+|__pyx_")
START = re.compile(r"^==\d+== (\S.*)$")


def blocks(lines: list[str]):
    """Error reports: from a non-indented line to the next empty one."""
    current: list[str] = []
    for line in lines:
        m = START.match(line)
        if m and not current and not m.group(1).startswith(("HEAP SUMMARY",
                                                            "LEAK SUMMARY")):
            current = [line]
        elif current:
            if re.match(r"^==\d+== $", line):
                yield current
                current = []
            else:
                current.append(line)
    if current:
        yield current


def main(argv: list[str]) -> int:
    with open(argv[1], errors="replace") as f:
        lines = f.read().splitlines()
    ours, others = [], 0
    for block in blocks(lines):
        if not any(" at 0x" in l or " by 0x" in l for l in block):
            continue
        if any(OURS.search(l) for l in block):
            ours.append(block)
        else:
            others += 1
    for block in ours:
        print("\n".join(block), end="\n\n")
    print(f"valgrind: {len(ours)} report(s) involving aiocancel, {others} elsewhere "
          "(CPython/glibc, not counted)")
    return 1 if ours else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""Build: the trampoline (.S), the C cancellation core and the Cython modules.

Only Linux on x86_64 and aarch64 has a trampoline; elsewhere the package
installs as pure Python and runs in its fallback mode (aiocancel.SUPPORTED is
False).
"""
import platform
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ARCH = {"x86_64": "x86_64", "amd64": "x86_64",
        "aarch64": "aarch64", "arm64": "aarch64"}.get(platform.machine().lower())
SUPPORTED = sys.platform.startswith("linux") and ARCH is not None


class BuildExt(build_ext):
    """build_ext that hands .S files to the C compiler (gcc/clang run cpp and
    the assembler on them)."""

    def build_extensions(self):
        if ".S" not in self.compiler.src_extensions:
            self.compiler.src_extensions.append(".S")
        super().build_extensions()


# The cancellable-syscall modules, one concept each; _sysbase and _sockbase
# hold what the others cimport.
SYSCALL_MODULES = ["_sysbase", "_sockbase", "_syscalls", "_sockets", "_files",
                   "_waits", "_futex", "_ipc", "_standin"]


def extensions():
    if not SUPPORTED:
        return []
    from Cython.Build import cythonize

    common = dict(include_dirs=["cysrc"],
                  extra_compile_args=["-O2", "-fno-strict-aliasing"])
    exts = [
        Extension("aiocancel._cancel",
                  ["cysrc/aiocancel/_cancel.pyx", "cysrc/cancel_core.c",
                   "cysrc/transparent.c",
                   f"asm/{ARCH}/syscall_cp.S"], **common),
        *(Extension(f"aiocancel.{name}", [f"cysrc/aiocancel/{name}.pyx"], **common)
          for name in SYSCALL_MODULES),
        Extension("aiocancel._testhelper", ["cysrc/aiocancel/_testhelper.pyx"], **common),
    ]
    return cythonize(exts, include_path=["cysrc"],
                     compiler_directives={"language_level": 3})


setup(ext_modules=extensions(), cmdclass={"build_ext": BuildExt})

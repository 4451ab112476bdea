"""Build: the trampoline (.S), the C cancellation core and the Cython modules.

Three extension modules: ``_cancel`` (the core), ``_syscalls`` (every
cancellable call, one included .pxi per concept) and the test-only
``_testhelper``.

Only Linux on x86_64 and aarch64 has a trampoline; elsewhere the package
installs as pure Python and runs in its fallback mode (aiocancel.SUPPORTED is
False, see aiocancel/_fallback.py).

The target is read from ``sysconfig.get_platform()``, not the build machine,
so that a cross build (``_PYTHON_HOST_PLATFORM=linux-aarch64``, as
.ci/wheels.sh does) picks the target's trampoline.

Release builds (wheels, plain ``pip install``) carry no debug information
(``-g0``, linked with ``-s``) and leave out the test-only ``_testhelper``
module. Editable and in-place builds (``pip install -e .``,
``setup.py build_ext --inplace``) and builds with ``AIOCANCEL_TESTHELPER=1``
include it: the test-suite needs it.
"""
import os
import runpy
import sysconfig

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

_PLATFORM = sysconfig.get_platform()          # e.g. linux-x86_64, linux-aarch64
# The package's one architecture probe, read by path (setup.py cannot import
# the package it builds); applied to the target's tag, not this machine.
_arch = runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                    "aiocancel", "_arch.py"))
ARCH = _arch["canonical"](_PLATFORM.rsplit("-", 1)[-1])
if ARCH not in _arch["SUPPORTED"]:
    ARCH = None
SUPPORTED = _PLATFORM.startswith("linux") and ARCH is not None
TESTHELPER = "aiocancel._testhelper"


class BuildExt(build_ext):
    """build_ext that hands .S files to the C compiler (gcc/clang run cpp and
    the assembler on them), and keeps the test helper out of release builds."""

    def _dev_build(self) -> bool:
        return bool(self.inplace or getattr(self, "editable_mode", False)
                    or os.environ.get("AIOCANCEL_TESTHELPER", "") not in ("", "0"))

    def build_extensions(self):
        if ".S" not in self.compiler.src_extensions:
            self.compiler.src_extensions.append(".S")
        if not self._dev_build():
            self.extensions = [e for e in self.extensions if e.name != TESTHELPER]
            for ext in self.extensions:
                ext.extra_compile_args = [*ext.extra_compile_args, "-g0"]
                ext.extra_link_args = [*ext.extra_link_args, "-s"]
        super().build_extensions()

    def get_outputs(self):
        # The dropped helper must not be listed among the wheel's files.
        return [o for o in super().get_outputs()
                if self._dev_build() or "_testhelper" not in os.path.basename(o)]


def extensions():
    if not SUPPORTED:
        return []
    from Cython.Build import cythonize

    common = dict(include_dirs=["cysrc"],
                  extra_compile_args=["-O2", "-fno-strict-aliasing"])
    exts = [
        # The core: the trampoline, the C cancellation core, transparent mode
        # and the per-thread state API; the only module that links them.
        Extension("aiocancel._cancel",
                  ["cysrc/aiocancel/_cancel.pyx", "cysrc/cancel_core.c",
                   "cysrc/transparent.c",
                   f"asm/{ARCH}/syscall_cp.S"], **common),
        # Every cancellable syscall wrapper and the patch-mode stand-ins:
        # one module that includes cysrc/aiocancel/syscalls/*.pxi, one file
        # per concept. It reaches the C core through _cancel's cimported
        # functions, so the core's per-thread state exists once per process.
        Extension("aiocancel._syscalls", ["cysrc/aiocancel/_syscalls.pyx"],
                  **common),
        Extension(TESTHELPER, ["cysrc/aiocancel/_testhelper.pyx"], **common),
    ]
    return cythonize(exts, include_path=["cysrc"],
                     compiler_directives={"language_level": 3})


setup(ext_modules=extensions(), cmdclass={"build_ext": BuildExt})

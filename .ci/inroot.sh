#!/usr/bin/env bash
# Run a command inside a root built by .ci/roots.sh:
#
#   bash .ci/inroot.sh ROOT [--cd DIR] CMD [ARG...]
#
# chroot into ROOT, cwd DIR (a path inside the root, default /root), a clean
# environment (PATH, HOME, LANG, TERM, the pip settings CI uses, and every
# AIOC_*/AIOCANCEL_*/PYTEST_*/HYPOTHESIS_* variable passed through), and
# SIGINT back at its default disposition: a process started from a
# background shell (CI runners, `cmd &`) inherits SIGINT ignored, and the
# tests that check Ctrl-C ends asyncio.run need the default. The reset is
# done by the host's env(1) before chroot, and SIG_DFL survives exec.
# Exits with CMD's status.
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 ROOT [--cd DIR] CMD [ARG...]" >&2; exit 2; }
R=$1
shift
CWD=/root
if [ "$1" = --cd ]; then CWD=$2; shift 2; fi
[ -d "$R/proc/self" ] || { echo "$R: not a mounted root (run .ci/roots.sh first)" >&2; exit 2; }

pass=()
while IFS='=' read -r name _; do
    case $name in AIOC_*|AIOCANCEL_*|PYTEST_*|HYPOTHESIS_*) pass+=("$name=${!name}");; esac
done < <(env)

exec env -i --default-signal=INT \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/root LANG=C.UTF-8 TERM="${TERM:-dumb}" \
    PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore PIP_DEFAULT_TIMEOUT=180 \
    "${pass[@]}" \
    chroot "$R" /usr/bin/env -C "$CWD" "$@"

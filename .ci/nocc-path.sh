#!/bin/sh
# nocc-path.sh DIR: fill DIR with links to every program in /usr/local/bin,
# /usr/bin and /bin except compilers, assemblers and linkers, so that
# PATH=DIR runs anything but cannot build a C extension (.ci/wheels.sh
# installs its wheels that way, on the host and inside the arm64 root).
set -eu
mkdir -p "$1"
for f in /usr/local/bin/* /usr/bin/* /bin/*; do
    [ -e "$f" ] || continue
    b=$(basename "$f")
    case $b in
        *gcc*|*g++*|cc|c++|c89*|c99*|*clang*|cpp|*-cpp*|as|*-as|ld|ld.*|*-ld|*-ld.*|tcc|zig) continue;;
    esac
    [ -e "$1/$b" ] || ln -s "$f" "$1/$b"
done

# Sourced by .ci/run (and usable by other .ci scripts): README's Quick start
# commands and running them on a given interpreter, on the host or inside a
# Debian root (.ci/roots.sh, .ci/inroot.sh).
CI_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$CI_DIR/.." && pwd)

step() { printf '\n=== %s\n' "$*"; }

# The Quick start block's two commands: install+demo, then tests.
mapfile -t CMDS < <(awk '/^## Quick start/{q=1} q&&/^```sh/{f=1;next} f&&/^```/{exit} f&&NF' "$REPO/README.md")
[ "${#CMDS[@]}" -eq 2 ] || { echo "README Quick start must hold exactly two commands"; exit 1; }
DEMO_CMD=${CMDS[0]}
TEST_CMD=${CMDS[1]}

# timed LABEL CMD...: run CMD, then print how long it took (CI keeps a budget);
# returns CMD's status. CMD runs in an `||` context, where bash ignores set -e:
# the functions below check each command themselves.
timed() {
    local label=$1 t0=$SECONDS rc=0
    shift
    "$@" || rc=$?
    printf '=== took %d s: %s (exit %d)\n' "$((SECONDS - t0))" "$label" "$rc"
    return "$rc"
}

# run_readme PYTHON DIR [CMD...]: README's commands (default both) in DIR
# with PYTHON as `python3`.
run_readme() {
    local py=$1 dir=$2 shim cmd
    shift 2
    [ $# -gt 0 ] || set -- "$DEMO_CMD" "$TEST_CMD"
    shim=$(mktemp -d)
    ln -s "$py" "$shim/python3"
    for cmd in "$@"; do
        step "$("$py" --version) in $dir: $cmd"
        (cd "$dir" && PATH="$shim:$PATH" bash -c "$cmd") || return   # explicit: `timed` runs us under ||
    done
}

# clone_into_root ROOT NAME: a fresh clone of this repository's HEAD at
# ROOT/src/NAME (replacing an old one); prints the path inside the root.
clone_into_root() {
    local root=$1 name=$2
    rm -rf "${root:?}/src/$name"
    mkdir -p "$root/src"
    git clone -q "$REPO" "$root/src/$name"
    echo "/src/$name"
}

# readme_in_root ROOT PYTHON NAME [CMD...]: README's commands (default both)
# inside ROOT on a fresh clone, with PYTHON (a name on the root's PATH, e.g.
# python3.14) as `python3`, SIGINT at its default.
readme_in_root() {
    local root=$1 py=$2 name=$3 dir cmd
    shift 3
    [ $# -gt 0 ] || set -- "$DEMO_CMD" "$TEST_CMD"
    dir=$(clone_into_root "$root" "$name") || return
    mkdir -p "$root/opt/shim-$py"
    ln -sfn "/usr/bin/$py" "$root/opt/shim-$py/python3"
    for cmd in "$@"; do
        step "$(bash "$CI_DIR/inroot.sh" "$root" "$py" --version) in $root$dir: $cmd"
        # The roots carry no PostgreSQL server: its tests skip there (they
        # run, and are required, on the host).
        bash "$CI_DIR/inroot.sh" "$root" --cd "$dir" \
            env -u AIOCANCEL_REQUIRE_POSTGRES \
            PATH="/opt/shim-$py:/usr/local/bin:/usr/bin:/bin" bash -c "$cmd" || return
    done
}

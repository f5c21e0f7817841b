#!/bin/sh
# System calls (strace -c, with -f for the whole process tree, without for
# cbreak's own process) and page faults (perf stat, whole process
# tree, mean of 50 runs) of a skip and a wrap, and of the floors and the
# system's programs, each in a plain environment (env -i, three variables),
# as BENCHMARKS.md reports them. Build first: `cargo static --examples`
# (default) or `cargo build --release --examples` and pass target/release.
#
#   sh benches/syscalls.sh [BINDIR]
set -eu
T=${1:-target/x86_64-unknown-linux-gnu/release}
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
mkdir -p "$W/home" "$W/state"
: > "$W/lock"
E="env -i PATH=/usr/bin:/bin HOME=$W/home CBREAK_STATE_DIR=$W/state"
$E "$T/cbreak" trip --create tripped > /dev/null
$E "$T/cbreak" run -n b -- /bin/true
printf '%-58s %9s %9s %12s\n' command syscalls "(parent)" page-faults
for c in "$T/cbreak run --name tripped --quiet -- /bin/true" "$T/examples/noop" /bin/true \
         "$T/cbreak run --name b -- /bin/true" "$T/examples/spawn_floor /bin/true" \
         "/usr/bin/flock $W/lock /bin/true"; do
    # shellcheck disable=SC2086 # word splitting of $E and $c is intended
    $E strace -c -f -qq -o "$W/all" $c > /dev/null 2>&1 || true  # a skip exits 75
    # shellcheck disable=SC2086
    $E strace -c -qq -o "$W/parent" $c > /dev/null 2>&1 || true  # a skip exits 75
    total=$(awk '$NF == "total" {print $4}' "$W/all")
    parent=$(awk '$NF == "total" {print $4}' "$W/parent")
    # shellcheck disable=SC2086
    faults=$($E perf stat -r 50 -x, -e page-faults $c 2>&1 > /dev/null | grep page-faults | cut -d, -f1)
    printf '%-58s %9s %9s %12s\n' "$(echo "$c" | sed "s|$W|\$W|; s|$T/||")" "$total" "$parent" "$faults"
done

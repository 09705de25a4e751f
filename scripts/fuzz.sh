#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ for SECONDS each (default 60) and prints one line per
# target with its exec count. Exits non-zero if any target found something (a panic, a
# sanitizer report, a leak or a timeout: the input is left in fuzz/artifacts/<target>/)
# or did not build. Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
#
#   scripts/fuzz.sh [SECONDS]
set -u

seconds=${1:-60}
case $seconds in
  '' | *[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/../fuzz" || exit 2

targets=$(cargo +nightly fuzz list) || { echo "fuzz: cannot list targets" >&2; exit 2; }
[ -n "$targets" ] || { echo "fuzz: cargo fuzz listed no targets" >&2; exit 2; }
status=0
logs=$(mktemp -d)
for target in $targets; do
  log="$logs/$target.log"
  cargo +nightly fuzz run "$target" -- -max_total_time="$seconds" >"$log" 2>&1
  rc=$?
  # libFuzzer's last status line ("#1234 ...") or its final "Done 1234 runs".
  execs=$(grep -aoE '^(#[0-9]+|Done [0-9]+)' "$log" | grep -oE '[0-9]+' | tail -n 1)
  if [ "$rc" -eq 0 ]; then
    echo "$target: ${execs:-0} execs in ${seconds}s, no finding"
  else
    status=1
    # A panic's location and message, or a sanitizer's or the compiler's first error.
    what=$(grep -a -m 1 -A 1 -E 'panicked at' "$log" | tr '\n' ' ')
    [ -n "$what" ] || what=$(grep -a -m 1 -E 'ERROR: |error(\[E[0-9]+\])?:' "$log")
    artifact=$(grep -a -oE 'Test unit written to [^ ]+' "$log" | sed 's/Test unit written to //')
    when=${execs:+after $execs execs}
    echo "$target: FINDING ${when:-while replaying its corpus} (exit $rc): ${what:-see the log}${artifact:+ — input: $artifact} — log: $log"
  fi
done
exit $status

#!/bin/bash
# SPDX-License-Identifier: MIT
#
# End-to-end test of "lamina rc": run a command under limits, its usage
# line, its exit status, its own failures, and "rc caps". Every group lives
# under lamina-test-cli-PID, which lamina creates for each run and removes
# after it; the script checks that nothing is left behind.
#
# Usage: test-rc-cli.sh PATH-TO-LAMINA
#
# Needs root and cgroups: exits 77 (skip) without them.

set -u

if [ $# -ne 1 ]; then
	echo "usage: $0 PATH-TO-LAMINA" >&2
	exit 2
fi
LAMINA=$(realpath "$1") || exit 2
if [ "$(id -u)" -ne 0 ]; then
	echo "skipped: lamina rc needs root"
	exit 77
fi

T=$(mktemp -d) || exit 1
P=lamina-test-cli-$$
cleanup() {
	rm -rf "$T"
	# The safety net, should a run have failed half-way.
	for d in /sys/fs/cgroup/*/"$P" /sys/fs/cgroup/"$P"; do
		[ -d "$d" ] || continue
		find "$d" -depth -type d -exec rmdir {} + 2>/dev/null
	done
}
trap cleanup EXIT
export LC_ALL=C
unset LAMINA_STORE

if ! "$LAMINA" rc caps --parent "$P" >"$T/caps" 2>&1; then
	echo "skipped: no usable cgroups here:"
	cat "$T/caps"
	exit 77
fi

checks=0
failures=0

check() {
	local desc=$1
	shift
	checks=$((checks + 1))
	if "$@"; then
		echo "ok $checks - $desc"
	else
		failures=$((failures + 1))
		echo "not ok $checks - $desc"
		echo "#   exit status: $rc"
		sed 's/^/#   stdout: /' "$T/out"
		sed 's/^/#   stderr: /' "$T/err"
	fi
}

# run ARGS...: lamina rc run --parent $P ARGS..., keeping stdout, stderr
# and the exit status.
run() {
	"$LAMINA" rc run --parent "$P" "$@" >"$T/out" 2>"$T/err"
	rc=$?
}

status_is() { [ "$rc" -eq "$1" ]; }
err_matches() { [[ $(cat "$T/err") =~ $1 ]]; }
nothing_left() { ! ls -d /sys/fs/cgroup/*/"$P" /sys/fs/cgroup/"$P" \
	>/dev/null 2>&1; }

# json_is FILE EXPR VALUE: the JSON object in FILE's last line has
# EXPR == VALUE (EXPR in Python over the object "u").
json_is() {
	python3 - "$1" "$2" "$3" <<'PY'
import json, sys
u = json.loads(open(sys.argv[1]).read().splitlines()[-1])
sys.exit(0 if repr(eval(sys.argv[2], {"u": u})) == sys.argv[3] else 1)
PY
}

run --memory-max 64M --pids-max 20 --cpu-max 50000/100000 \
	--cpu-weight 200 -- sh -c 'echo hello; exit 3'
check "run passes on the command's exit status" status_is 3
check "the command's output comes first" \
	[ "$(head -n 1 "$T/out")" = hello ]
check "the last line is the usage as JSON" \
	json_is "$T/out" 'u["exit_status"]' 3
check "the usage names the group" \
	json_is "$T/out" 'u["group"].startswith("'"$P"'/run-")' True
check "the usage counts cpu time" \
	json_is "$T/out" '"cpu_usage_usec" in u' True
check "nothing is left behind" nothing_left

run --usage-file "$T/usage.json" -- sh -c 'printf no-newline'
check "with --usage-file, stdout holds only the command's output" \
	[ "$(cat "$T/out")" = no-newline ]
check "with --usage-file, the file holds the usage" \
	json_is "$T/usage.json" 'u["exit_status"]' 0

run -- sh -c 'kill -TERM $$'
check "a command ended by a signal exits with 128 + N" status_is 143
check "the usage names the signal" json_is "$T/out" 'u["signal"]' 15

start=$(date +%s)
run -- sh -c 'sleep 60 & echo started'
end=$(date +%s)
quick_success() { [ "$rc" -eq 0 ] && [ $((end - start)) -lt 30 ]; }
check "what the command leaves running is killed with the group" \
	quick_success
check "a group with leftovers is removed too" nothing_left

run -- lamina-no-such-program
check "a missing command exits 127" status_is 127
check "a missing command is named" err_matches 'lamina-no-such-program'
run --cpu-weight 0 -- true
check "a refused limit exits 125 before the command runs" status_is 125
check "a refused limit says why" err_matches 'cpu.weight: 0 is not within'
run --memory-max lots -- true
check "a malformed limit exits 125" status_is 125
run
check "no command exits 125" status_is 125
check "no command is a usage error" err_matches 'no command to run'
check "failed runs leave nothing behind" nothing_left

"$LAMINA" rc caps --parent "$P" >"$T/out" 2>"$T/err"
rc=$?
check "caps succeeds" status_is 0
check "caps lists memory.max" grep -qE '^memory\.max +(yes|no) ' "$T/out"
check "caps lists every feature" [ "$(grep -c '' "$T/out")" -eq 15 ]
"$LAMINA" rc caps --parent "$P" --json >"$T/out" 2>"$T/err"
rc=$?
check "caps --json is JSON with 14 caps" \
	json_is "$T/out" 'len(u["caps"])' 14
check "caps leaves nothing behind" nothing_left

echo "$checks checks, $failures failed"
[ "$failures" -eq 0 ]

#!/bin/bash
# SPDX-License-Identifier: MIT
#
# End-to-end test of "lamina layer export|import" and "lamina oci
# export|import": round trips keep the ids, bad input fails with a message
# and leaves the store as it was, and nothing is drawn when stderr is not a
# terminal. Usage: test-oci-cli.sh PATH-TO-LAMINA. Exits 77 when lamina was
# built without OCI support.

set -u
LAMINA=$(realpath "$1") || exit 2
T=$(mktemp -d) || exit 1
trap 'rm -rf "$T"' EXIT
export LC_ALL=C
failures=0
n=0

ok() {
	n=$((n + 1))
	if eval "$2"; then
		echo "ok $n - $1"
	else
		echo "not ok $n - $1"
		failures=$((failures + 1))
	fi
}

A="$LAMINA --store $T/a"
B="$LAMINA --store $T/b"
$A init >/dev/null && $B init >/dev/null || exit 1
mkdir -p "$T/src/etc" && echo hello > "$T/src/etc/motd"
base=$($A import-dir "$T/src" --ref base) || exit 1
mkdir -p "$T/diff/etc" && echo changed > "$T/diff/etc/motd"
top=$($A import-dir "$T/diff" --parent base --ref top) || exit 1

$A layer export base --compress zstd > "$T/base.tar.zst" 2> "$T/err"
if grep -q "without OCI support" "$T/err"; then
	echo "1..0 # SKIP no OCI support"
	exit 77
fi
ok "layer export writes a zstd stream" \
	'[ "$(head -c 4 "$T/base.tar.zst" | od -An -tx1 | tr -d " ")" = 28b52ffd ]'
ok "layer export is silent off a terminal" '[ ! -s "$T/err" ]'
got=$($B layer import --ref b < "$T/base.tar.zst")
ok "layer import prints the same id" '[ "$got" = "$base" ]'
$A layer export top > "$T/top.tar"
d="sha256:$(sha256sum < "$T/top.tar" | cut -d' ' -f1)"
got=$($B layer import --parent b --digest "$d" < "$T/top.tar")
ok "layer import --parent --digest keeps the chain id" '[ "$got" = "$top" ]'
before=$(ls "$T/b/layers" | wc -l)
out=$($B layer import --parent b --digest "sha256:$(printf '%064d' 0)" \
	< "$T/top.tar" 2>&1)
ok "a wrong digest fails with a message" \
	'[[ $out == *"digest mismatch"* ]] && [ "$(ls "$T/b/layers" | wc -l)" = "$before" ]'
out=$(printf 'not a tar archive at all, not at all.' | $B layer import 2>&1)
ok "garbage fails with a message" '[[ $out == *"not a tar archive"* ]]'
$A oci export top "$T/layout:v1" > "$T/out" 2>&1
ok "oci export writes a layout" '[ -f "$T/layout/index.json" ] && [ ! -s "$T/out" ]'
got=$($LAMINA --store "$T/c" init >/dev/null && $LAMINA --store "$T/c" oci import "$T/layout:v1" --ref img)
ok "oci import prints the same id" '[ "$got" = "$top" ]'
ok "oci import --ref sets the ref" \
	'[ "$($LAMINA --store "$T/c" ref get img)" = "$top" ]'
out=$($LAMINA --store "$T/c" oci import "$T/layout:nope" 2>&1)
ok "a missing tag fails with a message" '[[ $out == *"no image tagged nope"* ]]'

echo "1..$n"
[ "$failures" -eq 0 ]

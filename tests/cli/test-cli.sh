#!/bin/bash
# SPDX-License-Identifier: MIT
#
# End-to-end test of the lamina command-line tool: the output and exit
# status of each subcommand and, for each failure, the message and a store
# left exactly as it was.
#
# Usage: test-cli.sh PATH-TO-LAMINA
#
# Prints one line per check ("ok N - ..." or "not ok N - ..." followed by
# what the tool printed) and exits 1 if any check failed.

set -u

if [ $# -ne 1 ]; then
	echo "usage: $0 PATH-TO-LAMINA" >&2
	exit 2
fi
LAMINA=$(realpath "$1") || exit 2

T=$(mktemp -d) || exit 1
trap 'rm -rf "$T"' EXIT
export LC_ALL=C
unset LAMINA_STORE
S=$T/store
IS_ROOT=0
[ "$(id -u)" -eq 0 ] && IS_ROOT=1

checks=0
failures=0

pass() {
	checks=$((checks + 1))
	echo "ok $checks - $1"
}

# fail DESC: report a failed check with what the last run printed.
fail() {
	checks=$((checks + 1))
	failures=$((failures + 1))
	echo "not ok $checks - $1"
	echo "#   exit status: $rc"
	sed 's/^/#   stdout: /' "$T/out"
	sed 's/^/#   stderr: /' "$T/err"
}

skip() {
	checks=$((checks + 1))
	echo "ok $checks - $1 # SKIP $2"
}

# check DESC COMMAND...: pass when COMMAND succeeds.
check() {
	local desc=$1
	shift
	if "$@"; then pass "$desc"; else fail "$desc"; fi
}

# lam ARGS...: run lamina on the test store, keeping its stdout in $out
# (and $T/out), its stderr in $err (and $T/err) and its exit status in $rc.
lam() {
	"$LAMINA" --store "$S" "$@" >"$T/out" 2>"$T/err"
	rc=$?
	out=$(cat "$T/out")
	err=$(cat "$T/err")
}

# lam_bare ARGS...: the same, without --store.
lam_bare() {
	"$LAMINA" "$@" >"$T/out" 2>"$T/err"
	rc=$?
	out=$(cat "$T/out")
	err=$(cat "$T/err")
}

# Everything a user can see of the store, to prove a failure changed nothing.
snapshot() {
	"$LAMINA" --store "$S" layers
	"$LAMINA" --store "$S" ref ls
	"$LAMINA" --store "$S" stats
}

status_is() { [ "$rc" -eq "$1" ]; }
out_is() { [ "$out" = "$1" ]; }
out_matches() { [[ $out =~ $1 ]]; }
out_has_line() { grep -qxF -- "$1" "$T/out"; }
out_line_matches() { grep -qxE -- "$1" "$T/out"; }
err_matches() { [[ $err =~ $1 ]]; }
err_empty() { [ -z "$err" ]; }
succeeded() { status_is 0 && err_empty; }
line_count() { [ "$(grep -c '' "$T/out")" -eq "$1" ]; }

# An error is one message that starts with "lamina: "; a usage error adds
# a pointer to the help.
failed_with() {
	status_is "$1" && [[ $err == "lamina: "* ]] && [ -z "$out" ] ||
		return 1
	if [ "$1" -eq 2 ]; then
		[ "$(tail -n 1 "$T/err")" = "Try 'lamina --help'." ]
	else
		[ "$(grep -c '' "$T/err")" -eq 1 ]
	fi
}

# expect_ok DESC ARGS...: lamina ARGS succeeds quietly on stderr.
expect_ok() {
	local desc=$1
	shift
	lam "$@"
	check "$desc" succeeded
}

# expect_fail DESC STATUS ARGS...: lamina ARGS fails with STATUS and an
# error message, and the store looks exactly as it did before.
expect_fail() {
	local desc=$1 status=$2 before after
	shift 2
	before=$(snapshot 2>&1)
	lam "$@"
	check "$desc" failed_with "$status"
	after=$(snapshot 2>&1)
	check "$desc: store unchanged" [ "$before" = "$after" ]
}

# A JSON validator, if the machine has one.
json_valid() {
	if command -v jq >/dev/null; then
		jq -e . "$T/out" >/dev/null
	else
		python3 -m json.tool "$T/out" >/dev/null
	fi
}

# jq_is FILTER VALUE: the filter applied to the last output gives VALUE.
jq_is() { [ "$(jq -r "$1" "$T/out")" = "$2" ]; }
HAVE_JQ=0
command -v jq >/dev/null && HAVE_JQ=1

# A tree listing with the metadata a checkout must keep: modes, sizes, link
# counts and modification times (whole seconds) of files, symlink targets,
# and owners when $2 is "owners".
listing() {
	local owner=''
	[ "${2-}" = owners ] && owner=' %U:%G'
	(cd "$1" && find . -mindepth 1 \
		\( -type f -printf "%P f %m %s %n$owner %T@\n" \) -o \
		\( -type l -printf "%P l %l$owner\n" \) -o \
		-printf "%P %y %m$owner\n") |
		sed 's/\(\.[0-9]*\)$//' | sort
}

# --- Sources: a base tree, a diff on top of it, an unrelated tree. ---

mkdir -p "$T/src/sub/deeper" "$T/diff/sub" "$T/other"
if [ -d /usr/share/doc/bash ]; then
	cp -a /usr/share/doc/bash "$T/src/doc"
fi
echo "hello" >"$T/src/hello.txt"
echo "hello" >"$T/src/same-content.txt"
printf 'unique content for the corruption test\n' >"$T/src/unique.txt"
echo "to be hidden" >"$T/src/sub/hidden.txt"
echo "to be changed" >"$T/src/sub/changed.txt"
echo "deep" >"$T/src/sub/deeper/file with spaces"
: >"$T/src/empty"
ln "$T/src/hello.txt" "$T/src/hardlink.txt"
ln -s hello.txt "$T/src/symlink"
chmod 0750 "$T/src/sub/deeper"
chmod 0600 "$T/src/unique.txt"
touch -d '2001-02-03 04:05:06' "$T/src/hello.txt"
if [ $IS_ROOT -eq 1 ]; then
	chown 1234:5678 "$T/src/empty"
fi

echo "changed" >"$T/diff/sub/changed.txt"
echo "new" >"$T/diff/new.txt"
touch -r "$T/src/sub" "$T/diff/sub"
HAVE_WHITEOUT=0
if [ $IS_ROOT -eq 1 ] && mknod "$T/diff/sub/hidden.txt" c 0 0 2>/dev/null
then
	HAVE_WHITEOUT=1
fi

echo "other" >"$T/other/other.txt"

# What checking out the diff over the base must give.
cp -a "$T/src" "$T/expected"
cp -a "$T/diff/sub/changed.txt" "$T/expected/sub/changed.txt"
cp -a "$T/diff/new.txt" "$T/expected/new.txt"
[ $HAVE_WHITEOUT -eq 1 ] && rm "$T/expected/sub/hidden.txt"

HEX32='^[0-9a-f]{32}$'

# --- Help, version and usage errors. ---

lam_bare --version
check "--version prints the version" out_matches '^lamina [0-9]+\.[0-9]+\.[0-9]+'
lam_bare --help
check "--help succeeds" succeeded
check "--help shows the usage" out_matches '^Usage: lamina \[--store DIR\] COMMAND'
for cmd in init import-dir layers show ancestors children merge-base \
	checkout rm "ref set" "ref get" "ref ls" "ref rm" graph check gc stats
do
	check "--help lists '$cmd'" grep -qE "^  $cmd( |$)" "$T/out"
done
lam_bare help
check "help is --help" out_matches '^Usage: lamina \[--store DIR\]'
lam_bare help ref set
check "help ref set shows its usage" \
	out_matches '^Usage: lamina ref set NAME LAYER'
lam_bare ref --help
check "ref --help lists the ref subcommands" out_line_matches '  ref ls +list.*'

lam_bare layers --help
check "layers --help shows its usage" out_matches '^Usage: lamina layers'
lam_bare
check "no command is a usage error" failed_with 2
lam_bare frobnicate
check "an unknown command is a usage error" failed_with 2
lam_bare --frobnicate layers
check "an unknown global option is a usage error" failed_with 2
lam_bare layers
check "no store given is a usage error" failed_with 2
lam_bare help frobnicate
check "help on an unknown command is a usage error" failed_with 2

lam_bare --store "$T/missing" layers
check "a missing store is an error" failed_with 1
check "a missing store is not created" [ ! -e "$T/missing" ]

# --- An empty store. ---

expect_ok "init creates the store" init
check "init prints nothing" out_is ""
check "init made a folder" [ -d "$S" ]
expect_ok "init on an existing store succeeds" init
expect_ok "layers on an empty store" layers
check "an empty store lists no layers" out_is ""
lam layers --json
check "layers --json on an empty store is []" out_is "[]"
expect_ok "ref ls on an empty store" ref ls
check "an empty store lists no refs" out_is ""
expect_ok "stats on an empty store" stats
check "an empty store has 0 layers" out_has_line "layers: 0"
check "an empty store has a ratio of 1.00" out_has_line "dedup_ratio: 1.00"
expect_ok "check on an empty store" check
check "check on an empty store prints nothing" out_is ""

LAMINA_STORE=$S lam_bare layers
check "LAMINA_STORE names the store" succeeded
lam_bare layers --store "$S"
check "--store may follow the command" succeeded

# --- Importing. ---

expect_fail "import-dir with a bad ref name fails" 1 \
	import-dir "$T/src" --ref 'a/../b'
expect_fail "import-dir of a missing folder fails" 1 import-dir "$T/nowhere"
expect_fail "import-dir on a missing parent fails" 1 \
	import-dir "$T/diff" --parent nosuchref
expect_fail "import-dir without SRC is a usage error" 2 import-dir
expect_fail "import-dir --ref without a value is a usage error" 2 \
	import-dir "$T/src" --ref
expect_fail "an unknown option is a usage error" 2 layers --frobnicate
expect_fail "an extra argument is a usage error" 2 layers extra
expect_fail "a value given to a flag is a usage error" 2 layers --json=yes

expect_ok "import-dir of a base tree" import-dir "$T/src" --ref base
check "import-dir prints the layer id" out_matches "$HEX32"
BASE=$out
expect_ok "import-dir of the same tree again" import-dir "$T/src"
check "the same tree gives the same layer" out_is "$BASE"
expect_ok "import-dir of a diff" import-dir --parent base "$T/diff" \
	--ref top
check "import-dir of a diff prints its id" out_matches "$HEX32"
TOP=$out
check "the diff is a new layer" [ "$TOP" != "$BASE" ]
expect_ok "import-dir of an unrelated tree" import-dir -- "$T/other"
OTHER=$out

# --- Listing and describing layers. ---

expect_ok "layers" layers
check "layers lists three layers" line_count 3
check "layers shows the base" out_line_matches "$BASE - 1 [0-9]+ base"
check "layers shows the diff on the base" \
	out_line_matches "$TOP $BASE 2 [0-9]+ top"
check "layers shows a layer without refs" \
	out_line_matches "$OTHER - 1 [0-9]+ -"
expect_ok "layers --json" layers --json
check "layers --json is valid JSON" json_valid
if [ $HAVE_JQ -eq 1 ]; then
	check "layers --json has three layers" jq_is 'length' 3
	check "layers --json gives the parent" \
		jq_is ".[] | select(.id == \"$TOP\") | .parent" "$BASE"
	check "layers --json gives a base a null parent" \
		jq_is ".[] | select(.id == \"$BASE\") | .parent == null" true
	check "layers --json gives the refs" \
		jq_is ".[] | select(.id == \"$TOP\") | .refs | join(\",\")" top
	check "layers --json has every attribute" jq_is \
		'.[0] | keys | join(",")' \
		created,depth,diff,entries,id,parent,refs,size,uuid
fi

expect_ok "show a layer by ref" show top
check "show gives the id" out_has_line "id: $TOP"
check "show gives the parent" out_has_line "parent: $BASE"
check "show gives the depth" out_has_line "depth: 2"
check "show gives the refs" out_has_line "refs: top"
check "show gives a diff digest" out_line_matches 'diff: [0-9a-f]{32}'
check "show gives a uuid" \
	out_line_matches 'uuid: [0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}'
check "show gives the time in ISO 8601" \
	out_line_matches 'created: [0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z'
check "show gives the size" out_line_matches 'size: [0-9]+'
check "show gives the entries" out_line_matches 'entries: [0-9]+'
expect_ok "show a layer by digest prefix" show "${BASE:0:8}"
check "a digest prefix names the layer" out_has_line "id: $BASE"
check "a base has no parent" out_has_line "parent: -"
expect_ok "show --json" show --json base
check "show --json is valid JSON" json_valid
if [ $HAVE_JQ -eq 1 ]; then
	check "show --json gives the id" jq_is .id "$BASE"
	check "show --json gives the refs" jq_is '.refs | join(",")' base
fi
expect_fail "show on an unknown layer fails" 1 show nosuchlayer
expect_fail "show on an unknown digest fails" 1 show 0000000000
expect_fail "show without LAYER is a usage error" 2 show

expect_ok "ancestors" ancestors top
check "ancestors runs from the layer down to the base" \
	out_is "$TOP"$'\n'"$BASE"
expect_ok "children" children base
check "children lists the diff" out_is "$TOP"
expect_ok "children of a leaf" children top
check "a leaf has no children" out_is ""
expect_ok "merge-base" merge-base top base
check "merge-base gives the base" out_is "$BASE"
expect_fail "merge-base of unrelated layers fails" 1 merge-base top "$OTHER"
check "merge-base says there is no common layer" \
	[ "$err" = "lamina: no common layer" ]

# --- Refs. ---

expect_ok "ref ls" ref ls
check "ref ls lists NAME ID by name" out_is "base $BASE"$'\n'"top $TOP"
expect_ok "ref get" ref get top
check "ref get prints the id" out_is "$TOP"
expect_ok "ref set" ref set alias top
check "ref set prints nothing" out_is ""
lam ref get alias
check "ref set points the ref at the layer" out_is "$TOP"
expect_ok "ref set --expect with the right id" \
	ref set alias base --expect "$TOP"
lam ref get alias
check "ref set --expect moved the ref" out_is "$BASE"
expect_fail "ref set --expect with a wrong id fails" 1 \
	ref set alias top --expect "$OTHER"
expect_fail "ref set --new on an existing ref fails" 1 ref set alias top --new
expect_fail "ref set --expect '' on an existing ref fails" 1 \
	ref set alias top --expect ''
expect_fail "ref set --new --expect is a usage error" 2 \
	ref set alias top --new --expect "$BASE"
expect_ok "ref set --new on a new ref" ref set fresh base --new
expect_ok "ref set --expect '' on a new ref" ref set fresh2 base --expect=
expect_fail "ref set with a bad name fails" 1 ref set 'a/../b' base
expect_fail "ref set to an unknown layer fails" 1 ref set alias nosuchlayer
expect_fail "ref get of an unknown ref fails" 1 ref get nosuchref
expect_fail "ref rm of an unknown ref fails" 1 ref rm nosuchref
expect_fail "ref rm --expect with a wrong id fails" 1 \
	ref rm fresh2 --expect "$TOP"
expect_ok "ref rm --expect with the right id" ref rm fresh2 --expect "$BASE"
expect_ok "ref rm" ref rm fresh
lam ref get fresh
check "ref rm deleted the ref" failed_with 1
expect_fail "ref without a subcommand is a usage error" 2 ref
expect_fail "an unknown ref subcommand is a usage error" 2 ref frobnicate
lam ref ls
check "ref ls after the changes" \
	out_is "alias $BASE"$'\n'"base $BASE"$'\n'"top $TOP"
lam layers
check "layers lists every ref of a layer" \
	out_line_matches "$BASE - 1 [0-9]+ alias,base"

# --- Checking out. ---

expect_ok "checkout --no-chown" checkout top "$T/co" --no-chown
check "checkout prints nothing" out_is ""
check "checkout writes the merged tree" diff -r "$T/expected" "$T/co"
check "checkout keeps modes, sizes, links and times" \
	[ "$(listing "$T/expected")" = "$(listing "$T/co")" ]
if [ $HAVE_WHITEOUT -eq 1 ]; then
	check "a whiteout hides the base's file" [ ! -e "$T/co/sub/hidden.txt" ]
else
	skip "a whiteout hides the base's file" "whiteouts need root"
fi
if [ $IS_ROOT -eq 1 ]; then
	check "checkout --no-chown leaves owners alone" \
		[ "$(stat -c %u:%g "$T/co/empty")" = 0:0 ]
	expect_ok "checkout with owners" checkout top "$T/co-owners"
	check "checkout keeps owners" [ "$(listing "$T/expected" owners)" = \
		"$(listing "$T/co-owners" owners)" ]
else
	skip "checkout keeps owners" "owners need root"
fi
expect_ok "checkout of the base" checkout "$BASE" "$T/co-base" --no-chown
check "the base's checkout is the source tree" diff -r "$T/src" "$T/co-base"
expect_fail "checkout into a folder that is not empty fails" 1 \
	checkout top "$T/co" --no-chown
expect_fail "checkout of an unknown layer fails" 1 \
	checkout nosuchlayer "$T/co-none"
check "a failed checkout creates nothing" [ ! -e "$T/co-none" ]
expect_fail "checkout without DEST is a usage error" 2 checkout top

# --- The store as a whole. ---

expect_ok "graph --dot" graph --dot
check "graph --dot prints a digraph" grep -q '^digraph' "$T/out"
check "graph --dot draws the edge to the parent" grep -q -- '->' "$T/out"
dot_output=$out
expect_ok "graph" graph
check "graph prints DOT by default" out_is "$dot_output"

expect_ok "stats" stats
for key in layers refs entries files objects logical_bytes stored_bytes; do
	check "stats gives $key" out_line_matches "$key: [0-9]+"
done
check "stats counts the layers" out_has_line "layers: 3"
check "stats counts the refs" out_has_line "refs: 3"
check "stats gives the dedup ratio" \
	out_line_matches 'dedup_ratio: [0-9]+\.[0-9]{2}'
expect_ok "stats --json" stats --json
check "stats --json is valid JSON" json_valid
if [ $HAVE_JQ -eq 1 ]; then
	check "stats --json has every field" jq_is 'keys | join(",")' \
		dedup_ratio,entries,files,layers,logical_bytes,objects,refs,stored_bytes
	check "stats --json counts the layers" jq_is .layers 3
fi

expect_ok "check" check
check "check on a sound store prints nothing" out_is ""
expect_ok "check --quick" check --quick

"$LAMINA" --store "$S" layers >/dev/full 2>"$T/err"
rc=$?
out=
err=$(cat "$T/err")
: >"$T/out"
check "a write error fails" failed_with 1
check "a write error says so" err_matches '^lamina: write error'
(
	trap '' PIPE
	"$LAMINA" --help 2>"$T/err" | true
)
check "a reader that goes away gets no error message" [ ! -s "$T/err" ]

# --- Deleting and collecting. ---

expect_fail "rm of a layer with refs and children fails" 1 rm base
expect_fail "rm without LAYER is a usage error" 2 rm
expect_ok "rm of a layer without refs" rm "$OTHER"
lam layers
check "rm deleted the layer" line_count 2
expect_ok "import-dir of a layer no ref reaches" import-dir "$T/other"
expect_ok "gc" gc
check "gc removes the unreachable layer and its content" \
	out_matches '^removed 1 layers, [1-9][0-9]* objects, [1-9][0-9]* bytes$'
lam layers
check "gc kept the layers that refs reach" line_count 2
expect_ok "rm --cascade" rm --cascade base
lam layers
check "rm --cascade deleted the descendants" out_is ""
lam ref ls
check "rm --cascade deleted their refs" out_is ""
expect_ok "gc after rm --cascade" gc
check "gc frees the deleted layers' content" \
	out_matches '^removed 0 layers, [1-9][0-9]* objects, [1-9][0-9]* bytes$'
lam stats
check "the store is empty again" out_has_line "objects: 0"
expect_ok "check after gc" check

# --- A damaged store. ---

S=$T/damaged
expect_ok "init a second store" init
expect_ok "import-dir into it" import-dir "$T/src" --ref base
damaged=
while IFS= read -r -d '' f; do
	if cmp -s "$f" "$T/src/unique.txt"; then
		damaged=$f
		break
	fi
done < <(find "$S" -type f -print0)
if [ -n "$damaged" ]; then
	chmod u+w "$damaged"
	printf 'U' | dd of="$damaged" bs=1 conv=notrunc status=none
	lam check
	check "check on a damaged store fails" status_is 1
	check "check prints the problems" [ -n "$out" ]
	check "check counts the problems" \
		err_matches '^lamina: [1-9][0-9]* problems? found$'
else
	skip "check on a damaged store fails" "no stored copy of a file found"
fi

echo "$checks checks, $failures failed"
[ "$failures" -eq 0 ]

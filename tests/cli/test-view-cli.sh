#!/bin/bash
# SPDX-License-Identifier: MIT
#
# End-to-end test of the lamina tool's view commands (view new, ls, rm, put,
# apply, commit) and of ls, cat, diff and squash: their output and exit
# status and, for each failure, the message and a store left as it was.
#
# Usage: test-view-cli.sh PATH-TO-LAMINA
#
# Prints one line per check ("ok N - ..." or "not ok N - ..." followed by
# what the tool printed) and exits 1 if any check failed. Checks that need
# root (owners, whiteouts, trusted xattrs, a kernel overlayfs mount to
# compare with) are skipped, and say so, without it.

set -u

if [ $# -ne 1 ]; then
	echo "usage: $0 PATH-TO-LAMINA" >&2
	exit 2
fi
LAMINA=$(realpath "$1") || exit 2

T=$(mktemp -d) || exit 1
MNT=
cleanup() {
	[ -n "$MNT" ] && umount "$MNT" 2>/dev/null
	chmod -R u+w "$T" 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT
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

# todo DESC REASON COMMAND...: a check that a known bug makes fail; its
# failure is reported but does not fail the run (TAP's TODO).
todo() {
	local desc=$1 reason=$2
	shift 2
	checks=$((checks + 1))
	if "$@"; then
		echo "ok $checks - $desc # TODO $reason"
	else
		echo "not ok $checks - $desc # TODO $reason"
	fi
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

# lam_in FILE ARGS...: lam with FILE as standard input.
lam_in() {
	local input=$1
	shift
	"$LAMINA" --store "$S" "$@" <"$input" >"$T/out" 2>"$T/err"
	rc=$?
	out=$(cat "$T/out")
	err=$(cat "$T/err")
}

# Everything a user can see of the store, views and their changes included,
# to prove that a failure changed nothing.
snapshot() {
	local id
	"$LAMINA" --store "$S" layers
	"$LAMINA" --store "$S" ref ls
	"$LAMINA" --store "$S" view ls
	for id in $("$LAMINA" --store "$S" view ls | cut -d' ' -f1); do
		echo "view $id"
		"$LAMINA" --store "$S" diff "$id" --metadata
		"$LAMINA" --store "$S" ls -R "$id"
	done
}

status_is() { [ "$rc" -eq "$1" ]; }
out_is() { status_is 0 && [ "$out" = "$1" ]; }
out_matches() { status_is 0 && [[ $out =~ $1 ]]; }
out_has_line() { grep -qxF -- "$1" "$T/out"; }
out_lacks_line() { ! grep -qxF -- "$1" "$T/out"; }
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

# A tree listing with what a view must keep: types, modes, sizes and link
# counts of files, modification times (whole seconds) of everything but
# symlinks, symlink targets, device numbers, user xattrs, and owners when
# $2 is "owners".
listing() {
	local owner=''
	[ "${2-}" = owners ] && owner=' %U:%G'
	(cd "$1" && find . -mindepth 1 \
		\( -type f -printf "%P f %m %s %n$owner %TY%Tm%Td%TH%TM%TS\n" \) -o \
		\( -type l -printf "%P l %l$owner\n" \) -o \
		\( -type d -printf "%P d %m$owner %TY%Tm%Td%TH%TM%TS\n" \) -o \
		-printf "%P %y %m$owner\n") |
		sed 's/\(\.[0-9]*\)$//' | sort
	if command -v getfattr >/dev/null; then
		(cd "$1" && getfattr -R -h -d -m '^user\.' --absolute-names \
			. 2>/dev/null) |
			awk '/^# file: / { f = substr($0, 9); next }
				/./ { print f " " $0 }' | sort
	fi
}

# The checksum of each regular file of a tree, by path.
contents() {
	(cd "$1" && find . -type f -print0 | sort -z | xargs -0 -r md5sum)
}

UUID='^[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}$'
HEX32='^[0-9a-f]{32}$'

# Whether the scratch filesystem takes user xattrs.
HAVE_USER_XATTR=0
if touch "$T/xattr-probe" &&
	setfattr -n user.probe -v 1 "$T/xattr-probe" 2>/dev/null; then
	HAVE_USER_XATTR=1
fi

# --- Sources: a base tree, and a diff to apply on top of it. ---

mkdir -p "$T/base/etc" "$T/base/usr/lib/pkg/sub" "$T/base/gone/deeper" \
	"$T/base/keep" "$T/base/replaced-dir"
echo "base-host" >"$T/base/etc/hostname"
echo "root:x:0:0" >"$T/base/etc/passwd"
ln "$T/base/etc/passwd" "$T/base/etc/passwd.lnk"
echo "one" >"$T/base/usr/lib/pkg/one"
echo "two" >"$T/base/usr/lib/pkg/sub/two"
echo "in gone" >"$T/base/gone/deeper/file"
echo "kept" >"$T/base/keep/file"
echo "old" >"$T/base/replaced-dir/old"
echo "a file" >"$T/base/becomes-dir"
ln -s /etc/hostname "$T/base/hostlink"
ln -s keep "$T/base/linkdir"
mkfifo "$T/base/fifo"
chmod 0750 "$T/base/usr/lib/pkg"
mkdir "$T/base/ro"
echo "read-only" >"$T/base/ro/old"
chmod 0555 "$T/base/ro"
touch -d '2001-02-03 04:05:06' "$T/base/etc/hostname"

mkdir -p "$T/diff/etc" "$T/diff/new/dir" "$T/diff/becomes-dir" \
	"$T/diff/usr/lib/pkg"
echo "diff-host" >"$T/diff/etc/hostname"
echo "fresh" >"$T/diff/new/dir/file"
echo "linked" >"$T/diff/new/a"
ln "$T/diff/new/a" "$T/diff/new/b"
ln -s ../etc/hostname "$T/diff/new/link"
mkfifo "$T/diff/new/pipe"
echo "inside" >"$T/diff/becomes-dir/inside"
echo "replaces a dir" >"$T/diff/replaced-dir"
echo "three" >"$T/diff/usr/lib/pkg/three"
mkdir "$T/diff/linkdir"
echo "not through the link" >"$T/diff/linkdir/file"
mkdir "$T/diff/ro"
echo "added" >"$T/diff/ro/new"
chmod 0555 "$T/diff/ro"
chmod 0755 "$T/diff/new/a"
chmod 0711 "$T/diff/usr/lib/pkg"
touch -d '2002-03-04 05:06:07' "$T/diff/new/dir/file" "$T/diff/usr/lib/pkg"
touch -h -d '2003-04-05 06:07:08' "$T/diff/new/link"
if [ $HAVE_USER_XATTR -eq 1 ]; then
	setfattr -n user.color -v blue "$T/diff/new/a"
	setfattr -n user.dir -v yes "$T/diff/new/dir"
fi
HAVE_WHITEOUT=0
if [ $IS_ROOT -eq 1 ] && mknod "$T/diff/gone" c 0 0 2>/dev/null &&
	mknod "$T/diff/etc/passwd" c 0 0 2>/dev/null &&
	mknod "$T/diff/new/null" c 1 3 2>/dev/null; then
	HAVE_WHITEOUT=1
	chown 1234:5678 "$T/diff/new/dir/file"
	chown -h 42:43 "$T/diff/new/link"
	touch -d '2002-03-04 05:06:07' "$T/diff/new/dir/file"
fi
HAVE_OPAQUE=0
mkdir -p "$T/diff/usr/lib/pkg/sub"
echo "only this" >"$T/diff/usr/lib/pkg/sub/only"
if [ $IS_ROOT -eq 1 ] &&
	setfattr -n trusted.overlay.opaque -v y "$T/diff/usr/lib/pkg/sub" \
		2>/dev/null; then
	HAVE_OPAQUE=1
elif [ $HAVE_USER_XATTR -eq 1 ]; then
	setfattr -n user.overlay.opaque -v y "$T/diff/usr/lib/pkg/sub"
	HAVE_OPAQUE=1
fi
touch -d '2002-03-04 05:06:07' "$T/diff/usr/lib/pkg/sub" "$T/diff/usr/lib/pkg"

# What applying the diff to the base must give, built by hand.
cp -a "$T/base" "$T/expected"
chmod u+w "$T/expected/ro"
rm -rf "$T/expected/becomes-dir" "$T/expected/replaced-dir"
[ $HAVE_WHITEOUT -eq 1 ] && rm -rf "$T/expected/gone" "$T/expected/etc/passwd"
[ $HAVE_OPAQUE -eq 1 ] && rm -rf "$T/expected/usr/lib/pkg/sub"
(cd "$T/diff" && tar --xattrs --xattrs-include='user.*' -cf - \
	--exclude=./gone --exclude=./etc/passwd .) |
	(cd "$T/expected" && tar --xattrs --xattrs-include='user.*' -xpf -)
[ $HAVE_OPAQUE -eq 1 ] &&
	setfattr -x user.overlay.opaque "$T/expected/usr/lib/pkg/sub" 2>/dev/null

# --- Help and usage errors. ---

"$LAMINA" --help >"$T/out" 2>"$T/err"
rc=$?
for cmd in "view new" "view ls" "view rm" "view put" "view apply" \
	"view commit" ls cat diff squash; do
	check "--help lists '$cmd'" grep -qE "^  $cmd( |$)" "$T/out"
done
"$LAMINA" help view apply >"$T/out" 2>"$T/err"
rc=$?
check "help view apply shows its usage" \
	grep -qx 'Usage: lamina view apply ID DIR' "$T/out"
check "help view apply explains whiteouts" grep -q whiteout "$T/out"
"$LAMINA" view --help >"$T/out" 2>"$T/err"
rc=$?
check "view --help lists the view subcommands" \
	grep -qE '^  view commit ID' "$T/out"

expect_ok "init" init
expect_fail "view without a subcommand is a usage error" 2 view
expect_fail "an unknown view subcommand is a usage error" 2 view frobnicate
expect_fail "view new with two layers is a usage error" 2 view new a b
expect_fail "view put without PATH is a usage error" 2 view put abcd
expect_fail "view apply without DIR is a usage error" 2 view apply abcd
expect_fail "view commit without ID is a usage error" 2 view commit
expect_fail "view rm without ID is a usage error" 2 view rm
expect_fail "ls without a tree is a usage error" 2 ls
expect_fail "cat without PATH is a usage error" 2 cat base
expect_fail "diff without a layer is a usage error" 2 diff
expect_fail "diff with three layers is a usage error" 2 diff a b c
expect_fail "squash without TOP is a usage error" 2 squash

# --- Views: new, ls. ---

expect_ok "import-dir of the base" import-dir "$T/base" --ref base
BASE=$out
expect_ok "view ls on a store without views" view ls
check "view ls prints nothing without views" out_is ""
expect_ok "view new over a layer" view new base
check "view new prints a UUID" out_matches "$UUID"
V=$out
expect_ok "view new without a layer" view new
check "view new without a layer prints a UUID" out_matches "$UUID"
E=$out
check "each view gets its own id" [ "$V" != "$E" ]
expect_ok "view ls" view ls
check "view ls lists two views" line_count 2
check "view ls gives the base of a view" out_has_line "$V $BASE"
check "view ls gives '-' for a view over nothing" out_has_line "$E -"
check "view ls lists views in id order" \
	[ "$out" = "$(sort <<<"$out")" ]
expect_fail "view new over an unknown layer fails" 1 view new nosuchlayer
check "view new over an unknown layer names it" err_matches nosuchlayer
expect_fail "view new over a ref named '-' that does not exist fails" 1 \
	view new -

# --- ls and cat of a layer and of a view. ---

expect_ok "ls of a layer" ls base
check "ls lists the root's entries" line_count 10
check "ls shows a file with mode, owner and size" \
	out_line_matches '-rw-r--r-- [0-9]+:[0-9]+ 7 becomes-dir'
check "ls shows a folder" out_line_matches 'drwxr-xr-x [0-9]+:[0-9]+ [0-9]+ etc'
check "ls shows a symlink's target" \
	out_line_matches 'lrwxrwxrwx [0-9]+:[0-9]+ 13 hostlink -> /etc/hostname'
check "ls shows a fifo" out_line_matches 'prw-r--r-- [0-9]+:[0-9]+ 0 fifo'
check "ls lists names in byte order" \
	[ "$(cut -d' ' -f4 "$T/out")" = "$(cut -d' ' -f4 "$T/out" | sort)" ]
if [ $IS_ROOT -eq 1 ]; then
	check "ls shows owners as UID:GID" out_line_matches '[-a-z]{10} 0:0 .* etc'
else
	skip "ls shows owners as UID:GID" "root owns nothing here"
fi
expect_ok "ls of a folder" ls base usr/lib/pkg
check "ls of a folder lists its entries by name" \
	out_line_matches 'drwxr-xr-x [0-9:]+ [0-9]+ sub'
check "ls of a folder lists each entry once" line_count 2
expect_ok "ls with a leading slash" ls base /usr/lib/pkg
check "a leading slash changes nothing" line_count 2
expect_ok "ls of a file" ls base etc/hostname
check "ls of a file prints its one line" \
	out_is "-rw-r--r-- $(stat -c %u:%g "$T/base/etc/hostname") 10 etc/hostname"
expect_ok "ls of a symlink" ls base hostlink
check "ls shows a symlink, not its target" \
	out_matches '^lrwxrwxrwx .* hostlink -> /etc/hostname$'
expect_ok "ls -R" ls -R base
check "ls -R lists every entry by path" \
	out_line_matches '-rw-r--r-- [0-9:]+ 4 usr/lib/pkg/sub/two'
check "ls -R puts a folder right before its contents" \
	[ "$(grep -n ' usr/lib/pkg$' "$T/out" | cut -d: -f1)" -lt \
		"$(grep -n ' usr/lib/pkg/one$' "$T/out" | cut -d: -f1)" ]
check "ls -R lists the whole tree" \
	line_count "$(cd "$T/base" && find . -mindepth 1 | wc -l)"
expect_ok "ls --recursive of a folder" ls base usr --recursive
check "ls -R of a folder names paths below it" \
	out_line_matches 'drwxr-x--- [0-9:]+ [0-9]+ lib/pkg'
expect_ok "ls of a view by id" ls "$V"
check "a fresh view shows its base" line_count 10
expect_ok "ls of a view by a prefix of its id" ls "${V:0:9}"
check "a prefix of the id names the view" line_count 10
expect_ok "ls of an empty view" ls "$E"
check "an empty view lists nothing" out_is ""
expect_fail "ls of an unknown tree fails" 1 ls nosuchthing
check "ls of an unknown tree says what it looked for" \
	[ "$err" = "lamina: no layer, ref or view named 'nosuchthing'" ]
expect_fail "ls of a missing path fails" 1 ls base no/such/path
check "ls of a missing path names it" err_matches 'no/such/path'
expect_fail "ls through a file fails" 1 ls base etc/hostname/x

expect_ok "cat of a layer's file" cat base etc/hostname
check "cat prints the file" out_is "base-host"
expect_ok "cat through a symlink" cat base hostlink
check "cat follows a symlink inside the tree" out_is "base-host"
expect_ok "cat of a view's file" cat "$V" usr/lib/pkg/sub/two
check "cat of a view prints the base's file" out_is "two"
expect_fail "cat of a folder fails" 1 cat base etc
expect_fail "cat of a missing file fails" 1 cat base etc/nothing
expect_fail "cat of an unknown tree fails" 1 cat nosuchthing etc/hostname

# --- view put. ---

printf 'new-host\n' >"$T/in-host"
expect_ok "view put replaces a file of the base" \
	view put "$V" etc/hostname <"$T/in-host"
lam_in "$T/in-host" view put "$V" etc/hostname
check "view put prints nothing" out_is ""
lam cat "$V" etc/hostname
check "the view shows the new content" out_is "new-host"
lam cat base etc/hostname
check "the base keeps its content" out_is "base-host"
lam ls "$V" etc/hostname
check "a replaced file keeps its mode" out_matches '^-rw-r--r-- '
printf 'first\nsecond\n' >"$T/in-new"
lam_in "$T/in-new" view put "$V" etc/motd
check "view put creates a file" succeeded
lam cat "$V" etc/motd
check "the created file holds standard input" out_is $'first\nsecond'
lam ls "$V" etc/motd
check "a created file gets mode 0644" out_matches '^-rw-r--r-- .* 13 etc/motd$'
lam_in "$T/in-new" view put "$V" usr/run.sh --mode 755
check "view put --mode" succeeded
lam ls "$V" usr/run.sh
check "view put --mode sets the mode" out_matches '^-rwxr-xr-x '
lam_in "$T/in-new" view put "$V" usr/run.sh --mode 0700
lam ls "$V" usr/run.sh
check "view put --mode changes an existing file's mode" out_matches '^-rwx------ '
head -c 300000 /dev/urandom >"$T/in-big"
lam_in "$T/in-big" view put "$V" big
check "view put of a large file" succeeded
"$LAMINA" --store "$S" cat "$V" big >"$T/big-back"
check "a large file comes back whole" cmp -s "$T/in-big" "$T/big-back"
: >"$T/in-empty"
lam_in "$T/in-empty" view put "$V" etc/passwd.lnk
check "view put of nothing empties a file" succeeded
lam cat "$V" etc/passwd.lnk
check "the emptied file is empty" out_is ""
lam cat "$V" etc/passwd
check "a hard link of the base stays linked when written" out_is ""

before=$(snapshot 2>&1)
lam_in "$T/in-new" view put "$V" no/such/dir/file
check "view put into a missing folder fails" failed_with 1
check "view put into a missing folder creates nothing" \
	[ "$before" = "$(snapshot 2>&1)" ]
lam_in "$T/in-new" view put "$V" etc
check "view put onto a folder fails" failed_with 1
lam_in "$T/in-new" view put "$V" etc/hostname/x
check "view put through a file fails" failed_with 1
lam_in "$T/in-new" view put nosuchview etc/x
check "view put into an unknown view fails" failed_with 1
lam_in "$T/in-new" view put "$V" etc/x --mode rwx
check "view put with a bad mode is a usage error" failed_with 2
check "view put with a bad mode creates nothing" \
	[ "$before" = "$(snapshot 2>&1)" ]
lam_in "$T/in-new" view put "$BASE" etc/x
check "view put into a layer's id fails" failed_with 1

# --- diff of a view. ---

expect_ok "diff of a view" diff "$V"
check "diff of a view lists a modified file" out_has_line "M etc/hostname"
check "diff of a view lists an added file" out_has_line "A etc/motd"
check "diff of a view lists an added file in a new place" \
	out_has_line "A usr/run.sh"
check "diff of a view lists the folders that changed" out_has_line "M etc"
check "diff lines are KIND PATH" out_line_matches '[AMD] [^/].*'
check "diff of a view prints nothing else" \
	[ -z "$(grep -vE '^[AMD] ' "$T/out")" ]
check "diff lists paths in order" [ "$out" = "$(LC_ALL=C sort -k2 <<<"$out")" ]
expect_ok "diff of an empty view" diff "$E"
check "an empty view has no changes" out_is ""

# --- view apply, on a fresh view over the base. ---

VA=$("$LAMINA" --store "$S" view new base)
expect_ok "view apply" view apply "$VA" "$T/diff"
check "view apply prints nothing" out_is ""
lam cat "$VA" etc/hostname
check "view apply replaces a file" out_is "diff-host"
lam cat "$VA" new/dir/file
check "view apply adds files in new folders" out_is "fresh"
lam ls "$VA"
check "view apply replaces a file by a folder" \
	out_line_matches 'd[-rwx]{9} [0-9:]+ [0-9]+ becomes-dir'
check "view apply replaces a folder by a file" \
	out_line_matches '-rw-r--r-- [0-9:]+ 15 replaced-dir'
lam ls "$VA" usr/lib/pkg
check "view apply merges a folder's contents" out_line_matches '.* one'
lam ls "$VA" usr/lib
check "view apply sets a folder's mode" out_line_matches 'drwx--x--x .* pkg'
lam ls "$VA" new/link
check "view apply makes symlinks" out_matches ' new/link -> \.\./etc/hostname$'
lam ls "$VA" new/pipe
check "view apply makes fifos" out_matches '^p'
lam ls "$VA" keep
check "view apply leaves other entries alone" out_is "$(stat -c '-rw-r--r-- %u:%g 5 file' "$T/base/keep/file")"
lam ls "$VA"
check "view apply replaces a symlink by a folder" \
	out_line_matches 'd[-rwx]{9} [0-9:]+ [0-9]+ linkdir'
lam ls "$VA" ro
check "view apply fills a read-only folder" out_line_matches '.* new'
lam ls "$VA"
check "a read-only folder keeps its mode" out_line_matches 'dr-xr-xr-x .* ro'
if [ $HAVE_WHITEOUT -eq 1 ]; then
	lam ls "$VA" gone
	check "a whiteout deletes a folder" failed_with 1
	lam ls "$VA" etc/passwd
	check "a whiteout deletes a file" failed_with 1
	lam cat "$VA" etc/passwd.lnk
	check "a whiteout leaves the file's other link" out_is "root:x:0:0"
	lam ls "$VA" new/null
	check "view apply makes devices" out_matches '^crw-r--r-- 0:0 1,3 '
	lam ls "$VA" new/dir/file
	check "view apply sets owners" out_matches '^-rw-r--r-- 1234:5678 '
	lam ls "$VA" new/link
	check "view apply sets a symlink's owner" out_matches '^l[-rwx]{9} 42:43 '
else
	skip "a whiteout deletes a folder" "whiteouts need root"
	skip "a whiteout deletes a file" "whiteouts need root"
	skip "a whiteout leaves the file's other link" "whiteouts need root"
	skip "view apply makes devices" "devices need root"
	skip "view apply sets owners" "owners need root"
	skip "view apply sets a symlink's owner" "owners need root"
fi
if [ $HAVE_OPAQUE -eq 1 ]; then
	lam ls "$VA" usr/lib/pkg/sub
	check "an opaque folder hides what was below it" \
		out_is "$(stat -c '-rw-r--r-- %u:%g 10 only' \
			"$T/diff/usr/lib/pkg/sub/only")"
else
	skip "an opaque folder hides what was below it" "no xattrs here"
fi

expect_ok "diff of the view after apply" diff "$VA"
check "diff shows the added hard links" out_has_line "A new/b"
if [ $HAVE_WHITEOUT -eq 1 ]; then
	check "diff shows a deleted folder" out_has_line "D gone"
	check "diff shows a deleted file" out_has_line "D etc/passwd"
fi

before=$(snapshot 2>&1)
lam view apply "$VA" "$T/nowhere"
check "view apply of a missing folder fails" failed_with 1
lam view apply nosuchview "$T/diff"
check "view apply to an unknown view fails" failed_with 1
check "a failed view apply changes nothing" [ "$before" = "$(snapshot 2>&1)" ]

# --- view commit, and the committed tree against the expected one. ---

expect_fail "view commit with a bad ref name fails" 1 \
	view commit "$VA" --ref 'a/../b'
check "view commit with a bad ref name says why" err_matches 'ref name'
expect_fail "view commit of an unknown view fails" 1 view commit nosuchview
expect_ok "view commit" view commit "$VA" --ref applied
check "view commit prints the layer id" out_matches "$HEX32"
APPLIED=$out
lam ref get applied
check "view commit --ref points the ref at the layer" out_is "$APPLIED"
lam show applied
check "the committed layer's parent is the view's base" \
	out_has_line "parent: $BASE"
lam view ls
check "the view goes on over the committed layer" out_has_line "$VA $APPLIED"
lam diff "$VA"
check "the view has no changes after commit" out_is ""
lam cat "$VA" new/a
check "the view still shows its files after commit" out_is "linked"

expect_ok "checkout of the committed layer" checkout applied "$T/co"
if [ $IS_ROOT -eq 1 ]; then
	check "the committed tree is the expected one, owners included" \
		[ "$(listing "$T/expected" owners)" = \
			"$(listing "$T/co" owners)" ]
else
	check "the committed tree is the expected one" \
		[ "$(listing "$T/expected")" = "$(listing "$T/co")" ]
fi
check "the committed tree has the expected contents" \
	[ "$(contents "$T/expected")" = "$(contents "$T/co")" ]
check "hard links in DIR stay linked" \
	[ "$(stat -c %i "$T/co/new/a")" = "$(stat -c %i "$T/co/new/b")" ]

# The kernel's overlayfs, with the diff stacked on the base, is the
# reference for what applying a diff means. Link counts are left out: the
# kernel counts the links of a lower file that a whiteout hides, and lamina,
# as documented, does not.
no_links='s/^\(\S* f [0-7]* [0-9]*\) [0-9]*/\1/'
if [ $IS_ROOT -eq 1 ] && [ $HAVE_WHITEOUT -eq 1 ] &&
	grep -qw overlay /proc/filesystems 2>/dev/null &&
	mkdir "$T/mnt" && lam checkout base "$T/co-base" &&
	mount -t overlay overlay \
		-o "lowerdir=$T/diff:$T/co-base" "$T/mnt" 2>/dev/null; then
	MNT=$T/mnt
	check "the committed tree is what overlayfs shows" \
		[ "$(contents "$T/mnt")" = "$(contents "$T/co")" ]
	check "types, modes, owners and times are what overlayfs shows" \
		[ "$(listing "$T/mnt" owners | sed "$no_links")" = \
			"$(listing "$T/co" owners | sed "$no_links")" ]
	umount "$T/mnt"
	MNT=
else
	skip "the committed tree is what overlayfs shows" \
		"needs root and overlayfs"
	skip "types, modes, owners and times are what overlayfs shows" \
		"needs root and overlayfs"
fi

# --- diff of layers. ---

expect_ok "diff of two layers" diff base applied
check "diff of two layers lists a modified file" out_has_line "M etc/hostname"
check "diff of two layers lists an added file" out_has_line "A new/a"
check "diff of two layers lists a file replaced by a folder" \
	out_has_line "M becomes-dir"
check "diff of two layers lists what a folder replaced" \
	out_has_line "A becomes-dir/inside"
check "diff of two layers lists the folder a file replaced" \
	out_has_line "D replaced-dir/old"
diff_two=$out
expect_ok "diff of a layer alone" diff applied
check "a layer alone is compared with its parent" out_is "$diff_two"
expect_ok "diff of the base alone" diff base
check "a base layer is compared with nothing" out_has_line "A etc/hostname"
check "diff names the root '.'" out_has_line "A ."
check "a base layer's diff adds every path" \
	line_count "$(cd "$T/base" && find . | wc -l)"
expect_ok "diff of a layer with itself" diff base base
check "a layer does not differ from itself" out_is ""
expect_ok "diff the other way" diff applied base
check "diff the other way deletes what was added" out_has_line "D new"
check "a deleted folder is one change" out_lacks_line "D new/a"
todo "a deleted folder is one change, whatever it holds" \
	"lam_layer_diff reports what follows a deleted subfolder" \
	out_lacks_line "D new/link"
check "diff the other way adds what was deleted" \
	out_has_line "A replaced-dir/old"

# A change of metadata only.
V2=$("$LAMINA" --store "$S" view new applied)
mkdir -p "$T/meta/keep"
echo kept >"$T/meta/keep/file"
touch -d '2005-06-07 08:09:10' "$T/meta/keep/file"
chmod 0600 "$T/meta/keep/file"
touch -r "$T/co/keep" "$T/meta/keep"
chmod --reference="$T/co/keep" "$T/meta/keep"
expect_ok "view apply of a metadata change" view apply "$V2" "$T/meta"
expect_ok "diff of a metadata change" diff "$V2"
check "a metadata change prints as M" out_has_line "M keep/file"
expect_ok "diff --metadata of a metadata change" diff "$V2" --metadata
todo "diff --metadata prints a metadata change as m" \
	"lam_view_diff reports a rewritten file with the same bytes as M" \
	out_has_line "m keep/file"
expect_ok "commit of a metadata change" view commit "$V2" --ref meta
lam diff applied meta --metadata
check "diff --metadata of layers prints m" out_is "m keep/file"
lam diff applied meta
check "diff of layers prints a metadata change as M" out_is "M keep/file"

expect_fail "diff of a view with a layer fails" 1 diff base "$V"
check "diff of a view with a layer says how to compare a view" \
	err_matches "diff VIEW"
expect_fail "diff of an unknown layer fails" 1 diff base nosuchlayer

# --- squash. ---

expect_fail "squash with a bad ref name fails" 1 squash meta --ref 'a/../b'
expect_fail "squash of an unknown layer fails" 1 squash nosuchlayer
expect_fail "squash onto an unknown layer fails" 1 squash meta --onto nosuch
expect_ok "squash of a chain into a base layer" squash meta --ref flat
check "squash prints the layer id" out_matches "$HEX32"
FLAT=$out
lam show flat
check "a whole chain squashes into a base layer" out_has_line "parent: -"
check "the squashed layer is new" [ "$FLAT" != "$("$LAMINA" --store "$S" ref get meta)" ]
lam diff meta flat
check "a squashed layer holds the same tree as its top" out_is ""
"$LAMINA" --store "$S" ls -R meta >"$T/ls-meta"
"$LAMINA" --store "$S" ls -R flat >"$T/ls-flat"
check "ls shows the same tree for the squashed layer" \
	cmp -s "$T/ls-meta" "$T/ls-flat"
# A chain of two layers over the base, to squash onto it.
V4=$("$LAMINA" --store "$S" view new base)
"$LAMINA" --store "$S" view put "$V4" etc/one <"$T/in-new"
"$LAMINA" --store "$S" view commit "$V4" --ref chain1 >/dev/null
"$LAMINA" --store "$S" view put "$V4" etc/two <"$T/in-new"
"$LAMINA" --store "$S" view put "$V4" etc/hostname <"$T/in-new"
"$LAMINA" --store "$S" view commit "$V4" --ref chain2 >/dev/null
expect_ok "squash onto an ancestor" squash chain2 --onto base --ref onto
check "squash --onto prints the layer id" out_matches "$HEX32"
ONTO=$out
lam show onto
check "squash --onto makes a child of BASE" out_has_line "parent: $BASE"
check "squash --onto points the ref at the layer" out_has_line "id: $ONTO"
lam diff chain2 onto
check "squash --onto keeps the tree" out_is ""
lam diff onto
check "squash --onto holds the chain's changes over BASE" \
	out_is $'M etc\nM etc/hostname\nA etc/one\nA etc/two'
lam squash meta --onto base
todo "squash --onto of a chain that replaced a folder by a file" \
	"lam_layer_squash writes whiteouts below the new file" succeeded
expect_ok "import-dir of an unrelated layer" import-dir "$T/meta"
OTHER=$out
expect_fail "squash onto a layer that is not an ancestor fails" 1 \
	squash meta --onto "$OTHER"

# --- A view's changes survive; view rm. ---

V3=$("$LAMINA" --store "$S" view new flat)
lam_in "$T/in-new" view put "$V3" persisted
lam cat "${V3:0:9}" persisted
check "a view's changes persist between runs" out_is $'first\nsecond'
expect_ok "view rm" view rm "$V3"
check "view rm prints nothing" out_is ""
lam view ls
check "view rm removes the view" out_lacks_line "$V3 $FLAT"
expect_fail "view rm of a removed view fails" 1 view rm "$V3"
expect_fail "ls of a removed view fails" 1 ls "$V3"
expect_ok "view rm by prefix" view rm "${E:0:9}"
lam view ls
check "view rm by prefix removes the view" out_lacks_line "$E -"

# An opaque mark on DIR itself replaces the whole tree.
if [ $HAVE_OPAQUE -eq 1 ]; then
	mkdir "$T/whole"
	echo "alone" >"$T/whole/only"
	if [ $IS_ROOT -eq 1 ]; then
		setfattr -n trusted.overlay.opaque -v y "$T/whole"
	else
		setfattr -n user.overlay.opaque -v y "$T/whole"
	fi
	V5=$("$LAMINA" --store "$S" view new base)
	expect_ok "view apply of an opaque folder" view apply "$V5" "$T/whole"
	lam ls "$V5"
	check "an opaque DIR replaces everything the view held" \
		out_matches '^-rw-r--r-- [0-9:]+ 6 only$'
else
	skip "an opaque DIR replaces everything the view held" "no xattrs here"
fi

# --- Keys and values: reg set, query, delete, export, import; diff and
# squash of key/value changes. ---
KV=$("$LAMINA" --store "$S" view new base)
expect_ok "reg set of a string" reg set "$KV" 'Soft\App' Name REG_SZ hello
expect_ok "reg set of a dword" reg set "$KV" 'Soft\App' Count REG_DWORD 0x2a
expect_ok "reg set of a default value" reg set "$KV" 'Soft\Old' '' REG_SZ dflt
lam reg query "$KV" 'Soft\App'
check "reg query lists a key's values" out_is 'Soft\App
    Count    REG_DWORD    0x2a
    Name    REG_SZ    hello'
lam reg query "$KV" 'Soft\App' Count
check "reg query of one value" out_has_line '    Count    REG_DWORD    0x2a'
lam diff "$KV"
check "diff of a view lists its key/value changes" out_is 'A reg:Soft
A reg:Soft\App
A reg:Soft\App:Count
A reg:Soft\App:Name
A reg:Soft\Old
A reg:Soft\Old:'
expect_ok "commit of key/value changes" view commit "$KV" --ref kv1
lam diff kv1
check "diff of a layer lists its key/value changes" out_is 'A reg:Soft
A reg:Soft\App
A reg:Soft\App:Count
A reg:Soft\App:Name
A reg:Soft\Old
A reg:Soft\Old:'
lam reg query kv1 'Soft\App' Name
check "reg query of a committed layer" out_has_line '    Name    REG_SZ    hello'
lam diff "$KV"
check "a committed view holds no changes" out_is ""
expect_ok "reg delete of a value" reg delete "$KV" 'Soft\App' Name
expect_ok "reg delete of a key" reg delete "$KV" 'Soft\Old'
expect_ok "reg set of a changed value" reg set "$KV" 'Soft\App' Count REG_DWORD 7
lam diff "$KV"
check "diff lists modified and deleted keys and values" out_is 'M reg:Soft\App:Count
D reg:Soft\App:Name
D reg:Soft\Old
D reg:Soft\Old:'
lam reg query "$KV" 'Soft\Old'
check "reg query of a deleted key fails" status_is 1
lam reg export "$KV" Soft
cp "$T/out" "$T/kv-export.reg"
check "reg export writes the key tree" out_is 'Windows Registry Editor Version 5.00

[Soft]

[Soft\App]
"Count"=dword:00000007'
expect_ok "commit of deletions" view commit "$KV" --ref kv2
lam diff kv1 kv2
check "diff of two layers lists key/value changes" out_is 'M reg:Soft\App:Count
D reg:Soft\App:Name
D reg:Soft\Old
D reg:Soft\Old:'
lam diff base kv2
check "diff over two commits lists only what differs" out_is 'A reg:Soft
A reg:Soft\App
A reg:Soft\App:Count'
KI=$("$LAMINA" --store "$S" view new)
expect_ok "reg import of an export" reg import "$KI" "$T/kv-export.reg"
lam reg query "$KI" 'Soft\App' Count
check "reg import sets the values" out_has_line '    Count    REG_DWORD    0x7'
printf 'Windows Registry Editor Version 5.00\r\n\r\n[Soft\\App]\r\n"Count"=-\r\n"New"="text"\r\n' >"$T/kv-change.reg"
expect_ok "reg import of deletions and new values" reg import "$KI" "$T/kv-change.reg"
lam diff "$KI"
check "diff after reg import" out_is 'A reg:Soft
A reg:Soft\App
A reg:Soft\App:New'
expect_ok "reg delete of a key tree" reg delete "$KI" Soft
lam diff "$KI"
check "a view back to nothing lists no change" out_is ""
# Squash keeps the key/value changes of the chain.
expect_ok "squash of a chain with key/value changes" squash kv2 --onto base --ref kvsq
lam diff kv2 kvsq
check "the squashed layer holds the same keys" out_is ""
lam diff kvsq
check "the squashed layer holds the chain's key/value changes" out_is 'A reg:Soft
A reg:Soft\App
A reg:Soft\App:Count'
expect_ok "squash of a chain with keys into a base layer" squash kv2 --ref kvflat
lam diff kv2 kvflat
check "the squashed base layer holds the same keys" out_is ""
lam reg query kvflat 'Soft\App' Count
check "reg query of the squashed base layer" out_has_line '    Count    REG_DWORD    0x7'
expect_ok "view rm of the key/value views" view rm "$KV"
expect_ok "view rm of the import view" view rm "$KI"

expect_ok "check after all of it" check

echo "$checks checks, $failures failed"
[ "$failures" -eq 0 ]

#!/usr/bin/env bash
# Runs every C example and checks what it prints (make run-examples; make
# check). Needs EXAMPLES (the built examples) and SHMPIPE_CLI (the `shmpipe`
# binary, for the C-to-CLI and CLI-to-C streams). Leaves nothing behind in
# /dev/shm, ipcs -m or the working directory.
set -euo pipefail
EXAMPLES=$(realpath "${EXAMPLES:?set EXAMPLES to the directory of built examples}")
SHMPIPE_CLI=$(realpath "${SHMPIPE_CLI:?set SHMPIPE_CLI to the shmpipe binary}")
work=$(mktemp -d /tmp/shmpipe-ffi-examples.XXXXXX)
cleanup() {
    # Best effort, also after a failure: remove what the examples may have left.
    "$SHMPIPE_CLI" rm --force "sysv:$((0x5f000000 + $$ % 65536))" >/dev/null 2>&1 || true
    "$SHMPIPE_CLI" rm --force "shm:shmpipe-ffi-ex-$$-a" >/dev/null 2>&1 || true
    "$SHMPIPE_CLI" rm --force "shm:shmpipe-ffi-ex-$$-b" >/dev/null 2>&1 || true
    "$SHMPIPE_CLI" rm --force "sysv:$work/shmfile:98" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
cd "$work"
fail() { echo "FAILED: $*" >&2; exit 1; }
expect() { # expect FILE TEXT
    grep -qF -- "$2" "$1" || { cat "$1" >&2; fail "expected '$2' in $1"; }
}
ok() { echo "example $1: ok"; }

# System V writer, then reader (seeds 000, 003, 002). A key of our own, so
# that concurrent runs and the seeds' 1000 do not meet.
key=$((0x5f000000 + $$ % 65536))
"$EXAMPLES/sysv_writer" "sysv:$key" zyq "This is share memory" > w.out
"$EXAMPLES/sysv_reader" "sysv:$key" > r.out
expect r.out "shm = zyq"
expect r.out "shm = This is share memory"
expect r.out "delete shm success."
if ipcs -m | grep -qi "$(printf '0x%08x' "$key")"; then fail "sysv:$key left in ipcs -m"; fi
# The reader first, blocking until the writer comes.
"$EXAMPLES/sysv_reader" "sysv:$key" > r2.out &
reader=$!
sleep 0.3
"$EXAMPLES/sysv_writer" "sysv:$key" late > /dev/null
wait "$reader"
expect r2.out "shm = late"
ok "sysv_writer / sysv_reader"

# ftok-keyed pair (seed 002): lines through the ring, then the end of stream.
"$EXAMPLES/ftok_reader" "$work/shmfile" > f.out &
reader=$!
for _ in $(seq 50); do grep -q mypid f.out 2>/dev/null && break; sleep 0.1; done
printf 'hello\nworld\n' | "$EXAMPLES/ftok_writer" "$work/shmfile"
wait "$reader"
expect f.out "recv data:hello"
expect f.out "recv data:world"
expect f.out "end of stream"
[ ! -e "$work/shmfile" ] || fail "the key file was not removed"
# SIGINT clean-up: the reader waits for a writer, is interrupted, and
# removes the ring and the key file.
"$EXAMPLES/ftok_reader" "$work/shmfile" > s.out &
reader=$!
for _ in $(seq 50); do grep -q mypid s.out 2>/dev/null && break; sleep 0.1; done
kill -INT "$reader"
status=0
wait "$reader" || status=$?
[ "$status" -eq 130 ] || fail "ftok_reader exited $status after SIGINT, expected 130"
expect s.out "interrupted: ring and"
[ ! -e "$work/shmfile" ] || fail "the key file was not removed after SIGINT"
ok "ftok_writer / ftok_reader (with SIGINT clean-up)"

"$EXAMPLES/fork_memfd" > m.out
expect m.out "i gets:HHHHH"
ok fork_memfd

"$EXAMPLES/fork_counter" 5 > c.out
[ "$(grep -c '^parent: ' c.out)" -eq 5 ] || fail "fork_counter: 5 parent lines"
[ "$(grep -c '^child: ' c.out)" -eq 5 ] || fail "fork_counter: 5 child lines"
expect c.out "final count: 10"
# Strict alternation: parent 0, child 1, parent 2, ...
head -n 4 c.out | tr '\n' ' ' | grep -qF "parent: 0 child: 1 parent: 2 child: 3" \
    || fail "fork_counter turns do not alternate: $(cat c.out)"
ok fork_counter

status=0
"$EXAMPLES/huge_pages" > h.out || status=$?
[ "$status" -eq 0 ] || fail "huge_pages exited $status"
expect h.out "page size"
ok "huge_pages ($(head -n 1 h.out | sed 's/.*page size/page size/'))"

"$EXAMPLES/rpc" 4 1000 > rpc.out
expect rpc.out "served 4000 calls from 4 clients, 0 failed"
ok "rpc (listener, 4 client processes x 1000 calls)"

"$EXAMPLES/file_ring" "$work/tmp.ring" > fr.out
expect fr.out "holds: hello mmap!"
[ ! -e "$work/tmp.ring" ] || fail "file_ring left its file"
ok file_ring

# A C producer feeding `shmpipe recv`, and `shmpipe send` feeding a C
# consumer: 20 MB of random bytes, byte-identical. The C programs move raw
# messages, so the command line runs with `--raw` (no stream framing: see
# docs/cli.md).
head -c 20000000 /dev/urandom > in.bin
a="shm:shmpipe-ffi-ex-$$-a"
"$SHMPIPE_CLI" recv --raw "$a" > out1.bin &
recv=$!
"$EXAMPLES/c_producer" "$a" < in.bin
wait "$recv"
cmp in.bin out1.bin || fail "c_producer -> shmpipe recv: output differs"
[ ! -e "/dev/shm/${a#shm:}" ] || fail "shmpipe recv left $a"
ok "c_producer -> shmpipe recv (20 MB identical)"

b="shm:shmpipe-ffi-ex-$$-b"
"$EXAMPLES/c_consumer" "$b" > out2.bin &
consumer=$!
"$SHMPIPE_CLI" send --raw "$b" < in.bin
wait "$consumer"
cmp in.bin out2.bin || fail "shmpipe send -> c_consumer: output differs"
[ ! -e "/dev/shm/${b#shm:}" ] || fail "c_consumer left $b"
ok "shmpipe send -> c_consumer (20 MB identical)"

echo "all C examples passed"

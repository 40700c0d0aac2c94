"""Python IPC benchmark: shmpipe next to multiprocessing.Pipe,
multiprocessing.Queue and socket.socketpair, in one run.

    python bench.py            # about a minute
    python bench.py --quick    # a few seconds, fewer messages

Two processes (the child forked by multiprocessing), pinned to two CPUs,
one call per message for every mechanism:

- throughput: the child sends N messages of 64 B (then 4 KiB) as fast as
  it can, the parent receives them; messages per second from the child's
  first message to the parent's last.
- ping-pong: the parent sends 64 B, the child sends it back; the round
  trip's median (p50) and 99th percentile.

Each mechanism runs in turn, and the whole set is repeated (--reps,
default 3) so that the mechanisms interleave; the table shows the median
repetition. shmpipe's batch calls (send_batch / recv_batch, 64 at a time)
get a row of their own.
"""

import argparse
import multiprocessing
import os
import socket
import statistics
import sys
import time

import shmpipe

CTX = multiprocessing.get_context("fork")

# Parent on one CPU, child on another (as `shmpipe bench --cpus 0,1`): left to
# the scheduler, a blocking mechanism's wakeups pull both processes onto
# one CPU, where a spinning receiver only delays its peer.
CPUS = sorted(os.sched_getaffinity(0))
PIN = True


def pin(index):
    if PIN and len(CPUS) >= 2:
        os.sched_setaffinity(0, {CPUS[index]})


# ---------------------------------------------------------------------------
# Transports: each has a parent end and a child end with send/recv of bytes.
# ---------------------------------------------------------------------------


def recv_exact(sock, n):
    data = sock.recv(n)
    while len(data) < n:
        more = sock.recv(n - len(data))
        if not more:
            raise EOFError
        data += more
    return data


class Shmpipe:
    name = "shmpipe"
    batch = False

    def __init__(self, size):
        base = f"shm:pybench-{os.getpid()}-{time.monotonic_ns()}"
        self.addrs = (base + "-a", base + "-b")
        self.rings = [shmpipe.Ring.create(a, slots=1024, max_message=size) for a in self.addrs]

    def parent(self):
        # Parent sends on ring a, receives on ring b.
        self.tx = self.rings[0].producer()
        self.rx = self.rings[1].consumer()

    def child(self):
        self.tx = shmpipe.Ring.open(self.addrs[1]).producer()
        self.rx = shmpipe.Ring.open(self.addrs[0]).consumer()

    def send(self, m):
        self.tx.send(m)

    def recv(self, n):
        return self.rx.recv()

    def close(self):
        for a in self.addrs:
            shmpipe.Ring.remove(a, force=True)


class ShmpipeBatch(Shmpipe):
    name = "shmpipe, batches of 64"
    batch = True


class Pipe:
    name = "multiprocessing.Pipe"
    batch = False

    def __init__(self, size):
        self.a, self.b = CTX.Pipe(duplex=True)

    def parent(self):
        self.c = self.a

    def child(self):
        self.c = self.b

    def send(self, m):
        self.c.send_bytes(m)

    def recv(self, n):
        return self.c.recv_bytes()

    def close(self):
        self.a.close()
        self.b.close()


class Queue:
    name = "multiprocessing.Queue"
    batch = False

    def __init__(self, size):
        self.q = (CTX.Queue(), CTX.Queue())

    def parent(self):
        self.out, self.inq = self.q

    def child(self):
        self.inq, self.out = self.q

    def send(self, m):
        self.out.put(m)

    def recv(self, n):
        return self.inq.get()

    def close(self):
        for q in self.q:
            q.close()
            q.join_thread()


class SocketPair:
    name = "socket.socketpair"
    batch = False

    def __init__(self, size):
        self.a, self.b = socket.socketpair()

    def parent(self):
        self.s = self.a

    def child(self):
        self.s = self.b

    def send(self, m):
        self.s.sendall(m)

    def recv(self, n):
        return recv_exact(self.s, n)

    def close(self):
        self.a.close()
        self.b.close()


# ---------------------------------------------------------------------------
# The two measurements.
# ---------------------------------------------------------------------------


def child_stream(t, count, size):
    pin(1)
    t.child()
    msg = b"x" * size
    t.send(b"r" * size)  # ready: the clock starts when this arrives
    if t.batch:
        batch = [msg] * 64
        for _ in range(count // 64):
            t.tx.send_batch(batch)
    else:
        for _ in range(count):
            t.send(msg)


def throughput(cls, count, size):
    t = cls(size)
    try:
        p = CTX.Process(target=child_stream, args=(t, count, size))
        p.start()
        t.parent()
        t.recv(size)
        start = time.perf_counter()
        if t.batch:
            got = 0
            while got < count // 64 * 64:
                got += len(t.rx.recv_batch(64))
            count = got
        else:
            for _ in range(count):
                t.recv(size)
        elapsed = time.perf_counter() - start
        p.join()
        return count / elapsed
    finally:
        t.close()


def child_echo(t, rounds, size):
    pin(1)
    t.child()
    for _ in range(rounds + 1):
        t.send(t.recv(size))


def ping_pong(cls, rounds, size=64):
    t = cls(size)
    try:
        p = CTX.Process(target=child_echo, args=(t, rounds, size))
        p.start()
        t.parent()
        msg = b"p" * size
        t.send(msg)  # warm-up round, also waits for the child to start
        t.recv(size)
        samples = []
        clock = time.perf_counter_ns
        for _ in range(rounds):
            t0 = clock()
            t.send(msg)
            t.recv(size)
            samples.append(clock() - t0)
        p.join()
        samples.sort()
        return samples[len(samples) // 2] / 1000, samples[len(samples) * 99 // 100] / 1000
    finally:
        t.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer messages, one repetition")
    ap.add_argument("--reps", type=int, default=3, help="repetitions, interleaved (default 3)")
    ap.add_argument("--no-pin", action="store_true", help="leave CPU placement to the scheduler")
    args = ap.parse_args()
    global PIN
    PIN = not args.no_pin
    scale = 10 if args.quick else 1
    reps = 1 if args.quick else args.reps
    pin(0)
    kinds = [Shmpipe, ShmpipeBatch, Pipe, Queue, SocketPair]
    counts = {Shmpipe: 400_000, ShmpipeBatch: 1_000_000, Pipe: 200_000, Queue: 50_000, SocketPair: 200_000}
    rounds = 20_000 // scale
    results = {k: {"64": [], "4k": [], "pp": []} for k in kinds}
    for rep in range(reps):
        for k in kinds:
            n = counts[k] // scale
            results[k]["64"].append(throughput(k, n, 64))
            results[k]["4k"].append(throughput(k, n // 2, 4096))
            if not k.batch:
                results[k]["pp"].append(ping_pong(k, rounds))
        print(f"repetition {rep + 1}/{reps} done", file=sys.stderr)

    def med(xs):
        return statistics.median(xs)

    print(f"\nPython {sys.version.split()[0]}, shmpipe {shmpipe.__version__}, {os.cpu_count()} CPUs, "
          f"median of {reps} repetition(s), "
          f"{'parent and child pinned to CPUs %d and %d' % tuple(CPUS[:2]) if PIN and len(CPUS) >= 2 else 'not pinned'}\n")
    print("| mechanism | 64 B, msgs/s | 4 KiB, msgs/s | 4 KiB, MB/s | 64 B round trip p50 / p99 |")
    print("|---|---|---|---|---|")
    for k in kinds:
        r = results[k]
        pp = "(same calls as shmpipe)" if k.batch else (
            f"{med([p for p, _ in r['pp']]):.1f} / {med([q for _, q in r['pp']]):.1f} µs")
        print(f"| {k.name} | {med(r['64']) / 1e6:.2f} M | {med(r['4k']) / 1e6:.3f} M | "
              f"{med(r['4k']) * 4096 / 1e6:.0f} | {pp} |")
    shm = med([p for p, _ in results[Shmpipe]["pp"]])
    pipe = med([p for p, _ in results[Pipe]["pp"]])
    print(f"\n64 B ping-pong, p50: shmpipe is {pipe / shm:.1f}x faster than multiprocessing.Pipe")


if __name__ == "__main__":
    main()

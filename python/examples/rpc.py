"""Request/response: one server, several client processes, calls through a
listener (the Python twin of the crate's examples/rpc_server.rs).

    python rpc.py [CLIENTS [CALLS]]      (default 4 clients x 1000 calls)

The server binds a listener and serves every connection from one thread
with `selectors`; each client connects (getting its own pair of memfd
rings, nothing named in /dev/shm), makes its calls ("sum A B" -> "A+B"),
checks every reply and exits. The server notices each client's close,
prints a summary and removes the socket.
"""

import multiprocessing
import os
import selectors
import sys
import tempfile

import shmpipe


def answer(request):
    _, a, b = request.split()
    return b"%d" % (int(a) + int(b))


def client(path, calls):
    with shmpipe.Client.connect(path) as c:
        for i in range(calls):
            reply = c.call(b"sum %d %d" % (os.getpid(), i), timeout=30)
            if int(reply) != os.getpid() + i:
                raise SystemExit(f"call {i}: wrong reply {reply!r}")


def main():
    clients = int(sys.argv[1]) if len(sys.argv) > 1 else 4
    calls = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    path = os.path.join(tempfile.gettempdir(), f"shmpipe-rpc-example-{os.getpid()}.sock")
    served = failed = 0
    with shmpipe.Listener.bind(path, slots=64, max_message=120) as listener:
        procs = [multiprocessing.Process(target=client, args=(path, calls)) for _ in range(clients)]
        for p in procs:
            p.start()
        sel = selectors.DefaultSelector()
        sel.register(listener, selectors.EVENT_READ, None)
        conns = []
        done = 0
        while done < clients:
            # Arm every connection: True means sleep until its descriptor
            # is readable; False means it has work now.
            busy = False
            for conn in conns:
                try:
                    busy |= not conn.arm()
                except shmpipe.Disconnected:  # PeerDied: serve it below
                    busy = True
            for key, _ in sel.select(timeout=0 if busy else 1.0):
                if key.data is None and (conn := listener.try_accept()) is not None:
                    conns.append(conn)
                    sel.register(conn, selectors.EVENT_READ, conn)
            for conn in list(conns):
                try:
                    while conn.try_serve(answer):
                        served += 1
                except shmpipe.Disconnected as e:  # closed, or PeerDied
                    failed += isinstance(e, shmpipe.PeerDied)
                    sel.unregister(conn)
                    conns.remove(conn)
                    conn.close()
                    done += 1
        for p in procs:
            p.join()
            failed += p.exitcode != 0
    print(f"served {served} calls from {clients} clients, {failed} failed")
    if os.path.exists(path):
        raise SystemExit(f"the socket {path} was left behind")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

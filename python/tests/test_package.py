"""The package around the module: type stubs, examples."""

import ast
import os
import random
import subprocess
import sys

import shmpipe

PYTHON_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_the_stubs_name_everything_the_module_has():
    with open(os.path.join(PYTHON_DIR, "shmpipe.pyi")) as f:
        tree = ast.parse(f.read())
    stubbed = {n.name for n in tree.body if isinstance(n, ast.ClassDef)}
    public = {n for n in dir(shmpipe) if not n.startswith("_") and isinstance(getattr(shmpipe, n), type)}
    assert stubbed == public
    # Every method of every class is in its stub (or its stubbed bases').
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}

    def stub_names_of(cls):
        names = {n.name for n in cls.body if isinstance(n, ast.FunctionDef)}
        names |= {n.target.id for n in cls.body if isinstance(n, ast.AnnAssign)}
        for base in cls.bases:
            if isinstance(base, ast.Name) and base.id in classes:
                names |= stub_names_of(classes[base.id])
        return names

    for cls in tree.body:
        if not isinstance(cls, ast.ClassDef) or issubclass(getattr(shmpipe, cls.name), BaseException):
            continue
        stub_names = stub_names_of(cls)
        real = {n for n in dir(getattr(shmpipe, cls.name)) if not n.startswith("_")}
        assert real <= stub_names, (cls.name, real - stub_names)


def test_every_call_has_a_docstring():
    for name in ("Ring", "Producer", "Consumer", "Borrowed", "RingInfo", "SideInfo",
                 "Listener", "Duplex", "Connection", "Client", "PeerCredentials"):
        cls = getattr(shmpipe, name)
        assert cls.__doc__, name
        for attr in dir(cls):
            if not attr.startswith("_") and callable(getattr(cls, attr)):
                assert getattr(cls, attr).__doc__, f"{name}.{attr}"
    assert "shmpipe.Error" in shmpipe.__doc__


def test_the_stream_example(address, tmp_path):
    script = os.path.join(PYTHON_DIR, "examples", "stream.py")
    data = random.Random(3).randbytes(1 << 20)
    recv = subprocess.Popen([sys.executable, script, "recv", address], stdout=subprocess.PIPE)
    send = subprocess.run([sys.executable, script, "send", address], input=data, timeout=60)
    out, _ = recv.communicate(timeout=60)
    assert send.returncode == 0 and recv.returncode == 0
    assert out == data


def test_the_borrow_example():
    script = os.path.join(PYTHON_DIR, "examples", "borrow.py")
    out = subprocess.run([sys.executable, script], capture_output=True, timeout=60, check=True)
    assert out.stdout.decode().splitlines()[:2] == ["0 0.0 b'payload 0'", "100 50.0 b'payload 100'"]


def test_the_rpc_example():
    script = os.path.join(PYTHON_DIR, "examples", "rpc.py")
    out = subprocess.run([sys.executable, script, "4", "200"], capture_output=True, timeout=120)
    assert out.returncode == 0, out.stderr.decode()
    assert out.stdout.decode().strip() == "served 800 calls from 4 clients, 0 failed"

"""Fixtures for the shmpipe tests: unique ring names, removed afterwards."""

import itertools
import os
import pathlib
import shutil

import pytest

import shmpipe

_counter = itertools.count()
PREFIX = f"pytest-shmpipe-{os.getpid()}-"


@pytest.fixture
def address():
    """A fresh `shm:` address; whatever ring it names is removed afterwards."""
    addr = f"shm:{PREFIX}{next(_counter)}"
    yield addr
    try:
        shmpipe.Ring.remove(addr, force=True)
    except shmpipe.NotFound:
        pass


@pytest.fixture(scope="session", autouse=True)
def nothing_left_in_dev_shm():
    """Every test leaves /dev/shm as it found it."""
    yield
    left = sorted(p.name for p in pathlib.Path("/dev/shm").glob(PREFIX + "*"))
    for name in left:
        os.unlink(os.path.join("/dev/shm", name))
    assert not left, f"rings left behind: {left}"


def cli_path():
    """The `shmpipe` command line: $SHMPIPE_CLI, else the workspace's
    target/{debug,release}/shmpipe, else on $PATH; None if none exists."""
    env = os.environ.get("SHMPIPE_CLI")
    if env:
        return env
    root = pathlib.Path(__file__).resolve().parents[2]
    for profile in ("debug", "release"):
        p = root / "target" / profile / "shmpipe"
        if p.is_file():
            return str(p)
    return shutil.which("shmpipe")


@pytest.fixture
def cli():
    path = cli_path()
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("no shmpipe command line: build it (cargo build -p shmpipe-cli) or set SHMPIPE_CLI")
        pytest.skip("no shmpipe command line: build it with `cargo build -p shmpipe-cli` or set SHMPIPE_CLI")
    return path

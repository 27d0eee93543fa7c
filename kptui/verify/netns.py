"""Network namespaces for one verify run: created, entered for sockets, always removed.

Every namespace is named `kpv<pid>...`, so two runs never collide and a
leftover one is easy to recognise. Nothing is created outside them: the veth
pairs are created directly inside their namespaces, and no command runs in
the caller's namespace except `ip netns add/del`.
"""

from __future__ import annotations

import ctypes
import os
import shlex
import shutil
import signal
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from kptui.engine.errors import KptuiError

CLONE_NEWNET = 0x40000000
TOOLS = ("ip", "nft", "iptables-restore", "xtables-monitor", "sysctl", "stdbuf")


class ToolError(KptuiError):
    """verify cannot run here (not root, a tool missing): exit status 2."""


class CommandError(KptuiError):
    """A command inside the namespaces failed (a setup line, iptables-restore, ...)."""

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail or message  # the command's own error output


def check_environment() -> None:
    if os.geteuid() != 0:
        raise ToolError("verify builds network namespaces and needs root (run it with sudo)")
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        raise ToolError(f"verify needs {', '.join(missing)}: install iproute2, nftables and "
                        "iptables (nf_tables backend), e.g. `apt-get install -y iproute2 "
                        "nftables iptables`")
    if not hasattr(socket, "AF_PACKET"):
        raise ToolError("verify needs Linux (AF_PACKET sockets)")


_libc: Any = None


def _setns(fd: int) -> None:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


class Lab:
    """The namespaces of one run. Use as a context manager: removal happens on every exit."""

    def __init__(self, prefix: str | None = None) -> None:
        self.prefix = prefix or f"kpv{os.getpid()}"
        self.names: list[str] = []
        self._old_handlers: dict[int, Any] = {}

    # -- lifetime ------------------------------------------------------------------

    def __enter__(self) -> Lab:
        if threading.current_thread() is threading.main_thread():  # only it may set handlers
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old_handlers[sig] = signal.signal(sig, self._on_signal)
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.cleanup()
        finally:
            for sig, handler in self._old_handlers.items():
                signal.signal(sig, handler)

    def _on_signal(self, signum: int, frame: object) -> None:
        self.cleanup()
        raise KeyboardInterrupt(f"signal {signum}")

    def cleanup(self) -> None:
        while self.names:
            name = self.names.pop()
            subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)

    def add(self, suffix: str) -> str:
        name = f"{self.prefix}{suffix}"
        self.names.append(name)  # first, so a half-made namespace is removed too
        self.host(["ip", "netns", "add", name])
        return name

    # -- commands ------------------------------------------------------------------

    def host(self, argv: list[str], *, stdin: str | None = None) -> str:
        proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            detail = (proc.stderr or proc.stdout).strip() or f"exit status {proc.returncode}"
            raise CommandError(f"`{shlex.join(argv)}` failed: {detail}", detail)
        return proc.stdout

    def run(self, ns: str, argv: list[str], *, stdin: str | None = None) -> str:
        return self.host(["ip", "netns", "exec", ns, *argv], stdin=stdin)

    @contextmanager
    def inside(self, ns: str) -> Iterator[None]:
        """This thread in ``ns`` for the block: sockets made there stay in ``ns``."""
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        target = os.open(f"/run/netns/{ns}", os.O_RDONLY)
        try:
            _setns(target)
            try:
                yield
            finally:
                _setns(home)
        finally:
            os.close(target)
            os.close(home)

    def socket_in(self, ns: str, factory: Callable[[], socket.socket]) -> socket.socket:
        with self.inside(ns):
            return factory()

    def read_in(self, ns: str, path: str) -> str:
        with self.inside(ns):
            with open(path, encoding="ascii") as fh:
                return fh.read()

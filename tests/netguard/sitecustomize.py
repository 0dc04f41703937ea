"""Network off for every Python process that has this folder on PYTHONPATH (the real-mode smoke run).

Connections to loopback (the Jupyter kernel's own channels) and Unix sockets still work; any
other connection, and any name lookup of a remote host, raises ``OSError`` at once, so a
download that real mode attempts behind the project's back fails loudly instead of hanging.
"""
import socket

_connect = socket.socket.connect
_connect_ex = socket.socket.connect_ex
_getaddrinfo = socket.getaddrinfo
_LOCAL = {"localhost", "127.0.0.1", "::1", "0.0.0.0", "", None}


def _is_local(addr) -> bool:
    if not isinstance(addr, tuple):
        return True  # AF_UNIX path
    host = addr[0]
    return host in _LOCAL or str(host).startswith("127.")


def _guard(self, addr):
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(addr):
        raise OSError(f"network disabled (tests/netguard): refused a connection to {addr!r}")
    return _connect(self, addr)


def _guard_ex(self, addr):
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(addr):
        raise OSError(f"network disabled (tests/netguard): refused a connection to {addr!r}")
    return _connect_ex(self, addr)


def _lookup(host, *a, **k):
    if host not in _LOCAL and not str(host).startswith("127."):
        raise socket.gaierror(f"network disabled (tests/netguard): no name lookup of {host!r}")
    return _getaddrinfo(host, *a, **k)


socket.socket.connect = _guard
socket.socket.connect_ex = _guard_ex
socket.getaddrinfo = _lookup

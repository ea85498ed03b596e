"""Bodies over a service's limit sent by hand, to see them refused before they are read."""

from __future__ import annotations

import socket


def _read_to_close(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (a timeout if it never does)."""
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def _head(path: str, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items()), "", ""]
    return "\r\n".join(lines).encode()


def answer_to_declared_length(
    address: tuple[str, int], path: str, length: int, headers: dict[str, str]
) -> bytes:
    """Declare a body of ``length`` bytes (waiting for 100 Continue) and send none of it."""
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(_head(path, headers | {"Content-Length": str(length), "Expect": "100-continue"}))
        return _read_to_close(sock)


def answer_to_chunked_body(address: tuple[str, int], path: str, limit: int, headers: dict[str, str]) -> bytes:
    """Send ``limit`` bytes in one chunk, then one more byte and no end of body."""
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(_head(path, headers | {"Transfer-Encoding": "chunked"}))
        sock.sendall(f"{limit:x}\r\n".encode() + b"x" * limit + b"\r\n")
        sock.sendall(b"1\r\nx\r\n")
        return _read_to_close(sock)

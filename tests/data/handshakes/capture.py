#!/usr/bin/env python3
"""Capture harness: relay one TCP connection and save both directions' bytes, interleaved.

Usage: capture.py LISTEN_PORT UPSTREAM_PORT OUT_FILE

The file is a sequence of frames `dir (1 byte: 0 client->server, 1 server->client)`,
`len (2 bytes, big endian)`, `len bytes`, in the order the relay moved them. The same format is
the fuzz target's input and what tests/wire_corpus.rs replays.
"""
import select
import socket
import struct
import sys


def main():
    lport, uport, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", lport))
    ls.listen(1)
    ls.settimeout(20)
    client, _ = ls.accept()
    server = socket.create_connection(("127.0.0.1", uport), timeout=5)
    for s in (client, server):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    peers = {client: (server, 0), server: (client, 1)}
    open_ = {client, server}
    with open(out, "wb") as f:
        while open_:
            ready, _, _ = select.select(list(open_), [], [], 20)
            if not ready:
                break
            for s in ready:
                data = s.recv(16384)
                other, d = peers[s]
                if not data:
                    open_.discard(s)
                    try:
                        other.shutdown(socket.SHUT_WR)
                    except OSError:
                        pass
                    continue
                f.write(struct.pack(">BH", d, len(data)) + data)
                other.sendall(data)


if __name__ == "__main__":
    main()

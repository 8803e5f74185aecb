#!/usr/bin/env python3
# Fixed workload for instruction counts: one connection (or C), N lines of 64 bytes
# pipelined DEPTH deep, every echo checked; then close.
import socket, sys
host, port, n, depth, conns = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
line = b"x" * 63 + b"\n"
socks = [socket.create_connection((host, port)) for _ in range(conns)]
for s in socks:
    sent = got = 0
    buf = b""
    while got < n:
        while sent < n and sent - got < depth:
            s.sendall(line); sent += 1
        data = s.recv(65536)
        if not data: raise SystemExit("closed")
        buf += data
        k = len(buf) // 64
        got += k; buf = buf[k*64:]
for s in socks: s.close()

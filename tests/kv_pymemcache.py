"""pymemcache (and a raw socket) against a memcached-compatible server on 127.0.0.1.

usage: python3 tests/kv_pymemcache.py PORT

Run by tests/server/kv_clients.rs against examples/kv_server (each loop) and, to show that
the expectations are memcached's own, against a real memcached. Every check that
fails is listed; the exit status is 1 if any did. The server should start empty;
the script flushes it anyway.
"""

import socket
import sys
import time

from pymemcache.client.base import Client
from pymemcache.exceptions import MemcacheClientError, MemcacheServerError

PORT = int(sys.argv[1])
failures = []
checks = 0


def check(what, got, want):
    global checks
    checks += 1
    if got != want:
        failures.append("%s: got %r, want %r" % (what, short(got), short(want)))


def short(v):
    if isinstance(v, (bytes, bytearray)) and len(v) > 80:
        return bytes(v[:40]) + b"...(%d bytes)" % len(v)
    return v


def client():
    return Client(
        ("127.0.0.1", PORT), connect_timeout=10, timeout=10, default_noreply=False
    )


def raises(what, exc, text, f):
    """f() must raise exc with text in its message."""
    global checks
    checks += 1
    try:
        f()
    except exc as e:
        if text not in str(e):
            failures.append("%s: %s(%r), want %r in it" % (what, type(e).__name__, str(e), text))
        return
    except Exception as e:  # noqa: BLE001 - any other error is a failure
        failures.append("%s: %s(%r), want %s" % (what, type(e).__name__, str(e), exc.__name__))
        return
    failures.append("%s: no error, want %s(%r)" % (what, exc.__name__, text))


def raw(data, expect_len):
    """Sends data in one piece, reads expect_len bytes of answer."""
    s = socket.create_connection(("127.0.0.1", PORT), timeout=10)
    s.sendall(data)
    got = b""
    while len(got) < expect_len:
        b = s.recv(65536)
        if not b:
            break
        got += b
    s.close()
    return got


def pattern(n, seed):
    """n bytes with every byte value, "\\r\\n" and "END\\r\\n" along the way."""
    base = bytes((i * 7 + seed) % 256 for i in range(251)) + b"\r\nEND\r\n\0"
    return (base * (n // len(base) + 1))[:n]


c = client()
check("flush_all", c.flush_all(), True)

# version
v = c.version()
check("version is 1.x", isinstance(v, bytes) and v.startswith(b"1."), True)

# set / get, binary values
check("get missing", c.get(b"nokey"), None)
for i, value in enumerate(
    [b"v", b"a\r\nb", b"\r\n", b"", bytes(range(256)), b"END\r\n", b"VALUE x 0 1\r\nx\r\n"]
):
    key = b"bin%d" % i
    check("set %r" % value, c.set(key, value), True)
    check("get %r" % value, c.get(key), value)

# get_many (one "get k1 k2 ..." line), and one longer than 2048 bytes
keys = [b"many-%03d" % i for i in range(50)]
check("set_many (pipelined sets)", c.set_many({k: k[::-1] for k in keys}), [])
got = c.get_many(keys + [b"missing-1", b"missing-2"])
check("get_many", got, {k: k[::-1] for k in keys})
long_keys = [b"long-get-many-key-%04d-%s" % (i, b"x" * (i % 40)) for i in range(300)]
check("set_many long keys", c.set_many({k: b"%d" % i for i, k in enumerate(long_keys)}), [])
got = c.get_many(long_keys[::2] + [b"missing-%d" % i for i in range(100)])
check("get_many over a 20 KB line", got, {k: b"%d" % (2 * i) for i, k in enumerate(long_keys[::2])})

# gets / cas
c.set(b"cas", b"one")
value, cas = c.gets(b"cas")
check("gets value", value, b"one")
check("cas match", c.cas(b"cas", b"two", cas), True)
check("cas stale (EXISTS)", c.cas(b"cas", b"three", cas), False)
check("cas missing (NOT_FOUND)", c.cas(b"cas-missing", b"x", cas), None)
value2, cas2 = c.gets(b"cas")
check("gets after cas", value2, b"two")
check("cas unique changed", cas2 != cas, True)
m = c.gets_many([b"cas", b"bin0", b"nokey"])
check("gets_many keys", sorted(m), [b"bin0", b"cas"])

# add / replace / append / prepend
check("add new", c.add(b"ar", b"1"), True)
check("add existing", c.add(b"ar", b"2"), False)
check("replace existing", c.replace(b"ar", b"3"), True)
check("replace missing", c.replace(b"ar-missing", b"3"), False)
check("append", c.append(b"ar", b"45"), True)
check("prepend", c.prepend(b"ar", b"\r\n"), True)
check("after append/prepend", c.get(b"ar"), b"\r\n345")
check("append missing", c.append(b"ar-missing", b"x"), False)
check("prepend missing", c.prepend(b"ar-missing", b"x"), False)

# delete
check("delete", c.delete(b"ar"), True)
check("delete again", c.delete(b"ar"), False)
check("get deleted", c.get(b"ar"), None)
check("delete_many", c.delete_many([b"bin0", b"bin1", b"nokey"]), True)
check("deleted by delete_many", c.get_many([b"bin0", b"bin1"]), {})

# incr / decr
c.set(b"n", b"10")
check("incr", c.incr(b"n", 5), 15)
check("decr", c.decr(b"n", 3), 12)
check("decr below 0", c.decr(b"n", 100), 0)
check("incr missing", c.incr(b"n-missing", 1), None)
check("decr missing", c.decr(b"n-missing", 1), None)
c.set(b"n", b"18446744073709551615")
check("incr wraps at 2^64", c.incr(b"n", 2), 1)
c.set(b"nan", b"abc")
raises(
    "incr non-numeric",
    MemcacheClientError,
    "cannot increment or decrement non-numeric value",
    lambda: c.incr(b"nan", 1),
)
c = client()  # a client error may leave the connection closed

# touch and expiry
check("touch missing", c.touch(b"t-missing", 10), False)
c.set(b"gone", b"x", expire=1)
c.set(b"kept", b"x", expire=1)
check("touch", c.touch(b"kept", 100), True)
c.set(b"neg", b"x", expire=-1)
check("negative expire: gone at once", c.get(b"neg"), None)
check("expire 1: there at first", c.get(b"gone"), b"x")
time.sleep(2.2)
check("expire 1: gone after 2 s", c.get(b"gone"), None)
check("touched: still there", c.get(b"kept"), b"x")

# noreply
check("set noreply", c.set(b"nr", b"1", noreply=True), True)
check("add noreply (refused)", c.add(b"nr", b"2", noreply=True), True)
check("append noreply", c.append(b"nr", b"3", noreply=True), True)
check("incr noreply", c.incr(b"nr", 1, noreply=True), None)
check("touch noreply", c.touch(b"nr", 100, noreply=True), True)
check("after the noreply commands", c.get(b"nr"), b"14")
check("delete noreply", c.delete(b"nr", noreply=True), True)
check("after delete noreply", c.get(b"nr"), None)

# about 1 MiB (memcached's own limit is a little under 1 MiB: its item header and
# the key count), then more than 1 MiB
big = pattern(1024 * 1024 - 1024, 3)
check("set ~1 MiB", c.set(b"big", big), True)
check("get ~1 MiB", c.get(b"big"), big)
raises(
    "set 1 MiB + 1",
    MemcacheServerError,
    "object too large for cache",
    lambda: c.set(b"big", pattern(1024 * 1024 + 1, 4)),
)
c = client()
check("a set too large drops the old value", c.get(b"big"), None)
check("set too large, noreply", c.set(b"big2", pattern(2 * 1024 * 1024, 5), noreply=True), True)
check("the connection goes on after the skipped block", c.get(b"big2"), None)
check("and answers", c.set(b"after", b"ok"), True)

# stats: counters move as memcached's do
s1 = c.stats()
c.set(b"st", b"x")
c.get_many([b"st", b"after", b"st-missing"])
s2 = c.stats()
for name in [b"pid", b"uptime", b"time", b"version", b"curr_items", b"total_items",
             b"bytes", b"curr_connections", b"cmd_get", b"cmd_set", b"get_hits",
             b"get_misses"]:
    check("stats has %s" % name.decode(), name in s2, True)
if not failures:
    check("cmd_get +3", s2[b"cmd_get"] - s1[b"cmd_get"], 3)
    check("get_hits +2", s2[b"get_hits"] - s1[b"get_hits"], 2)
    check("get_misses +1", s2[b"get_misses"] - s1[b"get_misses"], 1)
    check("cmd_set +1", s2[b"cmd_set"] - s1[b"cmd_set"], 1)
    check("curr_connections >= 1", s2[b"curr_connections"] >= 1, True)
    check("time is now", abs(s2[b"time"] - time.time()) < 5, True)

# raw protocol, pipelined: every command of the batch in one send
batch = b"".join(b"set p%d %d 0 %d\r\nv%d\r\nget p%d\r\n" % (i, i, len(b"v%d" % i), i, i)
                 for i in range(200))
want = b"".join(b"STORED\r\nVALUE p%d %d %d\r\nv%d\r\nEND\r\n" % (i, i, len(b"v%d" % i), i)
                for i in range(200))
check("200 pipelined set+get", raw(batch, len(want)), want)
cases = [
    (b"set r 7 0 4\r\na\r\nb\r\nget r\r\n", b"STORED\r\nVALUE r 7 4\r\na\r\nb\r\nEND\r\n"),
    (b"set r 0 0 3\r\nhello\r\nget r\r\n",
     b"CLIENT_ERROR bad data chunk\r\nERROR\r\nVALUE r 7 4\r\na\r\nb\r\nEND\r\n"),
    (b"set r 0 0 3 noreply\r\nhello\r\nverbosity 1\r\n", b"ERROR\r\nOK\r\n"),
    (b"set r 4294967295 0 1\r\nx\r\nget r\r\n", b"STORED\r\nVALUE r 4294967295 1\r\nx\r\nEND\r\n"),
    (b"set r -1 0 1\r\nx\r\n", b"CLIENT_ERROR bad command line format\r\nERROR\r\n"),
    (b"set r 0 0 -1\r\nverbosity 1\r\n", b"CLIENT_ERROR bad command line format\r\nOK\r\n"),
    (b"set " + b"k" * 251 + b" 0 0 1\r\nx\r\n", b"CLIENT_ERROR bad command line format\r\nERROR\r\n"),
    (b"get " + b"k" * 251 + b"\r\n", b"CLIENT_ERROR bad command line format\r\n"),
    (b"\r\nfoo\r\nget\r\nset r 0 0\r\n", b"ERROR\r\nERROR\r\nERROR\r\nERROR\r\n"),
    (b"set i 0 0 2\r\n10\r\nincr i 18446744073709551615\r\nincr i abc\r\nincr i\r\n",
     b"STORED\r\n9\r\nCLIENT_ERROR invalid numeric delta argument\r\nERROR\r\n"),
    (b"incr i 1 noreply\r\nincr i x noreply\r\nget i\r\n", b"VALUE i 0 2\r\n10\r\nEND\r\n"),
    (b"delete i 10\r\ndelete i 0\r\n",
     b"CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\nDELETED\r\n"),
    (b"touch i abc\r\nflush_all abc\r\nverbosity abc\r\n",
     b"CLIENT_ERROR invalid exptime argument\r\nCLIENT_ERROR invalid exptime argument\r\n"
     b"CLIENT_ERROR bad command line format\r\n"),
    (b"set t 0 0 1\r\nx\r\ntouch t -1\r\nget t\r\n", b"STORED\r\nTOUCHED\r\nEND\r\n"),
    (b"set a 0 0 1\r\nx\r\nappend a 0 0 1048577\r\n" + b"y" * 1048577 + b"\r\nget a\r\n",
     b"STORED\r\nSERVER_ERROR object too large for cache\r\nVALUE a 0 1\r\nx\r\nEND\r\n"),
]
for data, want in cases:
    check("raw %r" % data[:40], raw(data, len(want)), want)
# quit closes the connection
s = socket.create_connection(("127.0.0.1", PORT), timeout=10)
s.sendall(b"quit\r\n")
check("quit closes", s.recv(100), b"")
s.close()

# flush_all with a delay: items stay until then
c = client()
c.set(b"fl", b"x")
check("flush_all 2", c.flush_all(delay=2), True)
check("before the flush time", c.get(b"fl"), b"x")
time.sleep(3.2)
check("after the flush time", c.get(b"fl"), None)
check("flush_all noreply", c.flush_all(noreply=True), True)
check("get after flush_all", c.get_many(keys[:3]), {})

if failures:
    print("%d of %d checks failed:" % (len(failures), checks))
    for f in failures:
        print("  " + f)
    sys.exit(1)
print("pymemcache: all %d checks passed" % checks)

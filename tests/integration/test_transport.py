"""test_transport.py - a transforming transport across shard hand-offs (issue 9 item 3).

Aurora runs its MQTT listener over the test-only XOR transport (core/transport_xor.c, selected by the environment
variable AURORA_TEST_TRANSPORT=mqtt): a 5-byte handshake each way ("AXT1" + seed), then frames of a 2-byte length
and a payload XORed with a key that depends on the seed and on the position in the stream, a zero-length frame as
close-notify. This file's client speaks it on raw sockets. A byte decoded with the wrong transport state (a fresh
transport on the target shard), lost, repeated, reordered or mixed with plaintext decodes to garbage: the MQTT
packets break, or the payloads differ.

Many QoS 1 clients connect with their CONNECT, SUBSCRIBE and PUBLISH packets pipelined in one burst cut into XOR
frames of random lengths (independent of the MQTT packet boundaries) and sent in chunks split at random byte
boundaries with short pauses, so that bytes arrive before, during and after the hand-off of the connection to its
owner shard (--shards 2: about half of the connections move). Every PUBLISH must reach its subscriber exactly, in
order, every PUBACK must come back in order, and a DISCONNECT must be answered with the transport's close-notify
before the socket closes.

au_conn_upgrade and the handshake deadline are exercised by tests/unit/test_transport.c (no protocol of the
binary upgrades yet).

Run: /usr/bin/python3 tests/integration/test_transport.py [-k name] [-v]
"""
import os
import random
import socket
import struct
import sys
import threading
import time
import http.client as httpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Aurora, connect_packet, publish_packet, run_tests, scale, subscribe_packet, test  # noqa: E402

FRAME_MAX = 4096  # AU_XORT_FRAME_MAX
TIMEOUT = 20.0


def key(seed, n):
    return (seed + n * 131 + (n >> 8)) & 0xFF


class XorConn:
    """One client connection over the XOR test transport, with MQTT packet framing on top."""

    def __init__(self, b, rng):
        self.rng = rng
        self.sock = socket.create_connection((b.host, b.port), timeout=TIMEOUT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.seed_out = rng.randrange(256)
        self.n_out = 0
        self.seed_in = None
        self.n_in = 0
        self.raw = b""          # received, not yet deframed
        self.plain = b""        # deframed, not yet parsed as MQTT
        self.close_notify = False
        self.eof = False
        self.hello_sent = False

    def encode(self, data):
        """data -> XOR frames of random lengths (1..FRAME_MAX), cut anywhere in the MQTT byte stream."""
        out = bytearray()
        i = 0
        while i < len(data):
            n = min(len(data) - i, self.rng.choice((1, 2, 7, 100, 1000, FRAME_MAX, self.rng.randrange(1, FRAME_MAX))))
            out += struct.pack(">H", n)
            out += bytes(data[i + k] ^ key(self.seed_out, self.n_out + k) for k in range(n))
            self.n_out += n
            i += n
        return bytes(out)

    def handshake(self):
        """Hello both ways before anything else: the server has its multishot receive armed by the time the
        CONNECT comes, so the bytes behind it in a burst arrive as separate receive completions while the
        connection moves (the raw bytes a hand-off must carry apart from the decoded ones)."""
        self.sock.sendall(b"AXT1" + bytes([self.seed_out]))
        self.hello_sent = True
        while self.seed_in is None:
            self._fill()

    def send(self, mqtt_bytes, pause=True, burst=False):
        """Send MQTT bytes (the handshake first, once) in chunks split at random byte boundaries, or all at once
        (burst)."""
        wire = b""
        if not self.hello_sent:
            wire = b"AXT1" + bytes([self.seed_out])
            self.hello_sent = True
        for part in (mqtt_bytes if isinstance(mqtt_bytes, list) else [mqtt_bytes]):
            wire += self.encode(part)  # a list: no frame spans two parts
        if burst:
            self.sock.sendall(wire)
            return
        i = 0
        while i < len(wire):
            n = self.rng.randrange(1, min(len(wire) - i, 3000) + 1)
            self.sock.sendall(wire[i:i + n])
            i += n
            if pause and self.rng.random() < 0.3:
                time.sleep(self.rng.choice((0, 0.0005, 0.002)))

    def _fill(self):
        d = self.sock.recv(65536)
        if not d:
            self.eof = True
            raise EOFError("connection closed")
        self.raw += d
        if self.seed_in is None:
            if len(self.raw) < 5:
                return
            assert self.raw[:4] == b"AXT1", "server hello %r: the listener does not run the XOR transport" % self.raw[:5]
            self.seed_in = self.raw[4]
            self.raw = self.raw[5:]
        while len(self.raw) >= 2:
            n = struct.unpack(">H", self.raw[:2])[0]
            assert n <= FRAME_MAX, "frame of %d bytes" % n
            if len(self.raw) < 2 + n:
                break
            if n == 0:
                self.close_notify = True
                assert len(self.raw) == 2, "%d bytes after the close-notify" % (len(self.raw) - 2)
            p = self.raw[2:2 + n]
            self.plain += bytes(p[k] ^ key(self.seed_in, self.n_in + k) for k in range(n))
            self.n_in += n
            self.raw = self.raw[2 + n:]

    def packet(self):
        """-> (type, flags, body) of the next MQTT packet."""
        while True:
            if len(self.plain) >= 2:
                mult, rl, i = 1, 0, 1
                while i < len(self.plain):
                    bt = self.plain[i]
                    rl += (bt & 0x7F) * mult
                    mult *= 128
                    i += 1
                    if not bt & 0x80:
                        break
                    assert i < 5, "bad remaining length"
                else:
                    i = None
                if i is not None and len(self.plain) >= i + rl:
                    t = self.plain[0]
                    body = self.plain[i:i + rl]
                    self.plain = self.plain[i + rl:]
                    return t >> 4, t & 15, body
            self._fill()

    def wait_eof(self):
        while not self.eof:
            try:
                self._fill()
            except EOFError:
                pass

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def puback(pid):
    return bytes([0x40, 2]) + struct.pack(">H", pid)


def handoffs_in(b):
    with open(os.path.join(b.data_dir, "operator.token")) as f:
        tok = f.read().strip()
    c = httpc.HTTPConnection(b.host, b.http_port, timeout=10)
    c.request("GET", "/metrics", headers={"Authorization": "Bearer " + tok})
    r = c.getresponse()
    body = r.read().decode()
    c.close()
    assert r.status == 200, r.status
    return sum(int(l.split()[-1]) for l in body.splitlines() if l.startswith("aurora_handoffs_in_total"))


def xor_aurora():
    old = os.environ.get("AURORA_TEST_TRANSPORT")
    os.environ["AURORA_TEST_TRANSPORT"] = "mqtt"
    try:
        return Aurora()
    finally:
        if old is None:
            del os.environ["AURORA_TEST_TRANSPORT"]
        else:
            os.environ["AURORA_TEST_TRANSPORT"] = old


def run_threads(fns):
    errors = []

    def wrap(f):
        try:
            f()
        except BaseException as e:  # noqa: B902 - reported below
            errors.append(e)

    ts = [threading.Thread(target=wrap, args=(f,)) for f in fns]
    for t in ts:
        t.start()
    for t in ts:
        t.join(TIMEOUT * 2)
    assert not any(t.is_alive() for t in ts), "client threads stuck"
    if errors:
        raise errors[0]


@test
def qos1_over_xor_transport_across_handoffs():
    """scale(40) subscriber/publisher pairs x 40 messages, every connection pipelining its packets in random splits
    through the XOR transport; --shards 2, so about half of them are handed off mid-stream."""
    b = xor_aurora()
    try:
        n, m = scale(40), 40
        seed = int(os.environ.get("TEST_SEED", "0")) or random.randrange(1, 1 << 30)
        print("  seed %d (TEST_SEED to repeat)" % seed)
        payloads = {}
        for i in range(n):
            r = random.Random(seed * 1000 + i)
            payloads[i] = [b"%d:%d:" % (i, k) + bytes(r.randrange(256) for _ in range(r.choice((0, 5, 300, 5000))))
                           for k in range(m)]
        base_handoffs = handoffs_in(b)
        ready = threading.Barrier(2 * n, timeout=TIMEOUT)  # subscribers subscribed, publishers start
        subs = {}

        def subscriber(i):
            rng = random.Random(seed * 7919 + i)
            c = XorConn(b, rng)
            subs[i] = c
            pkts = [connect_packet("xsub-%d-%d" % (seed, i)), subscribe_packet(1, [("xt/%d" % i, 1)])]
            if i % 2:
                # the SUBSCRIBE in a frame of its own behind the CONNECT's, in the same read: the transport holds
                # it while the connection moves and the target asks for it (pending)
                c.handshake()
                c.send(pkts, burst=True)
            else:
                c.send(b"".join(pkts))
            t, _, body = c.packet()
            assert t == 2 and body[1] == 0, "sub %d: CONNACK %r" % (i, body)
            t, _, body = c.packet()
            assert t == 9 and body == b"\x00\x01\x01", "sub %d: SUBACK %r" % (i, body)
            ready.wait()
            acks = b""
            for k in range(m):
                t, fl, body = c.packet()
                assert t == 3 and (fl >> 1) & 3 == 1, "sub %d: packet type %d flags %d" % (i, t, fl)
                tl = struct.unpack(">H", body[:2])[0]
                topic = body[2:2 + tl].decode()
                pid = struct.unpack(">H", body[2 + tl:4 + tl])[0]
                assert topic == "xt/%d" % i, "sub %d: topic %r" % (i, topic)
                assert body[4 + tl:] == payloads[i][k], "sub %d: message %d differs (%r...)" % (i, k, body[4 + tl:][:20])
                acks += puback(pid)
                if rng.random() < 0.3 or k == m - 1:
                    c.send(acks)
                    acks = b""
            c.send(bytes([0xE0, 0]))  # DISCONNECT
            c.wait_eof()
            assert c.close_notify, "sub %d: the socket closed without the transport's close-notify" % i
            c.close()

        def publisher(i):
            rng = random.Random(seed * 104729 + i)
            ready.wait()
            c = XorConn(b, rng)
            first = pkts = connect_packet("xpub-%d-%d" % (seed, i))
            pkts += b"".join(publish_packet("xt/%d" % i, payloads[i][k], qos=1, pid=k + 1) for k in range(m))
            if i % 2:
                c.handshake()
                c.send([pkts[:len(first)], pkts[len(first):]], burst=True)
            else:
                c.send(pkts)
            t, _, body = c.packet()
            assert t == 2 and body[1] == 0, "pub %d: CONNACK %r" % (i, body)
            for k in range(m):
                t, _, body = c.packet()
                assert t == 4 and struct.unpack(">H", body[:2])[0] == k + 1, \
                    "pub %d: expected PUBACK %d, got type %d %r" % (i, k + 1, t, body)
            c.send(bytes([0xE0, 0]), pause=False)
            c.wait_eof()
            assert c.close_notify, "pub %d: no close-notify before the close" % i
            c.close()

        fns = [lambda i=i: subscriber(i) for i in range(n)] + [lambda i=i: publisher(i) for i in range(n)]
        t0 = time.monotonic()
        run_threads(fns)
        moved = handoffs_in(b) - base_handoffs
        print("  %d pairs x %d QoS 1 messages over the XOR transport in %.1f s; %d of %d connections handed off"
              % (n, m, time.monotonic() - t0, moved, 2 * n))
        assert moved >= 1, "no connection was handed off: the test proves nothing"
        assert b.alive()
    finally:
        b.stop()


@test
def xor_transport_rejects_plaintext_and_wrong_state():
    """The XOR listener refuses plain MQTT (no handshake), and a stream encoded with a wrong key position breaks
    the connection instead of reaching the protocol: the transport really transforms."""
    b = xor_aurora()
    try:
        s = socket.create_connection((b.host, b.port), timeout=5)
        s.sendall(connect_packet("plain"))
        s.settimeout(5)
        d = s.recv(100)
        assert d == b"", "plaintext CONNECT answered %r" % d
        s.close()
        # a correct handshake, then a CONNECT encoded one position off: garbage for the server
        c = XorConn(b, random.Random(5))
        c.n_out = 1
        try:
            c.send(connect_packet("skewed"), pause=False)
            t, _, body = c.packet()
            ok = t == 2 and body[1:2] == b"\x00"
        except (EOFError, AssertionError, OSError):
            ok = False
        assert not ok, "a wrongly keyed CONNECT was accepted"
        c.close()
        assert b.alive()
    finally:
        b.stop()


if __name__ == "__main__":
    run_tests(globals())

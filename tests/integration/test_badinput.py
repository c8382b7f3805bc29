"""test_badinput.py - malformed, hostile and slow peers, over raw sockets.

Expectation (spec §3): a clean close or the protocol's refusal, never a crash or a hang of other connections.
After each case the broker must still serve a normal client, and it must exit cleanly (status 0) on SIGTERM at
the end of the test (the fixture checks that).

    /usr/bin/python3 tests/integration/test_badinput.py [-k substring]
"""
import os
import random
import select
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (CONNACK, PINGRESP, PUBLISH, SUBACK, both, client, on_aurora, connect_packet, mqtt_str,  # noqa: E402
                     packet, parse_connack, pingreq_packet, publish_packet, raw, run_tests, scale,
                     subscribe_packet, varint)

MAX_PACKET = 1 << 20           # Aurora's default AU_MQTT_MAX_PACKET; Mosquitto is configured to the same
MOSQ_LIMITS = "max_packet_size %d\n" % MAX_PACKET


def healthy(b, tag="health"):
    """The broker still serves a normal client: connect, subscribe, QoS 1 round trip, within a short time."""
    assert b.alive(), "%s is not running (exit status %s)" % (b.name, b.proc.returncode)
    t0 = time.monotonic()
    c = client(b, "%s-%d" % (tag, random.randrange(1 << 30)), timeout=5)
    c.subscribe("health/" + c.client_id, 1)
    c.publish("health/" + c.client_id, "ping", qos=1)
    m = c.expect(5)
    assert m.payload == b"ping"
    c.disconnect()
    return time.monotonic() - t0


def raw_healthy(b, tag="rawhealth"):
    """healthy() over a raw socket (paho's select() loop cannot handle descriptors above 1024)."""
    assert b.alive(), "%s is not running (exit status %s)" % (b.name, b.proc.returncode)
    t0 = time.monotonic()
    r = raw(b, timeout=5)
    cid = "%s-%d" % (tag, random.randrange(1 << 30))
    p = r.connect(cid, timeout=5)
    assert p is not None and p[0] == CONNACK and parse_connack(p[2])[1] == 0, p
    r.send(subscribe_packet(1, [("health/" + cid, 1)]))
    r.expect_packet(SUBACK, 5)
    r.send(publish_packet("health/" + cid, b"ping", qos=1, pid=2))
    got = set()
    while got != {4, 3}:
        p = r.recv_packet(5)
        assert p is not None, "closed during health check"
        got.add(p[0])
        if p[0] == 3:
            r.send(b"\x40\x02" + p[2][2 + len(cid) + 7:][:2])
    r.send(b"\xe0\x00")
    r.close()
    return time.monotonic() - t0


def assert_refused(r, timeout=3, what=""):
    """The connection ends: only a CONNACK with a non-zero return code may come before the close."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            p = r.recv_packet(max(0.01, deadline - time.monotonic()))
        except TimeoutError:
            raise AssertionError("%s: connection still open after %.1f s" % (what or "bad input", timeout)) from None
        if p is None:
            return
        t, flags, body = p
        if t == CONNACK and len(body) >= 2 and body[1] != 0:
            continue
        raise AssertionError("%s: unexpected reply %r instead of a close" % (what or "bad input", p))


def connected_raw(b, cid=None, **kw):
    r = raw(b)
    p = r.connect(cid or "bad-%d" % random.randrange(1 << 30), **kw)
    assert p is not None and p[0] == CONNACK and parse_connack(p[2])[1] == 0, p
    return r


def assert_closes_after_connect(r, timeout=3, what=""):
    """A connected client sent something illegal: the broker closes (it may flush a few packets first)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            p = r.recv_packet(max(0.01, deadline - time.monotonic()))
        except TimeoutError:
            raise AssertionError("%s: connection still open after %.1f s" % (what or "bad input", timeout)) from None
        if p is None:
            return
        if p[0] in (PUBLISH, SUBACK):      # a SUBACK with a failure code, or an earlier delivery, is tolerated
            continue
        if p[0] == 14:                      # DISCONNECT (MQTT 5 only) is a clean refusal too
            continue
        raise AssertionError("%s: unexpected reply %r" % (what or "bad input", p))


# ---------------------------------------------------------------- CONNECT problems
@both
def first_packet_not_connect(b):
    for first in (pingreq_packet(), subscribe_packet(1, [("a", 0)]), b"\xe0\x00", b"\x40\x02\x00\x01",
                  b"\x00\x00", b"\xf0\x00"):
        r = raw(b)
        r.send(first)
        assert_refused(r, what="first packet %r" % first)
    healthy(b)


@both
def publish_before_connect(b):
    r = raw(b)
    r.send(publish_packet("x/y", b"sneaky", qos=1, pid=1))
    assert_refused(r, what="PUBLISH before CONNECT")
    # and it was not delivered to anyone
    s = client(b)
    s.subscribe("x/#", 1)
    r = raw(b)
    r.send(publish_packet("x/y", b"sneaky"))
    assert_refused(r)
    s.expect_none(0.5)
    healthy(b)


@both
def second_connect(b):
    r = connected_raw(b)
    r.send(connect_packet("again"))
    assert_closes_after_connect(r, what="second CONNECT")
    healthy(b)


@both
def bad_protocol_name(b):
    for name in ("MQTX", "mqtt", "", "MQTT\x00", "MQIsdpX"):
        r = raw(b)
        r.send(connect_packet("badname", version=4, proto_name=name))
        assert_refused(r, what="protocol name %r" % name)
    healthy(b)


@both
def unsupported_protocol_level(b):
    for level in (6, 7, 2, 0, 255):
        r = raw(b)
        body = mqtt_str("MQTT") + bytes([level, 0x02]) + struct.pack(">H", 60) + mqtt_str("lvl")
        r.send(packet(1, 0, body))
        p = r.recv_packet(3)
        # 3.1.1 [MQTT-3.1.2-2]: CONNACK return code 0x01 (unacceptable protocol level), then close
        assert p is not None and p[0] == CONNACK and p[2][1] == 0x01, "level %d: %r" % (level, p)
        assert r.closed(3), "level %d: not closed after refusal" % level
    healthy(b)


@both
def reserved_flag_bits(b):
    # CONNECT reserved flag (bit 0 of the connect flags) must be 0 [MQTT-3.1.2-3]
    r = raw(b)
    r.send(connect_packet("rsv", flags=0x03))
    assert_refused(r, what="connect flags reserved bit")
    # CONNECT fixed-header flags must be 0
    r = raw(b)
    pk = bytearray(connect_packet("rsv2"))
    pk[0] |= 0x01
    r.send(bytes(pk))
    assert_refused(r, what="CONNECT fixed header flags")
    # will QoS 3
    r = raw(b)
    r.send(connect_packet("rsv3", flags=0x02 | 0x04 | 0x18, will=None) if False else
           packet(1, 0, mqtt_str("MQTT") + bytes([4, 0x02 | 0x04 | 0x18]) + struct.pack(">H", 60)
                  + mqtt_str("rsv3") + mqtt_str("w") + mqtt_str("p")))
    assert_refused(r, what="will QoS 3")
    # will flag 0 but will QoS/retain set [MQTT-3.1.2-13/15]
    r = raw(b)
    r.send(connect_packet("rsv4", flags=0x02 | 0x08))
    assert_refused(r, what="will QoS without will flag")
    # password without username (3.1.1 [MQTT-3.1.2-22])
    r = raw(b)
    r.send(packet(1, 0, mqtt_str("MQTT") + bytes([4, 0x02 | 0x40]) + struct.pack(">H", 60) + mqtt_str("rsv5")
                  + mqtt_str("pw")))
    assert_refused(r, what="password flag without username flag")
    # SUBSCRIBE fixed-header flags must be 0b0010
    r = connected_raw(b)
    r.send(subscribe_packet(1, [("a/b", 0)], flags=0))
    assert_closes_after_connect(r, what="SUBSCRIBE flags 0")
    # PUBREL flags must be 0b0010
    r = connected_raw(b)
    r.send(packet(6, 0, b"\x00\x01"))
    assert_closes_after_connect(r, what="PUBREL flags 0")
    # PINGREQ with flags [MQTT-2.2.2-2]; Mosquitto 2.0 ignores these flags and answers, so Aurora only
    if b.name == "aurora":
        r = connected_raw(b)
        r.send(b"\xc1\x00")
        assert_closes_after_connect(r, what="PINGREQ flags 1")
    healthy(b)


@both
def connect_lengths_inconsistent(b):
    cases = [
        packet(1, 0, mqtt_str("MQTT") + bytes([4, 2]) + struct.pack(">H", 60) + b"\x00\x20abc"),  # id overruns
        packet(1, 0, mqtt_str("MQTT") + bytes([4, 2])),                                         # truncated
        packet(1, 0, b"\x00\x04MQ"),                                                            # name overruns
        packet(1, 0, b""),                                                                      # empty
        packet(1, 0, mqtt_str("MQTT") + bytes([4, 0x82]) + struct.pack(">H", 60) + mqtt_str("u")),  # no username
    ]
    for pk in cases:
        r = raw(b)
        r.send(pk)
        assert_refused(r, what="CONNECT %r" % pk[:24])
    healthy(b)


@both
def client_id_long_and_odd(b):
    # A long id: accepted or refused with 0x02, never a crash.
    r = raw(b)
    r.send(connect_packet("x" * 65535))
    p = r.recv_packet(3)
    assert p is None or (p[0] == CONNACK and p[2][1] in (0, 2)), p
    r.close()
    # ids with bytes that are not valid UTF-8 (a protocol error: close, or 0x02)
    r = raw(b)
    r.send(packet(1, 0, mqtt_str("MQTT") + bytes([4, 2]) + struct.pack(">H", 60) + b"\x00\x03\xc3\x28\xff"))
    assert_refused(r, what="invalid UTF-8 client id")
    healthy(b)


# ---------------------------------------------------------------- PUBLISH / SUBSCRIBE problems
@both
def qos3_publish(b):
    r = connected_raw(b)
    r.send(publish_packet("q/3", b"x", flags=0x06, pid=1))
    assert_closes_after_connect(r, what="QoS 3 PUBLISH")
    healthy(b)


@both
def invalid_utf8_topic(b):
    s = client(b)
    s.subscribe("#", 0)
    for topic in (b"\xc3\x28", b"a/\xff/b", b"\xed\xa0\x80", b"a\x00b", b"\xf8\x88\x80\x80\x80"):
        r = connected_raw(b)
        r.send(packet(3, 0, struct.pack(">H", len(topic)) + topic + b"payload"))
        assert_closes_after_connect(r, what="topic %r" % topic)
    s.expect_none(0.3)
    healthy(b)


@both
def wildcard_in_publish_topic(b):
    s = client(b)
    s.subscribe("#", 0)
    for topic in ("a/+", "a/#", "#", "+", "a/b+", "a#"):
        r = connected_raw(b)
        r.send(publish_packet(topic, b"wild"))
        assert_closes_after_connect(r, what="publish topic %r" % topic)
    s.expect_none(0.3)
    healthy(b)


@both
def empty_publish_topic(b):
    r = connected_raw(b)
    r.send(publish_packet("", b"no topic"))
    assert_closes_after_connect(r, what="empty topic (3.1.1)")
    healthy(b)


@both
def publish_qos1_without_packet_id_body(b):
    r = connected_raw(b)
    r.send(packet(3, 0x02, mqtt_str("t")))                    # QoS 1 but no room for the packet id
    assert_closes_after_connect(r, what="QoS 1 PUBLISH without packet id")
    r = connected_raw(b)
    r.send(packet(3, 0x02, mqtt_str("t") + b"\x00\x00x"))     # packet id 0 is not allowed
    assert_closes_after_connect(r, what="QoS 1 PUBLISH with packet id 0")
    healthy(b)


@both
def subscribe_with_no_filters(b):
    r = connected_raw(b)
    r.send(subscribe_packet(5, []))
    assert_closes_after_connect(r, what="SUBSCRIBE with no filters")
    r = connected_raw(b)
    r.send(packet(10, 2, b"\x00\x05"))                          # UNSUBSCRIBE with no filters
    assert_closes_after_connect(r, what="UNSUBSCRIBE with no filters")
    healthy(b)


@both
def subscribe_bad_filters(b):
    # 3.1.1: the server either answers 0x80 for the filter or closes the connection. Both are fine; a success is not.
    for filt, opts in (("a/#/b", 0), ("a+/b", 0), ("a/b#", 0), ("", 0), ("ok/t", 3), ("ok/t", 0x40)):
        r = connected_raw(b)
        r.send(subscribe_packet(9, [(filt, opts)]))
        try:
            p = r.recv_packet(3)
        except TimeoutError:
            raise AssertionError("filter %r opts %d: no reply and no close" % (filt, opts)) from None
        if p is not None:
            assert p[0] == SUBACK and p[2][2:] == b"\x80", "filter %r opts %d: %r" % (filt, opts, p)
        r.close()
    healthy(b)


@both
def unknown_packet_types(b):
    for first in (b"\x00\x00", b"\xf0\x00"):       # type 0 reserved; 15 (AUTH) does not exist in 3.1.1
        r = connected_raw(b)
        r.send(first)
        assert_closes_after_connect(r, what="packet type %d" % (first[0] >> 4))
    healthy(b)


@both
def stray_acks_ignored_or_closed(b):
    # acknowledgements for packet ids never used: harmless (ignored) or a close, never a crash
    r = connected_raw(b)
    for pk in (b"\x40\x02\x12\x34", b"\x50\x02\x12\x34", b"\x62\x02\x12\x34", b"\x70\x02\x12\x34"):
        r.try_send(pk)
    r.try_send(pingreq_packet())
    try:
        p = r.recv_packet(2)
        while p is not None and p[0] != PINGRESP:
            p = r.recv_packet(2)
    except TimeoutError:
        raise AssertionError("no PINGRESP and no close after stray acks") from None
    healthy(b)


# ---------------------------------------------------------------- framing and size
@both
def oversized_remaining_length(b):
    for pk in (b"\x30\xff\xff\xff\xff\x7f", b"\x10\xff\xff\xff\xff\x01", b"\x30\x80\x80\x80\x80\x00"):
        r = raw(b)
        r.send(pk)
        assert_refused(r, what="5-byte remaining length before CONNECT %r" % pk)
        r = connected_raw(b)
        r.send(pk)
        assert_closes_after_connect(r, what="5-byte remaining length %r" % pk)
    healthy(b)


@both(mosquitto_config=MOSQ_LIMITS)
def packet_larger_than_max(b):
    # announce a 4 MiB PUBLISH (the limit is 1 MiB) and stream it; the broker must close, not buffer it all
    s = client(b)
    s.subscribe("big/#", 0)
    r = connected_raw(b)
    size = 4 * MAX_PACKET
    r.try_send(b"\x30" + varint(size) + mqtt_str("big/t"))
    chunk = b"z" * 65536
    sent = 0
    r.sock.settimeout(5)
    while sent < size:
        if not r.try_send(chunk):
            break
        sent += len(chunk)
    assert_closes_after_connect(r, timeout=5, what="oversized PUBLISH")
    s.expect_none(0.3)
    # and an oversized CONNECT
    r = raw(b)
    r.try_send(b"\x10" + varint(size))
    r.try_send(b"\x00" * 65536)
    assert_refused(r, timeout=5, what="oversized CONNECT")
    healthy(b)


@on_aurora
def truncated_or_silent_before_connect(b):
    # half a CONNECT then nothing, and a TCP connection that never sends a byte: the broker gives up on both
    # (connect timeout, Aurora's default 10 s).  Mosquitto 2.0 has no connect timeout, hence Aurora only.
    r1 = raw(b)
    pk = connect_packet("trunc")
    r1.send(pk[:len(pk) // 2])
    r2 = raw(b)
    t0 = time.monotonic()
    assert r1.closed(15), "half a CONNECT kept the connection open for 15 s"
    assert r2.closed(max(0.1, 15 - (time.monotonic() - t0))), "silent TCP connection kept open for 15 s"
    healthy(b)


@both
def truncated_packet_after_connect(b):
    # keep-alive 1 s, then half a PUBLISH and silence: keep-alive expiry closes it
    r = connected_raw(b, keepalive=1)
    pk = publish_packet("t/trunc", b"x" * 100)
    r.send(pk[:20])
    assert r.closed(9), "half a PUBLISH with keep-alive 1 s kept the connection open"
    healthy(b)


@both
def half_closed_socket(b):
    # the client shuts down its write side: the broker sees EOF and closes; a will is published (no DISCONNECT)
    s = client(b)
    s.subscribe("half/#", 0)
    r = raw(b)
    p = r.connect("half-closer", will=("half/will", b"eof", 0, False))
    assert parse_connack(p[2])[1] == 0
    r.sock.shutdown(socket.SHUT_WR)
    assert r.closed(5), "broker kept a half-closed connection"
    m = s.expect(5)
    assert m.payload == b"eof"
    # half-close before CONNECT
    r = raw(b)
    r.sock.shutdown(socket.SHUT_WR)
    assert r.closed(5)
    # reset (RST) right after CONNECT
    r = raw(b)
    r.send(connect_packet("resetter"))
    r.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    r.close()
    healthy(b)


# ---------------------------------------------------------------- volume of bad input
def _mutations(rng):
    valid = [connect_packet("fz"), connect_packet("fz", version=5, props=[(17, 10)]),
             connect_packet("fz") + subscribe_packet(1, [("a/+", 1)]) + publish_packet("a/b", b"x", qos=1, pid=2),
             connect_packet("fz", version=3) + publish_packet("a/b", b"y", qos=2, pid=3) + b"\x62\x02\x00\x03"]
    while True:
        base = bytearray(rng.choice(valid))
        kind = rng.randrange(4)
        if kind == 0:
            yield bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 64)))
        elif kind == 1:
            yield bytes(base) + bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 64)))
        elif kind == 2:
            for _ in range(rng.randrange(1, 4)):
                i = rng.randrange(len(base))
                base[i] ^= 1 << rng.randrange(8)
            yield bytes(base)
        else:
            yield bytes(base[:rng.randrange(1, len(base))])


@both
def random_garbage_connections(b):
    rng = random.Random(1234)
    gen = _mutations(rng)
    n = scale(10000)
    batch = 50
    done = 0
    t0 = time.monotonic()
    while done < n:
        socks = []
        for _ in range(min(batch, n - done)):
            s = socket.socket()
            try:
                s.connect((b.host, b.port))
                s.setblocking(False)
                try:
                    s.send(next(gen))
                except OSError:
                    pass
                socks.append(s)
            except OSError:
                s.close()
            done += 1
        for i, s in enumerate(socks):
            if i % 2:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))   # RST
            s.close()
        if done % 2000 < batch:
            assert b.alive(), "%s died after %d garbage connections" % (b.name, done)
    dt = time.monotonic() - t0
    assert b.alive(), "%s died" % b.name
    healthy(b)
    print("    %d garbage connections in %.1f s" % (n, dt))


def _rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


@both
def slow_reader(b):
    # A subscriber that never reads while a publisher floods it: the broker must stay responsive for other
    # clients and its memory must stay bounded (queues are bounded; the slow consumer is dropped or throttled).
    r = raw(b)
    r.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    r.connect("slowpoke")
    r.send(subscribe_packet(1, [("flood/t", 0), ("flood/q1", 1)]))
    r.expect_packet(SUBACK)
    rss0 = _rss_kb(b.proc.pid)
    payload = b"s" * 32768
    n = scale(6400)                          # 200 MiB at full scale
    pub = client(b, "flooder")
    worst = 0.0
    t0 = time.monotonic()
    for i in range(n):
        pub.publish("flood/t" if i % 4 else "flood/q1", payload, qos=0, wait=False)
        if i % 800 == 799:
            worst = max(worst, healthy(b, "during"))
            # let the publisher's own queue drain so we are measuring the broker, not paho
            deadline = time.monotonic() + 30
            while pub._c._out_packet and time.monotonic() < deadline:
                time.sleep(0.01)
    deadline = time.monotonic() + 30
    while pub._c._out_packet and time.monotonic() < deadline:
        time.sleep(0.01)
    worst = max(worst, healthy(b, "after"))
    rss1 = _rss_kb(b.proc.pid)
    sent_mb = n * len(payload) / (1 << 20)
    grow_mb = (rss1 - rss0) / 1024
    print("    %s: sent %.0f MiB to a non-reading subscriber in %.1f s, RSS %+.1f MiB, worst health check %.2f s"
          % (b.name, sent_mb, time.monotonic() - t0, grow_mb, worst))
    assert worst < 3.0, "other clients waited %.2f s while a slow reader was flooded" % worst
    if "san" not in os.environ.get("BUILD", "") and sent_mb >= 100:
        assert grow_mb < 64, "RSS grew by %.0f MiB while %.0f MiB were sent to a non-reader" % (grow_mb, sent_mb)
    r.close()


@both
def connection_flood_abandoned(b):
    # open 2,000 TCP connections without a byte, then a normal client must still get through; then abandon them
    n = scale(2000)
    socks = []
    for i in range(n):
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect((b.host, b.port))
        except BlockingIOError:
            pass
        except OSError:
            s.close()
            continue
        socks.append(s)
    # wait until they're all established (or refused)
    deadline = time.monotonic() + 15
    pending = {s.fileno(): s for s in socks}
    poller = select.poll()
    for fd in pending:
        poller.register(fd, select.POLLOUT)
    while pending and time.monotonic() < deadline:
        for fd, _ in poller.poll(500):
            poller.unregister(fd)
            pending.pop(fd, None)
    half = len(socks) // 2
    for s in socks[:half // 2]:                        # a quarter send half a CONNECT
        try:
            s.send(connect_packet("flood")[:7])
        except OSError:
            pass
    dt = raw_healthy(b, "flooded")
    assert dt < 5, "a normal client needed %.1f s with %d idle connections open" % (dt, len(socks))
    for i, s in enumerate(socks):
        if i % 2:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
    time.sleep(0.5)
    raw_healthy(b, "after-flood")


run_tests(globals())

"""mqtt5_util.py - a small, independent MQTT 5.0 (and 3.1.1) wire codec and raw-socket client for the
integration tests that need to see or send exact packets: reason codes on PUBACK/PUBREC, manual (withheld)
acknowledgements, packet-id reuse, malformed input, AUTH, topic aliases chosen by the test, and so on.

paho-mqtt 1.6.1 hides most of these (no manual acks, no PUBACK reason codes), so tests use Raw5 for them.

    c = Raw5(broker)                                  # TCP connect to broker.host:broker.port
    ack = c.connect("cid", props={P.SESSION_EXPIRY: 60})
    c.subscribe([("a/#", 1)], props={P.SUB_ID: 5})
    p = c.expect("PUBLISH"); c.puback(p.pid)
    c.closed(timeout) -> True when the server closed the socket

Everything is plain Python over the socket; no harness dependency except the broker's host and port.
"""
import socket
import struct
import time

# ---------------------------------------------------------------- packet types
CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT, AUTH = 8, 9, 10, 11, 12, 13, 14, 15
TYPE_NAMES = {1: "CONNECT", 2: "CONNACK", 3: "PUBLISH", 4: "PUBACK", 5: "PUBREC", 6: "PUBREL", 7: "PUBCOMP",
              8: "SUBSCRIBE", 9: "SUBACK", 10: "UNSUBSCRIBE", 11: "UNSUBACK", 12: "PINGREQ", 13: "PINGRESP",
              14: "DISCONNECT", 15: "AUTH"}


class P:
    """MQTT 5 property identifiers."""
    PAYLOAD_FORMAT = 0x01
    MESSAGE_EXPIRY = 0x02
    CONTENT_TYPE = 0x03
    RESPONSE_TOPIC = 0x08
    CORRELATION_DATA = 0x09
    SUB_ID = 0x0B
    SESSION_EXPIRY = 0x11
    ASSIGNED_CLIENT_ID = 0x12
    SERVER_KEEP_ALIVE = 0x13
    AUTH_METHOD = 0x15
    AUTH_DATA = 0x16
    REQUEST_PROBLEM_INFO = 0x17
    WILL_DELAY = 0x18
    REQUEST_RESPONSE_INFO = 0x19
    RESPONSE_INFO = 0x1A
    SERVER_REFERENCE = 0x1C
    REASON_STRING = 0x1F
    RECEIVE_MAX = 0x21
    TOPIC_ALIAS_MAX = 0x22
    TOPIC_ALIAS = 0x23
    MAX_QOS = 0x24
    RETAIN_AVAILABLE = 0x25
    USER_PROPERTY = 0x26
    MAX_PACKET_SIZE = 0x27
    WILDCARD_SUB_AVAILABLE = 0x28
    SUB_ID_AVAILABLE = 0x29
    SHARED_SUB_AVAILABLE = 0x2A


_BYTE, _U16, _U32, _VARINT, _STR, _BIN, _PAIR = range(7)
PROP_KINDS = {
    0x01: _BYTE, 0x02: _U32, 0x03: _STR, 0x08: _STR, 0x09: _BIN, 0x0B: _VARINT, 0x11: _U32, 0x12: _STR,
    0x13: _U16, 0x15: _STR, 0x16: _BIN, 0x17: _BYTE, 0x18: _U32, 0x19: _BYTE, 0x1A: _STR, 0x1C: _STR,
    0x1F: _STR, 0x21: _U16, 0x22: _U16, 0x23: _U16, 0x24: _BYTE, 0x25: _BYTE, 0x26: _PAIR, 0x27: _U32,
    0x28: _BYTE, 0x29: _BYTE, 0x2A: _BYTE,
}
# properties that may appear more than once: decoded as lists
MULTI = {P.USER_PROPERTY, P.SUB_ID}


# ---------------------------------------------------------------- encoding
def varint(n):
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def s16(s):
    if isinstance(s, str):
        s = s.encode()
    return struct.pack("!H", len(s)) + s


def encode_props(props):
    """props: dict id -> value, or list of (id, value) pairs (keeps order, allows repeats).
    USER_PROPERTY value may be a list of (k, v); SUB_ID a list of ints. None -> empty property block."""
    if props is None:
        return varint(0)
    items = list(props.items()) if isinstance(props, dict) else list(props)
    out = bytearray()
    for pid, val in items:
        kind = PROP_KINDS[pid]
        vals = val if (pid in MULTI and isinstance(val, list)) else [val]
        for v in vals:
            out += varint(pid)
            if kind == _BYTE:
                out += struct.pack("!B", v)
            elif kind == _U16:
                out += struct.pack("!H", v)
            elif kind == _U32:
                out += struct.pack("!I", v)
            elif kind == _VARINT:
                out += varint(v)
            elif kind == _STR or kind == _BIN:
                out += s16(v)
            elif kind == _PAIR:
                out += s16(v[0]) + s16(v[1])
    return varint(len(out)) + bytes(out)


def fixed(ptype, flags, body):
    return bytes([(ptype << 4) | flags]) + varint(len(body)) + body


def connect_packet(client_id="", clean=True, keepalive=60, props=None, will=None, username=None,
                   password=None, version=5):
    """will: dict(topic=, payload=, qos=0, retain=False, props=None)"""
    flags = 0
    if clean:
        flags |= 0x02
    if will:
        flags |= 0x04 | (will.get("qos", 0) << 3) | (0x20 if will.get("retain") else 0)
    if password is not None:
        flags |= 0x40
    if username is not None:
        flags |= 0x80
    name = b"MQTT" if version >= 4 else b"MQIsdp"
    body = s16(name) + bytes([version, flags]) + struct.pack("!H", keepalive)
    if version == 5:
        body += encode_props(props)
    body += s16(client_id)
    if will:
        if version == 5:
            body += encode_props(will.get("props"))
        body += s16(will["topic"]) + s16(will.get("payload", b""))
    if username is not None:
        body += s16(username)
    if password is not None:
        body += s16(password)
    return fixed(CONNECT, 0, body)


def publish_packet(topic, payload=b"", qos=0, pid=None, retain=False, dup=False, props=None, version=5):
    if isinstance(payload, str):
        payload = payload.encode()
    flags = (qos << 1) | (1 if retain else 0) | (8 if dup else 0)
    body = s16(topic)
    if qos:
        body += struct.pack("!H", pid)
    if version == 5:
        body += encode_props(props)
    return fixed(PUBLISH, flags, body + payload)


def ack_packet(ptype, pid, reason=None, props=None):
    """PUBACK/PUBREC/PUBREL/PUBCOMP. reason None -> short form (2 bytes)."""
    flags = 2 if ptype == PUBREL else 0
    body = struct.pack("!H", pid)
    if reason is not None or props:
        body += bytes([reason or 0])
        if props:
            body += encode_props(props)
    return fixed(ptype, flags, body)


def subscribe_packet(pid, subs, props=None, version=5):
    """subs: list of (filter, options_byte_or_qos)."""
    body = struct.pack("!H", pid)
    if version == 5:
        body += encode_props(props)
    for f, opt in subs:
        body += s16(f) + bytes([opt])
    return fixed(SUBSCRIBE, 2, body)


def sub_opts(qos=0, no_local=False, rap=False, rh=0):
    return qos | (4 if no_local else 0) | (8 if rap else 0) | (rh << 4)


def unsubscribe_packet(pid, filters, props=None, version=5):
    body = struct.pack("!H", pid)
    if version == 5:
        body += encode_props(props)
    for f in filters:
        body += s16(f)
    return fixed(UNSUBSCRIBE, 2, body)


def disconnect_packet(reason=0, props=None, version=5):
    if version != 5:
        return b"\xe0\x00"
    if reason == 0 and not props:
        return b"\xe0\x00"
    body = bytes([reason])
    if props:
        body += encode_props(props)
    return fixed(DISCONNECT, 0, body)


def auth_packet(reason=0x18, props=None):
    return fixed(AUTH, 0, bytes([reason]) + encode_props(props))


PINGREQ_PACKET = b"\xc0\x00"


# ---------------------------------------------------------------- decoding
class Malformed(Exception):
    pass


class _Rd:
    def __init__(self, b):
        self.b, self.i = b, 0

    def left(self):
        return len(self.b) - self.i

    def take(self, n):
        if self.i + n > len(self.b):
            raise Malformed("short packet")
        v = self.b[self.i:self.i + n]
        self.i += n
        return v

    def u8(self):
        return self.take(1)[0]

    def u16(self):
        return struct.unpack("!H", self.take(2))[0]

    def u32(self):
        return struct.unpack("!I", self.take(4))[0]

    def varint(self):
        mult, val = 1, 0
        for _ in range(4):
            b = self.u8()
            val += (b & 0x7F) * mult
            if not b & 0x80:
                return val
            mult *= 128
        raise Malformed("varint too long")

    def bin(self):
        return bytes(self.take(self.u16()))

    def str(self):
        return self.bin().decode("utf-8")

    def props(self):
        n = self.varint()
        end = self.i + n
        if end > len(self.b):
            raise Malformed("property length past end")
        out = {}
        order = []
        while self.i < end:
            pid = self.varint()
            kind = PROP_KINDS.get(pid)
            if kind is None:
                raise Malformed("unknown property 0x%02x" % pid)
            if kind == _BYTE:
                v = self.u8()
            elif kind == _U16:
                v = self.u16()
            elif kind == _U32:
                v = self.u32()
            elif kind == _VARINT:
                v = self.varint()
            elif kind == _STR:
                v = self.str()
            elif kind == _BIN:
                v = self.bin()
            else:
                v = (self.str(), self.str())
            order.append((pid, v))
            if pid in MULTI:
                out.setdefault(pid, []).append(v)
            else:
                if pid in out:
                    raise Malformed("duplicate property 0x%02x" % pid)
                out[pid] = v
        if self.i != end:
            raise Malformed("property block overrun")
        return out


class Packet:
    """A decoded server packet. Attributes depend on type: name, flags, raw (whole packet bytes), and
    CONNACK: session_present, reason, props | PUBLISH: topic, pid, qos, retain, dup, payload, props |
    PUBACK..PUBCOMP: pid, reason, props | SUBACK/UNSUBACK: pid, props, reasons | DISCONNECT/AUTH: reason, props."""

    def __init__(self, ptype, flags, body, version=5, raw=b""):
        self.type, self.flags, self.body, self.raw = ptype, flags, body, raw
        self.name = TYPE_NAMES.get(ptype, "?%d" % ptype)
        self.props = {}
        self.reason = 0
        self.pid = None
        r = _Rd(body)
        v5 = version == 5
        if ptype == CONNACK:
            self.session_present = bool(r.u8() & 1)
            self.reason = r.u8()
            if v5 and r.left():
                self.props = r.props()
        elif ptype == PUBLISH:
            self.qos = (flags >> 1) & 3
            self.retain = bool(flags & 1)
            self.dup = bool(flags & 8)
            self.topic = r.str()
            if self.qos:
                self.pid = r.u16()
            if v5:
                self.props = r.props()
            self.payload = bytes(r.take(r.left()))
        elif ptype in (PUBACK, PUBREC, PUBREL, PUBCOMP):
            self.pid = r.u16()
            if v5 and r.left():
                self.reason = r.u8()
                if r.left():
                    self.props = r.props()
        elif ptype in (SUBACK, UNSUBACK):
            self.pid = r.u16()
            if v5:
                self.props = r.props()
            self.reasons = list(r.take(r.left()))
        elif ptype in (DISCONNECT, AUTH):
            if r.left():
                self.reason = r.u8()
                if r.left():
                    self.props = r.props()

    @property
    def reason_string(self):
        return self.props.get(P.REASON_STRING)

    @property
    def user_props(self):
        return self.props.get(P.USER_PROPERTY, [])

    def __repr__(self):
        d = {k: v for k, v in self.__dict__.items() if k not in ("body", "raw", "type", "flags")}
        return "<%s %r>" % (self.name, d)


# ---------------------------------------------------------------- raw client
class Raw5:
    """A raw-socket MQTT client. Never acknowledges anything by itself."""

    def __init__(self, broker_or_host, port=None, version=5, timeout=5):
        if port is None:
            host, port = broker_or_host.host, broker_or_host.port
        else:
            host = broker_or_host
        self.version = version
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.eof = False
        self.next_pid = 1
        self.pending = []   # packets read while looking for another type

    # -- low level
    def send(self, data):
        self.sock.sendall(data)

    def _fill(self, deadline):
        remain = deadline - time.monotonic()
        if remain <= 0:
            return False
        self.sock.settimeout(remain)
        try:
            d = self.sock.recv(65536)
        except socket.timeout:
            return False
        except (ConnectionResetError, BrokenPipeError):
            d = b""
        if not d:
            self.eof = True
            return False
        self.buf += d
        return True

    def _split(self):
        """One whole packet from buf, or None."""
        if len(self.buf) < 2:
            return None
        mult, n, i = 1, 0, 1
        while True:
            if i >= len(self.buf):
                return None
            b = self.buf[i]
            n += (b & 0x7F) * mult
            mult *= 128
            i += 1
            if not b & 0x80:
                break
            if i > 4:
                raise Malformed("bad remaining length from server")
        if len(self.buf) < i + n:
            return None
        raw = self.buf[:i + n]
        self.buf = self.buf[i + n:]
        return Packet(raw[0] >> 4, raw[0] & 0x0F, raw[i:], self.version, raw)

    def recv_packet(self, timeout=3):
        """Next packet (queued ones first), or None on timeout / EOF."""
        if self.pending:
            return self.pending.pop(0)
        deadline = time.monotonic() + timeout
        while True:
            p = self._split()
            if p is not None:
                return p
            if self.eof or not self._fill(deadline):
                return None

    def expect(self, name, timeout=3):
        """Next packet of type `name`; other packets read meanwhile stay queued in order."""
        deadline = time.monotonic() + timeout
        for i, p in enumerate(self.pending):
            if p.name == name:
                return self.pending.pop(i)
        skipped = []
        try:
            while True:
                p = self._split()
                if p is None:
                    if self.eof or not self._fill(deadline):
                        raise AssertionError("expected %s, got nothing (eof=%s, other packets: %r)"
                                             % (name, self.eof, skipped))
                    continue
                if p.name == name:
                    return p
                skipped.append(p)
        finally:
            self.pending.extend(skipped)

    def expect_none(self, name="PUBLISH", timeout=1):
        """Assert no packet of type `name` arrives within timeout."""
        deadline = time.monotonic() + timeout
        for p in self.pending:
            assert p.name != name, "unexpected %r" % p
        while True:
            p = self._split()
            if p is None:
                if self.eof or not self._fill(deadline):
                    return
                continue
            assert p.name != name, "unexpected %r" % p
            self.pending.append(p)

    def drain(self, timeout=0.3):
        out = list(self.pending)
        self.pending = []
        while True:
            p = self.recv_packet(timeout)
            if p is None:
                return out
            out.append(p)

    def closed(self, timeout=3):
        """True when the server closes the connection within timeout (packets before EOF are queued)."""
        deadline = time.monotonic() + timeout
        while not self.eof:
            p = self._split()
            if p is not None:
                self.pending.append(p)
                continue
            if not self._fill(deadline):
                break
        while True:
            p = self._split()
            if p is None:
                break
            self.pending.append(p)
        return self.eof

    def disconnect_then_close(self, timeout=3):
        """Wait for the server to close; returns the DISCONNECT packet it sent first (or None)."""
        closed = self.closed(timeout)
        assert closed, "server did not close the connection within %ss" % timeout
        for p in self.pending:
            if p.name == "DISCONNECT":
                return p
        return None

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def pid(self):
        p = self.next_pid
        self.next_pid = self.next_pid % 65535 + 1
        return p

    # -- high level
    def connect(self, client_id="", clean=True, keepalive=60, props=None, will=None, username=None,
                password=None, expect_reason=0, timeout=3):
        self.send(connect_packet(client_id, clean, keepalive, props, will, username, password, self.version))
        ack = self.expect("CONNACK", timeout)
        if expect_reason is not None:
            assert ack.reason == expect_reason, "CONNACK reason 0x%02x, expected 0x%02x: %r" % (
                ack.reason, expect_reason, ack)
        return ack

    def subscribe(self, subs, props=None, timeout=3):
        """subs: list of (filter, options) or a single filter string (QoS 0). Returns SUBACK."""
        if isinstance(subs, str):
            subs = [(subs, 0)]
        pid = self.pid()
        self.send(subscribe_packet(pid, subs, props, self.version))
        ack = self.expect("SUBACK", timeout)
        assert ack.pid == pid, "SUBACK pid %s != %s" % (ack.pid, pid)
        return ack

    def unsubscribe(self, filters, props=None, timeout=3):
        if isinstance(filters, str):
            filters = [filters]
        pid = self.pid()
        self.send(unsubscribe_packet(pid, filters, props, self.version))
        ack = self.expect("UNSUBACK", timeout)
        assert ack.pid == pid
        return ack

    def publish(self, topic, payload=b"", qos=0, retain=False, props=None, pid=None, dup=False, wait=True,
                timeout=3):
        """QoS 0: returns None. QoS 1: returns the PUBACK (if wait). QoS 2: returns the PUBREC (if wait),
        then sends PUBREL and waits for PUBCOMP when the PUBREC reason is < 0x80."""
        if qos and pid is None:
            pid = self.pid()
        self.send(publish_packet(topic, payload, qos, pid, retain, dup, props, self.version))
        if not qos or not wait:
            return pid if qos else None
        if qos == 1:
            ack = self.expect("PUBACK", timeout)
            assert ack.pid == pid
            return ack
        rec = self.expect("PUBREC", timeout)
        assert rec.pid == pid
        if rec.reason < 0x80:
            self.send(ack_packet(PUBREL, pid))
            comp = self.expect("PUBCOMP", timeout)
            assert comp.pid == pid
        return rec

    def puback(self, pid, reason=None):
        self.send(ack_packet(PUBACK, pid, reason))

    def pubrec(self, pid, reason=None):
        self.send(ack_packet(PUBREC, pid, reason))

    def pubrel(self, pid, reason=None):
        self.send(ack_packet(PUBREL, pid, reason))

    def pubcomp(self, pid, reason=None):
        self.send(ack_packet(PUBCOMP, pid, reason))

    def ack(self, p):
        """Acknowledge an incoming PUBLISH completely (QoS 1: PUBACK; QoS 2: PUBREC, PUBREL<-, PUBCOMP)."""
        if p.qos == 1:
            self.puback(p.pid)
        elif p.qos == 2:
            self.pubrec(p.pid)
            rel = self.expect("PUBREL")
            assert rel.pid == p.pid
            self.pubcomp(p.pid)

    def ping(self, timeout=3):
        self.send(PINGREQ_PACKET)
        return self.expect("PINGRESP", timeout)

    def disconnect(self, reason=0, props=None):
        try:
            self.send(disconnect_packet(reason, props, self.version))
        except OSError:
            pass
        self.close()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


def raw5(broker, client_id="", clean=True, version=5, **kw):
    """A connected Raw5 (CONNACK reason 0 asserted)."""
    c = Raw5(broker, version=version)
    c.connack = c.connect(client_id, clean, **kw)
    return c


def wait_until(pred, timeout=3, step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()

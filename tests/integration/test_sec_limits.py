"""test_sec_limits.py - issue 8 items 6, 7 (operational endpoints, media) and 8 (target_appkey): what an
unauthenticated or hostile peer can make the gateway hold, and what it can learn about other apps.

Memory is measured as the RSS of the Aurora process (/proc/PID/status VmRSS) while the flood is held open; every
flood is bounded in bytes, connections and seconds. Each test prints its numbers (`info ...`) so the before/after
can be compared: `AURORA_BIN=/work/base/aurora /usr/bin/python3 tests/integration/test_sec_limits.py` runs the
same tests against another binary.

    /usr/bin/python3 tests/integration/test_sec_limits.py [-k substring]
"""
import http.client as httpc
import json
import os
import selectors
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (CONNACK, app_creds, client, connect_packet, on_aurora, publish_packet, raw,  # noqa: E402
                     run_tests, scale, wait_until, basic_auth, create_app, operator_token, rest_call)

MB = 1 << 20
# ASan keeps freed memory in quarantine and adds shadow memory: RSS bounds are checked on normal builds only
# (the functional checks, e.g. that receiving stopped at the input limit, hold under sanitizers too).
SAN = "san" in os.environ.get("BUILD", "") or "san" in os.environ.get("AURORA_BIN", "")


def info(fmt, *args):
    print("  info " + (fmt % args), flush=True)


def rss(b):
    """VmRSS of the broker process, bytes."""
    with open("/proc/%d/status" % b.proc.pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


basic = basic_auth
op_token = operator_token


def http(b, method, path, body=None, auth=None, headers=None, timeout=30):
    """-> (status, headers (lower-case names), body bytes)."""
    h = dict(headers or {})
    if auth:
        h["Authorization"] = auth
    c = httpc.HTTPConnection("127.0.0.1", b.http_port, timeout=timeout)
    try:
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def rest(b, method, path, body=None, creds=None):
    return rest_call(b, method, path, body, creds)


new_app = create_app


def register(b, creds, *names, password="secret-pw"):
    st, body = rest(b, "POST", "/v1/users/", [{"username": n, "password": password} for n in names], creds)
    assert st == 201 and all("error" not in x for x in body), (st, body)


def flood(socks, per_sock, seconds, chunk=64 << 10, on_tick=None):
    """Send up to per_sock bytes on every socket (non-blocking, all at once) for at most `seconds`; a socket the
    peer closed or reset is dropped. on_tick() runs between rounds. Returns (bytes sent in all, sockets closed)."""
    sel = selectors.DefaultSelector()
    left = {}
    for s in socks:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_WRITE)
        left[s] = per_sock
    data = b"\0" * chunk
    sent = closed = 0
    deadline = time.monotonic() + seconds
    while left and time.monotonic() < deadline:
        for key, _ in sel.select(0.05):
            s = key.fileobj
            try:
                n = s.send(data[:min(chunk, left[s])])
            except BlockingIOError:
                continue
            except OSError:
                n = -1
            if n < 0:
                closed += 1
            else:
                sent += n
                left[s] -= n
            if n < 0 or left[s] <= 0:
                sel.unregister(s)
                del left[s]
        if on_tick:
            on_tick()
    sel.close()
    return sent, closed


class Peak:
    """Highest RSS seen while sampled."""

    def __init__(self, b):
        self.b, self.base, self.peak = b, rss(b), rss(b)

    def __call__(self):
        self.peak = max(self.peak, rss(self.b))

    @property
    def growth(self):
        return self.peak - self.base


# ------------------------------------------------------------------------------------------------ item 6: memory

@on_aurora
def unauthenticated_http_bodies_do_not_grow_memory(b):
    """N connections announce a 9 MB body without credentials and send 1 MiB of it each: nothing of a large body
    is buffered before its head's credentials are checked (401 + close at once), so RSS stays flat."""
    n, per = scale(200), 1 * MB
    peak = Peak(b)
    socks = []
    for i in range(n):
        s = socket.create_connection(("127.0.0.1", b.http_port), timeout=5)
        s.sendall(b"POST /v1/users/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 9000000\r\n\r\n")
        socks.append(s)
    t0 = time.monotonic()
    sent, closed = flood(socks, per, 10.0, on_tick=peak)
    time.sleep(0.3)
    peak()
    info("%d unauthenticated connections, %.0f MiB sent in %.1f s (%d closed by the server): RSS %.0f -> peak %.0f "
         "MiB (+%.0f MiB)", n, sent / MB, time.monotonic() - t0, closed, peak.base / MB, peak.peak / MB,
         peak.growth / MB)
    for s in socks:
        s.close()
    assert SAN or peak.growth < 48 * MB, "RSS grew by %.0f MiB under %d unauthenticated bodies" % (peak.growth / MB, n)
    # the answer is the handler's own refusal, and the connection closes without reading the body
    s = socket.create_connection(("127.0.0.1", b.http_port), timeout=5)
    s.sendall(b"POST /v1/users/ HTTP/1.1\r\nHost: x\r\nContent-Length: 9000000\r\n\r\n")
    head = s.recv(65536)
    assert head.startswith(b"HTTP/1.1 401") and b"Connection: close" in head, head[:200]
    s.close()
    # a small body without credentials still gets the usual answer (nothing to gate)
    st, _, body = http(b, "POST", "/v1/users/", b"[]", headers={"Content-Type": "application/json"})
    assert st == 401 and json.loads(body)["error"]["code"] == 899007, (st, body)
    # with credentials a large body is read and handled as before (an upload of 2 MiB)
    bnd = "xXbOuNdArYxX"
    payload = os.urandom(2 * MB)
    mp = (("--%s\r\nContent-Disposition: form-data; name=\"filename\"; filename=\"a.bin\"\r\n"
           "Content-Type: application/octet-stream\r\n\r\n" % bnd).encode() + payload + ("\r\n--%s--\r\n" % bnd).encode())
    st, _, body = http(b, "POST", "/v1/resource?type=file", mp, auth=basic(app_creds(b)),
                       headers={"Content-Type": "multipart/form-data; boundary=" + bnd})
    assert st == 200 and json.loads(body)["fsize"] == len(payload), (st, body[:200])


@on_aurora
def input_held_while_a_login_is_verified_is_bounded(b):
    """A CONNECT whose password is being verified (a slow hash on a worker, queued behind a burst of other
    logins) followed by a flood of bytes: the connection stops being read past its input limit until the verdict
    comes, so RSS stays bounded; the login still succeeds and the queued bytes are then processed."""
    key, _ = app_creds(b)
    register(b, app_creds(b), "flooder", "guessed")
    # a burst of logins to keep the password workers busy (wrong passwords: refused after their hash)
    burst = []
    for i in range(scale(64)):
        r = raw(b, timeout=10)
        r.send(connect_packet("burst-%d" % i, 4, username="%s:guessed" % key, password=b"wrong-%d" % i))
        burst.append(r)
    n, per = 8, 40 * MB
    socks = []
    pub = publish_packet("flood/x", b"\0" * (60 << 10))  # valid QoS 0 PUBLISHes once the login is through
    for i in range(n):
        s = socket.create_connection(("127.0.0.1", b.port), timeout=10)
        s.sendall(connect_packet("flood-%d" % i, 4, username="%s:flooder" % key, password=b"secret-pw"))
        socks.append(s)
    peak = Peak(b)
    t0 = time.monotonic()
    sel = selectors.DefaultSelector()
    left = {}
    for s in socks:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_WRITE)
        left[s] = [per, pub]
    sent = 0
    while left and time.monotonic() - t0 < 6.0:
        for k, _ in sel.select(0.05):
            s = k.fileobj
            st = left[s]
            try:
                m = s.send(st[1])
            except BlockingIOError:
                continue
            except OSError:
                sel.unregister(s)
                del left[s]
                continue
            sent += m
            st[0] -= m
            st[1] = st[1][m:] or pub
            if st[0] <= 0:
                sel.unregister(s)
                del left[s]
        peak()
    sel.close()
    dt = time.monotonic() - t0
    time.sleep(0.3)
    peak()
    info("%d pending logins flooding: %.0f MiB sent in %.1f s; RSS %.0f -> peak %.0f MiB (+%.0f MiB)", n, sent / MB,
         dt, peak.base / MB, peak.peak / MB, peak.growth / MB)
    # every flooder is logged in in the end (its CONNACK is the first thing it reads)
    ok = 0
    for s in socks:
        s.setblocking(True)
        s.settimeout(20)
        try:
            head = s.recv(4)
            ok += head[:1] == b"\x20" and head[3:4] == b"\x00"
        except OSError:
            pass
        s.close()
    for r in burst:
        r.close()
    st, _, m = http(b, "GET", "/metrics", auth="Bearer " + op_token(b))
    stops = sum(int(l.split()[-1]) for l in m.decode().splitlines() if l.startswith("aurora_recv_input_full_total{"))
    info("receives stopped at the input limit: %d", stops)
    assert SAN or peak.growth < 96 * MB, "RSS grew by %.0f MiB while %d logins were pending" % (peak.growth / MB, n)
    assert ok == n, "%d of %d flooding logins got CONNACK 0" % (ok, n)
    assert stops >= 1, "the flood never reached the input limit: the logins were not pending"


@on_aurora
def large_unfinished_connects_are_budgeted(b):
    """N unauthenticated MQTT connections announce a 1 MiB CONNECT and send most of it: CONNECTs over 16 KiB are
    received only within mqtt_connect_budget (64 MiB, all connections), the others get CONNACK 0x89 (server busy)
    and are closed, so RSS stays bounded; once they are gone a large CONNECT is accepted again."""
    from mqtt5_util import P, Raw5
    n, total = scale(200), (1 << 20) - 16
    hdr = bytes([0x10, (total & 0x7f) | 0x80, ((total >> 7) & 0x7f) | 0x80, (total >> 14) & 0x7f])
    peak = Peak(b)
    socks = []
    for i in range(n):
        s = socket.create_connection(("127.0.0.1", b.port), timeout=5)
        s.sendall(hdr + b"\x00\x04MQTT\x05\x02\x00\x3c")
        socks.append(s)
    t0 = time.monotonic()
    sent, closed = flood(socks, total - 20, 5.0, on_tick=peak)
    dt = time.monotonic() - t0
    time.sleep(0.3)
    peak()
    busy = 0
    for s in socks:
        s.setblocking(True)
        s.settimeout(0.05)
        try:
            busy += s.recv(16).startswith(b"\x20\x03\x00\x89")
        except OSError:
            pass
    info("%d unfinished 1 MiB CONNECTs: %.0f MiB sent in %.1f s, %d answered 0x89 (server busy); RSS %.0f -> peak "
         "%.0f MiB (+%.0f MiB)", n, sent / MB, dt, busy, peak.base / MB, peak.peak / MB, peak.growth / MB)
    for s in socks:
        s.close()
    assert SAN or peak.growth < 112 * MB, "RSS grew by %.0f MiB under %d unfinished CONNECTs" % (peak.growth / MB, n)
    assert busy >= n - 70, "only %d of %d connections were refused" % (busy, n)
    # the budget is given back: a CONNECT over 16 KiB (a 60 KB will and a 30 KB user property) is accepted
    def big_connect():
        r = Raw5(b)
        try:
            r.connect("big-will", True, props={P.USER_PROPERTY: [("k", "v" * 30000)]},
                      will=dict(topic="w/x", payload=b"w" * 60000), timeout=5)
            return True
        except AssertionError:
            return False
        finally:
            r.close()
    assert wait_until(big_connect, timeout=10, interval=0.5)


@on_aurora
def input_held_while_a_rest_answer_is_pending_is_bounded(b):
    """A REST request whose answer takes a while (registering users hashes every password on a worker) followed
    by a flood of pipelined bytes on the same connection: the bytes wait unread (the socket stops being read past
    the connection's input limit) instead of piling up in memory; the answer still comes."""
    n, per = 4, 50 * MB
    socks = []
    for i in range(n):
        body = json.dumps([{"username": "u%d-%d" % (i, k), "password": "secret-pw"} for k in range(40)]).encode()
        s = socket.create_connection(("127.0.0.1", b.http_port), timeout=10)
        s.sendall(b"POST /v1/users/ HTTP/1.1\r\nHost: x\r\nAuthorization: " + basic(app_creds(b)).encode() +
                  b"\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        socks.append(s)
    peak = Peak(b)
    t0 = time.monotonic()
    sent, closed = flood(socks, per, 6.0, on_tick=peak)
    dt = time.monotonic() - t0
    time.sleep(0.3)
    peak()
    info("%d pending REST answers with pipelined floods: %.0f MiB sent in %.1f s; RSS %.0f -> peak %.0f MiB "
         "(+%.0f MiB)", n, sent / MB, dt, peak.base / MB, peak.peak / MB, peak.growth / MB)
    answered = 0
    for s in socks:
        s.setblocking(True)
        s.settimeout(30)
        try:
            answered += s.recv(64).startswith(b"HTTP/1.1 201")
        except OSError:
            pass
        s.close()
    st, _, m = http(b, "GET", "/metrics", auth="Bearer " + op_token(b))
    stops = sum(int(l.split()[-1]) for l in m.decode().splitlines() if l.startswith("aurora_recv_input_full_total{"))
    info("receives stopped at the input limit: %d", stops)
    assert SAN or peak.growth < 64 * MB, "RSS grew by %.0f MiB while %d REST answers were pending" % (peak.growth / MB, n)
    assert answered == n, "%d of %d registrations answered 201" % (answered, n)
    assert stops >= n, "receiving stopped %d times for %d flooding connections" % (stops, n)


@on_aurora
def slow_http_heads_and_bodies_are_closed(b):
    """Slowloris: connections sending one byte a second, of a head or of a (small, unauthenticated) body, are
    closed once http_header_timeout_ms / the body deadline (http_body_timeout_ms + bytes / http_body_min_rate)
    pass (10 s by default); with one byte a second the old idle timer never fired."""
    n = scale(150)
    heads, bodies = [], []
    for i in range(n):
        s = socket.create_connection(("127.0.0.1", b.http_port), timeout=5)
        s.sendall(b"G")
        heads.append(s)
        s = socket.create_connection(("127.0.0.1", b.http_port), timeout=5)
        s.sendall(b"POST /v1/users/ HTTP/1.1\r\nHost: x\r\nContent-Length: 10000\r\n\r\n[")
        bodies.append(s)
    head_text = b"ET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200
    t0 = time.monotonic()
    open_h, open_b = set(heads), set(bodies)
    closed_at = {}
    i = 0
    while time.monotonic() - t0 < 14.0 and (open_h or open_b):
        for s in list(open_h) + list(open_b):
            try:
                s.send(head_text[i % len(head_text):][:1] if s in open_h else b" ")
            except OSError:
                (open_h if s in open_h else open_b).discard(s)
                closed_at[s] = time.monotonic() - t0
        i += 1
        # a peer that closed shows up as EOF (or a 408) on read
        sel = selectors.DefaultSelector()
        for s in list(open_h) + list(open_b):
            sel.register(s, selectors.EVENT_READ)
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            for k, _ in sel.select(max(0.0, end - time.monotonic())):
                s = k.fileobj
                try:
                    d = s.recv(4096)
                except OSError:
                    d = b""
                if not d or d.startswith(b"HTTP/1.1 408"):
                    sel.unregister(s)
                    (open_h if s in open_h else open_b).discard(s)
                    closed_at[s] = time.monotonic() - t0
        sel.close()
    times = sorted(closed_at.values())
    info("%d slow heads and %d slow bodies at 1 byte/s: after %.1f s %d heads and %d bodies still open; closed "
         "between %.1f and %.1f s", n, n, time.monotonic() - t0, len(open_h), len(open_b),
         times[0] if times else -1, times[-1] if times else -1)
    for s in heads + bodies:
        s.close()
    assert not open_h and not open_b, "%d slow heads and %d slow bodies still open after 14 s" % (len(open_h),
                                                                                               len(open_b))
    assert times[0] >= 5.0, "closed too early (%.1f s): the deadline is 10 s" % times[0]
    # the server is fine
    assert http(b, "GET", "/healthz")[0] == 200


@on_aurora
def mqtt_connection_without_connect_is_closed(b):
    """An MQTT connection that never completes its CONNECT is closed after connect_timeout_ms (10 s)."""
    s = socket.create_connection(("127.0.0.1", b.port), timeout=15)
    s.sendall(b"\x10")  # the first byte of a CONNECT, then nothing
    t0 = time.monotonic()
    try:
        d = s.recv(16)
    except OSError:
        d = b""
    dt = time.monotonic() - t0
    s.close()
    info("silent MQTT connection closed after %.1f s", dt)
    assert d == b"" and 8.0 <= dt <= 13.0, (d, dt)


# ------------------------------------------------------------------------------------------- item 6: retained

def retained_publisher(b, cid):
    from mqtt5_util import Raw5
    r = Raw5(b)
    r.connect(cid, True)
    return r


@on_aurora
def retained_bytes_are_budgeted_per_app_and_after_restart(b):
    """Retained messages of one app have a byte budget (max_retained_bytes, 64 MiB by default): an MQTT 5
    publisher over it gets PUBACK 0x97 (quota exceeded) and the message is neither retained nor delivered; a
    3.1.1 publisher is disconnected (no acknowledgement: nothing acknowledged is dropped). The budget holds
    after a restart (every shard loads its replica) and when loading under a lower budget."""
    from mqtt5_util import publish_packet as pub5
    payload = b"r" * 1000000
    r = retained_publisher(b, "ret-pub")
    codes = []
    for i in range(80):
        r.send(pub5("ret/%03d" % i, payload, qos=1, pid=i + 1, retain=True))
        codes.append(r.expect("PUBACK", timeout=15).reason)
    accepted = [i for i, c in enumerate(codes) if c == 0]
    refused = [i for i, c in enumerate(codes) if c == 0x97]
    info("80 retained messages of 1 MB: %d accepted, %d refused 0x97, other codes %s; RSS %.0f MiB", len(accepted),
         len(refused), sorted(set(codes) - {0, 0x97}), rss(b) / MB)
    assert refused and len(accepted) + len(refused) == 80, codes
    assert 60 <= len(accepted) <= 67, len(accepted)
    # replacing one is fine (no growth); deleting frees its bytes, so one more fits afterwards
    r.send(pub5("ret/000", payload, qos=1, pid=200, retain=True))
    assert r.expect("PUBACK", timeout=15).reason == 0
    r.send(pub5("ret/000", b"", qos=1, pid=201, retain=True))
    assert r.expect("PUBACK", timeout=15).reason == 0
    r.send(pub5("ret/new", payload, qos=1, pid=202, retain=True))
    assert r.expect("PUBACK", timeout=15).reason == 0
    r.close()
    # 3.1.1: over the budget the publisher is disconnected, the message is not retained
    c = raw(b, timeout=10)
    assert c.connect("ret-311")[0] == CONNACK
    c.send(publish_packet("ret/over311", payload, qos=1, retain=True, pid=7))
    assert c.closed(10), "a 3.1.1 publisher over the retained budget must be disconnected"
    c.close()
    expect = {"ret/%03d" % i for i in accepted if i != 0} | {"ret/new"}

    def retained_topics():
        s = client(b, "ret-sub", version=5, timeout=15)
        s.subscribe("ret/#", qos=1)
        got = set()
        while True:
            try:
                got.add(s.expect(3).topic)
            except Exception:
                break
        s.disconnect()
        return got

    assert retained_topics() == expect
    b.restart()
    grown = rss(b)
    info("after a restart: RSS %.0f MiB with %d retained MB in the store (2 shards, one replica each)", grown / MB,
         len(expect))
    assert SAN or grown < 2 * 64 * MB + 128 * MB, grown
    assert retained_topics() == expect
    # a lower budget applies when loading: only what fits is loaded (in key order), the rest is skipped
    b.stop()
    b.config = (b.config or "") + "\nmax_retained_bytes = 16m\n"
    b.start()
    got = retained_topics()
    info("restart under max_retained_bytes = 16m: %d of %d retained messages loaded; RSS %.0f MiB", len(got),
         len(expect), rss(b) / MB)
    assert 1 <= len(got) <= 16 and got <= expect, got
    assert "retained" in b.log_text() and "budget" in b.log_text()


# ------------------------------------------------------------------------ item 7: operational endpoints, media

@on_aurora
def metrics_need_the_operator_token_and_healthz_is_minimal(b):
    st, _, body = http(b, "GET", "/metrics")
    info("GET /metrics without a token: %d %s", st, body[:60])
    assert st == 401, (st, body[:200])
    for auth in ("Bearer " + "0" * 64, basic(app_creds(b)), "Bearer " + op_token(b)[:-1]):
        assert http(b, "GET", "/metrics", auth=auth)[0] == 401, auth
    st, h, body = http(b, "GET", "/metrics", auth="Bearer " + op_token(b))
    assert st == 200 and b"aurora_connections{shard=\"0\"}" in body and h["content-type"].startswith("text/plain")
    st, h, body = http(b, "GET", "/healthz")
    info("GET /healthz: %d %s", st, body)
    assert st == 200 and json.loads(body) == {"status": "ok"}, body


def upload(b, creds, kind, data, ctype, fname="a.bin"):
    bnd = "bNdBnDbNd"
    mp = (("--%s\r\nContent-Disposition: form-data; name=\"filename\"; filename=\"%s\"\r\nContent-Type: %s\r\n\r\n"
           % (bnd, fname, ctype)).encode() + data + ("\r\n--%s--\r\n" % bnd).encode())
    st, _, body = http(b, "POST", "/v1/resource?type=" + kind, mp, auth=basic(creds),
                       headers={"Content-Type": "multipart/form-data; boundary=" + bnd})
    assert st == 200, (st, body)
    return json.loads(body)


def download(b, creds, media_id):
    st, _, body = http(b, "GET", "/v1/resource?mediaId=" + media_id, auth=basic(creds))
    assert st == 200, (st, body)
    url = json.loads(body)["url"]
    path = url.split("://", 1)[1]
    path = path[path.index("/"):]
    st, h, data = http(b, "GET", path)
    assert st == 200, (st, data[:200])
    return h, data


@on_aurora
def media_of_two_apps_are_kept_apart(b):
    """Two apps upload the same bytes with different Content-Types: each download serves its own app's upload
    (type and name), and the second upload is stored anew for its app, not deduplicated against the first."""
    a1 = app_creds(b)
    a2 = new_app(b, "second")
    data = os.urandom(300000)  # sniffs as nothing: the uploaded audio/* type is what a download serves
    m1 = upload(b, a1, "voice", data, "audio/mpeg", "one.mp3")
    m2 = upload(b, a2, "voice", data, "audio/ogg", "two.ogg")
    assert m1["media_id"] == m2["media_id"]  # ids are content addresses, the same on any Aurora
    h1, d1 = download(b, a1, m1["media_id"])
    h2, d2 = download(b, a2, m2["media_id"])
    info("same bytes, app 1 uploaded audio/mpeg, app 2 audio/ogg: app 1 served %s, app 2 served %s",
         h1["content-type"], h2["content-type"])
    assert d1 == data and d2 == data
    assert h1["content-type"] == "audio/mpeg" and h2["content-type"] == "audio/ogg", (h1, h2)
    # a file's name is its app's too
    f1 = upload(b, a1, "file", data, "application/pdf", "mine.pdf")
    f2 = upload(b, a2, "file", data, "application/pdf", "theirs.pdf")
    assert "mine.pdf" in download(b, a1, f1["media_id"])[0]["content-disposition"]
    assert "theirs.pdf" in download(b, a2, f2["media_id"])[0]["content-disposition"]
    # on disk: one copy per app (the second app's upload is written, not found in the first app's store)
    copies = []
    for root, _, files in os.walk(os.path.join(b.data_dir, "media")):
        copies += [os.path.join(root, f) for f in files if f == m1["hash"]]
    info("stored copies of the bytes: %s", [os.path.relpath(p, b.data_dir) for p in copies])
    assert len(copies) == 2, copies
    # an app that never uploaded the bytes cannot get a link for them
    a3 = new_app(b, "third")
    st, _, body = http(b, "GET", "/v1/resource?mediaId=" + m1["media_id"], auth=basic(a3))
    assert st == 404, (st, body)


# ------------------------------------------------------------------------------------- item 8: target_appkey

@on_aurora
def target_appkey_of_another_app_is_refused(b):
    a1 = app_creds(b)
    a2 = new_app(b, "other")
    st, body = rest(b, "POST", "/v1/admins/", {"username": "admin1", "password": "secret-pw"})
    assert st == 201, (st, body)
    register(b, a1, "alice")
    register(b, a2, "alice")
    msg = {"version": 1, "target_type": "single", "target_id": "alice", "from_type": "admin", "from_id": "admin1",
           "msg_type": "text", "msg_body": {"text": "hi"}}
    results = {}
    for name, extra in (("other app", {"target_appkey": a2[0]}), ("own app", {"target_appkey": a1[0]}),
                        ("from other app", {"from_appkey": a2[0]}), ("none", {})):
        m = dict(msg, **extra)
        results[name] = rest(b, "POST", "/v1/messages", m)
    info("POST /v1/messages: %s", {k: (v[0], (v[1] or {}).get("error", {}).get("code")) for k, v in results.items()})
    st, body = results["other app"]
    assert st == 403 and body["error"]["code"] == 899020, (st, body)
    st, body = results["from other app"]
    assert st == 403 and body["error"]["code"] == 899020, (st, body)
    assert results["own app"][0] == 201 and results["none"][0] == 201, results
    # a device naming another app is refused too (803006, not permitted)
    from mqtt5_util import Raw5, publish_packet as pub5, subscribe_packet as sub5, sub_opts
    r = Raw5(b)
    r.connect("al-raw", True, username="%s:alice" % a1[0], password=b"secret-pw")
    r.send(sub5(1, [("im/inbox", sub_opts(1))]))
    r.expect("SUBACK")
    dm = {"version": 1, "target_type": "single", "target_id": "alice", "msg_type": "text",
          "msg_body": {"text": "x"}, "target_appkey": a2[0]}
    r.send(pub5("im/send", json.dumps(dm).encode(), qos=1, pid=5))
    ack = r.expect("PUBACK")
    ev = {}
    for _ in range(5):  # the messages sent above to alice come first (offline replay)
        ev = json.loads(r.expect("PUBLISH").payload)
        if ev.get("event"):
            break
    info("device im/send with another app's target_appkey: PUBACK 0x%02x, %s", ack.reason, ev)
    assert ack.reason >= 0x80 and ev.get("event") == "send_error" and ev["code"] == 803006, (ack.reason, ev)


run_tests(globals())

"""test_diskfull.py - a full disk never costs an acknowledged write (issue 8 item 2).

Aurora's data directory is a small tmpfs (the test runs as root: `mount -t tmpfs`). REST registrations, IM sends
(REST and an MQTT 5 device's im/send), QoS 1/2 publishes to a persistent subscriber's queue and retained messages
are written before, during and after a full-disk episode (a file fills the tmpfs, deleting it gives the space
back). Every write that was acknowledged (HTTP 201, PUBACK/PUBREC 0x00) is recorded; the broker is restarted
(SIGTERM in one test, kill -9 in the other) and every acknowledged write must still be there: the users exist,
the IM history has the messages, the persistent subscriber receives its queued messages, the retained messages
are present.

Also checked: while the disk is full an MQTT 5 publisher gets negative PUBACK/PUBREC (0x80) and a 3.1.1 publisher
is disconnected (it has no negative PUBACK); once space is back the same MQTT 5 session and reconnected sessions
get PUBACKs again, and a QoS 2 packet id refused during the episode is accepted again.

A third test flips one byte in the middle of LevelDB's log of a stopped Aurora: it must refuse to start with a clear
message (not drop the damaged bytes silently), and `aurora-ctl store repair` must keep the intact records.

Before the fix (899750c) LevelDB's log kept a torn record after the failed write, later commits were acknowledged
after it and the next open dropped them ("checksum mismatch ... dropping N bytes"); publishes during the episode
got no answer at all and a publisher session never got a PUBACK again.
"""
import errno
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Aurora, _aurora_bin, app_creds, rest_call, run_tests, test  # noqa: E402
from mqtt5_util import Raw5, publish_packet, subscribe_packet, P  # noqa: E402

TMPFS_SIZE = "16m"
PUBREL_V5 = bytes([0x62, 0x02])


class TmpfsAurora(Aurora):
    """An Aurora whose data directory is a tmpfs of TMPFS_SIZE, mounted at the first start and unmounted at cleanup."""

    mounted = False

    def start(self):
        if not self.mounted:
            subprocess.run(["mount", "-t", "tmpfs", "-o", "size=" + TMPFS_SIZE + ",mode=0777", "tmpfs",
                            self.data_dir], check=True)
            self.mounted = True
        super().start()

    def cleanup(self):
        try:
            self.kill()
        finally:
            if self.mounted:
                subprocess.run(["umount", "-l", self.data_dir], check=False)
                self.mounted = False
            super().cleanup()


def fill(path):
    """Fill the filesystem of path with one file until ENOSPC; returns its size."""
    n = 0
    with open(path, "wb", buffering=0) as f:
        for chunk in (1 << 20, 1 << 14, 1 << 10, 64, 1):
            block = b"\0" * chunk
            while True:
                try:
                    w = f.write(block)
                except OSError as e:
                    assert e.errno == errno.ENOSPC, e
                    break
                n += w or 0
                if not w:
                    break
    return n


class Ledger:
    """Every write the broker acknowledged, and what the episode did."""

    def __init__(self):
        self.users = []            # registered (201)
        self.im = []               # IM texts acknowledged (REST 201 or PUBACK 0x00)
        self.queued = []           # payloads published to df/q and acknowledged (PUBACK/PUBCOMP flow)
        self.retained = {}         # topic -> payload acknowledged
        self.problems = []
        self.refused = {"rest": 0, "v5": 0, "im5": 0}

    def total(self):
        return len(self.users) + len(self.im) + len(self.queued) + len(self.retained)


def rest(b, method, path, body=None):
    return rest_call(b, method, path, body, timeout=10)


def register(b, led, name):
    """201 with an item without "error" = registered (JMessage answers 201 with per-item errors)."""
    st, body = rest(b, "POST", "/v1/users/", [{"username": name, "password": "secret-pw"}])
    if st == 201 and isinstance(body, list) and body and "error" in body[0]:
        return body[0]["error"].get("code")
    if st == 201:
        led.users.append(name)
    else:
        led.refused["rest"] += 1
    return st


def im_rest(b, led, text):
    st, body = rest(b, "POST", "/v1/messages", {"version": 1, "target_type": "single", "target_id": "dfbob",
                                                "from_type": "admin", "from_id": "dfadmin", "msg_type": "text",
                                                "msg_body": {"text": text}})
    if st == 201:
        led.im.append(text)
    else:
        led.refused["rest"] += 1
    return st


def im_text(text):
    return json.dumps({"version": 1, "target_type": "single", "target_id": "dfbob", "msg_type": "text",
                       "msg_body": {"text": text}}).encode()


def ack_of(r, pid, timeout):
    """The PUBACK/PUBREC for pid: (name, reason), or None when the connection closed or nothing came."""
    deadline = time.monotonic() + timeout
    while True:
        p = r.recv_packet(max(0.05, deadline - time.monotonic()))
        if p is None:
            return None
        if p.name in ("PUBACK", "PUBREC") and p.pid == pid:
            return p.name, p.reason
        if time.monotonic() >= deadline:
            return None


def pub1(r, led, topic, payload, pid, retain=False, timeout=3):
    """QoS 1 publish on raw client r; records it when acknowledged. Returns the reason, or None (no PUBACK)."""
    r.send(publish_packet(topic, payload, qos=1, pid=pid, retain=retain, version=r.version))
    a = ack_of(r, pid, timeout)
    if a is None:
        return None
    if a[1] < 0x80:
        if retain:
            led.retained[topic] = payload
        elif topic == "df/q":
            led.queued.append(payload)
        elif topic == "im/send":
            led.im.append(json.loads(payload)["msg_body"]["text"])
    return a[1]


class P5:
    """The MQTT 5 publisher: a persistent session (expiry 1 h), reconnected with Clean Start 0."""

    def __init__(self, b):
        self.b = b
        self.pid = 0
        self.connect(clean=True)

    def connect(self, clean):
        self.r = Raw5(self.b, version=5)
        self.r.connect("df-p5", clean, props={P.SESSION_EXPIRY: 3600})

    def next(self):
        self.pid = self.pid % 60000 + 1
        return self.pid


def episode(b, led, restart):
    """Writes before / during / after a full disk, then restart(b); returns the acknowledged writes lost (a list)."""
    key, _ = app_creds(b)
    st, body = rest(b, "POST", "/v1/admins/", {"username": "dfadmin", "password": "secret-pw"})
    assert st == 201, (st, body)
    for n in ("dfbob", "dfalice"):
        assert register(b, led, n) == 201
    sub = Raw5(b, version=4)                               # the persistent subscriber, offline during all this
    sub.connect("df-sub", False)
    sub.subscribe([("df/q", 1)])
    sub.close()
    dev = Raw5(b, version=5)                               # an IM device (MQTT 5)
    dev.connect("df-dev", True, username="%s:dfalice" % key, password=b"secret-pw", timeout=15)
    dev4 = Raw5(b, version=4)                              # an IM device (MQTT 3.1.1)
    dev4.connect("df-dev4", True, username="%s:dfalice" % key, password=b"secret-pw", timeout=15)
    s5 = Raw5(b, version=5)                                # a persistent MQTT 5 session that subscribes
    s5.connect("df-s5", True, props={P.SESSION_EXPIRY: 3600})
    p5 = P5(b)
    p4 = Raw5(b, version=4)
    p4.connect("df-p4", False)

    # -- before
    for i in range(5):
        register(b, led, "dfu-b%d" % i)
        im_rest(b, led, "rest before %d" % i)
        assert pub1(dev, led, "im/send", im_text("dev before %d" % i), i + 1) == 0
        assert pub1(p5.r, led, "df/q", b"p5 before %d" % i, p5.next()) == 0
        assert pub1(p4, led, "df/q", b"p4 before %d" % i, 100 + i) == 0
        assert pub1(p5.r, led, "df/r/b%d" % i, b"retained before %d" % i, p5.next(), retain=True) == 0
    assert led.total() == 2 + 5 * 6, led.total()

    # -- the disk fills up
    filler = os.path.join(b.data_dir, "filler.bin")
    size = fill(filler)
    print("  filled the tmpfs with %d bytes" % size)
    # Writes may still fit in the log's last page; keep publishing until one is refused (or gets no answer).
    first_refusal = None
    for i in range(400):
        rc = pub1(p5.r, led, "df/q", b"p5 filling %d" % i, p5.next(), timeout=3)
        if rc is None or rc >= 0x80:
            first_refusal = rc
            break
    if first_refusal is None:
        led.problems.append("MQTT 5 publish while the disk is full: no PUBACK at all (expected reason 0x80)")
    elif first_refusal != 0x80:
        led.problems.append("MQTT 5 publish while the disk is full: reason %r, expected 0x80" % first_refusal)
    # the disk is full from here on: every write must be refused
    led.refused["v5"] += first_refusal is not None
    for i in range(3):                                   # still full: every MQTT 5 publish is refused
        rc = pub1(p5.r, led, "df/q", b"p5 full %d" % i, p5.next())
        if rc != 0x80:
            led.problems.append("MQTT 5 QoS 1 publish %d during the full disk: reason %r, expected 0x80" % (i, rc))
    rc = pub1(p5.r, led, "df/r/full", b"retained during", p5.next(), retain=True)
    if rc != 0x80:
        led.problems.append("MQTT 5 retained publish during the full disk: reason %r, expected 0x80" % rc)
    p5.r.send(publish_packet("df/q", b"p5 qos2 full", qos=2, pid=7777, version=5))
    a = ack_of(p5.r, 7777, 3)
    if a != ("PUBREC", 0x80):
        led.problems.append("MQTT 5 QoS 2 publish during the full disk: %r, expected PUBREC 0x80" % (a,))
    rc = pub1(dev, led, "im/send", im_text("dev during"), 50)
    if rc is None or rc < 0x80:
        led.problems.append("IM im/send (MQTT 5) during the full disk: reason %r, expected a refusal" % rc)
    else:
        led.refused["im5"] += 1
    # 3.1.1 has no negative PUBACK: a clean close, no PUBACK
    p4.send(publish_packet("df/q", b"p4 during", qos=1, pid=200, version=4))
    a = ack_of(p4, 200, 3)
    if a is not None:
        led.problems.append("MQTT 3.1.1 publish during the full disk was acknowledged: %r" % (a,))
        if a[1] == 0:
            led.queued.append(b"p4 during")
    elif not p4.eof:
        led.problems.append("MQTT 3.1.1 publisher during the full disk: neither PUBACK nor a close")
    rc = pub1(dev4, led, "im/send", im_text("dev4 during"), 51)
    if rc is not None or not dev4.eof:
        led.problems.append("IM im/send (MQTT 3.1.1) during the full disk: %r, expected a close without PUBACK" % rc)
    # a persistent session's SUBSCRIBE cannot be stored: no SUBACK, DISCONNECT 0x80 and a close
    s5.send(subscribe_packet(9, [("df/s5", 1)], version=5))
    closed = s5.closed(3)
    disc = [p.reason for p in s5.pending if p.name == "DISCONNECT"]
    if [p for p in s5.pending if p.name == "SUBACK"] or not closed or disc != [0x80]:
        led.problems.append("MQTT 5 SUBSCRIBE of a persistent session during the full disk: %r, closed=%s, expected "
                            "DISCONNECT 0x80 and a close" % ([p.name for p in s5.pending], closed))
    for i in range(2):
        register(b, led, "dfu-d%d" % i)
        im_rest(b, led, "rest during %d" % i)
    retry_refused = register(b, led, "dfu-retry") != 201

    # -- space comes back
    os.unlink(filler)
    deadline = time.monotonic() + 15
    k = 0
    while time.monotonic() < deadline:                    # the first writes may still be refused while it reopens
        if register(b, led, "dfu-w%d" % k) == 201:
            break
        k += 1
        time.sleep(0.2)
    else:
        led.problems.append("REST writes never succeeded again after space returned")
    if retry_refused:   # a registration refused during the episode can be made again: nothing of it stayed behind
        rc = register(b, led, "dfu-retry")
        if rc != 201:
            led.problems.append("registering again a name whose registration failed during the episode: %r "
                                "(the directory kept what the disk did not)" % rc)
    for i in range(20):                                   # the same MQTT 5 session, same connection
        rc = pub1(p5.r, led, "df/q", b"p5 after %d" % i, p5.next())
        if rc != 0:
            led.problems.append("MQTT 5 same session after space returned: publish %d got %r" % (i, rc))
            break
    # the QoS 2 packet id refused during the episode is a new message now
    p5.r.send(publish_packet("df/q", b"p5 qos2 after", qos=2, pid=7777, version=5))
    a = ack_of(p5.r, 7777, 3)
    if a == ("PUBREC", 0):
        p5.r.send(PUBREL_V5 + (7777).to_bytes(2, "big"))
        c = p5.r.recv_packet(3)
        if c is not None and c.name == "PUBCOMP" and c.pid == 7777:
            led.queued.append(b"p5 qos2 after")
        else:
            led.problems.append("QoS 2 after space returned: no PUBCOMP (%r)" % (c,))
    else:
        led.problems.append("QoS 2 with the id refused during the episode: %r, expected PUBREC 0" % (a,))
    p5.r.close()
    p5.connect(clean=False)                               # a reconnected MQTT 5 session
    for i in range(20):
        rc = pub1(p5.r, led, "df/q", b"p5 reconnected %d" % i, p5.next())
        if rc != 0:
            led.problems.append("MQTT 5 reconnected session: publish %d got %r" % (i, rc))
            break
    p4.close()
    p4 = Raw5(b, version=4)                               # the 3.1.1 publisher comes back with its session
    p4.connect("df-p4", False)
    for i in range(20):
        rc = pub1(p4, led, "df/q", b"p4 reconnected %d" % i, 300 + i)
        if rc != 0:
            led.problems.append("MQTT 3.1.1 reconnected session: publish %d got %r" % (i, rc))
            break
    dev4.close()
    dev4 = Raw5(b, version=4)                              # the 3.1.1 IM device comes back
    dev4.connect("df-dev4", True, username="%s:dfalice" % key, password=b"secret-pw", timeout=15)
    rc = pub1(dev4, led, "im/send", im_text("dev4 after"), 52)
    if rc != 0:
        led.problems.append("IM im/send (MQTT 3.1.1) after space returned: %r" % rc)
    s5.close()
    s5 = Raw5(b, version=5)                                # the subscriber comes back and subscribes again
    s5.connect("df-s5", False, props={P.SESSION_EXPIRY: 3600})
    s5.send(subscribe_packet(10, [("df/s5", 1)], version=5))
    p = s5.recv_packet(3)
    if p is None or p.name != "SUBACK" or p.reasons != [1]:
        led.problems.append("MQTT 5 SUBSCRIBE after space returned: %r" % (p,))
    for i in range(5):
        register(b, led, "dfu-a%d" % i)
        im_rest(b, led, "rest after %d" % i)
        rc = pub1(dev, led, "im/send", im_text("dev after %d" % i), 60 + i)
        if rc != 0:
            led.problems.append("IM im/send after space returned: %r" % rc)
        pub1(p5.r, led, "df/r/a%d" % i, b"retained after %d" % i, p5.next(), retain=True)
    for c in (p5.r, p4, dev, dev4, s5):
        c.close()

    # -- restart and count what survived
    acked = led.total()
    restart(b)
    lost = []
    for u in led.users:
        st, body = rest(b, "GET", "/v1/users/%s" % u)
        if st != 200:
            lost.append("user %s (%s)" % (u, st))
    st, hist = rest(b, "GET", "/v2/users/dfbob/messages?count=1000&begin_time=%s&end_time=%s" % (
        time.strftime("%Y-%m-%d+%H:%M:%S", time.gmtime(time.time() - 600)),
        time.strftime("%Y-%m-%d+%H:%M:%S", time.gmtime(time.time() + 60))))
    stored = set()
    if st == 200:
        stored = {m.get("msg_body", {}).get("text") for m in hist["messages"]}
    lost += ["IM message %r" % t for t in led.im if t not in stored]
    sub = Raw5(b, version=4)
    sub.connect("df-sub", False)
    got = []
    while True:
        p = sub.recv_packet(2)
        if p is None:
            break
        if p.name == "PUBLISH":
            got.append(p.payload)
            if p.qos == 1:
                sub.send(bytes([0x40, 2]) + p.pid.to_bytes(2, "big"))
    sub.close()
    lost += ["queued %r" % q for q in led.queued if q not in set(got)]
    rs = Raw5(b, version=4)
    rs.connect("df-ret", True)
    rs.subscribe([("df/r/#", 1)])
    ret = {}
    while True:
        p = rs.recv_packet(1.5)
        if p is None:
            break
        if p.name == "PUBLISH" and p.retain:
            ret[p.topic] = p.payload
            if p.qos == 1:
                rs.send(bytes([0x40, 2]) + p.pid.to_bytes(2, "big"))
    rs.close()
    lost += ["retained %s" % t for t, v in led.retained.items() if ret.get(t) != v]
    log = b.log_text()
    print("  acknowledged %d writes (users %d, IM %d, queued %d, retained %d); refused %r; lost after restart %d"
          % (acked, len(led.users), len(led.im), len(led.queued), len(led.retained), led.refused, len(lost)))
    for line in log.splitlines():
        if ("store" in line or "directory" in line) and ("reopen" in line or "rolled" in line or "FATAL" in line):
            print("    log: " + line[:200])
    try:   # LevelDB's own log of the open after the restart: the replay must not have dropped anything
        with open(os.path.join(b.data_dir, "db", "LOG"), errors="replace") as f:
            dropped = [ln.strip() for ln in f if "dropping" in ln or "orruption" in ln]
    except OSError:
        dropped = []
    for ln in dropped[:3]:
        print("    db/LOG: " + ln[:200])
    if dropped:
        led.problems.append("the restart's log replay dropped data (db/LOG: %d line(s))" % len(dropped))
    return lost


def run(restart):
    b = TmpfsAurora()
    led = Ledger()
    lost = episode(b, led, restart)
    problems = list(led.problems)
    if lost:
        problems.insert(0, "%d of %d acknowledged writes lost after the restart: %s" % (
            len(lost), led.total(), ", ".join(lost[:8])))
    assert not problems, "\n    ".join(problems)
    b.stop()


def sigterm_restart(b):
    b.stop()
    b.start()


def kill9_restart(b):
    b.kill()
    b.start()


@test
def diskfull_episode_then_sigterm_keeps_every_acknowledged_write():
    run(sigterm_restart)


@test
def diskfull_episode_then_kill9_keeps_every_acknowledged_write():
    run(kill9_restart)


def aurora_ctl():
    return os.path.join(os.path.dirname(_aurora_bin()), "aurora-ctl")


@test
def damaged_log_refuses_to_start_then_repair_keeps_the_intact_records():
    """A log damaged in the middle (not the torn tail a crash or a full disk leaves): Aurora refuses to start with
    a clear message instead of silently dropping what follows; `aurora-ctl store repair` keeps the intact records."""
    b = Aurora()
    try:
        st, body = rest(b, "POST", "/v1/admins/", {"username": "dfadmin", "password": "secret-pw"})
        assert st == 201, (st, body)
        led = Ledger()
        assert register(b, led, "dfbob") == 201
        n = 40
        for i in range(n):   # one log record each, ~1 KB
            assert im_rest(b, led, "m%02d " % i + "x" * 1000) == 201
        b.stop()
        db = os.path.join(b.data_dir, "db")
        logs = sorted(f for f in os.listdir(db) if f.endswith(".log"))
        path = os.path.join(db, logs[-1])
        size = os.path.getsize(path)
        assert size > 40000, size
        with open(path, "r+b") as f:          # one flipped byte in the middle of the log
            f.seek(size // 2)
            c = f.read(1)
            f.seek(size // 2)
            f.write(bytes([c[0] ^ 0x5A]))
        try:
            b.start()
            started = True
        except Exception:
            started = False
        log = b.log_text()
        if started:
            st, hist = rest(b, "GET", "/v2/users/dfbob/messages?count=1000&begin_time=%s&end_time=%s" % (
                time.strftime("%Y-%m-%d+%H:%M:%S", time.gmtime(time.time() - 600)),
                time.strftime("%Y-%m-%d+%H:%M:%S", time.gmtime(time.time() + 60))))
            kept = len(hist["messages"]) if st == 200 else 0
            assert False, ("Aurora started on a damaged log: LevelDB dropped the damaged bytes silently (%d of %d "
                           "acknowledged messages left)" % (kept, n))
        assert "is damaged" in log and "store repair" in log, log[-800:]
        assert b.proc.returncode == 1, b.proc.returncode
        r = subprocess.run([aurora_ctl(), "--data", b.data_dir, "store", "repair"], capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
        b.start()
        st, hist = rest(b, "GET", "/v2/users/dfbob/messages?count=1000&begin_time=%s&end_time=%s" % (
            time.strftime("%Y-%m-%d+%H:%M:%S", time.gmtime(time.time() - 600)),
            time.strftime("%Y-%m-%d+%H:%M:%S", time.gmtime(time.time() + 60))))
        assert st == 200, (st, hist)
        kept = {m["msg_body"]["text"][:3] for m in hist["messages"]}
        print("  refused to start; after repair %d of %d messages kept" % (len(kept), n))
        assert "m00" in kept and "m%02d" % (n - 1) in kept, sorted(kept)   # before and after the damage
        assert len(kept) >= n - 4, sorted(kept)
        b.stop()
    finally:
        b.cleanup()


if __name__ == "__main__":
    run_tests(globals())

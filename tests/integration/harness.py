"""harness.py - integration-test harness for Aurora (Python 3.11 stdlib + paho-mqtt 1.6.1).

Run tests with /usr/bin/python3.  Every test file ends with `run_tests(globals())` and is runnable alone:
    /usr/bin/python3 tests/integration/test_x.py [-k substring] [-v]
Environment:
    BUILD=build|build-san   build directory holding the aurora binary (default build)
    AURORA_BIN=path         explicit broker binary (default <repo>/$BUILD/aurora)
    AURORA_ONLY=1           skip the [mosquitto] variants of @both tests
    MOSQUITTO_ONLY=1        skip everything that needs Aurora ([aurora] variants and @on_aurora tests)
    TEST_TIMEOUT=seconds    per-test watchdog (default 90)
    TEST_SCALE=float        multiplier for the size of heavy tests (default 1; CI's sanitizer pass lowers it)

Brokers
    free_port() -> int
    Aurora(extra_args=[], config="")     starts $AURORA_BIN --mqtt 127.0.0.1:P --http 127.0.0.1:Q --data <tmp>
                                         --shards 2 --log-level info [--config <tmpfile>]
    Mosquitto(extra_args=[], config="")  /usr/sbin/mosquitto -c <generated conf> (+ config text appended)
    both have: host, port, http_port, data_dir, log_path, name ("aurora"/"mosquitto"), proc,
               stop()  SIGTERM, wait, assert exit status 0 within 10 s (also fails if it had crashed before)
               kill()  SIGKILL;  restart() same ports and data dir;  log_text(); log_tail(n);  alive()
               usable as a context manager (`with Aurora() as b:`).
Clients
    client(broker, client_id=None, version=4|5|3, clean=True, username=None, password=None, will=None,
           keepalive=60, properties=None, check=True, timeout=5) -> TestClient (connected, paho loop thread)
        will = dict(topic=, payload=, qos=0, retain=False, properties=None) or (topic, payload[, qos[, retain]])
        properties = dict of MQTT 5 property names (paho spelling, e.g. {"SessionExpiryInterval": 60}) or a
        paho Properties.  check=True raises ConnectRefused (with .connack) if the CONNACK code is not 0.
    TestClient: client_id, version, connack (rc, reason_code, flags, session_present, properties dict),
        subscribe(filter or [(filter, qos)], qos=0, no_local=, retain_as_published=, retain_handling=,
                  subscription_id=, properties=) -> list of granted codes (ints)
        unsubscribe(filter or [filters], properties=) -> list of codes (v5) / [] (3.1.1)
        publish(topic, payload, qos=0, retain=False, properties=None, wait=True) -> paho MQTTMessageInfo
        expect(timeout=3) -> Message(topic, payload: bytes, qos, retain, properties: dict, dup, mid)
        expect_none(timeout=1); messages(n, timeout=5) -> [Message]; pending() -> [Message] (non-blocking)
        disconnect(reason=None, properties=None); drop() (close socket, no DISCONNECT: wills fire)
        wait_disconnected(timeout=3) -> bool; connected (bool); disconnect_rc (server DISCONNECT reason / rc)
Raw sockets
    raw(broker, timeout=3) -> RawClient: send(bytes), recv_packet(timeout=3) -> (type, flags, body) or None on
        close (raises TimeoutError when nothing arrives), closed(timeout=3) -> bool, close(),
        connect(client_id="raw", version=4, **connect_packet kwargs) -> (type, flags, body) of the reply
    builders: packet(type, flags, body), varint(n), mqtt_str(s), encode_props([(id, value)]|{id: value}),
        connect_packet(client_id, version=4, clean=True, keepalive=60, username=None, password=None,
                       will=None, props=None, proto_name=None, flags=None, will_props=None),
        publish_packet(topic, payload, qos=0, retain=False, dup=False, pid=None, version=4, props=None, flags=None),
        subscribe_packet(pid, [(filter, options_byte)], version=4, props=None, flags=2),
        unsubscribe_packet(pid, [filters], version=4, props=None), puback/pubrec/pubrel/pubcomp_packet(pid),
        pingreq_packet(), disconnect_packet(version=4, reason=0)
    parsers: parse_connack(body, version=4) -> (session_present, code), parse_publish(flags, body, version=4)
        -> dict(topic, payload, qos, retain, dup, pid), parse_suback(body, version=4) -> (pid, [codes])
    packet type constants CONNECT..AUTH.
REST helpers
    app_creds(b) -> (appkey, master_secret) of the default app; operator_token(b); basic_auth((key, secret))
    http_json(b, method, path, body=None, auth=None, timeout=30) -> (status, JSON | None | raw bytes)
    rest_call(b, method, path, body=None, creds=None, timeout=30)  http_json with Basic app credentials
    create_app(b, name) -> (appkey, master_secret) (operator API); http_ready(b)
Registration
    @test                     plain test, no broker argument (start your own brokers)
    @both / @both(aurora_args=[], aurora_config="", mosquitto_config="")
                              run once per broker: fn(broker) with a fresh started broker; names get [aurora] /
                              [mosquitto]; the broker is stopped afterwards and must exit with status 0
    @on_aurora / @on_aurora(aurora_args=[], aurora_config="")   Aurora only
    @on_mosquitto(...)        Mosquitto only (reference behaviour checks)
    run_tests(globals())      runs the file's tests in definition order, prints `ok name` / `FAIL name: reason`
                              (+ failing line and broker log tails), then `N passed, N failed`; exits 1 on failure.
    scale(n) -> int           n scaled by TEST_SCALE (at least 1)
    wait_until(pred, timeout=5, interval=0.02) -> bool
"""
import atexit
import base64
import ctypes
import json
import os
import queue
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.request
import uuid

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

try:  # brokers and tests open thousands of sockets: raise the soft descriptor limit to the hard one
    import resource
    _soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if _soft < _hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (_hard, _hard))
except (ImportError, ValueError, OSError):
    pass

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
MOSQUITTO_BIN = os.environ.get("MOSQUITTO_BIN", "/usr/sbin/mosquitto")


def _aurora_bin():
    if os.environ.get("AURORA_BIN"):
        return os.path.abspath(os.environ["AURORA_BIN"])
    return os.path.join(REPO, os.environ.get("BUILD", "build"), "aurora")


def scale(n):
    try:
        f = float(os.environ.get("TEST_SCALE", "1"))
    except ValueError:
        f = 1.0
    return max(1, int(n * f))


def wait_until(pred, timeout=5.0, interval=0.02):
    deadline = time.monotonic() + timeout
    while True:
        if pred():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def app_creds(b):
    """(appkey, master_secret) of the default app an Aurora wrote into its data directory."""
    with open(os.path.join(b.data_dir, "default-app.json")) as f:
        d = json.load(f)
    return d["appkey"], d["master_secret"]


def basic_auth(creds):
    """The Authorization value of HTTP Basic for (key, secret)."""
    return "Basic " + base64.b64encode(("%s:%s" % tuple(creds)).encode()).decode()


def operator_token(b):
    """The operator token an Aurora wrote into its data directory."""
    with open(os.path.join(b.data_dir, "operator.token")) as f:
        return f.read().strip()


def http_json(b, method, path, body=None, auth=None, timeout=30):
    """One request to b's HTTP port: body is sent as JSON (bytes as they are), auth is an Authorization value.
    Returns (status, the answer parsed as JSON, or None when empty, or the raw bytes when it is not JSON)."""
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (b.http_port, path), data=data, method=method)
    if auth:
        req.add_header("Authorization", auth)
    if data is not None:
        req.add_header("Content-Type", "application/json; charset=utf-8")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    try:
        return status, (json.loads(raw) if raw else None)
    except ValueError:
        return status, raw


def rest_call(b, method, path, body=None, creds=None, timeout=30):
    """http_json with the app's master secret (default: the default app's)."""
    return http_json(b, method, path, body, basic_auth(creds or app_creds(b)), timeout)


def create_app(b, name):
    """A new app through the operator API: (appkey, master_secret)."""
    st, a = http_json(b, "POST", "/ops/v1/apps", {"name": name}, "Bearer " + operator_token(b))
    assert st == 201, (st, a)
    return a["appkey"], a["master_secret"]


def http_ready(b, timeout=30):
    """Wait until b's HTTP listener answers GET /healthz (Aurora.start already waits for it; kept for callers
    that restart or reconfigure)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/healthz" % b.http_port, timeout=2) as r:
                if r.status == 200:
                    return
        except (OSError, urllib.error.URLError):
            pass
        assert time.monotonic() < deadline, "HTTP listener not ready"
        time.sleep(0.05)


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


# --------------------------------------------------------------------------------------------------------------
# Brokers
# --------------------------------------------------------------------------------------------------------------
_ACTIVE_BROKERS = []      # every broker started since the current test began (for log tails and cleanup)
_ACTIVE_CLIENTS = []
_libc = None


def _pdeathsig():
    # Make sure a broker dies with the test process (no orphans when a runner times out a file).
    global _libc
    try:
        if _libc is None:
            _libc = ctypes.CDLL("libc.so.6", use_errno=True)
        _libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


class BrokerError(AssertionError):
    pass


class Broker:
    name = "broker"

    def __init__(self, extra_args=None, config=""):
        self.extra_args = list(extra_args or [])
        self.config = config or ""
        self.host = "127.0.0.1"
        self.port = free_port()
        self.http_port = free_port()
        self.tmp = tempfile.mkdtemp(prefix="au-%s-" % self.name)
        os.chmod(self.tmp, 0o777)
        self.data_dir = os.path.join(self.tmp, "data")
        os.makedirs(self.data_dir)
        os.chmod(self.data_dir, 0o777)
        self.log_path = os.path.join(self.tmp, self.name + ".log")
        self.proc = None
        self._expected_exit = False
        self._log = None
        _ACTIVE_BROKERS.append(self)
        self.start()

    # subclasses: return argv
    def command(self):
        raise NotImplementedError

    def start(self):
        argv = self.command()
        if not os.path.exists(argv[0]):
            raise BrokerError("%s binary not found: %s" % (self.name, argv[0]))
        self._log = open(self.log_path, "ab")
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "abort_on_error=0:detect_leaks=1")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
                                     cwd=self.tmp, env=env, preexec_fn=_pdeathsig)
        self._expected_exit = False
        self._wait_ready(10.0)

    def _wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BrokerError("%s exited during startup with status %s; log tail:\n%s"
                                  % (self.name, self.proc.returncode, self.log_tail()))
            try:
                s = socket.create_connection((self.host, self.port), timeout=0.5)
                s.close()
                return
            except OSError:
                time.sleep(0.02)
        self.kill()
        raise BrokerError("%s did not accept MQTT connections on port %d within %.0f s; log tail:\n%s"
                          % (self.name, self.port, timeout, self.log_tail()))

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=10.0):
        """SIGTERM, wait, and assert the broker exits with status 0 (also catches an earlier crash)."""
        if self.proc is None:
            return
        if self._expected_exit and self.proc.poll() is not None:
            self._close_log()
            return
        if self.proc.poll() is not None:
            rc = self.proc.returncode
            self._expected_exit = True
            self._close_log()
            raise BrokerError("%s had exited unexpectedly with status %s" % (self.name, rc))
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            self._expected_exit = True
            self._close_log()
            raise BrokerError("%s did not exit within %.0f s of SIGTERM" % (self.name, timeout))
        self._expected_exit = True
        self._close_log()
        if rc != 0:
            raise BrokerError("%s exited with status %s after SIGTERM" % (self.name, rc))

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
            # A killed io_uring process's listening sockets can outlive it briefly (the ring's teardown runs
            # asynchronously); wait until the port is really free so a restart does not talk to them.
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    socket.create_connection((self.host, self.port), timeout=0.2).close()
                    time.sleep(0.05)
                except OSError:
                    break
        self._expected_exit = True
        self._close_log()

    def restart(self):
        if self.alive():
            self.stop()
        self.start()

    def _close_log(self):
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_tail(self, n=25):
        return "\n".join(self.log_text().splitlines()[-n:])

    def cleanup(self):
        try:
            self.kill()
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.stop()
        else:
            self.kill()
        return False

    def __repr__(self):
        return "<%s 127.0.0.1:%d>" % (self.name, self.port)


class Aurora(Broker):
    name = "aurora"

    def _wait_ready(self, timeout):
        # The MQTT port accepting is not enough: a previous instance's listening socket can linger for a
        # moment while the kernel tears its io_uring down. Ready = this process answers GET /healthz.
        super()._wait_ready(timeout)
        deadline = time.monotonic() + max(timeout, 20.0)
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BrokerError("aurora exited during startup with status %s; log tail:\n%s"
                                  % (self.proc.returncode, self.log_tail()))
            try:
                s = socket.create_connection((self.host, self.http_port), timeout=0.5)
                s.settimeout(0.5)
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if s.recv(64).startswith(b"HTTP/1.1 200"):
                    s.close()
                    # and the MQTT listener of this process (same start-up step): one more probe
                    socket.create_connection((self.host, self.port), timeout=0.5).close()
                    return
                s.close()
            except OSError:
                pass
            time.sleep(0.05)
        raise BrokerError("aurora did not answer /healthz within %.0f s; log tail:\n%s" % (timeout, self.log_tail()))

    def command(self):
        argv = [_aurora_bin(), "--mqtt", "%s:%d" % (self.host, self.port), "--http",
                "%s:%d" % (self.host, self.http_port), "--data", self.data_dir, "--shards", "2",
                "--log-level", "info"]
        if self.config:
            path = os.path.join(self.tmp, "aurora.conf")
            with open(path, "w") as f:
                f.write(self.config)
            argv += ["--config", path]
        return argv + self.extra_args


class Mosquitto(Broker):
    name = "mosquitto"

    def command(self):
        path = os.path.join(self.tmp, "mosquitto.conf")
        lines = [
            "listener %d %s" % (self.port, self.host),
            "allow_anonymous true",
            "persistence true",
            "persistence_location %s/" % self.data_dir,
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
        ]
        if os.geteuid() == 0:
            lines.append("user root")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n" + self.config + "\n")
        return [MOSQUITTO_BIN, "-c", path] + self.extra_args


def _cleanup_all():
    for c in list(_ACTIVE_CLIENTS):
        c._close_quietly()
    _ACTIVE_CLIENTS.clear()
    for b in list(_ACTIVE_BROKERS):
        b.cleanup()
    _ACTIVE_BROKERS.clear()


atexit.register(_cleanup_all)


# --------------------------------------------------------------------------------------------------------------
# paho client wrapper
# --------------------------------------------------------------------------------------------------------------
_PTYPES = {
    "connect": PacketTypes.CONNECT, "will": PacketTypes.WILLMESSAGE, "publish": PacketTypes.PUBLISH,
    "subscribe": PacketTypes.SUBSCRIBE, "unsubscribe": PacketTypes.UNSUBSCRIBE,
    "disconnect": PacketTypes.DISCONNECT,
}


def make_props(kind, d):
    """dict of paho property names -> paho Properties for packet kind ('connect', 'publish', ...)."""
    if d is None or isinstance(d, Properties):
        return d
    p = Properties(_PTYPES[kind])
    for k, v in d.items():
        setattr(p, k, v)
    return p


def props_dict(p):
    """paho Properties -> plain dict (CorrelationData stays bytes)."""
    if p is None:
        return {}
    out = {}
    for name in p.names.keys():
        cname = name.replace(" ", "")
        if hasattr(p, cname):
            out[cname] = getattr(p, cname)
    return out


def _code(rc):
    if hasattr(rc, "value"):
        return rc.value
    return int(rc)


class Message:
    __slots__ = ("topic", "payload", "qos", "retain", "properties", "dup", "mid")

    def __init__(self, topic, payload, qos, retain, properties=None, dup=False, mid=0):
        self.topic, self.payload, self.qos, self.retain = topic, payload, qos, retain
        self.properties = properties or {}
        self.dup, self.mid = dup, mid

    def key(self):
        return (self.topic, self.payload, self.qos, self.retain)

    def __repr__(self):
        p = self.payload if len(self.payload) <= 40 else self.payload[:40] + b"..."
        return "Message(%r, %r, qos=%d, retain=%s%s)" % (self.topic, p, self.qos, self.retain,
                                                         ", props=%r" % self.properties if self.properties else "")


class Connack:
    def __init__(self, rc, flags, properties):
        self.rc = rc
        self.reason_code = rc
        self.flags = flags
        self.session_present = bool(flags.get("session present", 0))
        self.properties = properties

    def __repr__(self):
        return "Connack(rc=%d, session_present=%s, props=%r)" % (self.rc, self.session_present, self.properties)


class ConnectRefused(AssertionError):
    def __init__(self, msg, connack=None):
        super().__init__(msg)
        self.connack = connack


class TestClient:
    __test__ = False

    def __init__(self, broker, client_id=None, version=4, clean=True, username=None, password=None, will=None,
                 keepalive=60, properties=None):
        self.broker = broker
        self.client_id = client_id if client_id is not None else "t-" + uuid.uuid4().hex[:12]
        self.version = version
        self.clean = clean
        self.connack = None
        self.connected = False
        self.disconnect_rc = None
        self.disconnect_properties = {}
        self.queue = queue.Queue()
        self._connack_ev = threading.Event()
        self._disc_ev = threading.Event()
        self._cond = threading.Condition()
        self._subacks = {}
        self._unsubacks = {}
        proto = {3: mqtt.MQTTv31, 4: mqtt.MQTTv311, 5: mqtt.MQTTv5}[version]
        if version == 5:
            c = mqtt.Client(client_id=self.client_id, protocol=proto, reconnect_on_failure=False)
        else:
            c = mqtt.Client(client_id=self.client_id, clean_session=clean, protocol=proto,
                            reconnect_on_failure=False)
        self._c = c
        c.max_queued_messages_set(0)
        c.max_inflight_messages_set(100)
        if username is not None:
            c.username_pw_set(username, password)
        if will is not None:
            if isinstance(will, dict):
                w = dict(will)
            else:
                w = dict(zip(("topic", "payload", "qos", "retain"), will))
            wp = w.pop("properties", None)
            c.will_set(w["topic"], w.get("payload"), w.get("qos", 0), w.get("retain", False),
                       properties=make_props("will", wp) if version == 5 else None)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        c.on_subscribe = self._on_subscribe
        c.on_unsubscribe = self._on_unsubscribe
        self._keepalive = keepalive
        self._conn_props = make_props("connect", properties) if version == 5 else None
        _ACTIVE_CLIENTS.append(self)

    # ---- callbacks (paho network thread) ----
    def _on_connect(self, c, userdata, flags, rc, properties=None):
        self.connack = Connack(_code(rc), dict(flags), props_dict(properties))
        self.connected = self.connack.rc == 0
        self._connack_ev.set()

    def _on_disconnect(self, c, userdata, rc, properties=None):
        self.disconnect_rc = _code(rc)
        self.disconnect_properties = props_dict(properties)
        self.connected = False
        c.disconnect()          # state -> disconnecting: the loop thread ends instead of reconnecting
        self._disc_ev.set()
        self._connack_ev.set()

    def _on_message(self, c, userdata, m):
        self.queue.put(Message(m.topic, bytes(m.payload), m.qos, bool(m.retain),
                               props_dict(getattr(m, "properties", None)) if self.version == 5 else {},
                               bool(m.dup), m.mid))

    def _on_subscribe(self, c, userdata, mid, granted, properties=None):
        with self._cond:
            self._subacks[mid] = [_code(g) for g in granted]
            self._cond.notify_all()

    def _on_unsubscribe(self, c, userdata, mid, properties=None, codes=None):
        with self._cond:
            if codes is None:
                self._unsubacks[mid] = []
            elif isinstance(codes, list):
                self._unsubacks[mid] = [_code(x) for x in codes]
            else:
                self._unsubacks[mid] = [_code(codes)]
            self._cond.notify_all()

    def _wait_ack(self, table, mid, what, timeout):
        with self._cond:
            ok = self._cond.wait_for(lambda: mid in table or self._disc_ev.is_set(), timeout)
            if mid in table:
                return table.pop(mid)
        if not ok:
            raise AssertionError("%s: no %s within %.1f s" % (self.client_id, what, timeout))
        raise AssertionError("%s: connection closed before %s (rc=%s)" % (self.client_id, what, self.disconnect_rc))

    # ---- connection ----
    def _connect(self, timeout):
        kw = {}
        if self.version == 5:
            kw["clean_start"] = bool(self.clean)
            kw["properties"] = self._conn_props
        self._c.connect(self.broker.host, self.broker.port, self._keepalive, **kw)
        self._c.loop_start()
        if not self._connack_ev.wait(timeout):
            raise AssertionError("%s: no CONNACK within %.1f s" % (self.client_id, timeout))
        return self.connack

    def subscribe(self, filt, qos=0, no_local=False, retain_as_published=False, retain_handling=0,
                  subscription_id=None, properties=None, timeout=5):
        props = properties
        if self.version == 5:
            if subscription_id is not None:
                props = dict(props or {})
                props["SubscriptionIdentifier"] = subscription_id
            props = make_props("subscribe", props)

            def opts(q):
                return SubscribeOptions(qos=q, noLocal=no_local, retainAsPublished=retain_as_published,
                                        retainHandling=retain_handling)
            if isinstance(filt, (list, tuple)):
                rc, mid = self._c.subscribe([(f, opts(q)) for f, q in filt], properties=props)
            else:
                rc, mid = self._c.subscribe(filt, options=opts(qos), properties=props)
        else:
            if isinstance(filt, (list, tuple)):
                rc, mid = self._c.subscribe(list(filt))
            else:
                rc, mid = self._c.subscribe(filt, qos)
        if rc != mqtt.MQTT_ERR_SUCCESS:
            raise AssertionError("%s: subscribe failed locally: %s" % (self.client_id, mqtt.error_string(rc)))
        return self._wait_ack(self._subacks, mid, "SUBACK", timeout)

    def unsubscribe(self, filt, properties=None, timeout=5):
        topics = list(filt) if isinstance(filt, (list, tuple)) else filt
        if self.version == 5:
            rc, mid = self._c.unsubscribe(topics, properties=make_props("unsubscribe", properties))
        else:
            rc, mid = self._c.unsubscribe(topics)
        if rc != mqtt.MQTT_ERR_SUCCESS:
            raise AssertionError("%s: unsubscribe failed locally: %s" % (self.client_id, mqtt.error_string(rc)))
        return self._wait_ack(self._unsubacks, mid, "UNSUBACK", timeout)

    def publish(self, topic, payload, qos=0, retain=False, properties=None, wait=True, timeout=5):
        if isinstance(payload, str):
            payload = payload.encode()
        kw = {}
        if self.version == 5 and properties is not None:
            kw["properties"] = make_props("publish", properties)
        info = self._c.publish(topic, payload, qos, retain, **kw)
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_AGAIN):
            raise AssertionError("%s: publish failed locally: %s" % (self.client_id, mqtt.error_string(info.rc)))
        if wait and qos > 0:
            deadline = time.monotonic() + timeout
            while not info.is_published():
                if time.monotonic() > deadline:
                    raise AssertionError("%s: QoS %d publish to %r not acknowledged within %.1f s"
                                         % (self.client_id, qos, topic, timeout))
                if self._disc_ev.is_set():
                    raise AssertionError("%s: connection closed before QoS %d publish to %r was acknowledged "
                                         "(rc=%s)" % (self.client_id, qos, topic, self.disconnect_rc))
                info.wait_for_publish(0.05)
        return info

    def expect(self, timeout=3):
        try:
            return self.queue.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("%s: no message within %.1f s" % (self.client_id, timeout)) from None

    def expect_none(self, timeout=1):
        try:
            m = self.queue.get(timeout=timeout)
        except queue.Empty:
            return
        raise AssertionError("%s: unexpected message %r" % (self.client_id, m))

    def messages(self, n, timeout=5):
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("%s: got %d of %d messages within %.1f s" % (self.client_id, len(out), n, timeout))
            try:
                out.append(self.queue.get(timeout=left))
            except queue.Empty:
                pass
        return out

    def pending(self):
        out = []
        while True:
            try:
                out.append(self.queue.get_nowait())
            except queue.Empty:
                return out

    def wait_disconnected(self, timeout=3):
        return self._disc_ev.wait(timeout)

    def disconnect(self, reason=None, properties=None, timeout=3):
        if self._disc_ev.is_set():
            self._c.loop_stop()
            return
        kw = {}
        if self.version == 5:
            if reason is not None:
                from paho.mqtt.reasoncodes import ReasonCodes
                rc = ReasonCodes(PacketTypes.DISCONNECT)
                rc.value = reason
                kw["reasoncode"] = rc
            if properties is not None:
                kw["properties"] = make_props("disconnect", properties)
        self._c.disconnect(**kw)
        self._disc_ev.wait(timeout)
        self._c.loop_stop()
        self.connected = False

    def drop(self, timeout=3):
        """Close the TCP connection without sending DISCONNECT (the broker must publish the will)."""
        s = self._c.socket()
        if s is not None:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._disc_ev.wait(timeout)
        self._c.loop_stop()
        self.connected = False

    def _close_quietly(self):
        try:
            self._c._thread_terminate = True
            s = self._c.socket()
            if s is not None and not self._disc_ev.is_set():
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            t = self._c._thread
            if t is not None and t is not threading.current_thread():
                t.join(2)
        except Exception:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.disconnect()
        return False

    def __repr__(self):
        return "<TestClient %s v%d>" % (self.client_id, self.version)


def client(broker, client_id=None, version=4, clean=True, username=None, password=None, will=None, keepalive=60,
           properties=None, check=True, timeout=5):
    c = TestClient(broker, client_id, version, clean, username, password, will, keepalive, properties)
    ca = c._connect(timeout)
    if check and (ca is None or ca.rc != 0):
        c._close_quietly()
        raise ConnectRefused("%s: connection refused: %r" % (c.client_id, ca), ca)
    return c


# --------------------------------------------------------------------------------------------------------------
# raw MQTT bytes
# --------------------------------------------------------------------------------------------------------------
CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, \
    PINGREQ, PINGRESP, DISCONNECT, AUTH = range(1, 16)


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def mqtt_str(s):
    if isinstance(s, str):
        s = s.encode()
    return struct.pack(">H", len(s)) + s


def packet(ptype, flags, body):
    return bytes([(ptype << 4) | (flags & 0x0F)]) + varint(len(body)) + body


# MQTT 5 property id -> wire type
_PROP_TYPES = {}
for _i in (1, 23, 25, 36, 37, 40, 41, 42):
    _PROP_TYPES[_i] = "byte"
for _i in (19, 33, 34, 35):
    _PROP_TYPES[_i] = "u16"
for _i in (2, 17, 24, 39):
    _PROP_TYPES[_i] = "u32"
_PROP_TYPES[11] = "varint"
for _i in (3, 8, 18, 21, 26, 28, 31):
    _PROP_TYPES[_i] = "str"
for _i in (9, 22):
    _PROP_TYPES[_i] = "bin"
_PROP_TYPES[38] = "pair"


def encode_props(props):
    """[(id, value), ...] or {id: value} -> properties block with its varint length prefix (MQTT 5)."""
    if props is None:
        return b"\x00"
    if isinstance(props, (bytes, bytearray)):
        return bytes(props)
    items = props.items() if isinstance(props, dict) else props
    out = bytearray()
    for pid, val in items:
        t = _PROP_TYPES.get(pid, "byte")
        out += varint(pid)
        if t == "byte":
            out.append(val)
        elif t == "u16":
            out += struct.pack(">H", val)
        elif t == "u32":
            out += struct.pack(">I", val)
        elif t == "varint":
            out += varint(val)
        elif t in ("str", "bin"):
            out += mqtt_str(val)
        else:
            out += mqtt_str(val[0]) + mqtt_str(val[1])
    return varint(len(out)) + bytes(out)


def connect_packet(client_id="raw", version=4, clean=True, keepalive=60, username=None, password=None, will=None,
                   props=None, proto_name=None, flags=None, will_props=None):
    """CONNECT. version 3 -> 'MQIsdp' level 3; 4 -> 'MQTT' level 4; 5 -> level 5 with properties.
    will = (topic, payload, qos, retain).  flags overrides the connect-flags byte entirely."""
    if proto_name is None:
        proto_name = "MQIsdp" if version == 3 else "MQTT"
    f = 0
    if clean:
        f |= 0x02
    if will is not None:
        wt, wp, wq, wr = (tuple(will) + (0, False))[:4]
        f |= 0x04 | (wq << 3) | (0x20 if wr else 0)
    if username is not None:
        f |= 0x80
    if password is not None:
        f |= 0x40
    if flags is not None:
        f = flags
    body = mqtt_str(proto_name) + bytes([version, f]) + struct.pack(">H", keepalive)
    if version == 5:
        body += encode_props(props)
    body += mqtt_str(client_id)
    if will is not None:
        if version == 5:
            body += encode_props(will_props)
        body += mqtt_str(wt) + mqtt_str(wp if isinstance(wp, bytes) else str(wp).encode())
    if username is not None:
        body += mqtt_str(username)
    if password is not None:
        body += mqtt_str(password)
    return packet(CONNECT, 0, body)


def publish_packet(topic, payload=b"", qos=0, retain=False, dup=False, pid=None, version=4, props=None, flags=None):
    if isinstance(payload, str):
        payload = payload.encode()
    f = (qos << 1) | (1 if retain else 0) | (8 if dup else 0)
    if flags is not None:
        f = flags
    body = mqtt_str(topic)
    if qos > 0 or (flags is not None and (flags >> 1) & 3):
        body += struct.pack(">H", pid if pid is not None else 1)
    if version == 5:
        body += encode_props(props)
    return packet(PUBLISH, f, body + payload)


def subscribe_packet(pid, filters, version=4, props=None, flags=2):
    """filters: [(filter, options_byte)] (options = QoS for 3.1.1); [] makes the no-filter protocol violation."""
    body = struct.pack(">H", pid)
    if version == 5:
        body += encode_props(props)
    for f, o in filters:
        body += mqtt_str(f) + bytes([o])
    return packet(SUBSCRIBE, flags, body)


def unsubscribe_packet(pid, filters, version=4, props=None):
    body = struct.pack(">H", pid)
    if version == 5:
        body += encode_props(props)
    for f in filters:
        body += mqtt_str(f)
    return packet(UNSUBSCRIBE, 2, body)


def puback_packet(pid):
    return packet(PUBACK, 0, struct.pack(">H", pid))


def pubrec_packet(pid):
    return packet(PUBREC, 0, struct.pack(">H", pid))


def pubrel_packet(pid):
    return packet(PUBREL, 2, struct.pack(">H", pid))


def pubcomp_packet(pid):
    return packet(PUBCOMP, 0, struct.pack(">H", pid))


def pingreq_packet():
    return b"\xc0\x00"


def disconnect_packet(version=4, reason=0):
    if version == 5 and reason:
        return packet(DISCONNECT, 0, bytes([reason]))
    return b"\xe0\x00"


def parse_connack(body, version=4):
    return bool(body[0] & 1), body[1]


def _read_varint(b, i):
    n, mul = 0, 1
    while True:
        c = b[i]
        i += 1
        n += (c & 0x7F) * mul
        if not c & 0x80:
            return n, i
        mul *= 128


def parse_publish(flags, body, version=4):
    tl = struct.unpack(">H", body[:2])[0]
    topic = body[2:2 + tl]
    i = 2 + tl
    qos = (flags >> 1) & 3
    pid = None
    if qos:
        pid = struct.unpack(">H", body[i:i + 2])[0]
        i += 2
    props = b""
    if version == 5:
        pl, j = _read_varint(body, i)
        props = body[j:j + pl]
        i = j + pl
    return dict(topic=topic.decode("utf-8", "replace"), payload=body[i:], qos=qos, retain=bool(flags & 1),
                dup=bool(flags & 8), pid=pid, props=props)


def parse_suback(body, version=4):
    pid = struct.unpack(">H", body[:2])[0]
    i = 2
    if version == 5:
        pl, i = _read_varint(body, i)
        i += pl
    return pid, list(body[i:])


class RawClient:
    def __init__(self, broker, timeout=3):
        self.broker = broker
        self.sock = socket.create_connection((broker.host, broker.port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.eof = False

    def send(self, data):
        self.sock.sendall(data)

    def try_send(self, data):
        """send that reports a reset/closed peer as False instead of raising."""
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            return False

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no data")
        self.sock.settimeout(left)
        try:
            d = self.sock.recv(65536)
        except socket.timeout:
            raise TimeoutError("no data") from None
        except (ConnectionResetError, BrokenPipeError):
            d = b""
        if not d:
            self.eof = True
            return False
        self.buf += d
        return True

    def recv_packet(self, timeout=3):
        """One full MQTT packet as (type, flags, body); None when the peer closed; TimeoutError if nothing came."""
        deadline = time.monotonic() + timeout
        while True:
            b = self.buf
            if len(b) >= 2:
                n, mul, i, ok = 0, 1, 1, False
                while i < len(b) and i <= 4:
                    c = b[i]
                    n += (c & 0x7F) * mul
                    mul *= 128
                    i += 1
                    if not c & 0x80:
                        ok = True
                        break
                if ok and len(b) >= i + n:
                    self.buf = b[i + n:]
                    return (b[0] >> 4, b[0] & 0x0F, b[i:i + n])
            if self.eof:
                return None
            if not self._fill(deadline):
                return None

    def expect_packet(self, ptype, timeout=3):
        p = self.recv_packet(timeout)
        assert p is not None, "connection closed while waiting for packet type %d" % ptype
        assert p[0] == ptype, "expected packet type %d, got %r" % (ptype, p)
        return p

    def closed(self, timeout=3):
        """True if the peer closes the connection within timeout (data received meanwhile is discarded)."""
        deadline = time.monotonic() + timeout
        self.buf = b""
        if self.eof:
            return True
        while True:
            try:
                if not self._fill(deadline):
                    return True
            except TimeoutError:
                return False
            self.buf = b""

    def connect(self, client_id="raw", version=4, timeout=3, **kw):
        self.send(connect_packet(client_id, version, **kw))
        return self.recv_packet(timeout)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()
        return False


def raw(broker, timeout=3):
    return RawClient(broker, timeout)


# --------------------------------------------------------------------------------------------------------------
# registration and runner
# --------------------------------------------------------------------------------------------------------------
def _register(fn, cases):
    fn.__dict__.setdefault("_au_cases", []).extend(cases)
    return fn


def test(fn):
    return _register(fn, [(fn.__name__, None, {})])


def _broker_decorator(classes):
    def deco(fn=None, **opts):
        def wrap(f):
            cases = []
            for cls in classes:
                if cls is Aurora:
                    o = dict(extra_args=opts.get("aurora_args", []), config=opts.get("aurora_config", ""))
                else:
                    o = dict(extra_args=opts.get("mosquitto_args", []), config=opts.get("mosquitto_config", ""))
                cases.append(("%s[%s]" % (f.__name__, cls.name), cls, o))
            return _register(f, cases)
        if fn is not None and callable(fn):
            return wrap(fn)
        return wrap
    return deco


both = _broker_decorator([Aurora, Mosquitto])
on_aurora = _broker_decorator([Aurora])
on_mosquitto = _broker_decorator([Mosquitto])


class TestTimeout(BaseException):
    pass


def _alarm(signum, frame):
    raise TestTimeout("test exceeded TEST_TIMEOUT")


def _where(tb_exc):
    """The innermost frame in a test_*.py file: 'file:line: code'."""
    frames = traceback.extract_tb(tb_exc)
    for fr in reversed(frames):
        if os.path.basename(fr.filename).startswith("test_"):
            return "%s:%d: %s" % (os.path.basename(fr.filename), fr.lineno, (fr.line or "").strip())
    if frames:
        fr = frames[-1]
        return "%s:%d: %s" % (os.path.basename(fr.filename), fr.lineno, (fr.line or "").strip())
    return ""


def run_tests(module_globals):
    args = sys.argv[1:]
    subs = []
    verbose = False
    i = 0
    while i < len(args):
        if args[i] == "-k" and i + 1 < len(args):
            subs.append(args[i + 1])
            i += 2
            continue
        if args[i] == "-v":
            verbose = True
        elif not args[i].startswith("-"):
            subs.append(args[i])
        i += 1
    aurora_only = os.environ.get("AURORA_ONLY") == "1"
    mosq_only = os.environ.get("MOSQUITTO_ONLY") == "1"
    timeout = float(os.environ.get("TEST_TIMEOUT", "90"))
    cases = []
    seen = set()
    for obj in list(module_globals.values()):
        if callable(obj) and hasattr(obj, "_au_cases") and id(obj) not in seen:
            seen.add(id(obj))
            for name, cls, opts in obj._au_cases:
                cases.append((name, obj, cls, opts))
    passed = failed = 0
    signal.signal(signal.SIGALRM, _alarm)
    for name, fn, cls, opts in cases:
        if subs and not any(s in name for s in subs):
            continue
        if aurora_only and cls is Mosquitto:
            continue
        if mosq_only and (cls is Aurora or (cls is None and getattr(fn, "_needs_aurora", True)
                                             and "mosquitto" not in name)):
            continue
        t0 = time.monotonic()
        err = None
        signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            if cls is None:
                fn()
            else:
                b = cls(**opts)
                try:
                    fn(b)
                except BaseException:
                    b.kill()
                    raise
                for c in list(_ACTIVE_CLIENTS):
                    c._close_quietly()
                b.stop()
        except (Exception, TestTimeout) as e:
            err = e
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        dt = time.monotonic() - t0
        if err is None:
            passed += 1
            print("ok %s%s" % (name, "  (%.2fs)" % dt if verbose else ""), flush=True)
        else:
            failed += 1
            msg = "%s: %s" % (type(err).__name__, str(err).splitlines()[0] if str(err) else "")
            print("FAIL %s: %s" % (name, msg), flush=True)
            where = _where(err.__traceback__)
            if where:
                print("    at " + where)
            rest = str(err).splitlines()[1:]
            for line in rest[:30]:
                print("    | " + line)
            for b in _ACTIVE_BROKERS:
                tail = b.log_tail(15)
                if tail:
                    print("    --- %s log tail (%s) ---" % (b.name, "alive" if b.alive() else
                                                            "exit %s" % (b.proc.returncode if b.proc else "?")))
                    for line in tail.splitlines():
                        print("    " + line)
            sys.stdout.flush()
        _cleanup_all()
    print("%d passed, %d failed" % (passed, failed), flush=True)
    sys.exit(1 if failed else 0)


def needs_no_aurora(fn):
    """Mark a plain @test as not needing Aurora (so MOSQUITTO_ONLY=1 still runs it)."""
    fn._needs_aurora = False
    return fn


def rand_bytes(n, rng=random):
    return bytes(rng.getrandbits(8) for _ in range(n))

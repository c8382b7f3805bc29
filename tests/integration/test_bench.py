"""test_bench.py - aurora-bench (perf/bench) run briefly against a real Mosquitto.

Each case runs the load generator for about 2 s with a few hundred connections and checks its JSON summary:
every connection set up, no errors, and for QoS 1/2 every expected delivery received and every publish
acknowledged. Also: the loopback-only guard and a clean stop on SIGINT.

    /usr/bin/python3 tests/integration/test_bench.py [-k substring]
Environment: BUILD (default build) selects $BUILD/aurora-bench; BENCH_BIN overrides the path.
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import REPO, Aurora, Mosquitto, client, run_tests, scale, test  # noqa: E402

BENCH = os.environ.get("BENCH_BIN") or os.path.join(REPO, os.environ.get("BUILD", "build"), "aurora-bench")
MOSQ_CONF = "max_connections -1\n"


def bench(broker, *args, timeout=60, expect_rc=0):
    """Run aurora-bench against broker; returns (summary dict from the JSON: line, full stdout)."""
    assert os.path.exists(BENCH), "aurora-bench not built: %s" % BENCH
    with tempfile.NamedTemporaryFile(prefix="bench-", suffix=".json", delete=False) as f:
        jpath = f.name
    try:
        argv = [BENCH, "--host", broker.host, "--port", str(broker.port), "--quiet", "--json", jpath] + list(args)
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=timeout)
        out = p.stdout.decode(errors="replace")
        assert p.returncode == expect_rc, "exit %d (want %d):\n%s" % (p.returncode, expect_rc, out[-3000:])
        last = out.strip().splitlines()[-1]
        assert last.startswith("JSON: "), "last line is not the JSON summary: %r" % last
        summary = json.loads(last[len("JSON: "):])
        with open(jpath) as f:
            assert json.load(f) == summary, "--json file differs from the JSON: line"
        return summary, out
    finally:
        os.unlink(jpath)


def check_common(s, out, connections):
    assert s["errors"] == 0, "errors %s\n%s" % (s["errors_by_kind"], out[-2000:])
    assert s["connections"] == connections and s["connected"] == connections, out[-2000:]
    assert s["failed"] == 0 and s["lost"] == 0, out[-2000:]
    assert not s["interrupted"]
    assert 1.5 <= s["duration"] <= 4.0, s["duration"]


def check_pubsub(s, out, subs, qos):
    assert s["sent"] > 0 and s["received"] > 0, out[-2000:]
    assert s["msgs_per_s_out"] > 0 and s["msgs_per_s_in"] > 0
    lat = s["latency_us"]
    assert lat["samples"] == s["received"], (lat, s["received"])
    assert 0 < lat["p50"] <= lat["p99"] <= lat["p999"] <= lat["max"], lat
    assert lat["max"] < 60e6, lat
    if qos == 0:   # QoS 0 may be dropped by a broker; Mosquitto keeps up within the bench's window
        assert s["expected"] == s["sent"] * subs
        assert 0.9 * s["expected"] <= s["received"] <= s["expected"], (s["received"], s["expected"])
    else:
        assert s["expected"] == s["sent"] * subs, (s["expected"], s["sent"], subs)
        assert s["received"] == s["expected"], (s["received"], s["expected"])
        assert s["acked"] == s["sent"], (s["acked"], s["sent"])


def fanout(qos, version=4):
    subs = scale(300)
    with Mosquitto(config=MOSQ_CONF) as b:
        s, out = bench(b, "--scenario", "fanout", "--subscribers", str(subs), "--qos", str(qos),
                       "--version", str(version), "--duration", "2")
        check_common(s, out, subs + 1)
        check_pubsub(s, out, subs, qos)
        assert s["scenario"] == "fanout" and s["qos"] == qos


@test
def fanout_qos0():
    fanout(0)


@test
def fanout_qos1():
    fanout(1)


@test
def fanout_qos1_mqtt5_rate():
    subs = scale(200)
    with Mosquitto(config=MOSQ_CONF) as b:
        s, out = bench(b, "--scenario", "fanout", "--subscribers", str(subs), "--qos", "1", "--version", "5",
                       "--rate", "50", "--duration", "2")
        check_common(s, out, subs + 1)
        check_pubsub(s, out, subs, 1)
        assert 70 <= s["sent"] <= 130, s["sent"]          # 50 msgs/s for ~2 s


@test
def p2p_qos2():
    pubs = scale(50)
    with Mosquitto(config=MOSQ_CONF) as b:
        s, out = bench(b, "--scenario", "p2p", "--publishers", str(pubs), "--qos", "2", "--duration", "2",
                       "--window", "16")
        check_common(s, out, 2 * pubs)
        check_pubsub(s, out, 1, 2)


@test
def durable_sessions_on_aurora():
    # --clean 0 (3.1.1) / --session-expiry (5): the subscribers' sessions are persistent, so Aurora stores every
    # message before its PUBACK; everything is still delivered and acknowledged, and the sessions outlive the run
    # (also a SIGKILL: they were stored).
    pubs = scale(20)
    with Aurora() as b:
        s, out = bench(b, "--scenario", "p2p", "--publishers", str(pubs), "--qos", "1", "--duration", "2",
                       "--clean", "0", "--client-prefix", "durb")
        check_common(s, out, 2 * pubs)
        check_pubsub(s, out, 1, 1)
        assert s["durable"] is True and s["clean"] is False, s
        assert "persistent sessions" in out
        subs = scale(30)
        s, out = bench(b, "--scenario", "fanout", "--subscribers", str(subs), "--qos", "1", "--version", "5",
                       "--session-expiry", "600", "--duration", "2", "--client-prefix", "durf")
        check_common(s, out, subs + 1)
        check_pubsub(s, out, subs, 1)
        assert s["durable"] is True and s["session_expiry"] == 600, s
        b.kill()
        b.restart()
        present = 0
        for i in range(2 * pubs):              # publishers are clean: only the subscribers' sessions remain
            c = client(b, client_id="durb-%d" % i, version=4, clean=False)
            present += bool(c.connack.session_present)
            c.disconnect()
        assert present == pubs, (present, pubs)


@test
def durable_sessions_on_mosquitto_and_refusals():
    pubs = scale(20)
    with Mosquitto(config=MOSQ_CONF) as b:
        s, out = bench(b, "--scenario", "p2p", "--publishers", str(pubs), "--qos", "1", "--duration", "2",
                       "--clean", "0")
        check_common(s, out, 2 * pubs)
        check_pubsub(s, out, 1, 1)
        assert s["durable"] is True
    for args in (["--scenario", "p2p", "--session-expiry", "10"],           # MQTT 5 only
                 ["--scenario", "hold", "--clean", "0"],                    # pub/sub scenarios only
                 ["--scenario", "p2p", "--clean", "2"]):
        p = subprocess.run([BENCH, "--port", "1"] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=10)
        assert p.returncode == 2 and p.stdout == b"", (args, p.returncode, p.stdout)


@test
def hold_and_storm():
    n = scale(500)
    with Mosquitto(config=MOSQ_CONF) as b:
        s, out = bench(b, "--scenario", "hold", "--connections", str(n), "--keepalive", "2", "--duration", "2",
                       "--src", "127.0.0.1-127.0.0.4")
        check_common(s, out, n)
        assert s["held"] == n and s["connect_rate"] > 0
        assert s["pings"] >= n // 2, s["pings"]            # PINGREQ after 1 s idle: about one per session
        s, out = bench(b, "--scenario", "storm", "--connections", str(n))
        assert s["errors"] == 0 and s["connected"] == n, out[-2000:]
        assert s["connect_rate"] > 0 and s["connect_latency_us"]["samples"] == n


@test
def refuses_non_loopback():
    for args in (["--host", "10.0.0.1"], ["--host", "8.8.8.8"], ["--src", "192.168.1.1"],
                 ["--duration", "601"]):
        p = subprocess.run([BENCH, "--scenario", "hold", "--port", "1"] + args, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=10)
        assert p.returncode == 2, (args, p.returncode)
        assert p.stdout == b"", "no traffic, no report for %s" % args


@test
def sigint_stops_cleanly():
    n = scale(300)
    with Mosquitto(config=MOSQ_CONF) as b:
        p = subprocess.Popen([BENCH, "--host", b.host, "--port", str(b.port), "--scenario", "fanout",
                              "--subscribers", str(n), "--qos", "1", "--duration", "60"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        try:
            lines = []
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:          # progress lines: wait until publishing runs
                line = p.stdout.readline().decode(errors="replace")
                lines.append(line)
                if not line or " run " in line:
                    break
            assert lines and " run " in lines[-1], "never reached the run phase: %r" % lines[-5:]
            t0 = time.monotonic()
            p.send_signal(signal.SIGINT)
            out, _ = p.communicate(timeout=20)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        out = out.decode(errors="replace")
        assert time.monotonic() - t0 < 10, "teardown took too long"
        assert p.returncode == 130, (p.returncode, out[-2000:])
        assert "[INTERRUPTED]" in out
        s = json.loads(out.strip().splitlines()[-1][len("JSON: "):])
        assert s["interrupted"] and s["connected"] == n + 1, out[-2000:]
        assert s["errors"] == 0, s["errors_by_kind"]
        assert s["sent"] > 0 and s["received"] > 0


run_tests(globals())

"""test_bench_im.py - aurora-bench's IM scenarios (im-single, im-group, im-replay) briefly against the real gateway.

Users (and a group) are registered with perf/im-setup through the REST API, then the load generator logs in as
them and checks every arrival on im/inbox itself: the JSON summary must show every committed message (PUBACK =
durable) delivered exactly once (no missing, no duplicates), in order per conversation (the bench's own sequence
and the gateway's `sequence` field), and no errors. Also: the replay keeps only the latest im_offline_msgs (100)
per conversation, and a replay of 10,000 messages (100 conversations x 100, more than a session queue holds) arrives
whole; a second run on the same devices sees nothing stale (cursors moved); im-setup is loopback-only.

    /usr/bin/python3 tests/integration/test_bench_im.py [-k substring]
Environment: BUILD (default build) selects $BUILD/aurora-bench; BENCH_BIN overrides the path.
"""
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import REPO, on_aurora, run_tests, scale, test  # noqa: E402

BENCH = os.environ.get("BENCH_BIN") or os.path.join(REPO, os.environ.get("BUILD", "build"), "aurora-bench")
IM_SETUP = os.path.join(REPO, "perf", "im-setup")
PASSWORD = "pw-bench"


def im_setup(b, users, prefix="imt", groups=0, members=0):
    """Register users <prefix>0.. (and groups); returns aurora-bench's IM arguments as a list."""
    argv = ["/usr/bin/python3", IM_SETUP, "--http", "127.0.0.1:%d" % b.http_port, "--data", b.data_dir,
            "--user-prefix", prefix, "--users", str(users), "--password", PASSWORD, "--quiet"]
    if groups:
        argv += ["--groups", str(groups), "--members", str(members)]
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    assert p.returncode == 0, "im-setup exit %d: %s" % (p.returncode, p.stderr.decode(errors="replace")[-2000:])
    out = json.loads(p.stdout)
    assert out["registered"] + out["existed"] == users, out
    assert len(out["gids"]) == groups, out
    return out["bench_args"].split()


def bench(b, *args, timeout=90):
    """Run aurora-bench against b; returns (summary dict from the JSON: line, full stdout)."""
    assert os.path.exists(BENCH), "aurora-bench not built: %s" % BENCH
    with tempfile.NamedTemporaryFile(prefix="bench-im-", suffix=".json", delete=False) as f:
        jpath = f.name
    try:
        argv = [BENCH, "--host", "127.0.0.1", "--port", str(b.port), "--quiet", "--json", jpath] + list(args)
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=timeout)
        out = p.stdout.decode(errors="replace")
        assert p.returncode == 0, "exit %d:\n%s" % (p.returncode, out[-3000:])
        last = out.strip().splitlines()[-1]
        assert last.startswith("JSON: "), "last line is not the JSON summary: %r" % last
        summary = json.loads(last[len("JSON: "):])
        with open(jpath) as f:
            assert json.load(f) == summary, "--json file differs from the JSON: line"
        return summary, out
    finally:
        os.unlink(jpath)


def check_exact(s, out, connections):
    """No errors, everything connected, every committed message delivered once and in order."""
    tail = out[-2500:]
    assert s["errors"] == 0, "errors %s\n%s" % (s["errors_by_kind"], tail)
    assert s["connections"] == connections and s["connected"] == connections, tail
    assert s["failed"] == 0 and s["lost"] == 0 and not s["interrupted"], tail
    assert s["sent"] > 0 and s["committed"] == s["sent"] == s["acked"] and s["refused"] == 0, tail
    assert s["delivered"] == s["expected"] == s["received"], tail
    assert s["missing"] == 0 and s["duplicates"] == 0, tail
    assert s["out_of_order"] == 0 and s["sequence_errors"] == 0, tail


@on_aurora
def im_single_pairs_exactly_once(b):
    pairs = scale(5)
    args = im_setup(b, 2 * pairs)
    # at most 500 msgs/s per sending device: the gateway refuses more than 1000/s per device (803010)
    s, out = bench(b, "--scenario", "im-single", *args, "--publishers", str(pairs), "--duration", "2",
                   "--rate", str(500 * pairs))
    check_exact(s, out, 2 * pairs)
    assert s["scenario"] == "im-single" and s["version"] == 5 and s["qos"] == 1
    assert s["expected"] == s["committed"], out[-2000:]          # one receiving device per conversation
    lat = s["latency_us"]
    assert lat["samples"] == s["delivered"] and 0 < lat["p50"] <= lat["p99"] <= lat["p999"] <= lat["max"], lat
    assert s["msgs_per_s_committed"] > 0 and s["msgs_per_s_in"] > 0
    # the same devices again at a fixed rate: their cursors moved, so nothing of the first run comes back
    s, out = bench(b, "--scenario", "im-single", *args, "--publishers", str(pairs), "--duration", "1",
                   "--rate", "100", "--payload", "200")
    check_exact(s, out, 2 * pairs)
    assert s["stale"] == 0, out[-2000:]
    assert 50 <= s["sent"] <= 150, s["sent"]


@on_aurora
def im_group_fanout_every_member(b):
    members = max(3, scale(8))
    args = im_setup(b, members, prefix="img", groups=1, members=members)
    s, out = bench(b, "--scenario", "im-group", *args, "--publishers", "2", "--duration", "1", "--rate", "600")
    check_exact(s, out, members + 2)
    assert s["expected"] == s["committed"] * members, out[-2000:]
    assert s["events"] >= members, out[-2000:]                   # each member's device got create_group


@on_aurora
def im_replay_every_message_once_in_order(b):
    senders, n = scale(10), 20
    args = im_setup(b, senders + 1, prefix="imr")
    s, out = bench(b, "--scenario", "im-replay", *args, "--publishers", str(senders), "--messages", str(n))
    check_exact(s, out, senders + 2)
    assert s["committed"] == senders * n and s["replay_expected"] == senders * n, out[-2000:]
    assert s["replay_ms"] > 0 and s["replay_first_ms"] <= s["replay_ms"], out[-2000:]
    assert s["latency_us"]["samples"] == s["delivered"]         # arrival times after SUBSCRIBE
    # again: the device's cursors are at the end of every conversation, only the new messages come
    s, out = bench(b, "--scenario", "im-replay", *args, "--publishers", str(senders), "--messages", str(n))
    check_exact(s, out, senders + 2)
    assert s["stale"] == 0 and s["delivered"] == senders * n, out[-2000:]


@on_aurora
def im_replay_10000_across_100_conversations(b):
    """More than a session queue holds (max_inflight 256 + max_queued_msgs 1000): nothing may be dropped."""
    senders = scale(100)
    args = im_setup(b, senders + 1, prefix="imx")
    s, out = bench(b, "--scenario", "im-replay", *args, "--publishers", str(senders), "--messages", "100")
    check_exact(s, out, senders + 2)
    assert s["replay_expected"] == senders * 100 == s["delivered"], out[-2000:]


@on_aurora
def im_replay_latest_100_per_conversation(b):
    senders, n = 3, 130
    args = im_setup(b, senders + 1, prefix="iml")
    s, out = bench(b, "--scenario", "im-replay", *args, "--publishers", str(senders), "--messages", str(n))
    assert s["committed"] == senders * n, out[-2000:]
    assert s["replay_expected"] == senders * 100 and s["delivered"] == senders * 100, out[-2000:]
    assert s["missing"] == 0 and s["duplicates"] == 0 and s["out_of_order"] == 0, out[-2000:]
    assert s["sequence_errors"] == 0 and s["errors"] == 0, out[-2000:]


@test
def im_setup_and_bench_refuse_bad_arguments():
    p = subprocess.run(["/usr/bin/python3", IM_SETUP, "--http", "10.0.0.1:80", "--appkey", "k", "--secret", "s",
                        "--user-prefix", "abc", "--users", "1", "--password", "pwpw"],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    assert p.returncode == 2 and b"loopback" in p.stderr, (p.returncode, p.stderr)
    p = subprocess.run([BENCH, "--scenario", "im-single", "--host", "192.168.1.1", "--appkey", "k", "--user-prefix",
                        "abc", "--password", "pwpw"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=30)
    assert p.returncode == 2 and b"loopback" in p.stdout, (p.returncode, p.stdout)
    im = ["--appkey", "k", "--user-prefix", "abc", "--password", "pwpw"]
    for argv, why in ((["--scenario", "im-group"] + im, b"--group-ids"),
                      (["--scenario", "im-group", "--groups", "2", "--group-ids", "10001"] + im, b"--group-ids"),
                      (["--scenario", "im-single", "--qos", "0"] + im, b"QoS 1"),
                      (["--scenario", "im-single", "--appkey", "k", "--user-prefix", "-x", "--password", "pwpw"],
                       b"--user-prefix"),
                      (["--scenario", "im-single", "--appkey", "k", "--user-prefix", "a", "--password", "pwpw"],
                       b"4..128 bytes"),
                      (["--scenario", "im-single", "--payload", "20"] + im, b"text length"),
                      (["--scenario", "im-replay", "--messages", "0"] + im, b"--messages"),
                      (["--scenario", "p2p", "--appkey", "k"], b"im-*")):
        p = subprocess.run([BENCH] + argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=30)
        assert p.returncode == 2 and why in p.stdout, (argv, p.returncode, p.stdout)


run_tests(globals())

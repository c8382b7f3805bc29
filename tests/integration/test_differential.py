"""test_differential.py - the same scripted scenario against Aurora and Mosquitto; everything observed must match.

A scenario is a list of client actions.  Observed: CONNACK (code, session present), SUBACK / UNSUBACK codes,
whether a connection was closed by the broker, and per client connection the messages received
(topic, payload, QoS, retain) as a multiset.  Scenarios avoid what MQTT leaves to the implementation
(overlapping subscriptions, QoS 0 queued for offline sessions, ordering across publishers).
With MOSQUITTO_ONLY=1 each scenario runs twice against Mosquitto (a check that the scenarios are deterministic).

    /usr/bin/python3 tests/integration/test_differential.py [-k substring]
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Aurora, Mosquitto, client, needs_no_aurora, run_tests, test  # noqa: E402


def _quiesce(conns, quiet=0.15, limit=5.0):
    """Wait until no client has received anything new for `quiet` seconds."""
    deadline = time.monotonic() + limit
    last = -1
    while time.monotonic() < deadline:
        n = sum(c.queue.qsize() for c in conns)
        if n == last:
            return
        last = n
        time.sleep(quiet)


def run_scenario(broker, steps):
    """Run steps against broker; return (log, received) where log lists synchronous results in order and
    received maps 'name#k' (k-th connection of that client name) -> sorted message tuples."""
    live = {}
    count = {}
    log = []
    received = {}

    def collect(name):
        c = live[name]
        _quiesce(list(live.values()))
        key = "%s#%d" % (name, count[name])
        received[key] = sorted(m.key() for m in c.pending())
        return c

    for step in steps:
        op, args = step[0], step[1:]
        if op == "connect":
            name = args[0]
            kw = dict(args[1]) if len(args) > 1 else {}
            if name in live:
                old = live[name]
                collect(name)
            else:
                old = None
            count[name] = count.get(name, 0) + 1
            c = client(broker, client_id=name, check=False, **kw)
            live[name] = c
            log.append(("connack", name, c.connack.rc if c.connack else None,
                        c.connack.session_present if c.connack else None))
            if old is not None:
                log.append(("old connection closed", name, old.wait_disconnected(3)))
        elif op == "sub":
            name, filters = args[0], args[1]
            kw = dict(args[2]) if len(args) > 2 else {}
            log.append(("suback", name, tuple(filters), tuple(live[name].subscribe(list(filters), **kw))))
        elif op == "unsub":
            name, filters = args
            log.append(("unsuback", name, tuple(filters), tuple(live[name].unsubscribe(list(filters)))))
        elif op == "pub":
            name, topic, payload = args[0], args[1], args[2]
            qos = args[3] if len(args) > 3 else 0
            retain = args[4] if len(args) > 4 else False
            props = args[5] if len(args) > 5 else None
            live[name].publish(topic, payload, qos=qos, retain=retain, properties=props)
            if qos == 0:
                time.sleep(0.02)      # QoS 0 has no ack: give it time so the next step sees its effects
        elif op in ("disconnect", "drop"):
            name = args[0]
            c = collect(name)
            getattr(c, op)()
            del live[name]
            if op == "drop":
                time.sleep(0.1)
        elif op == "settle":
            _quiesce(list(live.values()))
        elif op == "restart":
            for name in list(live):
                collect(name)
                live[name]._close_quietly()
                del live[name]
            broker.restart()
        else:
            raise ValueError("unknown step %r" % (step,))
    for name in list(live):
        collect(name)
    for c in live.values():
        c.disconnect()
    return log, received


def _diff(a_name, a, b_name, b):
    lines = []
    la, ra = a
    lb, rb = b
    for i in range(max(len(la), len(lb))):
        x = la[i] if i < len(la) else None
        y = lb[i] if i < len(lb) else None
        if x != y:
            lines.append("step result %d: %s=%r %s=%r" % (i, a_name, x, b_name, y))
    for k in sorted(set(ra) | set(rb)):
        if ra.get(k) != rb.get(k):
            lines.append("messages of %s: %s=%r" % (k, a_name, ra.get(k)))
            lines.append("messages of %s: %s=%r" % (k, b_name, rb.get(k)))
    return lines


def differential(steps):
    if os.environ.get("MOSQUITTO_ONLY") == "1":
        kinds = [Mosquitto, Mosquitto]
    else:
        kinds = [Aurora, Mosquitto]
    results = []
    for cls in kinds:
        with cls() as b:
            results.append((cls.name, run_scenario(b, steps)))
    (na, ra), (nb, rb) = results
    d = _diff(na, ra, nb, rb)
    assert not d, "%s and %s observed different things:\n%s" % (na, nb, "\n".join(d[:40]))
    # the scenario must have observed something, or it proves nothing
    assert any(v for v in rb[1].values()) or rb[0], "scenario observed nothing"


SCENARIOS = {}


def scenario(name, steps):
    SCENARIOS[name] = steps

    def fn():
        differential(steps)
    fn.__name__ = "diff_" + name
    fn = needs_no_aurora(test(fn))
    globals()[fn.__name__] = fn


scenario("qos_levels", [
    ("connect", "sub"), ("connect", "pub"),
    ("sub", "sub", [("q/0", 0), ("q/1", 1), ("q/2", 2)]),
] + [("pub", "pub", "q/%d" % s, "p%d-s%d" % (p, s), p) for p in (0, 1, 2) for s in (0, 1, 2)])

scenario("retained_lifecycle", [
    ("connect", "pub"),
    ("pub", "pub", "r/a", "first", 1, True),
    ("connect", "s1"), ("sub", "s1", [("r/a", 2)]),
    ("pub", "pub", "r/a", "second", 2, True),
    ("connect", "s2"), ("sub", "s2", [("r/#", 1)]),
    ("pub", "pub", "r/a", "", 1, True),
    ("connect", "s3"), ("sub", "s3", [("r/a", 1)]),
    ("pub", "pub", "r/b", "plain", 1, False),
])

scenario("retained_wildcards_qos", [
    ("connect", "pub"),
    ("pub", "pub", "rw/a/x", "ax", 0, True), ("pub", "pub", "rw/b/x", "bx", 2, True),
    ("pub", "pub", "rw/b/y", "by", 1, True), ("pub", "pub", "rw", "root", 1, True),
    ("connect", "s1"), ("sub", "s1", [("rw/+/x", 1)]),
    ("connect", "s2"), ("sub", "s2", [("rw/#", 2)]),
    ("connect", "s3"), ("sub", "s3", [("+/b/+", 0)]),
    ("connect", "s4"), ("sub", "s4", [("rw/+", 2)]),
])

scenario("wildcard_matrix", [
    ("connect", "pub"),
    ("connect", "a"), ("sub", "a", [("m/+/c", 1)]),
    ("connect", "b"), ("sub", "b", [("m/#", 1)]),
    ("connect", "c"), ("sub", "c", [("+/+/+", 1)]),
    ("connect", "d"), ("sub", "d", [("m/b/c", 1)]),
    ("connect", "e"), ("sub", "e", [("#", 1)]),
    ("connect", "f"), ("sub", "f", [("m//c", 1)]),
] + [("pub", "pub", t, t, 1) for t in ("m/b/c", "m//c", "m", "m/b", "m/b/c/d", "x/y/z", "/m/b", "m/")])

scenario("dollar_topics", [
    ("connect", "pub"),
    ("connect", "hash"), ("sub", "hash", [("#", 0)]),
    ("connect", "plus"), ("sub", "plus", [("+/t", 0), ("+/+/t", 0)]),
    ("connect", "dollar"), ("sub", "dollar", [("$x/#", 0)]),
    ("pub", "pub", "$x/t", "d1", 1), ("pub", "pub", "$x/y/t", "d2", 1), ("pub", "pub", "n/t", "n1", 1),
])

scenario("unsubscribe", [
    ("connect", "s"), ("connect", "pub"),
    ("sub", "s", [("u/a", 1), ("u/b", 2), ("u/+", 0)]),
    ("pub", "pub", "u/c", "c1", 1),
    ("unsub", "s", ["u/+"]),
    ("pub", "pub", "u/c", "c2", 1),
    ("unsub", "s", ["u/a", "nope"]),
    ("pub", "pub", "u/a", "a1", 1), ("pub", "pub", "u/b", "b1", 2),
])

scenario("wills", [
    ("connect", "watch"), ("sub", "watch", [("w/#", 2)]),
    ("connect", "dropper", dict(will=("w/drop", "dropped", 1, False))),
    ("connect", "polite", dict(will=("w/polite", "never", 1, False))),
    ("connect", "keeper", dict(will=("w/status", "offline", 2, True))),
    ("drop", "dropper"), ("disconnect", "polite"), ("drop", "keeper"),
    ("connect", "late"), ("sub", "late", [("w/#", 1)]),
])

scenario("persistent_session", [
    ("connect", "p", dict(clean=False)),
    ("sub", "p", [("ps/1", 1), ("ps/2", 2)]),
    ("disconnect", "p"),
    ("connect", "pub"),
    ("pub", "pub", "ps/1", "q1-a", 1), ("pub", "pub", "ps/2", "q2-a", 2), ("pub", "pub", "ps/2", "q1-to-q2", 1),
    ("pub", "pub", "ps/1", "q2-to-q1", 2),
    ("connect", "p", dict(clean=False)),
    ("pub", "pub", "ps/1", "live", 1),
    ("disconnect", "p"),
    ("connect", "p", dict(clean=True)),
    ("pub", "pub", "ps/1", "gone", 1),
    ("disconnect", "p"),
    ("connect", "p", dict(clean=False)),
])

scenario("takeover", [
    ("connect", "dup", dict(clean=False)), ("sub", "dup", [("to/#", 1)]),
    ("connect", "dup", dict(clean=False)),
    ("connect", "pub"), ("pub", "pub", "to/x", "after takeover", 1),
    ("connect", "dup", dict(clean=True)),
    ("pub", "pub", "to/x", "not subscribed", 1),
])

scenario("mixed_versions", [
    ("connect", "v31", dict(version=3)), ("connect", "v311", dict(version=4)), ("connect", "v5", dict(version=5)),
    ("sub", "v31", [("mv/#", 2)]), ("sub", "v311", [("mv/#", 1)]), ("sub", "v5", [("mv/#", 0)]),
    ("pub", "v31", "mv/31", "from 3.1", 2), ("pub", "v311", "mv/311", "from 3.1.1", 1),
    ("pub", "v5", "mv/5", "from 5", 2), ("pub", "v5", "mv/ret", "retained", 1, True),
    ("connect", "late5", dict(version=5)), ("sub", "late5", [("mv/ret", 2)]),
    ("connect", "late3", dict(version=4)), ("sub", "late3", [("mv/ret", 2)]),
])

scenario("suback_codes_and_resubscribe", [
    ("connect", "s"),
    ("sub", "s", [("sc/a", 0), ("sc/b", 1), ("sc/c", 2), ("sc/+/d", 2), ("sd/#", 1)]),
    ("sub", "s", [("sc/a", 2)]),                                  # upgrade an existing subscription
    ("connect", "pub"), ("pub", "pub", "sc/a", "upgraded", 2),
    ("sub", "s", [("sc/a", 0)]),                                  # and downgrade it again
    ("pub", "pub", "sc/a", "downgraded", 2),
    ("pub", "pub", "sc/x/d", "d", 2), ("pub", "pub", "sd/1/2", "sd", 2),
    ("unsub", "s", ["sd/#"]),
    ("pub", "pub", "sc/b", "b", 2), ("pub", "pub", "sd/1/2", "gone", 2),
])

scenario("payload_edge_cases", [
    ("connect", "s"), ("sub", "s", [("pe/#", 1)]), ("connect", "pub"),
    ("pub", "pub", "pe/empty", "", 1),
    ("pub", "pub", "pe/binary", bytes(range(256)), 1),
    ("pub", "pub", "pe/big", b"B" * 200000, 1),
    ("pub", "pub", "pe/utf8/日本", "ü€😀", 1),
    ("pub", "pub", "pe/ spaces /x", "sp", 1),
])

scenario("v5_options", [
    ("connect", "a", dict(version=5)), ("connect", "b", dict(version=5)),
    ("sub", "a", [("v5/nl", 1)], dict(no_local=True)),
    ("sub", "b", [("v5/nl", 1)]),
    ("pub", "a", "v5/nl", "from a", 1),
    ("pub", "b", "v5/rap", "ret", 1, True),
    ("sub", "a", [("v5/rap", 1)], dict(retain_as_published=True)),
    ("pub", "b", "v5/rap", "live retained", 1, True),
    ("sub", "b", [("v5/rh", 1)], dict(retain_handling=2)),
    ("pub", "a", "v5/rh", "kept", 1, True),
    ("connect", "c", dict(version=5)), ("sub", "c", [("v5/rh", 1)], dict(retain_handling=2)),
])

scenario("fan_in_fan_out", [
    ("connect", "s1"), ("connect", "s2"), ("connect", "s3"),
    ("sub", "s1", [("fan/+", 1)]), ("sub", "s2", [("fan/a", 2)]), ("sub", "s3", [("fan/#", 0)]),
] + [("connect", "p%d" % i) for i in range(5)]
  + [("pub", "p%d" % i, "fan/%s" % "ab"[j % 2], "p%d-%d" % (i, j), j % 3) for i in range(5) for j in range(4)])

scenario("restart_keeps_retained_and_sessions", [
    ("connect", "pub"), ("pub", "pub", "rk/t", "retained before restart", 1, True),
    ("connect", "p", dict(clean=False)), ("sub", "p", [("rk/q", 1)]),
    ("disconnect", "p"),
    ("restart",),
    ("connect", "p", dict(clean=False)),
    ("connect", "pub2"), ("pub", "pub2", "rk/q", "to restored session", 1),
    ("connect", "s"), ("sub", "s", [("rk/#", 1)]),
])

run_tests(globals())

"""test_durability.py - nothing acknowledged is lost: kill -9 right after acknowledgements, restart, check.

Aurora acknowledges a QoS 1/2 PUBLISH (PUBACK/PUBREC) only once the message is durable on every shard: retained
messages, messages queued for offline persistent sessions, subscriptions and incoming QoS 2 state. These tests
SIGKILL the broker immediately after the acknowledgements arrive (no graceful shutdown), restart it on the same
data directory and check that everything acknowledged is there.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Aurora, client, on_aurora, raw, run_tests, scale, wait_until,  # noqa: E402
                     connect_packet, publish_packet, pubrel_packet, subscribe_packet, PUBACK, PUBREC, PUBCOMP,
                     PUBLISH, SUBACK, parse_publish)


@on_aurora
def kill9_keeps_acknowledged_retained_and_queued(b):
    # Offline persistent subscribers (several client ids: they land on both shards).
    subs = ["dur-sub-%d" % i for i in range(6)]
    for cid in subs:
        c = client(b, client_id=cid, clean=False, version=4)
        assert c.subscribe("dur/#", qos=1) == [1]
        c.disconnect()
    pub = client(b, client_id="dur-pub", version=4)
    n = scale(200)
    for i in range(n):
        pub.publish("dur/q", b"m%d" % i, qos=1, wait=True)          # returns once PUBACK arrived
    pub.publish("dur/retained", b"keep me", qos=1, retain=True, wait=True)
    b.kill()                                                        # SIGKILL right after the last PUBACK
    b.restart()
    for cid in subs:
        c = client(b, client_id=cid, clean=False, version=4)
        assert c.connack.session_present, cid
        got = c.messages(n + 1, timeout=10)
        payloads = [m.payload for m in got]
        assert payloads[:n] == [b"m%d" % i for i in range(n)], (cid, payloads[:5])
        assert got[n].topic == "dur/retained" and got[n].payload == b"keep me"
        c.disconnect()
    s = client(b, client_id="dur-late", version=4)
    s.subscribe("dur/retained", qos=1)
    m = s.expect(5)
    assert m.payload == b"keep me" and m.retain


@on_aurora
def kill9_keeps_pipelined_publishes_to_offline_sessions(b):
    # The load generator's durable p2p pattern, with the subscribers away: each publisher pipelines its QoS 1
    # PUBLISHes (one write, many in flight), the broker acknowledges them as their writes become durable (several
    # messages per loop iteration and per group commit), SIGKILL right after the last PUBACK.
    pairs = 4
    n = scale(300)
    for i in range(pairs):     # MQTT 5 sessions with an expiry (Clean Start 1) and 3.1.1 sessions (clean 0)
        if i % 2:
            c = client(b, client_id="pp-sub-%d" % i, version=5, properties={"SessionExpiryInterval": 3600})
        else:
            c = client(b, client_id="pp-sub-%d" % i, version=4, clean=False)
        assert c.subscribe("pp/%d" % i, qos=1) == [1]
        c.disconnect()
    pubs = []
    for i in range(pairs):
        r = raw(b)
        t, _, _ = r.connect(client_id="pp-pub-%d" % i, version=4)
        pubs.append(r)
    for i, r in enumerate(pubs):
        r.send(b"".join(publish_packet("pp/%d" % i, b"%d:%d" % (i, k), qos=1, pid=k + 1) for k in range(n)))
    for i, r in enumerate(pubs):
        for k in range(n):
            p = r.recv_packet(10)
            assert p is not None and p[0] == PUBACK, (i, k, p)
            assert p[2][:2] == (k + 1).to_bytes(2, "big"), (i, k, p)     # in PUBLISH order
    b.kill()                                                            # SIGKILL right after the last PUBACK
    b.restart()
    for i in range(pairs):
        if i % 2:
            c = client(b, client_id="pp-sub-%d" % i, version=5, clean=False,
                       properties={"SessionExpiryInterval": 3600})
        else:
            c = client(b, client_id="pp-sub-%d" % i, version=4, clean=False)
        assert c.connack.session_present, i
        got = c.messages(n, timeout=15)
        assert [m.payload for m in got] == [b"%d:%d" % (i, k) for k in range(n)], (i, [m.payload for m in got[:5]])
        c.disconnect()


@on_aurora
def kill9_keeps_unacknowledged_deliveries_to_online_sessions(b):
    # An online persistent subscriber gets each QoS 1 message at once; its store write waits a moment for the
    # subscriber's PUBACK (BROKER_STORE_DEFER_MS). This one never acknowledges: the publisher's PUBACK must still
    # mean the message is on disk, so after SIGKILL the session gets every message again.
    s = raw(b)
    t, _, _ = s.connect(client_id="ua-sub", version=4, clean=False)
    s.send(subscribe_packet(1, [("ua/t", 1)]))
    assert s.expect_packet(SUBACK, 5)
    pub = client(b, client_id="ua-pub", version=4)
    n = scale(50)
    for i in range(n):
        pub.publish("ua/t", b"u%d" % i, qos=1, wait=True)            # PUBACK: durable (never acknowledged)
    got = []
    while len(got) < n:
        p = s.recv_packet(5)
        assert p is not None and p[0] == PUBLISH, p
        got.append(p)
    b.kill()
    b.restart()
    c = client(b, client_id="ua-sub", version=4, clean=False)
    assert c.connack.session_present
    msgs = c.messages(n, timeout=10)
    assert [m.payload for m in msgs] == [b"u%d" % i for i in range(n)], [m.payload for m in msgs[:5]]
    c.disconnect()


@on_aurora
def kill9_keeps_subscriptions_and_session_expiry(b):
    c = client(b, client_id="dur5", version=5, clean=False, properties={"SessionExpiryInterval": 3600})
    c.subscribe("five/+", qos=2)
    c.disconnect()
    b.kill()
    b.restart()
    p = client(b, client_id="dur5-pub", version=5)
    p.publish("five/x", b"after restart", qos=2, wait=True)
    c = client(b, client_id="dur5", version=5, clean=False, properties={"SessionExpiryInterval": 3600})
    assert c.connack.session_present
    m = c.expect(10)
    assert m.topic == "five/x" and m.payload == b"after restart" and m.qos == 2


@on_aurora
def kill9_keeps_incoming_qos2_state(b):
    # A QoS 2 PUBLISH acknowledged with PUBREC must not be delivered again after a crash, even if the client
    # resends it (DUP) before PUBREL.
    s = client(b, client_id="q2-sub", version=4, clean=False)
    s.subscribe("q2/t", qos=2)
    r = raw(b)
    r.connect(client_id="q2-pub", version=4, clean=False)
    r.send(publish_packet("q2/t", b"once", qos=2, pid=7))
    t, _, body = r.recv_packet(5)
    assert t == PUBREC
    assert s.expect(5).payload == b"once"
    s.disconnect()
    b.kill()
    b.restart()
    r = raw(b)
    r.connect(client_id="q2-pub", version=4, clean=False)
    r.send(publish_packet("q2/t", b"once", qos=2, pid=7, dup=True))
    t, _, _ = r.recv_packet(5)
    assert t == PUBREC
    r.send(pubrel_packet(7))
    t, _, _ = r.recv_packet(5)
    assert t == PUBCOMP
    s = client(b, client_id="q2-sub", version=4, clean=False)
    s.expect_none(1.5)      # delivered once before the crash; the resend was recognised as a duplicate


@on_aurora
def expired_session_is_gone_after_restart(b):
    c = client(b, client_id="short", version=5, clean=False, properties={"SessionExpiryInterval": 1})
    c.subscribe("short/t", qos=1)
    c.disconnect()
    b.stop()
    time.sleep(1.5)
    b.restart()
    c = client(b, client_id="short", version=5, clean=False, properties={"SessionExpiryInterval": 1})
    assert not c.connack.session_present


run_tests(globals())

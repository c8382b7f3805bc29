"""test_broker_only.py - the MQTT broker without its extensions (issue 9 item 2, docs/architecture.md "Broker
extensions").

$BUILD/aurora-broker is gateway/main.c built with AU_BROKER_ONLY: the broker with no extension registered (no IM
service, no REST v1 API, no media). Here: what the IM extension adds to the full binary (reserved topics, IM
logins) is absent from aurora-broker, where im/ and push/ are ordinary topics and an "<appkey>:<user>" username
is a plain login; and the full binary still has it (the hooks are wired). The MQTT test files themselves run
against aurora-broker in tests/run.sh's broker-only stage (`make broker-only`).

    /usr/bin/python3 tests/integration/test_broker_only.py [-k substring]
"""
import os
import sys
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (PUBACK, Aurora, app_creds, client, parse_connack, publish_packet, raw,  # noqa: E402
                     run_tests, test)

BROKER_ONLY_BIN = os.path.join(os.path.dirname(os.path.abspath(os.environ["AURORA_BIN"])), "aurora-broker") \
    if os.environ.get("AURORA_BIN") else \
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", os.environ.get("BUILD", "build"), "aurora-broker")


class BrokerOnly(Aurora):
    """aurora-broker with Aurora's arguments."""

    def command(self):
        argv = super().command()
        return [os.path.abspath(BROKER_ONLY_BIN)] + argv[1:]


def http_status(b, path):
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (b.http_port, path), timeout=3) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def drain(c, quiet):
    out = []
    while True:
        try:
            out.append(c.expect(timeout=quiet))
        except Exception:
            return out


@test
def im_and_push_topics_are_ordinary_without_the_im_extension():
    with BrokerOnly() as b:
        s = client(b, client_id="sub", version=5)
        assert s.subscribe([("im/inbox", 1), ("im/send", 1), ("push/all", 1), ("im", 1)]) == [1, 1, 1, 1]
        p = raw(b)
        assert parse_connack(p.connect("pub", 5)[2], 5)[1] == 0
        for pid, topic in enumerate(("im/send", "im/inbox", "push/all", "im"), 1):
            p.send(publish_packet(topic, b"plain-" + topic.encode(), qos=1, retain=(topic == "push/all"), pid=pid,
                                  version=5))
            t, _, body = p.recv_packet(3)
            assert t == PUBACK and body[:2] == bytes([0, pid]) and (len(body) < 3 or body[2] == 0), (topic, body)
        p.close()
        got = sorted((m.topic, m.payload) for m in s.messages(4))
        assert got == sorted([("im/send", b"plain-im/send"), ("im/inbox", b"plain-im/inbox"),
                              ("push/all", b"plain-push/all"), ("im", b"plain-im")]), got
        s.disconnect()
        # a will on im/ is accepted and published
        w = client(b, client_id="w", version=5, will=dict(topic="im/will", payload=b"gone", qos=1))
        s2 = client(b, client_id="sub2", version=5)
        s2.subscribe("im/will", qos=1)
        w.drop()
        m = s2.expect(timeout=5)
        assert (m.topic, m.payload) == ("im/will", b"gone")
        s2.disconnect()
        # the retained message on push/all survives a restart (no extension deletes it at load)
        b.restart()
        s3 = client(b, client_id="sub3", version=5)
        s3.subscribe("push/#", qos=1)
        m = s3.expect(timeout=5)
        assert (m.topic, m.payload, m.retain) == ("push/all", b"plain-push/all", True)
        s3.disconnect()


@test
def appkey_usernames_are_plain_logins_without_the_im_extension():
    with BrokerOnly() as b:
        # no app directory: "<appkey>:<user>" with any password is an unverified plain login (allow_anonymous)
        c = client(b, client_id="dev", version=5, username="0123456789abcdef01234567:alice", password="wrong")
        assert c.connack.rc == 0
        c.subscribe("im/inbox", qos=1)   # an ordinary filter here, served by the subscription index
        client(b, client_id="p").publish("im/inbox", b"hello", qos=1, wait=True)
        assert c.expect(timeout=5).payload == b"hello"
        c.disconnect()
    with BrokerOnly(config="allow_anonymous = false\n") as b:
        # nothing verifies a login without an extension: every CONNECT is refused (not authorized)
        c = client(b, client_id="dev", version=5, username="0123456789abcdef01234567:alice", password="pw",
                   check=False)
        assert c.connack is not None and c.connack.rc == 0x87, c.connack
        c._close_quietly()


@test
def broker_only_has_no_im_api_but_its_own_endpoints():
    with BrokerOnly() as b:
        assert http_status(b, "/healthz") == 200
        assert http_status(b, "/v1/users/alice") == 404
        assert not os.path.exists(os.path.join(b.data_dir, "default-app.json"))


@test
def the_full_binary_registers_the_im_extension():
    # the same checks against $BUILD/aurora: the IM extension's hooks are wired (reserved topics, IM logins)
    with Aurora() as b:
        s = client(b, client_id="sub", version=5)
        assert s.subscribe([("im/x", 1), ("push/all", 1), ("t/ok", 1)]) == [0x87, 0x87, 1]
        w = client(b, client_id="w", version=5, check=False, will=dict(topic="im/will", payload=b"x", qos=1))
        assert w.connack is not None and w.connack.rc == 0x90, w.connack
        reason = (w.connack.properties or {}).get("ReasonString", "")
        assert "reserved to the service (im/, push/)" in reason, reason
        w._close_quietly()
        key, _ = app_creds(b)
        c = client(b, client_id="dev", version=5, username=key + ":nobody", password="wrong", check=False)
        assert c.connack is not None and c.connack.rc == 0x86, c.connack  # verified by the IM extension: refused
        c._close_quietly()
        s.disconnect()


run_tests(globals())

"""test_acl.py - Aurora's topic access control (Aurora-only: the config syntax is Aurora's own).

Config lines:  acl allow|deny publish|subscribe|all <user|*|anonymous> <topic filter>
Rules are checked in file order, the first rule whose action, user and filter match decides; no match = allow.
A publish rule matches when its filter matches the topic name.  For SUBSCRIBE (core/config.h au_acl_check) the
"$share/<group>/" prefix is stripped, an allow rule matches when its filter covers every topic the requested
filter can match, a deny rule when the two filters can match a common topic.  %u / %c in a rule's filter stand
for the username / client id (never matching an anonymous client or a value containing '/', '+', '#').

Expected refusals:
  MQTT 5   SUBSCRIBE  -> SUBACK 0x87 for the refused filter (the others in the packet are granted)
           PUBLISH    -> PUBACK / PUBREC 0x87 (QoS 1 / 2), QoS 0 dropped; the message reaches nobody
  MQTT 3.1.1 SUBSCRIBE -> SUBACK 0x80;  PUBLISH -> acknowledged normally and silently dropped (MQTT-3.3.5-2)
  The client stays connected in every case.

Run: /usr/bin/python3 tests/integration/test_acl.py [-k name]
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import on_aurora, run_tests, client  # noqa: E402
from mqtt5_util import P, Raw5, raw5  # noqa: E402


def watcher(b, *filters):
    """A v5 raw subscriber on `filters` (QoS 1) used to prove what was (not) delivered."""
    w = raw5(b, "watcher")
    ack = w.subscribe([(f, 1) for f in filters])
    assert all(r < 0x80 for r in ack.reasons), ack
    return w


def delivered(w, timeout=0.6):
    out = []
    for p in w.drain(timeout):
        if p.name == "PUBLISH":
            out.append((p.topic, p.payload))
            w.ack(p)
    return out


def user(b, name, cid=None, version=5, **kw):
    """A raw client logged in as `name` (None = anonymous)."""
    return raw5(b, cid or ("c-%s" % (name or "anon")), version=version, username=name, **kw)


# =============================================================================================== subscribe
@on_aurora(aurora_config="acl deny subscribe * private/#\n")
def denied_subscribe_v5(b):
    c = raw5(b, "s5")
    ack = c.subscribe([("public/a", 1), ("private/x", 1), ("private/#", 2), ("public/+", 0)])
    assert ack.reasons == [1, 0x87, 0x87, 0], ack
    p = raw5(b, "pub")
    p.publish("private/x", b"hidden", qos=1)
    p.publish("public/a", b"shown", qos=1)
    got = delivered(c)
    assert ("private/x", b"hidden") not in got, got
    assert ("public/a", b"shown") in got, got
    assert c.ping()


@on_aurora(aurora_config="acl deny subscribe * private/#\n")
def denied_subscribe_v311(b):
    c = raw5(b, "s4", version=4)
    ack = c.subscribe([("public/a", 1), ("private/x", 1)])
    assert ack.reasons == [1, 0x80], ack
    p = raw5(b, "pub")
    p.publish("private/x", b"hidden", qos=1)
    assert delivered(c) == []
    assert c.ping()
    # through paho as well
    t = client(b, "paho311", version=4)
    assert t.subscribe([("private/y", 1), ("public/b", 0)]) == [0x80, 0]


@on_aurora(aurora_config="acl deny subscribe * private/#\n")
def denied_shared_subscribe(b):
    # the rule applies to the topic filter inside $share/<group>/
    c = raw5(b, "sh")
    ack = c.subscribe([("$share/g/private/x", 1), ("$share/g/public/x", 1)])
    assert ack.reasons == [0x87, 1], ack


# =============================================================================================== publish
@on_aurora(aurora_config="acl deny publish * secret/#\n")
def denied_publish_v5(b):
    w = watcher(b, "secret/#", "open/#")
    c = raw5(b, "p5")
    ack = c.publish("secret/a", b"q1", qos=1)
    assert ack.reason == 0x87, "PUBACK 0x%02x, expected 0x87" % ack.reason
    rec = c.publish("secret/a", b"q2", qos=2)
    assert rec.reason == 0x87, "PUBREC 0x%02x, expected 0x87" % rec.reason
    c.publish("secret/a", b"q0", qos=0)
    ack = c.publish("secret/r", b"ret", qos=1, retain=True)
    assert ack.reason == 0x87
    ack = c.publish("open/a", b"fine", qos=1)
    assert ack.reason == 0x00, ack
    assert delivered(w) == [("open/a", b"fine")]
    assert c.ping()
    # a refused retained publish stored nothing
    late = raw5(b, "late")
    late.subscribe([("secret/#", 1)])
    assert delivered(late) == []


@on_aurora(aurora_config="acl deny publish * secret/#\n")
def denied_publish_v311_silently_dropped(b):
    w = watcher(b, "secret/#", "open/#")
    c = raw5(b, "p4", version=4)
    ack = c.publish("secret/a", b"q1", qos=1)       # acknowledged like any other publish
    assert ack.name == "PUBACK" and ack.pid
    c.publish("secret/a", b"q2", qos=2)             # full PUBREC/PUBREL/PUBCOMP flow completes
    c.publish("secret/a", b"q0", qos=0)
    c.publish("open/a", b"fine", qos=1)
    assert delivered(w) == [("open/a", b"fine")]
    assert c.ping(), "3.1.1 client must stay connected"
    # paho 3.1.1 client sees a normal publish
    t = client(b, "paho-p4", version=4)
    t.publish("secret/b", b"x", qos=1)
    t.publish("open/b", b"y", qos=1)
    assert delivered(w) == [("open/b", b"y")]


@on_aurora(aurora_config="acl deny publish * secret/#\n")
def denied_will_not_published(b):
    w = watcher(b, "secret/#", "open/#")
    for i, topic in enumerate(("secret/will", "open/will")):
        try:
            c = user(b, None, cid="dying%d" % i, will=dict(topic=topic, payload=b"bye", qos=1))
        except AssertionError:
            continue        # refusing the CONNECT of a client whose will it may not publish is also fine
        c.close()
    assert delivered(w, 1.0) == [("open/will", b"bye")]


@on_aurora(aurora_config="acl deny publish * +/secret\n")
def rule_filter_wildcards(b):
    c = raw5(b, "wc")
    assert c.publish("x/secret", b"1", qos=1).reason == 0x87
    assert c.publish("y/secret", b"1", qos=1).reason == 0x87
    assert c.publish("x/y/secret", b"1", qos=1).reason < 0x80     # + is one level only
    assert c.publish("secret", b"1", qos=1).reason < 0x80
    assert c.publish("x/secret/z", b"1", qos=1).reason < 0x80


@on_aurora(aurora_config="acl deny all * both/#\n")
def all_covers_publish_and_subscribe(b):
    c = raw5(b, "all")
    assert c.subscribe([("both/x", 1), ("other/x", 1)]).reasons == [0x87, 1]
    assert c.publish("both/x", b"1", qos=1).reason == 0x87
    assert c.publish("other/x", b"1", qos=1).reason == 0x00


# =============================================================================================== rule order and users
@on_aurora(aurora_config="acl allow publish * a/open\nacl deny publish * a/#\n")
def first_match_wins(b):
    c = raw5(b, "fm")
    assert c.publish("a/open", b"1", qos=1).reason < 0x80
    assert c.publish("a/closed", b"1", qos=1).reason == 0x87
    assert c.publish("b/anything", b"1", qos=1).reason < 0x80           # default allow


@on_aurora(aurora_config="acl deny publish * a/#\nacl allow publish * a/open\n")
def first_match_wins_reversed(b):
    c = raw5(b, "fmr")
    assert c.publish("a/open", b"1", qos=1).reason == 0x87             # the earlier deny decides
    assert c.publish("a/closed", b"1", qos=1).reason == 0x87


PER_USER = """\
acl allow publish alice alice/#
acl deny publish * alice/#
acl deny subscribe anonymous private/#
acl allow subscribe bob private/bob/#
acl deny subscribe * private/#
acl deny all anonymous admin/#
"""


@on_aurora(aurora_config=PER_USER)
def per_user_rules(b):
    alice, bob, anon = user(b, "alice"), user(b, "bob"), user(b, None)
    # publish alice/#: only alice
    assert alice.publish("alice/status", b"1", qos=1).reason < 0x80
    assert bob.publish("alice/status", b"1", qos=1).reason == 0x87
    assert anon.publish("alice/status", b"1", qos=1).reason == 0x87
    # subscribe private/#: bob only his own subtree, alice nothing, anonymous nothing
    assert bob.subscribe([("private/bob/inbox", 1), ("private/alice/inbox", 1)]).reasons == [1, 0x87]
    assert alice.subscribe([("private/bob/inbox", 1), ("private/alice/inbox", 1)]).reasons == [0x87, 0x87]
    assert anon.subscribe([("private/bob/inbox", 1)]).reasons == [0x87]
    # admin/#: closed to anonymous for both actions, open to named users (default allow)
    assert anon.publish("admin/cmd", b"1", qos=1).reason == 0x87
    assert anon.subscribe([("admin/cmd", 1)]).reasons == [0x87]
    assert alice.subscribe([("admin/cmd", 1)]).reasons == [1]
    assert bob.publish("admin/cmd", b"hi", qos=1).reason == 0x00
    m = alice.expect("PUBLISH")
    assert (m.topic, m.payload) == ("admin/cmd", b"hi")
    alice.ack(m)
    # the same user over 3.1.1: refused subscribe is 0x80, refused publish is dropped silently
    bob4 = user(b, "bob", cid="bob-v4", version=4)
    assert bob4.subscribe([("private/bob/x", 1), ("private/alice/x", 1)]).reasons == [1, 0x80]
    w = watcher(b, "alice/#")
    bob4.publish("alice/status", b"forged", qos=1)
    alice.publish("alice/status", b"real", qos=1)
    assert delivered(w) == [("alice/status", b"real")]


@on_aurora(aurora_config=PER_USER)
def acl_rules_follow_the_session_user(b):
    # a persistent session keeps its subscription; the user's publish rights are checked on every publish
    a = user(b, "alice", cid="alice-p", props={P.SESSION_EXPIRY: 60})
    a.subscribe([("alice/#", 1)])
    a.disconnect()
    bob = user(b, "bob")
    assert bob.publish("alice/x", b"forged", qos=1).reason == 0x87
    a = user(b, "alice", cid="alice-p", clean=False, props={P.SESSION_EXPIRY: 0})
    assert a.connack.session_present
    assert [p for p in a.drain(0.6) if p.name == "PUBLISH"] == []


@on_aurora(aurora_config="acl deny subscribe * private/#\n")
def deny_rule_refuses_overlapping_filters(b):
    # a deny rule matches any requested filter that can match one of its topics
    c = raw5(b, "ov")
    ack = c.subscribe([("#", 1), ("+/x", 1), ("private/+/y", 1), ("+/public", 1), ("public/#", 1), ("+/+/z", 1)])
    # "+/public" and "+/+/z" can match private/public, private/a/z: refused too
    assert ack.reasons == [0x87, 0x87, 0x87, 0x87, 1, 0x87], ack
    p = raw5(b, "pub")
    p.publish("private/x", b"hidden", qos=1)
    p.publish("public/x", b"shown", qos=1)
    assert delivered(c) == [("public/x", b"shown")]


SUBST = """\
acl allow all * users/%u/#
acl allow all * devices/%c/#
acl deny all * users/#
acl deny all * devices/#
"""


@on_aurora(aurora_config=SUBST)
def username_and_client_id_substitution(b):
    alice = user(b, "alice", cid="phone-1")
    bob = user(b, "bob", cid="phone-2")
    anon = user(b, None, cid="anon-3")
    assert alice.subscribe([("users/alice/#", 1), ("users/bob/#", 1), ("users/+/inbox", 1)]).reasons == [
        1, 0x87, 0x87]
    assert alice.publish("users/alice/note", b"1", qos=1).reason == 0x00       # alice hears herself
    assert bob.publish("users/alice/note", b"2", qos=1).reason == 0x87
    assert anon.publish("users/alice/note", b"3", qos=1).reason == 0x87        # %u never matches anonymous
    assert anon.subscribe([("users/anonymous/#", 1)]).reasons == [0x87]
    m = alice.expect("PUBLISH")
    assert m.payload == b"1"
    alice.ack(m)
    # %c: the client id, whoever the user is
    assert anon.subscribe([("devices/anon-3/cmd", 1)]).reasons == [1]
    assert anon.publish("devices/anon-3/state", b"s", qos=1).reason < 0x80
    assert bob.publish("devices/anon-3/cmd", b"c", qos=1).reason == 0x87
    assert bob.publish("devices/phone-2/state", b"s", qos=1).reason < 0x80
    # an allow rule with %u covers only that user's subtree, so a wider filter falls through to the deny
    assert alice.subscribe([("users/#", 1)]).reasons == [0x87]


@on_aurora(aurora_config="allow_anonymous = false\n")
def anonymous_refused_when_not_allowed(b):
    c = Raw5(b)
    a = c.connect("anon5", expect_reason=None)
    assert a.reason == 0x87, "CONNACK 0x%02x, expected 0x87 Not authorized" % a.reason
    assert c.closed(3)
    c = Raw5(b, version=4)
    a = c.connect("anon4", expect_reason=None)
    assert a.reason == 0x05, "3.1.1 CONNACK %d, expected 5 not authorized" % a.reason
    assert c.closed(3)
    # a plain username is no credential either (issue 8 item 5): nothing unverified gets in
    c = Raw5(b)
    a = c.connect("carol5", username="carol", password=b"any", expect_reason=None)
    assert a.reason == 0x87, "plain username: CONNACK 0x%02x, expected 0x87" % a.reason
    assert c.closed(3)


@on_aurora
def no_rules_allow_everything(b):
    c = raw5(b, "free")
    assert c.subscribe([("anything/#", 1), ("private/x", 1)]).reasons == [1, 1]
    assert c.publish("secret/x", b"1", qos=1).reason in (0x00, 0x10)
    assert c.publish("anything/y", b"1", qos=1).reason == 0x00
    m = c.expect("PUBLISH")
    assert m.topic == "anything/y"


if __name__ == "__main__":
    run_tests(globals())

"""test_sec_sessions.py - issue 8 items 1, 5 and 8 (part): who may resume a session, what allow_anonymous = false
lets in, device tokens of push-only devices, wills and retained messages on the reserved topics, and the expiry of
MQTT 3.1.1 persistent sessions (persistent_session_expiry).

Item 1: a victim IM device of the default app leaves a persistent session with private im/inbox messages and MQTT
data queued; then a client of each identity kind connects with the victim's client id and clean start 0 (anonymous,
`<appkey>` push-only with a wrong password and with none, another IM user of the app, a user of another app with the
victim app's AppKey). None may get anything of the victim's session; after the attacker leaves (and comes back with a
clean start) the gateway still answers, the victim's messages still reach her, and it exits 0 on SIGTERM. Run it
under ASan/UBSan too: BUILD=build-san.
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (ConnectRefused, app_creds, client, on_aurora, parse_connack, raw, run_tests,  # noqa: E402
                     publish_packet, CONNACK, PUBACK, basic_auth, create_app, http_json)

PW = "secret-pw"


def http(b, method, path, body=None, auth=None):
    return http_json(b, method, path, body, auth, timeout=15)


basic = basic_auth
new_app = create_app


def register(b, creds, *names):
    st, body = http(b, "POST", "/v1/users/", [{"username": n, "password": PW} for n in names], basic(creds))
    assert st == 201, (st, body)


def device_token(b, creds, cid, **extra):
    body = {"client_id": cid}
    body.update(extra)
    return http(b, "POST", "/v1/devices/token", body, basic(creds))


def im_text(target, text):
    return json.dumps({"version": 1, "target_type": "single", "target_id": target, "msg_type": "text",
                       "msg_body": {"text": text}}).encode()


def im_device(b, creds, user, cid, clean=True, version=4, subscribe=True):
    c = client(b, client_id=cid, version=version, clean=clean, username="%s:%s" % (creds[0], user), password=PW,
               timeout=15)
    if subscribe:
        c.subscribe([("im/inbox", 1), ("data/" + user, 1)])
    return c


def payloads(msgs):
    return [m.payload.decode(errors="replace") for m in msgs]


def drain(c, seconds):
    """Everything c receives within `seconds`."""
    out, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        out += c.pending()
        time.sleep(0.05)
    return out + c.pending()


def takeover_attempt(b, attackers, victim_online=False):
    """A victim (alice, default app, 3.1.1 persistent session 'victim-dev') with private IM messages and MQTT data
    queued; then each attacker connect(b) -> TestClient or None (refused) with the victim's client id. Returns the
    log of what happened per attacker."""
    creds = app_creds(b)
    register(b, creds, "alice", "bobby")
    bob = im_device(b, creds, "bobby", "bob-dev")
    pub = client(b, client_id="data-pub")
    victim = im_device(b, creds, "alice", "victim-dev", clean=False)
    if not victim_online:
        victim.disconnect()
    n = 0
    for name, connect in attackers:
        n += 1
        bob.publish("im/send", im_text("alice", "secret-%d-before" % n), qos=1, wait=True)
        pub.publish("data/alice", b"queued-%d-before" % n, qos=1, wait=True)
        time.sleep(0.2)
        if victim_online:  # the victim gets them live
            got = payloads(victim.messages(2, timeout=5))
            assert any("secret-%d-before" % n in p for p in got), got
        att = connect(b)
        if att is not None:
            assert not att.connack.session_present, "%s resumed the victim's session" % name
            if victim_online:
                assert victim.wait_disconnected(5), "%s: the victim's connection was not ended" % name
            att.subscribe([("data/#", 1)])  # anything still queued for the victim would show now
            bob.publish("im/send", im_text("alice", "secret-%d-during" % n), qos=1, wait=True)
            got = payloads(drain(att, 1.5))
            assert not [p for p in got if "secret" in p or "queued" in p], "%s received %r" % (name, got)
            att.disconnect()
            # and once more with a clean start (ends whatever session it had: the freed-session path)
            att2 = connect(b, clean=True)
            if att2 is not None:
                assert not [p for p in payloads(drain(att2, 0.3)) if "secret" in p], name
                att2.disconnect()
        # deliveries to alice after the attacker left: the gateway must still be up and deliver them
        bob.publish("im/send", im_text("alice", "secret-%d-after" % n), qos=1, wait=True)
        assert b.alive(), "gateway died after the %s attempt" % name
        # alice's device comes back: her IM messages are all there (by replay when her session was ended)
        victim = im_device(b, creds, "alice", "victim-dev", clean=False, subscribe=att is not None)
        want = {"secret-%d-after" % n} if victim_online else {"secret-%d-before" % n, "secret-%d-after" % n}
        seen = set()
        deadline = time.monotonic() + 8
        while want - seen and time.monotonic() < deadline:
            for m in drain(victim, 0.2):
                try:
                    seen.add(json.loads(m.payload)["msg_body"]["text"])
                except (ValueError, KeyError, TypeError):
                    pass
        assert not (want - seen), "%s: alice lost %r" % (name, want - seen)
        if not victim_online:
            victim.disconnect()
    assert b.alive()
    # a fresh login and message still work
    c = im_device(b, creds, "bobby", "bob-check")
    c.disconnect()


def attacker(username=None, password=None, version=4):
    def connect(b, clean=False):
        try:
            return client(b, client_id="victim-dev", version=version, clean=clean, username=username,
                          password=password, timeout=15)
        except ConnectRefused:
            return None
    return connect


# ---------------------------------------------------------------------------------------------------- item 1
@on_aurora
def takeover_by_anonymous_client_gets_a_fresh_session(b):
    takeover_attempt(b, [("anonymous", attacker())])


@on_aurora
def takeover_by_push_only_login_gets_nothing(b):
    key, _ = app_creds(b)

    def wrong_pw(b, clean=False):
        try:
            client(b, client_id="victim-dev", clean=clean, username=key, password="anything", timeout=15)
        except ConnectRefused as e:
            assert e.connack is not None and e.connack.rc == 4, e.connack  # bad user name or password
            return None
        raise AssertionError("<appkey> with a wrong password was accepted")

    takeover_attempt(b, [("push-only, wrong password", wrong_pw), ("push-only, no password", attacker(key))])


@on_aurora
def takeover_by_another_im_user_gets_nothing(b):
    key, _ = app_creds(b)
    takeover_attempt(b, [("IM user bobby", attacker("%s:bobby" % key, PW))])


@on_aurora
def takeover_by_a_user_of_another_app_gets_nothing(b):
    key, _ = app_creds(b)
    creds2 = new_app(b, "other")
    register(b, creds2, "mallory")
    # mallory's own login token (app 2) presented with the victim app's AppKey
    m = client(b, client_id="m-dev", username="%s:mallory" % creds2[0], password=PW, timeout=15)
    m.subscribe("im/inbox", qos=1)
    m.publish("im/token", b"", qos=1, wait=True)
    tok = json.loads(m.expect(5).payload)["token"]
    m.disconnect()

    def with_app_key(password):
        def connect(b, clean=False):
            try:
                return client(b, client_id="victim-dev", clean=clean, username="%s:mallory" % key, password=password,
                              timeout=15)
            except ConnectRefused:
                return None
        return connect

    takeover_attempt(b, [("app-2 user, password", with_app_key(PW)), ("app-2 user, token", with_app_key(tok)),
                         ("app-2 user as push-only device", attacker(key))])


@on_aurora
def takeover_of_an_online_victim_by_anonymous_and_other_user(b):
    key, _ = app_creds(b)
    takeover_attempt(b, [("anonymous", attacker(version=5)), ("IM user bobby", attacker("%s:bobby" % key, PW))],
                     victim_online=True)


@on_aurora
def same_identity_still_resumes_and_takes_over(b):
    creds = app_creds(b)
    register(b, creds, "alice", "bobby")
    bob = im_device(b, creds, "bobby", "bob-dev")
    a1 = im_device(b, creds, "alice", "alice-dev", clean=False, version=5)
    a2 = client(b, client_id="alice-dev", version=5, clean=False, username="%s:alice" % creds[0], password=PW,
                timeout=15)
    assert a2.connack.session_present
    assert a1.wait_disconnected(5) and a1.disconnect_rc == 0x8E, a1.disconnect_rc
    bob.publish("im/send", im_text("alice", "hello again"), qos=1, wait=True)
    assert json.loads(a2.expect(5).payload)["msg_body"]["text"] == "hello again"
    a2.disconnect()
    client(b, client_id="alice-dev", clean=False, username="%s:alice" % creds[0], password=PW,
           timeout=15).disconnect()


@on_aurora
def session_owner_survives_a_restart(b):
    """The owner is stored with the session: after a restart another identity still cannot resume it."""
    creds = app_creds(b)
    register(b, creds, "alice")
    v = im_device(b, creds, "alice", "victim-dev", clean=False)
    v.disconnect()
    client(b, client_id="data-pub").publish("data/alice", b"queued-x", qos=1, wait=True)
    time.sleep(0.3)
    b.restart()
    att = attacker()(b)
    assert att is not None and not att.connack.session_present
    att.subscribe([("data/#", 1)])
    assert not drain(att, 1.0)
    att.disconnect()


@on_aurora
def a_recreated_user_does_not_resume_the_deleted_users_session(b):
    """Items 1 and 9: a user deleted and registered again under the same name is another owner (the session owner
    holds the user's incarnation id): the new user's devices with the old client ids get fresh sessions, before
    (dev-1) and after (dev-2) a restart, and none of the old user's queued data."""
    creds = app_creds(b)
    register(b, creds, "alice")
    for cid in ("dev-1", "dev-2"):
        im_device(b, creds, "alice", cid, clean=False).disconnect()
    client(b, client_id="data-pub").publish("data/alice", b"queued-for-old-alice", qos=1, wait=True)
    st, body = http(b, "DELETE", "/v1/users/alice", None, basic(creds))
    assert st in (200, 204), (st, body)
    register(b, creds, "alice")
    for cid in ("dev-1", "dev-2"):
        if cid == "dev-2":
            b.restart()
        n = client(b, client_id=cid, clean=False, username="%s:alice" % creds[0], password=PW, timeout=15)
        assert not n.connack.session_present, "the new alice resumed the deleted alice's session " + cid
        assert not drain(n, 1.0)
        n.disconnect()


# ---------------------------------------------------------------------------------------------------- item 5
def raw_connack(b, version=4, **kw):
    r = raw(b)
    try:
        p = r.connect(kw.pop("client_id", "c1"), version, **kw)
        assert p is not None and p[0] == CONNACK, p
        return parse_connack(p[2], version)[1]
    finally:
        r.close()


@on_aurora(aurora_config="allow_anonymous = false\n")
def allow_anonymous_false_lets_nothing_unverified_in(b):
    creds = app_creds(b)
    key = creds[0]
    register(b, creds, "alice")
    for version, denied in ((4, 5), (5, 0x87)):
        assert raw_connack(b, version) == denied, "no username"
        assert raw_connack(b, version, username="") == denied, "empty username"
        assert raw_connack(b, version, username="", password=b"x") == denied, "empty username + password"
        assert raw_connack(b, version, username="carol", password=b"any") == denied, "plain username"
        assert raw_connack(b, version, username="carol") == denied, "plain username, no password"
        assert raw_connack(b, version, username=key) == denied, "<appkey> without a token"
        assert raw_connack(b, version, username=key, password=b"") == denied, "<appkey> with an empty token"
        assert raw_connack(b, version, username=key, password=b"guess") != 0, "<appkey> with any password"
        assert raw_connack(b, version, username=key + ":alice", password=b"wrong-pw") != 0, "wrong IM password"
    # a device token for another client id, or a user's login token, is not this device's credential
    st, body = device_token(b, creds, "other-device")
    assert st == 200, (st, body)
    assert raw_connack(b, 5, client_id="dev-1", username=key, password=body["token"].encode()) == 0x86
    # the real thing
    st, body = device_token(b, creds, "dev-1")
    assert st == 200 and body["token"].startswith("au1.") and body["client_id"] == "dev-1", (st, body)
    assert body["expires"] > time.time() + 86400
    assert raw_connack(b, 5, client_id="dev-1", username=key, password=body["token"].encode()) == 0
    assert raw_connack(b, 4, client_id="dev-1", username=key, password=body["token"].encode()) == 0
    assert raw_connack(b, 4, client_id="alice-1", username=key + ":alice", password=PW.encode()) == 0


@on_aurora
def device_tokens_with_anonymous_access_on(b):
    creds = app_creds(b)
    key = creds[0]
    # no token: still let in (allow_anonymous = true), but a wrong non-empty one is refused
    assert raw_connack(b, 5, client_id="dev-2", username=key) == 0
    assert raw_connack(b, 5, client_id="dev-2", username=key, password=b"au1.bogus.token") == 0x86
    assert raw_connack(b, 5, client_id="dev-2", username=key, password=b"not-a-token") == 0x86
    st, body = device_token(b, creds, "dev-2", ttl=120)
    assert st == 200 and body["expires"] <= time.time() + 121, (st, body)
    assert raw_connack(b, 5, client_id="dev-2", username=key, password=body["token"].encode()) == 0
    # a token of app 1 is no credential in app 2
    creds2 = new_app(b, "other")
    assert raw_connack(b, 5, client_id="dev-2", username=creds2[0], password=body["token"].encode()) == 0x86
    # a tokened device's session is not resumed by the same client id without the token
    c = client(b, client_id="dev-3", clean=False, username=key, password=device_token(b, creds, "dev-3")[1]["token"])
    c.subscribe("news/#", qos=1)
    c.disconnect()
    client(b, client_id="p").publish("news/1", b"for dev-3", qos=1, wait=True)
    time.sleep(0.2)
    a = client(b, client_id="dev-3", clean=False, username=key)
    assert not a.connack.session_present
    assert not drain(a, 0.8)
    a.disconnect()
    # the endpoint's errors
    assert device_token(b, creds, "")[0] == 400
    assert device_token(b, creds, "x" * 300)[0] == 400
    assert device_token(b, creds, "ok", ttl=0)[0] == 400
    assert device_token(b, creds, "ok", ttl="1")[0] == 400
    assert http(b, "POST", "/v1/devices/token", b"[1]", basic(creds))[0] == 400
    assert http(b, "POST", "/v1/devices/token", {"client_id": "x"}, basic((key, "W" * 24)))[0] == 401
    assert http(b, "POST", "/v1/devices/token", {"client_id": "x"})[0] == 401


# ---------------------------------------------------------------------------------------------------- item 8
@on_aurora
def wills_on_reserved_topics_are_refused(b):
    key, _ = app_creds(b)
    for topic in ("im/inbox", "im/send", "push/all", "im", "push"):
        for version, code in ((4, 5), (5, 0x90)):
            got = raw_connack(b, version, client_id="w1", will=(topic, b"x", 1, True))
            assert got == code, (topic, version, got)
    # an ordinary will is still fine
    assert raw_connack(b, 5, client_id="w2", will=("status/w2", b"gone", 0, False)) == 0
    # and nothing reached a subscriber of everything (nor the retained store)
    s = client(b, client_id="watch", version=5)
    s.subscribe("#", qos=1)
    assert not [m for m in drain(s, 0.5) if m.topic.startswith(("im", "push"))]


@on_aurora
def retained_messages_on_reserved_topics_are_refused(b):
    # directly: PUBACK 0x87, nothing stored
    r = raw(b)
    assert parse_connack(r.connect("pub5", 5)[2], 5)[1] == 0
    for pid, topic in enumerate(("push/all", "im/inbox", "im/x"), 1):
        r.send(publish_packet(topic, b"retained?", qos=1, retain=True, pid=pid, version=5))
        t, _, body = r.recv_packet(3)
        assert t == PUBACK and body[:2] == bytes([0, pid]) and len(body) >= 3 and body[2] == 0x87, (topic, body)
    r.close()
    # through a retained will of a dropped connection (set on a reserved topic: refused at CONNECT)
    for topic in ("push/all", "im/inbox"):
        w = client(b, client_id="w-" + topic.replace("/", "-"), version=5, check=False,
                   will=dict(topic=topic, payload=b"will-retained", qos=1, retain=True))
        if w.connack is not None and w.connack.rc == 0:
            w.drop()
        else:
            w._close_quietly()
    time.sleep(0.5)
    for attempt in ("live", "restart"):
        s = client(b, client_id="watch-" + attempt, version=5)
        s.subscribe([("#", 1)])
        got = [m for m in drain(s, 0.8) if m.topic.startswith(("im", "push"))]
        assert not got, (attempt, got)
        s.disconnect()
        if attempt == "live":
            b.restart()


@on_aurora(aurora_config="persistent_session_expiry = 2\n")
def mqtt311_persistent_session_expires(b):
    sub = client(b, client_id="old-dev", clean=False)
    sub.subscribe("t/old", qos=1)
    sub.disconnect()
    quick = client(b, client_id="quick-dev", clean=False)
    quick.subscribe("t/quick", qos=1)
    quick.disconnect()
    client(b, client_id="p").publish("t/old", b"m1", qos=1, wait=True)
    client(b, client_id="p2").publish("t/quick", b"q1", qos=1, wait=True)
    # within the expiry the session is there, with its message
    quick = client(b, client_id="quick-dev", clean=False)
    assert quick.connack.session_present
    assert quick.expect(3).payload == b"q1"
    quick.disconnect()
    time.sleep(3.5)
    again = client(b, client_id="old-dev", clean=False)
    assert not again.connack.session_present, "a 3.1.1 session outlived persistent_session_expiry"
    assert not drain(again, 0.8)
    again.disconnect()
    # the same across a restart: a session stored with the setting expires after it too
    s = client(b, client_id="restart-dev", clean=False)
    s.subscribe("t/r", qos=1)
    s.disconnect()
    b.restart()
    time.sleep(3.0)
    again = client(b, client_id="restart-dev", clean=False)
    assert not again.connack.session_present


if __name__ == "__main__":
    run_tests(globals())

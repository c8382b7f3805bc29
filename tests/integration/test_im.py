"""test_im.py - the IM service end to end: REST registration -> MQTT login on several devices -> single chat ->
group chat -> offline replay in order -> kill -9 after acknowledgements -> app isolation -> errors.

Devices are real MQTT clients (paho for the happy paths, raw sockets where reason codes matter); the app server
side is plain HTTP with Basic appKey:masterSecret, as JMessage's server SDKs send it.
"""
import base64
import json
import os
import sys
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Aurora, client, on_aurora, run_tests, wait_until, ConnectRefused, app_creds  # noqa: E402
from mqtt5_util import Raw5, publish_packet, subscribe_packet, sub_opts, ack_packet, P  # noqa: E402


def rest(b, method, path, body=None, creds=None):
    key, secret = creds or app_creds(b)
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (b.http_port, path), data=data, method=method)
    req.add_header("Authorization", "Basic " + base64.b64encode(("%s:%s" % (key, secret)).encode()).decode())
    if data is not None:
        req.add_header("Content-Type", "application/json; charset=utf-8")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            raw = r.read()
            return r.status, (json.loads(raw) if raw else None)
    except urllib.error.HTTPError as e:
        raw = e.read()
        return e.code, (json.loads(raw) if raw else None)


def register(b, *names, password="secret-pw", creds=None):
    st, body = rest(b, "POST", "/v1/users/", [{"username": n, "password": password} for n in names], creds)
    assert st == 201, (st, body)
    return body


def device(b, user, cid, password="secret-pw", clean=True, version=4, creds=None, subscribe=True):
    key, _ = creds or app_creds(b)
    # a password check is a slow hash on a worker thread: allow for a loaded machine
    c = client(b, client_id=cid, version=version, clean=clean, username="%s:%s" % (key, user), password=password,
               timeout=15)
    if subscribe:
        c.subscribe("im/inbox", qos=1)
    return c


def text(target, body, target_type="single", **extra):
    m = {"version": 1, "target_type": target_type, "target_id": str(target), "msg_type": "text",
         "msg_body": {"text": body}}
    m.update(extra)
    return json.dumps(m).encode()


def inbox(c, n=1, timeout=5):
    return [json.loads(m.payload) for m in c.messages(n, timeout)]


def window(minutes=10):
    """JMessage history window parameters: the last `minutes` up to a minute ahead, as UTC date-times."""
    fmt = "%Y-%m-%d+%H:%M:%S"
    now = time.time()
    return "&begin_time=%s&end_time=%s" % (time.strftime(fmt, time.gmtime(now - minutes * 60)),
                                          time.strftime(fmt, time.gmtime(now + 60)))


def texts(c, n, timeout=8):
    """The next n text messages on the inbox (group events and other kinds in between are skipped)."""
    out, deadline = [], time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        m = json.loads(c.expect(max(0.1, deadline - time.monotonic())).payload)
        if m.get("msg_type") == "text":
            out.append(m)
    return out


@on_aurora
def login_refusals(b):
    register(b, "alice")
    key, _ = app_creds(b)
    for user, pw, why in (("alice", "wrong-pw", "password"), ("nobody", "secret-pw", "user"),
                          ("alice", "secret-pw", "appkey")):
        username = ("X" * 24 if why == "appkey" else key) + ":" + user
        try:
            client(b, client_id="x-" + why, username=username, password=pw, version=5)
            assert False, "login with a bad %s was accepted" % why
        except ConnectRefused as e:
            assert e.connack.reason_code == 0x86, (why, e.connack.reason_code)


@on_aurora
def single_chat_reaches_every_device(b):
    register(b, "alice", "bobby")
    a1 = device(b, "alice", "alice-phone")
    a2 = device(b, "alice", "alice-pad")
    b1 = device(b, "bobby", "bob-phone")
    a1.publish("im/send", text("bobby", "hi bobby", client_msg_id="c-1"), qos=1, wait=True)
    got = inbox(b1)[0]
    assert got["from_id"] == "alice" and got["target_id"] == "bobby" and got["msg_body"]["text"] == "hi bobby"
    assert got["sequence"] == 1 and got["msgid"] > 0 and got["msg_ctime"] > 0
    # the sender's devices get it too (the sending one correlates by client_msg_id)
    for d in (a1, a2):
        echo = inbox(d)[0]
        assert echo["msgid"] == got["msgid"] and echo["client_msg_id"] == "c-1"
    b1.publish("im/send", text("alice", "hi alice"), qos=1, wait=True)
    assert inbox(a2)[0]["sequence"] == 2  # one conversation, one sequence


@on_aurora
def resend_with_client_msg_id_is_not_duplicated(b):
    register(b, "alice", "bobby")
    a1 = device(b, "alice", "a1")
    b1 = device(b, "bobby", "b1")
    for _ in range(3):
        a1.publish("im/send", text("bobby", "once", client_msg_id="same-id"), qos=1, wait=True)
    got = inbox(b1)
    assert len(got) == 1
    b1.expect_none(1.0)


@on_aurora
def group_chat_and_offline_member(b):
    register(b, "alice", "bobby", "carol")
    st, g = rest(b, "POST", "/v1/groups/", {"owner_username": "alice", "name": "team",
                                            "members_username": ["bobby", "carol"], "desc": "d"})
    assert st == 201, (st, g)
    gid = g["gid"]
    a1 = device(b, "alice", "a1")
    b1 = device(b, "bobby", "b1")
    wait_until(lambda: True, 0.2)
    for i in range(3):
        a1.publish("im/send", text(gid, "g%d" % i, target_type="group"), qos=1, wait=True)
    msgs = texts(b1, 3)
    assert [m["msg_body"]["text"] for m in msgs] == ["g0", "g1", "g2"], msgs
    assert all(m["target_type"] == "group" and m["target_id"] == str(gid) for m in msgs)
    # carol was never online: she gets the group's history on her first login, in order
    c1 = device(b, "carol", "c1")
    got = texts(c1, 3)
    assert [m["msg_body"]["text"] for m in got] == ["g0", "g1", "g2"]
    assert [m["sequence"] for m in got] == sorted(m["sequence"] for m in got)
    # a non-member is refused with 803005
    register(b, "davey")
    r = Raw5(b)
    key, _ = app_creds(b)
    r.connect("d1", True, username="%s:davey" % key, password=b"secret-pw")
    r.send(subscribe_packet(1, [("im/inbox", sub_opts(1))]))
    r.expect("SUBACK")
    r.send(publish_packet("im/send", text(gid, "let me in", target_type="group"), qos=1, pid=7))
    ack = r.expect("PUBACK")
    assert ack.reason >= 0x80
    ev = json.loads(r.expect("PUBLISH").payload)
    assert ev["event"] == "send_error" and ev["code"] == 803005, ev


@on_aurora
def offline_device_gets_exactly_what_it_missed_in_order(b):
    register(b, "alice", "bobby")
    a1 = device(b, "alice", "a1")
    b1 = device(b, "bobby", "bob-phone", clean=False)
    a1.publish("im/send", text("bobby", "seen"), qos=1, wait=True)
    assert inbox(b1)[0]["msg_body"]["text"] == "seen"   # acknowledged by paho: cursor moves
    time.sleep(0.3)
    b1.disconnect()
    for i in range(20):
        a1.publish("im/send", text("bobby", "missed %d" % i), qos=1, wait=True)
    b1 = device(b, "bobby", "bob-phone", clean=False, subscribe=False)  # resumed session keeps im/inbox
    got = inbox(b1, 20, timeout=10)
    assert [m["msg_body"]["text"] for m in got] == ["missed %d" % i for i in range(20)], got[:3]
    b1.expect_none(1.0)


@on_aurora
def acknowledged_messages_survive_kill9(b):
    register(b, "alice", "bobby")
    a1 = device(b, "alice", "a1")
    for i in range(50):
        a1.publish("im/send", text("bobby", "durable %d" % i), qos=1, wait=True)   # PUBACK = on disk
    b.kill()
    b.restart()
    b1 = device(b, "bobby", "b-new")
    got = inbox(b1, 50, timeout=10)
    assert [m["msg_body"]["text"] for m in got] == ["durable %d" % i for i in range(50)]
    st, hist = rest(b, "GET", "/v2/users/alice/messages?count=100" + window())
    assert st == 200 and len(hist["messages"]) == 50, (st, hist)


@on_aurora
def pipelined_sends_survive_kill9_mid_stream(b):
    """Many im/send in flight at once (they share store batches and commit rounds), kill -9 while PUBACKs are
    still coming: every acknowledged message is stored, the stored sequences are 1..n without a gap, and the
    conversation goes on at n + 1 after the restart (its head was written with the messages)."""
    register(b, "alice", "bobby")
    key, _ = app_creds(b)
    r = Raw5(b)
    r.connect("a-pipe", True, username="%s:alice" % key, password=b"secret-pw")
    total = 990
    r.send(b"".join(publish_packet("im/send", text("bobby", "pipe %d" % i), qos=1, pid=i + 1) for i in range(total)))
    acked = set()
    while len(acked) < 1:
        p = r.recv_packet(timeout=10)
        assert p is not None, "PUBACKs stopped after %d" % len(acked)
        if p.name == "PUBACK":
            assert p.reason < 0x80, p.reason
            acked.add(p.pid - 1)
    b.kill()
    b.restart()
    st, hist = rest(b, "GET", "/v2/users/alice/messages?count=1000" + window())
    assert st == 200, (st, hist)
    stored = {m["msg_body"]["text"]: m["sequence"] for m in hist["messages"]}
    missing = [i for i in acked if "pipe %d" % i not in stored]
    assert not missing, "acknowledged but not stored: %r" % missing[:10]
    seqs = sorted(stored.values())
    print("  acked %d, stored %d of %d" % (len(acked), len(seqs), total))
    assert seqs == list(range(1, len(seqs) + 1)), seqs[:5]
    b1 = device(b, "bobby", "b-after")
    a1 = device(b, "alice", "a-after")
    a1.publish("im/send", text("bobby", "after restart"), qos=1, wait=True)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:   # the replayed backlog first, then the new one
        m = json.loads(b1.expect(max(0.1, deadline - time.monotonic())).payload)
        if m.get("msg_body", {}).get("text") == "after restart":
            assert m["sequence"] == len(seqs) + 1, (m, len(seqs))
            break
    else:
        assert False, "the message after the restart did not arrive"


@on_aurora
def rest_message_from_admin(b):
    register(b, "bobby")
    st, body = rest(b, "POST", "/v1/admins/", {"username": "admin1", "password": "secret-pw"})
    assert st == 201, (st, body)
    b1 = device(b, "bobby", "b1")
    st, body = rest(b, "POST", "/v1/messages", {"version": 1, "target_type": "single", "target_id": "bobby",
                                                "from_type": "admin", "from_id": "admin1", "msg_type": "text",
                                                "msg_body": {"text": "from the server"}})
    assert st == 201 and body["msg_id"] > 0 and body["msg_ctime"] > 0, (st, body)
    m = inbox(b1)[0]
    assert m["msg_body"]["text"] == "from the server" and m["msgid"] == body["msg_id"]
    st, body = rest(b, "POST", "/v1/messages", {"version": 1, "target_type": "single", "target_id": "nobody",
                                                "from_type": "admin", "from_id": "admin1", "msg_type": "text",
                                                "msg_body": {"text": "x"}})
    assert st >= 400 and body["error"]["code"] == 899002, (st, body)
    st, body = rest(b, "POST", "/v1/messages", {"version": 1}, creds=("A" * 24, "B" * 24))
    assert st == 401 or body["error"]["code"] in (899008, 899009), (st, body)


@on_aurora
def bad_messages_get_jmessage_codes(b):
    register(b, "alice")
    key, _ = app_creds(b)
    r = Raw5(b)
    r.connect("a-raw", True, username="%s:alice" % key, password=b"secret-pw")
    r.send(subscribe_packet(1, [("im/inbox", sub_opts(1))]))
    r.expect("SUBACK")
    cases = [(b"{not json", 803011), (text("nobody", "x"), 803003),
             (text("alice", "x" * 5000), 803007)]
    pid = 10
    for payload, code in cases:
        r.send(publish_packet("im/send", payload, qos=1, pid=pid))
        ack = r.expect("PUBACK")
        assert ack.pid == pid and ack.reason >= 0x80, (code, ack.reason)
        ev = json.loads(r.expect("PUBLISH").payload)
        assert ev["event"] == "send_error" and ev["code"] == code, (code, ev)
        pid += 1
    # the IM topics are the service's: plain publishes and subscriptions to them are refused
    r.send(publish_packet("im/inbox", b"spoof", qos=1, pid=99))
    assert r.expect("PUBACK").reason == 0x87
    r.send(subscribe_packet(2, [("im/#", sub_opts(1))]))
    assert r.expect("SUBACK").body[-1] == 0x87


@on_aurora
def login_token_for_reconnects(b):
    register(b, "alice")
    a1 = device(b, "alice", "a1")
    a1.publish("im/token", b"", qos=1, wait=True)
    ev = inbox(a1)[0]
    assert ev["event"] == "token" and ev["token"].startswith("au1.")
    a1.disconnect()
    a2 = device(b, "alice", "a2", password=ev["token"])
    assert a2.connack.reason_code == 0


@on_aurora
def apps_cannot_see_each_other(b):
    register(b, "alice", "bobby")
    # a second app through the operator API
    tok = open(os.path.join(b.data_dir, "operator.token")).read().strip()
    req = urllib.request.Request("http://127.0.0.1:%d/ops/v1/apps" % b.http_port, data=b'{"name":"other"}',
                                 method="POST")
    req.add_header("Authorization", "Bearer " + tok)
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=10) as r:
        app2 = json.loads(r.read())
    creds2 = (app2["appkey"], app2["master_secret"])
    register(b, "mallory", creds=creds2)
    st, body = rest(b, "GET", "/v1/users/alice", creds=creds2)
    assert st == 404 or body["error"]["code"] == 899002, (st, body)
    m = device(b, "mallory", "m1", creds=creds2)
    m.publish("im/send", text("alice", "can you see me?"), qos=1, wait=True)
    ev = inbox(m)[0]
    assert ev.get("event") == "send_error" and ev["code"] == 803003
    a1 = device(b, "alice", "a1")
    a1.expect_none(1.0)


@on_aurora
def app_history_and_retract(b):
    register(b, "alice", "bobby")
    a1 = device(b, "alice", "a1")
    b1 = device(b, "bobby", "b1")
    for i in range(3):
        a1.publish("im/send", text("bobby", "h%d" % i), qos=1, wait=True)
    sent = texts(b1, 3)
    st, body = rest(b, "GET", "/v2/messages?count=10" + window())
    assert st == 200 and [m["msg_body"]["text"] for m in body["messages"]] == ["h0", "h1", "h2"], (st, body)
    # paging: two at a time through the cursor
    st, p1 = rest(b, "GET", "/v2/messages?count=2" + window())
    assert st == 200 and [m["msg_body"]["text"] for m in p1["messages"]] == ["h0", "h1"] and p1["cursor"], p1
    st, p2 = rest(b, "GET", "/v2/messages?count=2&cursor=" + p1["cursor"])
    assert st == 200 and [m["msg_body"]["text"] for m in p2["messages"]] == ["h2"], p2
    st, body = rest(b, "GET", "/v2/messages?count=10")
    assert st == 400 and body["error"]["code"] == 899003, (st, body)   # the window is required
    victim = sent[1]["msgid"]
    st, body = rest(b, "POST", "/v1/messages/bobby/%d/retract" % victim)
    assert st >= 400 and body["error"]["code"] == 855002, (st, body)        # not the sender
    st, body = rest(b, "POST", "/v1/messages/alice/%d/retract" % victim)
    assert st == 204, (st, body)
    ev = json.loads(b1.expect(5).payload)
    assert ev.get("event") == "msg_retract" and ev["retracted_msgid"] == victim, ev
    st, body = rest(b, "POST", "/v1/messages/alice/%d/retract" % victim)
    assert st >= 400 and body["error"]["code"] == 855004, (st, body)        # already retracted
    st, body = rest(b, "POST", "/v1/messages/alice/999999/retract")
    assert st >= 400 and body["error"]["code"] == 855003, (st, body)
    st, body = rest(b, "GET", "/v2/users/alice/messages?count=100" + window())
    texts_left = [m["msg_body"]["text"] for m in body["messages"] if m.get("msg_type") == "text"]
    assert texts_left == ["h0", "h2"], body


@on_aurora
def silenced_member_cannot_send_to_the_group(b):
    register(b, "alice", "bobby")
    st, g = rest(b, "POST", "/v1/groups/", {"owner_username": "alice", "name": "quiet", "members_username": ["bobby"]})
    assert st == 201, (st, g)
    gid = g["gid"]
    st, body = rest(b, "PUT", "/v1/groups/messages/%d/silence?status=true" % gid, ["bobby"])
    assert st == 204, (st, body)
    key, _ = app_creds(b)
    r = Raw5(b)
    r.connect("b-raw", True, username="%s:bobby" % key, password=b"secret-pw")
    r.send(subscribe_packet(1, [("im/inbox", sub_opts(1))]))
    r.expect("SUBACK")
    r.send(publish_packet("im/send", text(gid, "may I?", target_type="group"), qos=1, pid=5))
    assert r.expect("PUBACK").reason == 0x87
    evs = [json.loads(p.payload) for p in (r.expect("PUBLISH"), r.expect("PUBLISH"))]
    assert any(e.get("event") == "send_error" and e["code"] == 803012 for e in evs), evs
    b.restart()                      # kept in the group record
    r = Raw5(b)
    r.connect("b-raw2", True, username="%s:bobby" % key, password=b"secret-pw")
    r.send(publish_packet("im/send", text(gid, "still?", target_type="group"), qos=1, pid=6))
    assert r.expect("PUBACK", timeout=10).reason == 0x87
    st, body = rest(b, "PUT", "/v1/groups/messages/%d/silence?status=false" % gid, ["bobby"])
    assert st == 204, (st, body)
    r.send(publish_packet("im/send", text(gid, "thanks", target_type="group"), qos=1, pid=7))
    assert r.expect("PUBACK", timeout=10).reason == 0
    st, body = rest(b, "PUT", "/v1/groups/messages/%d/silence?status=maybe" % gid, ["bobby"])
    assert st == 400 and body["error"]["code"] == 899003, (st, body)


@on_aurora
def group_endpoints_refuse_bad_and_unknown_gids(b):
    # silence and group history take their {gid} like the /v1/groups/ endpoints: malformed -> 899003,
    # a group this app does not have -> 899006
    for path in ("/v1/groups/messages/%s/silence?status=true", "/v2/groups/%s/messages?count=10" + window()):
        method = "PUT" if "silence" in path else "GET"
        payload = ["bobby"] if method == "PUT" else None
        st, body = rest(b, method, path % "12ab", payload)
        assert st == 400 and body["error"]["code"] == 899003, (path, st, body)
        st, body = rest(b, method, path % "987654321", payload)
        assert st >= 400 and body["error"]["code"] == 899006, (path, st, body)


run_tests(globals())

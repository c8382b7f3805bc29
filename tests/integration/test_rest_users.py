"""test_rest_users.py - JMessage REST v1 users and admins on the real gateway (docs/rest-api.md §2):
authentication, register (batch of 500, per-item errors), get/update/delete, list, password, online status,
forbid, a user's groups, blacklist, lenient HTTP (slashes, pipelining, 100-continue, bodies), persistence
across restarts and app isolation. Devices are real MQTT clients logging in as <appkey>:<user>."""
import base64
import json
import os
import socket
import sys
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import ConnectRefused, client, on_aurora, run_tests, scale, wait_until, http_ready, app_creds  # noqa: E402


# ---------------------------------------------------------------------------------------------- helpers


def basic(creds):
    return "Basic " + base64.b64encode(("%s:%s" % creds).encode()).decode()


def rest(b, method, path, body=None, creds=None, auth=None, raw=None, headers=None, timeout=30):
    """-> (status, parsed JSON or None). body: JSON-serialised; raw: bytes sent as is."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (b.http_port, path), data=data, method=method)
    req.add_header("Authorization", auth if auth is not None else basic(creds or app_creds(b)))
    if data is not None:
        req.add_header("Content-Type", "application/json; charset=utf-8")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw_body = r.read()
            return r.status, (json.loads(raw_body) if raw_body else None)
    except urllib.error.HTTPError as e:
        raw_body = e.read()
        return e.code, (json.loads(raw_body) if raw_body else None)


def err(resp):
    st, body = resp
    assert body and "error" in body, resp
    return st, body["error"]["code"]


def register(b, *names, password="secret-pw", creds=None, **profile):
    st, body = rest(b, "POST", "/v1/users/", [dict(username=n, password=password, **profile) for n in names], creds)
    assert st == 201 and all("error" not in x for x in body), (st, body)
    return body


def device(b, user, cid, password="secret-pw", version=5, creds=None, check=True):
    key, _ = creds or app_creds(b)
    return client(b, client_id=cid, version=version, username="%s:%s" % (key, user), password=password, check=check)


def new_app(b, name="second"):
    tok = open(os.path.join(b.data_dir, "operator.token")).read().strip()
    st, body = rest(b, "POST", "/ops/v1/apps", {"name": name}, auth="Bearer " + tok)
    assert st == 201, (st, body)
    return body["appkey"], body["master_secret"]


def http_raw(b, data, timeout=10):
    """Send raw bytes on one connection, read until the server closes it or goes quiet."""
    s = socket.create_connection(("127.0.0.1", b.http_port), timeout=timeout)
    s.sendall(data)
    out = b""
    s.settimeout(2)
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
    except socket.timeout:
        pass
    s.close()
    return out


def responses(raw):
    """Split pipelined HTTP/1.1 responses -> [(status, body bytes)]."""
    out = []
    while raw:
        head, _, rest_ = raw.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        n = 0
        for h in lines[1:]:
            k, _, v = h.partition(b":")
            if k.strip().lower() == b"content-length":
                n = int(v.strip())
        if status == 100:
            raw = rest_
            continue
        out.append((status, rest_[:n]))
        raw = rest_[n:]
    return out


# ---------------------------------------------------------------------------------------------- authentication

@on_aurora
def auth_failures_get_jmessage_codes(b):
    http_ready(b)
    register(b, "alice")
    key, secret = app_creds(b)
    assert err(rest(b, "GET", "/v1/users/alice", auth="")) == (401, 899007)
    assert err(rest(b, "GET", "/v1/users/alice", creds=(key, "x" * 24))) == (401, 899008)
    assert err(rest(b, "GET", "/v1/users/alice", creds=("A" * 24, secret))) == (401, 899008)   # no key oracle
    assert err(rest(b, "GET", "/v1/users/alice", auth="Basic %%%%")) == (401, 899008)
    assert err(rest(b, "GET", "/v1/users/alice", auth="Bearer " + secret)) == (401, 899008)
    assert err(rest(b, "GET", "/v1/users/alice", auth="Basic " + base64.b64encode(key.encode()).decode())) \
        == (401, 899008)
    # scheme case-insensitive, padding optional, surrounding blanks tolerated
    tok = base64.b64encode(("%s:%s" % (key, secret)).encode()).decode()
    for a in ("basic " + tok, "BASIC  " + tok.rstrip("=") + " ", basic((key, secret))):
        st, body = rest(b, "GET", "/v1/users/alice", auth=a)
        assert st == 200 and body["username"] == "alice", (a, st, body)
    # every endpoint is guarded
    for method, path, body in (("POST", "/v1/users/", [{"username": "zed1", "password": "pppp"}]),
                               ("GET", "/v1/users/?start=0&count=1", None), ("DELETE", "/v1/users/alice", None),
                               ("POST", "/v1/groups/", {"owner_username": "alice", "name": "g"}),
                               ("GET", "/v1/groups/?start=0&count=1", None), ("POST", "/v1/admins/", {})):
        assert err(rest(b, method, path, body, creds=(key, "y" * 24))) == (401, 899008), (method, path)
    assert rest(b, "GET", "/v1/users/alice")[0] == 200


# ---------------------------------------------------------------------------------------------- register / get

@on_aurora
def register_get_and_per_item_errors(b):
    http_ready(b)
    st, body = rest(b, "POST", "/v1/users/", [
        {"username": "tom.cat@x", "password": "secret", "nickname": "Tom", "avatar": "qiniu/image/a1",
         "birthday": "1990-01-24", "gender": 1, "signature": "hi \U0001F600", "region": "sz", "address": "road 1",
         "extras": {"level": 3}},
        {"username": "jerry", "password": "cheese"},
        {"username": "jerry", "password": "cheese2"},                   # repeated in the batch
        {"username": "_bad", "password": "xxxx"},                       # first char
        {"username": "shortpw", "password": "abc"},                     # password too short
        {"username": "nickbad", "password": "xxxx", "nickname": "a\nb"},
        {"username": "gend", "password": "xxxx", "gender": 3},
        {"username": "x" * 129, "password": "xxxx"},
        "not an object",
        {"username": 42, "password": "xxxx"},
    ])
    assert st == 201, (st, body)
    assert len(body) == 10
    assert body[0] == {"username": "tom.cat@x"} and body[1] == {"username": "jerry"}
    codes = [x.get("error", {}).get("code") for x in body]
    assert codes == [None, None, 899001, 899003, 899003, 899003, 899003, 899003, 899003, 899003], body
    assert body[7]["username"] == "x" * 128 and body[9]["username"] == ""
    # existing names
    st, body = rest(b, "POST", "/v1/users/", [{"username": "jerry", "password": "cheese"},
                                              {"username": "newbie", "password": "cheese"}])
    assert st == 201 and body[0]["error"]["code"] == 899001 and "error" not in body[1], body
    st, u = rest(b, "GET", "/v1/users/tom.cat@x")
    assert st == 200, (st, u)
    assert u["nickname"] == "Tom" and u["avatar"] == "qiniu/image/a1" and u["gender"] == 1
    assert u["birthday"] == "1990-01-24 00:00:00" and u["signature"] == "hi \U0001F600" and u["extras"] == {"level": 3}
    assert u["region"] == "sz" and u["address"] == "road 1" and len(u["ctime"]) == 19 and len(u["mtime"]) == 19
    assert "password" not in u and "token_gen" not in u and "forbidden" not in u
    st, u = rest(b, "GET", "/v1/users/jerry")
    assert st == 200 and set(u) == {"username", "mtime", "ctime"}, u
    # whole-request errors
    assert err(rest(b, "POST", "/v1/users/", {"username": "a1234", "password": "xxxx"})) == (400, 899003)
    assert err(rest(b, "POST", "/v1/users/", [])) == (400, 899003)
    assert err(rest(b, "POST", "/v1/users/", raw=b"[{\"username\": ")) == (400, 899003)
    assert err(rest(b, "POST", "/v1/users/", raw=b"[] []")) == (400, 899003)
    assert err(rest(b, "POST", "/v1/users/", raw=b"")) == (400, 899003)
    assert err(rest(b, "POST", "/v1/users/", [{"username": "u%04d" % i, "password": "xxxx"} for i in range(501)])) \
        == (400, 899013)
    assert err(rest(b, "GET", "/v1/users/nobody")) == (403, 899002)
    assert err(rest(b, "GET", "/v1/users/no")) == (400, 899003)
    # a registered user logs in over MQTT with the password
    d = device(b, "jerry", "j1", password="cheese")
    assert d.connack.reason_code == 0
    d.disconnect()


@on_aurora
def batch_of_500_and_paging(b):
    http_ready(b)
    n = min(500, scale(500))          # the sanitizer pass (TEST_SCALE=0.5) hashes half as many
    names = ["bulk%03d" % i for i in range(n)]
    t0 = time.monotonic()
    # 500 PBKDF2 hashes on the authpool threads: ~8 s on an idle 2-core host; generous on a loaded one
    st, body = rest(b, "POST", "/v1/users/", [{"username": n, "password": "pw-%s" % n} for n in names], timeout=240)
    took = time.monotonic() - t0
    assert st == 201 and [x["username"] for x in body] == names, (st, body[:3])
    assert all("error" not in x for x in body), [x for x in body if "error" in x][:3]
    print("    %d users registered in one request in %.1f s" % (n, took))
    st, page = rest(b, "GET", "/v1/users/?start=0&count=500")
    assert st == 200 and page["total"] == n and page["count"] == n and page["start"] == 0
    assert [u["username"] for u in page["users"]] == names
    st, page = rest(b, "GET", "/v1/users/?start=%d&count=100" % (n - 10))
    assert page["count"] == 10 and [u["username"] for u in page["users"]] == names[-10:], page
    st, page = rest(b, "GET", "/v1/users?count=3")                      # start defaults to 0
    assert page["count"] == 3 and page["users"][0]["username"] == "bulk000"
    st, page = rest(b, "GET", "/v1/users/?start=600&count=10")
    assert st == 200 and page["count"] == 0 and page["users"] == [] and page["total"] == n
    for q in ("start=0&count=501", "start=0&count=0", "start=-1&count=5", "start=0", "start=x&count=5",
              "start=0&count=5x"):
        assert err(rest(b, "GET", "/v1/users/?" + q)) == (400, 899003), q
    # the batch's passwords were hashed: one of them logs in
    d = device(b, names[-1], "bulk-dev", password="pw-" + names[-1])
    d.disconnect()


# ---------------------------------------------------------------------------------------------- update / delete

@on_aurora
def update_profile_fields(b):
    http_ready(b)
    register(b, "alice", nickname="Al", region="north")
    assert rest(b, "PUT", "/v1/users/alice", {"nickname": "Alice", "gender": 2, "extras": {"k": [1, 2]},
                                              "birthday": "2000-02-29 10:11:12"}) == (204, None)
    st, u = rest(b, "GET", "/v1/users/alice")
    assert u["nickname"] == "Alice" and u["gender"] == 2 and u["extras"] == {"k": [1, 2]} and u["region"] == "north"
    assert u["birthday"] == "2000-02-29 10:11:12"
    assert rest(b, "PUT", "/v1/users/alice", {"region": "", "nickname": None, "signature": "s"})[0] == 204
    st, u = rest(b, "GET", "/v1/users/alice")
    assert "region" not in u and u["nickname"] == "Alice" and u["signature"] == "s", u
    for bad in ({}, {"gender": "1"}, {"gender": 5}, {"nickname": "x" * 65}, {"birthday": "2001-02-29"},
                {"extras": {"x": "y" * 600}}, {"extras": [1]}, {"signature": "s" * 251}, {"avatar": "a b"}, [1]):
        assert err(rest(b, "PUT", "/v1/users/alice", bad)) == (400, 899003), bad
    assert err(rest(b, "PUT", "/v1/users/alice", raw=b'{"nickname":"a","nickname":"b"}')) == (400, 899003)
    assert err(rest(b, "PUT", "/v1/users/alice", raw=b"")) == (400, 899003)
    assert err(rest(b, "PUT", "/v1/users/nobody", {"nickname": "x"})) == (403, 899002)
    # concurrent updates of different fields on several connections are all kept (serialised on the writer)
    import threading
    fields = ["nickname", "signature", "region", "address"]
    threads = [threading.Thread(target=rest, args=(b, "PUT", "/v1/users/alice", {f: "v-" + f})) for f in fields]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    st, u = rest(b, "GET", "/v1/users/alice")
    assert all(u[f] == "v-" + f for f in fields), u


@on_aurora
def delete_user_disconnects_and_frees_the_name(b):
    http_ready(b)
    register(b, "alice", "bobby", "carol")
    st, g = rest(b, "POST", "/v1/groups/", {"owner_username": "alice", "name": "g", "members_username": ["bobby"]})
    assert st == 201
    d = device(b, "bobby", "bob-dev")
    assert rest(b, "DELETE", "/v1/users/bobby") == (204, None)
    assert d.wait_disconnected(5), "the deleted user's device stayed connected"
    assert err(rest(b, "GET", "/v1/users/bobby")) == (403, 899002)
    assert err(rest(b, "DELETE", "/v1/users/bobby")) == (403, 899002)
    st, members = rest(b, "GET", "/v1/groups/%d/members/" % g["gid"])
    assert [m["username"] for m in members] == ["alice"], members
    try:
        device(b, "bobby", "bob-dev2")
        assert False, "a deleted user logged in"
    except ConnectRefused:
        pass
    # the name can be registered again, as a new user without the old groups
    register(b, "bobby", password="other-pw")
    st, groups = rest(b, "GET", "/v1/users/bobby/groups/")
    assert st == 200 and groups == [], groups
    st, page = rest(b, "GET", "/v1/users/?start=0&count=10")
    assert page["total"] == 3 and sorted(u["username"] for u in page["users"]) == ["alice", "bobby", "carol"]
    # DELETE with a body is fine
    assert rest(b, "DELETE", "/v1/users/carol", raw=b'{"ignored": true}')[0] == 204


@on_aurora
def password_change_revokes_the_old_one(b):
    http_ready(b)
    register(b, "alice", password="old-password")
    d = device(b, "alice", "a-old", password="old-password")
    d.disconnect()
    assert rest(b, "PUT", "/v1/users/alice/password", {"new_password": "new-password"}) == (204, None)
    try:
        device(b, "alice", "a-old2", password="old-password")
        assert False, "the old password still works"
    except ConnectRefused as e:
        assert e.connack.reason_code == 0x86, e.connack
    device(b, "alice", "a-new", password="new-password").disconnect()
    for bad in ({}, {"new_password": "abc"}, {"new_password": 1234}, {"password": "abcdef"}):
        assert err(rest(b, "PUT", "/v1/users/alice/password", bad)) == (400, 899003), bad
    assert err(rest(b, "PUT", "/v1/users/nobody/password", {"new_password": "abcdef"})) == (403, 899002)
    # the profile was kept
    st, u = rest(b, "GET", "/v1/users/alice")
    assert st == 200 and u["username"] == "alice"


# ---------------------------------------------------------------------------------------------- status / forbid

@on_aurora
def userstat_single_and_batch(b):
    http_ready(b)
    register(b, "alice", "bobby", "carol")
    assert rest(b, "GET", "/v1/users/alice/userstat") == (200, {"login": False, "online": False})
    a1 = device(b, "alice", "alice-phone")
    a2 = device(b, "alice", "alice-web", version=4)
    c1 = device(b, "carol", "carol-phone", version=5)
    assert rest(b, "GET", "/v1/users/alice/userstat") == (200, {"login": True, "online": True})
    st, body = rest(b, "POST", "/v1/users/userstat", ["alice", "bobby", "carol"])
    assert st == 200, (st, body)
    by = {x["username"]: x["devices"] for x in body}
    assert [x["username"] for x in body] == ["alice", "bobby", "carol"]
    assert len(by["alice"]) == 2 and all(d["login"] and d["online"] for d in by["alice"]), by
    assert by["bobby"] == [] and len(by["carol"]) == 1
    c1.disconnect()
    assert wait_until(lambda: rest(b, "GET", "/v1/users/carol/userstat")[1] == {"login": False, "online": False})
    a1.disconnect()
    a2.disconnect()
    assert err(rest(b, "POST", "/v1/users/userstat", ["alice", "nobody"])) == (403, 899002)
    assert err(rest(b, "POST", "/v1/users/userstat", [])) == (400, 899003)
    assert err(rest(b, "POST", "/v1/users/userstat", {"a": 1})) == (400, 899003)
    assert err(rest(b, "POST", "/v1/users/userstat", ["u%04d" % i for i in range(501)])) == (400, 899013)
    assert err(rest(b, "GET", "/v1/users/nobody/userstat")) == (403, 899002)


@on_aurora
def persistent_session_counts_as_logged_in(b):
    http_ready(b)
    register(b, "alice")
    key, _ = app_creds(b)
    d = client(b, client_id="alice-keep", version=5, clean=False, username="%s:alice" % key, password="secret-pw",
               properties={"SessionExpiryInterval": 600})
    d.disconnect()
    assert wait_until(lambda: rest(b, "GET", "/v1/users/alice/userstat")[1] == {"login": True, "online": False})
    st, body = rest(b, "POST", "/v1/users/userstat", ["alice"])
    assert body == [{"devices": [{"login": True, "online": False, "platform": ""}], "username": "alice"}], body


@on_aurora
def forbid_and_reenable(b):
    http_ready(b)
    register(b, "alice")
    d = device(b, "alice", "a1")
    assert rest(b, "PUT", "/v1/users/alice/forbidden?disable=true") == (204, None)
    assert d.wait_disconnected(5), "a forbidden user's device stayed connected"
    try:
        device(b, "alice", "a2")
        assert False, "a forbidden user logged in"
    except ConnectRefused as e:
        assert e.connack.reason_code == 0x8A, e.connack
    assert rest(b, "PUT", "/v1/users/alice/forbidden?disable=true")[0] == 204          # idempotent
    assert rest(b, "PUT", "/v1/users/alice/forbidden?disable=false", raw=b"")[0] == 204
    device(b, "alice", "a3").disconnect()
    for q in ("", "?disable=yes", "?disable=", "?disable=TRUE", "?enable=true"):
        assert err(rest(b, "PUT", "/v1/users/alice/forbidden" + q)) == (400, 899003), q
    assert err(rest(b, "PUT", "/v1/users/nobody/forbidden?disable=true")) == (403, 899002)


# ---------------------------------------------------------------------------------------------- admins

@on_aurora
def admins_register_and_list(b):
    http_ready(b)
    register(b, "alice")
    assert rest(b, "POST", "/v1/admins/", {"username": "admin1", "password": "secret-pw", "nickname": "Boss"}) \
        == (201, None)
    assert rest(b, "POST", "/v1/admins", {"username": "admin2", "password": "secret-pw"})[0] == 201
    assert err(rest(b, "POST", "/v1/admins/", {"username": "admin1", "password": "secret-pw"})) == (403, 899001)
    assert err(rest(b, "POST", "/v1/admins/", {"username": "alice", "password": "secret-pw"})) == (403, 899001)
    st, body = rest(b, "POST", "/v1/users/", [{"username": "admin1", "password": "xxxx"}])
    assert body[0]["error"]["code"] == 899001
    for bad in ([{"username": "admin3", "password": "xxxx"}], {"username": "admin3"}, {"password": "xxxx"},
                {"username": "a", "password": "xxxx"}):
        assert err(rest(b, "POST", "/v1/admins/", bad)) == (400, 899003), bad
    st, page = rest(b, "GET", "/v1/admins?start=0&count=10")
    assert st == 200 and page["total"] == 2 and [u["username"] for u in page["users"]] == ["admin1", "admin2"]
    assert page["users"][0]["nickname"] == "Boss"
    st, page = rest(b, "GET", "/v1/users/?start=0&count=10")
    assert page["total"] == 1 and [u["username"] for u in page["users"]] == ["alice"]
    st, u = rest(b, "GET", "/v1/users/admin1")
    assert st == 200 and u["nickname"] == "Boss"
    assert rest(b, "PUT", "/v1/users/admin1", {"nickname": "Chief"})[0] == 204
    assert rest(b, "GET", "/v1/users/admin1")[1]["nickname"] == "Chief"


# ---------------------------------------------------------------------------------------------- groups of a user

@on_aurora
def a_users_groups(b):
    http_ready(b)
    register(b, "alice", "bobby")
    gids = []
    for name in ("one", "two", "three"):
        st, g = rest(b, "POST", "/v1/groups/", {"owner_username": "alice", "name": name, "desc": "d-" + name,
                                                "members_username": ["bobby"] if name != "two" else []})
        assert st == 201, (st, g)
        gids.append(g["gid"])
    st, groups = rest(b, "GET", "/v1/users/alice/groups/")
    assert st == 200 and [g["gid"] for g in groups] == gids, groups
    key, _ = app_creds(b)
    assert groups[0]["name"] == "one" and groups[0]["desc"] == "d-one" and groups[0]["appkey"] == key
    assert groups[0]["MaxMemberCount"] == 500 and len(groups[0]["ctime"]) == 19
    st, groups = rest(b, "GET", "/v1/users/bobby/groups")
    assert [g["name"] for g in groups] == ["one", "three"], groups
    assert err(rest(b, "GET", "/v1/users/nobody/groups/")) == (403, 899002)


# ---------------------------------------------------------------------------------------------- blacklist

@on_aurora
def blacklist_put_get_delete(b):
    http_ready(b)
    register(b, "alice", "bobby", "carol", "dave1")
    assert rest(b, "POST", "/v1/admins/", {"username": "admin1", "password": "secret-pw"})[0] == 201
    assert rest(b, "PUT", "/v1/users/alice/blacklist", ["bobby", "carol", "bobby"]) == (204, None)
    st, lst = rest(b, "GET", "/v1/users/alice/blacklist")
    assert st == 200 and [u["username"] for u in lst] == ["bobby", "carol"], lst
    assert err(rest(b, "PUT", "/v1/users/alice/blacklist", ["dave1", "bobby"])) == (403, 899017)
    assert err(rest(b, "PUT", "/v1/users/alice/blacklist", ["admin1"])) == (403, 899018)
    assert err(rest(b, "PUT", "/v1/users/alice/blacklist", ["nobody"])) == (403, 899002)
    assert err(rest(b, "PUT", "/v1/users/alice/blacklist", ["alice"])) == (400, 899003)
    assert err(rest(b, "PUT", "/v1/users/alice/blacklist", [])) == (400, 899003)
    assert err(rest(b, "PUT", "/v1/users/alice/blacklist", {"bobby": 1})) == (400, 899003)
    assert err(rest(b, "PUT", "/v1/users/nobody/blacklist", ["bobby"])) == (403, 899002)
    assert err(rest(b, "DELETE", "/v1/users/alice/blacklist", ["dave1"])) == (403, 899019)
    # the message path honours it: bobby's single messages to alice are refused with 803008
    bo = device(b, "bobby", "bob-dev")
    bo.subscribe("im/inbox", qos=1)
    bo.publish("im/send", json.dumps({"version": 1, "target_type": "single", "target_id": "alice",
                                      "msg_type": "text", "msg_body": {"text": "hi"}}).encode(), qos=1, wait=True)
    ev = [json.loads(m.payload) for m in bo.messages(1, 5)][0]
    assert ev.get("event") == "send_error" and ev.get("code") == 803008, ev
    bo.disconnect()
    assert rest(b, "DELETE", "/v1/users/alice/blacklist", ["bobby"]) == (204, None)
    st, lst = rest(b, "GET", "/v1/users/alice/blacklist")
    assert [u["username"] for u in lst] == ["carol"], lst
    # deleting a blacklisted user removes the entry; a new user of that name is not blacklisted
    assert rest(b, "DELETE", "/v1/users/carol")[0] == 204
    register(b, "carol")
    assert rest(b, "GET", "/v1/users/alice/blacklist") == (200, [])
    assert rest(b, "GET", "/v1/users/bobby/blacklist") == (200, [])


# ---------------------------------------------------------------------------------------------- lenient HTTP

@on_aurora
def lenient_http(b):
    http_ready(b)
    register(b, "alice")
    auth = basic(app_creds(b)).encode()
    # double and trailing slashes
    assert rest(b, "GET", "//v1//users///alice/")[0] == 200
    assert rest(b, "GET", "/v1/users/?start=0&count=5&x=a+b")[0] == 200
    # Expect: 100-continue, odd Content-Type parameters, pipelined requests answered in order although
    # their answers are deferred (store reads, transactions, password hashing)
    body = json.dumps([{"username": "pipe1", "password": "xxxx"}]).encode()
    upd = b'{"nickname":"P"}'
    req = (b"POST /v1/users/ HTTP/1.1\r\nHost: x\r\nAuthorization: " + auth +
           b"\r\nContent-Type: application/json ; charset=\"utf-8\"; foo=bar\r\nExpect: 100-continue\r\n"
           b"Content-Length: %d\r\n\r\n" % len(body) + body +
           b"PUT /v1/users/pipe1 HTTP/1.1\r\nHost: x\r\nAuthorization: " + auth +
           b"\r\nContent-Length: %d\r\n\r\n" % len(upd) + upd +
           b"GET /v1/users/pipe1 HTTP/1.1\r\nHost: x\r\nAuthorization: " + auth + b"\r\n\r\n" +
           b"GET /v1/users/nobody HTTP/1.1\r\nHost: x\r\nAuthorization: " + auth + b"\r\n\r\n" +
           b"GET /v1/users/alice/userstat HTTP/1.1\r\nHost: x\r\nAuthorization: " + auth +
           b"\r\nConnection: close\r\n\r\n")
    got = responses(http_raw(b, req))
    assert [s for s, _ in got] == [201, 204, 200, 403, 200], got
    assert json.loads(got[2][1])["nickname"] == "P"
    # chunked body
    chunked = (b"PUT /v1/users/alice HTTP/1.1\r\nHost: x\r\nAuthorization: " + auth +
               b"\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
               b"5\r\n{\"sig\r\nb\r\nnature\":\"c\"\r\n1\r\n}\r\n0\r\n\r\n")
    got = responses(http_raw(b, chunked))
    assert got[0][0] == 204, got
    assert rest(b, "GET", "/v1/users/alice")[1]["signature"] == "c"
    # unknown paths and methods
    assert rest(b, "GET", "/v1/users/alice/friends")[0] == 404
    assert rest(b, "PATCH", "/v1/users/alice")[0] == 405
    # a client that goes away while its answer is deferred does not hurt anyone
    s = socket.create_connection(("127.0.0.1", b.http_port))
    s.sendall(b"POST /v1/users/ HTTP/1.1\r\nHost: x\r\nAuthorization: " + auth +
              b"\r\nContent-Length: %d\r\n\r\n" % len(body.replace(b"pipe1", b"gone1")) + body.replace(b"pipe1", b"gone1"))
    s.close()
    assert wait_until(lambda: rest(b, "GET", "/v1/users/gone1")[0] == 200)


@on_aurora
def strict_json(b):
    http_ready(b)
    register(b, "alice")
    for raw in (b'[{"username":"dup1","password":"xxxx","password":"yyyy"}]', b"[1,]", b"\xff\xfe",
                b'[{"username":"nul\\u0000x","password":"xxxx"}]', b"[" * 40 + b"]" * 40,
                b'[{"username":"big1","password":"xxxx","gender":99999999999999999999}]'):
        st, body = rest(b, "POST", "/v1/users/", raw=raw)
        if st == 201:   # item-level refusal
            assert body[0]["error"]["code"] == 899003, (raw, body)
        else:
            assert (st, body["error"]["code"]) == (400, 899003), (raw, st, body)
    big = b'[{"username":"huge1","password":"' + b"x" * (5 << 20) + b'"}]'
    assert err(rest(b, "POST", "/v1/users/", raw=big)) == (400, 899003)
    assert rest(b, "GET", "/v1/users/alice")[0] == 200


# ---------------------------------------------------------------------------------------------- restart / isolation

@on_aurora
def everything_survives_a_restart(b):
    http_ready(b)
    register(b, "alice", "bobby", nickname="N")
    assert rest(b, "PUT", "/v1/users/alice", {"signature": "kept"})[0] == 204
    assert rest(b, "PUT", "/v1/users/bobby/forbidden?disable=true")[0] == 204
    assert rest(b, "PUT", "/v1/users/alice/password", {"new_password": "changed-pw"})[0] == 204
    assert rest(b, "POST", "/v1/admins/", {"username": "admin1", "password": "secret-pw"})[0] == 201
    assert rest(b, "PUT", "/v1/users/alice/blacklist", ["bobby"])[0] == 204
    b.restart()
    http_ready(b)
    st, u = rest(b, "GET", "/v1/users/alice")
    assert st == 200 and u["signature"] == "kept" and u["nickname"] == "N", u
    assert rest(b, "GET", "/v1/users/?start=0&count=10")[1]["total"] == 2
    assert rest(b, "GET", "/v1/admins/?start=0&count=10")[1]["total"] == 1
    assert [x["username"] for x in rest(b, "GET", "/v1/users/alice/blacklist")[1]] == ["bobby"]
    device(b, "alice", "a1", password="changed-pw").disconnect()
    try:
        device(b, "bobby", "b1")
        assert False, "forbidden flag lost in the restart"
    except ConnectRefused:
        pass
    b.kill()          # kill -9 right after acknowledged writes: still there
    b.start()
    http_ready(b)
    assert rest(b, "DELETE", "/v1/users/bobby")[0] == 204
    b.kill()
    b.start()
    http_ready(b)
    assert err(rest(b, "GET", "/v1/users/bobby")) == (403, 899002)
    assert rest(b, "GET", "/v1/users/alice")[0] == 200


@on_aurora
def apps_do_not_see_each_others_users(b):
    http_ready(b)
    register(b, "alice", "shared")
    other = new_app(b)
    register(b, "shared", "mallory", creds=other, password="other-pw")
    assert err(rest(b, "GET", "/v1/users/alice", creds=other)) == (403, 899002)
    assert err(rest(b, "DELETE", "/v1/users/alice", creds=other)) == (403, 899002)
    assert err(rest(b, "PUT", "/v1/users/alice/blacklist", ["mallory"])) == (403, 899002)
    st, page = rest(b, "GET", "/v1/users/?start=0&count=10", creds=other)
    assert page["total"] == 2 and sorted(u["username"] for u in page["users"]) == ["mallory", "shared"]
    st, page = rest(b, "GET", "/v1/users/?start=0&count=10")
    assert page["total"] == 2 and sorted(u["username"] for u in page["users"]) == ["alice", "shared"]
    # the same name in two apps: two users with their own passwords
    device(b, "shared", "s1", password="secret-pw").disconnect()
    device(b, "shared", "s2", password="other-pw", creds=other).disconnect()
    d = device(b, "shared", "s3", password="other-pw", creds=other)
    assert rest(b, "GET", "/v1/users/shared/userstat")[1] == {"login": False, "online": False}
    assert rest(b, "GET", "/v1/users/shared/userstat", creds=other)[1]["online"] is True
    d.disconnect()


run_tests(globals())

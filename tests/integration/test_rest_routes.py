"""test_rest_routes.py - the one REST route table (gateway/routes.c) and docs/rest-api.md against the real gateway.

- every documented endpoint is routed: an unauthenticated request gets 401 (not 404), and a method the path does
  not take gets 405 with exactly the documented methods in Allow (same answers as the pre-refactor binary
  /work/base/aurora-i8 when it is present: the route table changed its shape, not its behaviour);
- every JSON example of docs/rest-api.md is one valid JSON value whose usernames follow §1.1;
- the examples run: §2.1 register, §2.2 admin, §3.1 send, §4.6 delivered form (REST and device), §4.7 group event,
  §5.1 create (answer keys as documented), §3.3 history page and cursor, §2.1's per-item error;
- docs/storage.md's list of /metrics names is what a live GET /metrics (operator token) exports."""
import base64
import json
import os
import re
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Aurora, app_creds, client, on_aurora, run_tests, test  # noqa: E402

DOC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docs", "rest-api.md")
BASE_BIN = "/work/base/aurora-i8"
USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{3,127}$")

# Every endpoint (a sample path) and the methods its path takes, as docs/rest-api.md lists them
# (GET implies HEAD). Paths with a capture use valid sample values.
ENDPOINTS = [
    ("/v1/users/", {"POST", "GET"}),
    ("/v1/admins/", {"POST", "GET"}),
    ("/v1/users/alice_01", {"GET", "PUT", "DELETE"}),
    ("/v1/users/alice_01/password", {"PUT"}),
    ("/v1/users/alice_01/userstat", {"GET"}),
    ("/v1/users/userstat", {"POST"}),
    ("/v1/users/alice_01/forbidden", {"PUT"}),
    ("/v1/users/alice_01/groups/", {"GET"}),
    ("/v1/users/alice_01/blacklist", {"PUT", "DELETE", "GET"}),
    ("/v1/devices/token", {"POST"}),
    ("/v1/messages", {"POST"}),
    ("/v1/messages/alice_01/678/retract", {"POST"}),
    ("/v2/messages", {"GET"}),
    ("/v2/users/alice_01/messages", {"GET"}),
    ("/v2/groups/12345/messages", {"GET"}),
    ("/v1/groups/", {"POST", "GET"}),
    ("/v1/groups/12345", {"GET", "PUT", "DELETE"}),
    ("/v1/groups/12345/members", {"POST", "GET"}),  # POST .../members and GET .../members/ (trailing "/" is lenient)
    ("/v1/groups/messages/12345/silence", {"PUT"}),
    ("/v1/resource", {"POST", "GET"}),
    ("/ops/v1/apps", {"POST", "GET"}),
    ("/ops/v1/apps/0123456789abcdef01234567", {"DELETE"}),
]


def http(port, method, path, body=None, auth=None, timeout=30):
    """(status, headers dict lower-case, body bytes) over one connection."""
    data = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    head = "%s %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: %d\r\n" % (method, path, len(data))
    if auth:
        head += "Authorization: %s\r\n" % auth
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(head.encode() + b"\r\n" + data)
    buf = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
    s.close()
    hdr, _, rest = buf.partition(b"\r\n\r\n")
    lines = hdr.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers, rest


def basic(b):
    key, secret = app_creds(b)
    return "Basic " + base64.b64encode(("%s:%s" % (key, secret)).encode()).decode()


def rest(b, method, path, body=None):
    st, _, raw = http(b.http_port, method, path, body, basic(b))
    return st, (json.loads(raw, object_pairs_hook=lambda kv: kv) if raw else None)


def obj(pairs):
    """object_pairs_hook output (list of pairs, order kept) -> dict, recursively."""
    if isinstance(pairs, list) and all(isinstance(p, tuple) and len(p) == 2 for p in pairs):
        return {k: obj(v) for k, v in pairs}
    if isinstance(pairs, list):
        return [obj(x) for x in pairs]
    return pairs


def keys(pairs):
    return [k for k, _ in pairs]


def probe(b):
    """What the router answers for every endpoint: 401 per documented method, 405 + Allow for PATCH."""
    out = []
    for path, methods in ENDPOINTS:
        for m in sorted(methods):
            st, _, _ = http(b.http_port, m, path)
            out.append((m, path, st))
        st, h, _ = http(b.http_port, "PATCH", path)
        out.append(("PATCH", path, st, h.get("allow")))
    for path in ("/v1/nothing", "/v1/users/alice_01/nothing", "/v3/push"):
        out.append(("GET", path, http(b.http_port, "GET", path)[0]))
    return out


@on_aurora
def every_endpoint_is_routed(b):
    for row in probe(b):
        m, path, st = row[0], row[1], row[2]
        if m == "PATCH":
            want = set(dict(ENDPOINTS)[path])
            if path == "/v1/users/userstat":  # also a {username}: /v1/users/{username} takes its methods too
                want |= dict(ENDPOINTS)["/v1/users/alice_01"]
            if "GET" in want:
                want.add("HEAD")
            assert st == 405, row
            assert set(a.strip() for a in row[3].split(",")) == want, (row, want)
        elif path in dict(ENDPOINTS):
            assert st == 401, row  # routed, then refused for the missing credentials
        else:
            assert st == 404, row
    # /healthz and /metrics are in the same table
    assert http(b.http_port, "GET", "/healthz")[0] == 200
    assert http(b.http_port, "GET", "/metrics")[0] == 401


@test
def same_answers_as_the_pre_refactor_binary():
    if not os.access(BASE_BIN, os.X_OK):
        print("  (no %s: compared with the documented table only, in every_endpoint_is_routed)" % BASE_BIN)
        return
    with Aurora() as new:
        got = probe(new)
    saved = os.environ.get("AURORA_BIN")
    os.environ["AURORA_BIN"] = BASE_BIN
    try:
        with Aurora() as old:
            want = probe(old)
    finally:
        if saved is None:
            del os.environ["AURORA_BIN"]
        else:
            os.environ["AURORA_BIN"] = saved
    assert got == want, [(g, w) for g, w in zip(got, want) if g != w]


def doc_json_blocks():
    text = open(DOC).read()
    return [(text[:m.start()].count("\n") + 2, m.group(1)) for m in re.finditer(r"```json\n(.*?)```", text, re.S)]


NAME_KEYS = {"username", "owner_username", "from_id", "from_username"}
NAME_LISTS = {"members_username", "usernames", "add", "remove"}


def names_in(v, out):
    if isinstance(v, dict):
        for k, x in v.items():
            if k in NAME_KEYS and isinstance(x, str):
                out.append(x)
            elif k in NAME_LISTS and isinstance(x, list):
                out.extend(n for n in x if isinstance(n, str))
            elif k == "target_id" and v.get("target_type") == "single":
                out.append(x)
            else:
                names_in(x, out)
    elif isinstance(v, list):
        for x in v:
            names_in(x, out)


@test
def doc_examples_are_valid():
    blocks = doc_json_blocks()
    assert len(blocks) >= 15, len(blocks)
    for line, b in blocks:
        try:
            v = json.loads(b)
        except ValueError as e:
            raise AssertionError("docs/rest-api.md:%d: not one JSON value: %s" % (line, e))
        names = []
        names_in(v, names)
        for n in names:
            # the one deliberate exception: §2.1's answer shows how an invalid name is refused
            if n == "x" and "not a valid username" in b:
                continue
            assert USERNAME.match(n), "docs/rest-api.md:%d: %r breaks the username rule of §1.1" % (line, n)


def example(prefix):
    for line, b in doc_json_blocks():
        if b.lstrip().startswith(prefix):
            return json.loads(b)
    raise AssertionError("no example starting with %r" % prefix)


def inbox_json(c, timeout=5):
    m = c.expect(timeout)
    assert m.topic == "im/inbox", m
    return json.loads(m.payload, object_pairs_hook=lambda kv: kv)


@on_aurora
def doc_examples_run(b):
    key, _ = app_creds(b)
    # §2.1 register: the request example, then the per-item refusal of its answer example
    reg = example('[{"username": "dev_fang", "password": "password"}')
    st, ans = rest(b, "POST", "/v1/users/", reg)
    assert st == 201 and [obj(x) for x in ans] == [{"username": u["username"]} for u in reg], (st, ans)
    st, ans = rest(b, "POST", "/v1/users/", [{"username": "x", "password": "password"},
                                              {"username": "tommy", "password": "password"}])
    ans = obj(ans)
    assert st == 201 and ans[0]["error"] == {"code": 899003, "message": "username: not a valid username"}, ans
    assert ans[1]["error"] == {"code": 899001, "message": "User exist"}, ans
    st, ans = rest(b, "POST", "/v1/users/", [{"username": n, "password": "secret-pw"}
                                              for n in ("javen", "eddie", "annie")])
    assert st == 201, ans
    # §2.2 + §3.1: the admin "fang" sends the documented message to javen
    assert rest(b, "POST", "/v1/admins/", {"username": "fang", "password": "password"})[0] == 201
    javen = client(b, client_id="javen-phone", version=5, username="%s:javen" % key, password="secret-pw")
    javen.subscribe("im/inbox", qos=1)
    send = example('{"version": 1, "target_type": "single", "target_id": "javen",\n "from_type": "admin"')
    st, ans = rest(b, "POST", "/v1/messages", send)
    assert st == 201 and keys(ans) == ["msg_id", "msg_ctime"], (st, ans)
    sent = obj(ans)
    got = inbox_json(javen)
    # §4.6 from REST: the body as sent (its keys, its order), then the server's four keys
    assert keys(got) == list(send) + ["msgid", "msg_ctime", "create_time", "sequence"], keys(got)
    g = obj(got)
    assert g["msgid"] == sent["msg_id"] and g["msg_ctime"] == sent["msg_ctime"], (g, sent)
    assert g["create_time"] == g["msg_ctime"] // 1000 and g["sequence"] == 1, g
    # §4.6 from a device: the documented delivered form, key for key
    form = example('{"version": 1, "target_type": "single", "target_id": "javen", "msg_type": "text"')
    fang = client(b, client_id="dev-fang-phone", version=5, username="%s:dev_fang" % key, password="password")
    fang.subscribe("im/inbox", qos=1)
    dev_send = {k: form[k] for k in ("version", "target_type", "target_id", "msg_type", "msg_body", "client_msg_id")}
    fang.publish("im/send", json.dumps(dev_send), qos=1)
    got = inbox_json(javen)
    assert keys(got) == list(form), (keys(got), list(form))
    g = obj(got)
    assert g["from_type"] == "user" and g["from_id"] == "dev_fang" and g["create_time"] == g["msg_ctime"] // 1000, g
    echo = obj(inbox_json(fang))  # the sender's own devices get it too
    assert echo["msgid"] == g["msgid"], (echo, g)
    # §5.1 create: the documented request; the answer has the documented keys in order
    create = example('{"owner_username": "tommy", "name": "Climbing"')
    st, ans = rest(b, "POST", "/v1/groups/", create)
    want = example('{"gid": 12345, "owner_username": "tommy", "name": "Climbing"')
    assert st == 201 and keys(ans) == list(want), (st, ans)
    gid = obj(ans)["gid"]
    # §5.2 get: the documented keys (in any order: the answer shows JMessage's set plus Aurora's three)
    st, ans = rest(b, "GET", "/v1/groups/%d" % gid)
    want = example('{"gid": 12345, "name": "jpush"')
    assert st == 200 and set(keys(ans)) == set(want), (st, ans)
    # §4.7 a group event from REST: the documented keys and order
    eddie = client(b, client_id="eddie-phone", version=5, username="%s:eddie" % key, password="secret-pw")
    eddie.subscribe("im/inbox", qos=1)
    time.sleep(0.3)
    for m in eddie.pending():  # the create_group event of the group above (offline replay)
        pass
    assert rest(b, "POST", "/v1/groups/%d/members" % gid, {"add": ["javen"]})[0] == 204
    ev_want = example('{"event": "add_members"')
    deadline = time.monotonic() + 5
    while True:
        ev = inbox_json(eddie, max(0.1, deadline - time.monotonic()))
        if obj(ev).get("event") == "add_members":
            break
    assert keys(ev) == list(ev_want), (keys(ev), list(ev_want))
    assert obj(ev)["usernames"] == ["javen"] and obj(ev)["kind"] == "event", ev
    # §3.3 history: one page, then the cursor; total = count = messages in the page
    now = int(time.time() * 1000)
    st, page = rest(b, "GET", "/v2/users/javen/messages?count=1&begin_time=%d&end_time=%d" % (now - 60000, now + 60000))
    hist_want = example('{"total": 1, "count": 1')
    p = obj(page)
    assert st == 200 and keys(page) == list(hist_want), (st, page)
    assert p["total"] == p["count"] == len(p["messages"]) == 1 and re.match(r"^\d+\.\d+$", p["cursor"]), p
    st, page2 = rest(b, "GET", "/v2/users/javen/messages?cursor=%s" % p["cursor"])
    p2 = obj(page2)
    assert st == 200 and p2["count"] == 1 and p2["messages"][0]["msgid"] != p["messages"][0]["msgid"], p2
    st, bad = rest(b, "GET", "/v2/users/javen/messages?cursor=APSK234ASDKQWE")
    assert st == 400 and obj(bad)["error"]["code"] == 899003, (st, bad)
    for c in (javen, fang, eddie):
        c.disconnect()


@on_aurora
def storage_md_metrics_are_what_metrics_exports(b):
    """docs/storage.md "Stats" lists every name GET /metrics exports, and only those."""
    text = open(os.path.join(os.path.dirname(DOC), "storage.md")).read()
    sec = text[text.index("### Stats"):text.index("### Limits")]
    documented = set(re.findall(r"`(aurora_[a-z0-9_]+)`", sec))
    assert len(documented) > 20, documented
    with open(os.path.join(b.data_dir, "operator.token")) as f:
        tok = f.read().strip()
    assert http(b.http_port, "GET", "/metrics")[0] == 401  # the operator's only
    st, _, raw = http(b.http_port, "GET", "/metrics", auth="Bearer " + tok)
    assert st == 200, st
    exported = set(re.findall(r"^# TYPE (aurora_[a-z0-9_]+) ", raw.decode(), re.M))
    assert exported == documented, ("undocumented", exported - documented, "not exported", documented - exported)


run_tests(globals())

"""test_apps.py - apps (tenants): the default app created at the first start (<data>/default-app.json), the
operator token (<data>/operator.token), the operator API (POST/GET/DELETE /ops/v1/apps) and the aurora-ctl
command-line client, on the real gateway."""
import base64
import json
import os
import stat
import subprocess
import sys
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import REPO, ConnectRefused, client, on_aurora, run_tests, http_ready  # noqa: E402

CTL = os.path.join(REPO, os.environ.get("BUILD", "build"), "aurora-ctl")


def http(b, method, path, body=None, auth=None, raw=None):
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (b.http_port, path), data=data, method=method)
    if auth:
        req.add_header("Authorization", auth)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            raw_body = r.read()
            return r.status, (json.loads(raw_body) if raw_body else None)
    except urllib.error.HTTPError as e:
        raw_body = e.read()
        return e.code, (json.loads(raw_body) if raw_body else None)


def token(b):
    with open(os.path.join(b.data_dir, "operator.token")) as f:
        return f.read().strip()


def ops(b, method, path, body=None, raw=None):
    return http(b, method, path, body, auth="Bearer " + token(b), raw=raw)


def basic(creds):
    return "Basic " + base64.b64encode(("%s:%s" % creds).encode()).decode()


def default_creds(b):
    with open(os.path.join(b.data_dir, "default-app.json")) as f:
        d = json.load(f)
    return d["appkey"], d["master_secret"]


def ctl(b, *args, use_data=True):
    argv = [CTL, "--http", "127.0.0.1:%d" % b.http_port]
    if use_data:
        argv += ["--data", b.data_dir]
    p = subprocess.run(argv + list(args), capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


def register(b, creds, *names):
    st, body = http(b, "POST", "/v1/users/", [{"username": n, "password": "secret-pw"} for n in names],
                    auth=basic(creds))
    assert st == 201 and all("error" not in x for x in body), (st, body)


# ---------------------------------------------------------------------------------------------- default app

@on_aurora
def default_app_file_and_credentials(b):
    http_ready(b)
    path = os.path.join(b.data_dir, "default-app.json")
    st = os.stat(path)
    assert stat.S_IMODE(st.st_mode) == 0o600, oct(st.st_mode)
    key, secret = default_creds(b)
    assert len(key) == 24 and key.isalnum() and len(secret) == 24 and secret.isalnum() and key != secret
    assert "default app" in b.log_text() and key in b.log_text()
    register(b, (key, secret), "alice")
    st, body = ops(b, "GET", "/ops/v1/apps")
    assert st == 200 and [(a["app_id"], a["appkey"], a["name"]) for a in body["apps"]] == [(1, key, "default")], body
    assert body["apps"][0]["users"] == 1
    # a restart keeps the app: the file is not rewritten and nothing new is printed
    before = open(path).read()
    b.restart()
    http_ready(b)
    assert open(path).read() == before
    assert b.log_text().count("default app") == 1
    assert http(b, "GET", "/v1/users/alice", auth=basic((key, secret)))[0] == 200
    # the default app is the topic space of plain MQTT clients: it cannot be deleted
    st, body = ops(b, "DELETE", "/ops/v1/apps/" + key)
    assert st == 403, (st, body)


# ---------------------------------------------------------------------------------------------- operator token

@on_aurora
def operator_token_guards_the_api(b):
    http_ready(b)
    path = os.path.join(b.data_dir, "operator.token")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    tok = token(b)
    assert len(tok) == 64 and all(c in "0123456789abcdef" for c in tok)
    for auth in (None, "", "Bearer", "Bearer " + tok[:-1], "Bearer " + tok + "x", "Basic " + tok,
                 "Bearer " + tok.upper() if tok.upper() != tok else "Bearer nope"):
        for method, p in (("GET", "/ops/v1/apps"), ("POST", "/ops/v1/apps"), ("DELETE", "/ops/v1/apps/" + "A" * 24)):
            st, body = http(b, method, p, {"name": "x"} if method == "POST" else None, auth=auth)
            assert st == 401 and body["error"]["code"] == 401, (auth, method, st, body)
    # app credentials are not operator credentials, and the token is no app credential
    st, _ = http(b, "GET", "/ops/v1/apps", auth=basic(default_creds(b)))
    assert st == 401
    st, body = http(b, "GET", "/v1/users/?start=0&count=1", auth="Bearer " + tok)
    assert st == 401 and body["error"]["code"] == 899008
    assert http(b, "GET", "/ops/v1/apps", auth="bearer  " + tok + " ")[0] == 200
    # the token survives restarts
    b.restart()
    http_ready(b)
    assert token(b) == tok and ops(b, "GET", "/ops/v1/apps")[0] == 200


# ---------------------------------------------------------------------------------------------- create / list / delete

@on_aurora
def create_list_delete_apps(b):
    http_ready(b)
    st, a = ops(b, "POST", "/ops/v1/apps", {"name": "Shop \u00e9\u00e8 \"quoted\""})
    assert st == 201, (st, a)
    assert set(a) == {"app_id", "appkey", "master_secret", "name"} and a["name"] == "Shop \u00e9\u00e8 \"quoted\""
    assert len(a["appkey"]) == 24 and len(a["master_secret"]) == 24 and a["app_id"] != 1
    creds = (a["appkey"], a["master_secret"])
    register(b, creds, "alice", "bobby")
    st, g = http(b, "POST", "/v1/groups/", {"owner_username": "alice", "name": "g", "members_username": ["bobby"]},
                 auth=basic(creds))
    assert st == 201, (st, g)
    dev = client(b, client_id="alice-dev", version=5, username="%s:alice" % a["appkey"], password="secret-pw")
    dev.subscribe("im/inbox", qos=1)
    dev.publish("im/send", json.dumps({"version": 1, "target_type": "single", "target_id": "bobby",
                                       "msg_type": "text", "msg_body": {"text": "hi"}}).encode(), qos=1, wait=True)
    st, b2 = ops(b, "POST", "/ops/v1/apps", {"name": "second"})
    assert st == 201 and b2["app_id"] > a["app_id"] and b2["appkey"] != a["appkey"]
    st, lst = ops(b, "GET", "/ops/v1/apps")
    apps = {x["appkey"]: x for x in lst["apps"]}
    assert [x["app_id"] for x in lst["apps"]] == sorted(x["app_id"] for x in lst["apps"]) and len(apps) == 3
    assert apps[a["appkey"]]["users"] == 2 and apps[a["appkey"]]["groups"] == 1 and "master_secret" not in str(lst)
    assert "secret_hash" not in str(lst)
    # delete: the credentials stop working, connected devices are closed, the data is gone
    st, body = ops(b, "DELETE", "/ops/v1/apps/" + a["appkey"])
    assert st == 200 and body["appkey"] == a["appkey"] and body["deleted_keys"] >= 8, (st, body)
    assert dev.wait_disconnected(5), "a device of a deleted app stayed connected"
    st, body = http(b, "GET", "/v1/users/alice", auth=basic(creds))
    assert st == 401 and body["error"]["code"] == 899008
    try:
        client(b, client_id="alice-dev2", version=5, username="%s:alice" % a["appkey"], password="secret-pw")
        assert False, "login to a deleted app"
    except ConnectRefused:
        pass
    assert ops(b, "DELETE", "/ops/v1/apps/" + a["appkey"])[0] == 404
    assert ops(b, "DELETE", "/ops/v1/apps/" + "Z" * 24)[0] == 404
    assert [x["appkey"] for x in ops(b, "GET", "/ops/v1/apps")[1]["apps"]] == [default_creds(b)[0], b2["appkey"]]
    # the second app is untouched, and everything holds after a restart
    register(b, (b2["appkey"], b2["master_secret"]), "alice")
    b.restart()
    http_ready(b)
    assert [x["appkey"] for x in ops(b, "GET", "/ops/v1/apps")[1]["apps"]] == [default_creds(b)[0], b2["appkey"]]
    assert http(b, "GET", "/v1/users/alice", auth=basic((b2["appkey"], b2["master_secret"])))[0] == 200
    assert http(b, "GET", "/v1/users/alice", auth=basic(creds))[0] == 401
    # new apps never reuse a deleted app's id
    st, c3 = ops(b, "POST", "/ops/v1/apps", {"name": "third"})
    assert c3["app_id"] > b2["app_id"]


@on_aurora
def create_app_validation(b):
    http_ready(b)
    for body in ({}, {"name": ""}, {"name": "x" * 65}, {"name": "a\nb"}, {"name": 5}, [], {"name": None}):
        st, r = ops(b, "POST", "/ops/v1/apps", body)
        assert st == 400 and r["error"]["code"] == 899003, (body, st, r)
    for raw in (b"", b"{", b'{"name":"a","name":"b"}', b'{"name":"a\\u0000b"}'):
        st, r = ops(b, "POST", "/ops/v1/apps", raw=raw)
        assert st == 400, (raw, st, r)
    st, r = ops(b, "POST", "/ops/v1/apps", {"name": "x" * 64})
    assert st == 201
    assert len(ops(b, "GET", "/ops/v1/apps")[1]["apps"]) == 2


# ---------------------------------------------------------------------------------------------- aurora-ctl

@on_aurora
def aurora_ctl_commands(b):
    http_ready(b)
    assert os.path.exists(CTL), CTL
    rc, out, errout = ctl(b, "apps", "list")
    assert rc == 0, (rc, out, errout)
    assert [a["name"] for a in json.loads(out)["apps"]] == ["default"]
    rc, out, _ = ctl(b, "apps", "create", "from ctl")
    assert rc == 0
    created = json.loads(out)
    assert created["name"] == "from ctl" and len(created["master_secret"]) == 24
    register(b, (created["appkey"], created["master_secret"]), "alice")
    rc, out, _ = ctl(b, "--token", token(b), "apps", "list", use_data=False)
    assert rc == 0 and [a["name"] for a in json.loads(out)["apps"]] == ["default", "from ctl"]
    rc, out, _ = ctl(b, "apps", "delete", created["appkey"])
    assert rc == 0 and json.loads(out)["deleted_keys"] >= 1, out
    rc, out, _ = ctl(b, "apps", "delete", created["appkey"])
    assert rc == 1 and json.loads(out)["error"]["code"] == 404
    rc, out, _ = ctl(b, "--token", "0" * 64, "apps", "list", use_data=False)
    assert rc == 1 and json.loads(out)["error"]["code"] == 401
    env_rc = subprocess.run([CTL, "--http", "127.0.0.1:%d" % b.http_port, "apps", "list"], capture_output=True,
                            text=True, timeout=30, env=dict(os.environ, AURORA_OPERATOR_TOKEN=token(b)))
    assert env_rc.returncode == 0, env_rc
    # usage and transport errors: exit 2
    for args in ((), ("apps",), ("apps", "create"), ("apps", "frobnicate"), ("users", "list"),
                 ("apps", "delete", "bad/key")):
        assert ctl(b, *args)[0] == 2, args
    rc, _, errout = ctl(b, "--data", "/nonexistent", "apps", "list", use_data=False)
    assert rc == 2 and "operator.token" in errout
    p = subprocess.run([CTL, "--http", "127.0.0.1:1", "--token", "x", "apps", "list"], capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 2 and "connect" in p.stderr
    assert subprocess.run([CTL, "--help"], capture_output=True, timeout=30).returncode == 0


run_tests(globals())

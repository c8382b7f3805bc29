"""test_rest_groups.py - JMessage REST v1 groups on the real gateway (docs/rest-api.md §5): create, get,
update, delete, list, members add/remove/list, the member and group-count limits (899012 / 899015), group
events on the members' im/inbox, persistence across restarts and app isolation."""
import base64
import json
import os
import sys
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import client, on_aurora, run_tests, http_ready, app_creds  # noqa: E402


def rest(b, method, path, body=None, creds=None, auth=None, raw=None, timeout=60):
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (b.http_port, path), data=data, method=method)
    key, secret = creds or app_creds(b)
    req.add_header("Authorization", auth or "Basic " + base64.b64encode(("%s:%s" % (key, secret)).encode()).decode())
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


def register(b, *names, creds=None):
    for i in range(0, len(names), 500):
        st, body = rest(b, "POST", "/v1/users/", [{"username": n, "password": "secret-pw"} for n in names[i:i + 500]],
                        creds, timeout=240)
        assert st == 201 and all("error" not in x for x in body), (st, body)


def create(b, owner, name, members=(), creds=None, **extra):
    body = dict(owner_username=owner, name=name, members_username=list(members), **extra)
    st, g = rest(b, "POST", "/v1/groups/", body, creds)
    assert st == 201, (st, g)
    return g["gid"]


def member_names(b, gid, creds=None):
    st, lst = rest(b, "GET", "/v1/groups/%d/members/" % gid, creds=creds)
    assert st == 200, (st, lst)
    return [(m["username"], m["flag"]) for m in lst]


def device(b, user, cid, creds=None):
    key, _ = creds or app_creds(b)
    c = client(b, client_id=cid, version=5, username="%s:%s" % (key, user), password="secret-pw")
    c.subscribe("im/inbox", qos=1)
    return c


def events(c, n=1, timeout=5):
    return [e for e in (json.loads(m.payload) for m in c.messages(n, timeout)) if "event" in e]


def new_app(b, name="second"):
    tok = open(os.path.join(b.data_dir, "operator.token")).read().strip()
    st, body = rest(b, "POST", "/ops/v1/apps", {"name": name}, auth="Bearer " + tok)
    assert st == 201, (st, body)
    return body["appkey"], body["master_secret"]


# ---------------------------------------------------------------------------------------------- lifecycle

@on_aurora
def create_get_update_delete(b):
    http_ready(b)
    register(b, "alice", "bobby", "carol")
    key, _ = app_creds(b)
    st, g = rest(b, "POST", "/v1/groups/", {"owner_username": "alice", "name": "Climbing",
                                            "members_username": ["bobby", "carol"], "desc": "weekends",
                                            "avatar": "qiniu/image/g1", "flag": 2})
    assert st == 201, (st, g)
    gid = g["gid"]
    assert g == {"gid": gid, "owner_username": "alice", "name": "Climbing", "members_username": ["bobby", "carol"],
                 "desc": "weekends", "MaxMemberCount": 500, "avatar": "qiniu/image/g1", "flag": 2}, g
    st, info = rest(b, "GET", "/v1/groups/%d" % gid)
    assert st == 200 and info["gid"] == gid and info["name"] == "Climbing" and info["desc"] == "weekends"
    assert info["appkey"] == key and info["MaxMemberCount"] == 500 and info["owner_username"] == "alice"
    assert info["flag"] == 2 and info["avatar"] == "qiniu/image/g1" and len(info["ctime"]) == 19, info
    assert member_names(b, gid) == [("alice", 1), ("bobby", 0), ("carol", 0)]
    # update
    assert rest(b, "PUT", "/v1/groups/%d" % gid, {"name": "Bouldering", "desc": ""}) == (204, None)
    st, info = rest(b, "GET", "/v1/groups/%d" % gid)
    assert info["name"] == "Bouldering" and info["desc"] == "" and info["avatar"] == "qiniu/image/g1", info
    for bad in ({}, {"name": ""}, {"name": "a\nb"}, {"desc": "d" * 251}, {"name": 5}, [1]):
        assert err(rest(b, "PUT", "/v1/groups/%d" % gid, bad)) == (400, 899003), bad
    # delete
    assert rest(b, "DELETE", "/v1/groups/%d" % gid) == (204, None)
    assert err(rest(b, "GET", "/v1/groups/%d" % gid)) == (403, 899006)
    assert err(rest(b, "DELETE", "/v1/groups/%d" % gid)) == (403, 899006)
    assert err(rest(b, "PUT", "/v1/groups/%d" % gid, {"name": "x"})) == (403, 899006)
    assert err(rest(b, "GET", "/v1/groups/%d/members/" % gid)) == (403, 899006)
    assert rest(b, "GET", "/v1/users/bobby/groups/") == (200, [])
    # gids are new each time
    assert create(b, "alice", "again") > gid


@on_aurora
def create_errors(b):
    http_ready(b)
    register(b, "alice", "bobby")
    cases = [
        ({"name": "g"}, 400, 899003),                                                       # no owner
        ({"owner_username": "alice"}, 400, 899003),                                         # no name
        ({"owner_username": "alice", "name": ""}, 400, 899003),
        ({"owner_username": "alice", "name": "x" * 65}, 400, 899003),
        ({"owner_username": "alice", "name": "g", "flag": 3}, 400, 899003),
        ({"owner_username": "alice", "name": "g", "members_username": "bobby"}, 400, 899003),
        ({"owner_username": "alice", "name": "g", "members_username": ["bo"]}, 400, 899003),
        ({"owner_username": "nobody", "name": "g"}, 403, 899002),
        ({"owner_username": "alice", "name": "g", "members_username": ["bobby", "nobody"]}, 403, 899002),
        ({"owner_username": "alice", "name": "g", "members_username": ["bobby", "bobby"]}, 403, 899011),
        ({"owner_username": "alice", "name": "g", "members_username": ["m%04d" % i for i in range(501)]}, 403, 899012),
    ]
    for body, st, code in cases:
        assert err(rest(b, "POST", "/v1/groups/", body)) == (st, code), body
    assert err(rest(b, "POST", "/v1/groups/", raw=b"{")) == (400, 899003)
    # the owner listed among the members is not a second membership
    gid = create(b, "alice", "g", ["alice", "bobby"])
    assert member_names(b, gid) == [("alice", 1), ("bobby", 0)]
    for path in ("/v1/groups/abc", "/v1/groups/0", "/v1/groups/-5", "/v1/groups/99999999999999999999"):
        assert err(rest(b, "GET", path)) == (400, 899003), path
    assert err(rest(b, "GET", "/v1/groups/424242")) == (403, 899006)
    st, lst = rest(b, "GET", "/v1/groups/?start=0&count=10")
    assert lst["total"] == 1, lst


@on_aurora
def members_add_remove(b):
    http_ready(b)
    register(b, "alice", "bobby", "carol", "dave1", "erin1")
    gid = create(b, "alice", "g", ["bobby"])
    assert rest(b, "POST", "/v1/groups/%d/members" % gid, {"add": ["carol", "dave1"]}) == (204, None)
    assert member_names(b, gid) == [("alice", 1), ("bobby", 0), ("carol", 0), ("dave1", 0)]
    assert rest(b, "POST", "/v1/groups/%d/members" % gid, {"add": ["erin1"], "remove": ["bobby", "carol"]})[0] == 204
    assert member_names(b, gid) == [("alice", 1), ("dave1", 0), ("erin1", 0)]
    cases = [
        ({"add": ["dave1"]}, 403, 899011),                     # already a member
        ({"add": ["bobby", "bobby"]}, 403, 899011),            # listed twice
        ({"add": ["nobody"]}, 403, 899002),
        ({"remove": ["bobby"]}, 403, 899014),                  # not a member
        ({"remove": ["nobody"]}, 403, 899002),
        ({"remove": ["alice"]}, 400, 899003),                  # the owner
        ({"add": ["bobby"], "remove": ["bobby"]}, 400, 899003),
        ({}, 400, 899003), ({"add": []}, 400, 899003), ({"add": "bobby"}, 400, 899003),
    ]
    for body, st, code in cases:
        assert err(rest(b, "POST", "/v1/groups/%d/members" % gid, body)) == (st, code), body
    # a refused change changes nothing (all or nothing)
    assert err(rest(b, "POST", "/v1/groups/%d/members" % gid, {"add": ["bobby", "dave1"]})) == (403, 899011)
    assert member_names(b, gid) == [("alice", 1), ("dave1", 0), ("erin1", 0)]
    assert err(rest(b, "POST", "/v1/groups/777/members", {"add": ["bobby"]})) == (403, 899006)
    st, groups = rest(b, "GET", "/v1/users/erin1/groups/")
    assert [g["gid"] for g in groups] == [gid]
    assert rest(b, "GET", "/v1/users/bobby/groups/") == (200, [])


@on_aurora(aurora_config="im_max_group_members = 4\nim_max_groups_per_user = 3\n")
def configured_limits(b):
    http_ready(b)
    register(b, "owner", "u1234", "u2345", "u3456", "u4567", "u5678")
    # members: owner + 3 = 4 fits, owner + 4 does not
    assert err(rest(b, "POST", "/v1/groups/", {"owner_username": "owner", "name": "g",
                                               "members_username": ["u1234", "u2345", "u3456", "u4567"]})) \
        == (403, 899012)
    gid = create(b, "owner", "g", ["u1234", "u2345", "u3456"])
    assert rest(b, "GET", "/v1/groups/%d" % gid)[1]["MaxMemberCount"] == 4
    assert err(rest(b, "POST", "/v1/groups/%d/members" % gid, {"add": ["u4567"]})) == (403, 899012)
    assert rest(b, "POST", "/v1/groups/%d/members" % gid, {"add": ["u4567"], "remove": ["u1234"]})[0] == 204
    # groups per user: the owner is in 1, two more are allowed, a fourth is not
    create(b, "owner", "g2")
    create(b, "owner", "g3")
    assert err(rest(b, "POST", "/v1/groups/", {"owner_username": "owner", "name": "g4"})) == (403, 899015)
    assert err(rest(b, "POST", "/v1/groups/", {"owner_username": "u5678", "name": "g4",
                                               "members_username": ["owner"]})) == (403, 899015)
    g5 = create(b, "u5678", "g5")
    create(b, "u5678", "g6")
    create(b, "u2345", "g7", ["u5678"])                                   # u5678 is now in 3
    assert err(rest(b, "POST", "/v1/groups/%d/members" % g5, {"add": ["owner"]})) == (403, 899015)
    # leaving a group makes room again
    assert rest(b, "POST", "/v1/groups/%d/members" % gid, {"remove": ["u2345"]})[0] == 204
    assert rest(b, "POST", "/v1/groups/%d/members" % g5, {"add": ["u2345"]})[0] == 204


@on_aurora
def list_groups_paging(b):
    http_ready(b)
    register(b, "alice")
    gids = [create(b, "alice", "g%d" % i) for i in range(7)]
    st, page = rest(b, "GET", "/v1/groups/?start=0&count=5")
    assert st == 200 and page["total"] == 7 and page["count"] == 5, page
    assert [g["gid"] for g in page["groups"]] == gids[:5]
    st, page = rest(b, "GET", "/v1/groups?start=5&count=5")
    assert [g["gid"] for g in page["groups"]] == gids[5:] and page["start"] == 5
    for q in ("start=0&count=501", "count=0", "", "start=a&count=1"):
        assert err(rest(b, "GET", "/v1/groups/?" + q)) == (400, 899003), q


# ---------------------------------------------------------------------------------------------- events

@on_aurora
def members_get_group_events(b):
    http_ready(b)
    register(b, "alice", "bobby", "carol", "dave1")
    a = device(b, "alice", "a1")
    bo = device(b, "bobby", "b1")
    c = device(b, "carol", "c1")
    gid = create(b, "alice", "team", ["bobby"])
    for dev in (a, bo):
        ev = events(dev)[0]
        assert ev["event"] == "create_group" and ev["gid"] == gid and ev["group_name"] == "team", ev
        assert sorted(ev["usernames"]) == ["alice", "bobby"] and "sequence" in ev, ev
    c.expect_none(0.5)
    assert rest(b, "POST", "/v1/groups/%d/members" % gid, {"add": ["carol"]})[0] == 204
    for dev in (a, bo, c):
        ev = events(dev)[0]
        assert ev["event"] == "add_members" and ev["usernames"] == ["carol"], ev
    assert rest(b, "PUT", "/v1/groups/%d" % gid, {"name": "renamed"})[0] == 204
    for dev in (a, bo, c):
        ev = events(dev)[0]
        assert ev["event"] == "update_group" and ev["group_name"] == "renamed", ev
    assert rest(b, "POST", "/v1/groups/%d/members" % gid, {"remove": ["bobby"]})[0] == 204
    for dev in (a, bo, c):                                   # the removed member is told too
        ev = events(dev)[0]
        assert ev["event"] == "remove_members" and ev["usernames"] == ["bobby"], ev
    assert rest(b, "DELETE", "/v1/groups/%d" % gid)[0] == 204
    for dev in (a, c):
        ev = events(dev)[0]
        assert ev["event"] == "delete_group" and ev["gid"] == gid, ev
    bo.expect_none(0.5)


# ---------------------------------------------------------------------------------------------- persistence / isolation

@on_aurora
def groups_survive_restart(b):
    http_ready(b)
    register(b, "alice", "bobby", "carol")
    g1 = create(b, "alice", "one", ["bobby"], desc="d1")
    g2 = create(b, "bobby", "two", ["carol"])
    assert rest(b, "POST", "/v1/groups/%d/members" % g1, {"add": ["carol"], "remove": ["bobby"]})[0] == 204
    assert rest(b, "PUT", "/v1/groups/%d" % g2, {"desc": "changed"})[0] == 204
    g3 = create(b, "carol", "three")
    assert rest(b, "DELETE", "/v1/groups/%d" % g3)[0] == 204
    b.restart()
    http_ready(b)
    assert member_names(b, g1) == [("alice", 1), ("carol", 0)]
    assert member_names(b, g2) == [("bobby", 1), ("carol", 0)]
    assert rest(b, "GET", "/v1/groups/%d" % g2)[1]["desc"] == "changed"
    assert err(rest(b, "GET", "/v1/groups/%d" % g3)) == (403, 899006)
    assert rest(b, "GET", "/v1/groups/?start=0&count=10")[1]["total"] == 2
    assert sorted(g["gid"] for g in rest(b, "GET", "/v1/users/carol/groups/")[1]) == [g1, g2]
    # ids keep growing after a restart
    assert create(b, "alice", "four") > g3
    b.kill()
    b.start()
    http_ready(b)
    assert len(rest(b, "GET", "/v1/groups/?start=0&count=10")[1]["groups"]) == 3


@on_aurora
def apps_do_not_see_each_others_groups(b):
    http_ready(b)
    register(b, "alice", "bobby")
    gid = create(b, "alice", "mine", ["bobby"])
    other = new_app(b)
    register(b, "alice", "mallory", creds=other)
    assert err(rest(b, "GET", "/v1/groups/%d" % gid, creds=other)) == (403, 899006)
    assert err(rest(b, "GET", "/v1/groups/%d/members/" % gid, creds=other)) == (403, 899006)
    assert err(rest(b, "POST", "/v1/groups/%d/members" % gid, {"add": ["mallory"]}, creds=other)) == (403, 899006)
    assert err(rest(b, "DELETE", "/v1/groups/%d" % gid, creds=other)) == (403, 899006)
    assert err(rest(b, "POST", "/v1/groups/", {"owner_username": "mallory", "name": "x",
                                               "members_username": ["bobby"]}, creds=other)) == (403, 899002)
    assert rest(b, "GET", "/v1/groups/?start=0&count=10", creds=other)[1]["total"] == 0
    assert rest(b, "GET", "/v1/users/alice/groups/", creds=other) == (200, [])
    g2 = create(b, "mallory", "theirs", ["alice"], creds=other)
    st, g = rest(b, "GET", "/v1/groups/%d" % g2)          # gids count per app: the same number is our own group
    assert (st, g["name"]) == (200, "mine") if g2 == gid else err((st, g)) == (403, 899006), (g2, gid, st, g)
    assert [x["name"] for x in rest(b, "GET", "/v1/users/alice/groups/")[1]] == ["mine"]
    assert [x["name"] for x in rest(b, "GET", "/v1/users/alice/groups/", creds=other)[1]] == ["theirs"]
    assert member_names(b, gid) == [("alice", 1), ("bobby", 0)]


run_tests(globals())

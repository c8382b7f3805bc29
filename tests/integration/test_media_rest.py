"""test_media_rest.py - media over REST, end to end against the real binary: JMessage uploads
(POST /v1/resource, curl -F and SDK-style multipart), signed download links (GET /v1/resource) and the bytes
behind them (GET /v1/resource/raw), app isolation, bad input, the 8 MB limit, restart and kill -9.

Links are checked from the outside too: the test reads <data>/media.key and signs its own links, so an expired
but correctly signed link is known to be refused for its age, not its signature.
"""
import base64
import hashlib
import hmac
import http.client
import json
import os
import shutil
import struct
import subprocess
import sys
import threading
import time
import urllib.parse
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import on_aurora, run_tests, scale, wait_until, app_creds  # noqa: E402

MB8 = 8 * 1024 * 1024


# ------------------------------------------------------------------------------------------------ helpers

def basic(creds):
    return "Basic " + base64.b64encode(("%s:%s" % creds).encode()).decode()


def request(b, method, path, body=None, headers=None, creds=None, auth=True, conn=None):
    """-> (status, headers dict (lower-case names), body bytes). `conn` keeps a connection alive."""
    h = dict(headers or {})
    if auth:
        h["Authorization"] = basic(creds or app_creds(b))
    own = conn is None
    c = conn or http.client.HTTPConnection("127.0.0.1", b.http_port, timeout=60)
    try:
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    finally:
        if own:
            c.close()


def jbody(data):
    return json.loads(data) if data else None


def multipart(parts, boundary="----AuroraTestBoundary7MA4YWxkTrZu0gW"):
    """parts: [(name, filename or None, content_type or None, bytes)] -> (content-type, body)."""
    out = []
    for name, fname, ctype, data in parts:
        disp = 'form-data; name="%s"' % name
        if fname is not None:
            disp += '; filename="%s"' % fname
        out.append(b"--" + boundary.encode() + b"\r\n")
        out.append(("Content-Disposition: %s\r\n" % disp).encode("utf-8"))
        if ctype:
            out.append(("Content-Type: %s\r\n" % ctype).encode())
        out.append(b"\r\n" + data + b"\r\n")
    out.append(b"--" + boundary.encode() + b"--\r\n")
    return "multipart/form-data; boundary=" + boundary, b"".join(out)


def upload(b, kind, data, fname="f.bin", ctype="application/octet-stream", field="filename", creds=None, conn=None):
    ct, body = multipart([(field, fname, ctype, data)])
    st, h, raw = request(b, "POST", "/v1/resource?type=%s" % kind, body, {"Content-Type": ct}, creds=creds,
                         conn=conn)
    return st, jbody(raw)


def upload_ok(b, kind, data, **kw):
    st, body = upload(b, kind, data, **kw)
    assert st == 200, (st, body)
    return body


def link(b, media_id, creds=None, conn=None):
    st, h, raw = request(b, "GET", "/v1/resource?mediaId=" + urllib.parse.quote(media_id, safe=""), creds=creds,
                         conn=conn)
    return st, jbody(raw)


def link_ok(b, media_id, creds=None):
    st, body = link(b, media_id, creds)
    assert st == 200 and set(body) == {"url"}, (st, body)
    return body["url"]


def fetch(url, method="GET", headers=None):
    u = urllib.parse.urlsplit(url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    try:
        c.request(method, u.path + ("?" + u.query if u.query else ""), headers=headers or {})
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def png(w, h):
    """A real RGB PNG of w x h pixels."""
    rows = b"".join(
        b"\x00" + b"".join(bytes(((x * 37 + y * 11) & 255, (x * 5) & 255, (y * 29) & 255)) for x in range(w))
        for y in range(h))

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def crc(data):
    return zlib.crc32(data) & 0xffffffff


def media_key(b):
    with open(os.path.join(b.data_dir, "media.key"), "rb") as f:
        return f.read()


def signed(b, media_id, app, expires):
    msg = ("%s\n%d\n%d" % (media_id, app, expires)).encode()
    sig = hmac.new(media_key(b), msg, hashlib.sha256).hexdigest()
    return "http://127.0.0.1:%d/v1/resource/raw?mediaId=%s&app=%d&expires=%d&sig=%s" % (
        b.http_port, media_id, app, expires, sig)


def link_params(url):
    q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
    return q["mediaId"], int(q["app"]), int(q["expires"]), q["sig"]


def second_app(b, name="other"):
    tok = open(os.path.join(b.data_dir, "operator.token")).read().strip()
    st, h, raw = request(b, "POST", "/ops/v1/apps", json.dumps({"name": name}).encode(),
                         {"Authorization": "Bearer " + tok, "Content-Type": "application/json"}, auth=False)
    assert st in (200, 201), (st, raw)
    d = json.loads(raw)
    return d["appkey"], d["master_secret"]


def settled(fn, timeout=10):
    """fn() after a restart: a killed io_uring process's listening socket can outlive it briefly (the harness
    waits for the MQTT port only), and SO_REUSEPORT may hand a connection to it: retry resets."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return fn()
        except ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def is_error(st, body, status, code=899003):
    return st == status and body and body.get("error", {}).get("code") == code


# ------------------------------------------------------------------------------------------------ uploads

@on_aurora
def upload_png_image(b):
    img = png(7, 3)
    body = upload_ok(b, "image", img, fname="pic.png", ctype="image/png")
    assert set(body) == {"media_id", "media_crc32", "width", "height", "format", "fsize", "hash"}, body
    assert body["media_id"].startswith("aurora/image/") and len(body["media_id"]) == 13 + 32, body
    assert body["hash"] == body["media_id"][13:]
    assert body["media_crc32"] == crc(img), (body, crc(img))
    assert (body["width"], body["height"], body["format"], body["fsize"]) == (7, 3, "png", len(img)), body
    # the same bytes again: the same id (deduplicated), the same answer
    assert upload_ok(b, "image", img, fname="again.png") == body


@on_aurora
def upload_voice_and_file(b):
    amr = b"#!AMR\n" + bytes(range(256)) * 4
    v = upload_ok(b, "voice", amr, fname="clip.amr", ctype="audio/amr")
    assert set(v) == {"media_id", "media_crc32", "format", "fsize", "hash"}, v
    assert v["media_id"].startswith("aurora/voice/") and v["format"] == "amr" and v["fsize"] == len(amr)
    assert v["media_crc32"] == crc(amr)
    # unknown voice bytes: format from the file name's extension
    v2 = upload_ok(b, "voice", b"\x01\x02\x03 not audio", fname="Clip.M4A")
    assert v2["format"] == "m4a", v2
    doc = b"%PDF-1.4\n" + os.urandom(5000)
    f = upload_ok(b, "file", doc, fname="report.pdf", ctype="application/pdf")
    assert set(f) == {"media_id", "media_crc32", "fname", "fsize", "hash"}, f
    assert f["media_id"].startswith("aurora/file/") and f["fname"] == "report.pdf" and f["fsize"] == len(doc)
    assert f["media_crc32"] == crc(doc)
    # the same bytes as image and as file: two ids, one digest
    img = png(2, 2)
    i = upload_ok(b, "image", img)
    f2 = upload_ok(b, "file", img, fname="x.png")
    assert i["hash"] == f2["hash"] and i["media_id"] != f2["media_id"]
    # empty files are files
    e = upload_ok(b, "file", b"", fname="empty.txt")
    assert e["fsize"] == 0 and e["media_crc32"] == 0


@on_aurora
def upload_with_curl_and_sdk_shapes(b):
    if not shutil.which("curl"):
        return
    key, secret = app_creds(b)
    path = os.path.join(b.tmp, "test.jpg.png")
    img = png(16, 9)
    with open(path, "wb") as f:
        f.write(img)
    # JMessage's documented command
    out = subprocess.run(["curl", "-s", "-F", "filename=@" + path, "-u", "%s:%s" % (key, secret),
                          "http://127.0.0.1:%d/v1/resource?type=image" % b.http_port],
                         capture_output=True, timeout=30, check=True).stdout
    body = json.loads(out)
    assert body["width"] == 16 and body["height"] == 9 and body["media_crc32"] == crc(img), body
    # curl -F with a type and another field name, plus an unrelated text field before it
    out = subprocess.run(["curl", "-s", "-F", "note=hello", "-F", "image=@%s;type=image/png" % path, "-u",
                          "%s:%s" % (key, secret), "http://127.0.0.1:%d/v1/resource?type=file" % b.http_port],
                         capture_output=True, timeout=30, check=True).stdout
    body = json.loads(out)
    assert body["fname"] == "test.jpg.png" and body["fsize"] == len(img), body
    # SDK style: the part is named by the caller; a text field first; a path in the file name; LF-only lines
    ct, mp = multipart([("comment", None, None, b"a text field"), ("media", "C:\\Users\\me\\voice.mp3", "audio/mpeg",
                                                                  b"ID3\x03\x00\x00\x00\x00\x00\x00" + b"\x00" * 64)])
    st, h, raw = request(b, "POST", "/v1/resource?type=voice", mp.replace(b"\r\n", b"\n"), {"Content-Type": ct})
    body = jbody(raw)
    assert st == 200 and body["format"] == "mp3", (st, body)
    # no filename anywhere: a part named "file" is taken
    ct, mp = multipart([("file", None, "application/octet-stream", b"nameless")])
    st, h, raw = request(b, "POST", "/v1/resource?type=file", mp, {"Content-Type": ct})
    body = jbody(raw)
    assert st == 200 and body["fname"] == "" and body["fsize"] == 8, (st, body)
    # RFC 8187 filename* wins over filename; the name keeps its UTF-8
    bd = "xYz"
    mp = (b"--xYz\r\nContent-Disposition: form-data; name=\"f\"; filename=\"fallback.txt\"; "
          b"filename*=UTF-8''%E6%8A%A5%E5%91%8A.txt\r\n\r\nreport\r\n--xYz--\r\n")
    st, h, raw = request(b, "POST", "/v1/resource?type=file", mp, {"Content-Type": "multipart/form-data; boundary=" + bd})
    body = jbody(raw)
    assert st == 200 and body["fname"] == "\u62a5\u544a.txt", (st, body)


# ------------------------------------------------------------------------------------------------ downloads

@on_aurora
def download_link_gives_identical_bytes(b):
    img = png(31, 17)
    m = upload_ok(b, "image", img, fname="p.png")
    url = link_ok(b, m["media_id"])
    u = urllib.parse.urlsplit(url)
    assert (u.scheme, u.hostname, u.port, u.path) == ("http", "127.0.0.1", b.http_port, "/v1/resource/raw"), url
    mid, app, expires, sig = link_params(url)
    assert mid == m["media_id"] and len(sig) == 64
    assert abs(expires - (time.time() + 86400)) < 120, expires
    st, h, data = fetch(url)
    assert st == 200 and data == img, (st, h, len(data))
    assert h["content-type"] == "image/png" and h["content-length"] == str(len(img)), h
    assert h["etag"] == '"%s"' % m["hash"] and "immutable" in h["cache-control"], h
    assert h.get("x-content-type-options") == "nosniff" and "content-disposition" not in h, h
    # conditional: 304 without a body; HEAD: the length, no body
    st, h, data = fetch(url, headers={"If-None-Match": 'W/"x", "%s"' % m["hash"]})
    assert st == 304 and data == b"" and h["etag"] == '"%s"' % m["hash"], (st, h)
    st, h, data = fetch(url, headers={"If-None-Match": '"0123"'})
    assert st == 200 and data == img
    st, h, data = fetch(url, method="HEAD")
    assert st == 200 and data == b"" and h["content-length"] == str(len(img)), (st, h)
    # upper-case hex in the request is the same id, and the link names the canonical id
    url2 = link_ok(b, "aurora/image/" + m["hash"].upper())
    assert link_params(url2)[0] == m["media_id"]
    # the Host the client used is the link's host
    st, h, raw = request(b, "GET", "/v1/resource?mediaId=" + m["media_id"], headers={"Host": "media.example:8080"})
    assert st == 200 and jbody(raw)["url"].startswith("http://media.example:8080/v1/resource/raw?"), raw
    st, h, raw = request(b, "GET", "/v1/resource?mediaId=" + m["media_id"], headers={"Host": "evil\"host"})
    assert st == 200 and jbody(raw)["url"].startswith("http://127.0.0.1:%d/" % b.http_port), raw


@on_aurora
def file_downloads_carry_name_and_safe_type(b):
    html = b"<html><script>alert(1)</script></html>"
    f = upload_ok(b, "file", html, fname="\u62a5\u544a 2026.html", ctype="text/html")
    st, h, data = fetch(link_ok(b, f["media_id"]))
    assert st == 200 and data == html
    # never served as HTML from the gateway's origin
    assert h["content-type"] == "application/octet-stream", h
    assert h["content-disposition"] == "attachment; filename*=UTF-8''%E6%8A%A5%E5%91%8A%202026.html", h
    v = upload_ok(b, "voice", b"\x00\x01opaque", fname="v.bin", ctype="audio/x-custom")
    st, h, data = fetch(link_ok(b, v["media_id"]))
    assert st == 200 and h["content-type"] == "audio/x-custom" and "content-disposition" not in h, h
    # a long name is cut at a character boundary to fit the header
    long_name = "\u00e9" * 200 + ".txt"
    f = upload_ok(b, "file", b"long", fname=long_name)
    assert f["fname"] == long_name[:125], f  # 250 bytes of two-byte characters
    st, h, data = fetch(link_ok(b, f["media_id"]))
    d = h["content-disposition"]
    assert st == 200 and d.startswith("attachment; filename*=UTF-8''%C3%A9") and len(d) <= 29 + 512, d
    assert urllib.parse.unquote(d.split("''", 1)[1], errors="strict") == "\u00e9" * (512 // 6)


@on_aurora
def tampered_and_expired_links_are_refused(b):
    img = png(4, 4)
    m = upload_ok(b, "image", img)
    other = upload_ok(b, "image", png(5, 5))
    url = link_ok(b, m["media_id"])
    mid, app, expires, sig = link_params(url)
    base = "http://127.0.0.1:%d/v1/resource/raw?" % b.http_port

    def q(**kw):
        d = dict(mediaId=mid, app=app, expires=expires, sig=sig)
        d.update(kw)
        return base + "&".join("%s=%s" % (k, v) for k, v in d.items())
    assert fetch(q())[0] == 200
    flipped = sig[:-1] + ("0" if sig[-1] != "0" else "1")
    for u in (q(sig=flipped), q(sig=sig.upper()), q(mediaId=other["media_id"]), q(expires=expires + 1),
              q(app=app + 1), q(mediaId="aurora/file/" + m["hash"])):
        st, h, data = fetch(u)
        assert is_error(st, jbody(data), 403, 899008), (u, st, data)
    for u in (q(sig=sig[:-2]), base + "mediaId=" + mid, q(app="x"), q(mediaId="qiniu/image/abc")):
        st, h, data = fetch(u)
        assert st == 400, (u, st, data)
    # signed with the installation's key, but expired: refused for its age
    st, h, data = fetch(signed(b, mid, app, int(time.time()) - 5))
    assert is_error(st, jbody(data), 403, 899008) and b"expired" in data, (st, data)
    # the same key and a future time: served (the link format is what the docs say)
    st, h, data = fetch(signed(b, mid, app, int(time.time()) + 60))
    assert st == 200 and data == img
    # a correctly signed link for an id the app does not own
    st, h, data = fetch(signed(b, "aurora/image/" + "ab" * 16, app, int(time.time()) + 60))
    assert st == 404, (st, data)
    assert oct(os.stat(os.path.join(b.data_dir, "media.key")).st_mode & 0o777) == "0o600"


@on_aurora
def apps_cannot_read_each_others_media(b):
    creds2 = second_app(b)
    secret = os.urandom(3000)
    m = upload_ok(b, "file", secret, fname="mine.bin")
    st, body = link(b, m["media_id"], creds=creds2)
    assert is_error(st, body, 404), (st, body)
    # the other app's own upload of the same bytes: same id, its own name, its own link
    m2 = upload_ok(b, "file", secret, fname="theirs.bin", creds=creds2)
    assert m2["media_id"] == m["media_id"] and m2["fname"] == "theirs.bin"
    u1, u2 = link_ok(b, m["media_id"]), link_ok(b, m["media_id"], creds=creds2)
    assert link_params(u1)[1] != link_params(u2)[1]
    h1, h2 = fetch(u1)[1], fetch(u2)[1]
    assert "mine.bin" in h1["content-disposition"] and "theirs.bin" in h2["content-disposition"], (h1, h2)
    # a link dies with its app
    tok = open(os.path.join(b.data_dir, "operator.token")).read().strip()
    st, h, raw = request(b, "DELETE", "/ops/v1/apps/" + creds2[0], headers={"Authorization": "Bearer " + tok},
                         auth=False)
    assert st == 200, (st, raw)
    assert wait_until(lambda: fetch(u2)[0] == 404, 10), fetch(u2)
    assert fetch(u1)[0] == 200


# ------------------------------------------------------------------------------------------------ bad input

@on_aurora
def bad_uploads_and_lookups(b):
    ct, mp = multipart([("filename", "a.txt", "text/plain", b"hello")])
    hdr = {"Content-Type": ct}
    # authentication first
    st, h, raw = request(b, "POST", "/v1/resource?type=file", mp, hdr, auth=False)
    assert is_error(st, jbody(raw), 401, 899007), (st, raw)
    st, h, raw = request(b, "POST", "/v1/resource?type=file", mp, hdr, creds=(app_creds(b)[0], "wrong-secret"))
    assert is_error(st, jbody(raw), 401, 899008), (st, raw)
    st, h, raw = request(b, "GET", "/v1/resource?mediaId=aurora/file/" + "0" * 32, auth=False)
    assert is_error(st, jbody(raw), 401, 899007), (st, raw)
    # type
    for q in ("", "?type=", "?type=video", "?type=IMAGE", "?kind=image"):
        st, h, raw = request(b, "POST", "/v1/resource" + q, mp, hdr)
        assert is_error(st, jbody(raw), 400), (q, st, raw)
    # not multipart, no boundary, malformed, no file part
    for ctype, body in (("application/json", b"{}"), ("multipart/form-data", mp), (None, mp),
                        (ct, mp[:-40]), (ct, b"no delimiter at all"),
                        (ct, multipart([("note", None, None, b"x")])[1]),
                        (ct, b"--" + ct.split("=", 1)[1].encode() + b"--\r\n")):
        headers = {"Content-Type": ctype} if ctype else {}
        st, h, raw = request(b, "POST", "/v1/resource?type=file", body, headers)
        assert is_error(st, jbody(raw), 400), (ctype, body[:60], st, raw)
    # not an image
    for data in (b"GIF89a", b"plain text", b"", png(1, 1)[:20]):
        st, body = upload(b, "image", data, fname="x.png")
        assert is_error(st, body, 400) and "image" in body["error"]["message"], (data, st, body)
    # lookups
    for q, status in (("", 400), ("?mediaId=", 400), ("?mediaId=qiniu/image/CE0ACD035CBF71F8", 400),
                      ("?mediaId=aurora/image/xyz", 400), ("?mediaId=aurora/video/" + "0" * 32, 400),
                      ("?mediaId=aurora/image/" + "0" * 32, 404), ("?mediaId=aurora/file/" + "f" * 32, 404)):
        st, h, raw = request(b, "GET", "/v1/resource" + q)
        assert is_error(st, jbody(raw), status), (q, st, raw)
    # an image id for bytes only uploaded as a file is not found
    f = upload_ok(b, "file", b"just a file")
    st, body = link(b, "aurora/image/" + f["hash"])
    assert is_error(st, body, 404), (st, body)
    # the server is fine afterwards
    assert upload_ok(b, "file", b"ok")["fsize"] == 2


@on_aurora
def eight_megabyte_limit(b):
    big = os.urandom(MB8)
    m = upload_ok(b, "file", big, fname="big.bin")
    assert m["fsize"] == MB8 and m["media_crc32"] == crc(big)
    st, h, data = fetch(link_ok(b, m["media_id"]))
    assert st == 200 and len(data) == MB8 and data == big
    st, body = upload(b, "file", big + b"!")
    assert is_error(st, body, 413), (st, body)
    # beyond what the HTTP layer buffers at all: refused there, and the server lives on
    ct, mp = multipart([("filename", "huge.bin", None, b"\0" * (9 * 1024 * 1024 + 1))])
    try:
        st, h, raw = request(b, "POST", "/v1/resource?type=file", mp, {"Content-Type": ct})
        assert st == 413, (st, raw)
    except (ConnectionError, BrokenPipeError):
        pass  # the server may close before the whole body is sent
    assert upload_ok(b, "voice", b"after")["fsize"] == 5


# ------------------------------------------------------------------------------------------------ durability

@on_aurora
def media_and_links_survive_restart_and_kill9(b):
    img = png(9, 9)
    m = upload_ok(b, "image", img)
    f = upload_ok(b, "file", b"file body " * 100, fname="keep.txt")
    url = link_ok(b, m["media_id"])
    b.restart()
    # the key persisted: the old link still works; ownership is still known
    st, h, data = settled(lambda: fetch(url))
    assert st == 200 and data == img, st
    st, h, data = settled(lambda: fetch(link_ok(b, f["media_id"])))
    assert st == 200 and data == b"file body " * 100 and "keep.txt" in h["content-disposition"]
    # answered means durable: kill -9 right after the 200
    late = os.urandom(100000)
    m3 = upload_ok(b, "file", late, fname="late.bin")
    b.kill()
    b.start()
    st, h, data = settled(lambda: fetch(link_ok(b, m3["media_id"])))
    assert st == 200 and data == late


@on_aurora
def requests_while_the_server_starts(b):
    """Shards serve HTTP from au_loop_start on, a moment before the media pool starts: such requests wait."""
    m = upload_ok(b, "file", b"early bird", fname="e.txt")
    creds = app_creds(b)
    for _ in range(scale(5)):
        b.kill()
        answers, stop = [], threading.Event()

        def spam():
            while not stop.is_set():
                try:
                    answers.append(link(b, m["media_id"], creds=creds)[0])
                    return
                except OSError:
                    time.sleep(0.0005)
        t = threading.Thread(target=spam)
        t.start()
        b.start()
        t.join(20)
        stop.set()
        assert answers == [200], answers
        assert b.alive()


# ------------------------------------------------------------------------------------------------ concurrency

@on_aurora
def parallel_uploads_and_keepalive(b):
    n = scale(24)
    blobs = [os.urandom(20000 + i * 1000) for i in range(n)]
    results = [None] * n

    def work(i):
        try:
            results[i] = upload(b, "file", blobs[i], fname="p%d.bin" % i)
        except Exception as e:  # noqa: BLE001
            results[i] = e
    ts = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    for i, r in enumerate(results):
        assert isinstance(r, tuple) and r[0] == 200 and r[1]["media_crc32"] == crc(blobs[i]), (i, r)
    # one keep-alive connection: upload, link, upload, link (each response deferred, then the next request)
    c = http.client.HTTPConnection("127.0.0.1", b.http_port, timeout=60)
    try:
        for i in range(3):
            st, body = upload(b, "image", png(3 + i, 2), conn=c)
            assert st == 200 and body["width"] == 3 + i, (st, body)
            st, body = link(b, body["media_id"], conn=c)
            assert st == 200 and "url" in body, (st, body)
    finally:
        c.close()


run_tests(globals())

"""test_capacity.py - a full server refuses new sessions at once instead of stalling them.

Aurora is started with a tiny `max_connections` (split evenly over the shards). A session belongs to the shard
hash(client id) mod shards; when that shard is full:
  - a connection accepted by another shard is answered CONNACK "server unavailable" (3.1.1 return code 3,
    MQTT 5 reason 0x88) and closed;
  - the full shard's listener leaves the SO_REUSEPORT group, so its accept queue does not hold new connections;
and once sessions go away the shards accept again. The last shard in the group stays in it when it fills,
accepting only to refuse, so even with every shard full a client gets its CONNACK refusal. Every attempt must end (CONNACK or refused) well within the
client's timeout: the bug was connections waiting in a full shard's accept queue until the client gave up.

Run: /usr/bin/python3 tests/integration/test_capacity.py [-k name] [-v]
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Aurora, ConnectRefused, client, run_tests, test, wait_until  # noqa: E402

PROMPT_S = 2.5        # an attempt must be answered (CONNACK or TCP refusal) within this
CONNACK_TIMEOUT = 6   # the client's own deadline: reaching it is the stall this file guards against


def attempt(b, cid, version):
    """One connect: ("ok", client) | ("connack", rc) | ("tcp", exception name); asserts it did not stall."""
    t0 = time.monotonic()
    try:
        c = client(b, cid, version=version, timeout=CONNACK_TIMEOUT)
        out = ("ok", c)
    except ConnectRefused as e:
        assert e.connack is not None, "%s: closed without CONNACK (%s)" % (cid, e)
        out = ("connack", e.connack.rc)
    except (ConnectionRefusedError, ConnectionResetError, BrokenPipeError) as e:
        out = ("tcp", type(e).__name__)
    dt = time.monotonic() - t0
    assert dt < PROMPT_S, "%s: v%d connect took %.2f s (%s): stalled" % (cid, version, dt, out[0])
    return out


def close_all(clients):
    for c in clients:
        c.disconnect()


@test
def owner_shard_full_refused_with_connack():
    # 2 shards x 2 connections. Hold 3 sessions (so one shard is full, the other has one free slot), then try
    # more client ids: those owned by the full shard must get a CONNACK refusal from the other shard; those
    # owned by the other shard are served and leave again at once (keeping its slot free).
    with Aurora(extra_args=["--set", "max_connections=4"]) as b:
        held, refused = [], {4: [], 5: []}
        tcp = served = 0
        for i in range(300):
            ver = 5 if i % 2 else 4
            kind, v = attempt(b, "cap-%d" % i, ver)
            if kind == "ok":
                if len(held) < 3:
                    held.append(v)
                else:
                    served += 1
                    v.disconnect()
                    time.sleep(0.05)
            elif kind == "connack":
                refused[ver].append(v)
            else:
                tcp += 1
                time.sleep(0.05)  # reset in a leaving listener's accept queue
            if refused[4] and refused[5] and len(held) == 3:
                break
        assert refused[4] and refused[5], "no CONNACK refusal seen (held %d, served %d, tcp refusals %d, connack %r)" % (
            len(held), served, tcp, refused)
        assert set(refused[4]) == {3}, "3.1.1 refusals must be return code 3 (server unavailable): %r" % refused[4]
        assert set(refused[5]) == {0x88}, "MQTT 5 refusals must be 0x88 (server unavailable): %r" % refused[5]
        for c in held:
            assert c.connected, "%s lost while others were refused" % c.client_id
        # the held sessions still work
        held[0].subscribe("cap/t")
        held[-1].publish("cap/t", b"still here")
        assert held[0].expect().payload == b"still here"
        assert "shard full" in b.log_text()
        # room again: every session leaves, then new ones are served
        close_all(held)
        ok = []

        def serve_again():
            kind, v = attempt(b, "cap-again-%d" % len(ok), 4)
            if kind == "ok":
                ok.append(v)
            return len(ok) >= 2
        assert wait_until(serve_again, timeout=10, interval=0.1), "no session accepted after the others left"
        close_all(ok)


@test
def single_shard_full_refuses_and_recovers():
    # One shard of 2 connections: the last shard in the port group stays in it when full and refuses every new
    # session with CONNACK "server unavailable" (never a stall, nor a port without a listener); after one
    # session leaves, a new one fits.
    with Aurora(extra_args=["--shards", "1", "--set", "max_connections=2"]) as b:
        a = client(b, "one-a")
        c = client(b, "one-b")
        for i in range(6):
            ver = 4 + (i % 2)
            kind, v = attempt(b, "one-x%d" % i, ver)
            assert kind == "connack", "connect %d with max_connections=2 reached by 2 sessions: %r" % (i, (kind, v))
            assert v == (3 if ver == 4 else 0x88), (ver, v)
        assert a.connected and c.connected
        c.disconnect()
        got = []

        def fits():
            kind, v = attempt(b, "one-c", 4)
            if kind == "ok":
                got.append(v)
            return bool(got)
        assert wait_until(fits, timeout=10, interval=0.1), "no session accepted after one left"
        got[0].disconnect()
        a.disconnect()


@test
def every_shard_full_still_answers():
    # 2 shards x 2 connections, all 4 held: new clients are still answered, by CONNACK 3 / 0x88 from the last
    # shard left in the port group; then one session leaves and its shard takes new sessions again.
    with Aurora(extra_args=["--set", "max_connections=4"]) as b:
        held, kinds = [], []
        for i in range(300):
            kind, v = attempt(b, "all-%d" % i, 4)
            if kind == "ok":
                held.append(v)
            if len(held) == 4:
                break
        assert len(held) == 4, "could not fill both shards"
        for i in range(10):
            ver = 4 + (i % 2)
            kind, v = attempt(b, "all-x%d" % i, ver)
            kinds.append(kind)
            assert kind != "ok", "a fifth session was accepted with max_connections=4"
            if kind == "connack":
                assert v == (3 if ver == 4 else 0x88), (ver, v)
        assert kinds.count("connack") >= 9, "every shard full: refusals were %r" % kinds
        assert "every shard full" in b.log_text()
        for c in held:
            assert c.connected
        held.pop().disconnect()
        got = []

        def fits():
            kind, v = attempt(b, "all-again-%d" % len(kinds), 4)
            kinds.append(kind)
            if kind == "ok":
                got.append(v)
            return bool(got)
        assert wait_until(fits, timeout=10, interval=0.1), "no session accepted after one left"
        close_all(got + held)


if __name__ == "__main__":
    run_tests(globals())

#!/usr/bin/python3
"""test_kernel_tuning.py - kernel-tuning/: profiles, tune.sh check/apply/diff, limits.conf, aurora.service.

Runs tune.sh for real: against fake /proc/sys trees (TUNE_PROC_SYS) for the comparison semantics, and inside a
fresh network namespace (root only; skipped with a printed reason otherwise) to check, apply and re-check the
namespaced net.* keys of the million profile while verifying the host's own values did not change.

    /usr/bin/python3 tests/integration/test_kernel_tuning.py [-k substring] [-v]
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
TUNE = os.path.join(REPO, "kernel-tuning", "tune.sh")
PROFILES = os.path.join(REPO, "kernel-tuning", "profiles")

sys.path.insert(0, HERE)
try:
    from harness import test, run_tests, needs_no_aurora
except Exception:  # harness missing or paho not installed: plain runner
    _TESTS = []

    def test(fn):
        _TESTS.append(fn)
        return fn

    def needs_no_aurora(fn):
        return fn

    def run_tests(module_globals):
        subs = [a for a in sys.argv[1:] if not a.startswith("-")]
        passed = failed = 0
        for fn in _TESTS:
            if subs and not any(s in fn.__name__ for s in subs):
                continue
            try:
                fn()
                passed += 1
                print("ok %s" % fn.__name__, flush=True)
            except Exception as e:
                failed += 1
                print("FAIL %s: %s: %s" % (fn.__name__, type(e).__name__, e), flush=True)
        print("%d passed, %d failed" % (passed, failed), flush=True)
        sys.exit(1 if failed else 0)


def skip(reason):
    print("    skip: %s" % reason, flush=True)


def tune(*args, env=None, netns=None, user=None, timeout=30, script=TUNE):
    argv = ["bash", script] + list(args)
    if user is not None:
        argv = ["setpriv", "--reuid=%d" % user, "--regid=%d" % user, "--clear-groups"] + argv
    if netns is not None:
        argv = ["ip", "netns", "exec", netns] + argv
    e = dict(os.environ)
    e.pop("TUNE_PROC_SYS", None)
    e.pop("TUNE_FAKE_NETNS", None)
    if env:
        e.update(env)
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       env=e, timeout=timeout)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def table(out):
    """check output -> {key: (current, recommended, status)}"""
    rows = {}
    for line in out.splitlines():
        m = re.match(r"^(\S+)\s{2,}(.+?)\s{2,}(.+?)\s{2,}(OK|MISMATCH|MISSING|SKIP.*)$", line)
        if m and m.group(1) != "KEY":
            rows[m.group(1)] = (m.group(2), m.group(3), m.group(4))
    return rows


def parse_profile(path):
    """-> list of (key, value, optional, comment_above)"""
    out = []
    prev = None
    with open(path) as f:
        for line in f:
            s = line.strip()
            if not s:
                prev = None
                continue
            if s.startswith("#"):
                prev = s
                continue
            k, v = s.split("=", 1)
            k = k.strip()
            opt = k.startswith("-")
            out.append((k.lstrip("-"), " ".join(v.split()), opt, prev))
            prev = None
    return out


def read_sys(key):
    try:
        with open("/proc/sys/" + key.replace(".", "/")) as f:
            return " ".join(f.read().split())
    except OSError:
        return None


class FakeSys:
    """A fake /proc/sys tree: {key: value}."""

    def __init__(self, values):
        self.root = tempfile.mkdtemp(prefix="au-fakesys-")
        for k, v in values.items():
            self.set(k, v)

    def path(self, key):
        return os.path.join(self.root, *key.split("."))

    def set(self, key, value):
        p = self.path(key)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            f.write(value + "\n")

    def get(self, key):
        with open(self.path(key)) as f:
            return " ".join(f.read().split())

    def env(self, **extra):
        e = {"TUNE_PROC_SYS": self.root}
        e.update(extra)
        return e

    def close(self):
        shutil.rmtree(self.root, ignore_errors=True)


SEM_PROFILE = """\
# [min] size-like
net.core.somaxconn = 65535
# [min] triple
net.ipv4.tcp_mem = 100 200 300
# [max] smaller is fine
net.ipv4.tcp_fin_timeout = 15
# [range] containing range is fine
net.ipv4.ip_local_port_range = 1024 65535
# exact
net.ipv4.tcp_tw_reuse = 1
# exact triple
net.ipv4.tcp_rmem = 4096 4096 4194304
# [min] optional key, absent -> SKIP
-net.netfilter.nf_conntrack_max = 1000
# [min] host-wide key
fs.file-max = 1000
"""


def write_tmp(text):
    fd, path = tempfile.mkstemp(prefix="au-profile-", suffix=".conf")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


# ---------------------------------------------------------------------------------------------------------------
@test
@needs_no_aurora
def profiles_have_required_keys_and_reasons():
    need = ["fs.file-max", "fs.nr_open", "net.core.somaxconn", "net.core.netdev_max_backlog",
            "net.ipv4.tcp_max_syn_backlog", "net.ipv4.ip_local_port_range", "net.ipv4.tcp_tw_reuse",
            "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_mem", "net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem",
            "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_keepalive_intvl", "net.ipv4.tcp_keepalive_probes",
            "net.ipv4.tcp_max_orphans", "net.ipv4.tcp_max_tw_buckets", "net.netfilter.nf_conntrack_max",
            "vm.max_map_count", "net.core.rmem_default", "net.core.wmem_default", "net.ipv4.tcp_syncookies",
            "net.ipv4.tcp_slow_start_after_idle"]
    for name in ("million", "default"):
        entries = parse_profile(os.path.join(PROFILES, name + ".conf"))
        keys = [e[0] for e in entries]
        assert len(keys) == len(set(keys)), "%s: duplicate keys" % name
        for k in need:
            assert k in keys, "%s.conf lacks %s" % (name, k)
        for k, v, opt, why in entries:
            assert why is not None and len(why) > 12, "%s.conf: %s has no comment above it" % (name, k)
            assert v, "%s.conf: %s has no value" % (name, k)
        assert dict((e[0], e[2]) for e in entries)["net.netfilter.nf_conntrack_max"], \
            "nf_conntrack_max must be optional (module may be absent)"
    # million is the bigger profile for every [min] key the two share
    mil = {e[0]: e for e in parse_profile(os.path.join(PROFILES, "million.conf"))}
    for k, v, opt, why in parse_profile(os.path.join(PROFILES, "default.conf")):
        if why.startswith("# [min]") and k in mil:
            a = [int(x) for x in v.split()]
            b = [int(x) for x in mil[k][1].split()]
            assert all(y >= x for x, y in zip(a, b)), "million %s=%s below default %s" % (k, mil[k][1], v)


@test
@needs_no_aurora
def check_semantics_on_fake_tree():
    prof = write_tmp(SEM_PROFILE)
    good = FakeSys({
        "net.core.somaxconn": "131072",                 # larger: fine for [min]
        "net.ipv4.tcp_mem": "100\t250\t300",            # tabs like the kernel, one field larger
        "net.ipv4.tcp_fin_timeout": "10",               # smaller: fine for [max]
        "net.ipv4.ip_local_port_range": "1000\t65535",  # contains the recommended range
        "net.ipv4.tcp_tw_reuse": "1",
        "net.ipv4.tcp_rmem": "4096\t4096\t4194304",
        "fs.file-max": "5000",
    })
    try:
        rc, out, err = tune("check", prof, env=good.env())
        rows = table(out)
        assert rc == 0, "check on a satisfying tree: rc=%d\n%s%s" % (rc, out, err)
        assert rows["net.core.somaxconn"] == ("131072", ">= 65535", "OK"), rows["net.core.somaxconn"]
        assert rows["net.ipv4.tcp_mem"][2] == "OK"
        assert rows["net.ipv4.tcp_fin_timeout"][2] == "OK"
        assert rows["net.ipv4.ip_local_port_range"][2] == "OK"
        assert rows["net.netfilter.nf_conntrack_max"][2].startswith("SKIP"), rows
        # each way of failing
        for key, val in [("net.core.somaxconn", "4096"), ("net.ipv4.tcp_mem", "99 200 300"),
                         ("net.ipv4.tcp_fin_timeout", "60"), ("net.ipv4.ip_local_port_range", "2000 65535"),
                         ("net.ipv4.tcp_tw_reuse", "2"), ("net.ipv4.tcp_rmem", "4096 8192 4194304")]:
            old = good.get(key)
            good.set(key, val)
            rc, out, err = tune("check", prof, env=good.env())
            assert rc == 1, "%s=%s must fail check, rc=%d" % (key, val, rc)
            assert table(out)[key][2] == "MISMATCH", out
            good.set(key, old)
        # a required key that is absent is MISSING (failure); --only narrows the selection
        os.unlink(good.path("fs.file-max"))
        rc, out, err = tune("check", prof, env=good.env())
        assert rc == 1 and table(out)["fs.file-max"][2] == "MISSING", out
        rc, out, err = tune("check", prof, "--only", "net.", env=good.env())
        assert rc == 0 and "fs.file-max" not in table(out), out
        # inside a (simulated) network namespace host-wide keys are SKIP, not failures
        rc, out, err = tune("check", prof, env=good.env(TUNE_FAKE_NETNS="1"))
        assert rc == 0 and table(out)["fs.file-max"][2].startswith("SKIP"), out
        # usage errors
        assert tune("check", "/nonexistent/profile.conf", env=good.env())[0] == 2
        assert tune("frobnicate", env=good.env())[0] == 2
    finally:
        good.close()
        os.unlink(prof)


@test
@needs_no_aurora
def apply_and_diff_on_fake_tree():
    if os.geteuid() != 0:
        skip("apply needs root")
        return
    prof = write_tmp(SEM_PROFILE)
    fake = FakeSys({
        "net.core.somaxconn": "4096",
        "net.ipv4.tcp_mem": "50 400 100",               # middle field larger: kept by [min]
        "net.ipv4.tcp_fin_timeout": "60",
        "net.ipv4.ip_local_port_range": "1000 60999",   # low already lower: kept by [range]
        "net.ipv4.tcp_tw_reuse": "2",
        "net.ipv4.tcp_rmem": "4096 131072 33554432",
        "fs.file-max": "2000",                          # already above the [min]: left alone
    })
    try:
        rc, out, err = tune("diff", prof, env=fake.env())
        assert rc == 1, "diff must report differences: rc=%d\n%s" % (rc, out)
        assert "-net.core.somaxconn = 4096" in out and "+net.core.somaxconn = 65535" in out, out
        assert "fs.file-max" not in out, out
        rc, out, err = tune("apply", prof, "--dry-run", env=fake.env())
        assert rc == 0 and "WOULD    net.core.somaxconn: 4096 -> 65535" in out, out
        assert fake.get("net.core.somaxconn") == "4096", "dry run wrote"
        rc, out, err = tune("apply", prof, env=fake.env())
        assert rc == 0, "apply rc=%d\n%s%s" % (rc, out, err)
        assert "CHANGED  net.core.somaxconn: 4096 -> 65535" in out, out
        assert fake.get("net.core.somaxconn") == "65535"
        assert fake.get("net.ipv4.tcp_mem") == "100 400 300", fake.get("net.ipv4.tcp_mem")
        assert fake.get("net.ipv4.tcp_fin_timeout") == "15"
        assert fake.get("net.ipv4.ip_local_port_range") == "1000 65535"
        assert fake.get("net.ipv4.tcp_tw_reuse") == "1"
        assert fake.get("net.ipv4.tcp_rmem") == "4096 4096 4194304"
        assert fake.get("fs.file-max") == "2000"
        assert "OK       fs.file-max = 2000" in out, out
        assert not os.path.exists(fake.path("net.netfilter.nf_conntrack_max")), "created an absent key"
        rc, out, err = tune("check", prof, env=fake.env())
        assert rc == 0, out
        rc, out, err = tune("diff", prof, env=fake.env())
        assert rc == 0 and out == "", out
    finally:
        fake.close()
        os.unlink(prof)


@test
@needs_no_aurora
def boot_keys_are_checked_never_written():
    prof = write_tmp("# [boot] sized by a kernel command-line parameter\nnet.ipv4.tcp_ehash_entries = 2000\n"
                     "# [min] a normal key\nnet.core.somaxconn = 100\n")
    fake = FakeSys({"net.ipv4.tcp_ehash_entries": "1000", "net.core.somaxconn": "100"})
    try:
        rc, out, err = tune("check", prof, env=fake.env())
        assert rc == 1 and table(out)["net.ipv4.tcp_ehash_entries"] == ("1000", ">= 2000", "MISMATCH"), out
        rc, out, err = tune("diff", prof, env=fake.env())
        assert rc == 1 and "# net.ipv4.tcp_ehash_entries = 1000, wants >= 2000" in out, out
        assert "+net.ipv4.tcp_ehash_entries" not in out, out
        if os.geteuid() == 0:
            rc, out, err = tune("apply", prof, env=fake.env())
            assert rc == 0 and "BOOT     net.ipv4.tcp_ehash_entries = 1000" in out, (rc, out, err)
            assert fake.get("net.ipv4.tcp_ehash_entries") == "1000", "apply wrote a boot-time key"
        fake.set("net.ipv4.tcp_ehash_entries", "4096")
        rc, out, err = tune("check", prof, env=fake.env())
        assert rc == 0 and table(out)["net.ipv4.tcp_ehash_entries"][2] == "OK", out
    finally:
        fake.close()
        os.unlink(prof)


@test
@needs_no_aurora
def apply_refuses_without_root():
    prof = write_tmp(SEM_PROFILE)
    fake = FakeSys({"net.core.somaxconn": "4096"})
    try:
        if os.geteuid() == 0:
            if shutil.which("setpriv") is None:
                skip("setpriv not installed")
                return
            # run a copy: the checkout may sit in a directory the unprivileged user cannot read
            os.chmod(fake.root, 0o755)
            os.chmod(prof, 0o644)
            copy = os.path.join(fake.root, "tune.sh")
            shutil.copy(TUNE, copy)
            os.chmod(copy, 0o755)
            rc, out, err = tune("apply", prof, env=fake.env(), user=65534, script=copy)
        else:
            rc, out, err = tune("apply", prof, env=fake.env())
        assert rc == 2, "apply as non-root: rc=%d\n%s%s" % (rc, out, err)
        assert "root" in err, err
        assert fake.get("net.core.somaxconn") == "4096"
    finally:
        fake.close()
        os.unlink(prof)


@test
@needs_no_aurora
def netns_check_apply_check_host_untouched():
    if os.geteuid() != 0:
        skip("needs root to create a network namespace")
        return
    if shutil.which("ip") is None:
        skip("iproute2 (ip) not installed")
        return
    ns = "au-tune-%s" % uuid.uuid4().hex[:8]
    p = subprocess.run(["ip", "netns", "add", ns], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=20)
    if p.returncode != 0:
        skip("ip netns add failed (unsupported here): %s" % p.stdout.decode().strip())
        return
    keys = [e[0] for e in parse_profile(os.path.join(PROFILES, "million.conf"))]
    host_before = {k: read_sys(k) for k in keys}
    try:
        # a fresh namespace has kernel defaults: the million profile does not match
        rc, out, err = tune("check", "million", "--only", "net.", netns=ns)
        rows = table(out)
        assert rc == 1, "check in a fresh netns should fail: rc=%d\n%s%s" % (rc, out, err)
        assert "MISMATCH" in out and "inside a network namespace" in out, out
        assert all(k.startswith("net.") for k in rows), rows
        mism = [k for k, r in rows.items() if r[2] == "MISMATCH"]
        assert "net.core.somaxconn" in mism, rows
        # apply the namespaced net.* keys inside the namespace
        rc, out, err = tune("apply", "million", "--only", "net.", netns=ns)
        assert rc == 0, "apply in netns: rc=%d\n%s%s" % (rc, out, err)
        for k in mism:
            assert re.search(r"^CHANGED  %s: " % re.escape(k), out, re.M), "%s not changed:\n%s" % (k, out)
        # now it passes, and every key that was a mismatch is OK
        rc, out, err = tune("check", "million", "--only", "net.", netns=ns)
        rows2 = table(out)
        assert rc == 0, "check after apply: rc=%d\n%s%s" % (rc, out, err)
        for k in mism:
            assert rows2[k][2] == "OK", (k, rows2[k])
        rc, out, err = tune("diff", "million", "--only", "net.", netns=ns)
        assert rc == 0 and out == "", out
        # host-wide keys are never written from inside a namespace, even without --only
        rc, out, err = tune("apply", "million", "--dry-run", netns=ns)
        assert rc == 0 and "WOULD    fs." not in out and "SKIP     fs.file-max (host-wide" in out, out
    finally:
        subprocess.run(["ip", "netns", "del", ns], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=20)
    host_after = {k: read_sys(k) for k in keys}
    changed = {k: (host_before[k], host_after[k]) for k in keys if host_before[k] != host_after[k]}
    assert not changed, "host values changed: %r" % changed
    p = subprocess.run(["ip", "netns", "list"], stdout=subprocess.PIPE, timeout=20)
    assert ns not in p.stdout.decode(), "namespace not removed"


@test
@needs_no_aurora
def limits_and_unit_file():
    with open(os.path.join(REPO, "kernel-tuning", "limits.conf")) as f:
        lim = [l.split() for l in f if l.strip() and not l.lstrip().startswith("#")]
    items = {(r[0], r[1], r[2]): r[3] for r in lim}
    assert int(items[("aurora", "hard", "nofile")]) >= 1048576
    assert items[("aurora", "hard", "memlock")] == "unlimited"
    with open(os.path.join(PROFILES, "million.conf")) as f:
        nr_open = int(re.search(r"^fs\.nr_open\s*=\s*(\d+)", f.read(), re.M).group(1))
    assert int(items[("aurora", "hard", "nofile")]) <= nr_open, "nofile above fs.nr_open"
    unit_path = os.path.join(REPO, "kernel-tuning", "aurora.service")
    with open(unit_path) as f:
        unit = f.read()
    for need in ("LimitNOFILE=", "LimitMEMLOCK=", "Restart=on-failure", "KillSignal=SIGTERM", "TimeoutStopSec=",
                 "NoNewPrivileges=yes", "ProtectSystem=strict",
                 "ExecStart=/usr/local/bin/aurora --config /etc/aurora/aurora.conf"):
        assert need in unit, "aurora.service lacks %s" % need
    nofile = int(re.search(r"^LimitNOFILE=(\d+)", unit, re.M).group(1))
    assert nofile <= nr_open, "LimitNOFILE above fs.nr_open of the million profile"
    assert "io_uring_setup" in unit, "the syscall filter must allow io_uring"
    if shutil.which("systemd-analyze"):
        p = subprocess.run(["systemd-analyze", "verify", unit_path], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=60)
        bad = [l for l in p.stdout.decode().splitlines()
               if l.strip() and "is not executable" not in l and "No such file" not in l]
        assert not bad, "systemd-analyze verify:\n" + "\n".join(bad)
    else:
        skip("systemd-analyze not installed: unit syntax not verified")


if __name__ == "__main__":
    run_tests(globals())

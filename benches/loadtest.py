#!/usr/bin/env python3
"""Bounded loopback load test: Portcullis vs nginx proxying the same upstream, and the upstream alone.

Every target runs one worker. The load generator (wrk -t1) and the upstream (nginx serving a
~320-byte JSON) are pinned to core 0; the system under test to core 1, one at a time. Targets
are interleaved (A B C A B C ...) and each figure is the median over repetitions; ratios are
taken within the same repetition. CPU per request comes from /proc/PID/stat of the system under
test. Everything listens on 127.0.0.1 and stops by itself.

    python3 benches/loadtest.py                 # 5 reps x 10 s, 64 and 256 connections
    python3 benches/loadtest.py --reps 2 --duration 3 --write docs/benchmarks.md
"""
import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UPSTREAM_PORT, NGINX_PORT, GW_PORT, GW_ADMIN, BARE_PORT = 18081, 18080, 18090, 18091, 18092
# The authenticated path: a second gateway with a user-token route, sessions in Redis, and the
# test OP (npm oidc-provider) to log in once.
REDIS_PORT, OP_PORT, AUTH_PORT, AUTH_ADMIN = 18093, 18094, 18095, 18096
# The same gateway with the session cache off, and with every call missing it (cold).
NOCACHE_PORT, NOCACHE_ADMIN, COLD_PORT, COLD_ADMIN = 18097, 18098, 18099, 18100
# Traced at the default sampling: to a collector that is down (nothing listens on DOWN_PORT),
# and to one that takes every export (SINK_PORT: the upstream nginx answering /v1/traces).
TRACED_PORT, TRACED_ADMIN, DOWN_PORT = 18101, 18102, 18103
SINK_PORT, TRACED_UP_PORT, TRACED_UP_ADMIN = 18104, 18105, 18106
SESSION_KEY = "q0S8pJlY0E9o1cJc3m2m4G7mQ3cGmZq1v7bS0lJcR2U="
LOAD_CORE, SUT_CORE = "0", "1"
BODY = json.dumps({
    "id": 12345, "name": "benchmark item", "description": "a small JSON document of about three hundred and twenty bytes",
    "tags": ["alpha", "beta", "gamma", "delta"], "price": 19.99, "currency": "EUR", "in_stock": True,
    "updated": "2026-11-23T12:00:00Z", "owner": {"id": 42, "name": "someone"}, "padding": "x" * 40,
})

NGINX_UPSTREAM = """
worker_processes 1; daemon off; pid {dir}/up.pid; error_log {dir}/up.err warn;
events {{ worker_connections 4096; }}
http {{ access_log off; keepalive_requests 100000;
  server {{ listen 127.0.0.1:{port}; default_type application/json;
    location / {{ return 200 '{body}'; }} }}
  server {{ listen 127.0.0.1:{sink}; client_max_body_size 64m;
    location /v1/traces {{ return 200 ''; }} }} }}
"""
NGINX_PROXY = """
worker_processes 1; daemon off; pid {dir}/px.pid; error_log {dir}/px.err warn;
events {{ worker_connections 4096; }}
http {{ access_log off; keepalive_requests 100000;
  upstream up {{ server 127.0.0.1:{up}; keepalive 1024; }}
  server {{ listen 127.0.0.1:{port};
    location / {{ proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_set_header Host $host; proxy_set_header X-Forwarded-For $remote_addr; }} }} }}
"""
PORTCULLIS = """
[server]
listen = "127.0.0.1:{port}"
[admin]
listen = "127.0.0.1:{admin}"
[log]
access_log = {access_log}
level = "warn"
[pingora]
threads = 1
upgrade_sock = "{dir}/upgrade.sock"
pid_file = "{dir}/portcullis.pid"
[clusters.api]
destinations = ["http://127.0.0.1:{up}"]
[[routes]]
path = "/"
cluster = "api"
"""
PORTCULLIS_AUTH = """
[server]
listen = "127.0.0.1:{port}"
public_origin = "http://127.0.0.1:{port}"
[admin]
listen = "127.0.0.1:{admin}"
[log]
access_log = {access_log}
level = "warn"
[pingora]
threads = 1
upgrade_sock = "{dir}/upgrade-{port}.sock"
pid_file = "{dir}/portcullis-{port}.pid"
[oidc]
issuer = "http://127.0.0.1:{op}"
client_id = "portcullis"
client_secret = "bench-secret"
[session]
store = "redis"
encryption_keys = ["{key}"]
{cache}
[redis]
url = "redis://127.0.0.1:{redis}"
[clusters.api]
destinations = ["http://127.0.0.1:{up}"]
[[routes]]
path = "/"
cluster = "api"
token = "user"
{extra}
"""


def sh(*args, **kw):
    return subprocess.run(args, check=True, **kw)


def start(cmd, core, **kw):
    return subprocess.Popen(["taskset", "-c", core, *cmd], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)


def stop_all(procs, nginx_masters=()):
    """Stops what a bench started, by PID: nginx masters drain on SIGQUIT, the rest on SIGTERM;
    whatever has not exited after 10 s is killed."""
    for p in procs:
        p.send_signal(signal.SIGQUIT if p in nginx_masters else signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()


def wait_http(url, deadline=20):
    end = time.time() + deadline
    while time.time() < end:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except Exception:
            time.sleep(0.05)
    raise SystemExit(f"{url} did not come up")


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def peak_rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        m = re.search(r"VmHWM:\s+(\d+)", f.read())
    return int(m.group(1)) if m else 0


def login(gateway):
    """Logs in through the gateway and the test OP's dev pages; returns the session cookie."""
    import http.client
    import urllib.parse
    jar = {}

    def request(method, url, form=None):
        u = urllib.parse.urlsplit(url)
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in jar.items())}
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        conn.request(method, u.path + (f"?{u.query}" if u.query else ""), body, headers)
        r = conn.getresponse()
        for h, v in r.getheaders():
            if h.lower() == "set-cookie":
                k, _, rest = v.partition("=")
                jar[k] = rest.split(";")[0]
        return r.status, r.getheader("Location"), r.read().decode()

    url, form = f"{gateway}/bff/login", None
    for _ in range(16):
        status, location, page = request("POST" if form else "GET", url, form)
        if status in (302, 303):
            url, form = urllib.parse.urljoin(url, location), None
            if url.startswith(gateway) and "/signin-oidc" not in url:
                return f"__Host-portcullis={jar['__Host-portcullis']}"
            continue
        action = urllib.parse.urljoin(url, re.search(r'action="([^"]+)"', page).group(1))
        form = ({"prompt": "login", "login": "bench", "password": "x"} if 'name="login"' in page
                else {"prompt": "consent"})
        url = action
    raise SystemExit("login for the authenticated bench did not finish")


def wrk(url, conns, duration, headers=()):
    out = subprocess.run(
        ["taskset", "-c", LOAD_CORE, "wrk", "-t1", f"-c{conns}", f"-d{duration}s", "--latency",
         *[a for h in headers for a in ("-H", h)], url],
        check=True, capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {"rps": rps, "requests": total, "p99_ms": float(p99.group(1)) * scale,
            "non2xx": int(errors.group(1)) if errors else 0,
            "socket_errors": sum(map(int, sock.groups())) if sock else 0}


def measure(target, conns, duration):
    """One wrk run against target; CPU per request of the process under test."""
    hz = os.sysconf("SC_CLK_TCK")
    before = cpu_ticks(target["pid"]) if target["pid"] else 0
    r = wrk(target["url"], conns, duration, target.get("headers", ()))
    if target["pid"]:
        r["cpu_us_per_req"] = (cpu_ticks(target["pid"]) - before) / hz * 1e6 / max(r["requests"], 1)
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    ap.add_argument("--conns", default="64,256")
    ap.add_argument("--access-log", action="store_true", help="keep Portcullis' access log on (to /dev/null)")
    ap.add_argument("--write", help="replace the results section of this markdown file")
    ap.add_argument("--binary", default=os.path.join(ROOT, "target/release/portcullis"))
    ap.add_argument("--bare", default=os.path.join(ROOT, "target/release/examples/bare_pingora"),
                    help="the minimal Pingora proxy (benches/bare_pingora.rs), measured as the floor")
    args = ap.parse_args()
    for tool in ("nginx", "wrk", "taskset", "redis-server", "node"):
        if not shutil.which(tool) and not os.path.exists(f"/usr/sbin/{tool}"):
            raise SystemExit(f"{tool} is missing: run .ci/install-deps bench")
    if not os.path.isdir(os.path.join(ROOT, "tests/idp/node_modules/oidc-provider")):
        sh("npm", "ci", "--silent", "--no-audit", "--no-fund", cwd=os.path.join(ROOT, "tests/idp"))
    if not os.path.exists(args.binary) or not os.path.exists(args.bare):
        sh("cargo", "build", "--release", "--locked", "--bins", "--example", "bare_pingora", cwd=ROOT)
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    conns = [int(c) for c in args.conns.split(",")]

    d = tempfile.mkdtemp(prefix="portcullis-bench-")
    procs = []
    try:
        open(f"{d}/up.conf", "w").write(NGINX_UPSTREAM.format(dir=d, port=UPSTREAM_PORT, body=BODY, sink=SINK_PORT))
        open(f"{d}/px.conf", "w").write(NGINX_PROXY.format(dir=d, port=NGINX_PORT, up=UPSTREAM_PORT))
        open(f"{d}/gw.toml", "w").write(PORTCULLIS.format(
            dir=d, port=GW_PORT, admin=GW_ADMIN, up=UPSTREAM_PORT, access_log=str(args.access_log).lower()))
        up = start([nginx, "-c", f"{d}/up.conf", "-p", d], LOAD_CORE)
        px = start([nginx, "-c", f"{d}/px.conf", "-p", d], SUT_CORE)
        bare = start([args.bare, f"127.0.0.1:{BARE_PORT}", f"127.0.0.1:{UPSTREAM_PORT}"], SUT_CORE)
        gw = start([args.binary, "run", "--config", f"{d}/gw.toml"], SUT_CORE)
        redis = start(["redis-server", "--bind", "127.0.0.1", "--port", str(REDIS_PORT), "--save", "",
                       "--appendonly", "no", "--dir", d], LOAD_CORE)
        op = start(["node", os.path.join(ROOT, "tests/idp/op.mjs")], LOAD_CORE, env={
            **os.environ, "OP_PORT": str(OP_PORT), "OP_CLIENT_ID": "portcullis", "OP_CLIENT_SECRET": "bench-secret",
            "OP_REDIRECT_URIS": f"http://127.0.0.1:{AUTH_PORT}/signin-oidc", "OP_ACCESS_TOKEN_TTL": "3600"})
        # Three gateways share the session: the cache as shipped, no cache, and a cache whose
        # copies are too old at every call (each call misses, reads Redis, opens and refills).
        auths = []
        # A fourth traces every request at the default sampling (parentbased_always_on) to a
        # collector that is down: what tracing costs when nothing can take the spans.
        traced = f'[telemetry]\nendpoint = "http://127.0.0.1:{DOWN_PORT}"'
        traced_up = f'[telemetry]\nendpoint = "http://127.0.0.1:{SINK_PORT}"'
        for port, admin, cache, extra in ((AUTH_PORT, AUTH_ADMIN, "", ""),
                                          (NOCACHE_PORT, NOCACHE_ADMIN, "cache_size = 0", ""),
                                          (COLD_PORT, COLD_ADMIN, 'cache_max_age = "1ms"', ""),
                                          (TRACED_PORT, TRACED_ADMIN, "", traced),
                                          (TRACED_UP_PORT, TRACED_UP_ADMIN, "", traced_up)):
            open(f"{d}/auth-{port}.toml", "w").write(PORTCULLIS_AUTH.format(
                dir=d, port=port, admin=admin, up=UPSTREAM_PORT, op=OP_PORT, redis=REDIS_PORT,
                key=SESSION_KEY, cache=cache, access_log=str(args.access_log).lower(), extra=extra))
            auths.append(start([args.binary, "run", "--config", f"{d}/auth-{port}.toml"], SUT_CORE))
        auth, nocache, cold, tracing_on, tracing_up = auths
        procs = [up, px, bare, gw, redis, op, *auths]
        for port in (UPSTREAM_PORT, NGINX_PORT, BARE_PORT, GW_PORT):
            wait_http(f"http://127.0.0.1:{port}/")
        for admin in (AUTH_ADMIN, NOCACHE_ADMIN, COLD_ADMIN, TRACED_ADMIN, TRACED_UP_ADMIN):
            wait_http(f"http://127.0.0.1:{admin}/readyz", deadline=30)
        cookie = login(f"http://127.0.0.1:{AUTH_PORT}")
        session = (f"Cookie: {cookie}", "X-CSRF: 1")

        def worker_pid(master_pidfile):
            # nginx's master forks one worker; measure the worker.
            master = open(master_pidfile).read().strip()
            kids = subprocess.run(["pgrep", "-P", master], capture_output=True, text=True).stdout.split()
            return int(kids[0])

        targets = [
            {"name": "upstream alone", "url": f"http://127.0.0.1:{UPSTREAM_PORT}/item", "pid": None},
            {"name": "nginx proxy", "url": f"http://127.0.0.1:{NGINX_PORT}/item", "pid": worker_pid(f"{d}/px.pid")},
            {"name": "bare pingora", "url": f"http://127.0.0.1:{BARE_PORT}/item", "pid": bare.pid},
            {"name": "portcullis", "url": f"http://127.0.0.1:{GW_PORT}/item", "pid": gw.pid},
            # The same pass-through route, sent the session's request headers (Cookie, X-CSRF):
            # what those bytes cost Pingora before any session work.
            {"name": "portcullis, same headers", "url": f"http://127.0.0.1:{GW_PORT}/item", "pid": gw.pid,
             "headers": session},
            # Cookie -> anti-forgery -> session (cache, Redis on a miss) -> user token -> upstream.
            {"name": "portcullis + session", "url": f"http://127.0.0.1:{AUTH_PORT}/item", "pid": auth.pid,
             "headers": session},
            {"name": "+ session, cold cache", "url": f"http://127.0.0.1:{COLD_PORT}/item", "pid": cold.pid,
             "headers": session},
            {"name": "+ session, no cache", "url": f"http://127.0.0.1:{NOCACHE_PORT}/item", "pid": nocache.pid,
             "headers": session},
            {"name": "+ session, traced", "url": f"http://127.0.0.1:{TRACED_PORT}/item", "pid": tracing_on.pid,
             "headers": session},
            {"name": "+ session, traced, exported", "url": f"http://127.0.0.1:{TRACED_UP_PORT}/item",
             "pid": tracing_up.pid, "headers": session},
        ]
        results = {(t["name"], c): [] for t in targets for c in conns}
        for t in targets:  # warm-up: fill connection pools, fault in pages
            wrk(t["url"], max(conns), 2, t.get("headers", ()))
        for rep in range(args.reps):
            for c in conns:
                for t in targets:
                    calls = sum(redis_commandstats(REDIS_PORT).values())
                    r = measure(t, c, args.duration)
                    r["redis_per_req"] = (sum(redis_commandstats(REDIS_PORT).values()) - calls - 1) / max(r["requests"], 1)
                    results[(t["name"], c)].append(r)
                    print(f"rep {rep + 1} {c:>3} conns {t['name']:<21} {r['rps']:>9.0f} rps  p99 {r['p99_ms']:.2f} ms"
                          + (f"  cpu {r['cpu_us_per_req']:.1f} us/req" if 'cpu_us_per_req' in r else "")
                          + (f"  redis {r['redis_per_req']:.3f}/req" if r['redis_per_req'] > 0 else "")
                          + (f"  ERRORS non2xx={r['non2xx']} socket={r['socket_errors']}" if r['non2xx'] or r['socket_errors'] else ""),
                          flush=True)
        rss = {t["name"]: peak_rss_kb(t["pid"]) for t in targets if t["pid"] and "same headers" not in t["name"]}
        redis_calls = redis_commandstats(REDIS_PORT)
        spans = {name: trace_counts(admin) for name, admin in
                 (("collector down", TRACED_ADMIN), ("collector up", TRACED_UP_ADMIN))}
    finally:
        stop_all(procs, nginx_masters=procs[:2])
        shutil.rmtree(d, ignore_errors=True)

    table = report(results, conns, rss, args, [t["name"] for t in targets], redis_calls, spans)
    print("\n" + table)
    if args.write:
        path = os.path.join(ROOT, args.write) if not os.path.isabs(args.write) else args.write
        text = open(path).read()
        begin, end = "<!-- results:begin -->", "<!-- results:end -->"
        new = text.split(begin)[0] + begin + "\n" + table + "\n" + end + text.split(end)[1]
        open(path, "w").write(new)
        print(f"wrote {args.write}")


def redis_commandstats(port):
    """Redis commands served since start, by command (INFO commandstats)."""
    out = subprocess.run(["redis-cli", "-p", str(port), "info", "commandstats"],
                         capture_output=True, text=True).stdout
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"cmdstat_(\w+):calls=(\d+)", out)}


def trace_counts(admin_port):
    """The trace export counters of one gateway, from its /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/metrics", timeout=5) as r:
        text = r.read().decode()
    found = re.findall(r'^portcullis_trace_spans_(exported_total|dropped_total\{reason="(\w+)"\}) (\d+)', text, re.M)
    return {(reason or "exported"): int(n) for _, reason, n in found}


def report(results, conns, rss, args, names, redis_calls, spans):
    med = lambda xs: statistics.median(xs)
    lines = [
        f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {os.cpu_count()} cores, "
        f"{args.reps} interleaved repetitions x {args.duration} s per target, wrk -t1 on core 0 with the upstream, "
        "each proxy alone on core 1, "
        f"Portcullis access log {'on' if args.access_log else 'off'} (nginx: off).",
        "Ratios are medians of per-repetition ratios against nginx; CPU is the system under test's.",
        "",
        "| target | conns | rps (median) | × nginx rps | × bare rps | CPU µs/req | × nginx CPU | p99 ms | × nginx p99 | peak RSS |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in conns:
        ng = results[("nginx proxy", c)]
        bare = results[("bare pingora", c)]
        for name in names:
            rs = results[(name, c)]
            rps_ratio = med([r["rps"] / n["rps"] for r, n in zip(rs, ng)])
            bare_ratio = med([r["rps"] / b["rps"] for r, b in zip(rs, bare)])
            p99_ratio = med([r["p99_ms"] / n["p99_ms"] for r, n in zip(rs, ng)])
            if "cpu_us_per_req" in rs[0]:
                cpu = f"{med([r['cpu_us_per_req'] for r in rs]):.1f}"
                cpu_ratio = f"{med([r['cpu_us_per_req'] / n['cpu_us_per_req'] for r, n in zip(rs, ng)]):.2f}"
            else:
                cpu, cpu_ratio = "—", "—"
            mem = f"{rss[name] / 1024:.0f} MB" if name in rss else "—"
            lines.append(f"| {name} | {c} | {med([r['rps'] for r in rs]):.0f} | {rps_ratio:.2f} | {bare_ratio:.2f} | {cpu} | {cpu_ratio} "
                         f"| {med([r['p99_ms'] for r in rs]):.2f} | {p99_ratio:.2f} | {mem} |")
    errors = sum(r["non2xx"] + r["socket_errors"] for rs in results.values() for r in rs)
    lines.append("")
    # The authenticated path against the pass-through route of the same build, same repetition.
    for c in conns:
        pt = results[("portcullis", c)]
        for name in names[names.index("portcullis") + 1:]:
            rs = results[(name, c)]
            ratio = med([r["rps"] / p["rps"] for r, p in zip(rs, pt)])
            extra = med([r["cpu_us_per_req"] - p["cpu_us_per_req"] for r, p in zip(rs, pt)])
            redis = med([r["redis_per_req"] for r in rs])
            lines.append(f"- {c} conns, {name}: {ratio:.2f}× the pass-through route's rps, "
                         f"{extra:+.1f} µs CPU per request, {redis:.3f} Redis commands per request")
    lines.append("")
    lines.append("Redis commands served during the whole run (warm-up and all targets): "
                 + ", ".join(f"{k} {v}" for k, v in sorted(redis_calls.items(), key=lambda kv: -kv[1])[:8]) + ".")
    for name, counts in spans.items():
        lines.append(f"Spans of the traced gateway, {name}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) + ".")
    lines.append(f"Errors (non-2xx or socket) across all runs: {errors}.")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

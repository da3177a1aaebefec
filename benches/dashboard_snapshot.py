#!/usr/bin/env python3
"""A picture of the Grafana dashboard under load, without Grafana.

Grafana is not obtainable from the registries this project builds from, so this script does
what Grafana would: a real Prometheus (Debian's) scrapes a real gateway every second while
benches/loadtest.py's stack (upstream nginx, Redis, the test OP) carries a load — authenticated
API calls, anonymous calls refused with 401, logins — and every query of every panel of
helm/portcullis/dashboards/portcullis.json is evaluated by Prometheus over that window and
drawn with matplotlib, in the dashboard's order and titles. Panels whose queries return
nothing are listed: a query that matches no exported series is a broken panel.

    python3 benches/dashboard_snapshot.py            # ~100 s, writes docs/images/dashboard.png

Loopback only, bounded (two load phases of 35 s), stops everything it started.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import loadtest as lt  # noqa: E402  (the stack and its ports)

PROM_PORT = 18110
DASHBOARD = os.path.join(lt.ROOT, "helm/portcullis/dashboards/portcullis.json")
OUT = os.path.join(lt.ROOT, "docs/images/dashboard.png")
PROMETHEUS = """
global: {{ scrape_interval: 1s, evaluation_interval: 1s }}
scrape_configs:
  - job_name: portcullis
    static_configs:
      - targets: ["127.0.0.1:{admin}"]
        labels: {{ instance: "replica-1" }}
"""


def query_range(expr, start, end):
    params = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": "2"})
    with urllib.request.urlopen(f"http://127.0.0.1:{PROM_PORT}/api/v1/query_range?{params}", timeout=30) as r:
        body = json.load(r)
    if body.get("status") != "success":
        raise SystemExit(f"Prometheus refused {expr!r}: {body}")
    return body["data"]["result"]


def legend(fmt, metric):
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: metric.get(m.group(1), ""), fmt or "") or json.dumps(metric)


def axis_unit(ax, unit):
    """Grafana's units, as far as these panels use them."""
    from matplotlib.ticker import FuncFormatter, PercentFormatter
    ax.ticklabel_format(axis="y", useOffset=False, style="plain")
    if unit == "percentunit":
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        ax.set_ylim(-0.02, 1.05)
    elif unit == "s":
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v * 1000:g} ms"))
    elif unit == "bytes":
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v / 1e6:g} MB"))
    elif unit == "bool":
        ax.set_ylim(-0.1, 1.1)
        ax.set_yticks([0, 1])
    elif unit in ("reqps", "ops"):
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}/s"))


def background_traffic(gateway, stop):
    """Anonymous API calls (401) and calls to a dead cluster (502) five times a second each, and
    a login every four seconds."""
    last_login = 0.0
    while not stop.is_set():
        for path in ("/item", "/broken/item"):
            try:
                urllib.request.urlopen(urllib.request.Request(f"{gateway}{path}", headers={"X-CSRF": "1"}), timeout=2)
            except Exception:
                pass
        if time.time() - last_login > 4:
            last_login = time.time()
            try:
                lt.login(gateway)
            except SystemExit:
                pass
        stop.wait(0.2)


def main():
    for tool in ("prometheus", "nginx", "wrk", "redis-server", "node"):
        if not shutil.which(tool) and not os.path.exists(f"/usr/sbin/{tool}"):
            raise SystemExit(f"{tool} is missing: run .ci/install-deps bench")
    try:
        import matplotlib
    except ImportError:
        # Debian's python3-matplotlib belongs to Debian's interpreter, which may not be first on
        # PATH (pyenv and the like).
        if os.path.exists("/usr/bin/python3") and os.path.realpath(sys.executable) != "/usr/bin/python3":
            os.execv("/usr/bin/python3", ["/usr/bin/python3", *sys.argv])
        raise SystemExit("matplotlib is missing: run .ci/install-deps bench")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    binary = os.path.join(lt.ROOT, "target/release/portcullis")
    if not os.path.exists(binary):
        subprocess.run(["cargo", "build", "--release", "--locked", "--bins"], cwd=lt.ROOT, check=True)
    if not os.path.isdir(os.path.join(lt.ROOT, "tests/idp/node_modules/oidc-provider")):
        subprocess.run(["npm", "ci", "--silent", "--no-audit", "--no-fund"], cwd=os.path.join(lt.ROOT, "tests/idp"), check=True)
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    d = tempfile.mkdtemp(prefix="portcullis-dashboard-")
    procs = []
    try:
        open(f"{d}/up.conf", "w").write(lt.NGINX_UPSTREAM.format(dir=d, port=lt.UPSTREAM_PORT, body=lt.BODY, sink=lt.SINK_PORT))
        procs.append(lt.start([nginx, "-c", f"{d}/up.conf", "-p", d], lt.LOAD_CORE))
        procs.append(lt.start(["redis-server", "--bind", "127.0.0.1", "--port", str(lt.REDIS_PORT), "--save", "",
                               "--appendonly", "no", "--dir", d], lt.LOAD_CORE))
        procs.append(lt.start(["node", os.path.join(lt.ROOT, "tests/idp/op.mjs")], lt.LOAD_CORE, env={
            **os.environ, "OP_PORT": str(lt.OP_PORT), "OP_CLIENT_ID": "portcullis", "OP_CLIENT_SECRET": "bench-secret",
            "OP_REDIRECT_URIS": f"http://127.0.0.1:{lt.AUTH_PORT}/signin-oidc",
            # Short-lived tokens, so that the load's session is refreshed a few times.
            "OP_ACCESS_TOKEN_TTL": "30"}))
        # Traces go to the nginx sink, so the trace export panel has something to show; a route
        # to a cluster nobody listens for gives the error panels theirs.
        extra = (f'[telemetry]\nendpoint = "http://127.0.0.1:{lt.SINK_PORT}"\nsampler = "parentbased_traceidratio"\n'
                 f'sampler_arg = 0.1\n[clusters.dead]\ndestinations = ["http://127.0.0.1:{lt.DOWN_PORT}"]\n'
                 '[[routes]]\nname = "broken"\npath = "/broken/"\ncluster = "dead"\n')
        open(f"{d}/gw.toml", "w").write(lt.PORTCULLIS_AUTH.format(
            dir=d, port=lt.AUTH_PORT, admin=lt.AUTH_ADMIN, up=lt.UPSTREAM_PORT, op=lt.OP_PORT, redis=lt.REDIS_PORT,
            key=lt.SESSION_KEY, cache="", access_log="false", extra=extra))
        procs.append(lt.start([binary, "run", "--config", f"{d}/gw.toml"], lt.SUT_CORE))
        open(f"{d}/prometheus.yml", "w").write(PROMETHEUS.format(admin=lt.AUTH_ADMIN))
        procs.append(subprocess.Popen(["prometheus", f"--config.file={d}/prometheus.yml", f"--storage.tsdb.path={d}/tsdb",
                                       f"--web.listen-address=127.0.0.1:{PROM_PORT}"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        lt.wait_http(f"http://127.0.0.1:{lt.AUTH_ADMIN}/readyz", deadline=30)
        lt.wait_http(f"http://127.0.0.1:{PROM_PORT}/-/ready", deadline=30)
        gateway = f"http://127.0.0.1:{lt.AUTH_PORT}"
        session = (f"Cookie: {lt.login(gateway)}", "X-CSRF: 1")

        start = time.time()
        stop = threading.Event()
        side = threading.Thread(target=background_traffic, args=(gateway, stop))
        side.start()
        for conns in (16, 64):
            lt.wrk(f"{gateway}/item", conns, 35, session)
            time.sleep(10)
        stop.set()
        side.join()
        end = time.time()
        time.sleep(2)

        panels = json.load(open(DASHBOARD))["panels"]
        plt.style.use("dark_background")
        rows = (len(panels) + 1) // 2
        fig, axes = plt.subplots(rows, 2, figsize=(16, 3.1 * rows))
        empty = []
        for ax, panel in zip(axes.flat, panels):
            drawn = 0
            # Grafana's "axis placement: right" overrides, by query.
            right = {o["matcher"]["options"] for o in panel.get("fieldConfig", {}).get("overrides", [])
                     if o["matcher"]["id"] == "byFrameRefID"
                     and any(p["id"] == "custom.axisPlacement" and p["value"] == "right" for p in o["properties"])}
            twin = ax.twinx() if right else None
            for i, target in enumerate(panel.get("targets", [])):
                expr = target["expr"].replace("$__rate_interval", "5s")
                on = twin if target["refId"] in right else ax
                for series in query_range(expr, start, end):
                    t = [float(v[0]) - start for v in series["values"]]
                    y = [float(v[1]) for v in series["values"]]
                    on.plot(t, y, linewidth=1.2, color=f"C{drawn}",
                            label=legend(target.get("legendFormat"), series["metric"])[:40])
                    drawn += 1
            config = panel.get("fieldConfig", {})
            axis_unit(ax, config.get("defaults", {}).get("unit"))
            if twin:
                for o in config.get("overrides", []):
                    for prop in o["properties"]:
                        if prop["id"] == "unit":
                            axis_unit(twin, prop["value"])
                twin.tick_params(labelsize=7)
                twin.legend(fontsize=6, loc="upper right", frameon=False)
            ax.set_title(panel["title"], fontsize=10, loc="left")
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.2)
            if drawn:
                ax.legend(fontsize=6, loc="upper left", ncol=2, frameon=False)
            else:
                empty.append(panel["title"])
                ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", color="grey")
        for ax in list(axes.flat)[len(panels):]:
            ax.axis("off")
        fig.suptitle("Portcullis dashboard under load — helm/portcullis/dashboards/portcullis.json, every query "
                     "evaluated by Prometheus (benches/dashboard_snapshot.py); seconds since the load started",
                     fontsize=10)
        fig.tight_layout(rect=(0, 0, 1, 0.98))
        os.makedirs(os.path.dirname(OUT), exist_ok=True)
        fig.savefig(OUT, dpi=72)
        print(f"wrote {os.path.relpath(OUT, lt.ROOT)}: {len(panels)} panels, load from {time.strftime('%H:%M:%S', time.gmtime(start))} "
              f"to {time.strftime('%H:%M:%S', time.gmtime(end))} UTC")
        if empty:
            print("panels without data: " + "; ".join(empty))
    finally:
        lt.stop_all(procs, nginx_masters=procs[:1])
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

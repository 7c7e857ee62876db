"""Orchestrates the sidecar benchmark; run through sidecar/bench/run.sh (which installs and builds).

Loopback only; every server is started here and stopped by PID; every load run is bounded.
"""
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
REL = os.path.join(ROOT, "target", "release")
BIN = os.path.join(ROOT, "target", "dist", "sealpod-sidecar")
UPSTREAM = os.path.join(REL, "examples", "fake_upstream")
LOADGEN = os.path.join(REL, "examples", "loadgen")
MITMDUMP = os.path.join(ROOT, ".tools", "bench-venv", "bin", "mitmdump")
ROUNDS = int(os.environ.get("ROUNDS", "3"))
SECS = float(os.environ.get("SECS", "3"))
SEALED = "sp_sealed_00112233445566778899aabbccddeeff"
REAL = "sk-ant-bench-real-key-0123456789abcdef"
TICK = os.sysconf("SC_CLK_TCK")

procs = []


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, timeout=20.0):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"port {port} never opened")


def start(cmd, **kw):
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)
    procs.append(p)
    return p


def tree(pid):
    """pid and all its descendants."""
    children = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                children.setdefault(int(fields[1]), []).append(int(d))
            except OSError:
                pass
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_ticks(pid):
    total = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return total


def rss_kib(pid):
    total = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def loadgen(*args):
    out = subprocess.run([LOADGEN, *args], capture_output=True, text=True, timeout=SECS + 120)
    if out.returncode != 0:
        raise SystemExit(f"loadgen failed: {out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    work = tempfile.mkdtemp(prefix="sealpod-bench-")
    os.chmod(work, 0o777)
    try:
        run(work)
    finally:
        for p in procs:
            try:
                p.send_signal(signal.SIGTERM)
                p.wait(timeout=5)
            except Exception:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)


def run(work):
    with open(f"{work}/key", "w") as f:
        f.write(REAL)
    upstream = start([UPSTREAM, "--names", "localhost,127.0.0.1", "--key-file", f"{work}/key",
                      "--root-out", f"{work}/up.pem", "--port-out", f"{work}/uport", "--http1-only"])
    for _ in range(200):
        if os.path.exists(f"{work}/uport") and open(f"{work}/uport").read():
            break
        time.sleep(0.05)
    uport = int(open(f"{work}/uport").read())
    ours_port, admin_port, squid_port, tiny_port, mitm_port = (free_port() for _ in range(5))
    with open(f"{work}/proxy.yaml", "w") as f:
        f.write(f"""listen: 127.0.0.1:{ours_port}
admin_listen: 127.0.0.1:{admin_port}
ca_cert_out: {work}/pod-ca.pem
allow: ["localhost:{uport}"]
allow_cidrs: [127.0.0.1/32]
credentials:
  - sealed: {SEALED}
    value_file: {work}/key
    hosts: ["127.0.0.1:{uport}"]
    headers: [{{name: x-api-key}}]
resolve:
  localhost: [127.0.0.1]
extra_roots: [{work}/up.pem]
""")
    workers = os.environ.get("SIDECAR_WORKERS")
    ours = start([BIN, "proxy", "--config", f"{work}/proxy.yaml", *(["--worker-threads", workers] if workers else [])],
                 env={**os.environ, "SEALPOD_LOG": "warn"})
    with open(f"{work}/squid.conf", "w") as f:
        f.write(f"""http_port 127.0.0.1:{squid_port}
http_access allow all
cache deny all
access_log none
cache_log {work}/squid-cache.log
pid_filename {work}/squid.pid
coredump_dir {work}
shutdown_lifetime 1 seconds
""")
    squid = start(["squid", "-N", "-f", f"{work}/squid.conf"])
    with open(f"{work}/tinyproxy.conf", "w") as f:
        f.write(f"Port {tiny_port}\nListen 127.0.0.1\nTimeout 600\nMaxClients 2000\nLogLevel Critical\nUser nobody\nGroup nogroup\n")
    tiny = start(["tinyproxy", "-d", "-c", f"{work}/tinyproxy.conf"])
    os.makedirs(f"{work}/mitm", exist_ok=True)
    mitm = start([MITMDUMP, "-q", "--listen-host", "127.0.0.1", "--listen-port", str(mitm_port),
                  "--set", f"confdir={work}/mitm", "--set", "ssl_insecure=true",
                  "--set", "stream_large_bodies=1", "-s", os.path.join(ROOT, "sidecar/bench/mitm_swap.py")],
                 env={**os.environ, "SEALPOD_BENCH_SEALED": SEALED, "SEALPOD_BENCH_REAL": REAL})
    for port in (uport, ours_port, squid_port, tiny_port, mitm_port):
        wait_port(port)
    for _ in range(100):
        if os.path.exists(f"{work}/mitm/mitmproxy-ca-cert.pem"):
            break
        time.sleep(0.1)
    time.sleep(1.0)
    pids = {"ours": ours.pid, "squid": squid.pid, "tinyproxy": tiny.pid, "mitmproxy": mitm.pid}
    idle = {name: rss_kib(pid) for name, pid in pids.items()}
    addr = {"ours": f"127.0.0.1:{ours_port}", "squid": f"127.0.0.1:{squid_port}",
            "tinyproxy": f"127.0.0.1:{tiny_port}", "mitmproxy": f"127.0.0.1:{mitm_port}"}

    tunnel_url = f"https://localhost:{uport}/public?size=1024"
    mitm_url = f"https://127.0.0.1:{uport}/bytes?size=1024"

    def tunnel_args(path):
        a = ["--url", tunnel_url, "--cacert", f"{work}/up.pem"]
        return a + (["--connect-to", f"127.0.0.1:{uport}"] if path == "direct" else ["--proxy", addr[path]])

    def mitm_args(path):
        if path == "direct":
            return ["--url", mitm_url, "--cacert", f"{work}/up.pem", "--header", f"x-api-key: {REAL}"]
        ca = f"{work}/pod-ca.pem" if path == "ours" else f"{work}/mitm/mitmproxy-ca-cert.pem"
        return ["--url", mitm_url, "--cacert", ca, "--proxy", addr[path], "--header", f"x-api-key: {SEALED}"]

    results = {}

    def measure(scenario, path, args, extra):
        pid = pids.get(path)
        before = cpu_ticks(pid) if pid else 0
        r = loadgen("rps", *args, "--secs", str(SECS), *extra)
        after = cpu_ticks(pid) if pid else 0
        r["cpu_us_per_req"] = ((after - before) / TICK * 1e6 / r["requests"]) if pid and r["requests"] else None
        results.setdefault((scenario, path), []).append(r)
        if r["errors"]:
            print(f"  note: {scenario}/{path}: {r['errors']} errors ({r['last_error'][:80]})", file=sys.stderr)

    # Idle connections first, while each heap is fresh: after the load rounds, freed memory is
    # reused and a new connection's cost no longer shows in RSS.
    mem = {}
    for path, url_args, count in (("ours", tunnel_args("ours"), 200), ("squid", tunnel_args("squid"), 200),
                                  ("tinyproxy", tunnel_args("tinyproxy"), 200)):
        mem[(path, "tunnel")] = idle_slope(pids[path], url_args, count)
    for path in ("ours", "mitmproxy"):
        mem[(path, "mitm")] = idle_slope(pids[path], mitm_args(path), 100)
    print(f"uptime: {open('/proc/loadavg').read().strip()}  rounds={ROUNDS} secs={SECS}"
          f"  sidecar workers={os.environ.get('SIDECAR_WORKERS', 'default')}")
    for rnd in range(ROUNDS):
        print(f"round {rnd + 1}/{ROUNDS}", file=sys.stderr)
        for path in ("direct", "ours", "squid", "tinyproxy"):
            measure("P1", path, tunnel_args(path), ["-c", "16"])
        for path in ("direct", "ours", "squid", "tinyproxy"):
            measure("P2", path, tunnel_args(path), ["-c", "8", "--new-conn"])
        for path in ("direct", "ours", "mitmproxy"):
            measure("P5", path, mitm_args(path), ["-c", "16"])

    sse = {}
    for path in ("direct", "ours", "mitmproxy"):
        args = mitm_args(path)
        args[1] = f"https://127.0.0.1:{uport}/sse?n=200&gap_ms=10"
        sse[path] = loadgen("sse", *args)

    hwm = {name: hwm_kib(pid) for name, pid in pids.items()}

    report(results, sse, idle, mem, hwm)


def idle_slope(pid, args, count):
    before = rss_kib(pid)
    p = subprocess.Popen([LOADGEN, "idle", *args, "--count", str(count), "--hold", "3"],
                         stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    time.sleep(1.0)
    during = rss_kib(pid)
    p.wait(timeout=30)
    if not line.startswith("ready"):
        return None
    return (during - before) / count


def hwm_kib(pid):
    total = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(v, unit=""):
    if v is None:
        return "-"
    return f"{v:,.1f}{unit}" if isinstance(v, float) else f"{v}{unit}"


def ratio(a, b):
    return f"{a / b:.2f}x" if a and b else "-"


def report(results, sse, idle, mem, hwm):
    summary = {}
    print()
    print(f"{'scenario':<9}{'path':<11}{'rps':>12}{'p50 us':>9}{'p99 us':>9}{'proxy CPU us/req':>18}{'errors':>8}")
    for (scenario, path), runs in results.items():
        s = {k: med([r[k] for r in runs]) for k in ("rps", "p50_us", "p99_us", "cpu_us_per_req")}
        s["errors"] = sum(r["errors"] for r in runs)
        summary[(scenario, path)] = s
        print(f"{scenario:<9}{path:<11}{fmt(s['rps']):>12}{fmt(s['p50_us']):>9}{fmt(s['p99_us']):>9}"
              f"{fmt(s['cpu_us_per_req']):>18}{s['errors']:>8}")

    def g(sc, p, k):
        return summary.get((sc, p), {}).get(k)

    print()
    print("ratios (ours / peer; CPU lower is better, rps higher is better):")
    for sc in ("P1", "P2"):
        for peer in ("squid", "tinyproxy"):
            print(f"  {sc} CPU/req ours/{peer}: {ratio(g(sc, 'ours', 'cpu_us_per_req'), g(sc, peer, 'cpu_us_per_req'))}"
                  f"   rps ours/{peer}: {ratio(g(sc, 'ours', 'rps'), g(sc, peer, 'rps'))}")
        print(f"  {sc} rps ours/direct: {ratio(g(sc, 'ours', 'rps'), g(sc, 'direct', 'rps'))}"
              f"   p99 added: {fmt((g(sc, 'ours', 'p99_us') or 0) - (g(sc, 'direct', 'p99_us') or 0), ' us')}")
    print(f"  P5 rps ours/mitmproxy: {ratio(g('P5', 'ours', 'rps'), g('P5', 'mitmproxy', 'rps'))}"
          f"   CPU/req ours/mitmproxy: {ratio(g('P5', 'ours', 'cpu_us_per_req'), g('P5', 'mitmproxy', 'cpu_us_per_req'))}"
          f"   rps ours/direct: {ratio(g('P5', 'ours', 'rps'), g('P5', 'direct', 'rps'))}")
    print()
    print("P7 SSE, 200 events 10 ms apart (delay = receive time - send time in the upstream):")
    for path, r in sse.items():
        print(f"  {path:<10} events {r['events']:>4} frames {r['frames']:>4} coalesced {r['coalesced']:>3}"
              f"  delay p50 {r['delay_p50_us']} us  p99 {r['delay_p99_us']} us  max {r['delay_max_us']} us")
    if sse.get("ours") and sse.get("direct"):
        print(f"  added p99 ours-direct: {sse['ours']['delay_p99_us'] - sse['direct']['delay_p99_us']} us;"
              f" mitmproxy-direct: {sse['mitmproxy']['delay_p99_us'] - sse['direct']['delay_p99_us']} us")
    print()
    print("P9 memory (KiB):")
    for name in ("ours", "squid", "tinyproxy", "mitmproxy"):
        print(f"  {name:<10} idle RSS {idle[name]:>7}   VmHWM after load {hwm[name]:>7}")
    for (path, kind), slope in mem.items():
        print(f"  {path:<10} per idle {kind} connection: {fmt(slope)}")
    print(f"  idle RSS ours/tinyproxy {ratio(idle['ours'], idle['tinyproxy'])}  ours/squid {ratio(idle['ours'], idle['squid'])}"
          f"  ours/mitmproxy {ratio(idle['ours'], idle['mitmproxy'])}")
    print(f"  per idle tunnel ours/tinyproxy {ratio(mem[('ours', 'tunnel')], mem[('tinyproxy', 'tunnel')])}"
          f"  ours/squid {ratio(mem[('ours', 'tunnel')], mem[('squid', 'tunnel')])}")
    print(f"  per MITM connection ours/mitmproxy {ratio(mem[('ours', 'mitm')], mem[('mitmproxy', 'mitm')])}")


if __name__ == "__main__":
    main()

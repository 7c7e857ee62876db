#!/usr/bin/env python3
"""Applies the chart's rendered manifests to a devcluster with the real kubectl.

    python3 charts/sealpod/tests/apply_devcluster.py DEVCLUSTER_BIN KUBECTL

Starts `DEVCLUSTER_BIN serve --listen 127.0.0.1:0 --tls --kubeconfig-out …` on loopback, then with
KUBECTL: creates the release namespace, applies the rendered CRDs and waits for them to be
Established, applies every other rendered object whose kind the server serves (as
`kubectl api-resources` reports it), reads each one back, applies `examples/` into a tenant
namespace (proving the chart's CRDs register working kinds), and re-applies everything to check
it is unchanged. devcluster is not a full Kubernetes (no Deployments, RBAC, PVCs, Ingress or
PodDisruptionBudgets): objects of kinds it does not serve are listed as not applied, and the
kinds it must serve (CRDs, Namespaces, ServiceAccounts, Services, NetworkPolicies) make the run
fail if missing. The server is stopped at the end, whatever happens; every step is bounded.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

CHART = Path(__file__).resolve().parents[1]
ROOT = CHART.parents[1]
NAMESPACE = "sealpod-system"
TENANT = "team-a"
MUST_SERVE = {"CustomResourceDefinition", "Namespace", "ServiceAccount", "Service", "NetworkPolicy"}
STEP_TIMEOUT = 60


class Failure(Exception):
    pass


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    devcluster, kubectl = sys.argv[1], sys.argv[2]
    tmp = Path(tempfile.mkdtemp(prefix="sealpod-apply-"))
    kubeconfig = tmp / "kubeconfig"
    env = dict(os.environ, KUBECONFIG=str(kubeconfig), HOME=str(tmp))
    # HTTPS: kubectl sends bearer tokens only over TLS (the CA is written into the kubeconfig).
    server = subprocess.Popen([devcluster, "serve", "--listen", "127.0.0.1:0", "--tls",
                               "--kubeconfig-out", str(kubeconfig)],
                              stdout=subprocess.PIPE, stderr=open(tmp / "devcluster.log", "w"), text=True)
    try:
        wait_ready(server, kubeconfig)
        run_checks(kubectl, env, tmp)
        print("apply to devcluster: 1 passed, 0 failed")
        return 0
    except Failure as e:
        print(f"apply to devcluster FAILED: {e}", file=sys.stderr)
        print((tmp / "devcluster.log").read_text()[-4000:], file=sys.stderr)
        print("apply to devcluster: 0 passed, 1 failed")
        return 1
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def wait_ready(server: subprocess.Popen[str], kubeconfig: Path) -> None:
    assert server.stdout is not None
    deadline = time.monotonic() + STEP_TIMEOUT
    while time.monotonic() < deadline:
        line = server.stdout.readline()
        if not line:
            raise Failure(f"devcluster exited with {server.wait()} before it was ready")
        if line.startswith("listening on ") and kubeconfig.exists():
            return
    raise Failure("devcluster did not become ready")


def k(kubectl: str, env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    proc = subprocess.run([kubectl, *args], input=stdin, capture_output=True, text=True, env=env,
                          timeout=STEP_TIMEOUT)
    if proc.returncode != 0:
        raise Failure(f"kubectl {' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()}")
    return proc.stdout


def create_namespace(kubectl: str, env: dict[str, str], name: str) -> None:
    # `apply` of a manifest, not `create namespace`: the generator sends protobuf, which
    # devcluster refuses (415); manifests travel as JSON.
    k(kubectl, env, "apply", "-f", "-",
      stdin=yaml.safe_dump({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}))


def render() -> list[dict]:
    out = subprocess.run(["helm", "template", "rel", str(CHART), "-n", NAMESPACE, "--include-crds",
                          "--kube-version", "1.33.0"], capture_output=True, text=True, check=True,
                         env=dict(os.environ, HOME=tempfile.mkdtemp()), timeout=STEP_TIMEOUT).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def served_kinds(kubectl: str, env: dict[str, str]) -> set[tuple[str, str]]:
    """(apiVersion, kind) pairs the server serves."""
    kinds = set()
    for line in k(kubectl, env, "api-resources", "--no-headers").splitlines():
        cols = line.split()
        kinds.add((cols[-3], cols[-1]))
    return kinds


def run_checks(kubectl: str, env: dict[str, str], tmp: Path) -> None:
    docs = render()
    served = served_kinds(kubectl, env)
    missing = {kind for kind in MUST_SERVE if not any(kd == kind for _, kd in served)}
    if missing:
        raise Failure(f"devcluster does not serve {sorted(missing)}")
    crds = [d for d in docs if d["kind"] == "CustomResourceDefinition"]
    rest = [d for d in docs if d["kind"] != "CustomResourceDefinition"]
    applied = [d for d in rest if (d["apiVersion"], d["kind"]) in served]
    skipped = sorted({f"{d['kind']}" for d in rest if (d["apiVersion"], d["kind"]) not in served})
    print(f"devcluster serves {len(applied)} of {len(rest)} rendered objects; not applied (kinds it does "
          f"not serve): {', '.join(skipped) or 'none'}")

    create_namespace(kubectl, env, NAMESPACE)
    out = k(kubectl, env, "apply", "-f", "-", stdin=yaml.safe_dump_all(crds))
    for crd in crds:
        name = crd["metadata"]["name"]
        if f"customresourcedefinition.apiextensions.k8s.io/{name} created" not in out:
            raise Failure(f"CRD {name} not created: {out}")
        k(kubectl, env, "wait", "--for=condition=Established", f"crd/{name}", "--timeout=30s")
    out = k(kubectl, env, "apply", "-f", "-", stdin=yaml.safe_dump_all(applied))
    if out.count(" created") != len(applied):
        raise Failure(f"expected {len(applied)} objects created:\n{out}")

    # Read each object back and compare what the chart set.
    for d in applied:
        ns = d["metadata"].get("namespace")
        args = ["get", f"{d['kind']}.{d['apiVersion'].split('/')[0]}" if "/" in d["apiVersion"] else d["kind"],
                d["metadata"]["name"], "-o", "json"] + (["-n", ns] if ns else [])
        got = json.loads(k(kubectl, env, *args))
        for key, value in d["metadata"].get("labels", {}).items():
            if got["metadata"].get("labels", {}).get(key) != value:
                raise Failure(f"{d['kind']}/{d['metadata']['name']}: label {key} lost")
        if d["kind"] == "Service":
            want = [(p["name"], p["port"]) for p in d["spec"]["ports"]]
            have = [(p["name"], p["port"]) for p in got["spec"]["ports"]]
            if want != have:
                raise Failure(f"Service {d['metadata']['name']}: ports {have} != {want}")
        if d["kind"] == "NetworkPolicy" and got["spec"]["podSelector"] != d["spec"]["podSelector"]:
            raise Failure(f"NetworkPolicy {d['metadata']['name']}: podSelector changed")

    # The chart's CRDs serve the custom kinds: the examples apply and read back with columns.
    create_namespace(kubectl, env, TENANT)
    out = k(kubectl, env, "apply", "-n", TENANT, "-f", str(ROOT / "examples"))
    for kind in ("agent", "credential", "session"):
        if f"{kind}.sealpod.dev/" not in out:
            raise Failure(f"examples: no {kind} applied:\n{out}")
    table = k(kubectl, env, "get", "sessions", "-n", TENANT)
    if "AGENT" not in table or "ses-example" not in table:
        raise Failure(f"kubectl get sessions lacks the printer columns:\n{table}")

    # A second apply changes nothing.
    out = k(kubectl, env, "apply", "-f", "-", stdin=yaml.safe_dump_all(crds + applied))
    lines = [l for l in out.splitlines() if l.strip()]
    if len(lines) != len(crds) + len(applied) or not all(l.endswith(" unchanged") for l in lines):
        raise Failure(f"re-apply was not a no-op:\n{out}")


if __name__ == "__main__":
    sys.exit(main())

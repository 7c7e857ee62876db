#!/usr/bin/env python3
"""Differential fidelity of devcluster against the real kube-apiserver.

    python3 devcluster/tests/fidelity.py DEVCLUSTER_BIN CONTROLPLANE_BIN KUBECTL

Starts `devcluster serve --tls` and `sealpod-controlplane serve` (the upstream etcd,
kube-apiserver and kube-controller-manager) on loopback, sends both the same raw API requests and
kubectl commands — CRUD, errors, label and field selectors, merge / JSON / strategic-merge
patches, server-side apply with a conflict and a forced apply, finalizers, the status
subresource, schema-invalid custom resources, dry runs, Tables, watch with resume and bookmarks,
a too-old resourceVersion, kubectl's table and YAML output — and compares the responses after
normalizing what legitimately differs between two servers (uids, resourceVersions, timestamps,
ages, generated names).

It prints each differing case with both sides and `fidelity: N/M identical`. A difference listed
in KNOWN (and in devcluster/README.md, "Differences from kube-apiserver") is reported and
tolerated; any other difference, or a known one that no longer differs, fails the run, so the
list stays true. Both servers are stopped at the end whatever happens; every step is bounded.
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import http.client
from pathlib import Path
from typing import Any, Callable

import yaml

ROOT = Path(__file__).resolve().parents[2]
FIXTURE_CRD = ROOT / "devcluster/tests/fixtures/widget-crd.yaml"
NS = "fidelity"
STEP_TIMEOUT = 120

# Differences we know of and leave, with why (mirrored in devcluster/README.md).
KNOWN: dict[str, str] = {
    "pod: create (server-side defaults)":
        "devcluster does not default built-in kinds (no admission chain): a real server adds "
        "restartPolicy, dnsPolicy, terminationGracePeriodSeconds, the service account and more",
    "managedFields: the maps an update creates":
        "an ordinary write records the fields it set, not the maps it created (kube-apiserver "
        "adds `\".\": {}` for each); ownership and conflicts are the same",
}

class Failure(Exception):
    pass


# --- clients --------------------------------------------------------------------------------


class Server:
    """A JSON client of one API server, with the credentials of its kubeconfig."""

    def __init__(self, name: str, kubeconfig: Path, tmp: Path) -> None:
        self.name = name
        self.kubeconfig = kubeconfig
        config = yaml.safe_load(kubeconfig.read_text())
        context = next(c for c in config["contexts"] if c["name"] == config["current-context"])["context"]
        cluster = next(c for c in config["clusters"] if c["name"] == context["cluster"])["cluster"]
        user = next(u for u in config["users"] if u["name"] == context["user"])["user"]
        url = cluster["server"].removeprefix("https://")
        self.host, port = url.split(":")
        self.port = int(port)
        self.ssl = ssl.create_default_context(cadata=base64.b64decode(cluster["certificate-authority-data"]).decode())
        self.headers: dict[str, str] = {}
        if "token" in user:
            self.headers["Authorization"] = f"Bearer {user['token']}"
        else:
            cert, key = tmp / f"{name}.crt", tmp / f"{name}.key"
            cert.write_bytes(base64.b64decode(user["client-certificate-data"]))
            key.write_bytes(base64.b64decode(user["client-key-data"]))
            os.chmod(key, 0o600)
            self.ssl.load_cert_chain(cert, key)

    def connect(self, timeout: float = 30) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection(self.host, self.port, context=self.ssl, timeout=timeout)

    def call(self, method: str, path: str, body: Any = None, content_type: str = "application/json",
             accept: str = "application/json") -> tuple[int, Any]:
        conn = self.connect()
        try:
            headers = dict(self.headers, Accept=accept)
            data = None
            if body is not None:
                data = body if isinstance(body, str) else json.dumps(body)
                headers["Content-Type"] = content_type
            conn.request(method, path, body=data, headers=headers)
            res = conn.getresponse()
            text = res.read().decode()
            try:
                return res.status, json.loads(text)
            except ValueError:
                return res.status, text
        finally:
            conn.close()

    def watch(self, path: str, until: Callable[[list[dict[str, Any]]], bool], seconds: float) -> list[dict[str, Any]]:
        """Reads watch events until `until(events)` holds or `seconds` pass."""
        conn = self.connect(timeout=seconds)
        events: list[dict[str, Any]] = []
        try:
            conn.request("GET", path, headers=dict(self.headers, Accept="application/json"))
            res = conn.getresponse()
            if res.status != 200:
                return [{"type": "HTTP", "object": {"code": res.status}}]
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline and not until(events):
                line = res.readline()
                if not line:
                    break
                if line.strip():
                    events.append(json.loads(line))
        except (TimeoutError, OSError):
            pass
        finally:
            conn.close()
        return events

    def kubectl(self, kubectl: str, *args: str) -> tuple[int, str]:
        env = dict(os.environ, KUBECONFIG=str(self.kubeconfig))
        out = subprocess.run([kubectl, *args], env=env, capture_output=True, text=True, timeout=STEP_TIMEOUT)
        return out.returncode, out.stdout + out.stderr


# --- normalization --------------------------------------------------------------------------

VOLATILE_META = {"uid", "resourceVersion", "creationTimestamp", "selfLink"}
TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")


def normalize(value: Any) -> Any:
    """Removes what differs between any two servers: identities, versions and times."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if k in VOLATILE_META:
                out[k] = "<set>"
            elif k == "managedFields" and isinstance(v, list):
                # Times differ; the `"."` entries are compared once, by their own case.
                out[k] = [{kk: ("<time>" if kk == "time" else without_dots(vv)) for kk, vv in f.items()}
                          for f in v]
            elif k == "deletionTimestamp":
                out[k] = "<set>"
            elif k == "uid" or (k == "continue" and v):
                out[k] = "<set>"
            else:
                out[k] = normalize(v)
        return out
    if isinstance(value, list):
        return [normalize(v) for v in value]
    if isinstance(value, str):
        return TIME.sub("<time>", value)
    return value


def without_dots(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: without_dots(v) for k, v in value.items() if k != "."}
    return value


def status_shape(body: Any) -> Any:
    """The parts of a Status a client acts on."""
    if not isinstance(body, dict) or body.get("kind") != "Status":
        return body
    details = body.get("details") or {}
    return {
        "status": body.get("status"), "reason": body.get("reason"), "code": body.get("code"),
        "message": body.get("message"),
        "details": {k: v for k, v in details.items() if k in ("name", "group", "kind", "causes")},
    }


def kubectl_text(text: str) -> str:
    text = TIME.sub("<time>", text)
    text = re.sub(r"\b\d+(\.\d+)?(s|m|h|d)\b", "<age>", text)
    text = re.sub(r"(resourceVersion|uid): .*", r"\1: <set>", text)
    lines = [ln for ln in text.splitlines() if "version difference between client" not in ln]
    return "\n".join(lines)


# --- the cases ------------------------------------------------------------------------------


def cm(name: str, labels: dict[str, str] | None = None, data: dict[str, str] | None = None) -> dict[str, Any]:
    # Every ConfigMap of the suite carries `fid`, and listings select on it: a real namespace
    # also holds `kube-root-ca.crt`, which kube-controller-manager publishes.
    meta: dict[str, Any] = {"name": name, "labels": dict(labels or {}, fid="1")}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data or {"a": "1"}}


def widget(name: str, size: Any = 3, **extra: Any) -> dict[str, Any]:
    body = {"apiVersion": "fixture.sealpod.dev/v1alpha1", "kind": "Widget",
            "metadata": {"name": name}, "spec": {"size": size}}
    body.update(extra)
    return body


CMS = f"/api/v1/namespaces/{NS}/configmaps"
PODS = f"/api/v1/namespaces/{NS}/pods"
WIDGETS = f"/apis/fixture.sealpod.dev/v1alpha1/namespaces/{NS}/widgets"
MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
APPLY = "application/apply-patch+yaml"


def cases(kubectl: str) -> list[tuple[str, Callable[[Server], Any]]]:
    """Each case runs on one server and returns what is compared."""

    def call(s: Server, *a: Any, **k: Any) -> Any:
        code, body = s.call(*a, **k)
        return {"code": code, "body": normalize(status_shape(body))}

    def seq(*steps: Callable[[Server], Any]) -> Callable[[Server], Any]:
        return lambda s: [step(s) for step in steps]

    def watch_from_list(s: Server) -> Any:
        _, listed = s.call("GET", f"{CMS}?labelSelector=w=1")
        rv = listed["metadata"]["resourceVersion"]
        s.call("POST", CMS, cm("watched", {"w": "1"}))
        s.call("PATCH", f"{CMS}/watched", {"data": {"a": "2"}}, content_type=MERGE)
        s.call("DELETE", f"{CMS}/watched")
        events = s.watch(f"{CMS}?watch=1&labelSelector=w=1&resourceVersion={rv}",
                         lambda ev: len(ev) >= 3, 20)
        return [(e["type"], e["object"]["metadata"]["name"], e["object"].get("data")) for e in events]

    def watch_bookmarks(s: Server) -> Any:
        # When bookmarks come is each server's choice (devcluster every few seconds,
        # kube-apiserver about once a minute): compared are the other events, and the shape of
        # any bookmark (a bare object carrying only a resourceVersion).
        _, listed = s.call("GET", f"{CMS}?labelSelector=b=1")
        rv = listed["metadata"]["resourceVersion"]
        s.call("POST", CMS, cm("bookmarked", {"b": "1"}))
        events = s.watch(f"{CMS}?watch=1&labelSelector=b=1&resourceVersion={rv}"
                         "&allowWatchBookmarks=true&timeoutSeconds=3",
                         lambda ev: any(e["type"] == "ADDED" for e in ev), 10)
        marks = [e["object"] for e in events if e["type"] == "BOOKMARK"]
        shapes = {tuple(sorted(m["metadata"])) for m in marks}
        return {
            "events": [(e["type"], e["object"]["metadata"]["name"]) for e in events if e["type"] != "BOOKMARK"],
            "bookmark shapes": sorted(shapes - {("resourceVersion",)}),
        }

    def watch_initial_events(s: Server) -> Any:
        s.call("POST", CMS, cm("initial", {"i": "1"}))
        events = s.watch(f"{CMS}?watch=1&labelSelector=i=1&sendInitialEvents=true"
                         "&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan",
                         lambda ev: any(e["type"] == "BOOKMARK" for e in ev), 15)
        out = []
        for e in events:
            annotations = e["object"]["metadata"].get("annotations") or {}
            out.append((e["type"], e["object"]["metadata"].get("name", ""),
                        annotations.get("k8s.io/initial-events-end")))
        return out

    def watch_too_old(s: Server) -> Any:
        events = s.watch(f"{CMS}?watch=1&resourceVersion=1", lambda ev: len(ev) >= 1, 10)
        return [(e["type"], e["object"].get("code"), e["object"].get("reason")) for e in events[:1]]

    def finalizer(s: Server) -> Any:
        s.call("POST", CMS, dict(cm("held"), metadata={"name": "held", "finalizers": ["fidelity.sealpod.dev/hold"]}))
        deleted = call(s, "DELETE", f"{CMS}/held")
        still = call(s, "GET", f"{CMS}/held")
        add = call(s, "PATCH", f"{CMS}/held", [{"op": "add", "path": "/metadata/finalizers/-", "value": "x/y"}],
                   content_type=JSON_PATCH)
        released = call(s, "PATCH", f"{CMS}/held", {"metadata": {"finalizers": None}}, content_type=MERGE)
        gone = call(s, "GET", f"{CMS}/held")
        return [deleted, still, add, released, gone]

    def ssa(s: Server) -> Any:
        body = yaml.safe_dump(cm("applied", data={"a": "1", "b": "2"}))
        first = call(s, "PATCH", f"{CMS}/applied?fieldManager=team-a", body, content_type=APPLY)
        other = yaml.safe_dump(cm("applied", data={"a": "9"}))
        conflict = call(s, "PATCH", f"{CMS}/applied?fieldManager=team-b", other, content_type=APPLY)
        forced = call(s, "PATCH", f"{CMS}/applied?fieldManager=team-b&force=true", other, content_type=APPLY)
        shrink = yaml.safe_dump(cm("applied", data={"a": "1"}))
        dropped = call(s, "PATCH", f"{CMS}/applied?fieldManager=team-a", shrink, content_type=APPLY)
        return [first, conflict, forced, dropped]

    def status_subresource(s: Server) -> Any:
        s.call("POST", WIDGETS, widget("st"))
        on_status = call(s, "PATCH", f"{WIDGETS}/st/status",
                         {"spec": {"size": 9}, "status": {"observedSize": 3}}, content_type=MERGE)
        on_main = call(s, "PATCH", f"{WIDGETS}/st", {"spec": {"size": 4}, "status": {"observedSize": 7}},
                       content_type=MERGE)
        return [on_status, on_main]

    def table(path: str) -> Callable[[Server], Any]:
        def run(s: Server) -> Any:
            code, body = s.call("GET", path, accept="application/json;as=Table;v=v1;g=meta.k8s.io")
            if code != 200:
                return {"code": code, "body": status_shape(body)}
            return {
                "columns": [(c["name"], c["type"], c.get("format", "")) for c in body["columnDefinitions"]],
                "rows": [[("<age>" if isinstance(c, str) and re.fullmatch(r"\d+[smhd]", c) else c) for c in r["cells"]]
                         for r in body["rows"]],
            }
        return run

    def kubectl_case(*args: str) -> Callable[[Server], Any]:
        def run(s: Server) -> Any:
            code, out = s.kubectl(kubectl, *args)
            return {"exit": code, "out": kubectl_text(out)}
        return run

    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
           "spec": {"containers": [{"name": "main", "image": "busybox", "env": [{"name": "A", "value": "1"}]},
                                   {"name": "side", "image": "busybox"}]}}

    return [
        ("configmap: create", lambda s: call(s, "POST", CMS, cm("one", {"app": "x", "tier": "a"}))),
        ("configmap: create again is AlreadyExists", lambda s: call(s, "POST", CMS, cm("one"))),
        ("configmap: get", lambda s: call(s, "GET", f"{CMS}/one")),
        ("managedFields: the maps an update creates", lambda s: [
            f["fieldsV1"] for f in s.call("GET", f"{CMS}/one")[1]["metadata"]["managedFields"]]),
        ("configmap: get a missing one is NotFound", lambda s: call(s, "GET", f"{CMS}/missing")),
        ("configmap: an invalid name is Invalid", lambda s: call(s, "POST", CMS, cm("Bad_Name"))),
        ("configmap: create in a missing namespace", lambda s: call(s, "POST", "/api/v1/namespaces/nowhere/configmaps", cm("x"))),
        ("configmap: dry run creates nothing", seq(
            lambda s: call(s, "POST", f"{CMS}?dryRun=All", cm("dry"))["code"],
            lambda s: call(s, "GET", f"{CMS}/dry")["code"])),
        ("configmap: update with a stale resourceVersion is Conflict", lambda s: call(
            s, "PUT", f"{CMS}/one", dict(cm("one"), metadata={"name": "one", "resourceVersion": "1"}))),
        ("configmap: merge patch", lambda s: call(s, "PATCH", f"{CMS}/one", {"data": {"b": "2", "a": None}}, content_type=MERGE)),
        ("configmap: JSON patch", lambda s: call(s, "PATCH", f"{CMS}/one", [{"op": "add", "path": "/data/c", "value": "3"}], content_type=JSON_PATCH)),
        ("configmap: JSON patch failing a test", lambda s: call(s, "PATCH", f"{CMS}/one", [{"op": "test", "path": "/data/c", "value": "4"}], content_type=JSON_PATCH)),
        ("configmap: strategic merge patch", lambda s: call(s, "PATCH", f"{CMS}/one", {"data": {"d": "4"}}, content_type=STRATEGIC)),
        ("configmap: label selectors", seq(
            lambda s: s.call("POST", CMS, cm("two", {"app": "y", "tier": "a"}))[0],
            *[(lambda sel: lambda s: sorted(i["metadata"]["name"] for i in s.call("GET", f"{CMS}?labelSelector={sel}")[1]["items"]))(sel)
              for sel in ["fid,app%3Dx", "fid,app!%3Dx", "fid,tier", "fid,!tier", "fid,app+in+(x,y)", "fid,app+notin+(x)"]])),
        ("configmap: field selector", lambda s: sorted(
            i["metadata"]["name"] for i in s.call("GET", f"{CMS}?fieldSelector=metadata.name%3Dtwo")[1]["items"])),
        ("configmap: an unsupported field selector", lambda s: call(s, "GET", f"{CMS}?fieldSelector=data.a%3D1")["code"]),
        ("configmap: list pages", lambda s: [len(p["items"]) for p in [s.call("GET", f"{CMS}?limit=1")[1]]] +
            [bool(s.call("GET", f"{CMS}?limit=1")[1]["metadata"].get("continue"))]),
        ("configmap: delete", lambda s: call(s, "DELETE", f"{CMS}/two")["code"]),
        ("configmap: finalizers hold a delete", finalizer),
        ("configmap: server-side apply, conflict, force", ssa),
        ("secret: stringData folds into data", lambda s: call(s, "POST", f"/api/v1/namespaces/{NS}/secrets",
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"k": "v"}})),
        ("pod: create (server-side defaults)", lambda s: call(s, "POST", PODS, pod)),
        ("pod: strategic merge patch by container name", lambda s: [
            f"{c['name']}:{c['image']}"
            for c in s.call("PATCH", f"{PODS}/p", {"spec": {"containers": [{"name": "main", "image": "busybox:2"}]}},
                            content_type=STRATEGIC)[1].get("spec", {}).get("containers", [])]),
        ("widget: create", lambda s: call(s, "POST", WIDGETS, widget("w1"))),
        ("widget: schema-invalid is Invalid with causes", lambda s: call(s, "POST", WIDGETS, widget("bad", size="big"))),
        ("widget: a missing required field", lambda s: call(s, "POST", WIDGETS, {
            "apiVersion": "fixture.sealpod.dev/v1alpha1", "kind": "Widget", "metadata": {"name": "nospec"}, "spec": {}})),
        ("widget: unknown fields are pruned", lambda s: call(s, "POST", WIDGETS, widget("pruned", extra_top=1)
            | {"spec": {"size": 1, "unknown": True}})),
        ("widget: strategic merge patch is refused", lambda s: call(s, "PATCH", f"{WIDGETS}/w1", {"spec": {"size": 2}}, content_type=STRATEGIC)),
        ("widget: status subresource", status_subresource),
        ("widget: table", table(WIDGETS)),
        ("configmap: table", table(f"{CMS}?labelSelector=fid")),
        ("watch: resume from a list's resourceVersion", watch_from_list),
        ("watch: bookmarks", watch_bookmarks),
        ("watch: initial events end with a bookmark", watch_initial_events),
        ("watch: a too-old resourceVersion", watch_too_old),
        ("kubectl get configmaps (table)", kubectl_case("get", "configmaps", "-n", NS, "-l", "fid,app")),
        ("kubectl get widgets (table)", kubectl_case("get", "widgets", "-n", NS)),
        ("kubectl get pods (table)", kubectl_case("get", "pods", "-n", NS)),
        ("kubectl get -o yaml", kubectl_case("get", "configmap", "one", "-n", NS, "-o", "yaml")),
        ("kubectl get a missing object", kubectl_case("get", "configmap", "missing", "-n", NS)),
        ("kubectl patch an invalid widget", kubectl_case("patch", "widget", "w1", "-n", NS, "--type=merge",
                                                          "-p", '{"spec":{"size":"big"}}')),
        ("kubectl delete with a label selector", kubectl_case("delete", "configmaps", "-n", NS, "-l", "fid,tier")),
    ]


def flatten(value: Any, path: str = "") -> dict[str, Any]:
    if isinstance(value, dict) and value:
        return {k: v for key, item in value.items() for k, v in flatten(item, f"{path}.{key}").items()}
    if isinstance(value, list) and value:
        return {k: v for i, item in enumerate(value) for k, v in flatten(item, f"{path}[{i}]").items()}
    return {path: value}


def differences(a: Any, b: Any) -> list[tuple[str, Any, Any]]:
    """Each leaf path whose value differs (`<absent>` where one side has none)."""
    fa, fb = flatten(a), flatten(b)
    return [(p, fa.get(p, "<absent>"), fb.get(p, "<absent>")) for p in sorted(set(fa) | set(fb))
            if fa.get(p, "<absent>") != fb.get(p, "<absent>")]


# --- running --------------------------------------------------------------------------------


def start(args: list[str], tmp: Path, name: str) -> subprocess.Popen[str]:
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=open(tmp / f"{name}.log", "w"), text=True)


def wait_listening(proc: subprocess.Popen[str], name: str) -> None:
    assert proc.stdout is not None
    deadline = time.monotonic() + STEP_TIMEOUT
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise Failure(f"{name} exited with {proc.wait()} before it was ready")
        if line.startswith("listening on "):
            return
    raise Failure(f"{name} was not ready in {STEP_TIMEOUT} s")


def prepare(s: Server, kubectl: str) -> None:
    code, out = s.kubectl(kubectl, "apply", "-f", str(FIXTURE_CRD))
    if code != 0:
        raise Failure(f"{s.name}: applying the fixture CRD: {out}")
    code, out = s.kubectl(kubectl, "wait", "--for=condition=Established", "--timeout=60s",
                          "crd/widgets.fixture.sealpod.dev")
    if code != 0:
        raise Failure(f"{s.name}: the fixture CRD: {out}")
    code, out = s.kubectl(kubectl, "create", "namespace", NS)
    if code != 0:
        raise Failure(f"{s.name}: namespace: {out}")
    if s.name != "kube-apiserver":
        return
    # A real namespace admits pods once its default ServiceAccount exists.
    deadline = time.monotonic() + 60
    while s.call("GET", f"/api/v1/namespaces/{NS}/serviceaccounts/default")[0] != 200:
        if time.monotonic() > deadline:
            raise Failure("the default ServiceAccount never appeared")
        time.sleep(0.2)


def main() -> int:
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    devcluster_bin, controlplane_bin, kubectl = sys.argv[1:]
    tmp = Path(tempfile.mkdtemp(prefix="sealpod-fidelity-"))
    dev = start([devcluster_bin, "serve", "--listen", "127.0.0.1:0", "--tls",
                 "--kubeconfig-out", str(tmp / "dev.kubeconfig")], tmp, "devcluster")
    real = start([controlplane_bin, "serve", "--dir", str(tmp / "plane"),
                  "--kubeconfig-out", str(tmp / "real.kubeconfig")], tmp, "controlplane")
    try:
        wait_listening(dev, "devcluster")
        wait_listening(real, "the control plane")
        servers = [Server("devcluster", tmp / "dev.kubeconfig", tmp),
                   Server("kube-apiserver", tmp / "real.kubeconfig", tmp)]
        for s in servers:
            prepare(s, kubectl)
        identical, total, unexpected, fixed = 0, 0, [], []
        for name, case in cases(kubectl):
            total += 1
            got = [case(s) for s in servers]
            if got[0] == got[1]:
                identical += 1
                if name in KNOWN:
                    fixed.append(name)
                continue
            tag = "known" if name in KNOWN else "NEW"
            print(f"--- differs ({tag}): {name}")
            if name in KNOWN:
                print(f"    why: {KNOWN[name]}")
            else:
                unexpected.append(name)
            for path, dev_value, real_value in differences(got[0], got[1])[:12]:
                print(f"    {path or '(whole)'}: devcluster {dev_value!r} / kube-apiserver {real_value!r}"[:600])
        print(f"fidelity: {identical}/{total} identical")
        if fixed:
            print(f"no longer different (remove from KNOWN and the README): {', '.join(fixed)}")
        if unexpected:
            print(f"differences not listed as known: {', '.join(unexpected)}", file=sys.stderr)
        return 1 if unexpected or fixed else 0
    except Failure as e:
        print(f"fidelity FAILED: {e}", file=sys.stderr)
        for log in ("devcluster.log", "controlplane.log"):
            print((tmp / log).read_text()[-3000:], file=sys.stderr)
        return 1
    finally:
        for proc in (dev, real):
            proc.send_signal(signal.SIGTERM)
        for proc in (dev, real):
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        subprocess.run(["rm", "-rf", str(tmp)], check=False)


if __name__ == "__main__":
    sys.exit(main())

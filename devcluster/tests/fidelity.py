#!/usr/bin/env python3
"""Differential fidelity of devcluster against the real kube-apiserver.

    python3 devcluster/tests/fidelity.py DEVCLUSTER_BIN CONTROLPLANE_BIN KUBECTL

Starts `devcluster serve --tls` and `sealpod-controlplane serve` (the upstream etcd,
kube-apiserver and kube-controller-manager) on loopback, sends both the same raw API requests and
kubectl commands — CRUD of the built-in kinds devcluster serves, of our Agent and Session and of
the fixture Widget, errors, label and field selectors, merge / JSON / strategic-merge patches,
server-side apply with a conflict and a forced apply, finalizers, the status subresource,
schema-invalid custom resources, dry runs, delete answers, Tables, watch with resume, selector
exits, bookmarks and a too-old resourceVersion, kubectl's table, YAML, JSON and describe output —
and compares the responses after normalizing what legitimately differs between two servers
(uids, resourceVersions, timestamps, ages, cluster IPs, generated names, the order of a schema
violation's causes).

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
    "service: create":
        "devcluster does not default built-in kinds: a real server adds ipFamilies, "
        "internalTrafficPolicy, sessionAffinity, each port's protocol and targetPort (and so "
        "keys the ports by port and protocol in managedFields); its `selector` is atomic",
    "service: delete": "the deleted Service is answered as stored, so without the defaults above",
    "pod: delete": "the deleted Pod is answered as stored, so without the defaults above",
    "networkpolicy: create":
        "devcluster does not default built-in kinds: a real server adds policyTypes and each "
        "port's protocol; its podSelector is atomic in managedFields",
    "error: strict field validation of an unknown field":
        "devcluster has no schemas of built-in kinds: an unknown field of one is stored, never "
        "refused (custom resources are checked against their CRD)",
    "error: the kind in the body differs from the URL":
        "same code and reason; the message names Go's conversion functions",
    "error: body is not JSON":
        "same code and reason; the message quotes Go's JSON decoder",
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

    def kubectl(self, kubectl: str, *args: str, stdin: str | None = None) -> tuple[int, str]:
        env = dict(os.environ, KUBECONFIG=str(self.kubeconfig))
        out = subprocess.run([kubectl, *args], env=env, input=stdin, capture_output=True, text=True,
                             timeout=STEP_TIMEOUT)
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
            elif k in ("clusterIP", "clusterIPs"):
                # Each server allocates from its own service range.
                out[k] = "<ip>" if isinstance(v, str) else ["<ip>" for _ in v]
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
    details = dict(body.get("details") or {})
    message = body.get("message")
    causes = details.get("causes")
    if isinstance(causes, list) and len(causes) > 1:
        # kube-apiserver orders the causes of a schema violation as Go iterates a map (it
        # changes from run to run): compared as a set, and the message's list with them.
        listed = ", ".join(f"{c.get('field')}: {c.get('message')}" for c in causes)
        ordered = sorted(causes, key=lambda c: (c.get("field", ""), c.get("message", "")))
        if isinstance(message, str) and message.endswith(f"[{listed}]"):
            sorted_list = ", ".join(f"{c.get('field')}: {c.get('message')}" for c in ordered)
            message = message.removesuffix(f"[{listed}]") + f"[{sorted_list}]"
        details["causes"] = ordered
    return {
        "status": body.get("status"), "reason": body.get("reason"), "code": body.get("code"),
        "message": message,
        "details": {k: v for k, v in details.items() if k in ("name", "group", "kind", "causes")},
    }


def kubectl_text(text: str) -> str:
    text = TIME.sub("<time>", text)
    text = re.sub(r"\b\d+(\.\d+)?(s|m|h|d)\b", "<age>", text)
    text = re.sub(r"(resourceVersion|uid): .*", r"\1: <set>", text)
    text = re.sub(r'"(resourceVersion|uid|creationTimestamp)": "[^"]*"', r'"\1": "<set>"', text)
    text = re.sub(r"\b\d{1,3}(\.\d{1,3}){3}\b", "<ip>", text)
    text = re.sub(r"(Resource Version|UID):( +)\S+", r"\1:\2<set>", text)
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

    def kubectl_case(*args: str, stdin: str | None = None) -> Callable[[Server], Any]:
        def run(s: Server) -> Any:
            code, out = s.kubectl(kubectl, *args, stdin=stdin)
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
        *core_kind_cases(call, seq, table),
        *error_cases(call),
        *custom_resource_cases(call, table),
        *watch_cases(),
        *kubectl_cases(kubectl_case),
    ]


Case = tuple[str, Callable[[Server], Any]]
SECRETS = f"/api/v1/namespaces/{NS}/secrets"
SERVICES = f"/api/v1/namespaces/{NS}/services"
ACCOUNTS = f"/api/v1/namespaces/{NS}/serviceaccounts"
POLICIES = f"/apis/networking.k8s.io/v1/namespaces/{NS}/networkpolicies"
AGENTS = f"/apis/sealpod.dev/v1alpha1/namespaces/{NS}/agents"
SESSIONS = f"/apis/sealpod.dev/v1alpha1/namespaces/{NS}/sessions"


def example(name: str) -> dict[str, Any]:
    """The one object of kind `name` in examples/ (the repository's Agent, Session, Credential)."""
    for path in (ROOT / "examples").glob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == name:
                return doc
    raise Failure(f"no {name} in examples/")


def names(s: Server, path: str) -> list[str]:
    return sorted(i["metadata"]["name"] for i in s.call("GET", path)[1].get("items", []))


def until_gone(s: Server, path: str, seconds: float = 20) -> int:
    """Polls `path` until it is 404 (a real namespace goes once its controller emptied it)."""
    deadline = time.monotonic() + seconds
    while True:
        code = s.call("GET", path)[0]
        if code == 404 or time.monotonic() > deadline:
            return code
        time.sleep(0.2)


def core_kind_cases(call: Callable[..., Any], seq: Callable[..., Any], table: Callable[[str], Any]) -> list[Case]:
    """CRUD of the other built-in kinds devcluster serves."""
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc"},
               "spec": {"selector": {"app": "x"}, "ports": [{"name": "http", "port": 80}]}}
    policy = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "deny"},
              "spec": {"podSelector": {"matchLabels": {"app": "x"}},
                       "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}], "ports": [{"port": 443}]}]}}
    bad_policy = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "bad"},
                  "spec": {"podSelector": {}, "egress": [{"to": [{"ipBlock": {"cidr": "nonsense"}}]}]}}
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "fid-ns"}}

    def namespace_lifecycle(s: Server) -> Any:
        created = call(s, "POST", "/api/v1/namespaces", ns)
        s.call("POST", "/api/v1/namespaces/fid-ns/configmaps", cm("inside"))
        deleted = call(s, "DELETE", "/api/v1/namespaces/fid-ns")
        return [created, deleted, until_gone(s, "/api/v1/namespaces/fid-ns")]

    return [
        ("namespace: the initial namespaces", lambda s: [
            n for n in names(s, "/api/v1/namespaces") if n not in (NS,)]),
        ("namespace: create, delete (Terminating), gone", namespace_lifecycle),
        ("namespace: get", lambda s: call(s, "GET", f"/api/v1/namespaces/{NS}")),
        ("serviceaccount: the namespace's default", lambda s: call(s, "GET", f"{ACCOUNTS}/default")["code"]),
        ("serviceaccount: create", lambda s: call(s, "POST", ACCOUNTS, {
            "apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "robot"}})),
        ("serviceaccount: delete", lambda s: call(s, "DELETE", f"{ACCOUNTS}/robot")),
        ("secret: get", lambda s: call(s, "GET", f"{SECRETS}/s")),
        ("secret: data that is not base64", lambda s: call(s, "POST", SECRETS, {
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "bad64"}, "data": {"k": "not base64!"}})),
        ("secret: table", table(f"{SECRETS}?fieldSelector=metadata.name%3Ds")),
        ("secret: delete", lambda s: call(s, "DELETE", f"{SECRETS}/s")),
        ("service: create", lambda s: call(s, "POST", SERVICES, service)),
        ("service: strategic merge patch of ports by port", lambda s: [
            (p.get("name"), p.get("port")) for p in s.call(
                "PATCH", f"{SERVICES}/svc", {"spec": {"ports": [{"port": 80, "name": "web"}]}},
                content_type=STRATEGIC)[1]["spec"]["ports"]]),
        ("service: delete", lambda s: call(s, "DELETE", f"{SERVICES}/svc")),
        ("networkpolicy: create", lambda s: call(s, "POST", POLICIES, policy)),
        ("networkpolicy: an invalid ipBlock", lambda s: call(s, "POST", POLICIES, bad_policy)),
        ("networkpolicy: delete", lambda s: call(s, "DELETE", f"{POLICIES}/deny")),
        ("pod: field selector on spec.nodeName and status.phase", lambda s: [
            names(s, f"{PODS}?fieldSelector=spec.nodeName%3D"),
            names(s, f"{PODS}?fieldSelector=status.phase%3DPending"),
            names(s, f"{PODS}?fieldSelector=status.phase%21%3DPending")]),
        ("pod: delete", lambda s: call(s, "DELETE", f"{PODS}/p")),
        ("configmap: list", lambda s: call(s, "GET", f"{CMS}?labelSelector=fid,app")),
        ("configmap: generateName", lambda s: (lambda r: (r[0], r[1]["metadata"]["name"][:4],
                                                          len(r[1]["metadata"]["name"])))(
            s.call("POST", CMS, dict(cm(""), metadata={"generateName": "gen-", "labels": {"gen": "1"}})))),
        ("configmap: replace (PUT)", lambda s: call(s, "PUT", f"{CMS}/one", cm("one", {"app": "x"}, {"z": "9"}))),
        ("configmap: delete returns", lambda s: call(s, "DELETE", f"{CMS}/one")),
        ("configmap: delete collection", lambda s: (lambda r: (r["code"], r["body"].get("kind") if isinstance(r["body"], dict) else r["body"]))(
            call(s, "DELETE", f"{CMS}?labelSelector=gen"))),
        ("configmap: immutable data cannot change", seq(
            lambda s: call(s, "POST", CMS, dict(cm("frozen"), immutable=True))["code"],
            lambda s: call(s, "PATCH", f"{CMS}/frozen", {"data": {"a": "2"}}, content_type=MERGE))),
    ]


def error_cases(call: Callable[..., Any]) -> list[Case]:
    """Status bodies of refused requests."""
    return [
        ("error: delete a missing object", lambda s: call(s, "DELETE", f"{CMS}/missing")),
        ("error: patch a missing object", lambda s: call(s, "PATCH", f"{CMS}/missing", {"data": {}}, content_type=MERGE)),
        ("error: the name in the body differs from the URL", lambda s: call(s, "PUT", f"{CMS}/applied", cm("other"))),
        ("error: the namespace in the body differs from the URL", lambda s: call(
            s, "POST", CMS, dict(cm("x"), metadata={"name": "x", "namespace": "default"}))),
        ("error: the kind in the body differs from the URL", lambda s: call(
            s, "POST", CMS, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}})),
        ("error: an unknown resource", lambda s: call(s, "GET", f"/api/v1/namespaces/{NS}/gizmos")),
        ("error: an unknown group", lambda s: call(s, "GET", "/apis/nowhere.example/v1/gizmos")["code"]),
        ("error: a malformed label selector", lambda s: call(s, "GET", f"{CMS}?labelSelector=a%3D%3D%3Db")),
        ("error: body is not JSON", lambda s: call(s, "POST", CMS, "{not json")),
        ("error: strict field validation of an unknown field", lambda s: call(
            s, "POST", f"{CMS}?fieldValidation=Strict", dict(cm("strict"), bogus=1))),
        ("error: a patch type the server does not know", lambda s: call(
            s, "PATCH", f"{CMS}/applied", {"data": {}}, content_type="application/x-nonsense")),
        ("error: create on an object path", lambda s: call(s, "POST", f"{CMS}/x", cm("x"))["code"]),
    ]


def custom_resource_cases(call: Callable[..., Any], table: Callable[[str], Any]) -> list[Case]:
    """Our own CRDs (crds/, objects from examples/) and more of the fixture Widget."""
    agent = example("Agent")
    session = example("Session")
    bad_agent = json.loads(json.dumps(agent))
    bad_agent["metadata"]["name"] = "agt-bad"
    bad_agent["spec"]["egress"] = {"mode": "sometimes", "allow": ["NOT A HOST"]}
    bad_agent["spec"]["limits"] = {"turns": 0, "tokens": "many"}

    def widget_generation(s: Server) -> Any:
        s.call("POST", WIDGETS, widget("gen"))
        out = [s.call("GET", f"{WIDGETS}/gen")[1]["metadata"].get("generation")]
        for body in ({"metadata": {"labels": {"x": "1"}}}, {"spec": {"size": 5}}, {"spec": {"size": 5}}):
            out.append(s.call("PATCH", f"{WIDGETS}/gen", body, content_type=MERGE)[1]["metadata"].get("generation"))
        return out

    def widget_finalizer(s: Server) -> Any:
        s.call("POST", WIDGETS, dict(widget("fin"), metadata={"name": "fin", "finalizers": ["fidelity.sealpod.dev/hold"]}))
        deleted = call(s, "DELETE", f"{WIDGETS}/fin")
        spec = call(s, "PATCH", f"{WIDGETS}/fin", {"spec": {"size": 8}}, content_type=MERGE)
        released = call(s, "PATCH", f"{WIDGETS}/fin", {"metadata": {"finalizers": []}}, content_type=MERGE)
        return [deleted, spec, released, call(s, "GET", f"{WIDGETS}/fin")["code"]]

    def widget_ssa(s: Server) -> Any:
        first = yaml.safe_dump(widget("ssa") | {"spec": {"size": 1, "tags": ["a"]}})
        other = yaml.safe_dump(widget("ssa", size=2))
        return [call(s, "PATCH", f"{WIDGETS}/ssa?fieldManager=one", first, content_type=APPLY),
                call(s, "PATCH", f"{WIDGETS}/ssa?fieldManager=two", other, content_type=APPLY),
                call(s, "PATCH", f"{WIDGETS}/ssa?fieldManager=two&force=true", other, content_type=APPLY)]

    def status_put(s: Server) -> Any:
        _, current = s.call("GET", f"{WIDGETS}/st")
        current["status"] = {"observedSize": 11, "phase": "Ready"}
        current["spec"] = {"size": 12}
        return call(s, "PUT", f"{WIDGETS}/st/status", current)

    return [
        ("agent: create the example", lambda s: call(s, "POST", AGENTS, agent)),
        ("agent: schema-invalid (enum, pattern, minimum, type)", lambda s: call(s, "POST", AGENTS, bad_agent)),
        ("agent: table", table(AGENTS)),
        ("session: create the example", lambda s: call(s, "POST", SESSIONS, session)),
        ("session: status subresource", lambda s: call(
            s, "PATCH", f"{SESSIONS}/ses-example/status", {"status": {"phase": "Running", "head": 2}},
            content_type=MERGE)),
        ("session: table", table(SESSIONS)),
        ("widget: get", lambda s: call(s, "GET", f"{WIDGETS}/w1")),
        ("widget: list", lambda s: call(s, "GET", f"{WIDGETS}?fieldSelector=metadata.name%3Dw1")),
        ("widget: generation follows the spec", widget_generation),
        ("widget: status replace (PUT)", status_put),
        ("widget: finalizers hold a delete", widget_finalizer),
        ("widget: server-side apply, conflict, force", widget_ssa),
        ("widget: an unsupported field selector", lambda s: call(
            s, "GET", f"{WIDGETS}?fieldSelector=spec.size%3D3")),
        ("widget: strict field validation", lambda s: call(
            s, "POST", f"{WIDGETS}?fieldValidation=Strict", widget("strict") | {"spec": {"size": 1, "bogus": 1}})),
        ("widget: delete returns", lambda s: call(s, "DELETE", f"{WIDGETS}/w1")),
    ]


def watch_cases() -> list[Case]:
    def leaves_selector(s: Server) -> Any:
        s.call("POST", CMS, cm("mover", {"m": "1"}))
        _, listed = s.call("GET", f"{CMS}?labelSelector=m%3D1")
        rv = listed["metadata"]["resourceVersion"]
        s.call("PATCH", f"{CMS}/mover", {"metadata": {"labels": {"m": "2"}}}, content_type=MERGE)
        s.call("PATCH", f"{CMS}/mover", {"metadata": {"labels": {"m": "1"}}}, content_type=MERGE)
        events = s.watch(f"{CMS}?watch=1&labelSelector=m%3D1&resourceVersion={rv}", lambda ev: len(ev) >= 2, 10)
        return [(e["type"], e["object"]["metadata"]["name"], e["object"]["metadata"].get("labels", {}).get("m"))
                for e in events]

    def by_name(s: Server) -> Any:
        s.call("POST", CMS, cm("single"))
        events = s.watch(f"{CMS}?watch=1&fieldSelector=metadata.name%3Dsingle", lambda ev: len(ev) >= 1, 10)
        return [(e["type"], e["object"]["metadata"]["name"]) for e in events]

    def custom(s: Server) -> Any:
        _, listed = s.call("GET", WIDGETS)
        rv = listed["metadata"]["resourceVersion"]
        s.call("POST", WIDGETS, widget("watched"))
        s.call("PATCH", f"{WIDGETS}/watched/status", {"status": {"phase": "Up"}}, content_type=MERGE)
        s.call("DELETE", f"{WIDGETS}/watched")
        events = s.watch(f"{WIDGETS}?watch=1&resourceVersion={rv}", lambda ev: len(ev) >= 3, 10)
        return [(e["type"], e["object"]["metadata"]["name"], (e["object"].get("status") or {}).get("phase"))
                for e in events]

    return [
        ("watch: an object leaving and re-entering a label selector", leaves_selector),
        ("watch: one object by field selector (no resourceVersion)", by_name),
        ("watch: a custom resource with its status", custom),
    ]


def kubectl_cases(kubectl_case: Callable[..., Any]) -> list[Case]:
    applied = (ROOT / "devcluster/tests/fixtures/widget.yaml").read_text()
    changed = applied.replace("size: 3", "size: 4")
    return [
        ("kubectl get -o json", kubectl_case("get", "configmap", "applied", "-n", NS, "-o", "json")),
        ("kubectl describe configmap", kubectl_case("describe", "configmap", "applied", "-n", NS)),
        ("kubectl describe widget", kubectl_case("describe", "widget", "st", "-n", NS)),
        ("kubectl get agents,sessions", kubectl_case("get", "agents,sessions", "-n", NS)),
        ("kubectl apply --server-side", kubectl_case("apply", "--server-side", "-n", NS, "-f", "-", stdin=applied)),
        ("kubectl apply --server-side: a conflict", kubectl_case(
            "apply", "--server-side", "--field-manager=other", "-n", NS, "-f", "-", stdin=changed)),
        ("kubectl apply --server-side --force-conflicts", kubectl_case(
            "apply", "--server-side", "--field-manager=other", "--force-conflicts", "-n", NS, "-f", "-",
            stdin=changed)),
        ("kubectl create --dry-run=server -o yaml", kubectl_case(
            "create", "configmap", "dry", "-n", NS, "--from-literal=a=1", "--dry-run=server", "-o", "yaml")),
        ("kubectl label and annotate", kubectl_case("label", "configmap", "applied", "-n", NS, "extra=1")),
        ("kubectl get services", kubectl_case("get", "services,serviceaccounts", "-n", NS)),
        ("kubectl delete a missing object", kubectl_case("delete", "configmap", "missing", "-n", NS)),
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
    code, out = s.kubectl(kubectl, "apply", "-f", str(FIXTURE_CRD), "-f", str(ROOT / "crds"))
    if code != 0:
        raise Failure(f"{s.name}: applying the CRDs: {out}")
    code, out = s.kubectl(kubectl, "wait", "--for=condition=Established", "--timeout=60s",
                          "crd/widgets.fixture.sealpod.dev", "crd/agents.sealpod.dev", "crd/sessions.sealpod.dev")
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

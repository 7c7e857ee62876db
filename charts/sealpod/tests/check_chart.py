#!/usr/bin/env python3
"""Checks of the sealpod Helm chart, with the real helm binary and kubernetes-validate.

Run by scripts/test.d/70-chart.sh (which puts the pinned helm and kubernetes-validate on PATH):

    python3 charts/sealpod/tests/check_chart.py [-k PATTERN]

What it proves, for the default values and the value sets in tests/values/:
  - `helm lint --strict` passes;
  - every rendered object (CRDs included) passes `kubernetes-validate --strict -k 1.33.0`, except
    the kinds the validator has no schema for: monitoring.coreos.com ServiceMonitor (and sealpod.dev
    custom objects, none of which the chart renders); a deliberately broken object fails it;
  - the rendered fields that matter: restricted security contexts, resources and probes, RBAC that
    is least privilege (evaluated: who may do what in which namespace), SQLite forcing one
    replica, the runtime port never reachable through the Ingress or a non-ClusterIP Service,
    NetworkPolicies, ServiceMonitors, image references, no Secret or secret value rendered;
  - the chart's crds/ are byte-for-byte copies of the repository's crds/;
  - every file in tests/bad/ is rejected (by values.schema.json, or by the template's own check);
  - the Dockerfiles in images/ are multi-stage, non-root, and build the binary they run;
  - the SEALPOD_* variables the chart sets exist in the binaries' command-line definitions (once
    those crates declare any).
It must never need a cluster or the network.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import unittest
from pathlib import Path

import yaml

CHART = Path(__file__).resolve().parents[1]
ROOT = CHART.parents[1]
VALUES_DIR = CHART / "tests" / "values"
BAD_DIR = CHART / "tests" / "bad"
RELEASE = "rel"
NAMESPACE = "sealpod-system"
KUBE_VERSION = "1.33.0"
FULLNAME = f"{RELEASE}-sealpod"
OPERATOR = f"{FULLNAME}-operator"
API = f"{FULLNAME}-api-server"
API_INTERNAL = f"{FULLNAME}-api-server-internal"

# Value sets rendered by every test: name -> values file (None: the chart's defaults).
VALUE_SETS = {
    "default": None,
    "postgres-ha": VALUES_DIR / "postgres-ha.yaml",
    "sqlite-custom": VALUES_DIR / "sqlite-custom.yaml",
    "no-netpol": VALUES_DIR / "no-netpol.yaml",
}

# Kinds kubernetes-validate cannot know (it bundles only the built-in schemas).
UNVALIDATABLE = {("monitoring.coreos.com/v1", "ServiceMonitor")}

# Objects the operator bootstraps in the release namespace.
SEALING_KEYS = "sealpod-sealing-keys"
TOKEN_KEY = "sealpod-runtime-token-key"
CLIENT_TOKEN_KEY = "sealpod-client-token-key"
SEALING_PUBLIC = "sealpod-sealing-public"

_TMP = tempfile.mkdtemp(prefix="sealpod-chart-")
# helm keeps config and caches under HOME/XDG dirs: point them at a scratch directory so the
# checks neither read nor write the user's, and never reach a cluster.
HELM_ENV = dict(
    os.environ,
    HOME=_TMP,
    XDG_CACHE_HOME=f"{_TMP}/cache",
    XDG_CONFIG_HOME=f"{_TMP}/config",
    XDG_DATA_HOME=f"{_TMP}/data",
    KUBECONFIG=f"{_TMP}/no-kubeconfig",
)


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise SystemExit(f"{name} is not on PATH: run scripts/setup, then source scripts/env.sh")
    return path


def run(args: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(args, capture_output=True, text=True, env=HELM_ENV, cwd=ROOT)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def helm_args(values: Path | None, extra: list[str] | None = None) -> list[str]:
    args = ["-n", NAMESPACE]
    if values is not None:
        args += ["-f", str(values)]
    return args + (extra or [])


_RENDERED: dict[str, list[dict]] = {}


def render(name: str) -> list[dict]:
    """The objects of one value set, CRDs included (cached)."""
    if name not in _RENDERED:
        out = run([tool("helm"), "template", RELEASE, str(CHART), "--include-crds",
                   "--kube-version", KUBE_VERSION] + helm_args(VALUE_SETS[name])).stdout
        _RENDERED[name] = [d for d in yaml.safe_load_all(out) if d]
    return _RENDERED[name]


def objects(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[dict], kind: str, name: str) -> dict:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    if len(found) != 1:
        raise AssertionError(f"expected one {kind}/{name}, found {len(found)}")
    return found[0]


def env_of(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container.get("env", [])}


# --- RBAC evaluation -------------------------------------------------------------------------


def _rule_allows(rule: dict, verb: str, group: str, resource: str, name: str | None) -> bool:
    if group not in rule.get("apiGroups", []) or resource not in rule.get("resources", []):
        return False
    if verb not in rule.get("verbs", []):
        return False
    names = rule.get("resourceNames")
    if names:
        return name is not None and name in names
    return True


def can(docs: list[dict], sa: str, verb: str, group: str, resource: str, namespace: str | None,
        name: str | None = None) -> bool:
    """Whether ServiceAccount `sa` (of the release namespace) may `verb` the resource, as the
    rendered Roles, ClusterRoles and their bindings say (namespace None: cluster scope)."""
    for binding in objects(docs, "ClusterRoleBinding") + objects(docs, "RoleBinding"):
        subjects = binding.get("subjects", [])
        if not any(s["kind"] == "ServiceAccount" and s["name"] == sa and s["namespace"] == NAMESPACE
                   for s in subjects):
            continue
        if binding["kind"] == "RoleBinding" and binding["metadata"]["namespace"] != namespace:
            continue
        ref = binding["roleRef"]
        if ref["kind"] == "ClusterRole":
            role = one(docs, "ClusterRole", ref["name"])
        else:
            role = [r for r in objects(docs, "Role") if r["metadata"]["name"] == ref["name"]
                    and r["metadata"]["namespace"] == binding["metadata"]["namespace"]][0]
        if any(_rule_allows(r, verb, group, resource, name) for r in role.get("rules", [])):
            return True
    return False


WRITE = ["create", "update", "patch", "delete"]


class Lint(unittest.TestCase):
    def test_lint_strict_every_value_set(self) -> None:
        for name, values in VALUE_SETS.items():
            with self.subTest(values=name):
                out = run([tool("helm"), "lint", "--strict", str(CHART)] + helm_args(values)).stdout
                self.assertIn("0 chart(s) failed", out)


    def test_package_leaves_out_the_checks(self) -> None:
        out = Path(_TMP) / "pkg"
        run([tool("helm"), "package", str(CHART), "-d", str(out)])
        (tgz,) = out.glob("sealpod-*.tgz")
        with tarfile.open(tgz) as tar:
            names = tar.getnames()
        self.assertIn("sealpod/values.schema.json", names)
        self.assertIn("sealpod/crds/sessions.yaml", names)
        self.assertFalse([n for n in names if n.startswith("sealpod/tests/")], names)


class Schema(unittest.TestCase):
    """values.schema.json covers every value: each key of values.yaml has a typed schema, and
    every fixed-shape object refuses unknown keys."""

    schema = json.loads((CHART / "values.schema.json").read_text())

    def resolve(self, node: dict) -> dict:
        while "$ref" in node:
            node = self.schema["definitions"][node["$ref"].rsplit("/", 1)[1]]
        return node

    def walk(self, value, node: dict, path: str) -> None:
        node = self.resolve(node)
        self.assertTrue("type" in node or "enum" in node or "const" in node, f"{path or '/'} has no type")
        if isinstance(value, dict) and "properties" in node:
            self.assertIs(node.get("additionalProperties"), False, f"{path or '/'} accepts unknown keys")
            for key, sub in value.items():
                self.assertIn(key, node["properties"], f"{path}/{key} is not in the schema")
                self.walk(sub, node["properties"][key], f"{path}/{key}")
        elif isinstance(value, list) and value:
            self.assertIn("items", node, f"{path} has no item schema")
            for i, item in enumerate(value):
                self.walk(item, node["items"], f"{path}/{i}")

    def test_every_value_is_typed(self) -> None:
        values = yaml.safe_load((CHART / "values.yaml").read_text())
        self.walk(values, self.schema, "")
        for extra in VALUE_SETS.values():
            if extra is not None:
                self.walk(yaml.safe_load(extra.read_text()), self.schema, "")


class Validate(unittest.TestCase):
    def validate(self, docs: list[dict]) -> subprocess.CompletedProcess[str]:
        path = Path(_TMP) / "validate.yaml"
        path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
        return run([tool("kubernetes-validate"), "--strict", "-k", KUBE_VERSION, str(path)], check=False)

    def test_every_object_of_every_value_set(self) -> None:
        for name in VALUE_SETS:
            with self.subTest(values=name):
                docs = render(name)
                skipped = [d for d in docs if (d["apiVersion"], d["kind"]) in UNVALIDATABLE
                           or d["apiVersion"].startswith("sealpod.dev/")]
                checked = [d for d in docs if d not in skipped]
                proc = self.validate(checked)
                self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
                passed = [l for l in proc.stdout.splitlines() if " passed for resource " in l]
                # Each object is reported once: nothing was silently skipped as "unknown".
                self.assertEqual(len(passed), len(checked), proc.stdout + proc.stderr)
                self.assertNotIn("Couldn't find schema", proc.stdout + proc.stderr)
                self.assertEqual(len(objects(checked, "CustomResourceDefinition")), 5)

    def test_oldest_and_newest_supported_kubernetes(self) -> None:
        # Chart.yaml's kubeVersion starts at 1.29 (native sidecars); the validator knows up to 1.37.
        for version in ("1.29.0", "1.37.0"):
            with self.subTest(kubernetes=version):
                out = run([tool("helm"), "template", RELEASE, str(CHART), "--include-crds", "--kube-version",
                           version] + helm_args(VALUE_SETS["postgres-ha"])).stdout
                docs = [d for d in yaml.safe_load_all(out) if d and (d["apiVersion"], d["kind"]) not in UNVALIDATABLE]
                path = Path(_TMP) / f"validate-{version}.yaml"
                path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
                proc = run([tool("kubernetes-validate"), "--strict", "-k", version, str(path)], check=False)
                self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        proc = run([tool("helm"), "template", RELEASE, str(CHART), "--kube-version", "1.28.9"], check=False)
        self.assertNotEqual(proc.returncode, 0, "Kubernetes 1.28 lacks native sidecars: the chart must refuse it")

    def test_object_names_are_unique(self) -> None:
        for name in VALUE_SETS:
            keys = [(d["apiVersion"].split("/")[0], d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"])
                    for d in render(name)]
            self.assertEqual(sorted(set(keys)), sorted(keys), name)
            for d in render(name):
                if d["kind"] not in ("CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding"):
                    self.assertIn("namespace", d["metadata"], f"{d['kind']}/{d['metadata']['name']}")

    def test_validator_rejects_a_broken_object(self) -> None:
        # Proves the validation above can fail: an unknown field and a port that is not a number.
        dep = yaml.safe_load(yaml.safe_dump(one(render("default"), "Deployment", API)))
        dep["spec"]["template"]["spec"]["containers"][0]["bogusField"] = True
        self.assertNotEqual(self.validate([dep]).returncode, 0)
        svc = yaml.safe_load(yaml.safe_dump(one(render("default"), "Service", API)))
        svc["spec"]["ports"][0]["port"] = "notaport"
        self.assertNotEqual(self.validate([svc]).returncode, 0)


class Pods(unittest.TestCase):
    def deployments(self):
        for name in VALUE_SETS:
            for dep in objects(render(name), "Deployment"):
                yield name, dep

    def test_restricted_security_contexts(self) -> None:
        for values, dep in self.deployments():
            with self.subTest(values=values, deployment=dep["metadata"]["name"]):
                spec = dep["spec"]["template"]["spec"]
                psc = spec["securityContext"]
                self.assertIs(psc["runAsNonRoot"], True)
                self.assertNotEqual(psc["runAsUser"], 0)
                self.assertEqual(psc["seccompProfile"], {"type": "RuntimeDefault"})
                for key in ("hostNetwork", "hostPID", "hostIPC"):
                    self.assertFalse(spec.get(key, False))
                self.assertFalse([v for v in spec.get("volumes", []) if "hostPath" in v])
                containers = spec["containers"] + spec.get("initContainers", [])
                self.assertTrue(containers)
                for c in containers:
                    sc = c["securityContext"]
                    self.assertIs(sc["runAsNonRoot"], True)
                    self.assertNotEqual(sc.get("runAsUser", psc["runAsUser"]), 0)
                    self.assertIs(sc["readOnlyRootFilesystem"], True)
                    self.assertIs(sc["allowPrivilegeEscalation"], False)
                    self.assertIs(sc.get("privileged", False), False)
                    self.assertEqual(sc["capabilities"], {"drop": ["ALL"]})
                    self.assertEqual(sc["seccompProfile"], {"type": "RuntimeDefault"})

    def test_resources_probes_and_ports(self) -> None:
        admin = {OPERATOR: 9091, API: 9090}
        admin_env = {OPERATOR: "SEALPOD_LISTEN", API: "SEALPOD_ADMIN_LISTEN"}
        for values, dep in self.deployments():
            name = dep["metadata"]["name"]
            with self.subTest(values=values, deployment=name):
                (c,) = dep["spec"]["template"]["spec"]["containers"]
                self.assertIn("cpu", c["resources"]["requests"])
                self.assertIn("memory", c["resources"]["requests"])
                ports = {p["name"]: p["containerPort"] for p in c["ports"]}
                self.assertEqual(ports["admin"], admin[name])
                self.assertEqual(c["livenessProbe"]["httpGet"], {"path": "/healthz", "port": "admin"})
                self.assertEqual(c["readinessProbe"]["httpGet"], {"path": "/readyz", "port": "admin"})
                self.assertEqual(env_of(c)[admin_env[name]]["value"], f"0.0.0.0:{admin[name]}")
                if name == API:
                    self.assertEqual(ports, {"http": 8080, "runtime": 8081, "admin": 9090})
                    e = env_of(c)
                    self.assertEqual(e["SEALPOD_LISTEN"]["value"], "0.0.0.0:8080")
                    self.assertEqual(e["SEALPOD_RUNTIME_LISTEN"]["value"], "0.0.0.0:8081")
                # Writable paths are volumes, never the image.
                mounts = {m["mountPath"] for m in c.get("volumeMounts", [])}
                self.assertIn("/tmp", mounts)

    def test_custom_resources_reach_the_containers(self) -> None:
        docs = render("sqlite-custom")
        (api,) = one(docs, "Deployment", API)["spec"]["template"]["spec"]["containers"]
        self.assertEqual(api["resources"], {"requests": {"cpu": "250m", "memory": "256Mi"},
                                            "limits": {"cpu": "1", "memory": "1Gi"}})
        (op,) = one(docs, "Deployment", OPERATOR)["spec"]["template"]["spec"]["containers"]
        self.assertEqual(op["resources"]["requests"], {"cpu": "20m", "memory": "32Mi"})
        psc = one(docs, "Deployment", API)["spec"]["template"]["spec"]["securityContext"]
        self.assertEqual((psc["runAsUser"], psc["runAsGroup"], psc["fsGroup"]), (10001, 10001, 10001))

    def test_no_secret_is_rendered(self) -> None:
        for name in VALUE_SETS:
            docs = render(name)
            with self.subTest(values=name):
                self.assertFalse(objects(docs, "Secret"), "the chart must never carry a secret")
                # Sealing keys are bootstrapped by the operator; the one ConfigMap the chart may
                # carry holds public CA certificates.
                for cm in objects(docs, "ConfigMap"):
                    self.assertEqual(cm["metadata"]["name"], f"{OPERATOR}-upstream-ca")
                    self.assertEqual(list(cm["data"]), ["ca.crt"])
                    self.assertNotIn("PRIVATE KEY", cm["data"]["ca.crt"])
                for dep in objects(docs, "Deployment"):
                    for c in dep["spec"]["template"]["spec"]["containers"]:
                        for e in c.get("env", []):
                            value = e.get("value", "")
                            self.assertNotRegex(value, r"://[^/]*:[^/]*@", f"{e['name']} carries a password")

    def test_images(self) -> None:
        def images(docs):
            out = {}
            for dep in objects(docs, "Deployment"):
                (c,) = dep["spec"]["template"]["spec"]["containers"]
                out[dep["metadata"]["name"]] = c["image"]
                e = env_of(c)
                if "SEALPOD_SIDECAR_IMAGE" in e:
                    out["sidecar"] = e["SEALPOD_SIDECAR_IMAGE"]["value"]
                    out["runtime"] = e["SEALPOD_RUNTIME_IMAGE"]["value"]
            return out
        self.assertEqual(images(render("default")), {
            OPERATOR: "sealpod-operator:0.1.0", API: "sealpod-api-server:0.1.0",
            "sidecar": "sealpod-sidecar:0.1.0", "runtime": "sealpod-runtime:0.1.0"})
        self.assertEqual(images(render("postgres-ha")), {
            OPERATOR: "registry.example.com/sealpod/sealpod-operator:1.2.3",
            API: "registry.example.com/sealpod/sealpod-api-server:1.2.3",
            "sidecar": "registry.example.com/sealpod/sealpod-sidecar:1.2.3",
            "runtime": "registry.example.com/sealpod/sealpod-runtime@sha256:"
                       "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"})
        for dep in objects(render("postgres-ha"), "Deployment"):
            self.assertEqual(dep["spec"]["template"]["spec"]["imagePullSecrets"], [{"name": "regcred"}])


class Storage(unittest.TestCase):
    def api(self, name: str) -> tuple[dict, dict]:
        dep = one(render(name), "Deployment", API)
        (c,) = dep["spec"]["template"]["spec"]["containers"]
        return dep, c

    def test_sqlite_forces_one_replica_on_a_volume(self) -> None:
        # sqlite-custom asks for 3 replicas: SQLite must still get exactly one.
        for name in ("default", "sqlite-custom", "no-netpol"):
            with self.subTest(values=name):
                dep, c = self.api(name)
                self.assertEqual(dep["spec"]["replicas"], 1)
                self.assertEqual(dep["spec"]["strategy"], {"type": "Recreate"})
                url = env_of(c)["SEALPOD_DATABASE_URL"]["value"]
                mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
                self.assertTrue(url.startswith(f"sqlite://{mounts['data']}/"), url)
                self.assertFalse(objects(render(name), "PodDisruptionBudget"))
        self.assertIn("replicas: 3", VALUE_SETS["sqlite-custom"].read_text())

    def test_sqlite_volume(self) -> None:
        pvc = one(render("sqlite-custom"), "PersistentVolumeClaim", f"{API}-data")
        self.assertEqual(pvc["spec"], {"accessModes": ["ReadWriteOncePod"], "storageClassName": "fast-ssd",
                                       "resources": {"requests": {"storage": "20Gi"}}})
        self.assertEqual(pvc["metadata"]["annotations"], {"helm.sh/resource-policy": "keep"})
        # An existing claim is used as is, and none is created.
        docs = render("no-netpol")
        self.assertFalse(objects(docs, "PersistentVolumeClaim"))
        vols = {v["name"]: v for v in one(docs, "Deployment", API)["spec"]["template"]["spec"]["volumes"]}
        self.assertEqual(vols["data"]["persistentVolumeClaim"], {"claimName": "sealpod-data"})

    def test_postgres_allows_replicas_and_reads_the_url_from_a_secret(self) -> None:
        docs = render("postgres-ha")
        dep, c = self.api("postgres-ha")
        self.assertEqual(dep["spec"]["replicas"], 3)
        self.assertEqual(dep["spec"]["strategy"]["type"], "RollingUpdate")
        url = env_of(c)["SEALPOD_DATABASE_URL"]
        self.assertNotIn("value", url)
        self.assertEqual(url["valueFrom"], {"secretKeyRef": {"name": "sealpod-db", "key": "url"}})
        self.assertFalse(objects(docs, "PersistentVolumeClaim"))
        self.assertNotIn("data", {m["name"] for m in c["volumeMounts"]})
        pdb = one(docs, "PodDisruptionBudget", API)
        self.assertEqual(pdb["spec"]["minAvailable"], 1)


class Services(unittest.TestCase):
    def test_runtime_port_only_on_the_internal_cluster_ip_service(self) -> None:
        for name in VALUE_SETS:
            docs = render(name)
            with self.subTest(values=name):
                public = one(docs, "Service", API)
                self.assertEqual([p["name"] for p in public["spec"]["ports"]], ["http"])
                self.assertEqual(public["spec"]["ports"][0]["targetPort"], "http")
                internal = one(docs, "Service", API_INTERNAL)
                self.assertEqual(internal["spec"]["type"], "ClusterIP")
                self.assertEqual({p["name"]: p["port"] for p in internal["spec"]["ports"]},
                                 {"runtime": 8081, "admin": 9090})
                for svc in objects(docs, "Service"):
                    if svc["spec"].get("type", "ClusterIP") != "ClusterIP":
                        for p in svc["spec"]["ports"]:
                            self.assertNotIn(p["targetPort"], ("runtime", 8081, "admin", 9090))
        self.assertEqual(one(render("no-netpol"), "Service", API)["spec"]["type"], "LoadBalancer")

    def test_ingress_routes_only_the_public_port(self) -> None:
        self.assertFalse(objects(render("default"), "Ingress"))
        ing = one(render("postgres-ha"), "Ingress", API)
        backends = [p["backend"] for r in ing["spec"]["rules"] for p in r["http"]["paths"]]
        self.assertTrue(backends)
        for b in backends:
            self.assertEqual(b, {"service": {"name": API, "port": {"name": "http"}}})
        self.assertNotIn("defaultBackend", ing["spec"])
        self.assertEqual(ing["spec"]["tls"], [{"secretName": "sealpod-tls", "hosts": ["api.sealpod.example.com"]}])
        self.assertEqual(ing["spec"]["ingressClassName"], "nginx")

    def test_runtime_api_url_given_to_sandboxes_is_the_internal_service(self) -> None:
        (c,) = one(render("default"), "Deployment", OPERATOR)["spec"]["template"]["spec"]["containers"]
        self.assertEqual(env_of(c)["SEALPOD_RUNTIME_API_URL"]["value"],
                         f"http://{API_INTERNAL}.{NAMESPACE}.svc:8081")


class Rbac(unittest.TestCase):
    def test_no_wildcards_and_no_privilege_verbs(self) -> None:
        for name in VALUE_SETS:
            for role in objects(render(name), "ClusterRole") + objects(render(name), "Role"):
                with self.subTest(values=name, role=role["metadata"]["name"]):
                    for rule in role["rules"]:
                        for key in ("apiGroups", "resources", "verbs", "resourceNames"):
                            self.assertNotIn("*", rule.get(key, []))
                        for verb in ("escalate", "bind", "impersonate", "deletecollection"):
                            self.assertNotIn(verb, rule["verbs"])
                        self.assertNotIn("nonResourceURLs", rule)

    def test_exact_cluster_rules(self) -> None:
        # The whole rule set, so any widening fails here and must be argued for.
        expected = {
            OPERATOR: [
                (("sealpod.dev",), ("agents", "sessions", "credentials"), ("get", "list", "watch", "patch")),
                (("sealpod.dev",), ("agentrevisions",), ("get", "list", "watch", "create")),
                (("sealpod.dev",), ("agents/status", "sessions/status", "credentials/status", "agentrevisions/status"), ("get", "patch", "update")),
                (("sealpod.dev",), ("sessions/finalizers",), ("update",)),
                (("",), ("pods", "secrets", "persistentvolumeclaims"), ("get", "list", "watch", "create", "patch", "delete")),
                (("networking.k8s.io",), ("networkpolicies",), ("get", "list", "watch", "create", "patch", "delete")),
                (("events.k8s.io",), ("events",), ("create", "patch")),
                (("",), ("configmaps",), ("create",)),
            ],
            API: [
                (("sealpod.dev",), ("agents", "sessions", "credentials", "schedules"), ("get", "list", "watch", "create", "update", "patch", "delete")),
                (("sealpod.dev",), ("agentrevisions",), ("get", "list", "watch", "create")),
                (("sealpod.dev",), ("sessions/status", "schedules/status", "agentrevisions/status"), ("get", "update", "patch")),
                (("",), ("configmaps",), ("get", "list", "watch", "create")),
            ],
        }
        for name in VALUE_SETS:
            for role in objects(render(name), "ClusterRole"):
                got = [(tuple(r["apiGroups"]), tuple(r["resources"]), tuple(r["verbs"])) for r in role["rules"]]
                self.assertEqual(got, expected[role["metadata"]["name"]])

    def test_effective_rights_cluster_wide(self) -> None:
        docs = render("default")
        tenant = "team-x"
        # The operator builds sandboxes in any tenant namespace but never creates or deletes the
        # custom resources themselves.
        for res in ("pods", "secrets", "persistentvolumeclaims"):
            self.assertTrue(can(docs, OPERATOR, "create", "", res, tenant))
        self.assertTrue(can(docs, OPERATOR, "create", "networking.k8s.io", "networkpolicies", tenant))
        self.assertTrue(can(docs, OPERATOR, "patch", "sealpod.dev", "sessions/status", tenant))
        self.assertTrue(can(docs, OPERATOR, "create", "events.k8s.io", "events", tenant))
        for verb in ("create", "delete", "update"):
            self.assertFalse(can(docs, OPERATOR, verb, "sealpod.dev", "sessions", tenant))
        # Revisions are immutable: both create them, neither changes or deletes one (the agent's
        # deletion collects them).
        for who in (OPERATOR, API):
            self.assertTrue(can(docs, who, "create", "sealpod.dev", "agentrevisions", tenant))
            for verb in ("update", "patch", "delete"):
                self.assertFalse(can(docs, who, verb, "sealpod.dev", "agentrevisions", tenant))
        self.assertFalse(can(docs, OPERATOR, "update", "", "pods", tenant))
        # The API server writes custom resources and session status, never pods or their siblings,
        # and never the operator's status fields of agents and credentials.
        self.assertTrue(can(docs, API, "create", "sealpod.dev", "sessions", tenant))
        self.assertTrue(can(docs, API, "patch", "sealpod.dev", "sessions/status", tenant))
        self.assertTrue(can(docs, API, "patch", "sealpod.dev", "schedules/status", tenant))
        self.assertFalse(can(docs, OPERATOR, "patch", "sealpod.dev", "schedules", tenant))
        self.assertTrue(can(docs, API, "create", "", "configmaps", tenant))
        for verb in ("patch", "update"):
            self.assertFalse(can(docs, API, verb, "sealpod.dev", "agents/status", tenant))
            self.assertFalse(can(docs, API, verb, "sealpod.dev", "credentials/status", tenant))
        for group, res in (("", "pods"), ("", "persistentvolumeclaims"), ("networking.k8s.io", "networkpolicies"),
                           ("coordination.k8s.io", "leases"), ("events.k8s.io", "events"), ("", "secrets")):
            for verb in ("get", "create"):
                self.assertFalse(can(docs, API, verb, group, res, tenant), f"{verb} {res}")
        # In a tenant namespace ConfigMaps are only created (org API key records: the API server's
        # `api-key create`, the operator moving a Secret of an earlier version) and read by the API
        # server; Leases only in the release namespace.
        for sa in (OPERATOR, API):
            for verb in ("update", "patch", "delete"):
                self.assertFalse(can(docs, sa, verb, "", "configmaps", tenant))
            for verb in WRITE:
                self.assertFalse(can(docs, sa, verb, "coordination.k8s.io", "leases", tenant))
        self.assertFalse(can(docs, OPERATOR, "get", "", "configmaps", tenant))
        # Cluster-scoped objects: nothing at all.
        for sa in (OPERATOR, API):
            for group, res in (("", "namespaces"), ("", "nodes"), ("rbac.authorization.k8s.io", "clusterroles"),
                               ("apiextensions.k8s.io", "customresourcedefinitions")):
                for verb in ("get", "create", "update", "delete"):
                    self.assertFalse(can(docs, sa, verb, group, res, None))

    def test_bootstrap_and_leader_election_rights(self) -> None:
        for name in VALUE_SETS:
            docs = render(name)
            with self.subTest(values=name):
                (c,) = one(docs, "Deployment", OPERATOR)["spec"]["template"]["spec"]["containers"]
                lease = env_of(c)["SEALPOD_LEASE_NAME"]["value"]
                for verb in ("get", "update"):
                    self.assertTrue(can(docs, OPERATOR, verb, "coordination.k8s.io", "leases", NAMESPACE, lease))
                    self.assertFalse(can(docs, OPERATOR, verb, "coordination.k8s.io", "leases", NAMESPACE, "other"))
                self.assertTrue(can(docs, OPERATOR, "create", "coordination.k8s.io", "leases", NAMESPACE))
                # The operator creates and maintains the key material in its namespace.
                for res, obj in (("secrets", SEALING_KEYS), ("secrets", TOKEN_KEY), ("configmaps", SEALING_PUBLIC)):
                    self.assertTrue(can(docs, OPERATOR, "create", "", res, NAMESPACE))
                    for verb in ("get", "update"):
                        self.assertTrue(can(docs, OPERATOR, verb, "", res, NAMESPACE, obj))
                self.assertFalse(can(docs, OPERATOR, "update", "", "configmaps", NAMESPACE, "other"))
                # The API server reads the public keys and its two token keys (the operator
                # creates both), and changes none of them.
                self.assertTrue(can(docs, API, "get", "", "configmaps", NAMESPACE, SEALING_PUBLIC))
                for key in (TOKEN_KEY, CLIENT_TOKEN_KEY):
                    self.assertTrue(can(docs, OPERATOR, "get", "", "secrets", NAMESPACE, key))
                    self.assertTrue(can(docs, API, "get", "", "secrets", NAMESPACE, key))
                # (Create cannot be limited by name: cluster-wide, the right to create org key
                # records reaches the release namespace; the operator re-applies the public keys
                # at every start, and rbac.tenantNamespaces keeps it out, below.)
                for verb in ("update", "patch", "delete"):
                    self.assertFalse(can(docs, API, verb, "", "configmaps", NAMESPACE, SEALING_PUBLIC))

    def test_tenant_namespaces_limit_every_namespaced_right(self) -> None:
        docs = render("sqlite-custom")
        self.assertFalse(objects(docs, "ClusterRoleBinding"))
        for sa in (OPERATOR, API):
            for ns in ("team-a", "team-b"):
                self.assertEqual(can(docs, sa, "create", "", "secrets", ns), sa == OPERATOR)
            for ns in ("team-c", "kube-system", "default"):
                for verb in ["get", "list"] + WRITE:
                    self.assertFalse(can(docs, sa, verb, "", "secrets", ns), f"{sa} {verb} secrets in {ns}")
        # Here the API server cannot read the private sealing keys at all, nor plant its own.
        for verb in ["get", "list", "watch"] + WRITE:
            self.assertFalse(can(docs, API, verb, "", "secrets", NAMESPACE, SEALING_KEYS))
        self.assertFalse(can(docs, API, "create", "", "secrets", NAMESPACE))
        self.assertFalse(can(docs, API, "create", "", "configmaps", NAMESPACE))
        self.assertTrue(can(docs, API, "create", "", "configmaps", "team-a"))
        self.assertTrue(can(docs, OPERATOR, "get", "", "secrets", NAMESPACE, SEALING_KEYS))
        # The operator also acts in the release namespace (managed Credential, its own keys); the
        # API server does not.
        self.assertTrue(can(docs, OPERATOR, "get", "sealpod.dev", "credentials", NAMESPACE, "any"))
        self.assertFalse(can(docs, API, "get", "sealpod.dev", "credentials", NAMESPACE, "any"))
        for dep in (OPERATOR, API):
            (c,) = one(docs, "Deployment", dep)["spec"]["template"]["spec"]["containers"]
            self.assertEqual(env_of(c)["SEALPOD_WATCH_NAMESPACES"]["value"], "team-a,team-b")

    def test_the_api_server_reads_no_secret_but_its_two_token_keys(self) -> None:
        # Not a tenant's Secrets (a session's proxy Secret holds the real key), not the sealing
        # keys, not anything in kube-system: only the token-signing keys, by name.
        for name in VALUE_SETS:
            docs = render(name)
            for ns in ("team-a", "team-x", NAMESPACE, "kube-system", "default"):
                for secret in (None, "ses-abc-proxy", "ses-abc-runtime", SEALING_KEYS, "cred-abc-sealed"):
                    for verb in ["get", "list", "watch"] + WRITE:
                        with self.subTest(values=name, ns=ns, secret=secret, verb=verb):
                            self.assertFalse(can(docs, API, verb, "", "secrets", ns, secret))
            for key in (TOKEN_KEY, CLIENT_TOKEN_KEY):
                self.assertTrue(can(docs, API, "get", "", "secrets", NAMESPACE, key))

    def test_managed_credential_is_readable_by_name_only(self) -> None:
        docs = render("postgres-ha")
        self.assertTrue(can(docs, API, "get", "sealpod.dev", "credentials", NAMESPACE, "platform-anthropic"))
        role = one(docs, "Role", f"{API}-system")
        self.assertIn({"apiGroups": ["sealpod.dev"], "resources": ["credentials"],
                       "resourceNames": ["platform-anthropic"], "verbs": ["get", "list", "watch"]}, role["rules"])
        self.assertNotIn("credentials", str(one(render("default"), "Role", f"{API}-system")["rules"]))

    def test_bindings_name_only_the_release_service_accounts(self) -> None:
        for name in VALUE_SETS:
            docs = render(name)
            for b in objects(docs, "ClusterRoleBinding") + objects(docs, "RoleBinding"):
                with self.subTest(values=name, binding=b["metadata"]["name"]):
                    sa = b["metadata"]["name"].removesuffix("-system")
                    self.assertIn(sa, (OPERATOR, API))
                    self.assertEqual(b["subjects"], [{"kind": "ServiceAccount", "name": sa, "namespace": NAMESPACE}])
                    self.assertEqual(b["roleRef"]["name"], b["metadata"]["name"])
            for sa in objects(docs, "ServiceAccount"):
                self.assertIs(sa["automountServiceAccountToken"], False)


class NetworkPolicies(unittest.TestCase):
    def test_default_deny_with_named_paths(self) -> None:
        for name in ("default", "postgres-ha", "sqlite-custom"):
            docs = render(name)
            with self.subTest(values=name):
                pols = {p["metadata"]["name"]: p for p in objects(docs, "NetworkPolicy")}
                self.assertEqual(set(pols), {OPERATOR, API})
                for dep_name, pol in pols.items():
                    labels = one(docs, "Deployment", dep_name)["spec"]["template"]["metadata"]["labels"]
                    sel = pol["spec"]["podSelector"]["matchLabels"]
                    self.assertTrue(sel.items() <= labels.items())
                    self.assertEqual(pol["spec"]["policyTypes"], ["Ingress", "Egress"])
                api = pols[API]["spec"]
                by_port = {r["ports"][0]["port"]: r for r in api["ingress"]}
                self.assertEqual(set(by_port), {"http", "runtime", "admin"})
                peers = by_port["runtime"]["from"]
                self.assertEqual(peers[0]["podSelector"], {"matchLabels": {"sealpod.dev/component": "sandbox"}})
                op_labels = one(docs, "Deployment", OPERATOR)["spec"]["selector"]["matchLabels"]
                self.assertEqual(peers[1], {"podSelector": {"matchLabels": op_labels}})
                self.assertEqual(len(peers), 2)
                # The operator's egress: DNS, the Kubernetes API, the runtime port; nothing else.
                op_egress = pols[OPERATOR]["spec"]["egress"]
                self.assertEqual(len(op_egress), 3)
                self.assertEqual(op_egress[2]["ports"], [{"port": 8081, "protocol": "TCP"}])
        tenant_peer = [r for r in one(render("sqlite-custom"), "NetworkPolicy", API)["spec"]["ingress"]
                       if r["ports"][0]["port"] == "runtime"][0]["from"][0]
        self.assertEqual(tenant_peer["namespaceSelector"]["matchExpressions"][0]["values"], ["team-a", "team-b"])
        pg = [r for r in one(render("postgres-ha"), "NetworkPolicy", API)["spec"]["egress"]
              if r["ports"][0]["port"] == 5432]
        self.assertEqual(pg[0]["to"], [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "databases"}}}])
        self.assertFalse([r for r in one(render("default"), "NetworkPolicy", API)["spec"]["egress"]
                          if r["ports"][0]["port"] == 5432])

    def test_disabled(self) -> None:
        self.assertFalse(objects(render("no-netpol"), "NetworkPolicy"))


class Operations(unittest.TestCase):
    def op(self, name: str) -> tuple[dict, dict]:
        dep = one(render(name), "Deployment", OPERATOR)
        (c,) = dep["spec"]["template"]["spec"]["containers"]
        return dep, env_of(c)

    def test_leader_election(self) -> None:
        dep, e = self.op("default")
        self.assertEqual(e["SEALPOD_LEASE_NAME"]["value"], OPERATOR)
        self.assertEqual(e["SEALPOD_LEASE_DURATION_SECONDS"]["value"], "15")
        self.assertEqual(e["SEALPOD_IDENTITY"]["valueFrom"], {"fieldRef": {"fieldPath": "metadata.name"}})
        self.assertEqual(dep["spec"]["replicas"], 1)
        self.assertEqual(dep["spec"]["strategy"]["rollingUpdate"], {"maxUnavailable": 0, "maxSurge": 1})
        dep, e = self.op("postgres-ha")
        self.assertEqual(dep["spec"]["replicas"], 2)
        self.assertIn("podAntiAffinity", dep["spec"]["template"]["spec"]["affinity"])
        dep, e = self.op("no-netpol")
        self.assertEqual((e["SEALPOD_LEASE_NAME"]["value"], e["SEALPOD_LEASE_DURATION_SECONDS"]["value"]),
                         ("sealpod-leader", "30"))

    def test_sandbox_settings(self) -> None:
        docs = render("postgres-ha")
        _, e = self.op("postgres-ha")
        # The labels sandbox NetworkPolicies use to reach the runtime API are the API pods' labels.
        labels = dict(kv.split("=", 1) for kv in e["SEALPOD_RUNTIME_API_POD_LABELS"]["value"].split(","))
        api_pod = one(docs, "Deployment", API)["spec"]["template"]["metadata"]["labels"]
        self.assertTrue(labels.items() <= api_pod.items(), labels)
        self.assertEqual(labels["app.kubernetes.io/component"], "api-server")
        # The fixed ClusterIP of the runtime API is both the Service's and the proxies' exemption.
        self.assertEqual(one(docs, "Service", API_INTERNAL)["spec"]["clusterIP"], "10.96.0.80")
        self.assertEqual(e["SEALPOD_RUNTIME_API_CIDRS"]["value"], "10.96.0.80/32")
        self.assertEqual(e["SEALPOD_POD_CIDRS"]["value"], "10.244.0.0/16")
        self.assertEqual(e["SEALPOD_SERVICE_CIDRS"]["value"], "10.96.0.0/12")
        self.assertEqual(e["SEALPOD_MANAGED_CREDENTIAL"]["value"], "platform-anthropic")
        (api,) = one(docs, "Deployment", API)["spec"]["template"]["spec"]["containers"]
        self.assertEqual(env_of(api)["SEALPOD_MANAGED_CREDENTIAL"]["value"], "platform-anthropic")
        # A private gateway: the resolver overrides, and its CA mounted where the operator reads it.
        self.assertEqual(e["SEALPOD_PROXY_RESOLVE"]["value"],
                         "api.anthropic.com=10.20.0.5,gateway.internal:443=[fd00::5]:8443")
        self.assert_upstream_ca("postgres-ha", f"{OPERATOR}-upstream-ca", "ca.crt")
        ca = one(docs, "ConfigMap", f"{OPERATOR}-upstream-ca")["data"]["ca.crt"]
        self.assertTrue(ca.startswith("-----BEGIN CERTIFICATE-----\n"), ca)
        annotations = one(docs, "Deployment", OPERATOR)["spec"]["template"]["metadata"]["annotations"]
        self.assertIn("checksum/upstream-ca", annotations)
        _, e = self.op("sqlite-custom")
        self.assertEqual((e["SEALPOD_PROXY_UID"]["value"], e["SEALPOD_RUNTIME_UID"]["value"]), ("2000", "2001"))
        self.assert_upstream_ca("sqlite-custom", "corporate-roots", "roots.pem")
        self.assertFalse([c for c in objects(render("sqlite-custom"), "ConfigMap") if "upstream-ca" in c["metadata"]["name"]])
        self.assertEqual(e["SEALPOD_RUNTIME_API_CIDRS"]["value"], "10.96.0.0/12")
        _, e = self.op("default")
        self.assertEqual((e["SEALPOD_PROXY_UID"]["value"], e["SEALPOD_RUNTIME_UID"]["value"]), ("1337", "1000"))
        for unset in ("SEALPOD_RUNTIME_API_CIDRS", "SEALPOD_POD_CIDRS", "SEALPOD_MANAGED_CREDENTIAL",
                      "SEALPOD_WATCH_NAMESPACES", "SEALPOD_WORKSPACE_STORAGE_CLASS",
                      "SEALPOD_PROXY_RESOLVE", "SEALPOD_UPSTREAM_CA_FILE"):
            self.assertNotIn(unset, e)
        spec = one(render("default"), "Deployment", OPERATOR)["spec"]["template"]["spec"]
        self.assertEqual([v["name"] for v in spec["volumes"]], ["tmp"])

    def assert_upstream_ca(self, values: str, config_map: str, key: str) -> None:
        """The operator reads SEALPOD_UPSTREAM_CA_FILE from a read-only mount of `key` of
        `config_map`."""
        dep, e = self.op(values)
        path = e["SEALPOD_UPSTREAM_CA_FILE"]["value"]
        spec = dep["spec"]["template"]["spec"]
        (mount,) = [m for m in spec["containers"][0]["volumeMounts"] if m["name"] == "upstream-ca"]
        self.assertTrue(mount["readOnly"])
        (volume,) = [v for v in spec["volumes"] if v["name"] == "upstream-ca"]
        self.assertEqual(volume["configMap"]["name"], config_map)
        (item,) = volume["configMap"]["items"]
        self.assertEqual((item["key"], f'{mount["mountPath"]}/{item["path"]}'), (key, path))

    def test_service_monitors(self) -> None:
        self.assertFalse(objects(render("default"), "ServiceMonitor"))
        docs = render("postgres-ha")
        monitors = objects(docs, "ServiceMonitor")
        self.assertEqual(len(monitors), 2)
        for sm in monitors:
            self.assertEqual(sm["metadata"]["labels"]["release"], "prometheus")
            self.assertEqual(sm["spec"]["endpoints"][0]["port"], "admin")
            sel = sm["spec"]["selector"]["matchLabels"]
            matched = [s for s in objects(docs, "Service") if sel.items() <= s["metadata"]["labels"].items()]
            self.assertEqual(len(matched), 1, sm["metadata"]["name"])
            self.assertIn("admin", [p["name"] for p in matched[0]["spec"]["ports"]])

    def test_notes_say_how_to_create_the_first_api_key(self) -> None:
        out = run([tool("helm"), "install", RELEASE, str(CHART), "--dry-run=client"]
                  + helm_args(VALUE_SETS["sqlite-custom"])).stdout
        notes = out[out.index("NOTES:"):]
        self.assertIn(f"kubectl -n {NAMESPACE} exec deploy/{API} -- sealpod-api-server api-key create "
                      "--namespace team-a", notes)
        self.assertIn("apiServer.replicas=3 was ignored", notes)
        self.assertIn(SEALING_KEYS, notes)


class Crds(unittest.TestCase):
    def test_chart_crds_are_copies_of_the_generated_ones(self) -> None:
        repo = sorted(p.name for p in (ROOT / "crds").glob("*.yaml"))
        chart = sorted(p.name for p in (CHART / "crds").iterdir())
        self.assertTrue(repo)
        self.assertEqual(chart, repo, "charts/sealpod/crds/ must hold exactly crds/*.yaml")
        for name in repo:
            self.assertEqual((CHART / "crds" / name).read_bytes(), (ROOT / "crds" / name).read_bytes(),
                             f"charts/sealpod/crds/{name} drifted: run `cp crds/*.yaml charts/sealpod/crds/`")

    def test_rendered_crds_are_the_generated_ones(self) -> None:
        generated = sorted((yaml.safe_load(p.read_text()) for p in (ROOT / "crds").glob("*.yaml")),
                           key=lambda d: d["metadata"]["name"])
        rendered = sorted(objects(render("default"), "CustomResourceDefinition"), key=lambda d: d["metadata"]["name"])
        self.assertEqual(rendered, generated)


class BadValues(unittest.TestCase):
    def test_each_bad_value_file_is_rejected(self) -> None:
        files = sorted(BAD_DIR.glob("*.yaml"))
        self.assertGreaterEqual(len(files), 5)
        for path in files:
            with self.subTest(file=path.name):
                head = dict(re.findall(r"^# (rejected-by|expect): (.*)$", path.read_text(), re.M))
                proc = run([tool("helm"), "template", RELEASE, str(CHART)] + helm_args(path), check=False)
                self.assertNotEqual(proc.returncode, 0, f"{path.name} was accepted")
                self.assertIn(head["expect"], proc.stderr)
                schema_error = "don't meet the specifications of the schema" in proc.stderr
                self.assertEqual(schema_error, head["rejected-by"] == "schema", proc.stderr)
                if head["rejected-by"] == "schema":
                    # (helm lint reports a template's `fail` as INFO only, so only schema
                    # rejections are expected from it.)
                    lint = run([tool("helm"), "lint", "--strict", str(CHART)] + helm_args(path), check=False)
                    self.assertNotEqual(lint.returncode, 0, f"helm lint accepted {path.name}")


BINARIES = {
    # binary -> (crate directory, cargo package)
    "sealpod-operator": ("operator", "sealpod-operator"),
    "sealpod-api-server": ("api-server", "sealpod-api-server"),
    "sealpod-sidecar": ("sidecar", "sealpod-sidecar"),
    "sealpod-runtime": ("runtime", "sealpod-runtime"),
}


class Images(unittest.TestCase):
    def test_dockerfiles(self) -> None:
        cargo = (ROOT / "Cargo.toml").read_text()
        members = re.search(r"members\s*=\s*\[([^\]]*)\]", cargo).group(1)
        for binary, (crate, package) in BINARIES.items():
            with self.subTest(binary=binary):
                self.assertIn(f'"{crate}"', members)
                manifest = (ROOT / crate / "Cargo.toml").read_text()
                self.assertRegex(manifest, rf'(?m)^name = "{re.escape(package)}"')
                self.assertRegex(manifest, rf'(?ms)\[\[bin\]\]\s*\nname = "{re.escape(binary)}"')
                text = (ROOT / "images" / f"{binary}.Dockerfile").read_text()
                lines = [l.strip() for l in re.sub(r"\\\n", " ", text).splitlines()
                         if l.strip() and not l.strip().startswith("#")]
                froms = [l.split()[1] for l in lines if l.startswith("FROM ")]
                self.assertGreaterEqual(len(froms), 2, "multi-stage")
                for image in froms:
                    ref = image.split("/")[-1]
                    self.assertTrue(":" in ref or "@" in ref, f"{image} is not pinned")
                    self.assertNotIn(":latest", image)
                self.assertIn(f"cargo build --profile dist --locked -p {package} --bin {binary}", " ".join(lines))
                self.assertIn(f"target/dist/{binary}", " ".join(lines))
                final = lines[max(i for i, l in enumerate(lines) if l.startswith("FROM ")):]
                users = [l.split()[1] for l in final if l.startswith("USER ")]
                self.assertTrue(users, "the final stage sets USER")
                uid = users[-1].split(":")[0]
                self.assertTrue(uid.isdigit() and int(uid) != 0, f"USER {users[-1]} must be a non-zero UID")
                self.assertIn(f"COPY --from=build /out/{binary} /usr/local/bin/{binary}", final)
                entry = [l for l in final if l.startswith("ENTRYPOINT ")]
                self.assertEqual(entry, [f'ENTRYPOINT ["/usr/local/bin/{binary}"]'])
        # The sandbox images' default users are the UIDs the operator is told to use.
        values = yaml.safe_load((CHART / "values.yaml").read_text())["operator"]["sandbox"]
        for binary, uid in (("sealpod-sidecar", values["proxyUid"]), ("sealpod-runtime", values["runtimeUid"])):
            text = (ROOT / "images" / f"{binary}.Dockerfile").read_text()
            self.assertIn(f"\nUSER {uid}:{uid}\n", text)
        ignore = (ROOT / ".dockerignore").read_text().split()
        for path in ("target/", ".git/", ".tools/", ".venv/"):
            self.assertIn(path, ignore)


def declared_env(crate: str) -> set[str]:
    names: set[str] = set()
    for src in (ROOT / crate / "src").rglob("*.rs"):
        text = src.read_text()
        names.update(re.findall(r'env\s*=\s*"(SEALPOD_[A-Z0-9_]+)"', text))
        # The shared log-filter convention (util/src/log.rs).
        if "sealpod_util::log::LOG_ENV" in text:
            names.add("SEALPOD_LOG")
    return names


# Variables the chart sets that a binary does not read yet, with the value that needs them. Each
# is printed on every run; remove an entry once the binary reads the variable.
PENDING: dict[str, str] = {}


class EnvContract(unittest.TestCase):
    """The SEALPOD_* variables set by the chart must be ones the binaries read. Until a binary
    declares its command line (no `env = "SEALPOD_…"` in its crate yet), its check is skipped."""

    def check(self, crate: str, deployment: str) -> None:
        declared = declared_env(crate)
        if not declared:
            self.skipTest(f"{crate} declares no SEALPOD_* variable yet")
        used: set[str] = set()
        for name in VALUE_SETS:
            (c,) = one(render(name), "Deployment", deployment)["spec"]["template"]["spec"]["containers"]
            used.update(n for n in env_of(c) if n.startswith("SEALPOD_"))
        for var in sorted((used - declared) & PENDING.keys()):
            print(f"\n  NOTE: {crate} does not read {var} yet, needed by {PENDING[var]}", end=" ", flush=True)
        self.assertEqual(sorted(used - declared - PENDING.keys()), [], f"set by the chart but not read by {crate}")

    def test_operator(self) -> None:
        self.check("operator", OPERATOR)

    def test_api_server(self) -> None:
        self.check("api-server", API)


def main() -> int:
    runner = unittest.TextTestRunner(verbosity=2)
    suite = unittest.defaultTestLoader.loadTestsFromModule(sys.modules[__name__])
    if len(sys.argv) > 2 and sys.argv[1] == "-k":
        pattern = sys.argv[2]
        suite = unittest.TestSuite(t for s in suite for t in s if pattern in t.id())
    try:
        result = runner.run(suite)
    finally:
        shutil.rmtree(_TMP, ignore_errors=True)
    failed = len(result.failures) + len(result.errors)
    skipped = len(result.skipped)
    passed = result.testsRun - failed - skipped
    print(f"chart: {passed} passed, {failed} failed, {skipped} skipped")
    return 0 if failed == 0 and result.testsRun > 0 else 1


if __name__ == "__main__":
    sys.exit(main())

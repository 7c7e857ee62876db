# syntax=docker/dockerfile:1
# Image of `sealpod-sidecar`. Build from the repository root:
#   docker build -f images/sealpod-sidecar.Dockerfile -t sealpod-sidecar:dev .
# Multi-stage: the workspace is compiled in the official Rust image (the version of
# rust-toolchain.toml), and only the `dist` binary (Cargo.toml) is copied into the final image.
ARG RUST_VERSION=1.95.0

FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS build
# The toolchain of this image, not rust-toolchain.toml's (which would ask rustup for components).
ARG RUST_VERSION
ENV RUSTUP_TOOLCHAIN=${RUST_VERSION} CARGO_TERM_COLOR=never
WORKDIR /src
COPY . .
# Cache mounts keep the registry and target directory between builds; the binary is copied out of
# the cached target directory in the same step because cache mounts are not part of the layer.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --profile dist --locked -p sealpod-sidecar --bin sealpod-sidecar \
 && install -D -m 0755 target/dist/sealpod-sidecar /out/sealpod-sidecar

# Debian slim rather than distroless: `sealpod-sidecar lock` programs the egress lock with the
# `nft` binary (nftables), which distroless does not ship. Nothing else is installed.
FROM docker.io/library/debian:12.11-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends nftables ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 1337 sealpod-proxy \
 && useradd --system --uid 1337 --gid 1337 --no-create-home --shell /usr/sbin/nologin sealpod-proxy
COPY --from=build /out/sealpod-sidecar /usr/local/bin/sealpod-sidecar
# The proxy runs as this UID (the operator's default --proxy-uid; the lock exempts it). The
# operator runs the short `lock` init container with NET_ADMIN as the only privileged step; that
# is set in the pod, not here.
USER 1337:1337
ENTRYPOINT ["/usr/local/bin/sealpod-sidecar"]
CMD ["proxy", "--config", "/etc/sealpod/proxy/config.yaml"]

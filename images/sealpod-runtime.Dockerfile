# syntax=docker/dockerfile:1
# Image of `sealpod-runtime`. Build from the repository root:
#   docker build -f images/sealpod-runtime.Dockerfile -t sealpod-runtime:dev .
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
    cargo build --profile dist --locked -p sealpod-runtime --bin sealpod-runtime \
 && install -D -m 0755 target/dist/sealpod-runtime /out/sealpod-runtime

# The sandbox's main container: the agent's tools run shell commands in the workspace, so this
# image carries bash, git, curl and CA certificates on Debian slim, and nothing more. It runs as
# an unprivileged "sandbox" user (the operator's default --runtime-uid) whose UID differs from the
# proxy's (1337); the egress lock lets it reach only the proxy.
FROM docker.io/library/debian:12.11-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends bash ca-certificates curl git \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 1000 sandbox \
 && useradd --uid 1000 --gid 1000 --home-dir /workspace --no-create-home --shell /bin/bash sandbox \
 && install -d -o 1000 -g 1000 -m 0750 /workspace
COPY --from=build /out/sealpod-runtime /usr/local/bin/sealpod-runtime
USER 1000:1000
WORKDIR /workspace
ENTRYPOINT ["/usr/local/bin/sealpod-runtime"]

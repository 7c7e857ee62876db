# syntax=docker/dockerfile:1
# Image of `sealpod-api-server`. Build from the repository root:
#   docker build -f images/sealpod-api-server.Dockerfile -t sealpod-api-server:dev .
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
    cargo build --profile dist --locked -p sealpod-api-server --bin sealpod-api-server \
 && install -D -m 0755 target/dist/sealpod-api-server /out/sealpod-api-server

# Distroless: glibc and CA certificates, no shell, no package manager. ":nonroot" runs as
# 65532:65532. SQLite is compiled into the binary (bundled), so no library is needed.
# `kubectl exec deploy/…-api-server -- sealpod-api-server api-key create …` works without a shell
# because the binary is on PATH.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/sealpod-api-server /usr/local/bin/sealpod-api-server
USER 65532:65532
# 8080: public /v3 API; 8081: runtime API (cluster-internal); 9090: admin (health, metrics).
EXPOSE 8080 8081 9090
ENTRYPOINT ["/usr/local/bin/sealpod-api-server"]
CMD ["serve"]

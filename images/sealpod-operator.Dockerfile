# syntax=docker/dockerfile:1
# Image of `sealpod-operator`. Build from the repository root:
#   docker build -f images/sealpod-operator.Dockerfile -t sealpod-operator:dev .
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
    cargo build --profile dist --locked -p sealpod-operator --bin sealpod-operator \
 && install -D -m 0755 target/dist/sealpod-operator /out/sealpod-operator

# Distroless: glibc and CA certificates, no shell, no package manager. ":nonroot" runs as
# 65532:65532; the chart also enforces runAsNonRoot and a read-only root filesystem.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/sealpod-operator /usr/local/bin/sealpod-operator
USER 65532:65532
EXPOSE 9091
ENTRYPOINT ["/usr/local/bin/sealpod-operator"]

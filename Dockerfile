# syntax=docker/dockerfile:1.7
#
# residency-proxy container image.
#
#   docker build -t residency-proxy:dev .
#   docker run --rm --read-only -p 8080:8080 -p 9464:9464 \
#     -v "$PWD/config/example-gateway.toml:/etc/residency-proxy/config.toml:ro" \
#     -e OPENAI_API_KEY_EU_PROD -e OPENAI_API_KEY_US_HEALTH residency-proxy:dev
#
# * Builder and runtime are both Debian 12 (bookworm), so the glibc the binary links against
#   is the one in the runtime image.
# * Base images are pinned by tag. Pin them by digest as well in your registry mirror
#   (`FROM rust:1.95-slim-bookworm@sha256:...`); digests could not be resolved where this
#   file was written.
# * The runtime image is distroless: no shell, so no HEALTHCHECK. Orchestrators probe the admin
#   listener instead (GET :9464/healthz = liveness, GET :9464/readyz = readiness), see deploy/.
# * The process needs no writable path: run it with a read-only root filesystem. Upstream TLS
#   roots are compiled in (webpki-roots); extra CAs come from `upstream.ca_file` on a volume.

ARG RUST_IMAGE=rust:1.95-slim-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

############################ builder ############################
FROM ${RUST_IMAGE} AS builder

ENV CARGO_TERM_COLOR=never \
    CARGO_INCREMENTAL=0 \
    CARGO_NET_RETRY=5

WORKDIR /src

# 1. Manifests only. These layers (dependency download + compile) are reused until
#    Cargo.toml/Cargo.lock change. Every workspace member's manifest must be listed here
#    (.ci/validate-deploy.sh checks this against [workspace].members).
COPY Cargo.toml Cargo.lock ./
COPY crates/policy/Cargo.toml crates/policy/Cargo.toml
COPY crates/inspect/Cargo.toml crates/inspect/Cargo.toml
COPY crates/proxy/Cargo.toml crates/proxy/Cargo.toml
COPY crates/mock-openai/Cargo.toml crates/mock-openai/Cargo.toml

# Stub targets so that cargo can load the workspace (explicit [[bin]]/[[bench]] paths must
# exist), then build every third-party dependency of the binary.
RUN set -eux; \
    mkdir -p src benches config crates/policy/src crates/inspect/src crates/proxy/src crates/mock-openai/src; \
    echo 'fn main() {}' > src/main.rs; \
    echo 'fn main() {}' > benches/hot_path.rs; \
    echo '{}' > config/catalog.json; \
    touch crates/policy/src/lib.rs crates/inspect/src/lib.rs crates/proxy/src/lib.rs crates/mock-openai/src/lib.rs; \
    echo 'fn main() {}' > crates/mock-openai/src/main.rs; \
    cargo fetch --locked; \
    cargo build --release --locked --bin residency-proxy; \
    rm -rf src benches config crates/*/src

# 2. The real sources. config/ is needed at compile time: the policy crate embeds
#    config/catalog.json with include_str!.
COPY src ./src
COPY benches ./benches
COPY config ./config
COPY crates ./crates

# COPY keeps the files' original mtimes, which can be older than the stub build above; touch
# them so cargo rebuilds the workspace crates instead of reusing the stubs.
RUN set -eux; \
    find src benches config crates -type f -exec touch {} +; \
    cargo build --release --locked --bin residency-proxy; \
    install -D -m 0555 target/release/residency-proxy /out/residency-proxy; \
    /out/residency-proxy --help > /dev/null

############################ runtime ############################
FROM ${RUNTIME_IMAGE}

LABEL org.opencontainers.image.title="residency-proxy" \
      org.opencontainers.image.description="Reverse proxy that routes OpenAI API requests to the project's regional host and enforces data-residency / ZDR policy" \
      org.opencontainers.image.licenses="Apache-2.0"

COPY --from=builder --chown=0:0 /out/residency-proxy /residency-proxy

# distroless "nonroot" is uid/gid 65532; say so explicitly so that runAsNonRoot can verify it.
USER 65532:65532

# 8080: the proxy (clients' OPENAI_BASE_URL=http://HOST:8080/v1)
# 9464: admin listener: /healthz, /readyz, /metrics (Prometheus)
EXPOSE 8080 9464

# Mount the config here (a Kubernetes ConfigMap mounted as a directory, not with subPath, so
# that edits reach the file and the proxy hot-reloads them). RESIDENCY_CONFIG also works.
ENTRYPOINT ["/residency-proxy"]
CMD ["serve", "--config", "/etc/residency-proxy/config.toml"]

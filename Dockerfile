# syntax=docker/dockerfile:1.7
# checkov:skip=CKV_DOCKER_2: One image runs eight binaries on different ports (and one-shot CLI commands); compose and k8s define the health checks per service.
#
# docket images, built from the one Cargo workspace.
#
#   docker build -t docket:dev .                          # all binaries, slim (default target)
#   docker build -t docket-convert:dev --target convert . # + LibreOffice, fonts, qpdf
#
# Needs BuildKit (the default in Docker 23+; `DOCKER_BUILDKIT=1` before that)
# for the cache mounts, which keep the cargo registry and target directory
# between builds so a code change recompiles only the crates it touches.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

# ---------------------------------------------------------------------------
FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS builder
WORKDIR /src
# sqlx's query macros must not reach for a database at build time.
ENV CARGO_TERM_COLOR=never \
    CARGO_INCREMENTAL=0 \
    SQLX_OFFLINE=true
COPY . .
# What the images ship; benches and test helpers are not built.
ARG BINS="docket docket-stubs docket-search docket-status docket-fetch docket-convert docket-store docket-report"
# The target dir is a cache mount, so the binaries are copied out of it in
# the same step. Naming each one makes a renamed or missing binary fail here,
# not at `docker run`. (The unquoted $(...) is meant: one --bin per name.)
# hadolint ignore=SC2046
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    set -eu; \
    cargo build --release --locked $(printf -- '--bin %s ' ${BINS}); \
    mkdir -p /out; \
    for bin in ${BINS}; do install -m 0755 "target/release/${bin}" "/out/${bin}"; done

# ---------------------------------------------------------------------------
# What every image shares: CA roots for TLS to the outside APIs and S3, tini
# as PID 1 (forwards SIGTERM to the service and reaps orphaned children, which
# the convert stage's LibreOffice leaves behind), and an unprivileged user.
FROM debian:${DEBIAN_RELEASE}-slim AS runtime-base
# Not pinned to exact versions (DL3008): bookworm's archive drops superseded
# versions at each point release, which would break the build; the release
# itself pins the ABI and security updates are wanted.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates tini \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 docket \
 && useradd --system --uid 10001 --gid docket --no-create-home \
            --home-dir /tmp --shell /usr/sbin/nologin docket
# HOME and TMPDIR point at /tmp, the one writable place when the root
# filesystem is mounted read-only (k8s mounts an emptyDir there).
ENV HOME=/tmp \
    TMPDIR=/tmp
WORKDIR /tmp
ENTRYPOINT ["/usr/bin/tini", "--"]

# ---------------------------------------------------------------------------
# The convert stage's image: LibreOffice (Writer only, no GUI) for DOCX and
# RTF, fonts for Latin, Greek, Cyrillic and CJK text, and qpdf. The layer is
# large (~700 MB) and changes rarely, so it sits below the binaries.
FROM runtime-base AS convert
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
        libreoffice-writer-nogui \
        fonts-dejavu-core fonts-noto-core fonts-noto-cjk \
        qpdf \
 && rm -rf /var/lib/apt/lists/* \
 && fc-cache -f
COPY --from=builder /out/ /usr/local/bin/
USER 10001:10001
EXPOSE 9104
CMD ["docket-convert"]

# ---------------------------------------------------------------------------
# Everything else (five stages, the operator CLI, the stubs). Last, so a plain
# `docker build .` produces it.
FROM runtime-base AS docket
COPY --from=builder /out/ /usr/local/bin/
USER 10001:10001
EXPOSE 9101 9102 9103 9105 9106
CMD ["docket", "--help"]

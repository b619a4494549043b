# syntax=docker/dockerfile:1.7
# The Fargate worker: one static-feeling binary on distroless (no shell, no package manager,
# ~25 MB), so a task spends its start-up hashing rather than pulling (the coursework
# system's image was hundreds of MB). Build from the repository root:
#   docker build -f infra/docker/nonce-worker.Dockerfile -t nonce-worker .
ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /src
COPY . .
# No -C target-cpu: the kernel picks AVX-512, SHA-NI, AVX2 or portable at run time on whatever
# hardware Fargate gives the task.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p worker-actor --bin nonce-worker \
 && cp target/release/nonce-worker /nonce-worker

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /nonce-worker /nonce-worker
USER 10001:10001
ENTRYPOINT ["/nonce-worker"]

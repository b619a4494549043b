# syntax=docker/dockerfile:1.7
# The GPU worker (`--capacity gpu`, infra/terraform/gpu.tf): nonce-worker built with the `gpu`
# feature, which hashes on the GPU through Vulkan (wgpu). Distroless like the Fargate worker,
# plus the Vulkan loader; the NVIDIA driver's Vulkan ICD (library and manifest) is not in the
# image: the NVIDIA container runtime of ECS's GPU AMI mounts it into the container when the
# `graphics` capability is asked for. Build from the repository root:
#   docker build -f infra/docker/nonce-worker-gpu.Dockerfile -t nonce-worker-gpu .
ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p worker-actor --features gpu --bin nonce-worker \
 && cp target/release/nonce-worker /nonce-worker

# The Vulkan loader (libvulkan.so.1, which wgpu opens at run time), from Debian 12: the same
# glibc as the distroless base below.
FROM debian:bookworm-slim AS vulkan
RUN apt-get update \
 && apt-get install -y --no-install-recommends libvulkan1=1.3.239.0-1 \
 && rm -rf /var/lib/apt/lists/*

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=vulkan /usr/lib/x86_64-linux-gnu/libvulkan.so.1.3.239 /usr/lib/x86_64-linux-gnu/libvulkan.so.1
COPY --from=build /nonce-worker /nonce-worker
# compute,utility: the GPU itself; graphics: the driver's Vulkan ICD. NONCE_KERNEL=gpu: a GPU
# that does not open fails the worker loudly rather than hashing on the CPU at GPU prices.
ENV NVIDIA_DRIVER_CAPABILITIES=compute,utility,graphics \
    NONCE_KERNEL=gpu
USER 10001:10001
ENTRYPOINT ["/nonce-worker"]

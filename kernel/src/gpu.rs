//! The GPU backend: the kernel as a wgpu compute shader (`gpu.wgsl`), on Vulkan.
//!
//! One device per process, opened on first use and shared by every kernel. A scan is cut
//! into dispatches sized so each takes about [`DISPATCH_TARGET`] (the batch adapts to the
//! measured time), so a worker's heartbeats, `Shrink` and `Revoke` wait at most one dispatch.
//! The shader appends each nonce whose key is at most the threshold to a small buffer; the
//! host sorts them and replays them in nonce order through the caller's callback, applying
//! the threshold the callback returns, so the callback sees exactly what the CPU backends
//! give it. A dispatch whose candidates overflow the buffer is done again in halves.
//!
//! The worker's auto-detection (`Backend::detect_with_gpu`) takes only a hardware GPU; a
//! software adapter (Mesa's lavapipe, which CI runs the correctness tests on) is used only
//! when forced, since the CPU backends beat it.

use crate::sha256::compress_rounds;
use crate::Template;
use protocol::Encoding;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long one dispatch should take: short enough that a worker stays responsive.
pub const DISPATCH_TARGET: Duration = Duration::from_millis(40);
/// Candidates one dispatch holds: with the threshold the search uses (golden, share or best
/// key), a dispatch is sized to expect far fewer (see `Prepared::limit_for`).
const CAPACITY: u32 = 4096;
/// Invocations per workgroup (the shader's `@workgroup_size`).
const WORKGROUP: u64 = 64;
/// Nonces an invocation hashes at least: amortises its set-up (loading the template).
const PER_INVOCATION: u64 = 32;
/// Workgroups one dispatch dimension may have (WebGPU's default limit).
const MAX_WORKGROUPS: u64 = 65_535;
/// The first dispatch's size, before any time is measured.
const FIRST_BATCH: u64 = 1 << 16;
/// The largest dispatch (2^31 keeps the shader's 32-bit offsets from overflowing).
const MAX_BATCH: u64 = 1 << 31;
/// Bytes of the parameter block (`Params` in the shader: 48 template words, 9 scalars).
const PARAMS_WORDS: usize = 8 + 8 + 32 + 9;
/// How long a dispatch may take before the device is given up as hung.
const HANG: Duration = Duration::from_secs(10);

/// The adapter the GPU backend runs on, as the driver names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdapterInfo {
    /// The device's name (`llvmpipe (LLVM 15.0.6, 256 bits)`, `NVIDIA A10G`).
    pub name: String,
    /// The driver and its version.
    pub driver: String,
    /// Discrete, integrated, virtual or software (`cpu`).
    pub kind: String,
    /// Whether it is real GPU hardware (not a software rasteriser on the CPU).
    pub hardware: bool,
}

impl std::fmt::Display for AdapterInfo {
    /// `name (kind, driver)`: how bench and the worker's log name it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}, {})", self.name, self.kind, self.driver)
    }
}

/// Why the GPU backend cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GpuError {
    /// No Vulkan adapter (no driver, no device, or no ICD for it).
    #[error("no GPU adapter: {0}")]
    NoAdapter(String),
    /// The adapter would not give a device.
    #[error("the GPU adapter {adapter} gave no device: {reason}")]
    NoDevice {
        /// The adapter's name.
        adapter: String,
        /// What wgpu said.
        reason: String,
    },
}

pub(crate) struct Device {
    device: wgpu::Device,
    queue: wgpu::Queue,
    pipeline: wgpu::ComputePipeline,
    info: AdapterInfo,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device").field("info", &self.info).finish()
    }
}

static DEVICE: OnceLock<Result<Arc<Device>, GpuError>> = OnceLock::new();

/// The process's GPU device, opened on first use.
pub(crate) fn device() -> Result<Arc<Device>, GpuError> {
    DEVICE.get_or_init(|| open().map(Arc::new)).clone()
}

/// The adapter the GPU backend uses, or why there is none.
pub fn adapter() -> Result<AdapterInfo, GpuError> {
    device().map(|d| d.info.clone())
}

fn open() -> Result<Device, GpuError> {
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
        backends: wgpu::Backends::VULKAN,
        ..wgpu::InstanceDescriptor::new_without_display_handle()
    });
    // A hardware GPU when there is one; else whatever adapter Vulkan offers (lavapipe).
    let options = wgpu::RequestAdapterOptions {
        power_preference: wgpu::PowerPreference::HighPerformance,
        force_fallback_adapter: false,
        compatible_surface: None,
        ..Default::default()
    };
    let adapter = pollster::block_on(instance.request_adapter(&options))
        .map_err(|e| GpuError::NoAdapter(e.to_string()))?;
    let raw = adapter.get_info();
    let hardware = matches!(raw.device_type, wgpu::DeviceType::DiscreteGpu | wgpu::DeviceType::IntegratedGpu);
    let info = AdapterInfo {
        name: raw.name.clone(),
        driver: format!("{} {}", raw.driver, raw.driver_info).trim().to_string(),
        kind: format!("{:?}", raw.device_type).to_lowercase(),
        hardware,
    };
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        label: Some("nonce-kernel"),
        required_features: wgpu::Features::empty(),
        required_limits: wgpu::Limits::downlevel_defaults().using_resolution(adapter.limits()),
        ..Default::default()
    }))
    .map_err(|e| GpuError::NoDevice { adapter: info.name.clone(), reason: e.to_string() })?;
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some("sha256d"),
        source: wgpu::ShaderSource::Wgsl(include_str!("gpu.wgsl").into()),
    });
    let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some("sha256d scan"),
        layout: None,
        module: &module,
        entry_point: Some("scan"),
        compilation_options: Default::default(),
        cache: None,
    });
    Ok(Device { device, queue, pipeline, info })
}

/// A template's parameter block and buffers on the device: what every scan of it reuses.
pub(crate) struct Prepared {
    device: Arc<Device>,
    params: [u32; PARAMS_WORDS],
    /// One dispatch at a time per kernel (the buffers are its), and the adaptive batch size.
    state: Mutex<Buffers>,
    /// A dispatch failed (a lost device, a hang past [`HANG`]): every later scan goes to the
    /// CPU at once, instead of waiting for a dead device again each time.
    lost: std::sync::atomic::AtomicBool,
    /// Dispatches left before one fails as a lost device would (tests of the fallback).
    #[cfg(test)]
    pub(crate) fail_after: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared").field("device", &self.device.info.name).finish()
    }
}

struct Buffers {
    params: wgpu::Buffer,
    found: wgpu::Buffer,
    readback: wgpu::Buffer,
    bind_group: wgpu::BindGroup,
    /// Nonces the next dispatch takes, adapted to [`DISPATCH_TARGET`].
    batch: u64,
}

const FOUND_BYTES: u64 = 16 + 16 * CAPACITY as u64;

impl Prepared {
    pub(crate) fn new(template: &Template) -> Result<Prepared, GpuError> {
        let device = device()?;
        let d = &device.device;
        let params = d.create_buffer(&wgpu::BufferDescriptor {
            label: Some("params"),
            size: (PARAMS_WORDS * 4) as u64,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let found = d.create_buffer(&wgpu::BufferDescriptor {
            label: Some("found"),
            size: FOUND_BYTES,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let readback = d.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size: FOUND_BYTES,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let bind_group = d.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("scan"),
            layout: &device.pipeline.get_bind_group_layout(0),
            entries: &[
                wgpu::BindGroupEntry { binding: 0, resource: params.as_entire_binding() },
                wgpu::BindGroupEntry { binding: 1, resource: found.as_entire_binding() },
            ],
        });
        let buffers = Buffers { params, found, readback, bind_group, batch: FIRST_BATCH };
        Ok(Prepared {
            params: params_of(template),
            device,
            state: Mutex::new(buffers),
            lost: std::sync::atomic::AtomicBool::new(false),
            #[cfg(test)]
            fail_after: std::sync::atomic::AtomicU64::new(u64::MAX),
        })
    }

    /// The adapter it runs on.
    pub(crate) fn adapter(&self) -> &AdapterInfo {
        &self.device.info
    }

    /// Whether a dispatch failed: the device is given up for this kernel.
    pub(crate) fn lost(&self) -> bool {
        self.lost.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Nonces a caller should hand one scan to keep it about one dispatch long.
    pub(crate) fn batch(&self) -> u64 {
        self.lock().batch
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Buffers> {
        // A panic mid-dispatch leaves the buffers as they were: still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The nonces `start..start+count` with key at most `threshold`, replayed in order; `Err`
    /// when the device failed (the caller finishes the range another way), with how many
    /// nonces were done and the threshold the callback last returned.
    pub(crate) fn scan(
        &self,
        start: u64,
        count: u64,
        mut threshold: u32,
        on_candidate: &mut dyn FnMut(u64) -> u32,
    ) -> Result<(), (u64, u32)> {
        if self.lost() {
            return Err((0, threshold));
        }
        let mut b = self.lock();
        let mut done = 0u64;
        while done < count {
            let at = start.wrapping_add(done);
            let n = (count - done).min(b.batch).min(limit_for(threshold));
            let began = Instant::now();
            let Some(mut found) = self.dispatch(&b, at, n, threshold) else {
                self.lost.store(true, std::sync::atomic::Ordering::Relaxed);
                return Err((done, threshold));
            };
            if found.len() > CAPACITY as usize {
                // More candidates than the buffer holds: the same nonces again, in halves.
                b.batch = (n / 2).max(1);
                continue;
            }
            let took = began.elapsed();
            b.batch = next_batch(n, took);
            found.sort_unstable_by_key(|&(nonce, _)| nonce);
            for (nonce, key) in found {
                if key <= threshold {
                    threshold = on_candidate(nonce);
                }
            }
            done += n;
        }
        Ok(())
    }

    /// One dispatch over `n` nonces from `at`: the candidates (more than `CAPACITY` means
    /// the buffer overflowed), or `None` if the device failed.
    fn dispatch(&self, b: &Buffers, at: u64, n: u64, threshold: u32) -> Option<Vec<(u64, u32)>> {
        #[cfg(test)]
        {
            use std::sync::atomic::Ordering::Relaxed;
            if self.fail_after.fetch_update(Relaxed, Relaxed, |left| left.checked_sub(1)).is_err() {
                return None;
            }
        }
        let dev = &self.device;
        let per_invocation = PER_INVOCATION.max(n.div_ceil(WORKGROUP * MAX_WORKGROUPS));
        let invocations = n.div_ceil(per_invocation);
        let workgroups = invocations.div_ceil(WORKGROUP) as u32;
        let mut params = self.params;
        let tail = 48;
        params[tail] = at as u32;
        params[tail + 1] = (at >> 32) as u32;
        params[tail + 2] = n as u32;
        params[tail + 3] = threshold;
        params[tail + 4] = per_invocation as u32;
        dev.queue.write_buffer(&b.params, 0, &words_to_bytes(&params));
        dev.queue.write_buffer(&b.found, 0, &[0u8; 16]);
        let mut encoder = dev.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
            pass.set_pipeline(&dev.pipeline);
            pass.set_bind_group(0, &b.bind_group, &[]);
            pass.dispatch_workgroups(workgroups, 1, 1);
        }
        encoder.copy_buffer_to_buffer(&b.found, 0, &b.readback, 0, FOUND_BYTES);
        dev.queue.submit([encoder.finish()]);
        let (tx, rx) = std::sync::mpsc::channel();
        b.readback.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r.is_ok());
        });
        let waited = dev.device.poll(wgpu::PollType::Wait { submission_index: None, timeout: Some(HANG) });
        if waited.is_err() || !rx.recv_timeout(HANG).unwrap_or(false) {
            return None;
        }
        let found = {
            let view = b.readback.get_mapped_range(..).ok()?;
            let word = |i: usize| {
                u32::from_le_bytes([view[4 * i], view[4 * i + 1], view[4 * i + 2], view[4 * i + 3]])
            };
            let total = word(0) as usize;
            let kept = total.min(CAPACITY as usize);
            let mut found: Vec<(u64, u32)> = (0..kept)
                .map(|i| {
                    let base = 4 + 4 * i;
                    ((u64::from(word(base + 1)) << 32) | u64::from(word(base)), word(base + 2))
                })
                .collect();
            if total > kept {
                // Signal the overflow with one more entry than the buffer holds.
                found.push((0, 0));
            }
            found
        };
        b.readback.unmap();
        Some(found)
    }
}

/// Nonces one dispatch may take at `threshold` so that it expects at most a quarter of the
/// buffer's capacity in candidates (a key is at most `threshold` with probability
/// `(threshold + 1) / 2^32`).
fn limit_for(threshold: u32) -> u64 {
    let expected_per_nonce = (f64::from(threshold) + 1.0) / 4_294_967_296.0;
    ((f64::from(CAPACITY) / 4.0 / expected_per_nonce) as u64).clamp(1, MAX_BATCH)
}

/// The batch for the next dispatch, from how long `n` nonces took: toward the target, at
/// most doubling at a time (a first, cold dispatch is slow).
fn next_batch(n: u64, took: Duration) -> u64 {
    let secs = took.as_secs_f64().max(1e-6);
    let ideal = n as f64 * DISPATCH_TARGET.as_secs_f64() / secs;
    (ideal.min(n as f64 * 2.0) as u64).clamp(WORKGROUP * PER_INVOCATION, MAX_BATCH)
}

fn words_to_bytes(words: &[u32]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

/// The shader's `Params` for a template, the per-dispatch fields (base, count, threshold,
/// per_invocation) left zero.
fn params_of(t: &Template) -> [u32; PARAMS_WORDS] {
    let mut p = [0u32; PARAMS_WORDS];
    p[..8].copy_from_slice(&t.midstate);
    // The rounds before the nonce's first word use only constant words: done once here.
    let mut schedule = [0u32; 64];
    schedule[..16].copy_from_slice(&t.words[..16]);
    let mut pre = t.midstate;
    compress_rounds(&mut pre, &schedule, 0, t.window);
    p[8..16].copy_from_slice(&pre);
    p[16..48].copy_from_slice(&t.words);
    let encoding = match t.encoding {
        Encoding::Be32 => 0,
        Encoding::Le32 => 1,
        Encoding::Be64 => 2,
        Encoding::Le64 => 3,
    };
    let flags = encoding | (u32::from(t.reversed) << 2) | (u32::from(t.blocks == 2) << 3);
    p[53] = t.window as u32;
    p[54] = t.shift;
    p[55] = flags;
    p[56] = CAPACITY;
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dispatch_expects_few_candidates_at_any_threshold() {
        assert_eq!(limit_for(u32::MAX), 1024);
        assert!(limit_for(0) >= MAX_BATCH / 2);
        assert_eq!(next_batch(10_000, DISPATCH_TARGET / 10), 20_000, "grows at most twofold");
        assert_eq!(next_batch(1 << 20, DISPATCH_TARGET * 2), 1 << 19);
    }
}

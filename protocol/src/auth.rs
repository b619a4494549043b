//! Who may speak for a job, and how a receiver knows.
//!
//! A coordinator holds one [`JobSecret`] per job (random, journaled, never sent). From it:
//! - each worker's [`WorkerKey`] (HMAC-SHA256 of the job and the worker id), handed to that
//!   worker only over its launch channel (its environment, the ECS RunTask override). Every
//!   event the worker sends is sealed with it ([`SealedEvent`]), and so is every command the
//!   coordinator sends to that worker's inbox ([`SealedCommand`]). A valid tag therefore
//!   proves the worker was launched by this job: nobody else can derive the key.
//! - the job's broadcast key pair (Ed25519): broadcasts on the shared topic are signed
//!   ([`SignedBroadcast`]); workers get only the public half, so neither a subscriber to the
//!   topic nor one of the job's own workers can forge a `Stop` or a `KeepAlive`.
//!
//! Every sealed message carries a stream (the sender's life: the coordinator's incarnation,
//! or 0 for a worker) and a sequence number; receivers keep a [`ReplayWindow`] per stream, so
//! a replayed message is refused while SQS's occasional reordering is still accepted.
//! Broadcasts also carry the sender's clock, so captured keep-alives cannot be replayed later
//! to keep an orphaned fleet running.

use crate::message::{Command, Event, JobId, WorkerId};
use ed25519_dalek::{Signer, Verifier};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::fmt;

type HmacSha256 = Hmac<Sha256>;

/// Length of a MAC tag and of every symmetric key.
pub const KEY_BYTES: usize = 32;

/// Why a sealed message was not accepted.
/// Why a key's text is not a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Keys and secrets are 32 bytes, written as 64 hex digits.
    #[error("expected 64 hex digits (32 bytes)")]
    NotHex32,
    /// 32 bytes that are no point of the curve.
    #[error("not an Ed25519 public key")]
    NotEd25519,
}

/// Why a sealed message was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Not sealed with the key it claims.
    #[error("the message's tag or signature does not verify")]
    Forged,
    /// A copy of one already accepted, or too old to tell.
    #[error("the message was seen before (or is older than the replay window)")]
    Replayed,
    /// A broadcast sent too long ago (or in the future).
    #[error("the broadcast's clock is too far from ours")]
    Stale,
}

/// A job's root secret: only the coordinator (and its journal) ever holds it.
#[derive(Clone, PartialEq, Eq)]
pub struct JobSecret([u8; KEY_BYTES]);

impl fmt::Debug for JobSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JobSecret(..)")
    }
}

impl JobSecret {
    /// A secret from random bytes (the caller draws them from the OS).
    pub fn from_bytes(bytes: [u8; KEY_BYTES]) -> Self {
        JobSecret(bytes)
    }

    /// Hex form, for the journal.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The secret as `to_hex` wrote it (the journal keeps it so).
    pub fn from_hex(text: &str) -> Result<Self, KeyError> {
        parse_hex32(text).map(JobSecret)
    }

    fn derive(&self, label: &str, job: JobId, extra: &[u8]) -> [u8; KEY_BYTES] {
        let mut mac = hmac_key(&self.0);
        mac.update(label.as_bytes());
        mac.update(&[0]);
        mac.update(&job.0.to_be_bytes());
        mac.update(extra);
        mac.finalize().into_bytes().into()
    }

    /// The key of one worker of `job`.
    pub fn worker_key(&self, job: JobId, worker: &WorkerId) -> WorkerKey {
        WorkerKey::from_bytes(self.derive("nonce-cloud/worker-key/v1", job, worker.0.as_bytes()))
    }

    /// The job's broadcast signing key.
    pub fn broadcast_signer(&self, job: JobId) -> BroadcastSigner {
        let seed = self.derive("nonce-cloud/broadcast-key/v1", job, &[]);
        BroadcastSigner(ed25519_dalek::SigningKey::from_bytes(&seed))
    }

    /// Seed of the job's unpredictable choices (which claimed work is spot-checked): derived
    /// from the secret, so a worker cannot foresee them.
    pub fn choice_seed(&self, job: JobId) -> [u8; KEY_BYTES] {
        self.derive("nonce-cloud/choices/v1", job, &[])
    }
}

/// One worker's key: seals its events and the commands to its inbox.
/// The key, and HMAC's keyed state computed once (two compressions saved on every message:
/// the coordinator checks one a heartbeat from each of thousands of workers).
#[derive(Clone)]
pub struct WorkerKey {
    bytes: [u8; KEY_BYTES],
    keyed: HmacSha256,
}

impl PartialEq for WorkerKey {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}

impl Eq for WorkerKey {}

impl fmt::Debug for WorkerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WorkerKey(..)")
    }
}

impl WorkerKey {
    /// Hex form, for the launch channel (`NONCE_WORKER_KEY`).
    pub fn to_hex(&self) -> String {
        hex::encode(self.bytes)
    }

    /// The key as `to_hex` wrote it (`NONCE_WORKER_KEY`).
    pub fn from_hex(text: &str) -> Result<Self, KeyError> {
        parse_hex32(text).map(WorkerKey::from_bytes)
    }

    fn from_bytes(bytes: [u8; KEY_BYTES]) -> Self {
        WorkerKey { bytes, keyed: hmac_key(&bytes) }
    }

    /// None only for a body serde cannot encode (ours all can): it then fails every check.
    fn mac(&self, label: &str, stream: u64, seq: u64, body: &impl Serialize) -> Option<HmacSha256> {
        let mut mac = self.keyed.clone();
        mac.update(label.as_bytes());
        mac.update(&[0]);
        mac.update(&stream.to_be_bytes());
        mac.update(&seq.to_be_bytes());
        // Encoded straight into the MAC: the same bytes as `canonical`, with no buffer.
        bincode::serialize_into(MacWriter(&mut mac), body).ok()?;
        Some(mac)
    }

    fn tag(&self, label: &str, stream: u64, seq: u64, body: &impl Serialize) -> [u8; 32] {
        self.mac(label, stream, seq, body).map(|m| m.finalize().into_bytes().into()).unwrap_or([0; 32])
    }

    fn check(&self, label: &str, stream: u64, seq: u64, body: &impl Serialize, tag: &[u8; 32]) -> bool {
        // Constant-time comparison (`verify_slice`), so timing tells an attacker nothing.
        self.mac(label, stream, seq, body).is_some_and(|m| m.verify_slice(tag).is_ok())
    }

    /// Seals an event as its worker.
    pub fn seal_event(&self, seq: u64, event: Event) -> SealedEvent {
        let tag = self.tag(EVENT_LABEL, 0, seq, &event);
        SealedEvent { seq, event, tag }
    }

    /// Checks an event's tag (not its freshness: see [`ReplayWindow`]).
    pub fn opens_event(&self, sealed: &SealedEvent) -> bool {
        self.check(EVENT_LABEL, 0, sealed.seq, &sealed.event, &sealed.tag)
    }

    /// Seals a command for this worker's inbox.
    pub fn seal_command(&self, stream: u64, seq: u64, command: Command) -> SealedCommand {
        let tag = self.tag(COMMAND_LABEL, stream, seq, &command);
        SealedCommand { stream, seq, command, tag }
    }

    /// Whether `sealed` carries this key's tag (not whether it is fresh).
    pub fn opens_command(&self, sealed: &SealedCommand) -> bool {
        self.check(COMMAND_LABEL, sealed.stream, sealed.seq, &sealed.command, &sealed.tag)
    }
}

const EVENT_LABEL: &str = "nonce-cloud/event/v1";
const COMMAND_LABEL: &str = "nonce-cloud/command/v1";
const BROADCAST_LABEL: &[u8] = b"nonce-cloud/broadcast/v1\0";

/// Signs a job's broadcasts. Only the coordinator has it.
#[derive(Clone)]
pub struct BroadcastSigner(ed25519_dalek::SigningKey);

impl fmt::Debug for BroadcastSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BroadcastSigner(..)")
    }
}

impl BroadcastSigner {
    /// The public half, which workers are given.
    pub fn verifier(&self) -> BroadcastVerifier {
        BroadcastVerifier(self.0.verifying_key())
    }

    /// Signs `command` as message `seq` of `stream`, sent at `sent_at_ms` (Unix milliseconds).
    pub fn sign(&self, stream: u64, seq: u64, sent_at_ms: u64, command: Command) -> SignedBroadcast {
        let signature = self.0.sign(&broadcast_bytes(stream, seq, sent_at_ms, &command)).to_bytes().to_vec();
        SignedBroadcast { stream, seq, sent_at_ms, command, signature }
    }
}

/// Checks a job's broadcasts: what every worker of the job is given.
#[derive(Clone, PartialEq, Eq)]
pub struct BroadcastVerifier(ed25519_dalek::VerifyingKey);

impl fmt::Debug for BroadcastVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BroadcastVerifier({})", self.to_hex())
    }
}

impl BroadcastVerifier {
    /// Hex form, for the launch channel (`NONCE_BROADCAST_KEY`).
    pub fn to_hex(&self) -> String {
        hex::encode(self.0.as_bytes())
    }

    /// The public key as `to_hex` wrote it (`NONCE_BROADCAST_KEY`).
    pub fn from_hex(text: &str) -> Result<Self, KeyError> {
        let bytes = parse_hex32(text)?;
        ed25519_dalek::VerifyingKey::from_bytes(&bytes)
            .map(BroadcastVerifier)
            .map_err(|_| KeyError::NotEd25519)
    }

    /// Whether the signature is the job's (not whether the broadcast is fresh).
    pub fn opens(&self, b: &SignedBroadcast) -> bool {
        let Ok(sig) = ed25519_dalek::Signature::from_slice(&b.signature) else { return false };
        self.0.verify(&broadcast_bytes(b.stream, b.seq, b.sent_at_ms, &b.command), &sig).is_ok()
    }
}

fn broadcast_bytes(stream: u64, seq: u64, sent_at_ms: u64, command: &Command) -> Vec<u8> {
    let mut m = BROADCAST_LABEL.to_vec();
    m.extend_from_slice(&stream.to_be_bytes());
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(&sent_at_ms.to_be_bytes());
    m.extend_from_slice(&canonical(command));
    m
}

/// A worker's event with its sequence number and tag.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SealedEvent {
    /// The worker's sequence number, from 1 (the replay window's input).
    pub seq: u64,
    /// The event.
    pub event: Event,
    /// HMAC-SHA256 of label, sequence number and event, with the worker's key.
    pub tag: [u8; 32],
}

/// A command to one worker's inbox, sealed with that worker's key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SealedCommand {
    /// The coordinator's incarnation: sequence numbers restart with each life.
    pub stream: u64,
    /// The sequence number within the stream, from 1.
    pub seq: u64,
    /// The command.
    pub command: Command,
    /// HMAC-SHA256 of label, stream, sequence number and command, with the worker's key.
    pub tag: [u8; 32],
}

/// A command to every worker of a job, signed with the job's broadcast key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SignedBroadcast {
    /// The coordinator's incarnation: sequence numbers restart with each life.
    pub stream: u64,
    /// The sequence number within the stream, from 1.
    pub seq: u64,
    /// The coordinator's clock, Unix milliseconds: a receiver refuses broadcasts far from its own.
    pub sent_at_ms: u64,
    /// The command.
    pub command: Command,
    /// 64 bytes of Ed25519 (serde has no derive for arrays that long).
    pub signature: Vec<u8>,
}

/// The messages' canonical bytes: what a tag covers. bincode of these types is deterministic,
/// so a receiver re-encoding what it decoded gets the bytes the sender tagged.
fn canonical(body: &impl Serialize) -> Vec<u8> {
    // Only fails for types serde cannot encode, which ours are not; an empty body would then
    // fail every check rather than pass one.
    bincode::serialize(body).unwrap_or_default()
}

/// Feeds bincode's output to a MAC.
struct MacWriter<'a>(&'a mut HmacSha256);

impl std::io::Write for MacWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn hmac_key(key: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    match HmacSha256::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC accepts every key length"),
    }
}

fn parse_hex32(text: &str) -> Result<[u8; KEY_BYTES], KeyError> {
    let bytes = hex::decode(text.trim()).map_err(|_| KeyError::NotHex32)?;
    bytes.try_into().map_err(|_| KeyError::NotHex32)
}

/// Refuses replays: remembers the newest sequence number seen and which of the `WIDTH` below
/// it were seen (the window of IPsec and DTLS). Older numbers are refused too: a message
/// delayed past `WIDTH` newer ones from the same sender is treated as a replay.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplayWindow {
    top: u64,
    seen: u128,
}

impl ReplayWindow {
    /// How many sequence numbers below the newest it remembers.
    pub const WIDTH: u64 = 128;

    /// Whether `seq` was not seen before; records it. Sequence numbers start at 1.
    pub fn accept(&mut self, seq: u64) -> bool {
        if seq == 0 {
            return false;
        }
        if seq > self.top {
            let shift = seq - self.top;
            self.seen = if shift >= Self::WIDTH { 0 } else { self.seen << shift };
            self.seen |= 1;
            self.top = seq;
            return true;
        }
        let back = self.top - seq;
        if back >= Self::WIDTH || self.seen & (1u128 << back) != 0 {
            return false;
        }
        self.seen |= 1u128 << back;
        true
    }

    /// Whether `seq` would be accepted, without recording it.
    pub fn would_accept(&self, seq: u64) -> bool {
        self.clone().accept(seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{EventBody, ShardId};

    fn secret() -> JobSecret {
        JobSecret::from_bytes([7; 32])
    }

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test case 2 of RFC 4231: our MAC is the standard one.
        let mut mac = hmac_key(b"Jefe");
        mac.update(b"what do ya want for nothing?");
        let out: [u8; 32] = mac.finalize().into_bytes().into();
        assert_eq!(hex::encode(out), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }

    #[test]
    fn an_event_tag_is_hmac_of_label_stream_seq_and_the_bincode_body() {
        // The wire format, computed the long way: the streamed MAC (no buffer, keyed state
        // cached) must stay byte-for-byte what a worker of any build computes.
        let (job, w) = (JobId(9), WorkerId("w0".into()));
        let key = secret().worker_key(job, &w);
        let event = Event { job, worker: w, body: EventBody::Hello { inbox: "mem://x".into(), cpus: 2 } };
        let sealed = key.seal_event(41, event.clone());
        let mut mac = hmac_key(&hex::decode(key.to_hex()).unwrap_or_default());
        mac.update(EVENT_LABEL.as_bytes());
        mac.update(&[0]);
        mac.update(&0u64.to_be_bytes());
        mac.update(&41u64.to_be_bytes());
        mac.update(&bincode::serialize(&event).unwrap_or_default());
        let long_way: [u8; 32] = mac.finalize().into_bytes().into();
        assert_eq!(sealed.tag, long_way);
    }

    #[test]
    fn keys_are_per_worker_and_per_job() {
        let s = secret();
        let a = s.worker_key(JobId(1), &WorkerId("w0".into()));
        assert_ne!(a, s.worker_key(JobId(1), &WorkerId("w1".into())));
        assert_ne!(a, s.worker_key(JobId(2), &WorkerId("w0".into())));
        assert_ne!(a, JobSecret::from_bytes([8; 32]).worker_key(JobId(1), &WorkerId("w0".into())));
        assert_eq!(WorkerKey::from_hex(&a.to_hex()), Ok(a));
        assert!(format!("{:?}{:?}", s, s.worker_key(JobId(1), &WorkerId("w0".into()))).find("07").is_none());
    }

    #[test]
    fn events_open_only_with_their_key_and_unchanged() {
        let (job, w) = (JobId(9), WorkerId("w0".into()));
        let key = secret().worker_key(job, &w);
        let ev = Event {
            job,
            worker: w.clone(),
            body: EventBody::Found { shard: ShardId(1), epoch: 1, nonce: 5 },
        };
        let sealed = key.seal_event(1, ev.clone());
        assert!(key.opens_event(&sealed));
        let other = secret().worker_key(job, &WorkerId("w1".into()));
        assert!(!other.opens_event(&sealed));
        let mut changed = sealed.clone();
        changed.event.body = EventBody::Found { shard: ShardId(1), epoch: 1, nonce: 6 };
        assert!(!key.opens_event(&changed));
        let mut renamed = sealed.clone();
        renamed.event.worker = WorkerId("w1".into());
        assert!(!key.opens_event(&renamed));
        let mut reseq = sealed;
        reseq.seq = 2;
        assert!(!key.opens_event(&reseq));
    }

    #[test]
    fn broadcasts_verify_with_the_public_key_only() {
        let signer = secret().broadcast_signer(JobId(3));
        let b = signer.sign(11, 1, 1_000, Command::Stop { job: Some(JobId(3)) });
        let v = BroadcastVerifier::from_hex(&signer.verifier().to_hex()).expect("hex");
        assert!(v.opens(&b));
        let mut later = b.clone();
        later.sent_at_ms += 1;
        assert!(!v.opens(&later));
        let other = secret().broadcast_signer(JobId(4)).verifier();
        assert!(!other.opens(&b));
        let mut short = b;
        short.signature.pop();
        assert!(!v.opens(&short));
    }

    #[test]
    fn replay_window_refuses_repeats_and_accepts_reordering() {
        let mut w = ReplayWindow::default();
        assert!(!w.accept(0));
        assert!(w.accept(3));
        assert!(w.accept(1), "older but unseen, inside the window");
        assert!(!w.accept(3));
        assert!(!w.accept(1));
        assert!(w.accept(200));
        assert!(!w.accept(3), "fell out of the window");
        assert!(w.accept(199));
        assert!(w.would_accept(198));
        assert!(w.accept(198));
        assert!(!w.would_accept(198));
    }
}

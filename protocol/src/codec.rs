//! The wire codec: a versioned binary envelope (magic, version, bincode body) with a hard
//! size limit, and a base64 text form for SQS bodies. Decoding never panics and never
//! allocates more than the limit, whatever the bytes.

use crate::message::Message;
use base64::Engine;
use bincode::Options;

/// First bytes of every encoded message.
pub const MAGIC: [u8; 2] = *b"NC";
/// Envelope version this build writes and reads (2: every message sealed, work proven by shares).
pub const VERSION: u16 = 2;
/// Largest encoded message, envelope included. Base64 of this stays well under SQS's 256 KiB.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// Why bytes could not be turned into a [`Message`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Longer than the limit.
    #[error("message is {0} bytes; the limit is {MAX_MESSAGE_BYTES}")]
    TooLarge(usize),
    /// Shorter than an envelope.
    #[error("message is too short to hold an envelope")]
    Truncated,
    /// Not our magic bytes.
    #[error("not a nonce-cloud message (bad magic)")]
    BadMagic,
    /// An envelope version this build does not speak.
    #[error("envelope version {0} is not supported (this build speaks {VERSION})")]
    UnsupportedVersion(u16),
    /// A text body that is not base64.
    #[error("text body is not valid base64")]
    BadBase64,
    /// An envelope whose body does not decode.
    #[error("malformed message body: {0}")]
    Malformed(String),
}

/// Why a message could not be encoded (only ever its size).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// Longer than the limit.
    #[error("message would be {0} bytes; the limit is {MAX_MESSAGE_BYTES}")]
    TooLarge(usize),
}

fn options() -> impl Options {
    bincode::DefaultOptions::new().with_limit(MAX_MESSAGE_BYTES as u64).reject_trailing_bytes()
}

/// Encodes into the binary envelope.
pub fn encode(msg: &Message) -> Result<Vec<u8>, EncodeError> {
    let body = options().serialize(msg).map_err(|_| EncodeError::TooLarge(MAX_MESSAGE_BYTES + 1))?;
    let len = body.len() + 4;
    if len > MAX_MESSAGE_BYTES {
        return Err(EncodeError::TooLarge(len));
    }
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_be_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// Decodes the binary envelope.
pub fn decode(bytes: &[u8]) -> Result<Message, DecodeError> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(DecodeError::TooLarge(bytes.len()));
    }
    if bytes.len() < 4 {
        return Err(DecodeError::Truncated);
    }
    if bytes[..2] != MAGIC {
        return Err(DecodeError::BadMagic);
    }
    let version = u16::from_be_bytes([bytes[2], bytes[3]]);
    if version != VERSION {
        return Err(DecodeError::UnsupportedVersion(version));
    }
    options().deserialize(&bytes[4..]).map_err(|e| DecodeError::Malformed(e.to_string()))
}

/// Encodes as base64 text (an SQS message body).
pub fn encode_text(msg: &Message) -> Result<String, EncodeError> {
    Ok(base64::engine::general_purpose::STANDARD.encode(encode(msg)?))
}

/// Decodes base64 text (an SQS message body).
pub fn decode_text(text: &str) -> Result<Message, DecodeError> {
    // Base64 is 4/3 the size of its bytes: refuse before allocating.
    if text.len() > MAX_MESSAGE_BYTES / 3 * 4 + 4 {
        return Err(DecodeError::TooLarge(text.len() / 4 * 3));
    }
    let bytes =
        base64::engine::general_purpose::STANDARD.decode(text.trim()).map_err(|_| DecodeError::BadBase64)?;
    decode(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::JobSecret;
    use crate::message::*;
    use crate::pow::{Encoding, Layout, Mode, NonceRange, Puzzle, Target};
    use proptest::prelude::*;

    fn arb_puzzle() -> impl Strategy<Value = Puzzle> {
        prop_oneof![
            (proptest::collection::vec(any::<u8>(), 0..300), 0u32..=256, 0usize..4).prop_map(
                |(block, d, e)| {
                    let enc = [Encoding::Be32, Encoding::Le32, Encoding::Be64, Encoding::Le64][e];
                    Puzzle::append(block, enc, d).expect("valid")
                }
            ),
            proptest::collection::vec(any::<u8>(), 80).prop_map(|header| {
                Puzzle::new(Layout::Header { header }, Target::Compact(0x1d00ffff)).expect("valid")
            }),
        ]
    }

    fn arb_message() -> impl Strategy<Value = Message> {
        let job = any::<u64>().prop_map(JobId);
        let shard = any::<u64>().prop_map(ShardId);
        let worker = "[a-z0-9-]{1,20}".prop_map(WorkerId);
        let key = JobSecret::from_bytes([3; 32]).worker_key(JobId(1), &WorkerId("w".into()));
        let (k1, k2, k3) = (key.clone(), key.clone(), key);
        let signer = JobSecret::from_bytes([3; 32]).broadcast_signer(JobId(1));
        prop_oneof![
            (job.clone(), shard.clone(), any::<u64>(), arb_puzzle(), any::<u64>(), 0usize..3).prop_map(
                move |(job, shard, epoch, puzzle, s, m)| {
                    let mode = [Mode::First, Mode::Lowest, Mode::Exhaustive][m];
                    let range = NonceRange::new(u128::from(s), u128::from(s) + 1000);
                    let share_bits = (epoch % 33) as u32;
                    let cmd = Command::Assign { job, shard, epoch, puzzle, range, mode, share_bits };
                    Message::Command(k1.seal_command(epoch, s, cmd))
                }
            ),
            (job.clone(), shard.clone(), any::<u64>(), any::<u128>(), any::<u64>()).prop_map(
                move |(job, shard, epoch, new_end, at)| {
                    let cmd = Command::Shrink { job, shard, epoch, new_end };
                    Message::Broadcast(signer.sign(epoch, epoch, at, cmd))
                }
            ),
            (proptest::option::of(job.clone()), any::<u64>())
                .prop_map(move |(job, seq)| Message::Command(k2.seal_command(1, seq, Command::Stop { job }))),
            (job.clone(), worker.clone(), shard.clone(), any::<u64>(), any::<u128>(), any::<f64>()).prop_map(
                move |(job, worker, shard, epoch, watermark, rate)| {
                    let shards = vec![ShardProgress {
                        shard,
                        epoch,
                        from: watermark / 2,
                        watermark,
                        found: vec![epoch],
                        shares: vec![epoch, 1, 2],
                    }];
                    let rate = if rate.is_nan() { 0.0 } else { rate };
                    let best = Some(Best { nonce: epoch, leading_zeros: 3 });
                    let event = Event { job, worker, body: EventBody::Heartbeat { shards, rate, best } };
                    Message::Event(k3.seal_event(epoch, event))
                }
            ),
            (job, worker, shard, any::<u64>(), any::<u64>()).prop_map(
                |(job, worker, shard, epoch, nonce)| {
                    let key = JobSecret::from_bytes([4; 32]).worker_key(job, &worker);
                    let event = Event { job, worker, body: EventBody::Found { shard, epoch, nonce } };
                    Message::Event(key.seal_event(nonce, event))
                }
            ),
        ]
    }

    proptest! {
        #[test]
        fn round_trip(msg in arb_message()) {
            let bytes = encode(&msg).expect("fits");
            prop_assert_eq!(decode(&bytes).expect("decodes"), msg.clone());
            let text = encode_text(&msg).expect("fits");
            prop_assert_eq!(decode_text(&text).expect("decodes"), msg);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let _ = decode(&bytes);
            let mut enveloped = MAGIC.to_vec();
            enveloped.extend_from_slice(&VERSION.to_be_bytes());
            enveloped.extend_from_slice(&bytes);
            let _ = decode(&enveloped);
        }

        #[test]
        fn arbitrary_text_never_panics(text in ".{0,400}") {
            let _ = decode_text(&text);
        }
    }

    #[test]
    fn typed_errors() {
        assert_eq!(decode(b"NC"), Err(DecodeError::Truncated));
        assert_eq!(decode(b"XX\0\x01abc"), Err(DecodeError::BadMagic));
        assert_eq!(decode(b"NC\0\x09abc"), Err(DecodeError::UnsupportedVersion(9)));
        assert_eq!(decode(b"NC\0\x01abc"), Err(DecodeError::UnsupportedVersion(1)), "unsealed v1 refused");
        assert!(matches!(decode(b"NC\0\x02\xff\xff"), Err(DecodeError::Malformed(_))));
        assert_eq!(decode_text("not base64!"), Err(DecodeError::BadBase64));
        assert!(matches!(decode(&vec![0; MAX_MESSAGE_BYTES + 1]), Err(DecodeError::TooLarge(_))));
    }

    #[test]
    fn invalid_puzzle_on_the_wire_is_refused() {
        // A header of the wrong length must not sneak past Puzzle::new through the codec.
        let good =
            Puzzle::new(Layout::Header { header: vec![0; 80] }, Target::LeadingZeros(1)).expect("valid");
        let key = JobSecret::from_bytes([1; 32]).worker_key(JobId(1), &WorkerId("w".into()));
        let msg = Message::Command(key.seal_command(
            1,
            1,
            Command::Assign {
                job: JobId(1),
                shard: ShardId(1),
                epoch: 1,
                puzzle: good,
                range: NonceRange::new(0, 1),
                mode: Mode::First,
                share_bits: 1,
            },
        ));
        let mut bytes = encode(&msg).expect("fits");
        // The header's varint length (80) appears once; make it 79 and drop a byte.
        let pos = bytes.iter().position(|&b| b == 80).expect("length byte");
        bytes[pos] = 79;
        bytes.remove(pos + 1);
        assert!(matches!(decode(&bytes), Err(DecodeError::Malformed(_))));
    }

    #[test]
    fn oversized_messages_are_refused() {
        let puzzle = Puzzle::append(vec![7; crate::pow::MAX_BLOCK_BYTES], Encoding::Be32, 1).expect("valid");
        let key = JobSecret::from_bytes([1; 32]).worker_key(JobId(1), &WorkerId("w".into()));
        let segment = ShardProgress {
            shard: ShardId(1),
            epoch: 1,
            from: 0,
            watermark: u128::MAX,
            found: vec![],
            shares: vec![],
        };
        let hb = Event {
            job: JobId(1),
            worker: WorkerId("w".into()),
            body: EventBody::Heartbeat { shards: vec![segment; 5000], rate: 1.0, best: None },
        };
        assert!(encode(&Message::Event(key.seal_event(1, hb))).is_err());
        // The most shares a segment may carry, with the most found nonces, fits easily.
        let full = ShardProgress {
            shard: ShardId(1),
            epoch: 1,
            from: 0,
            watermark: u128::MAX,
            found: vec![u64::MAX; 100],
            shares: vec![u64::MAX; MAX_SHARES_PER_SEGMENT],
        };
        let hb = Event {
            job: JobId(1),
            worker: WorkerId("w".into()),
            body: EventBody::Heartbeat { shards: vec![full; 4], rate: 1.0, best: None },
        };
        assert!(encode(&Message::Event(key.seal_event(1, hb))).is_ok());
        let assign = Command::Assign {
            job: JobId(1),
            shard: ShardId(1),
            epoch: 1,
            puzzle,
            range: NonceRange::new(0, 1),
            mode: Mode::First,
            share_bits: 1,
        };
        assert!(encode(&Message::Command(key.seal_command(1, 1, assign))).is_ok());
    }
}

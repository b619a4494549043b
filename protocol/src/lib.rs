//! The shared language of nonce-cloud: the golden-nonce puzzle ([`pow`]), the messages that
//! coordinator and workers exchange ([`message`]), how they are sealed ([`auth`]), and their
//! wire form ([`codec`]).
//!
//! Everything a worker reports is only a claim; [`pow::verify`] is the single source of truth
//! the coordinator checks every claim against.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod auth;
pub mod codec;
pub mod message;
pub mod pow;
pub mod worker;

pub use message::*;
pub use pow::{verify, Encoding, Layout, Mode, NonceRange, Puzzle, PuzzleError, Target, Verdict};

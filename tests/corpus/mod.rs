//! The adversarial input corpus (issue 7): hostile inputs for the three functions, kept as data
//! in `tests/corpus/*.json` so they can be read and counted, and the checks every refusal must
//! pass. `tests/adversarial_corpus.rs` runs them through the real binaries.
#![allow(dead_code)] // each test file uses its own subset

pub mod cases;
pub mod snapshot;

//! Support for `mutated_corpus.rs`: real inputs, their mutations, and the rules every
//! decode must keep.

// Each test binary and fuzz target uses a different part of these modules.
#![allow(dead_code)]

pub mod check;
pub mod mutate;
pub mod samples;

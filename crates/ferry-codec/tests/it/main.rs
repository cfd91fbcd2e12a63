//! ferry-codec's integration tests, one binary: each module is what used to be a test file
//! of its own (`cargo test -p ferry-codec --test it encode_loads::` runs one of them).

mod mutation;

mod decode_real_servers;
mod encode_loads;
mod mutated_corpus;

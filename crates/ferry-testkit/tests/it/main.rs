//! ferry-testkit's integration tests, one binary: each module is what used to be a test
//! file of its own (`cargo test -p ferry-testkit --test it round_trip::` runs one of them).

mod cluster;
mod round_trip;
mod servers;
mod workload;

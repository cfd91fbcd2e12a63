//! Shared by the test modules: `migrate` runs the built ferry as a child process and
//! compares servers, `cutover` and `relay` build on it, and `observer` reads what a primary
//! propagates.

pub mod cutover;
pub mod migrate;
pub mod observer;
pub mod relay;

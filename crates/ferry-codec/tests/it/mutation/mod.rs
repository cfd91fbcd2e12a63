//! Support for `mutated_corpus`: real inputs, their mutations, and the rules every decode
//! must keep (`check` is also compiled into the fuzz targets).

pub mod check;
pub mod mutate;
pub mod samples;

//! One module per subcommand.

pub mod assess;
pub mod convert;
pub mod cutover;
pub mod inspect;
pub mod migrate;
pub mod relay;
pub mod rollback;
pub mod verify;

//! One module per subcommand.

pub mod assess;
pub mod convert;
pub mod inspect;
pub mod migrate;
pub mod relay;
pub mod verify;

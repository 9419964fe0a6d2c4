//! The vidswarm node: the content-addressed fragment store, and the code behind the `vidswarm` CLI.
//!
//! - [`store`]: the data dir; the only code that touches it.
//! - [`cli`]: argument parsing and the subcommands.

pub mod cli;
pub mod store;

//! The `vidswarm` binary: parse arguments, run, report errors to people.

use std::process::ExitCode;

fn main() -> ExitCode {
    match vidswarm_node::cli::run() {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

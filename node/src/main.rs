//! The `vidswarm` binary: parse arguments, run, report errors to people.

use std::process::ExitCode;

fn main() -> ExitCode {
    one_malloc_arena();
    match vidswarm_node::cli::run() {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// glibc gives threads that allocate at once their own malloc arenas (up to 8 per core), and
/// each arena keeps what was freed in it: with the runtime's workers and blocking threads all
/// passing chunk buffers around, that is several MiB of idle memory per process. One arena
/// measured the same speed and about 7 MiB less peak RSS per node (`docs/performance.md`).
/// `MALLOC_ARENA_MAX` in the environment still wins.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn one_malloc_arena() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets an allocator tunable, and no other thread exists yet.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 1);
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn one_malloc_arena() {}

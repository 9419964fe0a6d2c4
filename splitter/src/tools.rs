//! Where ffmpeg and ffprobe are, and running them so that a failure carries their own words.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::ToolError;

/// How much of a tool's stderr an error keeps: the end, where ffmpeg says what went wrong.
const STDERR_TAIL_BYTES: usize = 2000;

/// The ffmpeg and ffprobe binaries to run.
#[derive(Debug, Clone)]
pub struct Tools {
    pub ffmpeg: PathBuf,
    pub ffprobe: PathBuf,
}

impl Default for Tools {
    fn default() -> Self {
        Self::from_env()
    }
}

impl Tools {
    /// `VIDSWARM_FFMPEG` / `VIDSWARM_FFPROBE` when set, else `ffmpeg` / `ffprobe` from `PATH`.
    pub fn from_env() -> Self {
        let pick = |var: &str, default: &str| {
            std::env::var_os(var)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(default))
        };
        Self {
            ffmpeg: pick("VIDSWARM_FFMPEG", "ffmpeg"),
            ffprobe: pick("VIDSWARM_FFPROBE", "ffprobe"),
        }
    }

    /// Runs ffprobe with `args`, returning its stdout.
    pub fn ffprobe<I, S>(&self, args: I) -> Result<Vec<u8>, ToolError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        run("ffprobe", "VIDSWARM_FFPROBE", &self.ffprobe, args)
    }

    /// Runs ffmpeg with `args` (quiet, non-interactive), returning its stdout.
    pub fn ffmpeg<I, S>(&self, args: I) -> Result<Vec<u8>, ToolError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut all: Vec<std::ffi::OsString> = ["-hide_banner", "-nostdin", "-v", "error", "-y"]
            .iter()
            .map(Into::into)
            .collect();
        all.extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        run("ffmpeg", "VIDSWARM_FFMPEG", &self.ffmpeg, all)
    }

    /// Decodes every stream of `path` and returns what ffmpeg complained about (empty: clean).
    pub fn decode_errors(&self, path: &std::path::Path) -> Result<String, ToolError> {
        let out = tool_command(&self.ffmpeg)
            .args(["-hide_banner", "-nostdin", "-v", "error", "-i"])
            .arg(file_url(path))
            .args(["-f", "null", "-"])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| spawn_error("ffmpeg", "VIDSWARM_FFMPEG", &self.ffmpeg, e))?;
        let mut text = String::from_utf8_lossy(&out.stderr).into_owned();
        if !out.status.success() && text.is_empty() {
            text = format!("ffmpeg exited with {}", out.status);
        }
        Ok(text)
    }
}

/// `path` as ffmpeg's `file:` URL of its absolute form, so that no path is ever read as an option
/// (`-x.mp4`), a protocol (`concat:a|b`, `pipe:`) or anything but the file it names. ffmpeg's file
/// protocol takes the rest of the URL as the path, byte for byte.
pub fn file_url(path: &Path) -> OsString {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    let mut url = OsString::from("file:");
    url.push(absolute.as_os_str());
    url
}

/// An output pattern for the segment muxer: `dir/name` as a `file:` URL, with every `%` of `dir`
/// doubled so that only `name`'s own `%d` is a pattern.
pub fn segment_pattern(dir: &Path, name: &str) -> OsString {
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    let dir = file_url(dir);
    let mut bytes = Vec::with_capacity(dir.len() + name.len() + 8);
    for &b in dir.as_bytes() {
        bytes.push(b);
        if b == b'%' {
            bytes.push(b'%');
        }
    }
    bytes.push(b'/');
    bytes.extend_from_slice(name.as_bytes());
    OsString::from_vec(bytes)
}

fn run<I, S>(
    tool: &'static str,
    env: &'static str,
    path: &Path,
    args: I,
) -> Result<Vec<u8>, ToolError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = tool_command(path);
    cmd.args(args).stdin(Stdio::null());
    tracing::debug!(?cmd, "running {tool}");
    let out = cmd.output().map_err(|e| spawn_error(tool, env, path, e))?;
    if !out.status.success() {
        return Err(ToolError::Failed {
            tool,
            status: out.status.to_string(),
            stderr: stderr_tail(&out.stderr),
        });
    }
    Ok(out.stdout)
}

/// A command for a tool that dies with the process that started it: a split killed with
/// SIGKILL must not leave an ffmpeg writing into its staging dir while the next split clears it.
fn tool_command(path: &Path) -> Command {
    #[allow(unused_mut)]
    let mut cmd = Command::new(path);
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        let parent = std::process::id();
        // SAFETY: the closure runs in the forked child before exec and only calls prctl and
        // getppid, both async-signal-safe; it allocates nothing and takes no lock.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The parent may have died between fork and prctl: then nobody waits for us.
                if libc::getppid() as u32 != parent {
                    return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
                }
                Ok(())
            });
        }
    }
    cmd
}

fn spawn_error(tool: &'static str, env: &'static str, path: &Path, e: std::io::Error) -> ToolError {
    if e.kind() == std::io::ErrorKind::NotFound {
        ToolError::Missing {
            tool,
            path: path.to_owned(),
            env,
        }
    } else {
        ToolError::Spawn { tool, source: e }
    }
}

fn stderr_tail(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let text = text.trim();
    if text.len() <= STDERR_TAIL_BYTES {
        return text.to_owned();
    }
    let mut start = text.len() - STDERR_TAIL_BYTES;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("...{}", &text[start..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_become_file_urls_of_absolute_paths() {
        let url = file_url(Path::new("-x.mp4"));
        let url = url.to_string_lossy();
        assert!(url.starts_with("file:/"), "{url}");
        assert!(url.ends_with("/-x.mp4"), "{url}");
        assert_eq!(file_url(Path::new("/a/concat:b|c")), "file:/a/concat:b|c");
    }

    #[test]
    fn segment_patterns_escape_the_dir_but_not_the_name() {
        assert_eq!(
            segment_pattern(Path::new("/a/100%/x"), "fragment_%d.mp4"),
            "file:/a/100%%/x/fragment_%d.mp4"
        );
    }
}

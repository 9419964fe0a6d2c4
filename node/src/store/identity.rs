//! The node's identity key, kept in the data dir so a restarted node keeps its peer id (and the
//! provider records and announcements that name it stay true).

use std::fs;
use std::io::ErrorKind;

use super::error::io_err;
use super::write::TempFile;
use super::{Store, StoreError};

const IDENTITY: &str = "identity.key";
/// An encoded key is well under this; anything larger is not ours.
const MAX_IDENTITY_BYTES: u64 = 4096;

impl Store {
    /// The bytes in `ROOT/identity.key`, or, when there are none yet, `generate()`'s, written
    /// durably first. The store does not interpret them.
    pub fn load_or_create_identity(
        &self,
        generate: impl FnOnce() -> Vec<u8>,
    ) -> Result<Vec<u8>, StoreError> {
        let path = self.root().join(IDENTITY);
        match fs::metadata(&path) {
            Ok(meta) if meta.len() > MAX_IDENTITY_BYTES => Err(StoreError::TooLarge {
                path,
                limit: MAX_IDENTITY_BYTES,
            }),
            Ok(meta) => {
                owner_only(&path, &meta)?;
                fs::read(&path).map_err(io_err("read", &path))
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {
                let bytes = generate();
                let mut tmp = TempFile::create(&self.tmp_dir(), "identity-")?;
                // Readable by the owner alone before the key is in it (as ssh and Kubo keep
                // theirs): whoever reads it can act as this node.
                #[cfg(unix)]
                tmp.file
                    .set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))
                    .map_err(io_err("restrict", &tmp.path))?;
                tmp.write_all(&bytes)?;
                tmp.persist(&path)?;
                Ok(bytes)
            }
            Err(e) => Err(io_err("read", &path)(e)),
        }
    }
}

/// An identity key others may read (one written before keys were made 0600, or copied in) is
/// made owner-only, and said so.
#[cfg(unix)]
fn owner_only(path: &std::path::Path, meta: &fs::Metadata) -> Result<(), StoreError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode();
    if mode & 0o077 != 0 {
        tracing::warn!(path = %path.display(), mode = format!("{:o}", mode & 0o777), "the identity key was readable by others; now owner-only (0600)");
        fs::set_permissions(path, fs::Permissions::from_mode(0o600))
            .map_err(io_err("restrict", path))?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn owner_only(_: &std::path::Path, _: &fs::Metadata) -> Result<(), StoreError> {
    Ok(())
}

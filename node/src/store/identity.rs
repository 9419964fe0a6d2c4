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
            Ok(_) => fs::read(&path).map_err(io_err("read", &path)),
            Err(e) if e.kind() == ErrorKind::NotFound => {
                let bytes = generate();
                let mut tmp = TempFile::create(&self.tmp_dir(), "identity-")?;
                tmp.write_all(&bytes)?;
                tmp.persist(&path)?;
                Ok(bytes)
            }
            Err(e) => Err(io_err("read", &path)(e)),
        }
    }
}

//! Request bodies on their way into the store. The bytes go through a bounded channel to a
//! blocking writer that hashes them into a temp file, so an upload is never held whole in memory
//! and the async runtime never waits on the disk. Nothing is stored until the handler persists
//! the verified result; a body that fails, ends early or passes the limit leaves nothing behind.

use bytes::Bytes;
use futures::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use vidswarm_proto::FragmentInfo;

use super::ApiError;
use crate::store::{Store, StoreError, Verified};

pub(super) struct Incoming {
    tx: mpsc::Sender<Bytes>,
    writer: JoinHandle<Result<Option<Verified>, StoreError>>,
}

impl Incoming {
    /// Starts a writer for at most `limit` bytes, checked against `expected` at the end if given.
    pub fn start(store: &Store, limit: u64, expected: Option<FragmentInfo>, chunk: u32) -> Self {
        let (tx, mut rx) = mpsc::channel::<Bytes>(8);
        let (store, pool) = (store.clone(), store.clone());
        let writer = pool.spawn_blocking(move || {
            let mut upload = store.begin_upload(chunk, limit)?;
            while let Some(bytes) = rx.blocking_recv() {
                // An empty message is the end of the body: anything else keeps coming.
                if bytes.is_empty() {
                    return upload.finish(expected.as_ref()).map(Some);
                }
                upload.write(&bytes)?;
            }
            // The sender went away without the end: the upload is abandoned (and deleted).
            Ok(None)
        });
        Self { tx, writer }
    }

    /// Feeds every chunk of `body` to the writer. On any failure the upload is abandoned and the
    /// error says why: the body's own, or the writer's (e.g. past the limit).
    pub async fn feed<E: Into<ApiError>>(
        self,
        mut body: impl Stream<Item = Result<Bytes, E>> + Unpin,
    ) -> Result<Self, ApiError> {
        while let Some(item) = body.next().await {
            match item {
                Ok(bytes) if bytes.is_empty() => {}
                Ok(bytes) => {
                    if self.tx.send(bytes).await.is_err() {
                        // The writer stopped early; its result says why.
                        return Err(self.end(false).await.err().unwrap_or_else(|| {
                            ApiError::internal("the upload writer stopped unexpectedly")
                        }));
                    }
                }
                Err(e) => {
                    let _ = self.end(false).await;
                    return Err(e.into());
                }
            }
        }
        Ok(self)
    }

    /// The body is complete: verify it. Nothing is stored until the caller persists the result.
    pub async fn finish(self) -> Result<Verified, ApiError> {
        self.end(true)
            .await?
            .ok_or_else(|| ApiError::internal("the upload writer stopped unexpectedly"))
    }

    /// Abandons the upload and waits until its temp file is gone.
    pub async fn abort(self) {
        let _ = self.end(false).await;
    }

    async fn end(self, complete: bool) -> Result<Option<Verified>, ApiError> {
        if complete {
            let _ = self.tx.send(Bytes::new()).await;
        }
        drop(self.tx);
        let written = self
            .writer
            .await
            .map_err(|e| StoreError::Worker(e.to_string()))?;
        Ok(written?)
    }
}

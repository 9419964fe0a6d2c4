//! Fetches that a crash or a stop cut short, taken up again when the node starts.

use super::Service;

impl Service {
    /// Starts a fetch of each pinned video held here that has a fragment at rest in the store
    /// (`store/resume.rs`: its fetch stopped before the end). It fetches all the video lacks,
    /// as its pin asks, going on from the verified chunks. Returns how many were started.
    pub fn resume_interrupted(&self) -> usize {
        let mut started = 0;
        for m in self.store.manifests() {
            let interrupted = m.fragments.iter().any(|f| {
                self.store
                    .resumable(&f.blake3, f.size, m.chunk_size)
                    .is_some()
            });
            if !interrupted || !self.store.is_pinned(&m.video_id) {
                continue;
            }
            match self.start_fetch(m.video_id, None) {
                Ok(()) => {
                    tracing::info!(video = %m.video_id.short(), "resuming an interrupted fetch");
                    started += 1;
                }
                Err(e) => tracing::debug!(video = %m.video_id.short(), error = %e, "not resumed"),
            }
        }
        started
    }
}

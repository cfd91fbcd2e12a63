//! Reading every key: the source's (and on a rescan the target's, for keys deleted unseen)
//! with SCAN, paced, and the function libraries.

use super::{with_db, Copier, SessionEnd, Ticks};
use crate::commands::migrate::scan::apply::Record;
use crate::commands::migrate::scan::conn::SourceConn;
use crate::commands::migrate::scan::fetch;
use crate::commands::migrate::scan::scanner::{self, Pace, Walk};
use crate::observe::Phase;
use std::sync::atomic::Ordering;
use std::time::Instant;
use tokio::sync::mpsc;

impl Copier<'_> {
    /// Reads every key of the source (and, on a rescan of a target ferry owns, every key
    /// of the target, so that keys deleted unseen are deleted there too).
    pub(super) async fn scan_all(
        &mut self,
        conn: &mut SourceConn,
        records: &mpsc::Sender<Record>,
        rescan: bool,
    ) -> Result<(), SessionEnd> {
        let job = self.job;
        if !std::mem::take(&mut self.continuing) {
            self.position = Default::default();
            self.restart_checkpoints();
        }
        let started = Instant::now();
        let written_before = self.counters.keys.load(Ordering::Relaxed);
        let near_expiry_before = self.counters.near_expiry.load(Ordering::Relaxed);
        let read_before = self.keys_read;
        job.events.start_full_sync(None);
        let mut pace = Pace::new(job.keys_per_sec);
        let mut ticks = Ticks::new(written_before);
        if rescan && job.follow {
            if job.owns_target {
                // A value read before a flush or swap and still on its way would land
                // behind the target's SCAN, unseen by it: everything read so far goes in
                // first.
                self.settle(records).await?;
                let mut target = SourceConn::connect(job.target_url, job.connect_timeout)
                    .await
                    .map_err(|e| SessionEnd::Fatal(job.target_error(e)))?;
                let dbs = scanner::databases(&mut target)
                    .await
                    .map_err(|e| SessionEnd::Fatal(job.target_error(e)))?;
                let mut walk = Walk::new(dbs);
                while !walk.done() {
                    let (db, keys) = walk
                        .step(&mut target)
                        .await
                        .map_err(|e| SessionEnd::Fatal(job.target_error(e)))?;
                    pace.take(keys.len() as u64).await;
                    // Read again from the source database that lands here, if any.
                    if let Some(source_db) = job.scope.source_db(db) {
                        self.copy(conn, records, with_db(source_db, keys)).await?;
                    }
                    self.copy_dirty(conn, records).await?;
                    ticks.scan(self, false);
                }
            } else {
                job.events.line(
                    "--allow-non-empty: keys deleted on the source while ferry could not follow stay on the target",
                );
            }
        }
        self.copy_functions(conn, records).await?;
        let dbs = scanner::databases(conn).await.map_err(SessionEnd::Lost)?;
        // A resumed run's position is what the checkpoint held; a new scan's is empty.
        let mut walk = Walk::resume(dbs, &self.position.done(), self.position.at());
        while !walk.done() {
            let (db, keys) = walk.step(conn).await.map_err(SessionEnd::Lost)?;
            pace.take(keys.len() as u64).await;
            self.copy(conn, records, with_db(db, keys)).await?;
            self.copy_dirty(conn, records).await?;
            self.position.passed(db, walk.cursor_in(db));
            self.checkpoint(conn, records).await?;
            ticks.scan(self, false);
        }
        ticks.scan(self, true);
        let read = self.keys_read - read_before;
        let seconds = started.elapsed().as_secs_f64();
        job.events.line(format!(
            "scan done: {read} keys read in {seconds:.1} s ({:.0} keys/s), {} at or near expiry kept until the source's expiry is seen",
            read as f64 / seconds.max(1e-3),
            self.counters.near_expiry.load(Ordering::Relaxed) - near_expiry_before,
        ));
        job.events.phase(Phase::Streaming, None);
        Ok(())
    }

    /// Function libraries, read once per scan: changing them notifies nothing.
    async fn copy_functions(
        &mut self,
        conn: &mut SourceConn,
        records: &mpsc::Sender<Record>,
    ) -> Result<(), SessionEnd> {
        let source = self.job.source;
        if source.product != "valkey" && source.series().0 < 7 {
            return Ok(());
        }
        match fetch::function_libraries(conn)
            .await
            .map_err(SessionEnd::Lost)?
        {
            fetch::FunctionLibraries::Listed(libraries) => {
                for code in libraries {
                    records
                        .send(Record::Function(code))
                        .await
                        .map_err(|_| SessionEnd::ApplyStopped)?;
                }
            }
            fetch::FunctionLibraries::Refused(refusal) => self.job.events.line(format!(
                "function libraries are not copied: the source refused to list them ({refusal})"
            )),
        }
        Ok(())
    }
}

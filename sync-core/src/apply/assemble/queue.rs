//! The queue between the applier and one shard: the [`Job`]s it sends, in
//! order, and the byte [`Budget`] that keeps a slow writer from piling up
//! shipped chunks in memory.
//!
//! It never touches files; the shard serves the jobs.

use std::sync::{Arc, Condvar, Mutex};

use crossbeam_channel as chan;

use crate::chunk::ChunkRef;
use crate::plan::StreamChunk;

/// What a queued job costs besides its chunk's bytes.
const JOB_COST: u64 = 256;

/// What the applier asks of a shard, in order.
pub(in crate::apply) enum Job {
    /// Write the shard's files that need nothing from the sender.
    Start,
    /// A shipped chunk, checked against its hash here unless `verified`.
    /// `count` is set on exactly one of the shards that need it, so its
    /// bytes are counted once.
    Chunk {
        idx: u32,
        expect: StreamChunk,
        data: Arc<Vec<u8>>,
        count: bool,
        verified: bool,
    },
    /// The sender could not supply stream chunk `idx`.
    Unavailable(u32),
    /// More places that need stream chunk `idx` (local copies that failed).
    Expect { idx: u32, dests: Vec<(u32, u64)> },
    /// Reply with the local chunks that failed their check since the last
    /// flush (file, chunk); also proves every earlier job is done.
    Flush(chan::Sender<Vec<(u32, ChunkRef)>>),
    /// Give up on files still incomplete and hand back the results.
    Finish,
    /// Stop after a fatal error; with `keep_partial`, keep journaled temp
    /// files for the next run.
    Abort { keep_partial: bool },
}

impl Job {
    /// What the job counts against its writer's queue budget.
    pub fn cost(&self) -> u64 {
        match self {
            Job::Chunk { data, .. } => data.len() as u64 + JOB_COST,
            _ => JOB_COST,
        }
    }
}

/// Bytes queued for one writer: the applier waits while the writer is
/// over its budget (but never when its queue is empty, so one chunk larger
/// than the budget still goes through).
pub(in crate::apply) struct Budget {
    limit: u64,
    /// Bytes queued, and whether the writer is gone (then nobody waits).
    used: Mutex<(u64, bool)>,
    freed: Condvar,
}

impl Budget {
    pub fn new(limit: u64) -> Budget {
        Budget {
            limit,
            used: Mutex::new((0, false)),
            freed: Condvar::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (u64, bool)> {
        self.used.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn acquire(&self, n: u64) {
        let mut used = self.lock();
        while !used.1 && used.0 > 0 && used.0 + n > self.limit {
            used = self.freed.wait(used).unwrap_or_else(|p| p.into_inner());
        }
        used.0 += n;
    }

    pub fn release(&self, n: u64) {
        let mut used = self.lock();
        used.0 = used.0.saturating_sub(n);
        self.freed.notify_one();
    }

    /// The writer stopped (or died): never make the applier wait again.
    pub(super) fn close(&self) {
        self.lock().1 = true;
        self.freed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Runs `acquire(n)` on another thread; the receiver hears when it
    /// returned.
    fn acquire_in_thread(budget: &Arc<Budget>, n: u64) -> chan::Receiver<()> {
        let (tx, rx) = chan::bounded(1);
        let budget = Arc::clone(budget);
        std::thread::spawn(move || {
            budget.acquire(n);
            let _ = tx.send(());
        });
        rx
    }

    #[test]
    fn an_empty_queue_takes_a_job_over_the_limit() {
        let budget = Arc::new(Budget::new(100));
        budget.acquire(1_000);
        assert_eq!(budget.lock().0, 1_000);
    }

    #[test]
    fn the_applier_waits_while_over_budget_until_a_release() {
        let budget = Arc::new(Budget::new(100));
        budget.acquire(60);
        let done = acquire_in_thread(&budget, 60);
        assert!(
            done.recv_timeout(Duration::from_millis(100)).is_err(),
            "120 bytes queued against a budget of 100"
        );
        budget.release(60);
        done.recv_timeout(Duration::from_secs(5))
            .expect("released, yet still waiting");
        assert_eq!(budget.lock().0, 60);
    }

    #[test]
    fn a_closed_budget_never_waits() {
        let budget = Arc::new(Budget::new(100));
        budget.acquire(100);
        let done = acquire_in_thread(&budget, 1);
        assert!(done.recv_timeout(Duration::from_millis(100)).is_err());
        budget.close();
        done.recv_timeout(Duration::from_secs(5))
            .expect("closed, yet still waiting");
        budget.acquire(1_000);
        assert_eq!(budget.lock().0, 1_101);
    }

    #[test]
    fn a_chunk_costs_its_bytes_and_the_job() {
        let chunk = Job::Chunk {
            idx: 0,
            expect: StreamChunk {
                hash: crate::chunk::Hash::of(b"abc"),
                length: 3,
            },
            data: Arc::new(b"abc".to_vec()),
            count: true,
            verified: false,
        };
        assert_eq!(chunk.cost(), 3 + JOB_COST);
        assert_eq!(Job::Start.cost(), JOB_COST);
    }
}

//! Which keys were written while a snapshot was taken: client-side-caching tracking in
//! broadcasting mode (`CLIENT TRACKING on BCAST`, RESP3) on the node the sample is read from,
//! started before the snapshot is asked for. The node sends an invalidation for every key
//! written from then on — by a client, or, on a replica, by its replication stream — so a
//! sampled key that got none was not written between its read and the save's fork, whichever
//! came first, and its value is the saved one. Only keys the sample can hold (their hash
//! under the cut-off) are kept, so a busy node costs no memory.

use super::manifest::key_hash;
use crate::domain::Endpoint;
use crate::valkey::connect::{Connector, NodeConnection};
use redis::{PushInfo, PushKind, Value};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};

/// What the node said was written since tracking began.
#[derive(Debug, Default)]
struct Seen {
    keys: HashSet<Vec<u8>>,
    /// A FLUSHALL/FLUSHDB (an invalidation naming no key): every key may have changed.
    everything: bool,
    /// The connection dropped: from then on nothing is known.
    lost: bool,
}

/// Tracking on one node.
pub struct Tracker {
    conn: NodeConnection,
    pushes: mpsc::UnboundedSender<PushInfo>,
    barrier: Arc<Mutex<Option<oneshot::Sender<()>>>>,
    seen: Arc<Mutex<Seen>>,
}

/// The marker a [`Tracker`] sends itself behind the node's invalidations.
const BARRIER: &str = "cachedeck-barrier";

impl Tracker {
    /// Opens a RESP3 connection to `endpoint` and turns broadcasting tracking on; keys whose
    /// hash is above `cutoff` are not kept.
    pub async fn start(
        connector: &Connector,
        endpoint: &Endpoint,
        cutoff: u64,
    ) -> Result<Tracker, String> {
        let (tx, mut rx) = mpsc::unbounded_channel::<PushInfo>();
        let mut conn = connector
            .with_pushes(tx.clone())
            .connect(endpoint)
            .await
            .map_err(|e| e.to_string())?;
        conn.query::<redis::Value>(redis::cmd("CLIENT").arg("TRACKING").arg("on").arg("BCAST"))
            .await
            .map_err(|e| e.to_string())?;
        let seen = Arc::new(Mutex::new(Seen::default()));
        let barrier: Arc<Mutex<Option<oneshot::Sender<()>>>> = Arc::new(Mutex::new(None));
        let (seen_in, barrier_in) = (seen.clone(), barrier.clone());
        tokio::spawn(async move {
            while let Some(push) = rx.recv().await {
                match push.kind {
                    PushKind::Invalidate => {
                        let Ok(mut seen) = seen_in.lock() else {
                            return;
                        };
                        match push.data.first() {
                            Some(Value::Array(keys)) => {
                                for k in keys {
                                    if let Value::BulkString(k) = k
                                        && key_hash(k) <= cutoff
                                    {
                                        seen.keys.insert(k.clone());
                                    }
                                }
                            }
                            _ => seen.everything = true,
                        }
                    }
                    PushKind::Disconnection => {
                        if let Ok(mut seen) = seen_in.lock() {
                            seen.lost = true;
                        }
                    }
                    PushKind::Other(ref what) if what == BARRIER => {
                        if let Some(done) = barrier_in.lock().ok().and_then(|mut b| b.take()) {
                            let _ = done.send(());
                        }
                    }
                    _ => {}
                }
            }
        });
        Ok(Tracker {
            conn,
            pushes: tx,
            barrier,
            seen,
        })
    }

    /// The keys written since tracking began, up to now: `None` when that is not known (the
    /// tracking connection dropped, or the keyspace was flushed — every key may differ).
    pub async fn written(&mut self) -> Result<Option<HashSet<Vec<u8>>>, String> {
        // Every invalidation the node sent before answering this PING is in the channel
        // before the answer is handed back; the barrier behind them tells when all are read.
        self.conn
            .query::<redis::Value>(&redis::cmd("PING"))
            .await
            .map_err(|e| e.to_string())?;
        let (done, wait) = oneshot::channel();
        if let Ok(mut b) = self.barrier.lock() {
            *b = Some(done);
        }
        self.pushes
            .send(PushInfo {
                kind: PushKind::Other(BARRIER.into()),
                data: Vec::new(),
            })
            .map_err(|_| "the tracking reader stopped".to_string())?;
        tokio::time::timeout(std::time::Duration::from_secs(10), wait)
            .await
            .map_err(|_| "the tracking reader did not catch up within 10 s".to_string())?
            .map_err(|_| "the tracking reader stopped".to_string())?;
        let seen = self
            .seen
            .lock()
            .map_err(|_| "the tracking reader failed".to_string())?;
        Ok((!seen.everything && !seen.lost).then(|| seen.keys.clone()))
    }
}

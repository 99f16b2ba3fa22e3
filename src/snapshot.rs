//! Snapshots with their contents on record: the manifest of a snapshot (per shard and
//! database key counts, engine, and a deterministic sample of keys with type, TTL state and
//! a digest of the value), its store on disk, the check of a restored cache against it, and
//! the RDB download over the replication protocol.
//!
//! Data read from caches here is untrusted: key names are kept as hex in the manifest and
//! escaped (`crate::escape`) wherever they are shown.

pub mod manifest;
pub mod rdb;
pub mod store;
pub mod tracking;
pub mod verify;

pub use manifest::{Manifest, SampleKey, ShardCounts};

//! What an audit would cost on ElastiCache Serverless, before it starts: serverless bills
//! ECPUs, one per KB transferred by a simple command (at least one per command). A pure
//! function of DBSIZE, sampled key sizes and a price table.

use serde::{Deserialize, Serialize};

/// Prices and billing rules (defaults: Valkey serverless, us-east-1, 2025).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PriceTable {
    /// Bytes per ECPU for data transferred (1 KB).
    pub bytes_per_ecpu: f64,
    /// Dollars per million ECPUs.
    pub usd_per_million_ecpu: f64,
}

impl Default for PriceTable {
    fn default() -> Self {
        PriceTable {
            bytes_per_ecpu: 1024.0,
            usd_per_million_ecpu: 0.0023,
        }
    }
}

/// The inputs measured before starting.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CostInputs {
    pub dbsize: u64,
    /// Mean key-name length from a sample (RANDOMKEY or a first SCAN batch).
    pub mean_key_bytes: f64,
    /// SCAN COUNT.
    pub count: u32,
    /// Whether MEMORY USAGE is sent per key.
    pub memory: bool,
}

/// The estimate shown before asking to confirm.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CostEstimate {
    pub commands: u64,
    pub ecpus: u64,
    pub usd: f64,
}

/// ECPUs of one command moving `bytes` (request + reply).
fn ecpus(bytes: f64, p: &PriceTable) -> f64 {
    (bytes / p.bytes_per_ecpu).ceil().max(1.0)
}

/// Estimates the audit's ECPUs and dollars.
pub fn estimate(i: CostInputs, p: &PriceTable) -> CostEstimate {
    let keys = i.dbsize as f64;
    let batches = (keys / i.count.max(1) as f64).ceil().max(1.0);
    // Each key is named in the SCAN reply and in every per-key command (+ ~16 bytes framing).
    let key = i.mean_key_bytes.max(1.0) + 16.0;
    let per_key_cmds = if i.memory { 3.0 } else { 2.0 };
    let scan_bytes = keys * key / batches;
    let scan = batches * ecpus(scan_bytes, p);
    let per_key = keys * per_key_cmds * ecpus(key + 16.0, p);
    let dbsize = batches; // DBSIZE rides in every batch
    let total = scan + per_key + dbsize;
    CostEstimate {
        commands: (batches * 2.0 + keys * per_key_cmds) as u64,
        ecpus: total as u64,
        usd: total / 1e6 * p.usd_per_million_ecpu,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn million_small_keys() {
        let e = estimate(
            CostInputs {
                dbsize: 1_000_000,
                mean_key_bytes: 20.0,
                count: 1000,
                memory: false,
            },
            &PriceTable::default(),
        );
        // 2M per-key commands at 1 ECPU, 1000 SCANs of ~36 KB (36 ECPU each), 1000 DBSIZE.
        assert_eq!(e.ecpus, 2_000_000 + 1000 * 36 + 1000);
        assert_eq!(e.commands, 2_002_000);
        assert!((e.usd - 2_037_000.0 / 1e6 * 0.0023).abs() < 1e-9);
    }

    #[test]
    fn big_names_cost_more_and_memory_adds_a_command() {
        let base = CostInputs {
            dbsize: 1000,
            mean_key_bytes: 3000.0,
            count: 100,
            memory: true,
        };
        let e = estimate(base, &PriceTable::default());
        // 3 per-key commands of ~3 KB (3 ECPU each) per key.
        assert!(e.ecpus >= 1000 * 3 * 3);
        let empty = estimate(CostInputs { dbsize: 0, ..base }, &PriceTable::default());
        assert_eq!(empty.ecpus, 2); // one SCAN and one DBSIZE
    }
}

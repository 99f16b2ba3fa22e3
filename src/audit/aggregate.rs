//! Streaming aggregation of scanned keys into per-pattern statistics. Memory is bounded by
//! the number of patterns (capped, with an overflow bucket), the examples kept per pattern
//! and the top-N list — never by the number of keys.

use super::family::{self, Expectation};
use super::pattern;
use crate::escape::escape_capped;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};

/// The pattern keys fall into once the table is full.
pub const OVERFLOW: &str = "{other}";
/// Escaped example keys are cut to this many characters.
const EXAMPLE_CHARS: usize = 160;
/// Distinct type names kept per pattern (module types are unbounded in theory).
const MAX_TYPES: usize = 8;
/// A short letters-and-digits word (`v2`, `zq7`, `shard3`) is a namespace and keeps its
/// text until more than this many of its values appear at the same place of otherwise
/// equal patterns; then it is an id and its patterns fold into one (`v{n}:user:{n}`).
pub const WIDE_WORD_VALUES: usize = 8;

/// TTL buckets: < 1 min, < 1 h, < 1 d, < 7 d, < 30 d, ≥ 30 d, none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TtlHistogram {
    pub lt_1m: u64,
    pub lt_1h: u64,
    pub lt_1d: u64,
    pub lt_7d: u64,
    pub lt_30d: u64,
    pub ge_30d: u64,
    pub none: u64,
}

impl TtlHistogram {
    /// Counts one key with `pttl` milliseconds left (-1: no TTL).
    pub fn add(&mut self, pttl: i64) {
        const MIN: i64 = 60_000;
        const HOUR: i64 = 60 * MIN;
        const DAY: i64 = 24 * HOUR;
        let slot = match pttl {
            t if t < 0 => &mut self.none,
            t if t < MIN => &mut self.lt_1m,
            t if t < HOUR => &mut self.lt_1h,
            t if t < DAY => &mut self.lt_1d,
            t if t < 7 * DAY => &mut self.lt_7d,
            t if t < 30 * DAY => &mut self.lt_30d,
            _ => &mut self.ge_30d,
        };
        *slot += 1;
    }

    pub fn merge(&mut self, o: &TtlHistogram) {
        self.lt_1m += o.lt_1m;
        self.lt_1h += o.lt_1h;
        self.lt_1d += o.lt_1d;
        self.lt_7d += o.lt_7d;
        self.lt_30d += o.lt_30d;
        self.ge_30d += o.ge_30d;
        self.none += o.none;
    }

    /// The buckets in order with their labels (renderers).
    pub fn buckets(&self) -> [(&'static str, u64); 7] {
        [
            ("<1m", self.lt_1m),
            ("<1h", self.lt_1h),
            ("<1d", self.lt_1d),
            ("<7d", self.lt_7d),
            ("<30d", self.lt_30d),
            (">=30d", self.ge_30d),
            ("none", self.none),
        ]
    }
}

/// Statistics of one pattern.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PatternStats {
    pub pattern: String,
    /// The logical database (SELECT) the keys live in; 0 on cluster-mode and serverless caches.
    #[serde(default)]
    pub db: u32,
    /// The known family (Sidekiq, Celery, …) of the pattern's first key, if any.
    pub family: Option<Cow<'static, str>>,
    pub expectation: Option<Expectation>,
    pub keys: u64,
    pub no_ttl: u64,
    /// Sum of MEMORY USAGE over the pattern's keys (None when memory was not sampled).
    pub memory_bytes: Option<u64>,
    /// The part of `memory_bytes` held by keys without TTL.
    pub no_ttl_memory_bytes: Option<u64>,
    pub ttl_histogram: TtlHistogram,
    pub types: BTreeMap<String, u64>,
    /// A few key names, escaped (untrusted text).
    pub examples: Vec<String>,
}

impl PatternStats {
    fn merge(&mut self, o: &PatternStats, examples: usize) {
        self.keys += o.keys;
        self.no_ttl += o.no_ttl;
        self.memory_bytes = add_opt(self.memory_bytes, o.memory_bytes);
        self.no_ttl_memory_bytes = add_opt(self.no_ttl_memory_bytes, o.no_ttl_memory_bytes);
        self.ttl_histogram.merge(&o.ttl_histogram);
        for (t, n) in &o.types {
            add_type(&mut self.types, t, *n);
        }
        if self.family.is_none() {
            self.family = o.family.clone();
            self.expectation = o.expectation;
        }
        for e in &o.examples {
            if self.examples.len() < examples && !self.examples.contains(e) {
                self.examples.push(e.clone());
            }
        }
    }
}

/// Every pattern made from `pattern` by turning one or more of its first four `{n}` into
/// `{hex}`.
fn hex_variants(pattern: &str) -> Vec<String> {
    let pieces: Vec<&str> = pattern.split("{n}").collect();
    let slots = (pieces.len() - 1).min(4);
    (1u32..(1 << slots))
        .map(|mask| {
            let mut out = String::with_capacity(pattern.len() + 8);
            for (i, piece) in pieces.iter().enumerate() {
                if i > 0 {
                    out.push_str(if i <= slots && mask & (1 << (i - 1)) != 0 {
                        "{hex}"
                    } else {
                        "{n}"
                    });
                }
                out.push_str(piece);
            }
            out
        })
        .collect()
}

fn add_opt(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (None, None) => None,
        (a, b) => Some(a.unwrap_or(0) + b.unwrap_or(0)),
    }
}

fn add_type(types: &mut BTreeMap<String, u64>, t: &str, n: u64) {
    if let Some(c) = types.get_mut(t) {
        *c += n;
    } else if types.len() < MAX_TYPES {
        types.insert(t.to_string(), n);
    } else {
        *types.entry("other".into()).or_default() += n;
    }
}

/// One of the biggest keys.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct BigKey {
    pub memory_bytes: u64,
    /// Escaped.
    pub key: String,
    pub db: u32,
    pub pattern: String,
    pub ttl_ms: i64,
    #[serde(rename = "type")]
    pub kind: String,
}

/// Limits of one aggregation.
#[derive(Debug, Clone)]
pub struct AggregateLimits {
    pub max_patterns: usize,
    pub examples: usize,
    pub top_n: usize,
    /// User globs, tried in order before inference.
    pub user_patterns: Vec<String>,
}

/// The running aggregate of one scan (one shard, or all merged).
#[derive(Debug, Clone)]
pub struct Aggregate {
    limits: AggregateLimits,
    /// The database [`Aggregate::add`] counts keys into.
    db: u32,
    /// Keyed by database and pattern: the same pattern in two databases is two rows.
    pub patterns: HashMap<(u32, String), PatternStats>,
    /// Keys that fell into [`OVERFLOW`] because the table was full.
    pub overflowed_keys: u64,
    top: BinaryHeap<Reverse<BigKey>>,
    pub keys: u64,
    pub no_ttl: u64,
    /// Per (db, pattern with one mixed word collapsed): how many distinct patterns fall in it.
    word_values: HashMap<(u32, String), usize>,
    /// The collapsed forms whose word varied widely: every pattern of them is filed there.
    folded_words: HashSet<(u32, String)>,
}

impl Aggregate {
    pub fn new(limits: AggregateLimits) -> Self {
        Aggregate::for_db(limits, 0)
    }

    /// An aggregate whose keys live in logical database `db`.
    pub fn for_db(limits: AggregateLimits, db: u32) -> Self {
        Aggregate {
            limits,
            db,
            patterns: HashMap::new(),
            overflowed_keys: 0,
            top: BinaryHeap::new(),
            keys: 0,
            no_ttl: 0,
            word_values: HashMap::new(),
            folded_words: HashSet::new(),
        }
    }

    /// The pattern `key` counts under: the first matching user glob, else the inferred one.
    pub fn pattern_of(&self, key: &[u8]) -> String {
        for g in &self.limits.user_patterns {
            if pattern::glob_match(g.as_bytes(), key) {
                return g.clone();
            }
        }
        pattern::infer(key)
    }

    /// Counts one key that exists (`pttl` ≥ -1).
    pub fn add(&mut self, key: &[u8], pttl: i64, kind: &str, memory: Option<u64>) {
        self.keys += 1;
        if pttl < 0 {
            self.no_ttl += 1;
        }
        let pattern = self.pattern_of(key);
        let pattern = self.resolve_words(self.db, pattern);
        let mut name = (self.db, pattern);
        if !self.patterns.contains_key(&name) && self.patterns.len() >= self.limits.max_patterns {
            self.overflowed_keys += 1;
            name.1 = OVERFLOW.to_string();
        }
        let examples = self.limits.examples;
        let stats = self.patterns.entry(name).or_insert_with_key(|(db, p)| {
            let fam = family::classify(key);
            PatternStats {
                pattern: p.clone(),
                db: *db,
                family: fam.map(|f| Cow::Borrowed(f.name)),
                expectation: fam.map(|f| f.expectation),
                ..PatternStats::default()
            }
        });
        stats.keys += 1;
        stats.ttl_histogram.add(pttl);
        if pttl < 0 {
            stats.no_ttl += 1;
        }
        add_type(&mut stats.types, kind, 1);
        if let Some(m) = memory {
            stats.memory_bytes = Some(stats.memory_bytes.unwrap_or(0) + m);
            let extra = if pttl < 0 { m } else { 0 };
            stats.no_ttl_memory_bytes = Some(stats.no_ttl_memory_bytes.unwrap_or(0) + extra);
        }
        if stats.examples.len() < examples {
            stats.examples.push(escape_capped(key, EXAMPLE_CHARS));
        }
        if let Some(m) = memory
            && self.limits.top_n > 0
        {
            let small = self.top.len() >= self.limits.top_n
                && self
                    .top
                    .peek()
                    .is_some_and(|Reverse(b)| b.memory_bytes >= m);
            if !small {
                let pattern = stats.pattern.clone();
                self.top.push(Reverse(BigKey {
                    memory_bytes: m,
                    key: escape_capped(key, EXAMPLE_CHARS),
                    db: self.db,
                    pattern,
                    ttl_ms: pttl,
                    kind: kind.to_string(),
                }));
                if self.top.len() > self.limits.top_n {
                    self.top.pop();
                }
            }
        }
    }

    /// Folds another shard's aggregate into this one (the pattern cap applies again).
    pub fn merge(&mut self, other: Aggregate) {
        self.keys += other.keys;
        self.no_ttl += other.no_ttl;
        self.overflowed_keys += other.overflowed_keys;
        let examples = self.limits.examples;
        for (db, folded) in other.folded_words {
            if !self.folded_words.contains(&(db, folded.clone())) {
                self.fold_word(db, &folded);
            }
        }
        for (name, stats) in other.patterns {
            let name = (name.0, self.resolve_words(name.0, name.1));
            let target = if self.patterns.contains_key(&name)
                || self.patterns.len() < self.limits.max_patterns
            {
                name
            } else {
                self.overflowed_keys += stats.keys;
                (name.0, OVERFLOW.to_string())
            };
            match self.patterns.get_mut(&target) {
                Some(s) => s.merge(&stats, examples),
                None => {
                    let mut s = stats;
                    s.pattern = target.1.clone();
                    self.patterns.insert(target, s);
                }
            }
        }
        for b in other.top {
            self.top.push(b);
            if self.top.len() > self.limits.top_n {
                self.top.pop();
            }
        }
    }

    /// The pattern an inferred `pattern` is filed under: its short letters-and-digits words
    /// as written, except where one has varied widely (more than [`WIDE_WORD_VALUES`]
    /// values at the same place), which is then `{n}`-collapsed. A new pattern counts as a
    /// value of each of its words; the one that tips a word over the limit folds every
    /// pattern filed so far under the collapsed form.
    fn resolve_words(&mut self, db: u32, mut pattern: String) -> String {
        if pattern == OVERFLOW || self.limits.user_patterns.contains(&pattern) {
            return pattern;
        }
        'folded: loop {
            for i in 0..pattern::mixed_words(&pattern).len() {
                if let Some(c) = pattern::collapse_word(&pattern, i)
                    && self.folded_words.contains(&(db, c.clone()))
                {
                    pattern = c;
                    continue 'folded;
                }
            }
            break;
        }
        let name = (db, pattern);
        if self.patterns.contains_key(&name) || self.patterns.len() >= self.limits.max_patterns {
            return name.1;
        }
        let pattern = name.1;
        for i in 0..pattern::mixed_words(&pattern).len() {
            let Some(c) = pattern::collapse_word(&pattern, i) else {
                continue;
            };
            let values = self.word_values.entry((db, c.clone())).or_default();
            *values += 1;
            if *values > WIDE_WORD_VALUES {
                self.fold_word(db, &c);
                return self.resolve_words(db, c);
            }
        }
        pattern
    }

    /// Files every pattern of `db` that collapses to `folded` (at one word) under it.
    fn fold_word(&mut self, db: u32, folded: &str) {
        self.folded_words.insert((db, folded.to_string()));
        self.word_values.remove(&(db, folded.to_string()));
        let members: Vec<(u32, String)> = self
            .patterns
            .keys()
            .filter(|(d, p)| {
                *d == db
                    && (0..pattern::mixed_words(p).len())
                        .any(|i| pattern::collapse_word(p, i).as_deref() == Some(folded))
            })
            .cloned()
            .collect();
        let examples = self.limits.examples;
        for name in members {
            let Some(mut from) = self.patterns.remove(&name) else {
                continue;
            };
            let target = (db, folded.to_string());
            match self.patterns.get_mut(&target) {
                Some(into) => into.merge(&from, examples),
                None => {
                    from.pattern = folded.to_string();
                    self.patterns.insert(target, from);
                }
            }
            self.top = std::mem::take(&mut self.top)
                .into_iter()
                .map(|Reverse(mut b)| {
                    if b.db == db && b.pattern == name.1 {
                        b.pattern = folded.to_string();
                    }
                    Reverse(b)
                })
                .collect();
        }
    }

    /// Folds each inferred pattern that differs from a bigger one only by `{n}` where the
    /// bigger has `{hex}` into it: a hex id that happens to be all digits (`tmp:export:3172`
    /// beside `tmp:export:3f8c`) is the same family of keys, not a pattern of its own.
    pub fn fold_numeric_into_hex(&mut self) {
        let mut names: Vec<(u32, String)> = self
            .patterns
            .keys()
            .filter(|(_, p)| p.contains("{n}") && !self.limits.user_patterns.contains(p))
            .cloned()
            .collect();
        // Smallest first, so a chain folds toward the biggest sibling.
        names.sort_by_key(|k| self.patterns.get(k).map_or(0, |s| s.keys));
        let examples = self.limits.examples;
        for name in names {
            let keys = self.patterns.get(&name).map_or(0, |s| s.keys);
            let target = hex_variants(&name.1)
                .into_iter()
                .map(|v| (name.0, v))
                .filter(|k| self.patterns.get(k).is_some_and(|s| s.keys >= keys))
                .max_by_key(|k| self.patterns.get(k).map_or(0, |s| s.keys));
            let Some(target) = target else {
                continue;
            };
            if let Some(from) = self.patterns.remove(&name) {
                if let Some(into) = self.patterns.get_mut(&target) {
                    into.merge(&from, examples);
                }
                // At most `top_n` entries: rebuilding the heap is cheap.
                self.top = std::mem::take(&mut self.top)
                    .into_iter()
                    .map(|Reverse(mut b)| {
                        if b.db == name.0 && b.pattern == name.1 {
                            b.pattern = target.1.clone();
                        }
                        Reverse(b)
                    })
                    .collect();
            }
        }
    }

    /// Patterns, most keys first (ties by name, so output is stable).
    pub fn sorted_patterns(&self) -> Vec<PatternStats> {
        let mut v: Vec<PatternStats> = self.patterns.values().cloned().collect();
        v.sort_by(|a, b| {
            b.keys
                .cmp(&a.keys)
                .then_with(|| a.pattern.cmp(&b.pattern))
                .then(a.db.cmp(&b.db))
        });
        v
    }

    /// The biggest keys, biggest first.
    pub fn top_keys(&self) -> Vec<BigKey> {
        let mut v: Vec<BigKey> = self.top.iter().map(|Reverse(b)| b.clone()).collect();
        v.sort_by(|a, b| b.cmp(a));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max: usize) -> AggregateLimits {
        AggregateLimits {
            max_patterns: max,
            examples: 2,
            top_n: 2,
            user_patterns: vec!["special:*".into()],
        }
    }

    fn key(db: u32, pattern: &str) -> (u32, String) {
        (db, pattern.to_string())
    }

    #[test]
    fn counts_histogram_overflow_and_top() {
        let mut a = Aggregate::new(limits(2));
        a.add(b"cache:1", -1, "string", Some(100));
        a.add(b"cache:2", 30_000, "string", Some(300));
        a.add(b"special:x:1", -1, "hash", Some(50));
        a.add(b"third:1", 5, "set", Some(10));
        assert_eq!(a.keys, 4);
        assert_eq!(a.no_ttl, 2);
        assert_eq!(a.overflowed_keys, 1);
        let c = &a.patterns[&key(0, "cache:{n}")];
        assert_eq!((c.keys, c.no_ttl, c.memory_bytes), (2, 1, Some(400)));
        assert_eq!(c.no_ttl_memory_bytes, Some(100));
        assert_eq!(c.ttl_histogram.lt_1m, 1);
        assert_eq!(c.ttl_histogram.none, 1);
        assert_eq!(a.patterns[&key(0, "special:*")].keys, 1);
        assert_eq!(a.patterns[&key(0, OVERFLOW)].keys, 1);
        let top: Vec<u64> = a.top_keys().iter().map(|b| b.memory_bytes).collect();
        assert_eq!(top, vec![300, 100]);
    }

    #[test]
    fn merge_adds_up() {
        let mut a = Aggregate::new(limits(10));
        let mut b = Aggregate::new(limits(10));
        a.add(b"k:1", -1, "string", None);
        b.add(b"k:2", 10, "string", None);
        b.add(b"j:2", 10, "list", None);
        a.merge(b);
        assert_eq!(a.keys, 3);
        assert_eq!(a.patterns[&key(0, "k:{n}")].keys, 2);
        assert_eq!(a.patterns[&key(0, "k:{n}")].memory_bytes, None);
    }

    #[test]
    fn the_same_pattern_in_two_databases_is_two_rows() {
        let mut a = Aggregate::new(limits(10));
        let mut b = Aggregate::for_db(limits(10), 3);
        a.add(b"k:1", -1, "string", Some(5));
        b.add(b"k:2", 10, "string", Some(7));
        b.add(b"k:3", -1, "string", Some(9));
        a.merge(b);
        assert_eq!(a.keys, 3);
        assert_eq!(a.patterns[&key(0, "k:{n}")].keys, 1);
        let in3 = &a.patterns[&key(3, "k:{n}")];
        assert_eq!((in3.db, in3.keys, in3.no_ttl), (3, 2, 1));
        let dbs: Vec<u32> = a.top_keys().iter().map(|b| b.db).collect();
        assert_eq!(dbs, vec![3, 3]);
    }

    #[test]
    fn version_namespaces_stay_apart_and_wide_words_become_ids() {
        let mut a = Aggregate::new(limits(100));
        for i in 0..50 {
            a.add(format!("v1:user:{i}").as_bytes(), -1, "string", None);
            a.add(format!("v2:user:{i}").as_bytes(), 60_000, "string", None);
        }
        // The old version's keys without a TTL stay a row of their own.
        assert_eq!(a.patterns[&key(0, "v1:user:{n}")].no_ttl, 50);
        assert_eq!(a.patterns[&key(0, "v2:user:{n}")].no_ttl, 0);
        assert!(!a.patterns.contains_key(&key(0, "v{n}:user:{n}")));
        // A word that takes more than WIDE_WORD_VALUES values is an id.
        for i in 0..=WIDE_WORD_VALUES {
            a.add(format!("job:w{i}:state").as_bytes(), -1, "hash", Some(10));
        }
        let jobs = &a.patterns[&key(0, "job:w{n}:state")];
        assert_eq!(jobs.keys, WIDE_WORD_VALUES as u64 + 1);
        assert!(!a.patterns.contains_key(&key(0, "job:w0:state")));
        a.add(b"job:w99:state", -1, "hash", Some(10));
        assert_eq!(a.patterns[&key(0, "job:w{n}:state")].keys, 10);
        assert!(a.top_keys().iter().all(|b| b.pattern == "job:w{n}:state"));
        // Only the word that varied is collapsed.
        for i in 0..=WIDE_WORD_VALUES {
            a.add(format!("v3:shard{i}:x").as_bytes(), -1, "string", None);
        }
        assert_eq!(a.patterns[&key(0, "v3:shard{n}:x")].keys, 9);
    }

    #[test]
    fn a_word_that_varies_widely_across_shards_folds_on_merge() {
        let mut a = Aggregate::new(limits(100));
        let mut b = Aggregate::new(limits(100));
        for i in 0..6 {
            a.add(format!("t{i}:k").as_bytes(), -1, "string", None);
            b.add(format!("t{}:k", i + 6).as_bytes(), -1, "string", None);
        }
        assert!(a.patterns.contains_key(&key(0, "t0:k")));
        a.merge(b);
        assert_eq!(a.patterns.len(), 1, "{:?}", a.patterns.keys());
        assert_eq!(a.patterns[&key(0, "t{n}:k")].keys, 12);
        let mut c = Aggregate::new(limits(100));
        for i in 0..=WIDE_WORD_VALUES {
            c.add(format!("u{i}:k").as_bytes(), -1, "string", None);
        }
        let mut d = Aggregate::new(limits(100));
        d.add(b"u50:k", -1, "string", None);
        d.merge(c);
        assert_eq!(d.patterns.len(), 1, "{:?}", d.patterns.keys());
        assert_eq!(d.patterns[&key(0, "u{n}:k")].keys, 10);
    }

    #[test]
    fn all_digit_hex_ids_fold_into_their_hex_sibling() {
        let mut a = Aggregate::new(limits(10));
        for k in [&b"tmp:3f8c:1"[..], b"tmp:a1b2:2", b"tmp:77aa:3"] {
            a.add(k, -1, "string", Some(10));
        }
        a.add(b"tmp:3172:4", 5000, "string", Some(99));
        a.add(b"tmp:9:shard34567", -1, "string", None);
        a.add(b"v2:x", -1, "string", None);
        a.fold_numeric_into_hex();
        let t = &a.patterns[&key(0, "tmp:{hex}:{n}")];
        assert_eq!((t.keys, t.no_ttl), (4, 3));
        assert!(!a.patterns.contains_key(&key(0, "tmp:{n}:{n}")));
        // No `{hex}` sibling: left alone.
        assert_eq!(a.patterns[&key(0, "tmp:{n}:shard{n}")].keys, 1);
        assert_eq!(a.patterns[&key(0, "v2:x")].keys, 1);
        assert_eq!(a.top_keys()[0].pattern, "tmp:{hex}:{n}");
        assert_eq!(hex_variants("a{n}b{n}").len(), 3);
    }
}

//! Short, fixed-width renderings of figures for table cells: `12.3M`, `1.2k/s`, `97%`.

/// Bytes in binary units: `512B`, `12.3K`, `4.0G`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "K", "M", "G", "T", "P"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n}B")
    } else if value < 10.0 {
        format!("{value:.1}{}", UNITS[unit])
    } else {
        format!("{value:.0}{}", UNITS[unit])
    }
}

/// A count or rate with k/M suffixes: `0`, `950`, `1.2k`, `34k`, `5.6M`.
pub fn count(v: f64) -> String {
    let v = v.max(0.0);
    if v < 1.0 && v > 0.0 {
        format!("{v:.1}")
    } else if v < 1000.0 {
        format!("{v:.0}")
    } else if v < 10_000.0 {
        format!("{:.1}k", v / 1000.0)
    } else if v < 1_000_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else {
        format!("{:.1}M", v / 1_000_000.0)
    }
}

/// An optional figure, `…` while it is not known yet.
pub fn opt<T>(v: Option<T>, f: impl Fn(T) -> String) -> String {
    v.map(f).unwrap_or_else(|| "…".into())
}

/// A share 0..=1 as a whole percentage.
pub fn percent(share: f64) -> String {
    format!("{:.0}%", (share * 100.0).clamp(0.0, 100.0))
}

/// Seconds as `45s`, `12m`, `3h`, `2d`.
pub fn duration(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

/// Microseconds as `850µs`, `12.5ms`, `1.2s`.
pub fn micros(us: u64) -> String {
    if us < 1000 {
        format!("{us}µs")
    } else if us < 1_000_000 {
        format!("{:.1}ms", us as f64 / 1000.0)
    } else {
        format!("{:.1}s", us as f64 / 1_000_000.0)
    }
}

/// `HH:MM:SS` of a wall-clock time (UTC: on-call people compare with AWS timestamps).
pub fn clock(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!("{:02}:{:02}:{:02}", t.hour(), t.minute(), t.second())
}

/// A UTC date and time to the minute, `2026-12-01 17:40`.
pub fn date_time(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_stay_short() {
        assert_eq!(bytes(512), "512B");
        assert_eq!(bytes(1536), "1.5K");
        assert_eq!(bytes(100 * 1024 * 1024), "100M");
        assert_eq!(count(0.0), "0");
        assert_eq!(count(1234.0), "1.2k");
        assert_eq!(count(56_000.0), "56k");
        assert_eq!(count(f64::NAN.max(0.0)), "0");
        assert_eq!(duration(7200), "2h");
        assert_eq!(micros(12_500), "12.5ms");
        assert_eq!(percent(0.987), "99%");
    }
}

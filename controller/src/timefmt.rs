//! Unix-nanosecond instants as RFC 3339 text in UTC, for the API (Go's time.Time) and the CLI.

/// `2023-11-14T22:13:20` for a Unix-nanosecond instant, plus the nanoseconds within the second.
pub fn utc_parts(nanos: i64) -> (String, i64) {
    let secs = nanos.div_euclid(1_000_000_000);
    let sub = nanos.rem_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    (
        format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
            rem / 3600,
            (rem / 60) % 60,
            rem % 60
        ),
        sub,
    )
}

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(
            utc_parts(1_700_000_000_123_456_789),
            ("2023-11-14T22:13:20".into(), 123_456_789)
        );
        assert_eq!(utc_parts(951_782_400_000_000_000).0, "2000-02-29T00:00:00");
        assert_eq!(utc_parts(0).0, "1970-01-01T00:00:00");
    }
}

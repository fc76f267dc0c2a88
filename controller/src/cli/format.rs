//! Output helpers in Nomad's CLI style: `Key = Value` blocks and space-aligned tables, short IDs,
//! times as RFC 3339 or "3m ago".

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

/// Aligned `Key = Value` lines.
pub fn kv(rows: &[(&str, String)]) -> String {
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (k, v) in rows {
        out.push_str(&format!("{k:<width$} = {v}\n"));
    }
    out
}

/// A table with Nomad's two-space column gaps; the header is the first row.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(c);
                s.push_str(&" ".repeat(widths[i] - c.chars().count() + 2));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(header.to_vec());
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
}

/// The table, or `empty` (Nomad's "No … placed" line) when there are no rows.
pub fn table_or(header: &[&str], rows: &[Vec<String>], empty: &str) -> String {
    if rows.is_empty() {
        format!("{empty}\n")
    } else {
        table(header, rows)
    }
}

/// The first 8 characters of an ID, as Nomad shows them.
pub fn short(id: &str) -> String {
    id.chars().take(8).collect()
}

pub fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

pub fn or_none(v: &Value) -> String {
    match s(v) {
        x if x.is_empty() => "<none>".into(),
        x => x,
    }
}

pub fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// RFC 3339 in UTC from Unix nanoseconds; "N/A" for 0.
pub fn rfc3339(nanos: i64) -> String {
    if nanos <= 0 {
        return "N/A".into();
    }
    format!("{}Z", crate::timefmt::utc_parts(nanos).0)
}

/// "12s ago", "3m4s ago", "2h5m ago", "3d2h ago".
pub fn ago(nanos: i64) -> String {
    if nanos <= 0 {
        return "N/A".into();
    }
    let secs = ((now_nanos() - nanos) / 1_000_000_000).max(0);
    let text = match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{}s", s / 60, s % 60),
        s if s < 86_400 => format!("{}h{}m", s / 3600, (s / 60) % 60),
        s => format!("{}d{}h", s / 86_400, (s / 3600) % 24),
    };
    format!("{text} ago")
}

/// A time Nomad's API gives either as Unix nanoseconds or as an RFC 3339 string (Go's zero
/// time, year 1, meaning never).
pub fn time_field(v: &Value) -> String {
    match v {
        Value::String(t) if t.starts_with("0001-") || t.is_empty() => "N/A".into(),
        Value::String(t) => match t.find('.') {
            Some(dot) => format!("{}Z", &t[..dot]),
            None => t.clone(),
        },
        other => rfc3339(nanos(other)),
    }
}

pub fn nanos(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_like_nomad() {
        let t = table(
            &["ID", "Type", "Status"],
            &[vec!["whoami".into(), "service".into(), "running".into()]],
        );
        assert_eq!(t, "ID      Type     Status\nwhoami  service  running\n");
    }

    #[test]
    fn kv_aligns() {
        assert_eq!(
            kv(&[("ID", "a".into()), ("Name", "b".into())]),
            "ID   = a\nName = b\n"
        );
    }

    #[test]
    fn time_fields_in_either_form() {
        assert_eq!(
            time_field(&serde_json::json!("0001-01-01T00:00:00Z")),
            "N/A"
        );
        assert_eq!(
            time_field(&serde_json::json!("2023-11-14T22:13:20.123456789Z")),
            "2023-11-14T22:13:20Z"
        );
        assert_eq!(
            time_field(&serde_json::json!(1_700_000_000_000_000_000i64)),
            "2023-11-14T22:13:20Z"
        );
    }

    #[test]
    fn rfc3339_from_nanos() {
        assert_eq!(rfc3339(0), "N/A");
        assert_eq!(rfc3339(1_700_000_000_000_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951_782_400_000_000_000), "2000-02-29T00:00:00Z");
    }
}

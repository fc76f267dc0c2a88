//! Typed reads from one block of the [`tree`](super::tree): attributes with HCL's conversions
//! (`"8080"` is a number, `8080` a string where one is wanted), blocks in either HCL form or the
//! HCL-JSON form YAML uses, and a final check that reports every key nobody read as unknown
//! (with "did you mean"), unsupported or ignored, from the block's [`BlockSchema`].

use std::collections::BTreeMap;
use std::time::Duration;

use super::error::Diagnostic;
use super::schema::{BlockSchema, did_you_mean};
use super::tree::{Body, Entry, Item, ItemKind, Label, Pos, Value, ValueKind};

pub type Diags = Vec<Diagnostic>;

/// One block being decoded.
pub struct Fields<'b> {
    /// The field path of this block, e.g. `job "whoami" > group "web"`.
    pub path: String,
    pub pos: Pos,
    items: &'b [Item],
    used: Vec<bool>,
    schema: &'static BlockSchema,
}

/// A child block found in a body, owning its body (YAML blocks are built from mappings).
pub struct BlockRef {
    pub pos: Pos,
    pub labels: Vec<Label>,
    pub body: Body,
}

impl<'b> Fields<'b> {
    pub fn new(
        path: impl Into<String>,
        pos: Pos,
        body: &'b Body,
        schema: &'static BlockSchema,
    ) -> Self {
        Fields {
            path: path.into(),
            pos,
            items: &body.items,
            used: vec![false; body.items.len()],
            schema,
        }
    }

    pub fn child(&self, name: &str) -> String {
        if self.path.is_empty() {
            name.to_string()
        } else {
            format!("{} > {name}", self.path)
        }
    }

    pub fn child_labeled(&self, name: &str, label: &str) -> String {
        format!("{} {label:?}", self.child(name))
    }

    fn take(&mut self, name: &str) -> Vec<&'b Item> {
        let mut out = Vec::new();
        for (i, item) in self.items.iter().enumerate() {
            if item.key == name {
                self.used[i] = true;
                out.push(item);
            }
        }
        out
    }

    /// Where the value of attribute `name` is written, if it is set.
    pub fn pos_of(&self, name: &str) -> Option<Pos> {
        self.items
            .iter()
            .find(|i| i.key == name)
            .map(|i| match &i.kind {
                ItemKind::Attr(v) => v.pos,
                ItemKind::Block(_) => i.pos,
            })
    }

    /// Whether the block sets `name` at all (without reading it).
    pub fn has(&self, name: &str) -> bool {
        self.items.iter().any(|i| i.key == name)
    }

    /// The value of attribute `name`, if set once.
    pub fn attr(&mut self, d: &mut Diags, name: &str) -> Option<&'b Value> {
        let items = self.take(name);
        let mut found = None;
        for item in items {
            match &item.kind {
                ItemKind::Attr(v) if found.is_none() => found = Some(v),
                ItemKind::Attr(_) => d.push(Diagnostic::error(
                    item.pos,
                    self.child(name),
                    format!("attribute {name:?} is set more than once"),
                )),
                ItemKind::Block(_) => d.push(Diagnostic::error(
                    item.pos,
                    self.child(name),
                    format!("expected an attribute `{name} = …`, found a block"),
                )),
            }
        }
        found.filter(|v| !matches!(v.kind, ValueKind::Null | ValueKind::Invalid))
    }

    /// Whether `name` is set to an expression that failed to evaluate (already reported), so
    /// a check that it is required would only repeat that error.
    pub fn failed(&self, name: &str) -> bool {
        self.items.iter().any(|i| {
            i.key == name
                && matches!(
                    i.kind,
                    ItemKind::Attr(Value {
                        kind: ValueKind::Invalid,
                        ..
                    })
                )
        })
    }

    pub fn string(&mut self, d: &mut Diags, name: &str) -> Option<String> {
        let v = self.attr(d, name)?;
        match &v.kind {
            ValueKind::String(s) => Some(s.clone()),
            ValueKind::Number(n) => Some(format_number(*n)),
            ValueKind::Bool(b) => Some(b.to_string()),
            other => {
                d.push(type_error(v.pos, self.child(name), "a string", other));
                None
            }
        }
    }

    pub fn string_or(&mut self, d: &mut Diags, name: &str, default: &str) -> String {
        self.string(d, name).unwrap_or_else(|| default.to_string())
    }

    pub fn bool(&mut self, d: &mut Diags, name: &str) -> Option<bool> {
        let v = self.attr(d, name)?;
        match &v.kind {
            ValueKind::Bool(b) => Some(*b),
            ValueKind::String(s) if s == "true" => Some(true),
            ValueKind::String(s) if s == "false" => Some(false),
            other => {
                d.push(type_error(
                    v.pos,
                    self.child(name),
                    "a bool (true or false)",
                    other,
                ));
                None
            }
        }
    }

    fn number(&mut self, d: &mut Diags, name: &str) -> Option<(f64, Pos)> {
        let v = self.attr(d, name)?;
        match &v.kind {
            ValueKind::Number(n) => Some((*n, v.pos)),
            ValueKind::String(s) => match s.trim().parse::<f64>() {
                Ok(n) => Some((n, v.pos)),
                Err(_) => {
                    d.push(Diagnostic::error(
                        v.pos,
                        self.child(name),
                        format!("expected a number, found string {s:?}"),
                    ));
                    None
                }
            },
            other => {
                d.push(type_error(v.pos, self.child(name), "a number", other));
                None
            }
        }
    }

    /// A whole number in `min..=max`.
    pub fn int(&mut self, d: &mut Diags, name: &str, min: i64, max: i64) -> Option<i64> {
        let (n, pos) = self.number(d, name)?;
        if n.fract() != 0.0 {
            d.push(Diagnostic::error(
                pos,
                self.child(name),
                format!("expected a whole number, found {n}"),
            ));
            return None;
        }
        if n < min as f64 || n > max as f64 {
            let msg = if min == 0 && n < 0.0 {
                format!("must not be negative, found {}", format_number(n))
            } else {
                format!(
                    "must be between {min} and {max}, found {}",
                    format_number(n)
                )
            };
            d.push(Diagnostic::error(pos, self.child(name), msg));
            return None;
        }
        Some(n as i64)
    }

    pub fn u32(&mut self, d: &mut Diags, name: &str) -> Option<u32> {
        self.int(d, name, 0, i64::from(u32::MAX)).map(|n| n as u32)
    }

    pub fn u64(&mut self, d: &mut Diags, name: &str) -> Option<u64> {
        self.int(d, name, 0, i64::MAX).map(|n| n as u64)
    }

    pub fn duration(&mut self, d: &mut Diags, name: &str) -> Option<Duration> {
        let v = self.attr(d, name)?;
        match &v.kind {
            ValueKind::String(s) => match parse_duration(s) {
                Ok(dur) => Some(dur),
                Err(m) => {
                    d.push(Diagnostic::error(v.pos, self.child(name), m));
                    None
                }
            },
            other => {
                d.push(type_error(
                    v.pos,
                    self.child(name),
                    "a duration string like \"30s\", \"5m\" or \"1h30m\"",
                    other,
                ));
                None
            }
        }
    }

    pub fn string_list(&mut self, d: &mut Diags, name: &str) -> Option<Vec<String>> {
        let v = self.attr(d, name)?;
        let ValueKind::List(items) = &v.kind else {
            d.push(type_error(
                v.pos,
                self.child(name),
                "a list of strings",
                &v.kind,
            ));
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            match &item.kind {
                ValueKind::String(s) => out.push(s.clone()),
                ValueKind::Number(n) => out.push(format_number(*n)),
                ValueKind::Bool(b) => out.push(b.to_string()),
                other => {
                    d.push(type_error(
                        item.pos,
                        format!("{}[{i}]", self.child(name)),
                        "a string",
                        other,
                    ));
                    return None;
                }
            }
        }
        Some(out)
    }

    /// A map of strings given as a block (`env { A = "x" }`) or an attribute (`env = { … }`).
    pub fn string_map(&mut self, d: &mut Diags, name: &str) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for (key, pos, v) in self.map_entries(d, name) {
            match scalar_string(&v.kind) {
                Some(s) => {
                    out.insert(key, s);
                }
                None => d.push(type_error(
                    pos,
                    format!("{} > {key}", self.child(name)),
                    "a string",
                    &v.kind,
                )),
            }
        }
        out
    }

    /// A map of string lists, as HTTP check `header { X = ["a"] }`.
    pub fn string_list_map(&mut self, d: &mut Diags, name: &str) -> BTreeMap<String, Vec<String>> {
        let mut out = BTreeMap::new();
        for (key, pos, v) in self.map_entries(d, name) {
            let list = match &v.kind {
                ValueKind::List(items) => items
                    .iter()
                    .filter_map(|i| scalar_string(&i.kind))
                    .collect(),
                other => match scalar_string(other) {
                    Some(s) => vec![s],
                    None => {
                        d.push(type_error(
                            pos,
                            format!("{} > {key}", self.child(name)),
                            "a list of strings",
                            other,
                        ));
                        continue;
                    }
                },
            };
            out.insert(key, list);
        }
        out
    }

    /// The entries of a map-valued attribute or a label-less block of attributes.
    pub fn map_entries(&mut self, d: &mut Diags, name: &str) -> Vec<(String, Pos, Value)> {
        let mut out = Vec::new();
        for item in self.take(name) {
            match &item.kind {
                ItemKind::Attr(Value {
                    kind: ValueKind::Map(entries),
                    ..
                }) => {
                    out.extend(
                        entries
                            .iter()
                            .map(|e| (e.key.clone(), e.pos, e.value.clone())),
                    );
                }
                ItemKind::Attr(Value {
                    kind: ValueKind::Null | ValueKind::Invalid,
                    ..
                }) => {}
                ItemKind::Attr(v) => d.push(type_error(v.pos, self.child(name), "a map", &v.kind)),
                ItemKind::Block(b) => {
                    if !b.labels.is_empty() {
                        d.push(Diagnostic::error(
                            item.pos,
                            self.child(name),
                            format!("a {name} block takes no labels"),
                        ));
                    }
                    for inner in &b.body.items {
                        match &inner.kind {
                            // Failed to evaluate: reported already.
                            ItemKind::Attr(Value {
                                kind: ValueKind::Invalid,
                                ..
                            }) => {}
                            ItemKind::Attr(v) => {
                                out.push((inner.key.clone(), inner.pos, v.clone()))
                            }
                            ItemKind::Block(_) => d.push(Diagnostic::error(
                                inner.pos,
                                format!("{} > {}", self.child(name), inner.key),
                                format!("expected `{} = …`, found a block", inner.key),
                            )),
                        }
                    }
                }
            }
        }
        out
    }

    /// Every `name` block, each with exactly `labels` labels.
    pub fn blocks(&mut self, d: &mut Diags, name: &str, labels: usize) -> Vec<BlockRef> {
        let mut out = Vec::new();
        for item in self.take(name) {
            match &item.kind {
                ItemKind::Block(b) => {
                    if b.labels.len() != labels {
                        d.push(Diagnostic::error(
                            item.pos,
                            self.child(name),
                            label_count_message(name, labels, b.labels.len()),
                        ));
                        continue;
                    }
                    out.push(BlockRef {
                        pos: item.pos,
                        labels: b.labels.clone(),
                        body: b.body.clone(),
                    });
                }
                ItemKind::Attr(v) => self.json_blocks(d, name, v, labels, Vec::new(), &mut out),
            }
        }
        out
    }

    /// HCL-JSON block form: `{"group": {"web": {…}}}`, or a list of such objects.
    fn json_blocks(
        &self,
        d: &mut Diags,
        name: &str,
        v: &Value,
        labels: usize,
        prefix: Vec<Label>,
        out: &mut Vec<BlockRef>,
    ) {
        match &v.kind {
            ValueKind::List(items) => {
                for item in items {
                    self.json_blocks(d, name, item, labels, prefix.clone(), out);
                }
            }
            ValueKind::Map(entries) if labels == prefix.len() => out.push(BlockRef {
                pos: v.pos,
                labels: prefix,
                body: body_of_entries(v.pos, entries),
            }),
            ValueKind::Map(entries) => {
                for e in entries {
                    let mut labels_so_far = prefix.clone();
                    labels_so_far.push(Label {
                        name: e.key.clone(),
                        pos: e.pos,
                    });
                    self.json_blocks(d, name, &e.value, labels, labels_so_far, out);
                }
            }
            ValueKind::Null | ValueKind::Invalid => {}
            other => d.push(type_error(
                v.pos,
                self.child(name),
                if labels == 0 {
                    "a block (a mapping)"
                } else {
                    "a block (a mapping of names to blocks)"
                },
                other,
            )),
        }
    }

    /// At most one `name` block without labels.
    pub fn block(&mut self, d: &mut Diags, name: &str) -> Option<BlockRef> {
        let mut blocks = self.blocks(d, name, 0);
        if blocks.len() > 1 {
            d.push(Diagnostic::error(
                blocks[1].pos,
                self.child(name),
                format!("only one {name} block is allowed here"),
            ));
        }
        if blocks.is_empty() {
            None
        } else {
            Some(blocks.swap_remove(0))
        }
    }

    /// Marks `name` as read without decoding it (values decoded elsewhere, or deliberately dropped).
    pub fn skip(&mut self, name: &str) {
        self.take(name);
    }

    /// Reports every key nobody read: unsupported (error), ignored (warning) or unknown (error).
    pub fn finish(self, d: &mut Diags) {
        for (item, used) in self.items.iter().zip(&self.used) {
            if *used {
                continue;
            }
            let what = match &item.kind {
                // In YAML and HCL-JSON a block is a key whose value is a mapping.
                ItemKind::Attr(Value {
                    kind: ValueKind::Map(_),
                    ..
                })
                | ItemKind::Block(_) => "block",
                ItemKind::Attr(_) => "attribute",
            };
            let name = item.key.as_str();
            let field = self.child(name);
            if let Some((_, why)) = self.schema.ignored.iter().find(|(n, _)| *n == name) {
                d.push(Diagnostic::warning(
                    item.pos,
                    field,
                    format!("{name} is accepted and ignored: {why}"),
                ));
            } else if let Some((_, feature)) =
                self.schema.unsupported.iter().find(|(n, _)| *n == name)
            {
                d.push(Diagnostic::error(
                    item.pos,
                    field,
                    format!("{what} {name:?} is unsupported in drover ({feature})"),
                ));
            } else {
                let known: Vec<&str> = self.schema.all_names().collect();
                d.push(Diagnostic::error(
                    item.pos,
                    // At the top of a file there is no enclosing block to name: name the key.
                    if self.path.is_empty() {
                        name.to_string()
                    } else {
                        self.path.clone()
                    },
                    format!(
                        "unknown {what} {name:?} in {}{}",
                        self.schema.block,
                        did_you_mean(name, &known)
                    ),
                ));
            }
        }
    }
}

fn label_count_message(name: &str, want: usize, got: usize) -> String {
    match want {
        0 => format!("a {name} block takes no labels, found {got}"),
        1 => format!(
            "a {name} block takes one label, its name: {name} \"name\" {{ … }}; found {got}"
        ),
        n => format!("a {name} block takes {n} labels, found {got}"),
    }
}

pub fn body_of_entries(pos: Pos, entries: &[Entry]) -> Body {
    Body {
        pos,
        items: entries
            .iter()
            .map(|e| Item {
                key: e.key.clone(),
                pos: e.pos,
                kind: ItemKind::Attr(e.value.clone()),
            })
            .collect(),
    }
}

fn scalar_string(v: &ValueKind) -> Option<String> {
    match v {
        ValueKind::String(s) => Some(s.clone()),
        ValueKind::Number(n) => Some(format_number(*n)),
        ValueKind::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

pub fn type_error(pos: Pos, field: impl Into<String>, want: &str, got: &ValueKind) -> Diagnostic {
    let found = match got {
        ValueKind::String(s) => format!("string {s:?}"),
        ValueKind::Number(n) => format!("number {}", format_number(*n)),
        ValueKind::Bool(b) => format!("bool {b}"),
        other => other.type_name().to_string(),
    };
    Diagnostic::error(pos, field, format!("expected {want}, found {found}"))
}

pub fn format_number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

/// Go's `time.ParseDuration` syntax: `300ms`, `1.5h`, `2h45m`; units ns us µs ms s m h.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || {
        format!(
            "invalid duration {s:?}: expected a number and a unit, like \"30s\", \"5m\" or \"1h30m\" (units: ns, us, ms, s, m, h)"
        )
    };
    let t = s.trim();
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    if t.is_empty() || t.starts_with('-') {
        return Err(bad());
    }
    let mut total = 0f64;
    let mut rest = t.strip_prefix('+').unwrap_or(t);
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return Err(bad());
        }
        let n: f64 = rest[..num_len].parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let secs = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        total += n * secs;
    }
    if !total.is_finite() || total > 1e12 {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(total))
}

/// Formats a duration the way Go prints it (`1h30m0s`, `15s`, `500ms`).
pub fn format_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".into();
    }
    if nanos < 1_000_000_000 {
        return if nanos.is_multiple_of(1_000_000) {
            format!("{}ms", nanos / 1_000_000)
        } else if nanos.is_multiple_of(1_000) {
            format!("{}us", nanos / 1_000)
        } else {
            format!("{nanos}ns")
        };
    }
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    let frac = d.subsec_nanos();
    let s_str = if frac == 0 {
        format!("{s}s")
    } else {
        let f = format!("{:09}", frac);
        format!("{s}.{}s", f.trim_end_matches('0'))
    };
    match (h, m) {
        (0, 0) => s_str,
        (0, m) => format!("{m}m{s_str}"),
        (h, m) => format!("{h}h{m}m{s_str}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_like_go() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        for bad in ["", "10", "s", "10x", "-5s", "1h-5m", "9999999999999h"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn durations_format_like_go_and_round_trip() {
        for (d, s) in [(5400, "1h30m0s"), (15, "15s"), (1800, "30m0s"), (0, "0s")] {
            assert_eq!(format_duration(Duration::from_secs(d)), s);
            assert_eq!(parse_duration(s), Ok(Duration::from_secs(d)));
        }
        assert_eq!(format_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format_duration(Duration::from_millis(250)), "250ms");
    }
}

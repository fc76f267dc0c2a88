//! The format-neutral tree every job file is read into before it is decoded: HCL blocks and
//! attributes, or YAML mappings in the HCL-JSON shape. Every node keeps its position, so the
//! decoder can name a line and column whatever the source format.

use std::fmt;

/// A 1-based line and column in the source file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct Pos {
    pub line: u32,
    pub col: u32,
}

impl Pos {
    pub const fn new(line: u32, col: u32) -> Pos {
        Pos { line, col }
    }

    /// The position of a byte offset in `src`; columns count characters, as editors do.
    pub fn of_offset(src: &str, offset: usize) -> Pos {
        let offset = offset.min(src.len());
        let before = src.get(..offset).unwrap_or(src);
        let line = before.bytes().filter(|b| *b == b'\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = before[line_start..].chars().count() + 1;
        Pos::new(line as u32, col as u32)
    }
}

/// Line starts of a source, so that turning a byte offset into a [`Pos`] costs a binary search
/// rather than a scan from the top: a reader asks once for every attribute, block and label,
/// and scanning made a 4 MiB file of short attributes take minutes.
pub struct LineIndex<'a> {
    src: &'a str,
    /// Byte offset where each line starts, and whether the line is ASCII (column = bytes).
    lines: Vec<(usize, bool)>,
}

impl<'a> LineIndex<'a> {
    pub fn new(src: &'a str) -> Self {
        let mut lines = Vec::new();
        let mut start = 0;
        for line in src.split_inclusive('\n') {
            lines.push((start, line.is_ascii()));
            start += line.len();
        }
        if lines.is_empty() || src.ends_with('\n') {
            lines.push((start, true));
        }
        LineIndex { src, lines }
    }

    pub fn pos(&self, offset: usize) -> Pos {
        let offset = offset.min(self.src.len());
        let i = self
            .lines
            .partition_point(|(start, _)| *start <= offset)
            .saturating_sub(1);
        let (start, ascii) = self.lines.get(i).copied().unwrap_or((0, false));
        let col = if ascii {
            offset - start
        } else {
            self.src
                .get(start..offset)
                .map_or(offset - start, |s| s.chars().count())
        };
        Pos::new(i as u32 + 1, col as u32 + 1)
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_index_agrees_with_scanning() {
        for src in [
            "",
            "a",
            "a\n",
            "ab\ncd\n\nxé\u{1F600}z\n  q",
            "\n\n",
            "é\né",
        ] {
            let index = LineIndex::new(src);
            for off in (0..=src.len()).filter(|o| src.is_char_boundary(*o)) {
                assert_eq!(index.pos(off), Pos::of_offset(src, off), "{src:?} at {off}");
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Body {
    pub pos: Pos,
    pub items: Vec<Item>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub key: String,
    pub pos: Pos,
    pub kind: ItemKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ItemKind {
    Attr(Value),
    Block(Block),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    pub labels: Vec<Label>,
    pub body: Body,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Label {
    pub name: String,
    pub pos: Pos,
}

/// An evaluated attribute value with the position it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Value {
    pub pos: Pos,
    pub kind: ValueKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ValueKind {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
    List(Vec<Value>),
    Map(Vec<Entry>),
    /// An attribute whose expression failed to evaluate (already reported): it is set, but has
    /// no value to check.
    Invalid,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub key: String,
    pub pos: Pos,
    pub value: Value,
}

impl ValueKind {
    /// The type's name as HCL reports it, for "expected X, found Y" messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            ValueKind::Null => "null",
            ValueKind::Bool(_) => "bool",
            ValueKind::Number(_) => "number",
            ValueKind::String(_) => "string",
            ValueKind::List(_) => "list",
            ValueKind::Map(_) => "object",
            ValueKind::Invalid => "invalid value",
        }
    }
}

impl Value {
    /// Wraps an evaluated JSON-like value, giving every nested node the same position.
    pub fn from_json(pos: Pos, v: serde_json::Value) -> Value {
        let kind = match v {
            serde_json::Value::Null => ValueKind::Null,
            serde_json::Value::Bool(b) => ValueKind::Bool(b),
            serde_json::Value::Number(n) => ValueKind::Number(n.as_f64().unwrap_or(f64::NAN)),
            serde_json::Value::String(s) => ValueKind::String(s),
            serde_json::Value::Array(a) => {
                ValueKind::List(a.into_iter().map(|v| Value::from_json(pos, v)).collect())
            }
            serde_json::Value::Object(o) => ValueKind::Map(
                o.into_iter()
                    .map(|(key, v)| Entry {
                        key,
                        pos,
                        value: Value::from_json(pos, v),
                    })
                    .collect(),
            ),
        };
        Value { pos, kind }
    }
}

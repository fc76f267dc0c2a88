//! The HCL2 function library job files may call: the string, collection, encoding, numeric and
//! file functions Nomad jobs commonly use. hcl-rs and hcl-edit ship none, so drover declares them.
//!
//! Every function is deterministic: no clock, no randomness, no network. `file()` reads only
//! below the job file's directory.

use std::path::{Component, Path};

use serde_json::{Map, Value};

use super::eval::{template_string, type_name};

pub struct CallContext<'a> {
    pub base_dir: Option<&'a Path>,
}

/// The widest padding `indent()` and `format()` write (and `%f` precision): a width of 1e12
/// would otherwise allocate a terabyte before anything could refuse it.
const MAX_PAD: usize = 4096;

/// Largest file `file()` reads, so a job file cannot pull a disk image into the job.
const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// Names of every function, for "did you mean".
pub const NAMES: &[&str] = &[
    "abs",
    "base64decode",
    "base64encode",
    "ceil",
    "chomp",
    "coalesce",
    "coalescelist",
    "compact",
    "concat",
    "contains",
    "distinct",
    "element",
    "file",
    "fileexists",
    "flatten",
    "floor",
    "format",
    "formatlist",
    "indent",
    "index",
    "join",
    "jsondecode",
    "jsonencode",
    "keys",
    "length",
    "lookup",
    "lower",
    "max",
    "merge",
    "min",
    "range",
    "regex_replace",
    "replace",
    "reverse",
    "slice",
    "sort",
    "split",
    "strlen",
    "strrev",
    "substr",
    "title",
    "tobool",
    "tolist",
    "tomap",
    "tonumber",
    "toset",
    "tostring",
    "trim",
    "trimprefix",
    "trimspace",
    "trimsuffix",
    "upper",
    "values",
    "zipmap",
];

/// Functions Nomad's HCL2 offers (1.9 and later) that drover does not: calling one is an
/// "unsupported" error, not an unknown name. Some are left out on purpose: drover's functions are
/// deterministic (no clock, no randomness) and read no file outside the job's directory.
pub const UNSUPPORTED: &[&str] = &[
    "abspath",
    "basename",
    "bcrypt",
    "can",
    "chunklist",
    "cidrhost",
    "cidrnetmask",
    "cidrsubnet",
    "cidrsubnets",
    "convert",
    "csvdecode",
    "dirname",
    "filebase64",
    "fileset",
    "formatdate",
    "log",
    "md5",
    "parseint",
    "pathexpand",
    "pow",
    "rsadecrypt",
    "setintersection",
    "setproduct",
    "setunion",
    "sha1",
    "sha256",
    "sha512",
    "signum",
    "timeadd",
    "try",
    "urlencode",
    "uuidv4",
    "uuidv5",
    "yamldecode",
    "yamlencode",
];

pub fn call(name: &str, args: &[Value], ctx: &CallContext) -> Result<Value, String> {
    let f = Args { name, args };
    match name {
        "upper" => Ok(Value::String(f.str(0)?.to_uppercase())),
        "lower" => Ok(Value::String(f.str(0)?.to_lowercase())),
        "title" => {
            f.arity(1)?;
            Ok(Value::String(title(f.str(0)?)))
        }
        "trimspace" => Ok(Value::String(f.str(0)?.trim().to_string())),
        "trim" => {
            f.arity(2)?;
            let cut: Vec<char> = f.str(1)?.chars().collect();
            Ok(Value::String(
                f.str(0)?.trim_matches(cut.as_slice()).to_string(),
            ))
        }
        "trimprefix" => {
            f.arity(2)?;
            let (s, p) = (f.str(0)?, f.str(1)?);
            Ok(Value::String(s.strip_prefix(p).unwrap_or(s).to_string()))
        }
        "trimsuffix" => {
            f.arity(2)?;
            let (s, p) = (f.str(0)?, f.str(1)?);
            Ok(Value::String(s.strip_suffix(p).unwrap_or(s).to_string()))
        }
        "chomp" => Ok(Value::String(
            f.str(0)?.trim_end_matches(['\n', '\r']).to_string(),
        )),
        "strrev" => Ok(Value::String(f.str(0)?.chars().rev().collect())),
        "strlen" => Ok(Value::from(f.str(0)?.chars().count())),
        "indent" => {
            f.arity(2)?;
            let n = f.uint(0)?;
            if n > MAX_PAD {
                return Err(format!("indent(): at most {MAX_PAD} spaces, found {n}"));
            }
            let pad = " ".repeat(n);
            let s = f.str(1)?;
            Ok(Value::String(s.replace('\n', &format!("\n{pad}"))))
        }
        "substr" => {
            f.arity(3)?;
            let s: Vec<char> = f.str(0)?.chars().collect();
            let offset = f.int(1)?;
            let len = f.int(2)?;
            let start = if offset < 0 {
                (s.len() as i64 + offset).max(0)
            } else {
                offset.min(s.len() as i64)
            } as usize;
            let end = if len < 0 {
                s.len()
            } else {
                (start + len as usize).min(s.len())
            };
            Ok(Value::String(s[start..end].iter().collect()))
        }
        "replace" => {
            f.arity(3)?;
            Ok(Value::String(f.str(0)?.replace(f.str(1)?, f.str(2)?)))
        }
        "format" => format(&f).map(Value::String),
        "formatlist" => formatlist(&f),
        "join" => {
            f.arity(2)?;
            let sep = f.str(0)?;
            let parts = f
                .list(1)?
                .iter()
                .map(template_string)
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Value::String(parts.join(sep)))
        }
        "split" => {
            f.arity(2)?;
            let (sep, s) = (f.str(0)?, f.str(1)?);
            if s.is_empty() {
                return Ok(Value::Array(vec![Value::String(String::new())]));
            }
            Ok(Value::Array(
                s.split(sep).map(|p| Value::String(p.to_string())).collect(),
            ))
        }
        "concat" => {
            let mut out = Vec::new();
            for i in 0..args.len() {
                out.extend(f.list(i)?.iter().cloned());
            }
            Ok(Value::Array(out))
        }
        "merge" => {
            let mut out = Map::new();
            for (i, a) in args.iter().enumerate() {
                match a {
                    Value::Object(m) => out.extend(m.clone()),
                    Value::Null => {}
                    other => return Err(f.type_err(i, "object", other)),
                }
            }
            Ok(Value::Object(out))
        }
        "lookup" => {
            if !(2..=3).contains(&args.len()) {
                return Err("lookup(map, key, default) takes 2 or 3 arguments".into());
            }
            let m = f.object(0)?;
            let k = f.str(1)?;
            match (m.get(k), args.get(2)) {
                (Some(v), _) => Ok(v.clone()),
                (None, Some(d)) => Ok(d.clone()),
                (None, None) => Err(format!(
                    "lookup: no key {k:?} in the map and no default given"
                )),
            }
        }
        "keys" => Ok(Value::Array(
            f.object(0)?
                .keys()
                .map(|k| Value::String(k.clone()))
                .collect(),
        )),
        "values" => Ok(Value::Array(f.object(0)?.values().cloned().collect())),
        "length" => {
            f.arity(1)?;
            match &args[0] {
                Value::Array(a) => Ok(Value::from(a.len())),
                Value::Object(m) => Ok(Value::from(m.len())),
                Value::String(s) => Ok(Value::from(s.chars().count())),
                other => Err(f.type_err(0, "list, object or string", other)),
            }
        }
        "element" => {
            f.arity(2)?;
            let l = f.list(0)?;
            if l.is_empty() {
                return Err("element: cannot use element() on an empty list".into());
            }
            Ok(l[f.uint(1)? % l.len()].clone())
        }
        "index" => {
            f.arity(2)?;
            f.list(0)?
                .iter()
                .position(|v| values_equal(v, &args[1]))
                .map(Value::from)
                .ok_or_else(|| "index: the value is not in the list".to_string())
        }
        "contains" => {
            f.arity(2)?;
            Ok(Value::Bool(
                f.list(0)?.iter().any(|v| values_equal(v, &args[1])),
            ))
        }
        "distinct" | "toset" => {
            f.arity(1)?;
            let mut out: Vec<Value> = Vec::new();
            for v in f.list(0)? {
                if !out.iter().any(|o| values_equal(o, v)) {
                    out.push(v.clone());
                }
            }
            Ok(Value::Array(out))
        }
        "tolist" => Ok(Value::Array(f.list(0)?.to_vec())),
        "tomap" => Ok(Value::Object(f.object(0)?.clone())),
        "compact" => Ok(Value::Array(
            f.list(0)?
                .iter()
                .filter(|v| !matches!(v, Value::Null) && v.as_str() != Some(""))
                .cloned()
                .collect(),
        )),
        "flatten" => {
            fn flat(v: &[Value], out: &mut Vec<Value>) {
                for x in v {
                    match x {
                        Value::Array(a) => flat(a, out),
                        other => out.push(other.clone()),
                    }
                }
            }
            let mut out = Vec::new();
            flat(f.list(0)?, &mut out);
            Ok(Value::Array(out))
        }
        "reverse" => Ok(Value::Array(f.list(0)?.iter().rev().cloned().collect())),
        "sort" => {
            let mut items = f
                .list(0)?
                .iter()
                .map(template_string)
                .collect::<Result<Vec<_>, _>>()?;
            items.sort();
            Ok(Value::Array(items.into_iter().map(Value::String).collect()))
        }
        "slice" => {
            f.arity(3)?;
            let l = f.list(0)?;
            let (a, b) = (f.uint(1)?, f.uint(2)?);
            if a > b || b > l.len() {
                return Err(format!(
                    "slice: indexes {a}..{b} are out of range for a list of {}",
                    l.len()
                ));
            }
            Ok(Value::Array(l[a..b].to_vec()))
        }
        "zipmap" => {
            f.arity(2)?;
            let (k, v) = (f.list(0)?, f.list(1)?);
            if k.len() != v.len() {
                return Err("zipmap: the key and value lists must have the same length".into());
            }
            let mut out = Map::new();
            for (k, v) in k.iter().zip(v) {
                out.insert(template_string(k)?, v.clone());
            }
            Ok(Value::Object(out))
        }
        "range" => {
            let (start, end, step) = match args.len() {
                1 => (0.0, f.num(0)?, 1.0),
                2 => (f.num(0)?, f.num(1)?, 1.0),
                3 => (f.num(0)?, f.num(1)?, f.num(2)?),
                _ => return Err("range takes 1 to 3 arguments".into()),
            };
            if step == 0.0 || (end - start) / step > 1024.0 {
                return Err(
                    "range: the step must not be zero and the range at most 1024 long".into(),
                );
            }
            // Counted, not stepped: at 1e16 adding 1 leaves x unchanged and the loop never ends.
            let n = ((end - start) / step).ceil().clamp(0.0, 1024.0) as usize;
            Ok(Value::Array(
                (0..n).map(|i| number(start + i as f64 * step)).collect(),
            ))
        }
        "coalesce" => args
            .iter()
            .find(|v| !matches!(v, Value::Null) && v.as_str() != Some(""))
            .cloned()
            .ok_or_else(|| "coalesce: no non-null, non-empty argument".into()),
        "coalescelist" => args
            .iter()
            .find(|v| matches!(v, Value::Array(a) if !a.is_empty()))
            .cloned()
            .ok_or_else(|| "coalescelist: no non-empty list argument".into()),
        "min" | "max" => {
            if args.is_empty() {
                return Err(format!("{name} needs at least one number"));
            }
            let nums = (0..args.len())
                .map(|i| f.num(i))
                .collect::<Result<Vec<_>, _>>()?;
            let r = nums
                .into_iter()
                .reduce(|a, b| if (name == "min") == (a < b) { a } else { b });
            Ok(number(r.unwrap_or(0.0)))
        }
        "abs" => Ok(number(f.num(0)?.abs())),
        "ceil" => Ok(number(f.num(0)?.ceil())),
        "floor" => Ok(number(f.num(0)?.floor())),
        "tostring" => template_string(f.get(0)?).map(Value::String),
        "tonumber" => match f.get(0)? {
            Value::Number(n) => Ok(Value::Number(n.clone())),
            Value::String(s) => s
                .trim()
                .parse::<f64>()
                .map(number)
                .map_err(|_| format!("tonumber: {s:?} is not a number")),
            other => Err(f.type_err(0, "number or string", other)),
        },
        "tobool" => match f.get(0)? {
            Value::Bool(b) => Ok(Value::Bool(*b)),
            Value::String(s) if s == "true" => Ok(Value::Bool(true)),
            Value::String(s) if s == "false" => Ok(Value::Bool(false)),
            other => Err(f.type_err(0, "bool or \"true\"/\"false\"", other)),
        },
        "jsonencode" => {
            f.arity(1)?;
            serde_json::to_string(&args[0])
                .map(Value::String)
                .map_err(|e| e.to_string())
        }
        "jsondecode" => serde_json::from_str(f.str(0)?).map_err(|e| format!("jsondecode: {e}")),
        "base64encode" => Ok(Value::String(base64_encode(f.str(0)?.as_bytes()))),
        "base64decode" => {
            let bytes =
                base64_decode(f.str(0)?).ok_or("base64decode: the argument is not valid base64")?;
            String::from_utf8(bytes)
                .map(Value::String)
                .map_err(|_| "base64decode: the decoded bytes are not UTF-8".to_string())
        }
        "regex_replace" => {
            Err("regex_replace is not available in drover yet; use replace()".into())
        }
        "file" | "fileexists" => {
            let rel = f.str(0)?;
            let base = ctx.base_dir.ok_or_else(|| {
                format!("{name}() is not available here: the job was not read from a file")
            })?;
            let path = contained_path(base, rel)?;
            if name == "fileexists" {
                return Ok(Value::Bool(path.is_file()));
            }
            let meta = std::fs::metadata(&path).map_err(|e| format!("file({rel:?}): {e}"))?;
            if meta.len() > MAX_FILE_BYTES {
                return Err(format!(
                    "file({rel:?}): the file is larger than {MAX_FILE_BYTES} bytes"
                ));
            }
            let bytes = std::fs::read(&path).map_err(|e| format!("file({rel:?}): {e}"))?;
            String::from_utf8(bytes)
                .map(Value::String)
                .map_err(|_| format!("file({rel:?}): the file is not UTF-8 text"))
        }
        _ if UNSUPPORTED.contains(&name) => Err(format!(
            "function {name:?} is unsupported in drover: Nomad's HCL2 has it, drover implements only the functions listed in docs/jobspec.md"
        )),
        _ => Err(format!(
            "call to unknown function {name:?}{}",
            super::schema::did_you_mean(name, NAMES)
        )),
    }
}

/// Resolves `rel` below `base`, refusing absolute paths and `..` that climbs out.
fn contained_path(base: &Path, rel: &str) -> Result<std::path::PathBuf, String> {
    let p = Path::new(rel);
    let mut depth: i32 = 0;
    for c in p.components() {
        match c {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir => depth -= 1,
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!(
                    "file({rel:?}): the path must be relative to the job file"
                ));
            }
        }
        if depth < 0 {
            return Err(format!(
                "file({rel:?}): the path leaves the job file's directory"
            ));
        }
    }
    Ok(base.join(p))
}

struct Args<'a> {
    name: &'a str,
    args: &'a [Value],
}

impl<'a> Args<'a> {
    fn arity(&self, n: usize) -> Result<(), String> {
        if self.args.len() == n {
            Ok(())
        } else {
            Err(format!(
                "{}() takes {n} argument{}, got {}",
                self.name,
                if n == 1 { "" } else { "s" },
                self.args.len()
            ))
        }
    }

    fn get(&self, i: usize) -> Result<&'a Value, String> {
        self.args
            .get(i)
            .ok_or_else(|| format!("{}() is missing argument {}", self.name, i + 1))
    }

    fn type_err(&self, i: usize, want: &str, got: &Value) -> String {
        format!(
            "{}(): argument {} must be a {want}, found {}",
            self.name,
            i + 1,
            type_name(got)
        )
    }

    fn str(&self, i: usize) -> Result<&'a str, String> {
        match self.get(i)? {
            Value::String(s) => Ok(s),
            other => Err(self.type_err(i, "string", other)),
        }
    }

    fn num(&self, i: usize) -> Result<f64, String> {
        let v = self.get(i)?;
        to_f64(v).ok_or_else(|| self.type_err(i, "number", v))
    }

    fn int(&self, i: usize) -> Result<i64, String> {
        let n = self.num(i)?;
        if n.fract() != 0.0 {
            return Err(format!(
                "{}(): argument {} must be a whole number",
                self.name,
                i + 1
            ));
        }
        Ok(n as i64)
    }

    fn uint(&self, i: usize) -> Result<usize, String> {
        usize::try_from(self.int(i)?)
            .map_err(|_| format!("{}(): argument {} must not be negative", self.name, i + 1))
    }

    fn list(&self, i: usize) -> Result<&'a [Value], String> {
        match self.get(i)? {
            Value::Array(a) => Ok(a),
            other => Err(self.type_err(i, "list", other)),
        }
    }

    fn object(&self, i: usize) -> Result<&'a Map<String, Value>, String> {
        match self.get(i)? {
            Value::Object(m) => Ok(m),
            other => Err(self.type_err(i, "object", other)),
        }
    }
}

pub fn to_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        _ => None,
    }
}

/// A JSON number, integral when the value is.
pub fn number(x: f64) -> Value {
    if x.fract() == 0.0 && x.abs() < 9.0e15 {
        Value::from(x as i64)
    } else {
        serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)
    }
}

/// HCL equality: numbers compare by value (1 == 1.0).
pub fn values_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut at_start = true;
    for c in s.chars() {
        if at_start && c.is_alphabetic() {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        at_start = c.is_whitespace();
    }
    out
}

/// Go-style `format`: `%s %d %f %v %q %t %%`, with optional width and precision.
fn format(f: &Args) -> Result<String, String> {
    let spec = f.str(0)?;
    let mut out = String::new();
    let mut next = 1;
    let mut chars = spec.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut flags = String::new();
        while let Some(&d) = chars.peek() {
            if d.is_ascii_digit() || d == '.' || d == '-' {
                flags.push(d);
                chars.next();
            } else {
                break;
            }
        }
        let verb = chars
            .next()
            .ok_or("format: the format string ends in the middle of a verb")?;
        if verb == '%' {
            out.push('%');
            continue;
        }
        let arg = f
            .args
            .get(next)
            .ok_or_else(|| format!("format: not enough arguments for verb %{verb}"))?;
        next += 1;
        let (width, precision) = match flags.trim_start_matches('-').split_once('.') {
            Some((w, p)) => (w.parse::<usize>().ok(), p.parse::<usize>().ok()),
            None => (flags.trim_start_matches('-').parse::<usize>().ok(), None),
        };
        if width.unwrap_or(0).max(precision.unwrap_or(0)) > MAX_PAD {
            return Err(format!("format: a width or precision is at most {MAX_PAD}"));
        }
        let s = match verb {
            's' | 'v' => match arg {
                Value::Array(_) | Value::Object(_) => {
                    serde_json::to_string(arg).map_err(|e| e.to_string())?
                }
                other => template_string(other)?,
            },
            'q' => serde_json::to_string(&template_string(arg)?).map_err(|e| e.to_string())?,
            'd' => match to_f64(arg) {
                Some(n) if n.fract() == 0.0 => format!("{}", n as i64),
                _ => {
                    return Err(format!(
                        "format: %d needs a whole number, found {}",
                        type_name(arg)
                    ));
                }
            },
            'f' => match to_f64(arg) {
                Some(n) => format!("{:.*}", precision.unwrap_or(6), n),
                None => {
                    return Err(format!(
                        "format: %f needs a number, found {}",
                        type_name(arg)
                    ));
                }
            },
            't' => match arg {
                Value::Bool(b) => b.to_string(),
                other => {
                    return Err(format!(
                        "format: %t needs a bool, found {}",
                        type_name(other)
                    ));
                }
            },
            other => return Err(format!("format: unsupported verb %{other}")),
        };
        let pad = width.unwrap_or(0).saturating_sub(s.chars().count());
        if flags.starts_with('-') {
            out.push_str(&s);
            out.push_str(&" ".repeat(pad));
        } else {
            out.push_str(&" ".repeat(pad));
            out.push_str(&s);
        }
    }
    if next < f.args.len() {
        return Err(format!(
            "format: {} argument(s) left unused",
            f.args.len() - next
        ));
    }
    Ok(out)
}

fn formatlist(f: &Args) -> Result<Value, String> {
    let len = f.args[1..]
        .iter()
        .filter_map(|a| a.as_array().map(Vec::len))
        .max()
        .unwrap_or(1);
    let mut out = Vec::with_capacity(len);
    for i in 0..len {
        let row: Vec<Value> = f
            .args
            .iter()
            .enumerate()
            .map(|(j, a)| match a {
                Value::Array(items) if j > 0 => items.get(i).cloned().unwrap_or(Value::Null),
                other => other.clone(),
            })
            .collect();
        out.push(Value::String(format(&Args {
            name: "formatlist",
            args: &row,
        })?));
    }
    Ok(Value::Array(out))
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.bytes() {
        let v = B64.iter().position(|&b| b == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn c(name: &str, args: Vec<Value>) -> Result<Value, String> {
        call(name, &args, &CallContext { base_dir: None })
    }

    #[test]
    fn strings() {
        assert_eq!(c("upper", vec![json!("web")]).unwrap(), json!("WEB"));
        assert_eq!(
            c(
                "format",
                vec![
                    json!("%s-%03d|%-4s|%.2f"),
                    json!("a"),
                    json!(7),
                    json!("b"),
                    json!(1.5)
                ]
            )
            .unwrap(),
            json!("a-  7|b   |1.50")
        );
        assert_eq!(
            c("join", vec![json!(","), json!(["a", 1])]).unwrap(),
            json!("a,1")
        );
        assert_eq!(
            c("split", vec![json!(","), json!("a,b")]).unwrap(),
            json!(["a", "b"])
        );
        assert_eq!(
            c("substr", vec![json!("hello"), json!(1), json!(3)]).unwrap(),
            json!("ell")
        );
        assert_eq!(
            c("title", vec![json!("hello world")]).unwrap(),
            json!("Hello World")
        );
    }

    #[test]
    fn collections() {
        assert_eq!(
            c("concat", vec![json!([1]), json!([2, 3])]).unwrap(),
            json!([1, 2, 3])
        );
        assert_eq!(
            c("merge", vec![json!({"a": 1}), json!({"a": 2, "b": 3})]).unwrap(),
            json!({"a": 2, "b": 3})
        );
        assert_eq!(
            c("lookup", vec![json!({"a": 1}), json!("b"), json!(9)]).unwrap(),
            json!(9)
        );
        assert!(c("lookup", vec![json!({"a": 1}), json!("b")]).is_err());
        assert_eq!(
            c("flatten", vec![json!([[1], [2, [3]]])]).unwrap(),
            json!([1, 2, 3])
        );
        assert_eq!(c("range", vec![json!(3)]).unwrap(), json!([0, 1, 2]));
    }

    #[test]
    fn encodings() {
        assert_eq!(
            c("jsonencode", vec![json!({"a": [1, "x"]})]).unwrap(),
            json!(r#"{"a":[1,"x"]}"#)
        );
        for s in ["", "f", "fo", "foo", "foob", "fooba", "foobar"] {
            let enc = c("base64encode", vec![json!(s)]).unwrap();
            assert_eq!(c("base64decode", vec![enc]).unwrap(), json!(s));
        }
        assert_eq!(
            c("base64encode", vec![json!("foobar")]).unwrap(),
            json!("Zm9vYmFy")
        );
    }

    #[test]
    fn nomad_functions_drover_lacks_are_unsupported_not_unknown() {
        assert!(
            UNSUPPORTED.iter().all(|n| !NAMES.contains(n)),
            "a function is both implemented and unsupported"
        );
        let err = c("uuidv4", vec![]).unwrap_err();
        assert!(err.contains("is unsupported in drover"), "{err}");
    }

    #[test]
    fn unknown_function_suggests() {
        let err = c("uper", vec![json!("x")]).unwrap_err();
        assert!(err.contains("did you mean \"upper\""), "{err}");
    }

    #[test]
    fn file_stays_below_base() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("x.txt"), "hi").unwrap();
        let ctx = CallContext {
            base_dir: Some(dir.path()),
        };
        assert_eq!(call("file", &[json!("x.txt")], &ctx).unwrap(), json!("hi"));
        assert!(
            call("file", &[json!("../x.txt")], &ctx)
                .unwrap_err()
                .contains("leaves")
        );
        assert!(
            call("file", &[json!("/etc/passwd")], &ctx)
                .unwrap_err()
                .contains("relative")
        );
    }
}

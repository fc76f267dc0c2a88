//! Reads a Nomad HCL2 job file into the format-neutral [`tree`](super::tree): parses it with
//! hcl-edit (which keeps byte spans, so every problem gets a line and column), resolves
//! `variable` blocks (defaults, `-var-file`, `-var`), evaluates `locals`, expands `dynamic`
//! blocks and evaluates every attribute of the `job` block.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;

use hcl_edit::Span;
use hcl_edit::expr::Expression;
use hcl_edit::structure::{Block as HclBlock, BlockLabel, Body as HclBody, Structure};
use serde_json::{Map, Value};

use super::error::Diagnostic;
use super::eval::{EvalError, Scope, type_name};
use super::schema;
use super::tree::{Block, Body, Item, ItemKind, Label, Pos, Value as TreeValue, ValueKind};

/// Variable values given from outside the file: `-var-file` files (in order) and `-var k=v`.
#[derive(Debug, Clone, Default)]
pub struct VarInputs {
    /// (path shown in messages, file contents), applied in order.
    pub var_files: Vec<(String, String)>,
    /// `-var name=value` and `NOMAD_VAR_name`, as strings converted by the variable's type.
    pub vars: BTreeMap<String, String>,
}

/// The evaluated top of a file: its `job` blocks, plus any problems found on the way.
pub struct HclFile {
    pub body: Body,
    pub diagnostics: Vec<Diagnostic>,
}

struct Reader<'a> {
    src: &'a str,
    base_dir: Option<&'a Path>,
    diags: Vec<Diagnostic>,
}

pub fn read(src: &str, base_dir: Option<&Path>, inputs: &VarInputs) -> HclFile {
    let mut r = Reader {
        src,
        base_dir,
        diags: Vec::new(),
    };
    let body = match hcl_edit::parser::parse_body(src) {
        Ok(b) => b,
        Err(e) => {
            let loc = e.location();
            let at = Pos::new(loc.line().max(1) as u32, loc.column().max(1) as u32);
            let (pos, message) = match bracket_hint(src) {
                Some(hint) => hint,
                None => (
                    at,
                    redefined_attribute(src, at, e.message())
                        .unwrap_or_else(|| syntax_message(e.message())),
                ),
            };
            r.diags.push(Diagnostic::error(
                pos,
                "",
                format!("invalid HCL syntax: {message}"),
            ));
            return HclFile {
                body: Body {
                    pos: Pos::new(1, 1),
                    items: vec![],
                },
                diagnostics: r.diags,
            };
        }
    };
    let body = r.file(&body, inputs);
    HclFile {
        body,
        diagnostics: r.diags,
    }
}

/// hcl-edit refuses a repeated attribute without saying which: name it.
fn redefined_attribute(src: &str, at: Pos, message: &str) -> Option<String> {
    if !message.contains("redefined attribute") {
        return None;
    }
    let line = src.lines().nth(at.line as usize - 1)?;
    let rest: String = line.chars().skip(at.col as usize - 1).collect();
    let key: String = rest
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '-')
        .collect();
    (!key.is_empty()).then(|| format!("attribute {key:?} is set more than once in this block"))
}

/// What the parser's own message says least well about a file that failed to parse: a
/// bracket never closed (it reports only the end of the file), closed by the wrong kind, or
/// closed when nothing is open, and a string or heredoc left open. Found by a light scan that
/// knows strings, heredocs, interpolations and comments; used only once the parser has failed,
/// so a file it misjudges is still read by the real parser.
fn bracket_hint(src: &str) -> Option<(Pos, String)> {
    enum Ctx<'s> {
        Open(u8, usize),
        Str(usize),
        Interp(usize),
        Heredoc(&'s str, usize),
    }
    let b = src.as_bytes();
    let at = |i: usize| Pos::of_offset(src, i);
    let mut stack: Vec<Ctx> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        match stack.last() {
            Some(Ctx::Str(start)) => {
                let start = *start;
                match (c, next) {
                    (b'\\', _) => i += 1,
                    (b'"', _) => {
                        stack.pop();
                    }
                    (b'\n', _) => {
                        // `"${var.x"`: the quote read as opening a string closes the string
                        // around an interpolation whose `}` is missing.
                        if let [.., Ctx::Interp(open), Ctx::Str(_)] = stack.as_slice() {
                            return Some((at(*open), "this interpolation is not closed: expected `}` before the string ends".into()));
                        }
                        return Some((
                            at(start),
                            "this string is not closed: a quoted string ends on the line it starts"
                                .into(),
                        ));
                    }
                    (b'$' | b'%', Some(b'$' | b'%')) if b.get(i + 2) == Some(&b'{') => i += 2,
                    (b'$' | b'%', Some(b'{')) => {
                        stack.push(Ctx::Interp(i));
                        i += 1;
                    }
                    _ => {}
                }
            }
            Some(Ctx::Heredoc(marker, start)) => {
                let (marker, start) = (*marker, *start);
                if i == 0 || b[i - 1] == b'\n' {
                    let end = src[i..].find('\n').map_or(src.len(), |n| i + n);
                    if src[i..end].trim() == marker {
                        stack.pop();
                        i = end;
                        continue;
                    }
                }
                match (c, next) {
                    (b'$' | b'%', Some(b'$' | b'%')) if b.get(i + 2) == Some(&b'{') => i += 2,
                    (b'$' | b'%', Some(b'{')) => {
                        stack.push(Ctx::Interp(i));
                        i += 1;
                    }
                    _ => {}
                }
                if i + 1 >= b.len() {
                    return Some((
                        at(start),
                        format!(
                            "this heredoc is not closed: expected a line holding only {marker} before the end of the file"
                        ),
                    ));
                }
            }
            _ => match (c, next) {
                (b'#', _) | (b'/', Some(b'/')) => {
                    i = src[i..].find('\n').map_or(b.len(), |n| i + n);
                    continue;
                }
                (b'/', Some(b'*')) => match src[i + 2..].find("*/") {
                    Some(n) => i += n + 3,
                    None => return Some((at(i), "this comment is not closed: expected */".into())),
                },
                (b'"', _) => stack.push(Ctx::Str(i)),
                (b'<', Some(b'<')) => {
                    let rest = &src[i + 2..];
                    let name_start = usize::from(rest.starts_with('-'));
                    let line_end = rest.find('\n').unwrap_or(rest.len());
                    let marker = rest[name_start..line_end].trim_end();
                    if !marker.is_empty() && marker.chars().all(|c| c.is_alphanumeric() || c == '_')
                    {
                        stack.push(Ctx::Heredoc(marker, i));
                        i += 2 + line_end;
                    }
                }
                (b'{' | b'[' | b'(', _) => stack.push(Ctx::Open(c, i)),
                (b'}' | b']' | b')', _) => {
                    let want = match c {
                        b'}' => b'{',
                        b']' => b'[',
                        _ => b'(',
                    };
                    match stack.last() {
                        Some(Ctx::Interp(_)) if c == b'}' => {
                            stack.pop();
                        }
                        Some(Ctx::Open(open, _)) if *open == want => {
                            stack.pop();
                        }
                        Some(Ctx::Open(open, start)) => {
                            let close = at(i);
                            return Some((
                                at(*start),
                                format!(
                                    "this `{}` is not closed: found `{}` at {}:{} first",
                                    *open as char, c as char, close.line, close.col
                                ),
                            ));
                        }
                        Some(Ctx::Interp(start)) => {
                            return Some((
                                at(*start),
                                format!(
                                    "this interpolation is not closed: found `{}` first",
                                    c as char
                                ),
                            ));
                        }
                        _ => {
                            return Some((
                                at(i),
                                format!(
                                    "unexpected `{}`: nothing is open here to close",
                                    c as char
                                ),
                            ));
                        }
                    }
                }
                _ => {}
            },
        }
        i += 1;
    }
    match stack.last()? {
        Ctx::Open(open, start) => Some((
            at(*start),
            format!(
                "this `{}` is not closed: the file ends first",
                *open as char
            ),
        )),
        Ctx::Interp(start) => Some((
            at(*start),
            "this interpolation is not closed: the file ends first".into(),
        )),
        Ctx::Str(start) => Some((
            at(*start),
            "this string is not closed: the file ends first".into(),
        )),
        Ctx::Heredoc(marker, start) => Some((
            at(*start),
            format!(
                "this heredoc is not closed: expected a line holding only {marker} before the end of the file"
            ),
        )),
    }
}

fn syntax_message(m: &str) -> String {
    let m = m.trim();
    if m.is_empty() {
        "unexpected input".into()
    } else {
        m.to_string()
    }
}

/// Top-level names of a Nomad agent configuration file.
const AGENT_CONFIG_KEYS: &[&str] = &[
    "client",
    "server",
    "data_dir",
    "log_level",
    "bind_addr",
    "datacenter",
    "advertise",
    "ports",
    "addresses",
    "acl",
    "telemetry",
    "plugin",
    "tls",
    "consul",
    "vault",
    "autopilot",
    "ui",
    "name",
    "region",
    "leave_on_interrupt",
    "leave_on_terminate",
    "enable_syslog",
    "log_file",
];

/// A declared `variable` block.
struct VarDecl<'b> {
    name: String,
    pos: Pos,
    type_src: Option<String>,
    default: Option<&'b Expression>,
    validations: Vec<(&'b Expression, Option<&'b Expression>)>,
}

impl<'a> Reader<'a> {
    fn pos(&self, span: Option<Range<usize>>) -> Pos {
        span.map_or(Pos::new(1, 1), |s| Pos::of_offset(self.src, s.start))
    }

    fn eval_error(&mut self, field: &str, e: EvalError) {
        if e.cascade {
            return;
        }
        let pos = self.pos(e.span);
        self.diags.push(Diagnostic::error(pos, field, e.message));
    }

    fn file(&mut self, body: &HclBody, inputs: &VarInputs) -> Body {
        let mut decls: Vec<VarDecl> = Vec::new();
        let mut local_attrs = Vec::new();
        let mut jobs = Vec::new();
        for s in body.iter() {
            match s {
                Structure::Block(b) => match b.ident.value().as_str() {
                    "variable" => {
                        if let Some(d) = self.variable(b) {
                            if decls.iter().any(|x| x.name == d.name) {
                                self.diags.push(Diagnostic::error(
                                    d.pos,
                                    format!("variable {:?}", d.name),
                                    "variable declared more than once",
                                ));
                            } else {
                                decls.push(d);
                            }
                        }
                    }
                    "variables" => {
                        for s in b.body.iter() {
                            match s {
                                Structure::Attribute(a) => decls.push(VarDecl {
                                    name: a.key.value().to_string(),
                                    pos: self.pos(a.span()),
                                    type_src: None,
                                    default: Some(&a.value),
                                    validations: vec![],
                                }),
                                Structure::Block(inner) => self.diags.push(Diagnostic::error(
                                    self.pos(inner.span()),
                                    "variables",
                                    "a variables block holds only `name = default` attributes",
                                )),
                            }
                        }
                    }
                    "locals" => {
                        for s in b.body.iter() {
                            match s {
                                Structure::Attribute(a) => local_attrs.push(a),
                                Structure::Block(inner) => self.diags.push(Diagnostic::error(
                                    self.pos(inner.span()),
                                    "locals",
                                    "a locals block holds only `name = expression` attributes",
                                )),
                            }
                        }
                    }
                    "job" => jobs.push(b),
                    other => self.unknown_top(other, self.pos(b.span()), "block"),
                },
                Structure::Attribute(a) => {
                    self.unknown_top(a.key.value().as_str(), self.pos(a.span()), "attribute")
                }
            }
        }

        let vars = self.resolve_vars(&decls, inputs);
        let failed_vars: Vec<String> = decls
            .iter()
            .filter(|d| !vars.contains_key(&d.name))
            .map(|d| d.name.clone())
            .collect();
        let (locals, failed_locals) = self.resolve_locals(&local_attrs, &vars, &failed_vars);
        let mut scope = Scope::new(self.src, &vars, &locals, self.base_dir)
            .with_failed(&failed_vars, &failed_locals);
        let items = jobs
            .into_iter()
            .map(|b| self.block_item(b, &mut scope, "job"))
            .collect();
        Body {
            pos: Pos::new(1, 1),
            items,
        }
    }

    fn unknown_top(&mut self, name: &str, pos: Pos, what: &str) {
        // Nomad's agent configuration is HCL too, and lands in job directories by mistake.
        let hint = if AGENT_CONFIG_KEYS.contains(&name) {
            "; this looks like a Nomad agent configuration, not a job file".to_string()
        } else {
            schema::did_you_mean(name, schema::FILE.supported)
        };
        self.diags.push(Diagnostic::error(
            pos,
            name,
            format!(
                "unknown top-level {what} {name:?}: a job file holds one `job` block, plus `variable`, `variables` and `locals`{hint}"
            ),
        ));
    }

    fn variable<'b>(&mut self, b: &'b HclBlock) -> Option<VarDecl<'b>> {
        let pos = self.pos(b.span());
        let [label] = b.labels.as_slice() else {
            self.diags.push(Diagnostic::error(
                pos,
                "variable",
                "a variable block takes exactly one label, its name: variable \"name\" { … }",
            ));
            return None;
        };
        let name = label_str(label).to_string();
        let field = format!("variable {name:?}");
        let mut d = VarDecl {
            name,
            pos,
            type_src: None,
            default: None,
            validations: vec![],
        };
        for s in b.body.iter() {
            match s {
                Structure::Attribute(a) => match a.key.value().as_str() {
                    "default" => d.default = Some(&a.value),
                    "type" => {
                        d.type_src = a
                            .value
                            .span()
                            .and_then(|s| self.src.get(s))
                            .map(|s| s.trim().to_string())
                    }
                    "description" | "sensitive" | "nullable" => {}
                    other => self.diags.push(Diagnostic::error(
                        self.pos(a.span()),
                        &field,
                        format!(
                            "unknown attribute {other:?}{}",
                            schema::did_you_mean(other, schema::VARIABLE.supported)
                        ),
                    )),
                },
                Structure::Block(v) if v.ident.value().as_str() == "validation" => {
                    let mut cond = None;
                    let mut msg = None;
                    for s in v.body.iter() {
                        if let Structure::Attribute(a) = s {
                            match a.key.value().as_str() {
                                "condition" => cond = Some(&a.value),
                                "error_message" => msg = Some(&a.value),
                                _ => {}
                            }
                        }
                    }
                    match cond {
                        Some(c) => d.validations.push((c, msg)),
                        None => self.diags.push(Diagnostic::error(
                            self.pos(v.span()),
                            format!("{field} > validation"),
                            "condition is required",
                        )),
                    }
                }
                Structure::Block(other) => self.diags.push(Diagnostic::error(
                    self.pos(other.span()),
                    &field,
                    format!("unknown block {:?}", other.ident.value().as_str()),
                )),
            }
        }
        Some(d)
    }

    fn resolve_vars(&mut self, decls: &[VarDecl], inputs: &VarInputs) -> Map<String, Value> {
        let empty = Map::new();
        let mut from_files: BTreeMap<String, Value> = BTreeMap::new();
        for (path, content) in &inputs.var_files {
            match read_var_file(path, content) {
                Ok(values) => from_files.extend(values),
                Err(d) => self.diags.push(d),
            }
        }
        for name in inputs.vars.keys().chain(from_files.keys()) {
            if !decls.iter().any(|d| &d.name == name) {
                let known: Vec<&str> = decls.iter().map(|d| d.name.as_str()).collect();
                self.diags.push(Diagnostic::error(
                    Pos::new(1, 1),
                    "",
                    format!(
                        "a value was given for undeclared variable {name:?}; declare it with variable {name:?} {{}}{}",
                        schema::did_you_mean(name, &known)
                    ),
                ));
            }
        }

        let mut vars = Map::new();
        for d in decls {
            let field = format!("variable {:?}", d.name);
            let value = if let Some(raw) = inputs.vars.get(&d.name) {
                match convert_cli_var(raw, d.type_src.as_deref()) {
                    Ok(v) => Some(v),
                    Err(m) => {
                        self.diags.push(Diagnostic::error(
                            d.pos,
                            &field,
                            format!("-var {}: {m}", d.name),
                        ));
                        continue;
                    }
                }
            } else if let Some(v) = from_files.get(&d.name) {
                Some(v.clone())
            } else if let Some(expr) = d.default {
                let mut scope = Scope::new(self.src, &empty, &empty, self.base_dir);
                match scope.eval(expr) {
                    Ok(v) => Some(v),
                    Err(e) => {
                        self.eval_error(&field, e);
                        continue;
                    }
                }
            } else {
                None
            };
            let Some(value) = value else {
                self.diags.push(Diagnostic::error(
                    d.pos,
                    &field,
                    format!(
                        "unresolvable variable: {:?} has no default and no value was given (set it with -var {}=…, a -var-file or NOMAD_VAR_{})",
                        d.name, d.name, d.name
                    ),
                ));
                continue;
            };
            if let Some(m) = check_type(&value, d.type_src.as_deref()) {
                self.diags.push(Diagnostic::error(d.pos, &field, m));
                continue;
            }
            vars.insert(d.name.clone(), value);
        }

        for d in decls {
            if !vars.contains_key(&d.name) {
                continue;
            }
            for (cond, msg) in &d.validations {
                let mut scope = Scope::new(self.src, &vars, &empty, self.base_dir);
                match scope.eval(cond) {
                    Ok(Value::Bool(true)) => {}
                    Ok(Value::Bool(false)) => {
                        let text = msg
                            .and_then(|m| Scope::new(self.src, &vars, &empty, None).eval(m).ok())
                            .and_then(|v| v.as_str().map(str::to_string))
                            .unwrap_or_else(|| "the value failed its validation condition".into());
                        self.diags.push(Diagnostic::error(
                            self.pos(cond.span()),
                            format!("variable {:?} > validation", d.name),
                            text,
                        ));
                    }
                    Ok(other) => self.diags.push(Diagnostic::error(
                        self.pos(cond.span()),
                        format!("variable {:?} > validation", d.name),
                        format!("condition must be a bool, found {}", type_name(&other)),
                    )),
                    Err(e) => self.eval_error(&format!("variable {:?} > validation", d.name), e),
                }
            }
        }
        vars
    }

    /// Locals may refer to each other in any order: evaluate until nothing more resolves.
    /// Returns the locals and the names of those that failed.
    fn resolve_locals(
        &mut self,
        attrs: &[&hcl_edit::structure::Attribute],
        vars: &Map<String, Value>,
        failed_vars: &[String],
    ) -> (Map<String, Value>, Vec<String>) {
        let mut locals = Map::new();
        let mut pending: Vec<&hcl_edit::structure::Attribute> = Vec::new();
        for a in attrs {
            if pending.iter().any(|p| p.key.value() == a.key.value()) {
                self.diags.push(Diagnostic::error(
                    self.pos(a.span()),
                    format!("locals > {}", a.key.value().as_str()),
                    "local value defined more than once",
                ));
            } else {
                pending.push(a);
            }
        }
        loop {
            let mut progressed = false;
            let mut still = Vec::new();
            for a in pending {
                let mut scope = Scope::new(self.src, vars, &locals, self.base_dir)
                    .with_failed(failed_vars, &[]);
                match scope.eval(&a.value) {
                    Ok(v) => {
                        locals.insert(a.key.value().to_string(), v);
                        progressed = true;
                    }
                    Err(_) => still.push(a),
                }
            }
            pending = still;
            if pending.is_empty() || !progressed {
                break;
            }
        }
        // What is left failed on its own or because it refers to another failed local: evaluate
        // once more knowing which, so only the root causes are reported.
        let failed: Vec<String> = pending.iter().map(|a| a.key.value().to_string()).collect();
        let mut errors = Vec::new();
        for a in &pending {
            let mut scope = Scope::new(self.src, vars, &locals, self.base_dir)
                .with_failed(failed_vars, &failed);
            if let Err(e) = scope.eval(&a.value) {
                errors.push((*a, e));
            }
        }
        let only_cascades = errors.iter().all(|(_, e)| e.cascade);
        for (a, mut e) in errors {
            if only_cascades && failed_vars.is_empty() {
                // Nothing failed by itself: the locals refer to each other in a circle.
                e.cascade = false;
                e.message = format!(
                    "local.{} cannot be computed: it depends on local values that depend on each other in a cycle ({})",
                    a.key.value().as_str(),
                    failed
                        .iter()
                        .map(|n| format!("local.{n}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            self.eval_error(&format!("locals > {}", a.key.value().as_str()), e);
        }
        (locals, failed)
    }

    fn block_item(&mut self, b: &HclBlock, scope: &mut Scope, path: &str) -> Item {
        let labels: Vec<Label> = b
            .labels
            .iter()
            .map(|l| Label {
                name: label_str(l).to_string(),
                pos: self.pos(l.span()),
            })
            .collect();
        let path = match labels.first() {
            Some(l) => format!("{path} {:?}", l.name),
            None => path.to_string(),
        };
        let body = self.body(&b.body, scope, &path);
        Item {
            key: b.ident.value().to_string(),
            pos: self.pos(b.span()),
            kind: ItemKind::Block(Block { labels, body }),
        }
    }

    fn body(&mut self, body: &HclBody, scope: &mut Scope, path: &str) -> Body {
        let mut items = Vec::new();
        for s in body.iter() {
            match s {
                Structure::Attribute(a) => {
                    let key = a.key.value().to_string();
                    let field = format!("{path} > {key}");
                    let value_pos = self.pos(a.value.span());
                    let value = match scope.eval(&a.value) {
                        Ok(v) => TreeValue::from_json(value_pos, v),
                        Err(e) => {
                            self.eval_error(&field, e);
                            // Kept, so the decoder does not also call a set attribute missing.
                            TreeValue {
                                pos: value_pos,
                                kind: ValueKind::Invalid,
                            }
                        }
                    };
                    items.push(Item {
                        key,
                        pos: self.pos(a.span()),
                        kind: ItemKind::Attr(value),
                    });
                }
                Structure::Block(b) if b.ident.value().as_str() == "dynamic" => {
                    self.dynamic(b, scope, path, &mut items);
                }
                Structure::Block(b) => {
                    let child = format!("{path} > {}", b.ident.value().as_str());
                    items.push(self.block_item(b, scope, &child));
                }
            }
        }
        Body {
            pos: Pos::new(1, 1),
            items,
        }
    }

    /// `dynamic "port" { for_each = …, iterator = "p", labels = […], content { … } }`.
    fn dynamic(&mut self, b: &HclBlock, scope: &mut Scope, path: &str, items: &mut Vec<Item>) {
        let pos = self.pos(b.span());
        let [label] = b.labels.as_slice() else {
            self.diags.push(Diagnostic::error(
                pos,
                format!("{path} > dynamic"),
                "a dynamic block takes one label, the name of the block it generates",
            ));
            return;
        };
        let name = label_str(label).to_string();
        let field = format!("{path} > dynamic {name:?}");
        let mut for_each = None;
        let mut iterator = name.clone();
        let mut labels_expr = None;
        let mut content = None;
        for s in b.body.iter() {
            match s {
                Structure::Attribute(a) => match a.key.value().as_str() {
                    "for_each" => for_each = Some(&a.value),
                    "labels" => labels_expr = Some(&a.value),
                    "iterator" => match &a.value {
                        Expression::Variable(v) => iterator = v.value().to_string(),
                        other => match scope.eval(other) {
                            Ok(Value::String(s)) => iterator = s,
                            _ => self.diags.push(Diagnostic::error(
                                self.pos(a.span()),
                                &field,
                                "iterator must be a name",
                            )),
                        },
                    },
                    other => self.diags.push(Diagnostic::error(
                        self.pos(a.span()),
                        &field,
                        format!("unknown attribute {other:?} in a dynamic block (expected for_each, iterator, labels, content)"),
                    )),
                },
                Structure::Block(c) if c.ident.value().as_str() == "content" => content = Some(c),
                Structure::Block(c) => self.diags.push(Diagnostic::error(
                    self.pos(c.span()),
                    &field,
                    format!("unknown block {:?} in a dynamic block (expected content)", c.ident.value().as_str()),
                )),
            }
        }
        let (Some(for_each), Some(content)) = (for_each, content) else {
            self.diags.push(Diagnostic::error(
                pos,
                &field,
                "a dynamic block needs for_each and a content block",
            ));
            return;
        };
        let collection = match scope.eval(for_each) {
            Ok(v) => v,
            Err(e) => return self.eval_error(&field, e),
        };
        let pairs: Vec<(Value, Value)> = match collection {
            Value::Array(a) => a
                .into_iter()
                .enumerate()
                .map(|(i, v)| (Value::from(i), v))
                .collect(),
            Value::Object(m) => m.into_iter().map(|(k, v)| (Value::String(k), v)).collect(),
            other => {
                self.diags.push(Diagnostic::error(
                    self.pos(for_each.span()),
                    &field,
                    format!(
                        "for_each must be a list or an object, found {}",
                        type_name(&other)
                    ),
                ));
                return;
            }
        };
        for (k, v) in pairs {
            let mut it = Map::new();
            it.insert("key".into(), k);
            it.insert("value".into(), v);
            scope.push_iter(iterator.clone(), Value::Object(it));
            let labels = match labels_expr.map(|e| scope.eval(e)) {
                None => Ok(vec![]),
                Some(Ok(Value::Array(ls))) => ls
                    .iter()
                    .map(|l| l.as_str().map(str::to_string).ok_or(()))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|_| {
                        EvalError::new(
                            labels_expr.and_then(|e| e.span()),
                            "labels must be a list of strings",
                        )
                    }),
                Some(Ok(_)) => Err(EvalError::new(
                    labels_expr.and_then(|e| e.span()),
                    "labels must be a list of strings",
                )),
                Some(Err(e)) => Err(e),
            };
            match labels {
                Ok(labels) => {
                    let child = match labels.first() {
                        Some(l) => format!("{path} > {name} {l:?}"),
                        None => format!("{path} > {name}"),
                    };
                    let body = self.body(&content.body, scope, &child);
                    items.push(Item {
                        key: name.clone(),
                        pos,
                        kind: ItemKind::Block(Block {
                            labels: labels.into_iter().map(|name| Label { name, pos }).collect(),
                            body,
                        }),
                    });
                }
                Err(e) => self.eval_error(&field, e),
            }
            scope.pop_iter();
        }
    }
}

fn label_str(l: &BlockLabel) -> &str {
    match l {
        BlockLabel::Ident(i) => i.value().as_str(),
        BlockLabel::String(s) => s.value().as_str(),
    }
}

/// A `-var-file`: HCL `name = value` attributes, or a JSON object.
fn read_var_file(path: &str, content: &str) -> Result<BTreeMap<String, Value>, Diagnostic> {
    if path.ends_with(".json") {
        return match serde_json::from_str::<Value>(content) {
            Ok(Value::Object(m)) => Ok(m.into_iter().collect()),
            Ok(_) => Err(Diagnostic::error(
                Pos::new(1, 1),
                format!("-var-file {path}"),
                "expected a JSON object",
            )),
            Err(e) => Err(Diagnostic::error(
                Pos::new(e.line() as u32, e.column() as u32),
                format!("-var-file {path}"),
                format!("invalid JSON: {e}"),
            )),
        };
    }
    let body = hcl_edit::parser::parse_body(content).map_err(|e| {
        Diagnostic::error(
            Pos::new(e.location().line() as u32, e.location().column() as u32),
            format!("-var-file {path}"),
            format!("invalid HCL syntax: {}", syntax_message(e.message())),
        )
    })?;
    let empty = Map::new();
    let mut out = BTreeMap::new();
    for s in body.iter() {
        match s {
            Structure::Attribute(a) => {
                let v = Scope::new(content, &empty, &empty, None)
                    .eval(&a.value)
                    .map_err(|e| {
                        Diagnostic::error(
                            e.span
                                .map_or(Pos::new(1, 1), |s| Pos::of_offset(content, s.start)),
                            format!("-var-file {path} > {}", a.key.value().as_str()),
                            e.message,
                        )
                    })?;
                out.insert(a.key.value().to_string(), v);
            }
            Structure::Block(b) => {
                return Err(Diagnostic::error(
                    b.span()
                        .map_or(Pos::new(1, 1), |s| Pos::of_offset(content, s.start)),
                    format!("-var-file {path}"),
                    "a variables file holds only `name = value` attributes",
                ));
            }
        }
    }
    Ok(out)
}

/// Converts a `-var name=value` string by the variable's declared type.
fn convert_cli_var(raw: &str, type_src: Option<&str>) -> Result<Value, String> {
    let ty = type_src.unwrap_or("string");
    match ty {
        "string" | "any" => Ok(Value::String(raw.to_string())),
        "number" => raw
            .trim()
            .parse::<f64>()
            .map(super::funcs::number)
            .map_err(|_| format!("{raw:?} is not a number")),
        "bool" => match raw.trim() {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err(format!("{raw:?} is not a bool (true or false)")),
        },
        _ => {
            let expr = hcl_edit::parser::parse_expr(raw)
                .map_err(|e| format!("{raw:?} is not a valid HCL value: {}", e.message()))?;
            let empty = Map::new();
            Scope::new(raw, &empty, &empty, None)
                .eval(&expr)
                .map_err(|e| e.message)
        }
    }
}

/// Checks a value against a simple type constraint; `None` when it fits.
fn check_type(v: &Value, type_src: Option<&str>) -> Option<String> {
    let ty = type_src?.replace(char::is_whitespace, "");
    let ok = match ty.as_str() {
        "string" => v.is_string() || v.is_number() || v.is_boolean(),
        "number" => v.is_number(),
        "bool" => v.is_boolean(),
        t if t.starts_with("list(") || t.starts_with("set(") || t.starts_with("tuple(") => {
            v.is_array()
        }
        t if t.starts_with("map(") || t.starts_with("object(") => v.is_object(),
        _ => true,
    };
    (!ok && !v.is_null()).then(|| {
        format!(
            "the value is a {}, but the variable's type is {ty}",
            type_name(v)
        )
    })
}

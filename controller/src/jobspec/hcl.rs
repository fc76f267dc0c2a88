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
use super::tree::{Block, Body, Item, ItemKind, Label, Pos, Value as TreeValue};

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
            r.diags.push(Diagnostic::error(
                Pos::new(loc.line() as u32, loc.column() as u32),
                "",
                format!("invalid HCL syntax: {}", syntax_message(e.message())),
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

fn syntax_message(m: &str) -> String {
    let m = m.trim();
    if m.is_empty() {
        "unexpected input".into()
    } else {
        m.to_string()
    }
}

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
        let locals = self.resolve_locals(&local_attrs, &vars);
        let mut scope = Scope::new(self.src, &vars, &locals, self.base_dir);
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
        self.diags.push(Diagnostic::error(
            pos,
            "",
            format!(
                "unknown top-level {what} {name:?}: a job file holds one `job` block, plus `variable`, `variables` and `locals`{}",
                schema::did_you_mean(name, schema::FILE.supported)
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
    fn resolve_locals(
        &mut self,
        attrs: &[&hcl_edit::structure::Attribute],
        vars: &Map<String, Value>,
    ) -> Map<String, Value> {
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
            let mut last_errors = Vec::new();
            for a in pending {
                let mut scope = Scope::new(self.src, vars, &locals, self.base_dir);
                match scope.eval(&a.value) {
                    Ok(v) => {
                        locals.insert(a.key.value().to_string(), v);
                        progressed = true;
                    }
                    Err(e) => {
                        last_errors.push((a, e));
                        still.push(a);
                    }
                }
            }
            pending = still;
            if pending.is_empty() || !progressed {
                for (a, e) in last_errors {
                    self.eval_error(&format!("locals > {}", a.key.value().as_str()), e);
                }
                return locals;
            }
        }
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
                    match scope.eval(&a.value) {
                        Ok(v) => items.push(Item {
                            key,
                            pos: self.pos(a.span()),
                            kind: ItemKind::Attr(TreeValue::from_json(value_pos, v)),
                        }),
                        Err(e) => self.eval_error(&field, e),
                    }
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
                    .map_err(|_| EvalError {
                        span: labels_expr.and_then(|e| e.span()),
                        message: "labels must be a list of strings".into(),
                    }),
                Some(Ok(_)) => Err(EvalError {
                    span: labels_expr.and_then(|e| e.span()),
                    message: "labels must be a list of strings".into(),
                }),
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

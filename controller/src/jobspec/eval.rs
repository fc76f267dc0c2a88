//! Evaluation of HCL2 expressions in a job file: `var.x`, `local.y`, operators, conditionals,
//! `for` expressions, templates and the function library in [`super::funcs`].
//!
//! Runtime interpolations (`${NOMAD_PORT_http}`, `${attr.kernel.name}`, `${node.unique.name}`,
//! `${meta.x}`) cannot be known when the file is parsed: they are kept as text for the node to
//! resolve, as Nomad does, whether written inside a string or bare (`address = attr.unique.x`
//! becomes the string `"${attr.unique.x}"`).

use std::cell::Cell;
use std::ops::Range;
use std::path::Path;

use hcl_edit::Span;
use hcl_edit::expr::{
    BinaryOperator, Expression, ForExpr, FuncCall, ObjectKey, TraversalOperator, UnaryOperator,
};
use hcl_edit::template::{Directive, Element, Template};
use serde_json::{Map, Value};

use super::funcs;

/// An evaluation failure with the byte range of the expression that caused it.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalError {
    pub span: Option<Range<usize>>,
    pub message: String,
    /// The expression refers to a variable or local whose own evaluation failed: that failure
    /// was already reported where it happened, so this one is not worth a second message.
    pub cascade: bool,
}

impl EvalError {
    pub fn new(span: Option<Range<usize>>, message: impl Into<String>) -> Self {
        EvalError {
            span,
            message: message.into(),
            cascade: false,
        }
    }
}

type EvalResult<T> = Result<T, EvalError>;

/// What names mean while evaluating one expression.
pub struct Scope<'a> {
    /// The file's source, to keep runtime interpolations as they were written.
    pub src: &'a str,
    /// `var.*`: declared variables with their final values.
    pub vars: &'a Map<String, Value>,
    /// `local.*`: the locals resolved so far.
    pub locals: &'a Map<String, Value>,
    /// The directory `file()` paths are relative to; `None` disables `file()`.
    pub base_dir: Option<&'a Path>,
    /// Declared variables and locals that have no value because evaluating them failed.
    failed_vars: &'a [String],
    failed_locals: &'a [String],
    /// Bytes of values this file's expressions may still build; `None` inside once spent.
    budget: Option<&'a Cell<Option<usize>>>,
    /// Iteration variables of enclosing `for` expressions, innermost last.
    iter: Vec<(String, Value)>,
}

impl<'a> Scope<'a> {
    pub fn new(
        src: &'a str,
        vars: &'a Map<String, Value>,
        locals: &'a Map<String, Value>,
        base_dir: Option<&'a Path>,
    ) -> Self {
        Scope {
            src,
            vars,
            locals,
            base_dir,
            failed_vars: &[],
            failed_locals: &[],
            budget: None,
            iter: Vec::new(),
        }
    }

    /// Names whose evaluation already failed: a reference to one is a [`EvalError::cascade`].
    pub fn with_failed(mut self, vars: &'a [String], locals: &'a [String]) -> Self {
        self.failed_vars = vars;
        self.failed_locals = locals;
        self
    }

    /// Shares a budget of value bytes across every scope of one file. Without it, a few lines
    /// can build values that double at every step (`b = "${a}${a}"`, `c = [b, b]` …) or copy
    /// a large value many times, and exhaust memory before any error is seen.
    pub fn with_budget(mut self, budget: &'a Cell<Option<usize>>) -> Self {
        self.budget = Some(budget);
        self
    }

    /// Spends the size of a value just built or copied from the budget.
    fn charge(&self, v: Value, span: Option<Range<usize>>) -> EvalResult<Value> {
        let Some(budget) = self.budget else {
            return Ok(v);
        };
        let Some(left) = budget.get() else {
            // Reported once, where it ran out; everything after would only repeat it.
            return Err(EvalError {
                span,
                message: "the file's value budget is spent".into(),
                cascade: true,
            });
        };
        match left.checked_sub(value_size(&v, left)) {
            Some(rest) => {
                budget.set(Some(rest));
                Ok(v)
            }
            None => {
                budget.set(None);
                Err(EvalError::new(
                    span,
                    format!(
                        "the expressions in this file build more than {} MiB of values; a job file needs far less (a value that doubles at every step?)",
                        VALUE_BUDGET >> 20
                    ),
                ))
            }
        }
    }

    fn is_iter(&self, name: &str) -> bool {
        self.iter.iter().any(|(n, _)| n == name)
    }

    /// `var.NAME` or `local.NAME`, read by name rather than by cloning the whole map.
    fn named_value(&self, root: &str, name: &str, span: Option<Range<usize>>) -> EvalResult<Value> {
        let (map, failed) = match root {
            "var" => (self.vars, self.failed_vars),
            _ => (self.locals, self.failed_locals),
        };
        if let Some(v) = map.get(name) {
            return self.charge(v.clone(), span);
        }
        if failed.iter().any(|f| f == name) {
            return Err(EvalError {
                span,
                message: format!("{root}.{name} has no value: evaluating it failed"),
                cascade: true,
            });
        }
        let known: Vec<&str> = map
            .keys()
            .map(String::as_str)
            .chain(failed.iter().map(String::as_str))
            .collect();
        let hint = super::schema::did_you_mean(name, &known);
        Err(EvalError::new(
            span,
            if root == "var" {
                format!(
                    "undeclared variable var.{name}: declare it with variable {name:?} {{ … }}{hint}"
                )
            } else {
                format!("unknown local value local.{name}: no locals block defines it{hint}")
            },
        ))
    }

    /// Binds an iteration variable (a `dynamic` block's iterator) until [`Scope::pop_iter`].
    pub fn push_iter(&mut self, name: String, value: Value) {
        self.iter.push((name, value));
    }

    pub fn pop_iter(&mut self) {
        self.iter.pop();
    }

    fn lookup(&self, name: &str) -> Option<Value> {
        if let Some((_, v)) = self.iter.iter().rev().find(|(n, _)| n == name) {
            return Some(v.clone());
        }
        match name {
            "var" => Some(Value::Object(self.vars.clone())),
            "local" => Some(Value::Object(self.locals.clone())),
            _ => None,
        }
    }

    fn knows(&self, name: &str) -> bool {
        name == "var" || name == "local" || self.iter.iter().any(|(n, _)| n == name)
    }

    pub fn eval(&mut self, expr: &Expression) -> EvalResult<Value> {
        let v = self.eval_inner(expr)?;
        match expr {
            // What can build a value larger than its source text.
            Expression::Array(_)
            | Expression::Object(_)
            | Expression::StringTemplate(_)
            | Expression::HeredocTemplate(_)
            | Expression::FuncCall(_)
            | Expression::ForExpr(_)
            // A reference copies what it names, and can be repeated as often as the file likes.
            | Expression::Variable(_) => self.charge(v, expr.span()),
            _ => Ok(v),
        }
    }

    fn eval_inner(&mut self, expr: &Expression) -> EvalResult<Value> {
        match expr {
            Expression::Null(_) => Ok(Value::Null),
            Expression::Bool(b) => Ok(Value::Bool(*b.value())),
            Expression::Number(n) => {
                let n = n.value();
                Ok(n.as_i64()
                    .map(Value::from)
                    .or_else(|| {
                        n.as_f64()
                            .and_then(serde_json::Number::from_f64)
                            .map(Value::Number)
                    })
                    .unwrap_or(Value::Null))
            }
            Expression::String(s) => Ok(Value::String(s.value().clone())),
            Expression::Array(a) => a
                .iter()
                .map(|e| self.eval(e))
                .collect::<EvalResult<Vec<_>>>()
                .map(Value::Array),
            Expression::Object(o) => {
                let mut out = Map::new();
                for (k, v) in o.iter() {
                    let key = match k {
                        ObjectKey::Ident(id) => id.value().to_string(),
                        ObjectKey::Expression(e) => self.key_string(e)?,
                    };
                    out.insert(key, self.eval(v.expr())?);
                }
                Ok(Value::Object(out))
            }
            Expression::StringTemplate(t) => {
                // As in HCL, a string that is one interpolation, `"${expr}"`, is the value of
                // `expr` itself, not its string form: `"${var.list}"` stays a list.
                if let [Element::Interpolation(i)] = t.iter().collect::<Vec<_>>().as_slice()
                    && self.runtime_text(&i.expr).is_none()
                {
                    return self.eval(&i.expr);
                }
                self.template(t).map(Value::String)
            }
            Expression::HeredocTemplate(h) => self.template(&h.template).map(Value::String),
            Expression::Parenthesis(p) => self.eval(p.inner()),
            // A name the file does not define is a runtime value (`attr.kernel.name`,
            // `NOMAD_PORT_http`, …): like Nomad, keep it as the text `${…}` for the node.
            Expression::Variable(v) => Ok(self
                .lookup(v.value().as_str())
                .unwrap_or_else(|| self.runtime_value(expr))),
            Expression::Conditional(c) => match self.eval(&c.cond_expr)? {
                Value::Bool(true) => self.eval(&c.true_expr),
                Value::Bool(false) => self.eval(&c.false_expr),
                other => Err(EvalError::new(
                    c.cond_expr.span(),
                    format!("condition must be a bool, found {}", type_name(&other)),
                )),
            },
            Expression::FuncCall(f) => self.call(f),
            Expression::Traversal(t) => {
                let mut ops = t.operators.iter().peekable();
                let mut value = match (&t.expr, ops.peek().map(|o| o.value())) {
                    (Expression::Variable(v), Some(TraversalOperator::GetAttr(name)))
                        if matches!(v.value().as_str(), "var" | "local")
                            && !self.is_iter(v.value()) =>
                    {
                        let value = self.named_value(v.value(), name.value(), t.span())?;
                        ops.next();
                        value
                    }
                    // A name the file does not define is a runtime value (`attr.kernel.name`):
                    // like Nomad, keep it as the text `${…}` for the node.
                    (Expression::Variable(v), _) if !self.knows(v.value()) => {
                        return Ok(self.runtime_value(expr));
                    }
                    _ => self.eval(&t.expr)?,
                };
                for op in ops {
                    value = self.traverse(value, op.value(), op.span())?;
                }
                Ok(value)
            }
            Expression::UnaryOp(u) => {
                let v = self.eval(&u.expr)?;
                match (u.operator.value(), v) {
                    (UnaryOperator::Neg, Value::Number(n)) => Ok(negate(&n)),
                    (UnaryOperator::Not, Value::Bool(b)) => Ok(Value::Bool(!b)),
                    (op, v) => Err(EvalError::new(
                        u.span(),
                        format!(
                            "operator {} cannot be applied to a {}",
                            op.as_str(),
                            type_name(&v)
                        ),
                    )),
                }
            }
            Expression::BinaryOp(b) => {
                let op = *b.operator.value();
                // `&&` and `||` short-circuit, as in HCL.
                let lhs = self.eval(&b.lhs_expr)?;
                match (op, &lhs) {
                    (BinaryOperator::And, Value::Bool(false)) => return Ok(Value::Bool(false)),
                    (BinaryOperator::Or, Value::Bool(true)) => return Ok(Value::Bool(true)),
                    _ => {}
                }
                let rhs = self.eval(&b.rhs_expr)?;
                binary(op, lhs, rhs).map_err(|m| EvalError::new(b.span(), m))
            }
            Expression::ForExpr(f) => self.for_expr(f),
        }
    }

    fn key_string(&mut self, e: &Expression) -> EvalResult<String> {
        // A bare name in parentheses or a traversal as a key is evaluated; `{ (var.k) = 1 }`.
        match self.eval(e)? {
            Value::String(s) => Ok(s),
            v @ (Value::Number(_) | Value::Bool(_)) => Ok(v.to_string()),
            other => Err(EvalError::new(
                e.span(),
                format!("object key must be a string, found {}", type_name(&other)),
            )),
        }
    }

    fn traverse(
        &mut self,
        value: Value,
        op: &TraversalOperator,
        span: Option<Range<usize>>,
    ) -> EvalResult<Value> {
        match op {
            TraversalOperator::GetAttr(name) => get_attr(value, name.value().as_str(), span),
            TraversalOperator::Index(e) => {
                let idx = self.eval(e)?;
                index(value, &idx, span)
            }
            TraversalOperator::LegacyIndex(i) => index(value, &Value::from(*i.value()), span),
            TraversalOperator::AttrSplat(_) | TraversalOperator::FullSplat(_) => match value {
                Value::Array(items) => Ok(Value::Array(items)),
                Value::Null => Ok(Value::Array(vec![])),
                other => Ok(Value::Array(vec![other])),
            },
        }
    }

    fn call(&mut self, f: &FuncCall) -> EvalResult<Value> {
        let name = f.name.name.value().as_str();
        let mut args = Vec::with_capacity(f.args.len());
        for a in f.args.iter() {
            args.push(self.eval(a)?);
        }
        if f.args.expand_final() {
            match args.pop() {
                Some(Value::Array(rest)) => args.extend(rest),
                Some(other) => {
                    return Err(EvalError::new(
                        f.span(),
                        format!(
                            "the final argument to {name}(...) must be a list, found {}",
                            type_name(&other)
                        ),
                    ));
                }
                None => {}
            }
        }
        let ctx = funcs::CallContext {
            base_dir: self.base_dir,
        };
        funcs::call(name, &args, &ctx).map_err(|m| EvalError::new(f.span(), m))
    }

    fn for_expr(&mut self, f: &ForExpr) -> EvalResult<Value> {
        let collection = self.eval(&f.intro.collection_expr)?;
        let pairs: Vec<(Value, Value)> = match key_value_pairs(collection) {
            Ok(pairs) => pairs,
            Err(other) => {
                return Err(EvalError::new(
                    f.intro.collection_expr.span(),
                    format!(
                        "a for expression needs a list or an object, found {}",
                        type_name(&other)
                    ),
                ));
            }
        };
        let key_var = f.intro.key_var.as_ref().map(|k| k.value().to_string());
        let value_var = f.intro.value_var.value().to_string();
        let mut list = Vec::new();
        let mut object = Map::new();
        for (k, v) in pairs {
            let depth = self.iter.len();
            if let Some(kv) = &key_var {
                self.iter.push((kv.clone(), k));
            }
            self.iter.push((value_var.clone(), v));
            let result = self.for_item(f, &mut list, &mut object);
            self.iter.truncate(depth);
            result?;
        }
        Ok(if f.key_expr.is_some() {
            Value::Object(object)
        } else {
            Value::Array(list)
        })
    }

    fn for_item(
        &mut self,
        f: &ForExpr,
        list: &mut Vec<Value>,
        object: &mut Map<String, Value>,
    ) -> EvalResult<()> {
        if let Some(cond) = &f.cond {
            match self.eval(&cond.expr)? {
                Value::Bool(true) => {}
                Value::Bool(false) => return Ok(()),
                other => {
                    return Err(EvalError::new(
                        cond.expr.span(),
                        format!(
                            "a for expression's if clause must be a bool, found {}",
                            type_name(&other)
                        ),
                    ));
                }
            }
        }
        let value = self.eval(&f.value_expr)?;
        match &f.key_expr {
            None => list.push(value),
            Some(key_expr) => {
                let key = self.key_string(key_expr)?;
                if f.grouping {
                    match object.entry(key).or_insert_with(|| Value::Array(vec![])) {
                        Value::Array(group) => group.push(value),
                        _ => unreachable!("grouping entries are always created as arrays"),
                    }
                } else if object.contains_key(&key) {
                    return Err(EvalError::new(
                        key_expr.span(),
                        format!(
                            "duplicate key {key:?} in for expression; use the grouping mode (...) to collect values"
                        ),
                    ));
                } else {
                    object.insert(key, value);
                }
            }
        }
        Ok(())
    }

    fn template(&mut self, t: &Template) -> EvalResult<String> {
        let mut out = String::new();
        self.template_into(t, &mut out)?;
        Ok(out)
    }

    fn template_into(&mut self, t: &Template, out: &mut String) -> EvalResult<()> {
        let elems: Vec<&Element> = t.iter().collect();
        for (i, elem) in elems.iter().enumerate() {
            match elem {
                Element::Literal(lit) => {
                    let mut s: &str = lit.value();
                    if i > 0 && elems[i - 1].strip_after() {
                        s = trim_start_line(s);
                    }
                    if elems.get(i + 1).is_some_and(|e| e.strip_before()) {
                        s = trim_end_line(s);
                    }
                    out.push_str(s);
                }
                Element::Interpolation(interp) => {
                    if let Some(text) = self.runtime_text(&interp.expr) {
                        out.push_str("${");
                        out.push_str(text);
                        out.push('}');
                        continue;
                    }
                    let v = self.eval(&interp.expr)?;
                    out.push_str(
                        &template_string(&v).map_err(|m| EvalError::new(interp.expr.span(), m))?,
                    );
                }
                Element::Directive(d) => match d.as_ref() {
                    Directive::If(d) => match self.eval(&d.if_expr.cond_expr)? {
                        Value::Bool(true) => self.template_into(&d.if_expr.template, out)?,
                        Value::Bool(false) => {
                            if let Some(e) = &d.else_expr {
                                self.template_into(&e.template, out)?;
                            }
                        }
                        other => {
                            return Err(EvalError::new(
                                d.if_expr.cond_expr.span(),
                                format!(
                                    "%{{if}} condition must be a bool, found {}",
                                    type_name(&other)
                                ),
                            ));
                        }
                    },
                    Directive::For(d) => {
                        let fe = &d.for_expr;
                        let collection = self.eval(&fe.collection_expr)?;
                        let pairs: Vec<(Value, Value)> = match key_value_pairs(collection) {
                            Ok(pairs) => pairs,
                            Err(other) => {
                                return Err(EvalError::new(
                                    fe.collection_expr.span(),
                                    format!(
                                        "%{{for}} needs a list or an object, found {}",
                                        type_name(&other)
                                    ),
                                ));
                            }
                        };
                        for (k, v) in pairs {
                            let depth = self.iter.len();
                            if let Some(kv) = &fe.key_var {
                                self.iter.push((kv.value().to_string(), k));
                            }
                            self.iter.push((fe.value_var.value().to_string(), v));
                            let r = self.template_into(&fe.template, out);
                            self.iter.truncate(depth);
                            r?;
                        }
                    }
                },
            }
        }
        Ok(())
    }

    /// A bare reference to something only the node knows, as the text `${…}` Nomad keeps.
    fn runtime_value(&self, expr: &Expression) -> Value {
        let text = expr
            .span()
            .and_then(|s| self.src.get(s))
            .unwrap_or_default()
            .trim();
        Value::String(format!("${{{text}}}"))
    }

    /// The source text of an interpolation that refers to something only the node knows.
    fn runtime_text(&self, expr: &Expression) -> Option<&'a str> {
        let mut roots = Vec::new();
        collect_roots(expr, &mut roots);
        if roots.iter().all(|r| self.knows(r)) {
            return None;
        }
        let span = expr.span()?;
        self.src.get(span)
    }
}

/// How many bytes of values one file's expressions may build in all.
pub const VALUE_BUDGET: usize = 32 << 20;

/// Roughly the bytes a value holds, counting no further than `limit`.
fn value_size(v: &Value, limit: usize) -> usize {
    // What a node really costs once built: a serde_json value, then the tree's copy with its
    // position, then allocator overhead. Counting less let the fuzzer's nested dynamic
    // blocks reach 870 MB while "64 MiB" of values were charged.
    const NODE: usize = 96;
    let mut total = 0usize;
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        total = total.saturating_add(NODE);
        match v {
            Value::String(s) => total = total.saturating_add(s.len()),
            Value::Array(items) => stack.extend(items),
            Value::Object(map) => {
                for (k, v) in map {
                    total = total.saturating_add(k.len());
                    stack.push(v);
                }
            }
            _ => {}
        }
        if total > limit {
            return total;
        }
    }
    total
}

/// The root variable names an expression refers to (`var`, `local`, `attr`, `NOMAD_PORT_http` …).
fn collect_roots(expr: &Expression, out: &mut Vec<String>) {
    match expr {
        Expression::Variable(v) => out.push(v.value().to_string()),
        Expression::Traversal(t) => {
            collect_roots(&t.expr, out);
            for op in &t.operators {
                if let TraversalOperator::Index(e) = op.value() {
                    collect_roots(e, out);
                }
            }
        }
        Expression::Parenthesis(p) => collect_roots(p.inner(), out),
        Expression::FuncCall(f) => f.args.iter().for_each(|a| collect_roots(a, out)),
        Expression::UnaryOp(u) => collect_roots(&u.expr, out),
        Expression::BinaryOp(b) => {
            collect_roots(&b.lhs_expr, out);
            collect_roots(&b.rhs_expr, out);
        }
        Expression::Conditional(c) => {
            collect_roots(&c.cond_expr, out);
            collect_roots(&c.true_expr, out);
            collect_roots(&c.false_expr, out);
        }
        Expression::Array(a) => a.iter().for_each(|e| collect_roots(e, out)),
        Expression::Object(o) => o.iter().for_each(|(_, v)| collect_roots(v.expr(), out)),
        // Iteration variables of a nested `for` are local to it; its collection is what matters.
        Expression::ForExpr(f) => collect_roots(&f.intro.collection_expr, out),
        _ => {}
    }
}

trait StripExt {
    fn strip_before(&self) -> bool;
    fn strip_after(&self) -> bool;
}

impl StripExt for Element {
    fn strip_before(&self) -> bool {
        match self {
            Element::Literal(_) => false,
            Element::Interpolation(i) => i.strip.strip_start(),
            Element::Directive(d) => match d.as_ref() {
                Directive::If(d) => d.if_expr.strip.strip_start(),
                Directive::For(d) => d.for_expr.strip.strip_start(),
            },
        }
    }

    fn strip_after(&self) -> bool {
        match self {
            Element::Literal(_) => false,
            Element::Interpolation(i) => i.strip.strip_end(),
            Element::Directive(d) => match d.as_ref() {
                Directive::If(d) => d.endif_expr.strip.strip_end(),
                Directive::For(d) => d.endfor_expr.strip.strip_end(),
            },
        }
    }
}

fn trim_start_line(s: &str) -> &str {
    let s = s.trim_start_matches([' ', '\t']);
    s.strip_prefix("\r\n")
        .or_else(|| s.strip_prefix('\n'))
        .unwrap_or(s)
}

fn trim_end_line(s: &str) -> &str {
    let s = s.trim_end_matches([' ', '\t']);
    s.strip_suffix("\r\n")
        .or_else(|| s.strip_suffix('\n'))
        .unwrap_or(s)
}

/// The (key, value) pairs a `for` iterates: (index, element) of a list, (key, value) of an
/// object; anything else is returned as the error.
pub fn key_value_pairs(collection: Value) -> Result<Vec<(Value, Value)>, Value> {
    match collection {
        Value::Array(items) => Ok(items
            .into_iter()
            .enumerate()
            .map(|(i, v)| (Value::from(i), v))
            .collect()),
        Value::Object(map) => Ok(map
            .into_iter()
            .map(|(k, v)| (Value::String(k), v))
            .collect()),
        other => Err(other),
    }
}

pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "object",
    }
}

/// How a value reads inside a string template.
pub fn template_string(v: &Value) -> Result<String, String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Null => Err("a null value cannot be used in a string template".into()),
        other => Err(format!(
            "a {} cannot be used in a string template; use jsonencode() or join()",
            type_name(other)
        )),
    }
}

fn get_attr(value: Value, name: &str, span: Option<Range<usize>>) -> EvalResult<Value> {
    match value {
        Value::Object(mut map) => map.remove(name).ok_or_else(|| {
            let known: Vec<&str> = map.keys().map(String::as_str).collect();
            EvalError::new(
                span,
                format!(
                    "no attribute named {name:?}{}",
                    super::schema::did_you_mean(name, &known)
                ),
            )
        }),
        // `list.*.attr` (splat) maps the attribute over the list.
        Value::Array(items) => items
            .into_iter()
            .map(|v| get_attr(v, name, span.clone()))
            .collect::<EvalResult<Vec<_>>>()
            .map(Value::Array),
        other => Err(EvalError::new(
            span,
            format!("cannot read attribute {name:?} of a {}", type_name(&other)),
        )),
    }
}

fn index(value: Value, idx: &Value, span: Option<Range<usize>>) -> EvalResult<Value> {
    match (value, idx) {
        (Value::Array(mut items), Value::Number(n)) => {
            let len = items.len();
            match n.as_u64().filter(|i| (*i as usize) < len) {
                Some(i) => Ok(items.swap_remove(i as usize)),
                None => Err(EvalError::new(
                    span,
                    format!("index {n} is out of range for a list of {len}"),
                )),
            }
        }
        (Value::Object(mut map), Value::String(k)) => map
            .remove(k)
            .ok_or_else(|| EvalError::new(span, format!("no key {k:?} in object"))),
        (v, i) => Err(EvalError::new(
            span,
            format!("cannot index a {} with a {}", type_name(&v), type_name(i)),
        )),
    }
}

fn negate(n: &serde_json::Number) -> Value {
    if let Some(i) = n.as_i64() {
        Value::from(-i)
    } else {
        funcs::number(-n.as_f64().unwrap_or(0.0))
    }
}

fn binary(op: BinaryOperator, lhs: Value, rhs: Value) -> Result<Value, String> {
    use BinaryOperator::*;
    match op {
        Eq => Ok(Value::Bool(funcs::values_equal(&lhs, &rhs))),
        NotEq => Ok(Value::Bool(!funcs::values_equal(&lhs, &rhs))),
        And | Or => match (lhs, rhs) {
            (Value::Bool(a), Value::Bool(b)) => {
                Ok(Value::Bool(if op == And { a && b } else { a || b }))
            }
            (a, b) => Err(format!(
                "operator {} needs two bools, found {} and {}",
                op.as_str(),
                type_name(&a),
                type_name(&b)
            )),
        },
        _ => {
            let (a, b) = match (funcs::to_f64(&lhs), funcs::to_f64(&rhs)) {
                (Some(a), Some(b)) => (a, b),
                _ => {
                    return Err(format!(
                        "operator {} needs two numbers, found {} and {}",
                        op.as_str(),
                        type_name(&lhs),
                        type_name(&rhs)
                    ));
                }
            };
            Ok(match op {
                Less => Value::Bool(a < b),
                LessEq => Value::Bool(a <= b),
                Greater => Value::Bool(a > b),
                GreaterEq => Value::Bool(a >= b),
                Plus => funcs::number(a + b),
                Minus => funcs::number(a - b),
                Mul => funcs::number(a * b),
                Div if b == 0.0 => return Err("division by zero".into()),
                Div => funcs::number(a / b),
                Mod if b == 0.0 => return Err("modulo by zero".into()),
                Mod => funcs::number(a % b),
                Eq | NotEq | And | Or => unreachable!("handled above"),
            })
        }
    }
}

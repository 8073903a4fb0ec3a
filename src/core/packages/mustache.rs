//! A Mustache renderer over `serde_json::Value` contexts.
//!
//! It follows the Mustache specification's required modules: interpolation (`{{x}}` HTML-escaped,
//! `{{{x}}}` and `{{&x}}` raw), dotted names, the implicit iterator `{{.}}`, sections over lists,
//! objects and other truthy values, inverted sections, comments, set delimiters, the standalone
//! line rules, and partials (given as a map of name → template; standalone partials are
//! indented). `tests/mustache_spec.rs` runs every case of those spec files. The optional modules
//! (lambdas, dynamic names, inheritance) are not implemented; the one lambda Universe templates
//! use, Cosmos's `{{#asJson}}name{{/asJson}}`, is built into [`Dialect::Cosmos`].
//!
//! **Why not a crate:** the `mustache` crate has had no release since 2019 and fails parts of the
//! current spec (standalone lines, dotted-name resolution); `ramhorns` renders Rust structs
//! compiled at build time rather than arbitrary JSON; `handlebars` is a different language.
//! Rendering Universe templates the way Cosmos does also needs a dialect no crate offers:
//! Cosmos turns off HTML escaping and JSON-escapes strings before they reach the template.
//!
//! Falsey values are `null`, a missing name, `false`, the empty list and the empty string (as in
//! the JavaScript and Java implementations; the spec leaves strings to the host language).
//! Interpolating a list or an object writes it as compact JSON ([`Dialect::Cosmos`]: as Java
//! prints them, which for lists of strings, numbers and booleans is JSON too).

use serde_json::{Map, Number, Value};
use std::collections::BTreeMap;
use std::fmt;

/// How values are written into the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// The specification: `{{x}}` escapes `& " < >`; numbers print as JSON numbers.
    Spec,
    /// As Cosmos renders `marathon.json.mustache`: no HTML escaping; strings are JSON-escaped
    /// (`"` → `\"`, newline → `\n`, …) without their quotes, but keep their quotes inside lists;
    /// whole numbers print without a fraction (`1.0` → `1`), others as Java prints a double
    /// (`1.0E-4`); `{{#asJson}}name{{/asJson}}` writes the top-level string option `name` raw
    /// (or `null` when it is not a string).
    Cosmos,
}

/// A template that could not be parsed or rendered, with the 1-based position of the tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MustacheError {
    pub message: String,
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for MustacheError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {} column {}: {}", self.line, self.column, self.message)
    }
}

impl std::error::Error for MustacheError {}

/// Partials a template may include with `{{>name}}`; missing ones render as nothing.
pub type Partials = BTreeMap<String, String>;

/// Renders `template` with `data` as the context.
pub fn render(template: &str, data: &Value, partials: &Partials, dialect: Dialect) -> Result<String, MustacheError> {
    let nodes = parse(template)?;
    let data = match dialect {
        Dialect::Spec => data.clone(),
        Dialect::Cosmos => cosmos_context(data, false),
    };
    let mut renderer = Renderer { partials, dialect, depth: 0, out: String::new() };
    let mut stack = vec![&data];
    renderer.nodes(&nodes, &mut stack)?;
    Ok(renderer.out)
}

/// Cosmos hands the template strings already JSON-encoded; quotes are kept inside lists.
fn cosmos_context(value: &Value, in_list: bool) -> Value {
    match value {
        Value::String(s) => {
            let encoded = Value::String(s.clone()).to_string();
            if in_list { Value::String(encoded) } else { Value::String(encoded[1..encoded.len() - 1].to_string()) }
        }
        Value::Array(items) => Value::Array(items.iter().map(|v| cosmos_context(v, true)).collect()),
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), cosmos_context(v, false))).collect()),
        other => other.clone(),
    }
}

#[derive(Debug)]
enum Node {
    Text(String),
    Var { name: String, escape: bool },
    Section { name: String, inverted: bool, children: Vec<Node>, raw: String, pos: (usize, usize) },
    Partial { name: String, indent: String },
}

fn position(template: &str, offset: usize) -> (usize, usize) {
    let before = &template[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rfind('\n').map_or(before.chars().count(), |n| before[n + 1..].chars().count()) + 1;
    (line, column)
}

fn error(template: &str, offset: usize, message: impl Into<String>) -> MustacheError {
    let (line, column) = position(template, offset);
    MustacheError { message: message.into(), line, column }
}

fn is_blank(s: &str) -> bool {
    s.chars().all(|c| c == ' ' || c == '\t')
}

struct Open {
    name: String,
    inverted: bool,
    start: usize,
    inner_start: usize,
    nodes: Vec<Node>,
}

fn parse(template: &str) -> Result<Vec<Node>, MustacheError> {
    let mut open_tag = "{{".to_string();
    let mut close_tag = "}}".to_string();
    let mut stack: Vec<Open> = Vec::new();
    let mut nodes: Vec<Node> = Vec::new();
    let mut pos = 0;
    while pos < template.len() {
        let Some(found) = template[pos..].find(&open_tag) else {
            nodes.push(Node::Text(template[pos..].to_string()));
            break;
        };
        let tag_start = pos + found;
        let after_open = tag_start + open_tag.len();
        let kind = template[after_open..].chars().next().unwrap_or(' ');
        let (content, tag_end) = if kind == '{' && open_tag == "{{" {
            let close = format!("}}{close_tag}");
            let Some(end) = template[after_open + 1..].find(&close) else {
                return Err(error(template, tag_start, format!("unclosed tag: expected `{close}`")));
            };
            (&template[after_open + 1..after_open + 1 + end], after_open + 1 + end + close.len())
        } else if kind == '=' {
            let close = format!("={close_tag}");
            let Some(end) = template[after_open + 1..].find(&close) else {
                return Err(error(template, tag_start, format!("unclosed set-delimiter tag: expected `{close}`")));
            };
            (&template[after_open + 1..after_open + 1 + end], after_open + 1 + end + close.len())
        } else {
            let Some(end) = template[after_open..].find(&close_tag) else {
                return Err(error(template, tag_start, format!("unclosed tag: expected `{close_tag}`")));
            };
            let body = &template[after_open..after_open + end];
            let body = if matches!(kind, '&' | '#' | '^' | '/' | '>' | '!') { &body[1..] } else { body };
            (body, after_open + end + close_tag.len())
        };
        let name = content.trim().to_string();
        let standalone_kind = matches!(kind, '#' | '^' | '/' | '>' | '!' | '=');
        let line_start = template[..tag_start].rfind('\n').map_or(0, |n| n + 1);
        let rest_end = template[tag_end..].find('\n').map_or(template.len(), |n| tag_end + n);
        let standalone = standalone_kind
            && line_start >= pos
            && is_blank(&template[line_start..tag_start])
            && is_blank(template[tag_end..rest_end].trim_end_matches('\r'));
        let mut text_end = tag_start;
        let mut next = tag_end;
        let mut indent = String::new();
        if standalone {
            text_end = line_start;
            indent = template[line_start..tag_start].to_string();
            next = if rest_end < template.len() { rest_end + 1 } else { template.len() };
        }
        if text_end > pos {
            nodes.push(Node::Text(template[pos..text_end].to_string()));
        }
        let check_name = |name: &str| -> Result<(), MustacheError> {
            if name.is_empty() {
                return Err(error(template, tag_start, "empty tag name"));
            }
            Ok(())
        };
        match kind {
            '!' => {}
            '=' => {
                let parts: Vec<&str> = content.split_whitespace().collect();
                if parts.len() != 2 || parts.iter().any(|p| p.contains('=')) {
                    return Err(error(
                        template,
                        tag_start,
                        format!("invalid set-delimiter tag `{content}`: expected two delimiters separated by space"),
                    ));
                }
                open_tag = parts[0].to_string();
                close_tag = parts[1].to_string();
            }
            '#' | '^' => {
                check_name(&name)?;
                if stack.len() >= MAX_DEPTH {
                    return Err(error(template, tag_start, format!("sections nest deeper than {MAX_DEPTH} levels")));
                }
                stack.push(Open {
                    name,
                    inverted: kind == '^',
                    start: tag_start,
                    inner_start: next,
                    nodes: std::mem::take(&mut nodes),
                });
            }
            '/' => {
                let Some(open) = stack.pop() else {
                    return Err(error(template, tag_start, format!("closing tag `{name}` has no open section")));
                };
                if open.name != name {
                    return Err(error(
                        template,
                        tag_start,
                        format!("closing tag `{name}` does not match the open section `{}`", open.name),
                    ));
                }
                let children = std::mem::replace(&mut nodes, open.nodes);
                let raw_end = if standalone { line_start } else { tag_start };
                nodes.push(Node::Section {
                    name,
                    inverted: open.inverted,
                    children,
                    raw: template[open.inner_start.min(raw_end)..raw_end].to_string(),
                    pos: position(template, open.start),
                });
            }
            '>' => {
                check_name(&name)?;
                nodes.push(Node::Partial { name, indent });
            }
            '{' | '&' => {
                check_name(&name)?;
                nodes.push(Node::Var { name, escape: false });
            }
            _ => {
                check_name(&name)?;
                nodes.push(Node::Var { name, escape: true });
            }
        }
        pos = next;
    }
    if let Some(open) = stack.pop() {
        return Err(error(template, open.start, format!("section `{}` is never closed", open.name)));
    }
    Ok(nodes)
}

/// How deep sections and partials may nest (together, while rendering).
const MAX_DEPTH: usize = 100;

struct Renderer<'a> {
    partials: &'a Partials,
    dialect: Dialect,
    depth: usize,
    out: String,
}

fn lookup<'v>(stack: &[&'v Value], name: &str) -> Option<&'v Value> {
    if name == "." {
        return stack.last().copied();
    }
    let mut parts = name.split('.');
    let first = parts.next()?;
    let mut value = stack.iter().rev().find_map(|frame| frame.as_object().and_then(|m| m.get(first)))?;
    for part in parts {
        value = value.as_object()?.get(part)?;
    }
    Some(value)
}

fn falsey(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) | Some(Value::Bool(false)) => true,
        Some(Value::Array(items)) => items.is_empty(),
        Some(Value::String(s)) => s.is_empty(),
        _ => false,
    }
}

/// Java's `Double.toString` for a finite double that is not a whole number.
fn java_double(f: f64) -> String {
    let abs = f.abs();
    if (1e-3..1e7).contains(&abs) {
        return format!("{f}");
    }
    let sci = format!("{f:E}");
    match sci.split_once('E') {
        Some((mantissa, exp)) if !mantissa.contains('.') => format!("{mantissa}.0E{exp}"),
        _ => sci,
    }
}

fn cosmos_number(n: &Number) -> String {
    if n.is_i64() || n.is_u64() {
        return n.to_string();
    }
    match n.as_f64() {
        Some(f) if f.is_finite() && f.fract() == 0.0 => format!("{f:.0}"),
        Some(f) if f.is_finite() => java_double(f),
        _ => n.to_string(),
    }
}

fn escape_html(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
}

fn indent_lines(template: &str, indent: &str) -> String {
    let mut out = String::with_capacity(template.len());
    let mut at_line_start = true;
    for c in template.chars() {
        if at_line_start {
            out.push_str(indent);
        }
        out.push(c);
        at_line_start = c == '\n';
    }
    out
}

impl Renderer<'_> {
    fn text(&self, value: &Value) -> String {
        match value {
            Value::Null => String::new(),
            Value::String(s) => s.clone(),
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => match self.dialect {
                Dialect::Spec => n.to_string(),
                Dialect::Cosmos => cosmos_number(n),
            },
            Value::Array(items) if self.dialect == Dialect::Cosmos => {
                // Java's `List.toString`; list items hold strings with their quotes, so lists
                // of strings, numbers, booleans and lists come out as JSON.
                let items: Vec<String> =
                    items.iter().map(|v| if v.is_null() { "null".to_string() } else { self.text(v) }).collect();
                format!("[{}]", items.join(", "))
            }
            Value::Object(map) if self.dialect == Dialect::Cosmos => {
                // Java's `Map.toString` (not JSON, as in Cosmos).
                let entries: Vec<String> = map.iter().map(|(k, v)| format!("{k}={}", self.text(v))).collect();
                format!("{{{}}}", entries.join(", "))
            }
            other => other.to_string(),
        }
    }

    fn nodes(&mut self, nodes: &[Node], stack: &mut Vec<&Value>) -> Result<(), MustacheError> {
        for node in nodes {
            match node {
                Node::Text(text) => self.out.push_str(text),
                Node::Var { name, escape } => {
                    if let Some(value) = lookup(stack, name) {
                        let text = self.text(value);
                        if *escape && self.dialect == Dialect::Spec {
                            escape_html(&text, &mut self.out);
                        } else {
                            self.out.push_str(&text);
                        }
                    }
                }
                Node::Section { name, inverted, children, raw, pos } => {
                    let value = lookup(stack, name);
                    // Cosmos puts its `asJson` lambda over any top-level option of that name;
                    // only a nested context's `asJson` hides it.
                    let lambda = self.dialect == Dialect::Cosmos
                        && name == "asJson"
                        && !stack.iter().skip(1).any(|frame| frame.get("asJson").is_some());
                    if *inverted {
                        if !lambda && falsey(value) {
                            self.enter(name)?;
                            self.nodes(children, stack)?;
                            self.depth -= 1;
                        }
                        continue;
                    }
                    if lambda {
                        self.as_json(raw, stack, *pos)?;
                        continue;
                    }
                    if falsey(value) {
                        continue;
                    }
                    self.enter(name)?;
                    match value {
                        Some(Value::Array(items)) => {
                            for item in items {
                                stack.push(item);
                                self.nodes(children, stack)?;
                                stack.pop();
                            }
                        }
                        Some(value) => {
                            stack.push(value);
                            self.nodes(children, stack)?;
                            stack.pop();
                        }
                        None => {}
                    }
                    self.depth -= 1;
                }
                Node::Partial { name, indent } => {
                    let Some(partial) = self.partials.get(name) else { continue };
                    self.enter(name)?;
                    let source = if indent.is_empty() { partial.clone() } else { indent_lines(partial, indent) };
                    let parsed = parse(&source)
                        .map_err(|e| MustacheError { message: format!("in partial `{name}`: {}", e.message), ..e })?;
                    self.nodes(&parsed, stack)?;
                    self.depth -= 1;
                }
            }
        }
        Ok(())
    }

    fn enter(&mut self, name: &str) -> Result<(), MustacheError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(MustacheError {
                message: format!("sections and partials nest deeper than {MAX_DEPTH} levels (at `{name}`)"),
                line: 0,
                column: 0,
            });
        }
        Ok(())
    }

    /// Cosmos's `asJson` lambda: the section's text names a top-level option; a string option is
    /// written raw (then rendered as a template, as lambdas' results are), anything else as `null`.
    fn as_json(&mut self, raw: &str, stack: &mut Vec<&Value>, pos: (usize, usize)) -> Result<(), MustacheError> {
        let root: Option<&Map<String, Value>> = stack.first().and_then(|v| v.as_object());
        let replacement = match root.and_then(|m| m.get(raw)) {
            // The context holds strings JSON-encoded (see `cosmos_context`); decode them back.
            Some(Value::String(encoded)) => {
                serde_json::from_str::<String>(&format!("\"{encoded}\"")).unwrap_or_default()
            }
            _ => "null".to_string(),
        };
        self.enter("asJson")?;
        let parsed = parse(&replacement).map_err(|e| MustacheError {
            message: format!("in the result of asJson: {}", e.message),
            line: pos.0,
            column: pos.1,
        })?;
        self.nodes(&parsed, stack)?;
        self.depth -= 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(template: &str, data: Value) -> String {
        render(template, &data, &Partials::new(), Dialect::Spec).unwrap()
    }

    fn cosmos(template: &str, data: Value) -> String {
        render(template, &data, &Partials::new(), Dialect::Cosmos).unwrap()
    }

    #[test]
    fn spec_escapes_html_and_cosmos_escapes_json() {
        let data = json!({"s": "a \"b\" <c>\n", "n": 1.0, "small": 0.0001, "list": ["x", "y"]});
        assert_eq!(spec("{{s}}", data.clone()), "a &quot;b&quot; &lt;c&gt;\n");
        assert_eq!(cosmos("{{s}}", data.clone()), "a \\\"b\\\" <c>\\n");
        assert_eq!(cosmos("{{n}} {{small}}", data.clone()), "1 1.0E-4");
        assert_eq!(cosmos("[{{#list}}{{.}},{{/list}}]", data), "[\"x\",\"y\",]");
    }

    #[test]
    fn cosmos_interpolates_lists_as_java_prints_them() {
        let data = json!({"n": [1, 2.5], "s": ["a", "b\"c"], "nested": [[true, null], []], "o": {"k": "v"}});
        assert_eq!(cosmos("{{n}} {{s}} {{nested}}", data.clone()), r#"[1, 2.5] ["a", "b\"c"] [[true, null], []]"#);
        assert_eq!(cosmos("{{o}}", data.clone()), "{k=v}");
        assert_eq!(spec("{{s}}", data), "[&quot;a&quot;,&quot;b\\&quot;c&quot;]");
        let parsed: Value = serde_json::from_str(&cosmos("{{s}}", json!({"s": ["a", "b\"c"]}))).unwrap();
        assert_eq!(parsed, json!(["a", "b\"c"]));
    }

    #[test]
    fn cosmos_as_json_writes_the_raw_string() {
        let data = json!({"cmd": "echo \"hi\""});
        assert_eq!(cosmos("{{#asJson}}cmd{{/asJson}}", data.clone()), "echo \"hi\"");
        assert_eq!(cosmos("{{#asJson}}missing{{/asJson}}", data.clone()), "null");
        assert_eq!(cosmos("{{#asJson}}cmd{{/asJson}}", json!({"asJson": false, "cmd": "x"})), "x");
        assert_eq!(cosmos("{{#o}}{{#asJson}}y{{/asJson}}{{/o}}", json!({"o": {"asJson": true, "y": 1}})), "y");
        let data = json!({"blob": "{\"foo\": [\"bar\"]}", "number": 12});
        let out = cosmos("{\"a\": {{#asJson}}blob{{/asJson}}, \"b\": {{#asJson}}number{{/asJson}}}", data);
        assert_eq!(serde_json::from_str::<Value>(&out).unwrap(), json!({"a": {"foo": ["bar"]}, "b": null}));
    }

    #[test]
    fn empty_strings_are_falsey() {
        assert_eq!(spec("{{#s}}yes{{/s}}{{^s}}no{{/s}}", json!({"s": ""})), "no");
    }

    #[test]
    fn bad_templates_name_the_position() {
        let e = render("a\n  {{#x}}b", &json!({}), &Partials::new(), Dialect::Spec).unwrap_err();
        assert_eq!((e.line, e.column), (2, 3));
        assert!(e.message.contains("never closed"), "{e}");
        let e = render("{{#x}}{{/y}}", &json!({}), &Partials::new(), Dialect::Spec).unwrap_err();
        assert!(e.message.contains("does not match"), "{e}");
        let e = render("{{x", &json!({}), &Partials::new(), Dialect::Spec).unwrap_err();
        assert!(e.message.contains("unclosed tag"), "{e}");
        let e = render("{{= a =}}", &json!({}), &Partials::new(), Dialect::Spec).unwrap_err();
        assert!(e.message.contains("set-delimiter"), "{e}");
    }

    #[test]
    fn recursive_partials_stop_with_an_error() {
        let partials = Partials::from([("p".to_string(), "{{>p}}".to_string())]);
        let e = render("{{>p}}", &json!({}), &partials, Dialect::Spec).unwrap_err();
        assert!(e.message.contains("nest deeper than 100 levels"), "{e}");
        let deep = format!("{}x{}", "{{#a}}".repeat(150), "{{/a}}".repeat(150));
        let e = render(&deep, &json!({"a": true}), &Partials::new(), Dialect::Spec).unwrap_err();
        assert!(e.message.contains("sections nest deeper than 100 levels"), "{e}");
        let partials = Partials::from([("p".to_string(), "{{#a}}{{>p}}{{/a}}".to_string())]);
        let e = render("{{>p}}", &json!({"a": true}), &partials, Dialect::Spec).unwrap_err();
        assert!(e.message.contains("nest deeper than 100 levels"), "{e}");
    }
}

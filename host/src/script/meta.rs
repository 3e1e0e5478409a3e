//! `export const meta = {...}`: found, checked as a pure literal and evaluated on the syntax
//! tree, before anything runs.
//!
//! The rules and the wording of the errors follow the reference runtime (Claude Code's dynamic
//! workflows); the node type names in "non-literal node type in meta: X" are ESTree's.

use oxc_ast::ast::{
    ArrayExpressionElement, BindingPattern, Declaration, Expression, ObjectPropertyKind, Program,
    PropertyKey, PropertyKind, Statement, UnaryOperator, VariableDeclarationKind,
};
use oxc_span::{GetSpan, Span};
use serde::Serialize;
use serde_json::{Map, Value};

/// The checked metadata of a workflow.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Meta {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when_to_use: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub phases: Vec<Phase>,
    /// Problems that do not stop the script (the reference accepts them too).
    #[serde(skip, default)]
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, schemars::JsonSchema)]
pub(crate) struct Phase {
    pub title: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

impl Meta {
    /// `name — description`, then one line per phase: how a workflow introduces itself
    /// (approval prompt, `wfhost show`).
    pub(crate) fn summary(&self) -> String {
        let mut s = format!("{} — {}", self.name, self.description);
        for p in &self.phases {
            s.push_str(&format!("\n  · {}", p.title));
            if let Some(d) = &p.detail {
                s.push_str(&format!(": {d}"));
            }
        }
        s
    }
}

/// A meta problem: the message (the reference's wording), where it is, and how to fix it.
#[derive(Debug, Clone)]
pub(crate) struct MetaError {
    pub message: String,
    pub span: Span,
    pub hint: &'static str,
}

const HINT_FIRST: &str =
    "put `export const meta = { name: \"…\", description: \"…\" };` before any other statement";
const HINT_LITERAL: &str = "meta is read without running the script: use only literal values (no variables, calls or `${}`)";
const HINT_FIELDS: &str = "meta needs a `name` and a `description`, e.g. `export const meta = { name: \"review\", description: \"review files\" };`";

const NOT_FIRST: &str =
    "`export const meta = { name, description, phases }` must be the FIRST statement in the script";

/// Finds the meta statement; returns its span (to strip it from the body) and the checked meta.
pub(crate) fn extract(program: &Program<'_>) -> Result<(Span, Meta), MetaError> {
    let not_first = |span| MetaError {
        message: NOT_FIRST.into(),
        span,
        hint: HINT_FIRST,
    };
    let first = program
        .body
        .first()
        .ok_or_else(|| not_first(program.span))?;
    let Statement::ExportDeclaration(export) = first else {
        return Err(not_first(first.span()));
    };
    let Declaration::VariableDeclaration(decl) = &export.declaration else {
        return Err(not_first(first.span()));
    };
    let [declarator] = decl.declarations.as_slice() else {
        return Err(not_first(first.span()));
    };
    let is_meta =
        matches!(&declarator.id, BindingPattern::BindingIdentifier(id) if id.name == "meta");
    if decl.kind != VariableDeclarationKind::Const || !is_meta {
        return Err(not_first(first.span()));
    }
    let init = declarator
        .init
        .as_ref()
        .ok_or_else(|| not_first(first.span()))?;
    let value = literal(init)?;
    let meta = check(value, init.span())?;
    Ok((export.span, meta))
}

fn pure(message: impl Into<String>, span: Span) -> MetaError {
    MetaError {
        message: format!("meta must be a pure literal: {}", message.into()),
        span,
        hint: HINT_LITERAL,
    }
}

/// Evaluates a pure literal: literals, arrays without holes or spread, objects with plain keys,
/// templates without `${}`, and negative numbers.
fn literal(expr: &Expression<'_>) -> Result<Value, MetaError> {
    Ok(match expr {
        Expression::StringLiteral(s) => Value::String(s.value.to_string()),
        Expression::NumericLiteral(n) => number(n.value, n.span)?,
        Expression::BooleanLiteral(b) => Value::Bool(b.value),
        Expression::NullLiteral(_) => Value::Null,
        Expression::ParenthesizedExpression(p) => literal(&p.expression)?,
        Expression::TemplateLiteral(t) => {
            if !t.expressions.is_empty() {
                return Err(pure("template interpolation not allowed in meta", t.span));
            }
            let cooked: Option<String> = t
                .quasis
                .iter()
                .map(|q| q.value.cooked.map(|c| c.to_string()))
                .collect();
            Value::String(cooked.ok_or_else(|| pure("invalid escape in template literal", t.span))?)
        }
        Expression::UnaryExpression(u) if u.operator == UnaryOperator::UnaryNegation => {
            match &u.argument {
                Expression::NumericLiteral(n) => number(-n.value, u.span)?,
                other => {
                    return Err(pure(
                        format!("non-literal node type in meta: {}", estree_type(other)),
                        other.span(),
                    ));
                }
            }
        }
        Expression::ArrayExpression(a) => {
            let mut items = Vec::with_capacity(a.elements.len());
            for element in &a.elements {
                match element {
                    ArrayExpressionElement::Elision(e) => {
                        return Err(pure("array holes not allowed in meta", e.span));
                    }
                    ArrayExpressionElement::SpreadElement(s) => {
                        return Err(pure("non-literal node type in meta: SpreadElement", s.span));
                    }
                    other => items.push(literal(other.to_expression())?),
                }
            }
            Value::Array(items)
        }
        Expression::ObjectExpression(o) => {
            let mut map = Map::new();
            for property in &o.properties {
                let p = match property {
                    ObjectPropertyKind::ObjectProperty(p) => p,
                    ObjectPropertyKind::SpreadProperty(s) => {
                        return Err(pure("non-literal node type in meta: SpreadElement", s.span));
                    }
                };
                if p.kind != PropertyKind::Init || p.method {
                    return Err(pure(
                        "getters, setters and methods not allowed in meta",
                        p.span,
                    ));
                }
                if p.computed {
                    return Err(pure("computed keys not allowed in meta", p.key.span()));
                }
                let key = match &p.key {
                    PropertyKey::StaticIdentifier(id) => id.name.to_string(),
                    PropertyKey::StringLiteral(s) => s.value.to_string(),
                    PropertyKey::NumericLiteral(n) => n.value.to_string(),
                    other => {
                        return Err(pure(
                            "meta keys must be plain names or strings",
                            other.span(),
                        ));
                    }
                };
                if matches!(key.as_str(), "__proto__" | "constructor" | "prototype") {
                    return Err(pure(
                        format!("key `{key}` not allowed in meta"),
                        p.key.span(),
                    ));
                }
                map.insert(key, literal(&p.value)?);
            }
            Value::Object(map)
        }
        other => {
            return Err(pure(
                format!("non-literal node type in meta: {}", estree_type(other)),
                other.span(),
            ));
        }
    })
}

fn number(n: f64, span: Span) -> Result<Value, MetaError> {
    serde_json::Number::from_f64(n)
        .map(Value::Number)
        .ok_or_else(|| pure("numbers in meta must be finite", span))
}

/// The ESTree name of a node type, as the reference runtime reports it.
fn estree_type(expr: &Expression<'_>) -> &'static str {
    use Expression as E;
    match expr {
        E::BooleanLiteral(_) | E::NullLiteral(_) | E::NumericLiteral(_) | E::BigIntLiteral(_) => {
            "Literal"
        }
        E::RegExpLiteral(_) | E::StringLiteral(_) => "Literal",
        E::TemplateLiteral(_) => "TemplateLiteral",
        E::Identifier(_) => "Identifier",
        E::Super(_) => "Super",
        E::ArrayExpression(_) => "ArrayExpression",
        E::ArrowFunctionExpression(_) => "ArrowFunctionExpression",
        E::AssignmentExpression(_) => "AssignmentExpression",
        E::AwaitExpression(_) => "AwaitExpression",
        E::BinaryExpression(_) => "BinaryExpression",
        E::CallExpression(_) => "CallExpression",
        E::ChainExpression(_) => "ChainExpression",
        E::ClassExpression(_) => "ClassExpression",
        E::ConditionalExpression(_) => "ConditionalExpression",
        E::FunctionExpression(_) => "FunctionExpression",
        E::ImportExpression(_) => "ImportExpression",
        E::LogicalExpression(_) => "LogicalExpression",
        E::NewExpression(_) => "NewExpression",
        E::ObjectExpression(_) => "ObjectExpression",
        E::ParenthesizedExpression(_) => "ParenthesizedExpression",
        E::SequenceExpression(_) => "SequenceExpression",
        E::TaggedTemplateExpression(_) => "TaggedTemplateExpression",
        E::ThisExpression(_) => "ThisExpression",
        E::UnaryExpression(_) => "UnaryExpression",
        E::UpdateExpression(_) => "UpdateExpression",
        E::YieldExpression(_) => "YieldExpression",
        E::PrivateInExpression(_) => "BinaryExpression",
        E::ImportMeta(_) | E::NewTarget(_) => "MetaProperty",
        E::ComputedMemberExpression(_)
        | E::StaticMemberExpression(_)
        | E::PrivateFieldExpression(_) => "MemberExpression",
        _ => "Expression",
    }
}

/// The reference's field rules: `name` and `description` are required non-empty strings;
/// `title`, `whenToUse` and `phases` are optional. Malformed `phases` are accepted with a
/// warning (as the reference accepts them); unknown keys are ignored.
fn check(value: Value, span: Span) -> Result<Meta, MetaError> {
    let Value::Object(map) = value else {
        return Err(MetaError {
            message: "meta must be an object literal".into(),
            span,
            hint: HINT_FIELDS,
        });
    };
    let text = |key: &str| {
        map.get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let required = |key: &str| {
        text(key).ok_or_else(|| MetaError {
            message: format!("meta.{key} must be a non-empty string"),
            span,
            hint: HINT_FIELDS,
        })
    };
    let name = required("name")?;
    let description = required("description")?;
    let mut warnings = Vec::new();
    let mut phases = Vec::new();
    match map.get("phases") {
        None => {}
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                let field = |k: &str| item.get(k).and_then(Value::as_str).map(str::to_owned);
                match field("title").filter(|t| !t.is_empty()) {
                    Some(title) => phases.push(Phase {
                        title,
                        detail: field("detail"),
                        model: field("model"),
                    }),
                    None => {
                        warnings.push(format!("meta.phases[{i}] has no `title`; it is ignored"));
                    }
                }
            }
        }
        Some(_) => warnings
            .push("meta.phases is not an array of `{ title }` objects; it is ignored".into()),
    }
    Ok(Meta {
        name,
        description,
        title: text("title"),
        when_to_use: text("whenToUse"),
        phases,
        warnings,
    })
}

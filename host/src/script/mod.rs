//! Loading a workflow script: parse it (oxc), check `meta`, refuse what may not run, and wrap
//! the body into the module the guest compiles.
//!
//! Why oxc: it is the fastest maintained JavaScript parser in Rust, its AST follows ESTree
//! closely (the reference runtime's error messages name ESTree node types), it reports syntax
//! errors with spans, and it rejects TypeScript syntax when asked to parse plain JavaScript.

pub(crate) mod meta;

use oxc_allocator::Allocator;
use oxc_ast::ast::{ImportExpression, ImportMeta, Statement};
use oxc_ast_visit::Visit;
use oxc_parser::{ParseOptions, Parser};
use oxc_span::{GetSpan, SourceType, Span};

pub(crate) use meta::Meta;

/// A checked script, ready to compile.
#[derive(Debug, Clone)]
pub(crate) struct Script {
    /// How the script is named in messages (its path, or `workflow:NAME`).
    pub origin: String,
    pub source: String,
    pub meta: Meta,
    /// The ES module the guest compiles: the body (meta removed, line numbers kept) as an async
    /// function that receives its API object.
    pub module: String,
}

/// Why a script was refused before running. `message`'s first line is the reference runtime's
/// wording; `location` and `hint` are ours.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Rejection {
    pub message: String,
    pub location: Option<String>,
    pub hint: Option<String>,
}

impl Rejection {
    /// The full text: message, location line, hint line.
    pub(crate) fn render(&self) -> String {
        let mut s = self.message.clone();
        if let Some(l) = &self.location {
            s.push_str(&format!("\n  --> {l}"));
        }
        if let Some(h) = &self.hint {
            s.push_str(&format!("\nhint: {h}"));
        }
        s
    }
}

const SYNTAX: &str = "Workflow script has a syntax error and was not launched:";
const INVALID: &str = "Invalid workflow script:";

/// The names a script's body receives from its API object (see guest-sdk/prelude/prelude.js).
const API: &str = "agent, parallel, pipeline, workflow, phase, log, console, args, budget, setTimeout, clearTimeout";

impl Script {
    pub(crate) fn parse(origin: &str, source: &str) -> Result<Script, Rejection> {
        let max = crate::limits::MAX_SCRIPT_BYTES;
        if source.len() > max {
            return Err(Rejection {
                message: format!(
                    "Workflow script is too large and was not launched: {} bytes, the limit is {} bytes",
                    source.len(),
                    max
                ),
                location: Some(origin.to_string()),
                hint: Some(
                    "a workflow script is code, not data: pass large inputs through `args`, or let agents read the files".into(),
                ),
            });
        }
        let allocator = Allocator::default();
        let options = ParseOptions {
            allow_return_outside_function: true,
            ..ParseOptions::default()
        };
        let parsed = Parser::new(&allocator, source, SourceType::mjs())
            .with_options(options)
            .parse();
        let at = |span: Span| Some(format!("{origin}:{}", line_col(source, span.start)));

        if let Some(d) = parsed.diagnostics.errors().next() {
            let span = d
                .labels
                .first()
                .map(oxc_span::LabeledSpan::span)
                .unwrap_or_default();
            let hint = is_typescript(source)
                .then(|| "this is TypeScript; workflow scripts are plain JavaScript: remove the type annotations".to_string());
            return Err(Rejection {
                message: format!("{SYNTAX}\n  {d}"),
                location: at(span),
                hint,
            });
        }
        let program = &parsed.program;
        let (meta_span, meta) = meta::extract(program).map_err(|e| Rejection {
            message: format!("{INVALID} {}", e.message),
            location: at(e.span),
            hint: Some(e.hint.into()),
        })?;

        // Nothing else may be imported or exported: a script's only way out is the wfhost API.
        for statement in program.body.iter().skip(1) {
            let refused = match statement {
                Statement::ImportDeclaration(_) => {
                    Some("`import` is not available in workflow scripts")
                }
                s if s.is_module_declaration() => Some("only `export const meta` may be exported"),
                _ => None,
            };
            if let Some(why) = refused {
                return Err(Rejection {
                    message: format!("{SYNTAX}\n  {why}"),
                    location: at(statement.span()),
                    hint: Some("workflow scripts cannot load modules; use agent() for work outside the script".into()),
                });
            }
        }
        let mut finder = ForbiddenSyntax::default();
        finder.visit_program(program);
        if let Some((why, span)) = finder.found {
            return Err(Rejection {
                message: format!("{SYNTAX}\n  {why}"),
                location: at(span),
                hint: Some(
                    "workflow scripts cannot load modules; use agent() for work outside the script"
                        .into(),
                ),
            });
        }

        Ok(Script {
            origin: origin.to_string(),
            source: source.to_string(),
            meta,
            module: wrap(source, meta_span),
        })
    }
}

/// Wraps the body: the meta statement is blanked out (newlines kept, so line numbers in runtime
/// errors match the file) and the prefix is put on line 1.
fn wrap(source: &str, meta: Span) -> String {
    let (start, end) = (meta.start as usize, meta.end as usize);
    let blank: String = source[start..end]
        .chars()
        .map(|c| if c == '\n' { '\n' } else { ' ' })
        .collect();
    let source = source
        .strip_prefix("#!")
        .map(|_| source.replacen("#!", "//", 1))
        .unwrap_or_else(|| source.to_string());
    format!(
        "export default async function (__wfhost) {{ const {{ {API} }} = __wfhost; \
         return (async function () {{{}{}{}\n}})(); }}\n",
        &source[..start],
        blank,
        &source[end..]
    )
}

#[derive(Default)]
struct ForbiddenSyntax {
    found: Option<(&'static str, Span)>,
}

impl<'a> Visit<'a> for ForbiddenSyntax {
    fn visit_import_expression(&mut self, it: &ImportExpression<'a>) {
        self.found.get_or_insert((
            "dynamic `import()` is not available in workflow scripts",
            it.span,
        ));
    }
    fn visit_import_meta(&mut self, it: &ImportMeta) {
        self.found.get_or_insert((
            "`import.meta` is not available in workflow scripts",
            it.span,
        ));
    }
}

/// A script that fails as JavaScript but parses as TypeScript.
fn is_typescript(source: &str) -> bool {
    let allocator = Allocator::default();
    let options = ParseOptions {
        allow_return_outside_function: true,
        ..ParseOptions::default()
    };
    let ts = Parser::new(&allocator, source, SourceType::ts())
        .with_options(options)
        .parse();
    ts.diagnostics.errors().next().is_none()
}

/// 1-based `line:column` of a byte offset (columns count characters).
pub(crate) fn line_col(source: &str, offset: u32) -> String {
    let offset = (offset as usize).min(source.len());
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    format!("{line}:{col}")
}

#[cfg(test)]
mod tests {
    use super::meta::Phase;
    use super::*;

    fn reject(src: &str) -> String {
        Script::parse("t.js", src).unwrap_err().render()
    }

    #[test]
    fn wrapped_module_keeps_line_numbers() {
        let src =
            "export const meta = {\n name: \"a\",\n description: \"b\" };\nlog(1);\nreturn 2;\n";
        let s = Script::parse("t.js", src).unwrap();
        assert_eq!(s.meta.name, "a");
        let log_line = s.module.lines().position(|l| l.contains("log(1)")).unwrap();
        assert_eq!(log_line, 3, "log(1) must stay on line 4:\n{}", s.module);
        assert!(!s.module.contains("meta"));
    }

    #[test]
    fn meta_errors_carry_location() {
        let e = reject("export const meta = { name: \"a\" + \"b\", description: \"x\" };");
        assert!(e.starts_with("Invalid workflow script: meta must be a pure literal: non-literal node type in meta: BinaryExpression\n  --> t.js:1:29"), "{e}");
    }

    #[test]
    fn forbidden_syntax_is_found_anywhere() {
        let e = reject(
            "export const meta = { name: \"a\", description: \"b\" };\nfunction f() { return import(\"fs\"); }",
        );
        assert!(
            e.contains("dynamic `import()`") && e.contains("t.js:2:23"),
            "{e}"
        );
    }

    #[test]
    fn literal_forms() {
        let s = Script::parse(
            "t.js",
            "export const meta = { name: `n`, description: 'd', n: -1, a: [1, { b: null }], whenToUse: \"w\", phases: [{ title: 'P', detail: 'x' }] };",
        )
        .unwrap();
        assert_eq!(s.meta.when_to_use.as_deref(), Some("w"));
        assert_eq!(
            s.meta.phases,
            vec![Phase {
                title: "P".into(),
                detail: Some("x".into()),
                model: None
            }]
        );
        for (src, want) in [
            ("[1,,2]", "array holes"),
            ("[...x]", "SpreadElement"),
            ("{__proto__: 1}", "`__proto__`"),
            ("{[k]: 1}", "computed keys"),
            ("f()", "CallExpression"),
            ("-x", "Identifier"),
        ] {
            let e = reject(&format!(
                "export const meta = {{ name: 'a', description: 'b', x: {src} }};"
            ));
            assert!(e.contains(want), "{src}: {e}");
        }
    }
}

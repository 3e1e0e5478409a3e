//! Saved workflows: `wfhost list`, `wfhost show NAME`, `wfhost save SCRIPT`.

use super::read_file;
use crate::ExitError;
use crate::script::Script;
use crate::workflows::{Resolver, Scope};
use anyhow::{Result, anyhow, bail};
use clap::Args;
use serde_json::json;
use std::path::PathBuf;

pub(super) const LIST_HELP: &str = "\
Project workflows: .wfhost/workflows/ and .claude/workflows/ in every directory from here up to
the repository root (the closest wins); personal ones: ~/.config/wfhost/workflows/ and
~/.claude/workflows/. Project beats personal; a workflow hidden by another is marked.

Examples:
  wfhost list
  wfhost run NAME --args '{\"files\": [\"a.rs\"]}'";

pub(super) const SAVE_HELP: &str = "\
Checks the script, then copies it to .wfhost/workflows/NAME.js of the project (the repository
root, else the current directory), or with --personal to ~/.config/wfhost/workflows/, where NAME
is its meta.name. Symlinks are refused.

Example:
  wfhost save scripts/review.js && wfhost run review";

#[derive(Args)]
pub(super) struct ListArgs {
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub(super) struct ShowArgs {
    /// The workflow's name.
    name: String,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub(super) struct SaveArgs {
    /// The script to save.
    script: PathBuf,
    /// Save to ~/.config/wfhost/workflows/ instead of the project.
    #[arg(long)]
    personal: bool,
    /// Replace a saved workflow of the same name.
    #[arg(long)]
    force: bool,
}

fn describe(path: &std::path::Path) -> Result<Script, String> {
    let source = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    Script::parse(&path.display().to_string(), &source)
        .map_err(|r| r.message.lines().next().unwrap_or_default().to_string())
}

pub(super) fn list(a: ListArgs) -> Result<u8> {
    let entries = Resolver::discover(&std::env::current_dir()?).list();
    let rows: Vec<_> = entries
        .iter()
        .map(|e| {
            let script = describe(&e.path);
            json!({
                "name": e.name,
                "scope": e.scope,
                "path": e.path,
                "description": script.as_ref().ok().map(|s| s.meta.description.clone()),
                "whenToUse": script.as_ref().ok().and_then(|s| s.meta.when_to_use.clone()),
                "invalid": script.as_ref().err(),
                "shadows": e.shadows,
            })
        })
        .collect();
    if a.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(crate::exit::OK);
    }
    if rows.is_empty() {
        eprintln!(
            "no saved workflows\nhint: `wfhost save SCRIPT.js` saves one to .wfhost/workflows/"
        );
        return Ok(crate::exit::OK);
    }
    for r in rows {
        let scope = r["scope"].as_str().unwrap_or_default();
        let what = match (&r["description"], &r["invalid"]) {
            (serde_json::Value::String(d), _) => d.clone(),
            (_, serde_json::Value::String(e)) => format!("(invalid: {e})"),
            _ => String::new(),
        };
        println!(
            "{:<20} {:<9} {what}",
            r["name"].as_str().unwrap_or_default(),
            scope
        );
        if let Some(w) = r["whenToUse"].as_str() {
            println!("{:<30} when: {w}", "");
        }
        println!("{:<30} {}", "", r["path"].as_str().unwrap_or_default());
        if let Some(hidden) = r["shadows"].as_str() {
            println!("{:<30} hides {hidden}", "");
        }
    }
    Ok(crate::exit::OK)
}

pub(super) fn show(a: ShowArgs) -> Result<u8> {
    let resolver = Resolver::discover(&std::env::current_dir()?);
    let path = resolver
        .find(&a.name)
        .map_err(|e| ExitError::usage(e).hint("`wfhost list` shows the saved workflows"))?;
    let entry = resolver.list().into_iter().find(|e| e.name == a.name);
    let source = std::fs::read_to_string(&path)?;
    let script =
        Script::parse(&path.display().to_string(), &source).map_err(|r| anyhow!(r.render()))?;
    if a.json {
        let v = json!({ "name": a.name, "path": path, "scope": entry.as_ref().map(|e| e.scope), "meta": script.meta, "source": source });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(crate::exit::OK);
    }
    let m = &script.meta;
    let summary = m.summary();
    let (head, phases) = summary.split_once('\n').unwrap_or((&summary, ""));
    println!("{head}");
    if let Some(w) = &m.when_to_use {
        println!("when to use: {w}");
    }
    if !phases.is_empty() {
        println!("{phases}");
    }
    let scope = entry
        .map(|e| match e.scope {
            Scope::Project => "project",
            Scope::Personal => "personal",
            Scope::Builtin => "built in",
        })
        .unwrap_or("");
    println!("{} ({scope})\n", path.display());
    print!("{source}");
    Ok(crate::exit::OK)
}

pub(super) fn save(a: SaveArgs) -> Result<u8> {
    if std::fs::symlink_metadata(&a.script).is_ok_and(|m| m.file_type().is_symlink()) {
        bail!(
            ExitError::usage(format!(
                "`{}` is a symlink; wfhost saves regular files only",
                a.script.display()
            ))
            .hint("save the file it points to")
        );
    }
    let source = String::from_utf8(read_file(&a.script)?)
        .map_err(|_| anyhow!("`{}` is not UTF-8 text", a.script.display()))?;
    let cwd = std::env::current_dir()?;
    let (name, dest) = match crate::workflows::save(
        &a.script.display().to_string(),
        &source,
        &cwd,
        a.personal,
        a.force,
    )? {
        Ok(saved) => saved,
        Err(rejection) => {
            eprintln!("error: not saved: {}", rejection.render());
            return Ok(crate::exit::SCRIPT);
        }
    };
    eprintln!(
        "saved `{name}` to {}\nrun it with: wfhost run {name}",
        dest.display()
    );
    Ok(crate::exit::OK)
}

//! `wfhost schema report|events`: the JSON Schemas of what `--json` and `--events` write, for
//! CI systems and tools that read them (also committed under docs/schemas/).

use anyhow::Result;
use clap::{Args, ValueEnum};

#[derive(Args, Debug)]
pub(super) struct SchemaArgs {
    /// Which output: `report` (the `--json` report) or `events` (one `--events` line).
    what: What,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum What {
    Report,
    Events,
}

pub(super) fn schema(a: SchemaArgs) -> Result<u8> {
    let schema = match a.what {
        What::Report => crate::report::schema(),
        What::Events => crate::events::line_schema(),
    };
    println!("{}", serde_json::to_string_pretty(&schema)?);
    Ok(crate::exit::OK)
}

//! `strata strategies`: the template catalogue.

use std::io::Write;

use clap::Args;
use engine::templates::TEMPLATES;
use serde_json::json;

use crate::report::Format;

/// Options of `strata strategies`.
#[derive(Debug, Args)]
pub struct StrategiesArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

/// Prints every template with its parameters and expressions.
pub fn run(args: StrategiesArgs) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match args.format {
        Format::Json => {
            let list: Vec<_> = TEMPLATES
                .iter()
                .map(|t| {
                    json!({
                        "name": t.name,
                        "description": t.description,
                        "entry": t.entry,
                        "exit": t.exit,
                        "params": t.params.iter().map(|&(k, v)| (k.to_owned(), json!(v))).collect::<serde_json::Map<_, _>>(),
                    })
                })
                .collect();
            writeln!(out, "{}", serde_json::to_string_pretty(&list)?)?;
        }
        Format::Table => {
            for t in TEMPLATES {
                let params: Vec<String> =
                    t.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
                writeln!(
                    out,
                    "{}  ({})",
                    t.name,
                    if params.is_empty() {
                        "no parameters".into()
                    } else {
                        params.join(", ")
                    }
                )?;
                writeln!(out, "    {}", t.description)?;
                writeln!(out, "    entry: {}", t.entry)?;
                writeln!(out, "    exit:  {}", t.exit)?;
                writeln!(out)?;
            }
        }
    }
    Ok(())
}

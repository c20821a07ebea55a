//! `-o json|yaml` printing, shared by every command that prints objects.

use std::io::Write;

use anyhow::Context;
use clap::ValueEnum;
use serde_json::Value;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
    Yaml,
}

pub fn print(value: &Value, format: Format, out: &mut impl Write) -> anyhow::Result<()> {
    match format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, value).context("writing JSON")?;
            writeln!(out)?;
        }
        Format::Yaml => {
            let text = serde_saphyr::to_string(value).context("writing YAML")?;
            out.write_all(text.as_bytes())?;
            if !text.ends_with('\n') {
                writeln!(out)?;
            }
        }
        Format::Table => {
            anyhow::bail!("table output is not available for this command; use -o yaml or -o json")
        }
    }
    Ok(())
}

/// A `get` command's `-o json|yaml`: a `<Kind>List`, or the object itself when there is exactly
/// one, as Velero prints.
pub fn print_list<T: serde::Serialize>(
    list_kind: &str,
    items: &[T],
    format: Format,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let value = match items {
        [one] => serde_json::to_value(one)?,
        _ => serde_json::json!({
            "apiVersion": "velero.io/v1",
            "kind": list_kind,
            "items": items,
            "metadata": {},
        }),
    };
    print(&value, format, out)
}

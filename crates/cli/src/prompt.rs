//! Interactive confirmation, as Velero asks before destructive commands.

use std::io::{BufRead, Write};

use anyhow::Context;

/// Asks `question`; true only for an explicit yes.
pub fn confirm(question: &str) -> anyhow::Result<bool> {
    print!("{question}");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .context("reading the confirmation (pass --confirm or --force to skip it)")?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "Yes"))
}

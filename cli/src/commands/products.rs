//! `swath products inspect`: parse product names and print their fields as JSON lines.

use std::io::{BufRead, Write};
use std::process::ExitCode;

use clap::Subcommand;
use swath_domain::product::ProductName;

/// `swath products ...`
#[derive(Debug, Subcommand)]
pub enum ProductsCommand {
    /// Print the parsed fields of each name as one JSON line; `-` reads names from stdin, one per line.
    /// Each bad name is reported on stderr and makes the exit code 1.
    Inspect {
        /// Product names (with or without `.SAFE`, optionally with a path), or `-`.
        #[arg(required = true, value_name = "NAME")]
        names: Vec<String>,
    },
}

/// Runs a products command.
pub fn run(cmd: &ProductsCommand) -> anyhow::Result<ExitCode> {
    let ProductsCommand::Inspect { names } = cmd;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut bad = 0usize;
    let mut inspect = |name: &str, out: &mut dyn Write| -> anyhow::Result<()> {
        match ProductName::parse(name) {
            Ok(parsed) => writeln!(out, "{}", serde_json::to_string(&parsed)?)?,
            Err(err) => {
                bad += 1;
                eprintln!("error: {err}");
            }
        }
        Ok(())
    };
    for name in names {
        if name == "-" {
            for line in std::io::stdin().lock().lines() {
                let line = line?;
                let line = line.trim();
                if !line.is_empty() {
                    inspect(line, &mut out)?;
                }
            }
        } else {
            inspect(name, &mut out)?;
        }
    }
    out.flush()?;
    Ok(if bad == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

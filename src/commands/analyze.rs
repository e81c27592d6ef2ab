//! `razar analyze LOGFILE`: classifies a failure log and prints the remediation.

use crate::analyze;
use crate::cli::AnalyzeArgs;
use crate::error::{Error, Result};
use crate::exit;
use crate::paths::Paths;

pub fn run(paths: &Paths, args: AnalyzeArgs) -> Result<u8> {
    let file = paths.join(&args.logfile);
    let bytes =
        std::fs::read(&file).map_err(|e| Error::Usage(format!("cannot read log file {}: {e}", file.display())))?;
    // Logs hold whatever a component printed: invalid UTF-8 must not hide the lines around it.
    let analysis = analyze::classify(&String::from_utf8_lossy(&bytes));
    if args.json {
        let mut value = serde_json::to_value(&analysis).map_err(|e| Error::Internal(e.to_string()))?;
        value["file"] = file.display().to_string().into();
        crate::outln!("{value}");
    } else {
        crate::outln!("category: {}", analysis.category);
        crate::outln!("evidence: {}", analysis.evidence);
        crate::outln!("remediation: {}", analysis.remediation);
    }
    Ok(exit::SUCCESS)
}

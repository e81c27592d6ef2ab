//! `razar validate`: loads the config and `razar_env.yaml` and reports every problem.

use crate::cli::ValidateArgs;
use crate::config::{self, ProcessEnv};
use crate::error::Result;
use crate::exit;
use crate::paths::Paths;

pub fn run(paths: &Paths, args: ValidateArgs) -> Result<u8> {
    let file = args.config.map(|c| paths.join(c)).unwrap_or_else(|| paths.default_config());
    let cfg = config::load(&file, &paths.root, &ProcessEnv)?;
    let enabled = cfg.components.iter().filter(|c| c.enabled).count();
    println!("{}: ok ({} components, {enabled} enabled)", file.display(), cfg.components.len());
    Ok(exit::SUCCESS)
}

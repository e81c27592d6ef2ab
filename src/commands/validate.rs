//! `razar validate`: loads the config, `razar_env.yaml` and, when it exists, the agent roster
//! (`config/razar_ai_agents.json`), and reports every problem of all of them at once.

use crate::cli::ValidateArgs;
use crate::config::{self, Invalid, ProcessEnv};
use crate::error::{Error, Result};
use crate::exit;
use crate::paths::Paths;
use crate::roster;

pub fn run(paths: &Paths, args: ValidateArgs) -> Result<u8> {
    let file = args.config.map(|c| paths.join(c)).unwrap_or_else(|| paths.default_config());
    let cfg = config::load(&file, &paths.root, &ProcessEnv);
    let roster_file = paths.join(roster::FILE);
    let roster = roster_file.exists().then(|| roster::load(&roster_file, &ProcessEnv));

    let mut problems = match &cfg {
        Ok(_) => Vec::new(),
        Err(Invalid(list)) => list.clone(),
    };
    match &roster {
        Some(Ok(r)) => problems.extend(r.file_problems()),
        Some(Err(d)) => problems.push(d.clone()),
        None => {}
    }
    if !problems.is_empty() {
        return Err(Error::Config(Invalid(problems)));
    }

    if let Ok(cfg) = cfg {
        let enabled = cfg.components.iter().filter(|c| c.enabled).count();
        crate::outln!("{}: ok ({} components, {enabled} enabled)", file.display(), cfg.components.len());
    }
    // The ledger is state, not config: an unreadable entry is a warning, not a failed validate.
    match crate::quarantine::Ledger::new(paths).scan() {
        Ok(scan) => {
            for u in &scan.unreadable {
                crate::errln!("razar: warning: {}", u.message());
            }
        }
        Err(e) => crate::errln!("razar: warning: {e}"),
    }
    if let Some(Ok(r)) = roster {
        for d in r.environment_problems() {
            crate::errln!("razar: warning: {d} (`razar agents check` fails until it is set)");
        }
        for a in &r.agents {
            for w in &a.warnings {
                tracing::warn!("{}: agents[{}] ({}): {w}", r.file.display(), a.index, a.label());
            }
        }
        let n = r.agents.len();
        let active = r.current().map(|a| format!(", active {}", a.name)).unwrap_or_default();
        crate::outln!("{}: ok ({n} agent{}{active})", r.file.display(), if n == 1 { "" } else { "s" });
    }
    Ok(exit::SUCCESS)
}

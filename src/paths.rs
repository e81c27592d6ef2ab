//! Where every file lives under the root (DESIGN §3). One place, so no module builds paths
//! of its own.

use std::path::{Path, PathBuf};

use crate::config::ComponentName;

#[derive(Debug, Clone)]
pub struct Paths {
    pub root: PathBuf,
}

impl Paths {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Paths { root: root.into() }
    }

    pub fn join(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.root.join(rel)
    }

    pub fn default_config(&self) -> PathBuf {
        self.join("config/boot_config.json")
    }
    pub fn logs(&self) -> PathBuf {
        self.join("logs")
    }
    pub fn state(&self) -> PathBuf {
        self.join("logs/razar_state.json")
    }
    pub fn mission_log(&self) -> PathBuf {
        self.join("logs/razar.log")
    }
    pub fn boot_history(&self) -> PathBuf {
        self.join("logs/razar_boot_history.json")
    }
    pub fn crown_dialogues(&self) -> PathBuf {
        self.join("logs/razar_crown_dialogues.json")
    }
    pub fn interaction_log(&self) -> PathBuf {
        self.join("logs/interaction_log.jsonl")
    }
    pub fn mission_brief(&self) -> PathBuf {
        self.join("logs/mission_brief.json")
    }
    pub fn mission_briefs(&self) -> PathBuf {
        self.join("logs/mission_briefs")
    }
    pub fn component_logs(&self) -> PathBuf {
        self.join("logs/components")
    }
    pub fn component_log(&self, name: &ComponentName) -> PathBuf {
        self.component_logs().join(format!("{name}.log"))
    }
    pub fn quarantine_dir(&self) -> PathBuf {
        self.join("quarantine")
    }
    pub fn quarantine_file(&self, name: &ComponentName) -> PathBuf {
        self.quarantine_dir().join(format!("{name}.json"))
    }
    pub fn quarantine_log(&self) -> PathBuf {
        self.join("docs/quarantine_log.md")
    }
    pub fn alerts(&self) -> PathBuf {
        self.join("monitoring/alerts")
    }
    pub fn identity(&self) -> PathBuf {
        self.join("data/identity.json")
    }
    pub fn env_file(&self) -> PathBuf {
        self.join("razar_env.yaml")
    }
    pub fn venvs(&self) -> PathBuf {
        self.join(".razar_venv")
    }
    pub fn private(&self) -> PathBuf {
        self.join(".razar")
    }
    pub fn lock(&self) -> PathBuf {
        self.join(".razar/boot.lock")
    }
    pub fn launch_journal(&self) -> PathBuf {
        self.join(".razar/launched.jsonl")
    }
    pub fn control_socket(&self) -> PathBuf {
        self.join(".razar/control.sock")
    }
}

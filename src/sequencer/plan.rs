//! The boot plan: who waits for whom, and who must stop before whom. Pure: taken once from
//! the graph the config check built (`config::Graph`), queried by the machine.

use crate::config::{Condition, Config};

/// One `depends_on` edge, by index.
#[derive(Debug, Clone)]
pub struct Edge {
    pub on: usize,
    pub condition: Condition,
    pub timeout: Option<std::time::Duration>,
    /// Restart the dependent when this dependency comes back from a restart.
    pub restart: bool,
}

#[derive(Debug, Clone)]
pub struct Plan {
    /// `deps[i]`: the edges component `i` waits on.
    pub deps: Vec<Vec<Edge>>,
    /// `tier_below[i]`: components with a lower priority value, which `i` waits to settle.
    /// Stored as tier index so the check is O(1) per tier, not per member.
    pub tier: Vec<Option<usize>>,
    /// Members of each tier, ascending priority.
    pub tiers: Vec<Vec<usize>>,
    /// `dependents[i]`: components with a `depends_on` edge to `i`.
    pub dependents: Vec<Vec<usize>>,
}

impl Plan {
    /// The plan of a validated config: its checked graph, with each edge's condition.
    pub fn new(cfg: &Config) -> Self {
        let n = cfg.components.len();
        let mut deps = vec![Vec::new(); n];
        let mut dependents = vec![Vec::new(); n];
        for (i, (c, on)) in cfg.components.iter().zip(&cfg.graph.deps).enumerate() {
            for (d, &on) in c.depends_on.iter().zip(on) {
                deps[i].push(Edge { on, condition: d.condition, timeout: d.timeout, restart: d.restart });
                dependents[on].push(i);
            }
        }
        let mut tier = cfg.graph.tier.clone();
        tier.resize(n, None);
        Plan { deps, tier, tiers: cfg.graph.tiers.clone(), dependents }
    }

    /// Every component that transitively waits on `i` through `depends_on` (not tiers).
    pub fn transitive_dependents(&self, i: usize) -> Vec<usize> {
        let mut seen = vec![false; self.deps.len()];
        let mut stack = vec![i];
        let mut out = Vec::new();
        while let Some(v) = stack.pop() {
            for &w in &self.dependents[v] {
                if !seen[w] {
                    seen[w] = true;
                    out.push(w);
                    stack.push(w);
                }
            }
        }
        out.sort_unstable();
        out
    }

    /// True when `i` may be stopped now: none of its dependents is still running and no
    /// higher tier has a running member. Shutdown stops dependents before their dependencies
    /// and higher tiers before lower ones; everything else stops in parallel.
    pub fn may_stop(&self, i: usize, is_running: impl Fn(usize) -> bool, running_per_tier: &[usize]) -> bool {
        self.dependents[i].iter().all(|&j| !is_running(j))
            && self.tier[i].is_none_or(|k| running_per_tier[k + 1..].iter().all(|&n| n == 0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{self, load::NoEnv};

    fn plan(json: serde_json::Value) -> Plan {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.json");
        std::fs::write(&f, json.to_string()).unwrap();
        Plan::new(&config::load(&f, dir.path(), &NoEnv).unwrap())
    }

    #[test]
    fn stop_levels_reverse_dependencies_and_tiers() {
        let p = plan(serde_json::json!({"components": [
            {"name": "db", "command": "x"},
            {"name": "api", "command": "x", "depends_on": ["db"]},
            {"name": "web", "command": "x", "depends_on": ["api"]},
            {"name": "cache", "command": "x"},
            {"name": "t1", "command": "x", "priority": 1},
            {"name": "t2", "command": "x", "priority": 2}
        ]}));
        // Stop in rounds, each round everything `may_stop` allows.
        let mut running = [true; 6];
        let mut levels: Vec<Vec<usize>> = Vec::new();
        while running.iter().any(|&r| r) {
            let mut per_tier = vec![0; p.tiers.len()];
            for (i, t) in p.tier.iter().enumerate() {
                if let Some(k) = t.filter(|_| running[i]) {
                    per_tier[k] += 1;
                }
            }
            let level: Vec<usize> =
                (0..6).filter(|&i| running[i] && p.may_stop(i, |j| running[j], &per_tier)).collect();
            assert!(!level.is_empty(), "shutdown must always make progress");
            for &i in &level {
                running[i] = false;
            }
            levels.push(level);
        }
        let pos = |i: usize| levels.iter().position(|l| l.contains(&i)).unwrap();
        assert!(pos(2) < pos(1) && pos(1) < pos(0), "{levels:?}");
        assert!(pos(5) < pos(4), "{levels:?}");
        assert_eq!(pos(3), 0, "independent components stop in the first level: {levels:?}");
        assert_eq!(p.transitive_dependents(0), vec![1, 2]);
    }
}

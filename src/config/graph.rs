//! The wait-for graph of a stack: `depends_on` edges plus priority tiers. Pure.
//!
//! Tiers: a component with priority `p` waits for every component whose priority is lower.
//! Rather than |tier|² edges, each tier waits on a barrier node that waits on every member of
//! the tier below, so the graph stays linear in the config size.

/// Node ids `0..n` are components; `n + k` is the barrier in front of tier `k`.
pub struct WaitGraph {
    pub components: usize,
    /// Distinct priority values, ascending.
    pub tiers: Vec<i64>,
    /// `edges[v]`: the nodes `v` waits for.
    pub edges: Vec<Vec<usize>>,
}

impl WaitGraph {
    /// `deps[i]`: indices component `i` depends on; `priority[i]`: its tier value, if any.
    pub fn new(deps: &[Vec<usize>], priority: &[Option<i64>]) -> Self {
        let n = deps.len();
        let mut tiers: Vec<i64> = priority.iter().flatten().copied().collect();
        tiers.sort_unstable();
        tiers.dedup();
        let mut edges: Vec<Vec<usize>> = deps.to_vec();
        edges.resize(n + tiers.len(), Vec::new());
        for (i, p) in priority.iter().enumerate() {
            if let Some(p) = p {
                let k = tiers.binary_search(p).expect("tier listed");
                if k > 0 {
                    edges[i].push(n + k);
                }
                if k + 1 < tiers.len() {
                    edges[n + k + 1].push(i);
                }
            }
        }
        WaitGraph { components: n, tiers, edges }
    }

    /// A cycle as the list of nodes on it (first node repeated at the end), if there is one.
    pub fn find_cycle(&self) -> Option<Vec<usize>> {
        // Iterative three-colour DFS: 1000-component configs must not overflow the stack.
        let total = self.edges.len();
        let mut colour = vec![0u8; total];
        let mut parent = vec![usize::MAX; total];
        for start in 0..total {
            if colour[start] != 0 {
                continue;
            }
            let mut stack = vec![(start, 0usize)];
            colour[start] = 1;
            while let Some(&mut (v, ref mut next)) = stack.last_mut() {
                if let Some(&w) = self.edges[v].get(*next) {
                    *next += 1;
                    match colour[w] {
                        0 => {
                            colour[w] = 1;
                            parent[w] = v;
                            stack.push((w, 0));
                        }
                        1 => {
                            let mut cycle = vec![w];
                            let mut u = v;
                            while u != w {
                                cycle.push(u);
                                u = parent[u];
                            }
                            cycle.push(w);
                            // Walked backwards along "waits for": reverse to read a → b → … → a.
                            cycle.reverse();
                            return Some(cycle);
                        }
                        _ => {}
                    }
                } else {
                    colour[v] = 2;
                    stack.pop();
                }
            }
        }
        None
    }

    /// A readable name for a node: the component name, or the tier barrier.
    pub fn describe(&self, node: usize, names: &[&str]) -> String {
        if node < self.components {
            names[node].to_owned()
        } else {
            let k = node - self.components;
            format!("(every component with priority < {})", self.tiers[k])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cycle_names(deps: &[Vec<usize>], prio: &[Option<i64>], names: &[&str]) -> Option<String> {
        let g = WaitGraph::new(deps, prio);
        g.find_cycle().map(|c| c.iter().map(|&v| g.describe(v, names)).collect::<Vec<_>>().join(" → "))
    }

    #[test]
    fn acyclic_dag_has_no_cycle() {
        let deps = vec![vec![], vec![0], vec![0, 1]];
        assert_eq!(cycle_names(&deps, &[None, None, None], &["a", "b", "c"]), None);
    }

    #[test]
    fn reports_the_whole_cycle() {
        let deps = vec![vec![2], vec![0], vec![1]];
        let got = cycle_names(&deps, &[None, None, None], &["a", "b", "c"]).unwrap();
        let parts: Vec<&str> = got.split(" → ").collect();
        assert_eq!(parts.len(), 4, "{got}");
        assert_eq!(parts.first(), parts.last());
        for n in ["a", "b", "c"] {
            assert!(parts.contains(&n), "{got}");
        }
    }

    #[test]
    fn dependency_against_the_tier_order_is_a_cycle() {
        // a (priority 1) depends on b (priority 2), but b waits for every priority < 2.
        let deps = vec![vec![1], vec![]];
        let got = cycle_names(&deps, &[Some(1), Some(2)], &["a", "b"]).unwrap();
        assert!(got.contains("priority < 2"), "{got}");
    }

    #[test]
    fn tiers_alone_are_acyclic() {
        let deps = vec![vec![]; 4];
        assert_eq!(cycle_names(&deps, &[Some(1), Some(2), Some(2), None], &["a", "b", "c", "d"]), None);
    }
}

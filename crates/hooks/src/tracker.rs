//! `status.hookStatus` counted as Velero's `HookTracker` (internal/hook/hook_tracker.go) counts:
//! every hook found for a pod is attempted, even one left unrun after an `onError: Fail` failure;
//! a hook is failed once it ran (or could not start) and did not succeed.

use std::collections::HashMap;
use std::sync::Mutex;

use velero_report::locked;

/// One hook of one pod. `index` tells apart hooks of one spec entry, as Velero's does.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HookKey {
    pub namespace: String,
    pub pod: String,
    pub phase: &'static str,
    pub source: &'static str,
    pub hook_name: String,
    pub container: String,
    pub index: usize,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HookStats {
    pub attempted: usize,
    pub failed: usize,
}

#[derive(Default)]
struct Entry {
    executed: bool,
    failed: bool,
}

#[derive(Default)]
pub struct HookTracker {
    hooks: Mutex<HashMap<HookKey, Entry>>,
}

impl HookTracker {
    /// A hook that will be run (or skipped after an earlier failure); counted once.
    pub fn add(&self, key: HookKey) {
        locked(&self.hooks).entry(key).or_default();
    }

    /// The hook's outcome; the first one recorded counts.
    pub fn record(&self, key: HookKey, failed: bool) {
        let mut hooks = locked(&self.hooks);
        let entry = hooks.entry(key).or_default();
        if !entry.executed {
            entry.executed = true;
            entry.failed = failed;
        }
    }

    pub fn stats(&self) -> HookStats {
        let hooks = locked(&self.hooks);
        HookStats {
            attempted: hooks.len(),
            failed: hooks.values().filter(|e| e.executed && e.failed).count(),
        }
    }

    /// Whether every added hook has an outcome.
    pub fn is_complete(&self) -> bool {
        locked(&self.hooks).values().all(|e| e.executed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(index: usize) -> HookKey {
        HookKey {
            namespace: "ns".into(),
            pod: "p".into(),
            phase: "pre",
            source: "spec",
            hook_name: "h".into(),
            container: "c".into(),
            index,
        }
    }

    #[test]
    fn unrun_hooks_count_as_attempted_but_not_failed() {
        let t = HookTracker::default();
        t.add(key(0));
        t.add(key(1));
        t.add(key(0));
        t.record(key(0), true);
        t.record(key(0), false);
        assert_eq!(
            t.stats(),
            HookStats {
                attempted: 2,
                failed: 1
            }
        );
        assert!(!t.is_complete());
        t.record(key(1), false);
        assert!(t.is_complete());
    }
}

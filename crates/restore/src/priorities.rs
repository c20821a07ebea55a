//! The order in which a restore processes resource types (Velero's `pkg/restore/restore.go`): CRDs in a pass of their own,
//! then the high-priority list, then every other type alphabetically, then the low-priority list.

use std::collections::BTreeSet;
use std::fmt;

/// Velero's `--restore-resource-priorities`: types restored first, and types restored last.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Priorities {
    pub high: Vec<String>,
    pub low: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrioritiesError {
    #[error(
        "invalid --restore-resource-priorities {0:?}: more than one \"-\" separator; the list is HIGH,...,-,LOW,..."
    )]
    TwoSeparators(String),
    #[error("invalid --restore-resource-priorities {0:?}: empty entry")]
    EmptyEntry(String),
}

/// Velero's `defaultRestorePriorities`, exactly, including its singular `volumesnapshotclass`
/// entry (which matches no type, so VolumeSnapshotClasses land in the alphabetical middle).
const DEFAULT_HIGH: &[&str] = &[
    "customresourcedefinitions",
    "namespaces",
    "storageclasses",
    "volumesnapshotclass.snapshot.storage.k8s.io",
    "volumesnapshotcontents.snapshot.storage.k8s.io",
    "volumesnapshots.snapshot.storage.k8s.io",
    "datauploads.velero.io",
    "persistentvolumes",
    "persistentvolumeclaims",
    "clusterroles",
    "roles",
    "serviceaccounts",
    "clusterrolebindings",
    "rolebindings",
    "secrets",
    "configmaps",
    "limitranges",
    "priorityclasses",
    "pods",
    "replicasets.apps",
    "clusterclasses.cluster.x-k8s.io",
    "endpoints",
    "services",
];

const DEFAULT_LOW: &[&str] = &[
    "clusterbootstraps.run.tanzu.vmware.com",
    "clusters.cluster.x-k8s.io",
    "clusterresourcesets.addons.cluster.x-k8s.io",
    "apps.kappctrl.k14s.io",
    "packageinstalls.packaging.carvel.dev",
];

impl Default for Priorities {
    fn default() -> Self {
        Priorities {
            high: DEFAULT_HIGH.iter().map(|s| s.to_string()).collect(),
            low: DEFAULT_LOW.iter().map(|s| s.to_string()).collect(),
        }
    }
}

impl Priorities {
    /// Parses the flag's value: a comma list, with a lone `-` between the high and the low part.
    /// The value replaces the whole default (as in Velero, where forgetting
    /// `datauploads.velero.io` breaks data-mover restores).
    pub fn parse(value: &str) -> Result<Priorities, PrioritiesError> {
        let entries: Vec<&str> = value.split(',').map(str::trim).collect();
        if entries.iter().any(|e| e.is_empty()) {
            return Err(PrioritiesError::EmptyEntry(value.to_string()));
        }
        let mut parts = entries.split(|e| *e == "-");
        let high = parts.next().unwrap_or_default();
        let low = parts.next().unwrap_or_default();
        if parts.next().is_some() {
            return Err(PrioritiesError::TwoSeparators(value.to_string()));
        }
        let owned = |list: &[&str]| list.iter().map(|s| s.to_string()).collect();
        Ok(Priorities {
            high: owned(high),
            low: owned(low),
        })
    }
}

impl fmt::Display for Priorities {
    /// The flag's syntax, so a parsed value prints back the same.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.high.join(","))?;
        if !self.low.is_empty() {
            write!(f, ",-,{}", self.low.join(","))?;
        }
        Ok(())
    }
}

/// The order in which the types present in a backup are restored, CRDs first.
///
/// `in_backup` are the backup's types as `resource.group`; `resolve` maps a priority entry (which
/// may be a short or group-less name, such as `clusterroles`) to the type it names, as discovery
/// does, or `None`. Every type of the backup appears exactly once.
pub fn restore_order(
    priorities: &Priorities,
    in_backup: &[String],
    resolve: impl Fn(&str) -> Option<String>,
) -> Vec<String> {
    let present: BTreeSet<&str> = in_backup.iter().map(String::as_str).collect();
    let mut done: BTreeSet<String> = BTreeSet::new();
    let mut order = Vec::new();
    let mut take = |gr: String, order: &mut Vec<String>| {
        if present.contains(gr.as_str()) && done.insert(gr.clone()) {
            order.push(gr);
        }
    };
    // CRDs are restored in a pass of their own, before anything that may need them.
    take(
        "customresourcedefinitions.apiextensions.k8s.io".to_string(),
        &mut order,
    );
    let named = |entry: &String| resolve(entry).unwrap_or_else(|| entry.clone());
    for entry in &priorities.high {
        take(named(entry), &mut order);
    }
    let low: Vec<String> = priorities.low.iter().map(named).collect();
    for gr in present.iter().filter(|gr| !low.iter().any(|l| l == *gr)) {
        take(gr.to_string(), &mut order);
    }
    for gr in low {
        take(gr, &mut order);
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The group-less names Velero's default list uses, as discovery resolves them.
    fn resolve(entry: &str) -> Option<String> {
        let full = match entry {
            "customresourcedefinitions" => "customresourcedefinitions.apiextensions.k8s.io",
            "storageclasses" => "storageclasses.storage.k8s.io",
            "clusterroles" => "clusterroles.rbac.authorization.k8s.io",
            "roles" => "roles.rbac.authorization.k8s.io",
            "clusterrolebindings" => "clusterrolebindings.rbac.authorization.k8s.io",
            "rolebindings" => "rolebindings.rbac.authorization.k8s.io",
            "priorityclasses" => "priorityclasses.scheduling.k8s.io",
            _ => return None,
        };
        Some(full.to_string())
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn default_order_is_velero_s() {
        let in_backup = strings(&[
            "services",
            "deployments.apps",
            "widgets.example.com",
            "customresourcedefinitions.apiextensions.k8s.io",
            "namespaces",
            "pods",
            "clusterroles.rbac.authorization.k8s.io",
            "volumesnapshotclasses.snapshot.storage.k8s.io",
            "persistentvolumes",
            "clusters.cluster.x-k8s.io",
            "configmaps",
            "apps.kappctrl.k14s.io",
        ]);
        assert_eq!(
            restore_order(&Priorities::default(), &in_backup, resolve),
            strings(&[
                "customresourcedefinitions.apiextensions.k8s.io",
                "namespaces",
                "persistentvolumes",
                "clusterroles.rbac.authorization.k8s.io",
                "configmaps",
                "pods",
                "services",
                // the rest, alphabetically; the singular default entry misses VolumeSnapshotClasses
                "deployments.apps",
                "volumesnapshotclasses.snapshot.storage.k8s.io",
                "widgets.example.com",
                "clusters.cluster.x-k8s.io",
                "apps.kappctrl.k14s.io",
            ])
        );
    }

    #[test]
    fn the_flag_replaces_the_list_and_prints_back() {
        let p = Priorities::parse("namespaces, secrets,-,services").unwrap();
        assert_eq!(p.high, ["namespaces", "secrets"]);
        assert_eq!(p.low, ["services"]);
        assert_eq!(p.to_string(), "namespaces,secrets,-,services");
        let order = restore_order(
            &p,
            &strings(&["services", "pods", "secrets", "namespaces"]),
            |_| None,
        );
        assert_eq!(order, ["namespaces", "secrets", "pods", "services"]);
        assert_eq!(Priorities::parse("a,b").unwrap().low, Vec::<String>::new());
        assert!(
            Priorities::parse("a,-,b,-,c")
                .unwrap_err()
                .to_string()
                .contains("more than one")
        );
        assert!(
            Priorities::parse("a,,b")
                .unwrap_err()
                .to_string()
                .contains("empty entry")
        );
        assert_eq!(
            Priorities::parse(&Priorities::default().to_string()).unwrap(),
            Priorities::default()
        );
    }

    proptest! {
        /// Whatever the priorities, every type of the backup is restored exactly once.
        #[test]
        fn every_type_once(
            backup in proptest::collection::btree_set("[a-e]{1,2}(\\.[xy])?", 0..12),
            high in proptest::collection::vec("[a-e]{1,2}(\\.[xy])?", 0..6),
            low in proptest::collection::vec("[a-e]{1,2}(\\.[xy])?", 0..6),
        ) {
            let in_backup: Vec<String> = backup.iter().cloned().collect();
            let order = restore_order(&Priorities { high: high.clone(), low: low.clone() }, &in_backup, |_| None);
            let mut sorted = order.clone();
            sorted.sort();
            prop_assert_eq!(sorted, in_backup);
            // High-priority types precede everything not high, low-priority ones follow it.
            for (i, gr) in order.iter().enumerate() {
                if high.contains(gr) {
                    prop_assert!(order[..i].iter().all(|p| high.contains(p)));
                }
            }
        }
    }
}

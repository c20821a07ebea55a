//! Which resource types the API server offers for backup, in the order Velero processes them.

use futures::future::join_all;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::APIResource;

/// One listable resource type at its preferred version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiscoveredResource {
    /// API group; empty for the core group.
    pub group: String,
    pub version: String,
    /// Plural name, as in URLs (`pods`, `deployments`).
    pub resource: String,
    pub singular: String,
    pub kind: String,
    pub short_names: Vec<String>,
    pub namespaced: bool,
}

impl DiscoveredResource {
    /// `resource.group`, or just `resource` in the core group: the name Velero uses for a type in
    /// filters, in tarball paths and in logs.
    pub fn group_resource(&self) -> String {
        group_resource(&self.resource, &self.group)
    }

    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// URL path that lists this type, cluster-wide or in one namespace.
    pub fn list_path(&self, namespace: Option<&str>) -> String {
        let base = if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        };
        match namespace.filter(|_| self.namespaced) {
            Some(ns) => format!("{base}/namespaces/{ns}/{}", self.resource),
            None => format!("{base}/{}", self.resource),
        }
    }

    /// URL path of one object.
    pub fn object_path(&self, namespace: Option<&str>, name: &str) -> String {
        format!("{}/{name}", self.list_path(namespace))
    }
}

pub fn group_resource(resource: &str, group: &str) -> String {
    if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    }
}

/// The discovered types, plus the groups that could not be discovered (Velero logs and skips them).
#[derive(Clone, Debug, Default)]
pub struct Discovery {
    pub resources: Vec<DiscoveredResource>,
    pub failed_groups: Vec<(String, String)>,
}

impl Discovery {
    /// Finds a type by what a user may write in a filter: plural, singular or short name, with or
    /// without `.group` (`svc`, `deployments.apps`, `deployment`).
    pub fn resolve(&self, entry: &str) -> Option<&DiscoveredResource> {
        let entry = entry.to_ascii_lowercase();
        let matches = |r: &DiscoveredResource, name: &str| {
            r.resource == name || r.singular == name || r.short_names.iter().any(|s| s == name)
        };
        // Whole entry as a name in any group first ("pods"), then split name.group.
        if let Some(r) = self.resources.iter().find(|r| matches(r, &entry)) {
            return Some(r);
        }
        let (name, group) = entry.split_once('.')?;
        self.resources
            .iter()
            .find(|r| r.group == group && matches(r, name))
    }

    /// The type serving `apiVersion`/`kind` (for objects referenced by kind, like ownerRefs).
    pub fn by_kind(&self, api_version: &str, kind: &str) -> Option<&DiscoveredResource> {
        let (group, _) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        self.resources
            .iter()
            .find(|r| r.group == group && r.kind == kind)
    }

    pub fn by_group_resource(&self, group_resource: &str) -> Option<&DiscoveredResource> {
        self.resources
            .iter()
            .find(|r| r.group_resource() == group_resource)
    }
}

/// Types that two groups serve; the first group seen wins (Velero's `pkg/discovery/helper.go`).
const COHABITING: &[(&str, &[&str])] = &[
    ("deployments", &["extensions", "apps"]),
    ("daemonsets", &["extensions", "apps"]),
    ("replicasets", &["extensions", "apps"]),
    ("networkpolicies", &["extensions", "networking.k8s.io"]),
    ("events", &["", "events.k8s.io"]),
];

fn listable(r: &APIResource) -> bool {
    !r.name.contains('/')
        && ["list", "create", "get", "delete"]
            .iter()
            .all(|v| r.verbs.iter().any(|have| have == v))
}

/// Velero's core-group order: pods, then their claims, then volumes, then the rest (stable).
fn core_rank(resource: &str) -> u8 {
    match resource {
        "pods" => 0,
        "persistentvolumeclaims" => 1,
        "persistentvolumes" => 2,
        _ => 3,
    }
}

/// Discovers every listable type at its group's preferred version, core group first, groups in the
/// server's order with `extensions` last, cohabiting types once.
pub async fn discover(client: &kube::Client) -> Result<Discovery, kube::Error> {
    let core = client.list_core_api_versions().await?;
    let groups = client.list_api_groups().await?;

    // Every version of every group, preferred first: like client-go's ServerPreferredResources, a
    // type served only at another version (batch/v1beta1 CronJobs next to batch/v1) is kept, at
    // the first version that serves it.
    let mut wanted: Vec<(String, String)> = Vec::new();
    if let Some(v) = core.versions.first() {
        wanted.push((String::new(), v.clone()));
    }
    let mut api_groups: Vec<_> = groups.groups.into_iter().collect();
    // Stable: only moves `extensions` behind everything else.
    api_groups.sort_by_key(|g| g.name == "extensions");
    for g in api_groups {
        let preferred = g
            .preferred_version
            .map(|p| p.version)
            .or_else(|| g.versions.first().map(|v| v.version.clone()));
        if let Some(p) = &preferred {
            wanted.push((g.name.clone(), p.clone()));
        }
        for v in g.versions {
            if Some(&v.version) != preferred.as_ref() {
                wanted.push((g.name.clone(), v.version));
            }
        }
    }

    let lists = join_all(wanted.iter().map(|(group, version)| async move {
        if group.is_empty() {
            client.list_core_api_resources(version).await
        } else {
            client
                .list_api_group_resources(&format!("{group}/{version}"))
                .await
        }
    }))
    .await;

    let mut discovery = Discovery::default();
    let mut seen_cohabitants: Vec<&str> = Vec::new();
    let mut seen: std::collections::HashSet<(String, String)> = std::collections::HashSet::new();
    let mut core_resources: Vec<DiscoveredResource> = Vec::new();
    for ((group, version), list) in wanted.iter().zip(lists) {
        let list = match list {
            Ok(list) => list,
            Err(e) => {
                discovery
                    .failed_groups
                    .push((format!("{group}/{version}"), e.to_string()));
                continue;
            }
        };
        let resources = list
            .resources
            .into_iter()
            .filter(listable)
            .filter(|r| seen.insert((group.clone(), r.name.clone())))
            .filter(|r| {
                match COHABITING
                    .iter()
                    .find(|(name, groups)| *name == r.name && groups.contains(&group.as_str()))
                {
                    Some((name, _)) if seen_cohabitants.contains(name) => false,
                    Some((name, _)) => {
                        seen_cohabitants.push(name);
                        true
                    }
                    None => true,
                }
            })
            .map(|r| DiscoveredResource {
                group: group.clone(),
                version: version.clone(),
                singular: if r.singular_name.is_empty() {
                    r.kind.to_ascii_lowercase()
                } else {
                    r.singular_name
                },
                resource: r.name,
                kind: r.kind,
                short_names: r.short_names.unwrap_or_default(),
                namespaced: r.namespaced,
            })
            .collect::<Vec<DiscoveredResource>>();
        if group.is_empty() {
            core_resources.extend(resources);
        } else {
            discovery.resources.extend(resources);
        }
    }
    core_resources.sort_by_key(|r| core_rank(&r.resource));
    discovery.resources.splice(0..0, core_resources);
    Ok(discovery)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(
        group: &str,
        resource: &str,
        kind: &str,
        short: &[&str],
        namespaced: bool,
    ) -> DiscoveredResource {
        DiscoveredResource {
            group: group.into(),
            version: "v1".into(),
            resource: resource.into(),
            singular: kind.to_ascii_lowercase(),
            kind: kind.into(),
            short_names: short.iter().map(|s| s.to_string()).collect(),
            namespaced,
        }
    }

    #[test]
    fn resolves_what_users_write() {
        let d = Discovery {
            resources: vec![
                r("", "services", "Service", &["svc"], true),
                r("apps", "deployments", "Deployment", &["deploy"], true),
                r(
                    "storage.k8s.io",
                    "storageclasses",
                    "StorageClass",
                    &["sc"],
                    false,
                ),
            ],
            failed_groups: vec![],
        };
        assert_eq!(d.resolve("svc").unwrap().resource, "services");
        assert_eq!(d.resolve("deployments.apps").unwrap().group, "apps");
        assert_eq!(d.resolve("Deployment").unwrap().resource, "deployments");
        assert_eq!(
            d.resolve("sc").unwrap().group_resource(),
            "storageclasses.storage.k8s.io"
        );
        assert!(d.resolve("deployments.extensions").is_none());
        assert!(d.resolve("widgets").is_none());
        let pods = r("", "pods", "Pod", &[], true);
        assert_eq!(pods.list_path(Some("app")), "/api/v1/namespaces/app/pods");
        assert_eq!(
            d.resources[2].list_path(Some("app")),
            "/apis/storage.k8s.io/v1/storageclasses"
        );
    }

    #[test]
    fn core_order_is_pods_claims_volumes_then_the_rest() {
        let mut names = vec![
            "configmaps",
            "persistentvolumes",
            "pods",
            "secrets",
            "persistentvolumeclaims",
        ];
        names.sort_by_key(|n| core_rank(n));
        assert_eq!(
            names,
            [
                "pods",
                "persistentvolumeclaims",
                "persistentvolumes",
                "configmaps",
                "secrets"
            ]
        );
    }
}

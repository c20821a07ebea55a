//! Velero's `describe` layout: text written with tab-separated cells and aligned the way Go's
//! `text/tabwriter` aligns it (minimum width 0, padding 2, spaces), so columns line up exactly as
//! in Velero's output.
//!
//! `backup` and `restore` lay out those objects' descriptions with it.

pub mod backup;
pub mod restore;

use std::collections::BTreeMap;
use std::fmt::{self, Display};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

/// Collects a description; `finish` aligns it.
#[derive(Default)]
pub struct Describer {
    text: String,
    prefix: String,
}

impl Describer {
    /// Velero's `Describer.Prefix`: written before the text of every later `print` and `line`
    /// call (not before every line of text), so that one description can be nested in another,
    /// as a schedule's backup template is. Go aligns the prefix's tabs like any other, and so do we.
    pub fn set_prefix(&mut self, prefix: &str) {
        self.prefix = prefix.to_string();
    }

    /// Velero's resource lines for the old filter style, shared by backups and restores: the
    /// included and excluded types, then whether cluster-scoped ones are in.
    pub fn resources_and_cluster_scope(
        &mut self,
        included: Option<&Vec<String>>,
        excluded: Option<&Vec<String>>,
        include_cluster_resources: Option<bool>,
    ) {
        self.included_excluded(1, included, excluded);
        self.line(format_args!(
            "\tCluster-scoped:\t{}",
            bool_or(include_cluster_resources, "excluded", "included", "auto")
        ));
    }

    /// The prefix, then text as is (Velero's `Printf` without a trailing newline).
    pub fn print(&mut self, text: impl Display) {
        use fmt::Write as _;
        self.text.push_str(&self.prefix);
        let _ = write!(self.text, "{text}");
    }

    /// The prefix, text and a newline.
    pub fn line(&mut self, text: impl Display) {
        use fmt::Write as _;
        self.text.push_str(&self.prefix);
        let _ = writeln!(self.text, "{text}");
    }

    /// `Name:`, `Namespace:`, `Labels:` and `Annotations:`, as every Velero description starts.
    pub fn metadata(&mut self, meta: &ObjectMeta) {
        self.line(format_args!(
            "Name:\t{}",
            meta.name.as_deref().unwrap_or_default()
        ));
        self.line(format_args!(
            "Namespace:\t{}",
            meta.namespace.as_deref().unwrap_or_default()
        ));
        self.map("Labels", meta.labels.as_ref());
        self.map("Annotations", meta.annotations.as_ref());
    }

    /// `name:` then one `key=value` per line, sorted, or `<none>`.
    pub fn map(&mut self, name: &str, map: Option<&BTreeMap<String, String>>) {
        self.print(format_args!("{name}:\t"));
        match map.filter(|m| !m.is_empty()) {
            None => self.line("<none>"),
            Some(map) => {
                let mut prefix = "";
                for (key, value) in map {
                    self.line(format_args!("{prefix}{key}={value}"));
                    prefix = "\t";
                }
            }
        }
    }

    /// `Label selector:` and `Or label selector:` (joined with ` or `), each after a blank line,
    /// as backup and restore descriptions both show them.
    pub fn selectors(
        &mut self,
        label_selector: Option<&LabelSelector>,
        or_selectors: Option<&[LabelSelector]>,
    ) {
        self.line("");
        self.line(format_args!(
            "Label selector:\t{}",
            crate::table::selector(label_selector)
        ));
        self.line("");
        let or = match or_selectors {
            None | Some([]) => "<none>".to_string(),
            Some(selectors) => selectors
                .iter()
                .map(|s| crate::table::selector(Some(s)))
                .collect::<Vec<_>>()
                .join(" or "),
        };
        self.line(format_args!("Or label selector:\t{or}"));
    }

    /// Velero's `Included:`/`Excluded:` pair of a filter, `indent` tabs deep: `*` when nothing is
    /// listed as included, `<none>` when nothing is excluded.
    pub fn included_excluded(
        &mut self,
        indent: usize,
        included: Option<&Vec<String>>,
        excluded: Option<&Vec<String>>,
    ) {
        let tabs = "\t".repeat(indent);
        self.line(format_args!("{tabs}Included:\t{}", list_or(included, "*")));
        self.line(format_args!(
            "{tabs}Excluded:\t{}",
            list_or(excluded, "<none>")
        ));
    }

    /// `name:` then one entry per line, indented by `preindent` cells, or `<none>`.
    pub fn slice(&mut self, preindent: usize, name: &str, items: &[String]) {
        let pretab = "\t".repeat(preindent);
        self.print(format_args!("{pretab}{name}:\t"));
        if items.is_empty() {
            self.line(format_args!("{pretab}<none>"));
            return;
        }
        let mut prefix = String::new();
        for item in items {
            self.line(format_args!("{prefix}{item}"));
            prefix = format!("{pretab}\t");
        }
    }

    /// One half of a results file (`{"velero": [..], "cluster": [..], "namespaces": {ns: [..]}}`)
    /// under `name`, as Velero's `describeResult`.
    pub fn result(&mut self, name: &str, result: &serde_json::Value) {
        let strings = |v: Option<&serde_json::Value>| -> Vec<String> {
            v.and_then(|v| v.as_array())
                .into_iter()
                .flatten()
                .map(|e| {
                    e.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| e.to_string())
                })
                .collect()
        };
        self.line(format_args!("{name}:"));
        self.slice(1, "Velero", &strings(result.get("velero")));
        self.slice(1, "Cluster", &strings(result.get("cluster")));
        match result
            .get("namespaces")
            .and_then(|v| v.as_object())
            .filter(|m| !m.is_empty())
        {
            None => self.line("\tNamespaces: <none>"),
            Some(namespaces) => {
                self.line("\tNamespaces:");
                for (ns, entries) in namespaces {
                    self.slice(2, ns, &strings(Some(entries)));
                }
            }
        }
    }

    pub fn finish(self) -> String {
        tabwrite(&self.text, 2)
    }
}

/// `values` joined by `, `, or `empty` when there are none.
pub fn list_or(values: Option<&Vec<String>>, empty: &str) -> String {
    match values {
        Some(v) if !v.is_empty() => v.join(", "),
        _ => empty.to_string(),
    }
}

/// Velero's `BoolPointerString`.
pub fn bool_or<'a>(
    value: Option<bool>,
    if_false: &'a str,
    if_true: &'a str,
    unset: &'a str,
) -> &'a str {
    match value {
        None => unset,
        Some(true) => if_true,
        Some(false) => if_false,
    }
}

/// Go's `text/tabwriter` with padding character ' ' and no flags: a cell is text ended by a tab;
/// the text after a line's last tab is not aligned. Consecutive lines that have a cell in the
/// same column form a block whose cells are padded to the block's widest cell plus `padding`.
fn tabwrite(text: &str, padding: usize) -> String {
    let lines: Vec<(Vec<&str>, bool)> = text
        .split_inclusive('\n')
        .map(|l| match l.strip_suffix('\n') {
            Some(l) => (l.split('\t').collect(), true),
            None => (l.split('\t').collect(), false),
        })
        .collect();
    let mut out = String::with_capacity(text.len() * 2);
    let mut widths = Vec::new();
    format_block(&lines, 0, lines.len(), &mut widths, padding, &mut out);
    out
}

fn width(cell: &str) -> usize {
    cell.chars().count()
}

fn format_block(
    lines: &[(Vec<&str>, bool)],
    mut start: usize,
    end: usize,
    widths: &mut Vec<usize>,
    padding: usize,
    out: &mut String,
) {
    let column = widths.len();
    let mut this = start;
    while this < end {
        if column + 1 >= lines[this].0.len() {
            this += 1;
            continue;
        }
        // A block for `column` starts here: everything before it is laid out with the widths so far.
        write_lines(lines, start, this, widths, out);
        start = this;
        let mut block_width = 0;
        while this < end && column + 1 < lines[this].0.len() {
            block_width = block_width.max(width(lines[this].0[column]) + padding);
            this += 1;
        }
        widths.push(block_width);
        format_block(lines, start, this, widths, padding, out);
        widths.pop();
        start = this;
    }
    write_lines(lines, start, end, widths, out);
}

fn write_lines(
    lines: &[(Vec<&str>, bool)],
    start: usize,
    end: usize,
    widths: &[usize],
    out: &mut String,
) {
    for (cells, newline) in &lines[start..end] {
        for (j, cell) in cells.iter().enumerate() {
            out.push_str(cell);
            if let Some(w) = widths.get(j) {
                out.extend(std::iter::repeat_n(' ', w.saturating_sub(width(cell))));
            }
        }
        if *newline {
            out.push('\n');
        }
    }
}

/// One pod volume's backup or restore, as the describe commands list them.
pub(crate) struct PodVolumeRow {
    /// `namespace/name` of the pod.
    pub(crate) pod: String,
    pub(crate) volume: String,
    /// The phase group it is listed under ("Completed", "In Progress", ...).
    pub(crate) group: &'static str,
    pub(crate) progress: velero_api::DataMoveOperationProgress,
}

impl PodVolumeRow {
    pub(crate) fn new(
        pod: &k8s_openapi::api::core::v1::ObjectReference,
        volume: &str,
        group: &'static str,
        progress: Option<velero_api::DataMoveOperationProgress>,
    ) -> Self {
        PodVolumeRow {
            pod: format!(
                "{}/{}",
                pod.namespace.as_deref().unwrap_or_default(),
                pod.name.as_deref().unwrap_or_default()
            ),
            volume: volume.to_string(),
            group,
            progress: progress.unwrap_or_default(),
        }
    }
}

/// Velero's listing of pod volume backups and restores: per group (in `groups`' order) a count,
/// or with `details` the volumes of each pod, with the percentage done of those in progress and
/// the size of those completed.
pub(crate) fn describe_pod_volumes(
    d: &mut Describer,
    rows: &[PodVolumeRow],
    groups: &[&str],
    prefix: &str,
    details: bool,
) {
    for group in groups {
        let members: Vec<&PodVolumeRow> = rows.iter().filter(|r| r.group == *group).collect();
        if members.is_empty() {
            continue;
        }
        if !details {
            d.line(format_args!("{prefix}{group}:\t{}", members.len()));
            continue;
        }
        let mut by_pod: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for row in members {
            let total = row.progress.total_bytes.unwrap_or(0);
            let volume = match *group {
                "In Progress" if total != 0 => format!(
                    "{} ({:.2}%)",
                    row.volume,
                    row.progress.bytes_done.unwrap_or(0) as f64 / total as f64 * 100.0
                ),
                "Completed" if total > 0 => format!("{} (size: {total})", row.volume),
                _ => row.volume.clone(),
            };
            by_pod.entry(&row.pod).or_default().push(volume);
        }
        d.line(format_args!("{prefix}{group}:"));
        for (pod, mut volumes) in by_pod {
            volumes.sort();
            d.line(format_args!("{prefix}\t{pod}: {}", volumes.join(", ")));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_like_go_tabwriter() {
        let mut d = Describer::default();
        d.line("Phase:\tCompleted");
        d.line("Total items to be restored:\t5");
        d.line("Items restored:\t5");
        d.line("");
        d.line("Started:\tx");
        d.line("Completed:\ty");
        assert_eq!(
            d.finish(),
            "Phase:                       Completed\n\
             Total items to be restored:  5\n\
             Items restored:              5\n\
             \n\
             Started:    x\n\
             Completed:  y\n"
        );
    }

    #[test]
    fn nested_columns_only_align_within_their_block() {
        let mut d = Describer::default();
        d.line("Resources:");
        d.line("\tIncluded:\t*");
        d.line("\tExcluded:\t<none>");
        d.line("\tCluster-scoped:\tauto");
        assert_eq!(
            d.finish(),
            "Resources:\n  Included:        *\n  Excluded:        <none>\n  Cluster-scoped:  auto\n"
        );
    }

    #[test]
    fn metadata_and_maps() {
        let mut d = Describer::default();
        d.metadata(&ObjectMeta {
            name: Some("r1".into()),
            namespace: Some("velero".into()),
            labels: Some(BTreeMap::from([
                ("b".to_string(), "2".to_string()),
                ("a".to_string(), "1".to_string()),
            ])),
            ..Default::default()
        });
        assert_eq!(
            d.finish(),
            "Name:         r1\nNamespace:    velero\nLabels:       a=1\n              b=2\nAnnotations:  <none>\n"
        );
    }

    #[test]
    fn results_as_velero_prints_them() {
        let mut d = Describer::default();
        d.result(
            "Warnings",
            &serde_json::json!({
                "velero": [],
                "cluster": ["could not restore a", "could not restore b"],
                "namespaces": {"shop": ["already exists"], "default": ["x"]}
            }),
        );
        assert_eq!(
            d.finish(),
            "Warnings:\n\
             \x20 Velero:     <none>\n\
             \x20 Cluster:  could not restore a\n\
             \x20           could not restore b\n\
             \x20 Namespaces:\n\
             \x20   default:  x\n\
             \x20   shop:     already exists\n"
        );
        let mut d = Describer::default();
        d.result("Errors", &serde_json::json!({}));
        assert_eq!(
            d.finish(),
            "Errors:\n  Velero:     <none>\n  Cluster:    <none>\n  Namespaces: <none>\n"
        );
    }

    #[test]
    fn a_prefix_starts_every_call_as_in_go() {
        let mut d = Describer::default();
        d.line("Backup Template:");
        d.set_prefix("\t");
        d.line("Namespaces:");
        d.line("\tIncluded:\t*");
        d.line("");
        d.map("Labels", Some(&BTreeMap::from([("a".into(), "1".into())])));
        d.set_prefix("");
        d.line("");
        d.line("Last Backup:\t<never>");
        // Go's blank lines inside the prefixed part keep the prefix's padding, and its maps
        // repeat the prefix before their values.
        assert_eq!(
            d.finish(),
            "Backup Template:\n  Namespaces:\n    Included:  *\n  \n  Labels:    a=1\n\nLast Backup:  <never>\n"
        );
    }

    #[test]
    fn helpers() {
        assert_eq!(list_or(None, "*"), "*");
        assert_eq!(list_or(Some(&vec!["a".into(), "b".into()]), "*"), "a, b");
        assert_eq!(bool_or(None, "f", "t", "auto"), "auto");
        assert_eq!(bool_or(Some(false), "f", "t", "auto"), "f");
    }
}

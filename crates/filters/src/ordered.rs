//! `orderedResources`: back up named items of a type first, in a given order (Velero's `pkg/backup/item_collector.go`).

use std::collections::{BTreeMap, HashMap};

/// The `--ordered-resources` value Velero refuses; the text is Velero's and names the bad entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid OrderedResources '{0}'")]
pub struct OrderedResourcesError(pub String);

/// Velero's `ParseOrderedResources` for `velero backup create --ordered-resources`:
/// `pods=ns1/p1,ns1/p2;persistentvolumeclaims=ns1/c1` → `{pods: "ns1/p1,ns1/p2", …}`.
///
/// Entries are separated by `;` and each needs exactly one `=`; key and value are trimmed, the
/// names inside the value are not. A later entry for the same key wins. Keys are matched against
/// the plural resource name only (`deployments`, never `deployments.apps`).
pub fn parse_ordered_resources(
    value: &str,
) -> Result<BTreeMap<String, String>, OrderedResourcesError> {
    let mut out = BTreeMap::new();
    for entry in value.split(';') {
        let parts: Vec<&str> = entry.split('=').collect();
        let [kind, order] = parts.as_slice() else {
            return Err(OrderedResourcesError(entry.to_string()));
        };
        out.insert(kind.trim().to_string(), order.trim().to_string());
    }
    Ok(out)
}

/// Items of one type after applying its `orderedResources` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderedItems<T> {
    /// The listed items first, in the given order, then the others in their original order.
    pub items: Vec<T>,
    /// How many leading items were named in the order. Velero keeps consecutive ordered items of
    /// a type in one ItemBlock.
    pub ordered: usize,
    /// Names in the order that matched no item (Velero warns "Cannot find resource").
    pub missing: Vec<String>,
}

/// Velero's `sortResourcesByOrder`. `order` is the comma list from `orderedResources` for this
/// type; `name_of` gives an item's `namespace/name`, or `name` when cluster-scoped.
///
/// Like Velero, when several items share a name (an object listed twice by two OR selectors),
/// a name in the order takes the last of them and drops the others; names not in the order keep
/// all their copies. A name given twice in the order is reported missing the second time.
pub fn sort_by_order<T>(
    items: Vec<T>,
    order: &str,
    name_of: impl Fn(&T) -> String,
) -> OrderedItems<T> {
    if order.is_empty() {
        return OrderedItems {
            items,
            ordered: 0,
            missing: Vec::new(),
        };
    }
    let names: Vec<String> = items.iter().map(&name_of).collect();
    // Name → index of the last item with that name; removed once the name has been placed.
    let mut by_name: HashMap<&str, usize> = HashMap::new();
    for (index, name) in names.iter().enumerate() {
        by_name.insert(name, index);
    }
    let mut slots: Vec<Option<T>> = items.into_iter().map(Some).collect();
    let mut sorted = Vec::with_capacity(slots.len());
    let mut missing = Vec::new();
    for wanted in order.split(',') {
        match by_name.remove(wanted) {
            // Each name is in `by_name` once, so each slot is taken once.
            Some(index) => sorted.extend(slots[index].take()),
            None => missing.push(wanted.to_string()),
        }
    }
    let ordered = sorted.len();
    for (index, name) in names.iter().enumerate() {
        if by_name.contains_key(name.as_str())
            && let Some(item) = slots[index].take()
        {
            sorted.push(item);
        }
    }
    OrderedItems {
        items: sorted,
        ordered,
        missing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_the_cli_value() {
        let parsed =
            parse_ordered_resources("pods=ns1/p1,ns1/p2; persistentvolumeclaims = ns1/c1 ")
                .unwrap();
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed["pods"], "ns1/p1,ns1/p2");
        assert_eq!(parsed["persistentvolumeclaims"], "ns1/c1");
        assert_eq!(
            parse_ordered_resources("pods=a;pods=b").unwrap()["pods"],
            "b"
        );
        assert_eq!(parse_ordered_resources("pods=").unwrap()["pods"], "");
    }

    #[test]
    fn rejects_entries_without_exactly_one_equals() {
        let err = |s: &str| parse_ordered_resources(s).unwrap_err().to_string();
        assert_eq!(err("pods"), "invalid OrderedResources 'pods'");
        assert_eq!(err("pods=a;"), "invalid OrderedResources ''");
        assert_eq!(err("pods=a=b;x=y"), "invalid OrderedResources 'pods=a=b'");
        assert_eq!(err(""), "invalid OrderedResources ''");
    }

    fn names(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn listed_first_then_the_rest_in_original_order() {
        let items = names(&["ns/a", "ns/b", "ns/c", "ns/d"]);
        let out = sort_by_order(items, "ns/c,ns/x,ns/a", String::clone);
        assert_eq!(out.items, names(&["ns/c", "ns/a", "ns/b", "ns/d"]));
        assert_eq!(out.ordered, 2);
        assert_eq!(out.missing, names(&["ns/x"]));
    }

    #[test]
    fn empty_order_changes_nothing() {
        let items = names(&["b", "a"]);
        let out = sort_by_order(items.clone(), "", String::clone);
        assert_eq!(out.items, items);
        assert_eq!(out.ordered, 0);
    }

    #[test]
    fn names_are_not_trimmed_and_empty_names_are_missing() {
        let out = sort_by_order(names(&["ns/a", "ns/b"]), "ns/b, ns/a,", String::clone);
        assert_eq!(out.items, names(&["ns/b", "ns/a"]));
        assert_eq!(out.ordered, 1);
        assert_eq!(out.missing, names(&[" ns/a", ""]));
    }

    #[test]
    fn duplicates_follow_velero() {
        // Items are (name, copy number).
        let items = vec![("a", 1), ("b", 1), ("a", 2), ("b", 2)];
        let out = sort_by_order(items, "a,a", |(n, _)| n.to_string());
        assert_eq!(out.items, vec![("a", 2), ("b", 1), ("b", 2)]);
        assert_eq!(out.ordered, 1);
        assert_eq!(out.missing, names(&["a"]));
    }

    proptest! {
        #[test]
        fn sorting_is_a_permutation_with_listed_names_first(
            items in proptest::collection::btree_set("[a-e]/[a-e]", 0..10),
            order in proptest::collection::vec("[a-e]/[a-e]", 1..6),
        ) {
            let items: Vec<String> = items.into_iter().collect();
            let order_str = order.join(",");
            let out = sort_by_order(items.clone(), &order_str, String::clone);

            let mut sorted_out = out.items.clone();
            sorted_out.sort();
            prop_assert_eq!(sorted_out, items.clone());

            // The leading block is the order's names that exist, first occurrence each.
            let mut expected_head: Vec<String> = Vec::new();
            for name in &order {
                if items.contains(name) && !expected_head.contains(name) {
                    expected_head.push(name.clone());
                }
            }
            prop_assert_eq!(out.ordered, expected_head.len());
            prop_assert_eq!(&out.items[..out.ordered], &expected_head[..]);

            // The tail keeps the original relative order.
            let tail: Vec<&String> = out.items[out.ordered..].iter().collect();
            let expected_tail: Vec<&String> =
                items.iter().filter(|i| !expected_head.contains(i)).collect();
            prop_assert_eq!(tail, expected_tail);

            prop_assert_eq!(out.missing.len(), order.len() - out.ordered);
        }

        #[test]
        fn parse_round_trips_generated_values(
            map in proptest::collection::btree_map("[a-z]{1,8}", "[a-z0-9/,]{0,12}", 1..5),
        ) {
            let value = map
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(";");
            prop_assert_eq!(parse_ordered_resources(&value).unwrap(), map);
        }
    }
}

//! Parsers for Velero's flag value formats.

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use k8s_openapi::api::core::v1::SecretKeySelector;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// `key1=value1,key2=value2`, as Velero's map flags take it.
pub fn parse_map(input: &str) -> Result<BTreeMap<String, String>, String> {
    parse_pairs(input, '=', "key=value", "key1=value1,key2=value2")
}

/// `--credential secret=key`: the one Secret key a location's credential names, as Velero takes it.
pub fn parse_credential(input: &str) -> Result<SecretKeySelector, String> {
    let map = parse_map(input)?;
    if map.len() != 1 {
        return Err("--credential takes exactly one secret=key pair".into());
    }
    let (name, key) = map.into_iter().next().ok_or("--credential is empty")?;
    Ok(SecretKeySelector {
        name,
        key,
        optional: None,
    })
}

/// `--namespace-mappings src1:dst1,src2:dst2`: both sides are namespace names, so neither may be
/// empty.
pub fn parse_namespace_mappings(input: &str) -> Result<BTreeMap<String, String>, String> {
    let map = parse_pairs(input, ':', "src:dst", "src1:dst1,src2:dst2")?;
    if let Some((src, _)) = map.iter().find(|(_, dst)| dst.is_empty()) {
        return Err(format!(
            "namespace {src:?} is mapped to an empty name (format: src1:dst1,src2:dst2)"
        ));
    }
    Ok(map)
}

fn parse_pairs(
    input: &str,
    separator: char,
    what: &str,
    example: &str,
) -> Result<BTreeMap<String, String>, String> {
    let mut map = BTreeMap::new();
    for pair in input.split(',').filter(|p| !p.is_empty()) {
        let (k, v) = pair
            .split_once(separator)
            .ok_or_else(|| format!("{pair:?} is not a {what} pair (format: {example})"))?;
        if k.is_empty() {
            return Err(format!("{pair:?} has an empty key (format: {example})"));
        }
        map.insert(k.to_string(), v.to_string());
    }
    Ok(map)
}

/// `Some(list)` unless the flag was left empty, so unset list fields stay out of the object.
pub fn non_empty(v: &[String]) -> Option<Vec<String>> {
    (!v.is_empty()).then(|| v.to_vec())
}

/// `-l/--selector` and `--or-selector`, which Velero allows one of.
pub type Selectors = (Option<LabelSelector>, Option<Vec<LabelSelector>>);

pub fn label_selectors(
    selector: Option<&str>,
    or_selector: Option<&str>,
) -> anyhow::Result<Selectors> {
    if selector.is_some() && or_selector.is_some() {
        bail!("either a 'selector' or an 'or-selector' can be specified, but not both");
    }
    let label_selector = selector
        .map(|s| {
            velero_filters::selector::parse_label_selector(s)
                .with_context(|| format!("invalid --selector {s:?}"))
        })
        .transpose()?;
    let or_label_selectors = or_selector
        .map(|s| {
            velero_filters::selector::parse_or_label_selectors(s)
                .with_context(|| format!("invalid --or-selector {s:?}"))
        })
        .transpose()?;
    Ok((label_selector, or_label_selectors))
}

/// A Go duration (`720h`, `1h30m`, `90s`).
pub fn parse_duration(input: &str) -> Result<velero_api::Duration, String> {
    velero_api::Duration::parse(input).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps() {
        let m = parse_map("region=minio,s3ForcePathStyle=true,s3Url=http://a:9000/x=y").unwrap();
        assert_eq!(m["region"], "minio");
        assert_eq!(m["s3Url"], "http://a:9000/x=y");
        assert!(parse_map("region").unwrap_err().contains("key=value"));
        assert!(parse_map("=x").unwrap_err().contains("empty key"));
        assert!(parse_map("").unwrap().is_empty());
    }

    #[test]
    fn namespace_mappings() {
        let m = parse_namespace_mappings("shop:shop-copy,db:db2").unwrap();
        assert_eq!(m["shop"], "shop-copy");
        assert_eq!(m["db"], "db2");
        assert_eq!(
            parse_namespace_mappings("shop=copy").unwrap_err(),
            "\"shop=copy\" is not a src:dst pair (format: src1:dst1,src2:dst2)"
        );
        assert!(
            parse_namespace_mappings(":x")
                .unwrap_err()
                .contains("empty key")
        );
        assert!(
            parse_namespace_mappings("x:")
                .unwrap_err()
                .contains("empty name")
        );
    }

    #[test]
    fn selectors_are_exclusive() {
        let err = label_selectors(Some("a=b"), Some("c=d")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "either a 'selector' or an 'or-selector' can be specified, but not both"
        );
        let (one, none) = label_selectors(Some("a=b"), None).unwrap();
        assert!(one.is_some() && none.is_none());
        let (none, two) = label_selectors(None, Some("a=b or c=d")).unwrap();
        assert_eq!((none, two.map(|v| v.len())), (None, Some(2)));
        let err = label_selectors(Some("app in ((x"), None).unwrap_err();
        assert!(format!("{err:#}").contains("invalid --selector"));
    }
}

//! Parsers for Velero's flag value formats.

use std::collections::BTreeMap;

/// `key1=value1,key2=value2`, as Velero's map flags take it.
pub fn parse_map(input: &str) -> Result<BTreeMap<String, String>, String> {
    let mut map = BTreeMap::new();
    for pair in input.split(',').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').ok_or_else(|| {
            format!("{pair:?} is not a key=value pair (format: key1=value1,key2=value2)")
        })?;
        if k.is_empty() {
            return Err(format!("{pair:?} has an empty key"));
        }
        map.insert(k.to_string(), v.to_string());
    }
    Ok(map)
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
}

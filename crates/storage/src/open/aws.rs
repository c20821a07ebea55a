//! AWS: S3 and S3-compatible stores, with velero-plugin-for-aws's config keys.

use std::net::IpAddr;
use std::sync::Arc;

use base64::Engine as _;
use object_store::TagSet;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey, Checksum};
use object_store::signer::Signer;

use super::{
    DEFAULT_PART_SIZE, Opened, build_error, check_url, client_options, require_bucket, retry_config,
};
use crate::config::{LocationConfig, aws_profile, get, parse_bool};
use crate::error::{ErrorContext, StorageError};

pub(crate) struct AwsPlan {
    pub builder: AmazonS3Builder,
    /// A client for `publicUrl`, used only to sign download URLs.
    pub public_builder: Option<AmazonS3Builder>,
    pub tags: TagSet,
    pub context: ErrorContext,
    pub warnings: Vec<String>,
}

impl AwsPlan {
    pub(super) fn build(self) -> Result<Opened, StorageError> {
        let store = Arc::new(self.builder.build().map_err(|e| build_error("S3", e))?);
        let signer: Arc<dyn Signer> = match self.public_builder {
            Some(public) => Arc::new(public.build().map_err(|e| build_error("S3", e))?),
            None => store.clone(),
        };
        Ok(Opened {
            store,
            signer: Some(signer),
            tags: self.tags,
            part_size: DEFAULT_PART_SIZE,
            context: self.context,
            warnings: self.warnings,
        })
    }
}

/// A bucket name S3 can put in a host name: virtual-hosted addressing needs it, and dotted names
/// break TLS on the wildcard certificate, so those use path-style (as the AWS SDK does).
fn dns_compatible(bucket: &str) -> bool {
    (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !bucket.starts_with('-')
        && !bucket.ends_with('-')
}

/// The host part of `scheme://host[:port]/...`.
fn url_host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or(rest);
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split(']').next().unwrap_or(v6);
    }
    authority.split(':').next().unwrap_or(authority)
}

/// `https://host:9000/p` → `https://<bucket>.host:9000/p`: object_store takes a virtual-hosted
/// endpoint with the bucket already in it.
fn with_bucket_host(url: &str, bucket: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => format!("{scheme}://{bucket}.{rest}"),
        None => url.to_string(),
    }
}

pub(crate) fn aws_plan(
    cfg: &LocationConfig,
    creds: Option<&[u8]>,
) -> Result<AwsPlan, StorageError> {
    let config = &cfg.config;
    let bucket = require_bucket(cfg)?;
    if bucket.starts_with("arn:aws:s3:") {
        return Err(StorageError::Unsupported {
            key: "bucket".into(),
            reason: "S3 Multi-Region Access Points need SigV4A request signing, which the S3 \
                     client of velero-rs does not implement; use the bucket's name"
                .into(),
        });
    }
    let mut warnings = Vec::new();

    // With a credential, only it counts (Velero's plugin also turns off IRSA then); without, the
    // environment's: AWS_* variables, web identity (IRSA), EKS pod identity, instance metadata.
    let mut builder = if creds.is_some() {
        AmazonS3Builder::new()
    } else {
        AmazonS3Builder::from_env()
    };
    builder = builder.with_bucket_name(&bucket);

    let mut profile_region = None;
    if let Some(creds) = creds {
        let name = get(config, "profile").unwrap_or("default");
        let profile = aws_profile(creds, name)?;
        profile_region = profile.get("region").map(str::to_string);
        let key_id = profile.get("aws_access_key_id");
        let secret = profile.get("aws_secret_access_key");
        match (key_id, secret) {
            (Some(key_id), Some(secret)) => {
                builder = builder
                    .with_access_key_id(key_id)
                    .with_secret_access_key(secret);
                if let Some(token) = profile.get("aws_session_token") {
                    builder = builder.with_token(token);
                }
            }
            (Some(_), None) | (None, Some(_)) => {
                return Err(StorageError::Credentials(format!(
                    "profile {name:?} needs both aws_access_key_id and aws_secret_access_key"
                )));
            }
            (None, None) => {
                if let (Some(role), Some(token_file)) = (
                    profile.get("role_arn"),
                    profile.get("web_identity_token_file"),
                ) {
                    builder = builder
                        .with_config(AmazonS3ConfigKey::RoleArn, role)
                        .with_config(AmazonS3ConfigKey::WebIdentityTokenFile, token_file);
                    if let Some(session) = profile.get("role_session_name") {
                        builder = builder.with_config(AmazonS3ConfigKey::RoleSessionName, session);
                    }
                } else if let Some(key) = [
                    "role_arn",
                    "source_profile",
                    "credential_source",
                    "credential_process",
                    "sso_session",
                    "sso_start_url",
                ]
                .into_iter()
                .find(|k| profile.get(k).is_some())
                {
                    return Err(StorageError::Unsupported {
                        key: format!("credentials profile {name:?} with {key}"),
                        reason: "velero-rs reads static keys (aws_access_key_id, \
                                 aws_secret_access_key, aws_session_token) or role_arn with \
                                 web_identity_token_file from the credentials file"
                            .into(),
                    });
                } else {
                    return Err(StorageError::Credentials(format!(
                        "profile {name:?} has no aws_access_key_id and aws_secret_access_key"
                    )));
                }
            }
        }
    }

    let s3_url = get(config, "s3Url");
    let region = get(config, "region")
        .map(str::to_string)
        .or(profile_region)
        .or_else(|| std::env::var("AWS_REGION").ok().filter(|r| !r.is_empty()))
        .or_else(|| {
            std::env::var("AWS_DEFAULT_REGION")
                .ok()
                .filter(|r| !r.is_empty())
        });
    let region = match region {
        Some(region) => region,
        None => {
            if s3_url.is_none() {
                warnings.push(
                    "config.region is not set: assuming us-east-1 (Velero would look the bucket's \
                     region up); set it if the bucket is elsewhere"
                        .to_string(),
                );
            }
            "us-east-1".to_string()
        }
    };
    builder = builder.with_region(&region);

    let path_style = parse_bool(config, "s3ForcePathStyle")?.unwrap_or(false);
    let insecure = parse_bool(config, "insecureSkipTLSVerify")?.unwrap_or(false);
    let mut allow_http = false;
    let endpoint = match s3_url {
        Some(url) => {
            allow_http = check_url("s3Url", url)?;
            let url = url.trim_end_matches('/');
            let virtual_hosted =
                !path_style && dns_compatible(&bucket) && url_host(url).parse::<IpAddr>().is_err();
            builder = builder
                .with_virtual_hosted_style_request(virtual_hosted)
                .with_endpoint(if virtual_hosted {
                    with_bucket_host(url, &bucket)
                } else {
                    url.to_string()
                });
            url.to_string()
        }
        None => {
            builder =
                builder.with_virtual_hosted_style_request(!path_style && dns_compatible(&bucket));
            format!("https://s3.{region}.amazonaws.com")
        }
    };
    builder = builder
        .with_client_options(client_options(cfg, allow_http, insecure)?)
        .with_retry(retry_config());

    // Server-side encryption, with the plugin's precedence: KMS key, customer key, algorithm.
    let kms_key = get(config, "kmsKeyId");
    let customer_key_file = get(config, "customerKeyEncryptionFile");
    let customer_key_secret = get(config, "customerKeyEncryptionSecret");
    if [kms_key, customer_key_file, customer_key_secret]
        .iter()
        .filter(|v| v.is_some())
        .count()
        > 1
    {
        return Err(StorageError::InvalidConfig(
            "you can only use one of: kmsKeyId, customerKeyEncryptionFile, or \
             customerKeyEncryptionSecret"
                .into(),
        ));
    }
    if customer_key_secret.is_some() {
        return Err(StorageError::Unsupported {
            key: "customerKeyEncryptionSecret".into(),
            reason: "mount the secret and name the file with customerKeyEncryptionFile instead"
                .into(),
        });
    }
    if let Some(kms_key) = kms_key {
        builder = builder.with_sse_kms_encryption(kms_key);
    } else if let Some(path) = customer_key_file {
        let key = std::fs::read(path).map_err(|err| {
            StorageError::InvalidConfig(format!(
                "could not read customerKeyEncryptionFile {path}: {err}"
            ))
        })?;
        // Like the plugin, use the first 32 bytes (a trailing newline is fine).
        let Some(key) = key.get(..32) else {
            return Err(StorageError::InvalidConfig(format!(
                "contents of customerKeyEncryptionFile ({path}) are not exactly 32 bytes"
            )));
        };
        builder =
            builder.with_ssec_encryption(base64::engine::general_purpose::STANDARD.encode(key));
    } else if let Some(sse) = get(config, "serverSideEncryption") {
        if !matches!(sse, "AES256" | "aws:kms" | "aws:kms:dsse") {
            return Err(StorageError::InvalidConfig(format!(
                "invalid serverSideEncryption {sse:?}: use AES256, aws:kms or aws:kms:dsse"
            )));
        }
        // object_store exports this key only through its string name.
        let key: AmazonS3ConfigKey = "aws_server_side_encryption"
            .parse()
            .map_err(|e| build_error("S3", e))?;
        builder = builder.with_config(key, sse);
    }

    // The plugin defaults to CRC32; the SigV4 payload hash object_store always sends already
    // protects every request's body, so no extra checksum unless asked for.
    match config.get("checksumAlgorithm").map(|v| v.trim()) {
        None | Some("") => {}
        Some("SHA256") => builder = builder.with_checksum_algorithm(Checksum::SHA256),
        Some("CRC64NVME") => builder = builder.with_checksum_algorithm(Checksum::CRC64NVME),
        Some(alg @ ("CRC32" | "CRC32C" | "SHA1")) => {
            warnings.push(format!(
                "checksumAlgorithm {alg} is not available in velero-rs: using SHA256 checksums \
                 instead"
            ));
            builder = builder.with_checksum_algorithm(Checksum::SHA256);
        }
        Some(other) => {
            return Err(StorageError::InvalidConfig(format!(
                "invalid checksum algorithm: {other} (use CRC32, CRC32C, SHA1, SHA256, CRC64NVME, \
                 or \"\" for none)"
            )));
        }
    }

    match get(config, "signatureVersion") {
        None | Some("4") => {}
        Some(version) => warnings.push(format!(
            "signatureVersion {version:?} is ignored: requests and download URLs are signed with \
             Signature Version 4 (as by Velero's current AWS plugin)"
        )),
    }
    // Accepted for compatibility: the credentials file is always read as a shared config too.
    parse_bool(config, "enableSharedConfig")?;

    let tags = match get(config, "tagging") {
        Some(tagging) => parse_tagging(tagging)?,
        None => TagSet::default(),
    };

    let public_builder = match get(config, "publicUrl") {
        Some(public) => {
            let public_http = check_url("publicUrl", public)?;
            let public = public.trim_end_matches('/');
            let virtual_hosted = !path_style
                && dns_compatible(&bucket)
                && url_host(public).parse::<IpAddr>().is_err();
            Some(
                builder
                    .clone()
                    .with_virtual_hosted_style_request(virtual_hosted)
                    .with_endpoint(if virtual_hosted {
                        with_bucket_host(public, &bucket)
                    } else {
                        public.to_string()
                    })
                    .with_client_options(client_options(cfg, allow_http || public_http, insecure)?),
            )
        }
        None => None,
    };

    Ok(AwsPlan {
        builder,
        public_builder,
        tags,
        context: ErrorContext {
            endpoint,
            setting: "s3Url",
            bucket,
            region: Some(region),
        },
        warnings,
    })
}

/// The plugin's `tagging`: `Key1=Value1&Key2=Value2`, at most ten tags.
fn parse_tagging(tagging: &str) -> Result<TagSet, StorageError> {
    let mut tags = TagSet::default();
    let pairs: Vec<&str> = tagging.split('&').collect();
    if pairs.len() > 10 {
        return Err(StorageError::InvalidConfig(
            "tagging: S3 allows only ten tags per object".into(),
        ));
    }
    for pair in pairs {
        let Some((key, value)) = pair
            .split_once('=')
            .filter(|(k, v)| !k.is_empty() && !v.contains('='))
        else {
            return Err(StorageError::InvalidConfig(format!(
                "invalid tagging {tagging:?}: use Key1=Value1&Key2=Value2"
            )));
        };
        if key.chars().count() > 128 || value.chars().count() > 256 {
            return Err(StorageError::InvalidConfig(
                "tagging: S3 tag keys may have 128 characters, values 256".into(),
            ));
        }
        tags.push(key, value);
    }
    Ok(tags)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::LayoutError;
    use crate::open::open;
    use crate::open::tests::cfg;

    const AWS_CREDS: &[u8] = b"[default]\naws_access_key_id=AKDEFAULT\naws_secret_access_key=SKDEFAULT\n\
        [backup]\naws_access_key_id=AKBACKUP\naws_secret_access_key=SKBACKUP\naws_session_token=TOKEN\n";

    fn s3(plan: &AwsPlan, key: &str) -> Option<String> {
        let key: AmazonS3ConfigKey = key.parse().unwrap();
        plan.builder.get_config_value(&key)
    }

    #[test]
    fn aws_minio_style() {
        let c = cfg(
            "velero.io/aws",
            "velero",
            &[
                ("region", "minio"),
                ("s3ForcePathStyle", "true"),
                ("s3Url", "http://minio.velero.svc:9000/"),
            ],
        );
        let plan = aws_plan(&c, Some(AWS_CREDS)).unwrap();
        assert_eq!(
            s3(&plan, "aws_endpoint").as_deref(),
            Some("http://minio.velero.svc:9000")
        );
        assert_eq!(
            s3(&plan, "aws_virtual_hosted_style_request").as_deref(),
            Some("false")
        );
        assert_eq!(s3(&plan, "aws_region").as_deref(), Some("minio"));
        assert_eq!(s3(&plan, "aws_access_key_id").as_deref(), Some("AKDEFAULT"));
        assert_eq!(
            s3(&plan, "aws_secret_access_key").as_deref(),
            Some("SKDEFAULT")
        );
        assert_eq!(s3(&plan, "aws_allow_http").as_deref(), Some("true"));
        assert!(plan.warnings.is_empty(), "{:?}", plan.warnings);
        assert_eq!(plan.context.endpoint, "http://minio.velero.svc:9000");
        assert!(plan.build().is_ok());
    }

    #[test]
    fn aws_named_profile_and_region_from_it() {
        let creds =
            b"[profile backup]\naws_access_key_id=AK\naws_secret_access_key=SK\nregion=eu-west-1\n";
        let plan = aws_plan(&cfg("aws", "velero", &[("profile", "backup")]), Some(creds)).unwrap();
        assert_eq!(s3(&plan, "aws_access_key_id").as_deref(), Some("AK"));
        assert_eq!(s3(&plan, "aws_region").as_deref(), Some("eu-west-1"));
        // No s3Url: AWS itself, virtual-hosted.
        assert_eq!(
            s3(&plan, "aws_virtual_hosted_style_request").as_deref(),
            Some("true")
        );
        assert_eq!(s3(&plan, "aws_endpoint"), None);

        let plan = aws_plan(
            &cfg("aws", "velero", &[("profile", "backup")]),
            Some(AWS_CREDS),
        )
        .unwrap();
        assert_eq!(s3(&plan, "aws_session_token").as_deref(), Some("TOKEN"));

        let err = aws_plan(
            &cfg("aws", "velero", &[("profile", "nope")]),
            Some(AWS_CREDS),
        )
        .err()
        .unwrap();
        assert!(matches!(err, StorageError::Credentials(_)), "{err}");
        assert!(!err.to_string().contains("SKDEFAULT"));
    }

    #[test]
    fn aws_profiles_without_static_keys() {
        let web = b"[default]\nrole_arn=arn:aws:iam::1:role/velero\nweb_identity_token_file=/var/run/token\n";
        let plan = aws_plan(&cfg("aws", "velero", &[("region", "us-west-2")]), Some(web)).unwrap();
        assert_eq!(
            s3(&plan, "aws_role_arn").as_deref(),
            Some("arn:aws:iam::1:role/velero")
        );
        let chained = b"[default]\nrole_arn=arn:aws:iam::1:role/velero\nsource_profile=base\n";
        let err = aws_plan(&cfg("aws", "velero", &[]), Some(chained))
            .err()
            .unwrap();
        assert!(matches!(err, StorageError::Unsupported { .. }), "{err}");
        let half = b"[default]\naws_access_key_id=AK\n";
        let err = aws_plan(&cfg("aws", "velero", &[]), Some(half))
            .err()
            .unwrap();
        assert!(matches!(err, StorageError::Credentials(_)), "{err}");
    }

    #[test]
    fn aws_virtual_hosted_endpoints() {
        let plan = aws_plan(
            &cfg(
                "aws",
                "velero",
                &[("s3Url", "https://objects.example.com:9000")],
            ),
            Some(AWS_CREDS),
        )
        .unwrap();
        assert_eq!(
            s3(&plan, "aws_endpoint").as_deref(),
            Some("https://velero.objects.example.com:9000")
        );
        assert_eq!(
            s3(&plan, "aws_virtual_hosted_style_request").as_deref(),
            Some("true")
        );
        // IP endpoints and dotted bucket names cannot carry the bucket in the host name.
        for (bucket, url) in [
            ("velero", "http://10.0.0.1:9000"),
            ("my.bucket", "https://objects.example.com"),
        ] {
            let plan = aws_plan(&cfg("aws", bucket, &[("s3Url", url)]), Some(AWS_CREDS)).unwrap();
            assert_eq!(s3(&plan, "aws_endpoint").as_deref(), Some(url));
            assert_eq!(
                s3(&plan, "aws_virtual_hosted_style_request").as_deref(),
                Some("false")
            );
        }
    }

    #[test]
    fn aws_public_url_signs_elsewhere() {
        let plan = aws_plan(
            &cfg(
                "aws",
                "velero",
                &[
                    ("s3Url", "http://minio:9000"),
                    ("publicUrl", "https://minio.example.com"),
                    ("s3ForcePathStyle", "true"),
                ],
            ),
            Some(AWS_CREDS),
        )
        .unwrap();
        let public = plan.public_builder.as_ref().unwrap();
        assert_eq!(
            public
                .get_config_value(&AmazonS3ConfigKey::Endpoint)
                .as_deref(),
            Some("https://minio.example.com")
        );
    }

    #[test]
    fn aws_encryption() {
        let plan = aws_plan(
            &cfg(
                "aws",
                "velero",
                &[
                    ("kmsKeyId", "alias/velero"),
                    ("serverSideEncryption", "AES256"),
                ],
            ),
            Some(AWS_CREDS),
        )
        .unwrap();
        assert_eq!(
            s3(&plan, "aws_server_side_encryption").as_deref(),
            Some("aws:kms")
        );
        assert_eq!(
            s3(&plan, "aws_sse_kms_key_id").as_deref(),
            Some("alias/velero")
        );

        let plan = aws_plan(
            &cfg("aws", "velero", &[("serverSideEncryption", "AES256")]),
            Some(AWS_CREDS),
        )
        .unwrap();
        assert_eq!(
            s3(&plan, "aws_server_side_encryption").as_deref(),
            Some("AES256")
        );

        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("customer-key");
        std::fs::write(&key_file, b"0123456789abcdef0123456789abcdef\n").unwrap();
        let key_path = key_file.to_str().unwrap();
        let plan = aws_plan(
            &cfg("aws", "velero", &[("customerKeyEncryptionFile", key_path)]),
            Some(AWS_CREDS),
        )
        .unwrap();
        assert_eq!(
            s3(&plan, "aws_server_side_encryption").as_deref(),
            Some("sse-c")
        );
        assert!(plan.build().is_ok());

        std::fs::write(&key_file, b"short").unwrap();
        let err = aws_plan(
            &cfg("aws", "velero", &[("customerKeyEncryptionFile", key_path)]),
            Some(AWS_CREDS),
        )
        .err()
        .unwrap();
        assert!(err.to_string().contains("not exactly 32 bytes"), "{err}");

        let err = aws_plan(
            &cfg(
                "aws",
                "velero",
                &[("kmsKeyId", "k"), ("customerKeyEncryptionFile", key_path)],
            ),
            Some(AWS_CREDS),
        )
        .err()
        .unwrap();
        assert!(err.to_string().contains("only use one of"), "{err}");
        let err = aws_plan(
            &cfg("aws", "velero", &[("customerKeyEncryptionSecret", "s/k")]),
            Some(AWS_CREDS),
        )
        .err()
        .unwrap();
        assert!(matches!(err, StorageError::Unsupported { .. }), "{err}");
        let err = aws_plan(
            &cfg("aws", "velero", &[("serverSideEncryption", "DES")]),
            Some(AWS_CREDS),
        )
        .err()
        .unwrap();
        assert!(matches!(err, StorageError::InvalidConfig(_)), "{err}");
    }

    #[test]
    fn aws_checksums_signature_and_tags() {
        let plan = |config: &[(&str, &str)]| {
            let mut all = vec![("region", "us-east-1")];
            all.extend_from_slice(config);
            aws_plan(&cfg("aws", "velero", &all), Some(AWS_CREDS))
        };
        assert_eq!(s3(&plan(&[]).unwrap(), "aws_checksum_algorithm"), None);
        assert_eq!(
            s3(
                &plan(&[("checksumAlgorithm", "")]).unwrap(),
                "aws_checksum_algorithm"
            ),
            None
        );
        let p = plan(&[("checksumAlgorithm", "SHA256")]).unwrap();
        assert_eq!(s3(&p, "aws_checksum_algorithm").as_deref(), Some("sha256"));
        assert!(p.warnings.is_empty());
        let p = plan(&[("checksumAlgorithm", "CRC32")]).unwrap();
        assert_eq!(s3(&p, "aws_checksum_algorithm").as_deref(), Some("sha256"));
        assert!(p.warnings[0].contains("CRC32"), "{:?}", p.warnings);
        assert!(plan(&[("checksumAlgorithm", "MD5")]).is_err());

        let p = plan(&[("signatureVersion", "1")]).unwrap();
        assert!(
            p.warnings[0].contains("signatureVersion"),
            "{:?}",
            p.warnings
        );
        assert!(
            plan(&[("signatureVersion", "4")])
                .unwrap()
                .warnings
                .is_empty()
        );

        let p = plan(&[("tagging", "team=infra&app=velero backup")]).unwrap();
        assert_eq!(p.tags.encoded(), "team=infra&app=velero+backup");
        assert!(plan(&[("tagging", "novalue")]).is_err());
        assert!(plan(&[("enableSharedConfig", "maybe")]).is_err());
    }

    #[test]
    fn aws_refusals() {
        let err = aws_plan(
            &cfg("aws", "arn:aws:s3::123:accesspoint/m.mrap", &[]),
            Some(AWS_CREDS),
        )
        .err()
        .unwrap();
        assert!(matches!(err, StorageError::Unsupported { .. }), "{err}");
        let err = aws_plan(&cfg("aws", "velero/backups", &[]), Some(AWS_CREDS))
            .err()
            .unwrap();
        assert!(
            matches!(err, StorageError::Layout(LayoutError::BucketWithSlash(_))),
            "{err}"
        );
        let err = aws_plan(
            &cfg("aws", "velero", &[("s3Url", "minio:9000")]),
            Some(AWS_CREDS),
        )
        .err()
        .unwrap();
        assert!(err.to_string().contains("invalid s3Url"), "{err}");
        let err = aws_plan(
            &cfg("aws", "velero", &[("s3ForcePathStyle", "yes")]),
            Some(AWS_CREDS),
        )
        .err()
        .unwrap();
        assert!(err.to_string().contains("s3ForcePathStyle"), "{err}");
        let mut c = cfg("aws", "velero", &[]);
        c.ca_cert = Some(b"not a certificate".to_vec());
        let err = aws_plan(&c, Some(AWS_CREDS)).err().unwrap();
        assert!(err.to_string().contains("caCert"), "{err}");
        let err = open(&cfg("aws", "velero", &[("bucketRegion", "x")]))
            .err()
            .unwrap();
        assert!(
            err.to_string().contains("invalid keys [bucketRegion]"),
            "{err}"
        );
    }
}

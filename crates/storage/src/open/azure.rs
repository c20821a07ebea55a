//! Azure: Blob Storage, with velero-plugin-for-microsoft-azure's config keys.

use std::collections::BTreeMap;
use std::sync::Arc;

use object_store::TagSet;
use object_store::azure::MicrosoftAzureBuilder;

use super::{
    DEFAULT_PART_SIZE, Opened, build_error, check_url, client_options, require_bucket, retry_config,
};
use crate::config::{LocationConfig, azure_env, get, parse_bool};
use crate::error::{ErrorContext, StorageError};

/// Azure's limit for one block (Velero's `blockSizeInBytes` maximum).
const AZURE_MAX_BLOCK_SIZE: usize = 100 * 1024 * 1024;

pub(crate) struct AzurePlan {
    pub builder: MicrosoftAzureBuilder,
    pub part_size: usize,
    pub context: ErrorContext,
    pub warnings: Vec<String>,
}

impl AzurePlan {
    pub(super) fn build(self) -> Result<Opened, StorageError> {
        let store = Arc::new(self.builder.build().map_err(|err| {
            let text = err.to_string();
            if text.contains("Access Key") {
                StorageError::Credentials(
                    "the storage account access key is not valid base64".into(),
                )
            } else {
                build_error("Azure", err)
            }
        })?);
        Ok(Opened {
            store: store.clone(),
            signer: Some(store),
            tags: TagSet::default(),
            part_size: self.part_size,
            context: self.context,
            warnings: self.warnings,
        })
    }
}

/// Blob endpoint suffix and Azure AD authority of `AZURE_CLOUD_NAME`, as Velero maps it.
fn azure_cloud(name: Option<&str>) -> Result<(&'static str, &'static str), StorageError> {
    match name.map(str::to_ascii_uppercase).as_deref() {
        None | Some("" | "AZURECLOUD" | "AZUREPUBLICCLOUD") => Ok((
            "blob.core.windows.net",
            "https://login.microsoftonline.com/",
        )),
        Some("AZURECHINACLOUD") => Ok((
            "blob.core.chinacloudapi.cn",
            "https://login.chinacloudapi.cn/",
        )),
        Some("AZUREUSGOVERNMENT" | "AZUREUSGOVERNMENTCLOUD") => Ok((
            "blob.core.usgovcloudapi.net",
            "https://login.microsoftonline.us/",
        )),
        Some(_) => Err(StorageError::Credentials(format!(
            "unknown cloud: {}",
            name.unwrap_or_default()
        ))),
    }
}

/// `env` looks up process environment variables (workload identity sets them); a parameter so
/// tests do not depend on the machine's environment.
pub(crate) fn azure_plan(
    cfg: &LocationConfig,
    creds: Option<&[u8]>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<AzurePlan, StorageError> {
    let config = &cfg.config;
    let container = require_bucket(cfg)?;
    let Some(account) = get(config, "storageAccount") else {
        return Err(StorageError::InvalidConfig(
            "storageAccount is required in the location's config".into(),
        ));
    };
    let creds: BTreeMap<String, String> = match creds {
        Some(creds) => azure_env(creds)?,
        None => BTreeMap::new(),
    };
    // A value from the credentials file, else from the environment (as azidentity reads it).
    let lookup = |key: &str| -> Option<String> {
        creds
            .get(key)
            .filter(|v| !v.is_empty())
            .cloned()
            .or_else(|| env(key).filter(|v| !v.is_empty()))
    };
    let mut warnings = Vec::new();

    let (blob_suffix, authority) = azure_cloud(creds.get("AZURE_CLOUD_NAME").map(String::as_str))?;
    let endpoint = match get(config, "storageAccountURI") {
        Some(uri) => uri.trim_end_matches('/').to_string(),
        None => format!("https://{account}.{blob_suffix}"),
    };
    let allow_http = check_url("storageAccountURI", &endpoint)?;
    let mut builder = MicrosoftAzureBuilder::new()
        .with_account(account)
        .with_container_name(&container)
        .with_endpoint(endpoint.clone())
        .with_authority_host(get(config, "activeDirectoryAuthorityURI").unwrap_or(authority))
        .with_client_options(client_options(cfg, allow_http, false)?)
        .with_retry(retry_config());

    let use_aad = parse_bool(config, "useAAD")?.unwrap_or(false);
    if let Some(var) = get(config, "storageAccountKeyEnvVar") {
        let Some(key) = lookup(var) else {
            return Err(StorageError::Credentials(format!(
                "no storage account access key with key {var} found in credential"
            )));
        };
        builder = builder
            .with_access_key(key)
            .with_credential_type("access_key");
    } else if let Some(key) = (!use_aad)
        .then(|| {
            creds
                .get("AZURE_STORAGE_ACCOUNT_ACCESS_KEY")
                .or_else(|| creds.get("AZURE_STORAGE_KEY"))
                .filter(|k| !k.is_empty())
        })
        .flatten()
    {
        builder = builder
            .with_access_key(key)
            .with_credential_type("access_key");
    } else {
        if !use_aad {
            warnings.push(
                "neither storageAccountKeyEnvVar nor useAAD is set: velero-rs does not fetch the \
                 storage account key through Azure Resource Manager as Velero does, it signs in \
                 to blob storage with Azure AD, which needs a Storage Blob Data role on the \
                 account; set useAAD: \"true\" to silence this"
                    .to_string(),
            );
        }
        for key in [
            "AZURE_CLIENT_CERTIFICATE",
            "AZURE_CLIENT_CERTIFICATE_PATH",
            "AZURE_USERNAME",
        ] {
            if creds.get(key).is_some_and(|v| !v.is_empty()) {
                return Err(StorageError::Unsupported {
                    key: format!("{key} in the Azure credentials"),
                    reason: "use a client secret (AZURE_CLIENT_SECRET), workload identity, a \
                             managed identity, or a storage account key"
                        .into(),
                });
            }
        }
        let client_id = lookup("AZURE_CLIENT_ID");
        let tenant_id = lookup("AZURE_TENANT_ID");
        let require = |value: Option<String>, key: &str| {
            value.ok_or_else(|| StorageError::Credentials(format!("{key} is required")))
        };
        if let Some(secret) = lookup("AZURE_CLIENT_SECRET") {
            builder = builder
                .with_client_secret_authorization(
                    require(client_id, "AZURE_CLIENT_ID")?,
                    secret,
                    require(tenant_id, "AZURE_TENANT_ID")?,
                )
                .with_credential_type("client_secret");
        } else if let Some(token_file) = env("AZURE_FEDERATED_TOKEN_FILE").filter(|f| !f.is_empty())
        {
            builder = builder
                .with_federated_token_file(token_file)
                .with_client_id(require(client_id, "AZURE_CLIENT_ID")?)
                .with_tenant_id(require(tenant_id, "AZURE_TENANT_ID")?)
                .with_credential_type("workload_identity");
        } else {
            if let Some(client_id) = client_id {
                builder = builder.with_client_id(client_id);
            }
            builder = builder.with_credential_type("managed_identity");
        }
    }

    let part_size = match get(config, "blockSizeInBytes") {
        None => DEFAULT_PART_SIZE,
        Some(value) => match value.parse::<i64>() {
            Ok(size) if size > 0 => {
                let size = usize::try_from(size).unwrap_or(AZURE_MAX_BLOCK_SIZE);
                if size > AZURE_MAX_BLOCK_SIZE {
                    warnings.push(format!(
                        "blockSizeInBytes {size} is above Azure's maximum: using {AZURE_MAX_BLOCK_SIZE}"
                    ));
                    AZURE_MAX_BLOCK_SIZE
                } else {
                    size
                }
            }
            _ => {
                warnings.push(format!(
                    "blockSizeInBytes {value:?} is not a positive number: using {DEFAULT_PART_SIZE}"
                ));
                DEFAULT_PART_SIZE
            }
        },
    };

    Ok(AzurePlan {
        builder,
        part_size,
        context: ErrorContext {
            endpoint,
            setting: "storageAccount/storageAccountURI",
            bucket: container,
            region: None,
        },
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::open::tests::cfg;
    use object_store::ClientConfigKey;
    use object_store::azure::AzureConfigKey;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn az(plan: &AzurePlan, key: AzureConfigKey) -> Option<String> {
        plan.builder.get_config_value(&key)
    }

    // "velero-test-key" in base64: object_store checks that access keys are base64.
    const AZURE_KEY: &str = "dmVsZXJvLXRlc3Qta2V5";

    #[test]
    fn azure_access_key() {
        let creds = format!(
            "AZURE_SUBSCRIPTION_ID=sub\nAZURE_RESOURCE_GROUP=rg\nAZURE_STORAGE_ACCOUNT_ACCESS_KEY={AZURE_KEY}\n"
        );
        let c = cfg(
            "azure",
            "velero",
            &[
                ("storageAccount", "veleroacct"),
                (
                    "storageAccountKeyEnvVar",
                    "AZURE_STORAGE_ACCOUNT_ACCESS_KEY",
                ),
                ("resourceGroup", "rg"),
                ("subscriptionId", "sub"),
            ],
        );
        let plan = azure_plan(&c, Some(creds.as_bytes()), &no_env).unwrap();
        assert_eq!(
            az(&plan, AzureConfigKey::AccessKey).as_deref(),
            Some(AZURE_KEY)
        );
        assert_eq!(
            az(&plan, AzureConfigKey::CredentialType).as_deref(),
            Some("access_key")
        );
        assert_eq!(
            az(&plan, AzureConfigKey::Endpoint).as_deref(),
            Some("https://veleroacct.blob.core.windows.net")
        );
        assert_eq!(
            az(&plan, AzureConfigKey::ContainerName).as_deref(),
            Some("velero")
        );
        assert!(plan.warnings.is_empty(), "{:?}", plan.warnings);
        assert!(plan.build().is_ok());

        // Without storageAccountKeyEnvVar the conventional variable is still used.
        let c = cfg("azure", "velero", &[("storageAccount", "veleroacct")]);
        let plan = azure_plan(&c, Some(creds.as_bytes()), &no_env).unwrap();
        assert_eq!(
            az(&plan, AzureConfigKey::AccessKey).as_deref(),
            Some(AZURE_KEY)
        );

        // The variable named must be there (Velero's message).
        let c = cfg(
            "azure",
            "velero",
            &[
                ("storageAccount", "veleroacct"),
                ("storageAccountKeyEnvVar", "MY_KEY"),
            ],
        );
        let err = azure_plan(&c, Some(creds.as_bytes()), &no_env)
            .err()
            .unwrap();
        assert!(
            err.to_string()
                .contains("no storage account access key with key MY_KEY found in credential"),
            "{err}"
        );
        // Not base64: refused when building, without echoing the key.
        let c = cfg(
            "azure",
            "velero",
            &[
                ("storageAccount", "veleroacct"),
                ("storageAccountKeyEnvVar", "K"),
            ],
        );
        let err = azure_plan(&c, Some(b"K=not base64!"), &no_env)
            .unwrap()
            .build()
            .err()
            .unwrap();
        assert!(matches!(err, StorageError::Credentials(_)), "{err}");
        assert!(!err.to_string().contains("not base64!"), "{err}");
    }

    #[test]
    fn azure_aad_flavours() {
        let c = cfg(
            "azure",
            "velero",
            &[("storageAccount", "acct"), ("useAAD", "true")],
        );
        let creds = b"AZURE_TENANT_ID=t\nAZURE_CLIENT_ID=c\nAZURE_CLIENT_SECRET=s\nAZURE_CLOUD_NAME=AzureChinaCloud\n";
        let plan = azure_plan(&c, Some(creds), &no_env).unwrap();
        assert_eq!(
            az(&plan, AzureConfigKey::CredentialType).as_deref(),
            Some("client_secret")
        );
        assert_eq!(az(&plan, AzureConfigKey::ClientId).as_deref(), Some("c"));
        assert_eq!(az(&plan, AzureConfigKey::AuthorityId).as_deref(), Some("t"));
        assert_eq!(
            az(&plan, AzureConfigKey::Endpoint).as_deref(),
            Some("https://acct.blob.core.chinacloudapi.cn")
        );
        assert_eq!(
            az(&plan, AzureConfigKey::AuthorityHost).as_deref(),
            Some("https://login.chinacloudapi.cn/")
        );
        assert!(plan.warnings.is_empty());

        // Workload identity from the environment the webhook sets.
        let env = |k: &str| match k {
            "AZURE_FEDERATED_TOKEN_FILE" => Some("/var/run/secrets/azure/tokens/token".to_string()),
            "AZURE_CLIENT_ID" => Some("wi-client".to_string()),
            "AZURE_TENANT_ID" => Some("wi-tenant".to_string()),
            _ => None,
        };
        let plan = azure_plan(&c, None, &env).unwrap();
        assert_eq!(
            az(&plan, AzureConfigKey::CredentialType).as_deref(),
            Some("workload_identity")
        );
        assert_eq!(
            az(&plan, AzureConfigKey::ClientId).as_deref(),
            Some("wi-client")
        );

        // Nothing at all: managed identity; without useAAD a warning says Velero would have
        // fetched the key through ARM.
        let plan = azure_plan(
            &cfg("azure", "velero", &[("storageAccount", "acct")]),
            None,
            &no_env,
        )
        .unwrap();
        assert_eq!(
            az(&plan, AzureConfigKey::CredentialType).as_deref(),
            Some("managed_identity")
        );
        assert!(
            plan.warnings[0].contains("Azure Resource Manager"),
            "{:?}",
            plan.warnings
        );

        let err = azure_plan(
            &c,
            Some(b"AZURE_TENANT_ID=t\nAZURE_CLIENT_ID=c\nAZURE_CLIENT_CERTIFICATE_PATH=/c.pem\n"),
            &no_env,
        )
        .err()
        .unwrap();
        assert!(matches!(err, StorageError::Unsupported { .. }), "{err}");
        let err = azure_plan(&c, Some(b"AZURE_CLIENT_SECRET=s\n"), &no_env)
            .err()
            .unwrap();
        assert!(
            err.to_string().contains("AZURE_CLIENT_ID is required"),
            "{err}"
        );
    }

    #[test]
    fn azure_endpoint_and_block_size() {
        let c = cfg(
            "azure",
            "velero",
            &[
                ("storageAccount", "devstoreaccount1"),
                (
                    "storageAccountURI",
                    "http://127.0.0.1:10000/devstoreaccount1/",
                ),
                ("storageAccountKeyEnvVar", "KEY"),
                ("blockSizeInBytes", "5242880"),
                ("activeDirectoryAuthorityURI", "https://login.example.com/"),
            ],
        );
        let creds = format!("KEY={AZURE_KEY}\n");
        let plan = azure_plan(&c, Some(creds.as_bytes()), &no_env).unwrap();
        assert_eq!(
            az(&plan, AzureConfigKey::Endpoint).as_deref(),
            Some("http://127.0.0.1:10000/devstoreaccount1")
        );
        assert_eq!(
            az(&plan, AzureConfigKey::Client(ClientConfigKey::AllowHttp)).as_deref(),
            Some("true")
        );
        assert_eq!(
            az(&plan, AzureConfigKey::AuthorityHost).as_deref(),
            Some("https://login.example.com/")
        );
        assert_eq!(plan.part_size, 5 * 1024 * 1024);

        for (size, expected) in [
            ("0", DEFAULT_PART_SIZE),
            ("x", DEFAULT_PART_SIZE),
            ("999999999999", AZURE_MAX_BLOCK_SIZE),
        ] {
            let mut c = c.clone();
            c.config.insert("blockSizeInBytes".into(), size.into());
            let plan = azure_plan(&c, Some(creds.as_bytes()), &no_env).unwrap();
            assert_eq!(plan.part_size, expected, "{size}");
            assert_eq!(plan.warnings.len(), 1, "{size}");
        }
        let err = azure_plan(&cfg("azure", "velero", &[]), None, &no_env)
            .err()
            .unwrap();
        assert!(
            err.to_string().contains("storageAccount is required"),
            "{err}"
        );
        let err = azure_plan(&c, Some(b"AZURE_CLOUD_NAME=Mars\nKEY=a2V5"), &no_env)
            .err()
            .unwrap();
        assert!(err.to_string().contains("unknown cloud: Mars"), "{err}");
    }
}

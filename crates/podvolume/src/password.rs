//! The repositories' password: Secret `velero-repo-credentials`, key `repository-password`, in
//! the server's namespace (pkg/repository/keys/keys.go). Velero creates it with a well-known static
//! password (velero#1053); here it is random, created once and never overwritten. It is never
//! logged.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};

pub const PASSWORD_SECRET: &str = "velero-repo-credentials";
pub const PASSWORD_KEY: &str = "repository-password";

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("reading Secret {namespace}/{PASSWORD_SECRET}: {source}")]
    Read {
        namespace: String,
        #[source]
        source: kube::Error,
    },
    #[error("creating Secret {namespace}/{PASSWORD_SECRET}: {source}")]
    Create {
        namespace: String,
        #[source]
        source: kube::Error,
    },
    #[error(
        "Secret {namespace}/{PASSWORD_SECRET} has no key {PASSWORD_KEY}: restore it with the password the repositories were created with"
    )]
    NoKey { namespace: String },
    #[error(
        "Secret {namespace}/{PASSWORD_SECRET} does not exist: volume data cannot be read without the password it was written with; create it (key {PASSWORD_KEY}) from the source cluster's copy"
    )]
    Missing { namespace: String },
}

fn random_password() -> String {
    // Two version-4 UUIDs: 244 random bits from the operating system's generator.
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

fn password_of(secret: &Secret, namespace: &str) -> Result<String, PasswordError> {
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(PASSWORD_KEY))
        .map(|b| String::from_utf8_lossy(&b.0).into_owned())
        .filter(|p| !p.is_empty())
        .ok_or_else(|| PasswordError::NoKey {
            namespace: namespace.to_string(),
        })
}

/// The password, from the Secret; an error naming what to do when it is missing.
pub async fn read_password(
    client: &kube::Client,
    namespace: &str,
) -> Result<String, PasswordError> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    match secrets.get_opt(PASSWORD_SECRET).await {
        Ok(Some(secret)) => password_of(&secret, namespace),
        Ok(None) => Err(PasswordError::Missing {
            namespace: namespace.to_string(),
        }),
        Err(source) => Err(PasswordError::Read {
            namespace: namespace.to_string(),
            source,
        }),
    }
}

/// The password, creating the Secret with a random one when it does not exist. An existing
/// Secret is never changed: the repositories it opens would be lost.
pub async fn ensure_password(
    client: &kube::Client,
    namespace: &str,
) -> Result<String, PasswordError> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let read_err = |source| PasswordError::Read {
        namespace: namespace.to_string(),
        source,
    };
    if let Some(secret) = secrets.get_opt(PASSWORD_SECRET).await.map_err(read_err)? {
        return password_of(&secret, namespace);
    }
    let password = random_password();
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(PASSWORD_SECRET.to_string()),
            namespace: Some(namespace.to_string()),
            labels: Some(BTreeMap::from([(
                "component".to_string(),
                "velero".to_string(),
            )])),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            PASSWORD_KEY.to_string(),
            ByteString(password.clone().into_bytes()),
        )])),
        type_: Some("Opaque".to_string()),
        ..Default::default()
    };
    match secrets.create(&PostParams::default(), &secret).await {
        Ok(_) => {
            tracing::info!(
                namespace,
                "created Secret {PASSWORD_SECRET} with a random repository password"
            );
            Ok(password)
        }
        // Another writer (the server, a second install) was first: theirs is the password.
        Err(kube::Error::Api(s)) if s.code == 409 => read_password(client, namespace).await,
        Err(source) => Err(PasswordError::Create {
            namespace: namespace.to_string(),
            source,
        }),
    }
}

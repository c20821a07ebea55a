//! Leader election through a `coordination.k8s.io/v1` Lease, so that of several `velero server`
//! replicas only one runs the controllers: two would otherwise both take the same Backup.
//!
//! The protocol is client-go's: the holder renews `renewTime` every `renew_every`; anyone may take
//! a Lease whose `renewTime + leaseDurationSeconds` has passed; every write carries the
//! resourceVersion it read, so two candidates cannot both win. A leader that cannot renew within
//! the lease duration stops, as client-go's does, rather than risk a second leader.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::Client;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};

/// The Lease's name in the server's namespace.
pub const LEASE_NAME: &str = "velero-server";

#[derive(Clone, Debug)]
pub struct LeaderElection {
    /// Who we are in `holderIdentity` (host name and a random suffix).
    pub identity: String,
    pub lease_duration: Duration,
    pub renew_every: Duration,
}

impl LeaderElection {
    pub fn new(lease_duration: Duration, renew_every: Duration) -> Self {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "velero".into());
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        LeaderElection {
            identity: format!("{host}_{}", &suffix[..8]),
            lease_duration,
            renew_every,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error(
        "lost the leader lease {0}: it could not be renewed in time; stopping so that another replica can lead"
    )]
    Lost(String),
    #[error("leader election: {0}")]
    Kube(#[from] kube::Error),
}

fn expired(lease: &Lease, now: jiff::Timestamp) -> bool {
    let Some(spec) = &lease.spec else {
        return true;
    };
    if spec.holder_identity.as_deref().is_none_or(str::is_empty) {
        return true;
    }
    let duration = i64::from(spec.lease_duration_seconds.unwrap_or(15));
    match &spec.renew_time {
        Some(t) => t.0.as_second() + duration < now.as_second(),
        None => true,
    }
}

impl LeaderElection {
    fn spec(&self, transitions: i32, acquired: Option<MicroTime>) -> LeaseSpec {
        let now = MicroTime(jiff::Timestamp::now());
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(
                i32::try_from(self.lease_duration.as_secs().max(1)).unwrap_or(i32::MAX),
            ),
            acquire_time: Some(acquired.unwrap_or_else(|| now.clone())),
            renew_time: Some(now),
            lease_transitions: Some(transitions),
            ..Default::default()
        }
    }

    /// Waits until this replica holds the Lease.
    pub async fn acquire(&self, client: &Client, namespace: &str) -> Result<(), LeaderError> {
        let api: Api<Lease> = Api::namespaced(client.clone(), namespace);
        let mut announced = false;
        loop {
            match api.get_opt(LEASE_NAME).await? {
                None => {
                    let lease = Lease {
                        metadata: ObjectMeta {
                            name: Some(LEASE_NAME.into()),
                            namespace: Some(namespace.into()),
                            ..Default::default()
                        },
                        spec: Some(self.spec(0, None)),
                    };
                    match api.create(&PostParams::default(), &lease).await {
                        Ok(_) => break,
                        Err(kube::Error::Api(s)) if s.code == 409 => continue,
                        Err(e) => return Err(e.into()),
                    }
                }
                Some(lease) => {
                    let mine = lease
                        .spec
                        .as_ref()
                        .and_then(|s| s.holder_identity.as_deref())
                        == Some(self.identity.as_str());
                    if mine || expired(&lease, jiff::Timestamp::now()) {
                        let transitions = lease
                            .spec
                            .as_ref()
                            .and_then(|s| s.lease_transitions)
                            .unwrap_or(0)
                            + i32::from(!mine);
                        let mut taken = lease.clone();
                        taken.spec = Some(self.spec(transitions, None));
                        // The resourceVersion we read makes this a compare-and-swap.
                        match api
                            .replace(LEASE_NAME, &PostParams::default(), &taken)
                            .await
                        {
                            Ok(_) => break,
                            Err(kube::Error::Api(s)) if s.code == 409 => continue,
                            Err(e) => return Err(e.into()),
                        }
                    }
                    if !announced {
                        let holder = lease
                            .spec
                            .as_ref()
                            .and_then(|s| s.holder_identity.clone())
                            .unwrap_or_default();
                        tracing::info!(%holder, "another replica leads; waiting for its lease");
                        announced = true;
                    }
                }
            }
            tokio::time::sleep(self.renew_every).await;
        }
        tracing::info!(identity = %self.identity, "became the leader");
        Ok(())
    }

    /// Renews the Lease until renewal fails for longer than the lease lasts.
    pub async fn keep(&self, client: &Client, namespace: &str) -> LeaderError {
        let api: Api<Lease> = Api::namespaced(client.clone(), namespace);
        let mut last_renewed = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(self.renew_every).await;
            let renewed = match api.get_opt(LEASE_NAME).await {
                Ok(Some(lease))
                    if lease
                        .spec
                        .as_ref()
                        .and_then(|s| s.holder_identity.as_deref())
                        == Some(self.identity.as_str()) =>
                {
                    let mut renewed = lease.clone();
                    if let Some(spec) = renewed.spec.as_mut() {
                        spec.renew_time = Some(MicroTime(jiff::Timestamp::now()));
                    }
                    api.replace(LEASE_NAME, &PostParams::default(), &renewed)
                        .await
                        .is_ok()
                }
                // Someone else holds it: we are no longer the leader.
                Ok(_) => return LeaderError::Lost(LEASE_NAME.into()),
                Err(_) => false,
            };
            if renewed {
                last_renewed = tokio::time::Instant::now();
            } else if last_renewed.elapsed() >= self.lease_duration {
                return LeaderError::Lost(LEASE_NAME.into());
            }
        }
    }

    /// Gives the Lease up on a clean shutdown, so the next replica need not wait for it to expire.
    pub async fn release(&self, client: &Client, namespace: &str) {
        let api: Api<Lease> = Api::namespaced(client.clone(), namespace);
        if let Ok(Some(lease)) = api.get_opt(LEASE_NAME).await
            && lease
                .spec
                .as_ref()
                .and_then(|s| s.holder_identity.as_deref())
                == Some(self.identity.as_str())
        {
            let patch = serde_json::json!({"spec": {"holderIdentity": null}});
            if let Err(e) = api
                .patch(LEASE_NAME, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                tracing::warn!(
                    "releasing the leader lease (the next leader waits for it to expire): {e}"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_expires_after_its_duration_or_without_a_holder() {
        let now = jiff::Timestamp::now();
        let lease = |holder: Option<&str>, renewed_secs_ago: i64| Lease {
            metadata: Default::default(),
            spec: Some(LeaseSpec {
                holder_identity: holder.map(str::to_string),
                lease_duration_seconds: Some(15),
                renew_time: Some(MicroTime(
                    now - jiff::SignedDuration::from_secs(renewed_secs_ago),
                )),
                ..Default::default()
            }),
        };
        assert!(!expired(&lease(Some("a"), 5), now));
        assert!(expired(&lease(Some("a"), 16), now));
        assert!(expired(&lease(None, 1), now));
        assert!(expired(&lease(Some(""), 1), now));
    }
}

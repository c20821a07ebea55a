//! Waiting for the node agents: one watch of an operation's PodVolumeBackups or PodVolumeRestores
//! (by the operation's UID label) that every volume of the operation waits on, so the API server
//! sees one watch per backup or restore, however many volumes it waits for (Velero waits the same
//! way, through its informer cache: pkg/podvolume/backupper.go `WaitAllPodVolumesProcessed`).

use std::collections::HashMap;
use std::time::Duration;

use futures::StreamExt as _;
use kube::Api;
use kube::ResourceExt as _;
use kube::runtime::{WatchStreamExt as _, watcher};
use velero_api::v1::DataPathPhase;

/// Why a volume's wait ended without the object ending.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WaitError {
    #[error("{kind} {name} was deleted")]
    Deleted { kind: String, name: String },
    #[error(
        "timed out after {timeout} waiting for {kind} {name} (is the node agent running on the pod's node?)"
    )]
    TimedOut {
        kind: String,
        name: String,
        timeout: velero_api::Duration,
    },
}

enum Seen<K> {
    Ended(K),
    Deleted,
}

/// The objects of one operation that have ended (Completed, Failed or Canceled) or were deleted,
/// as the watch saw them.
pub(crate) struct Ended<K> {
    seen: tokio::sync::watch::Receiver<HashMap<String, Seen<K>>>,
    watch: tokio::task::JoinHandle<()>,
}

impl<K> Drop for Ended<K> {
    fn drop(&mut self) {
        self.watch.abort();
    }
}

impl<K: crate::Watched> Ended<K> {
    /// Starts watching the objects of `api` labelled `selector`; `phase` reads an object's phase.
    pub(crate) fn watch(
        api: Api<K>,
        selector: &str,
        phase: fn(&K) -> Option<DataPathPhase>,
    ) -> Self {
        let (tell, seen) = tokio::sync::watch::channel(HashMap::new());
        let config = watcher::Config::default().labels(selector);
        let watch = tokio::spawn(async move {
            let ended = |o: &K| {
                matches!(
                    phase(o),
                    Some(
                        DataPathPhase::Completed | DataPathPhase::Failed | DataPathPhase::Canceled
                    )
                )
            };
            // The backoff reopens a broken watch (API server restarted, connection dropped); its
            // relist brings what ended meanwhile.
            let mut events = std::pin::pin!(watcher::watcher(api, config).default_backoff());
            while let Some(event) = events.next().await {
                match event {
                    Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) if ended(&o) => {
                        tell.send_modify(|seen| {
                            seen.insert(o.name_any(), Seen::Ended(o));
                        });
                    }
                    Ok(watcher::Event::Delete(o)) => tell.send_modify(|seen| {
                        seen.entry(o.name_any()).or_insert(Seen::Deleted);
                    }),
                    Ok(_) => {}
                    Err(e) => tracing::debug!("watching {}: {e}", K::plural(&())),
                }
            }
        });
        Ended { seen, watch }
    }

    /// The object `name` once it has ended, or why it will not.
    pub(crate) async fn until_ended(&self, name: &str, timeout: Duration) -> Result<K, WaitError> {
        let kind = K::kind(&()).to_string();
        let mut seen = self.seen.clone();
        let waited = tokio::time::timeout(timeout, seen.wait_for(|s| s.contains_key(name))).await;
        let gone = || WaitError::Deleted {
            kind: kind.clone(),
            name: name.to_string(),
        };
        match waited {
            Ok(Ok(seen)) => match seen.get(name) {
                Some(Seen::Ended(object)) => Ok(object.clone()),
                _ => Err(gone()),
            },
            // The watch task is gone only when this value is dropped; treat it as deleted.
            Ok(Err(_)) => Err(gone()),
            Err(_) => Err(WaitError::TimedOut {
                kind,
                name: name.to_string(),
                timeout: velero_api::Duration::from(timeout),
            }),
        }
    }
}

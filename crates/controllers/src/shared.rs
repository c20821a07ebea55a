//! What every controller uses: Velero's timestamps and gzipped JSON, the API server's messages,
//! failing what a previous server left running, and running a kube-runtime controller.

/// Now, as the `metav1.Time` Velero writes (second precision, UTC).
pub(crate) fn now() -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Time {
    let ts = jiff::Timestamp::now();
    let secs = ts.as_second();
    k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        jiff::Timestamp::from_second(secs).unwrap_or(ts),
    )
}

/// A small JSON document gzip-compressed, as Velero stores results, lists and logs.
pub(crate) fn gzip_json(value: &impl serde::Serialize) -> bytes::Bytes {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let _ = gz.write_all(&serde_json::to_vec(value).unwrap_or_default());
    bytes::Bytes::from(gz.finish().unwrap_or_default())
}

/// The API server's own message for a failed call (`backups.velero.io "x" not found`).
pub(crate) fn kube_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) => status.message.clone(),
        other => other.to_string(),
    }
}

/// Marks the objects a previous server left running as Failed with `reason` (phase `Failed`,
/// `failureReason`, `completionTimestamp`): nothing resumes a backup or restore half done.
pub(crate) async fn fail_interrupted<K>(
    api: &kube::Api<K>,
    running: impl Fn(&K) -> bool,
    reason: &str,
) -> Result<(), kube::Error>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    fail_interrupted_with(api, running, "failureReason", reason).await
}

/// [`fail_interrupted`] for kinds that keep the reason in another status field (`message`).
pub(crate) async fn fail_interrupted_with<K>(
    api: &kube::Api<K>,
    running: impl Fn(&K) -> bool,
    reason_field: &str,
    reason: &str,
) -> Result<(), kube::Error>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    use kube::ResourceExt;
    for object in api.list(&Default::default()).await? {
        if !running(&object) {
            continue;
        }
        let name = object.name_any();
        tracing::warn!(%name, "{reason}");
        let body = serde_json::json!({ "status": {
            "phase": "Failed",
            reason_field: reason,
            "completionTimestamp": now(),
        }});
        if let Err(e) = api
            .patch(&name, &Default::default(), &kube::api::Patch::Merge(&body))
            .await
        {
            tracing::warn!(%name, "could not mark it Failed: {e}");
        }
    }
    Ok(())
}

/// Declares [`Watched`] and implements it for every type with its bounds, which are written once.
macro_rules! watched {
    ($($bound:tt)+) => {
        /// What kube-runtime watches: a kind with a static type, readable from JSON, shareable
        /// across tasks.
        pub(crate) trait Watched: $($bound)+ {}
        impl<K: $($bound)+> Watched for K {}
    };
}

watched!(
    kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static
);

/// A kube-runtime controller of every object `api` lists, to hand to [`run_controller`], after
/// adding what else wakes it (`watches_stream`, `reconcile_on`) if anything does.
pub(crate) fn controller<K: Watched>(api: kube::Api<K>) -> kube::runtime::Controller<K> {
    kube::runtime::Controller::new(api, kube::runtime::watcher::Config::default())
}

/// Runs `controller` until the server stops: `reconcile` for every change, a failed reconcile
/// logged (prefixed with `what`) and retried after 5 seconds.
pub(crate) async fn run_controller<K, C, E, F, Fut>(
    what: &'static str,
    controller: kube::runtime::Controller<K>,
    ctx: std::sync::Arc<C>,
    reconcile: F,
) where
    K: Watched,
    C: Send + Sync + 'static,
    E: std::error::Error + Send + Sync + 'static,
    F: FnMut(std::sync::Arc<K>, std::sync::Arc<C>) -> Fut,
    Fut:
        std::future::Future<Output = Result<kube::runtime::controller::Action, E>> + Send + 'static,
{
    use futures::StreamExt;
    use kube::runtime::controller::Action;
    controller
        .run(
            reconcile,
            move |_, error: &E, _| {
                tracing::warn!("{what}: {error}");
                Action::requeue(std::time::Duration::from_secs(5))
            },
            ctx,
        )
        .for_each(|result| async move {
            use kube::runtime::controller::Error;
            match result {
                // The watch failed (API server unreachable, overloaded, or the kind's CRD gone):
                // kube-runtime retries with a backoff of up to 30 s, during which new objects
                // wait unseen, so say so where an operator looks.
                Err(Error::QueueError(e)) => {
                    tracing::warn!("{what}: watching failed, retrying with backoff: {e}");
                }
                // Failed reconciles are logged by the error policy above.
                Err(e) => tracing::debug!("{what} reconcile: {e}"),
                Ok(_) => {}
            }
        })
        .await;
}

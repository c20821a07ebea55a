//! ServerStatusRequests: answer `velero version` with the server's version.

use std::sync::Arc;
use std::time::Duration;

use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Client, ResourceExt};
use serde_json::json;
use velero_api::v1::{ServerStatusRequest, ServerStatusRequestPhase};

/// Processed requests are removed after this long (Velero's 1 minute).
const TTL: Duration = Duration::from_secs(60);

pub async fn run_status_controller(client: Client, namespace: String) {
    let api: Api<ServerStatusRequest> = Api::namespaced(client, &namespace);
    crate::run_controller(
        "server status request",
        crate::controller(api.clone()),
        Arc::new(api),
        reconcile,
    )
    .await;
}

async fn reconcile(
    request: Arc<ServerStatusRequest>,
    api: Arc<Api<ServerStatusRequest>>,
) -> Result<Action, kube::Error> {
    let name = request.name_any();
    let status = request.status.clone().unwrap_or_default();
    if status.phase == Some(ServerStatusRequestPhase::Processed) {
        let age = status
            .processed_timestamp
            .map(|t| jiff::Timestamp::now().duration_since(t.0).as_secs())
            .unwrap_or(0);
        if age >= TTL.as_secs() as i64 {
            api.delete(&name, &DeleteParams::default()).await?;
            return Ok(Action::await_change());
        }
        return Ok(Action::requeue(TTL));
    }
    let body = json!({ "status": {
        "phase": ServerStatusRequestPhase::Processed,
        "processedTimestamp": crate::now(),
        "serverVersion": crate::SERVER_VERSION,
        "plugins": [],
    }});
    api.patch(&name, &PatchParams::default(), &Patch::Merge(&body))
        .await?;
    Ok(Action::requeue(TTL))
}

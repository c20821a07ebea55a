//! Velero's Prometheus metrics (`pkg/metrics/metrics.go`), same names, types and labels, served with `/healthz` at
//! `--metrics-address`.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// `schedule` is "" for backups and restores not made by a schedule, as in Velero.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ScheduleLabel {
    pub schedule: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LocationLabel {
    pub backup_location_name: String,
}

type Counters = Family<ScheduleLabel, Counter>;
type Gauges = Family<ScheduleLabel, Gauge>;
type FloatGauges = Family<ScheduleLabel, Gauge<f64, AtomicU64>>;

fn duration_histogram() -> Histogram {
    // Velero's buckets: 1m, 5m, 10m, 15m, 30m, 1h, 2h, 3h, 4h.
    Histogram::new([
        60.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 10800.0, 14400.0,
    ])
}

/// Every metric the server exports.
pub struct Metrics {
    registry: Registry,
    pub backup_total: Gauge,
    pub backup_attempt: Counters,
    pub backup_success: Counters,
    pub backup_partial_failure: Counters,
    pub backup_failure: Counters,
    pub backup_validation_failure: Counters,
    pub backup_duration_seconds: Family<ScheduleLabel, Histogram, fn() -> Histogram>,
    pub backup_tarball_size_bytes: Gauges,
    pub backup_items_total: Gauges,
    pub backup_items_errors: Gauges,
    pub backup_warning: Counters,
    pub backup_last_status: Gauges,
    pub backup_last_successful_timestamp: FloatGauges,
    pub backup_deletion_attempt: Counters,
    pub backup_deletion_success: Counters,
    pub backup_deletion_failure: Counters,
    pub backup_location_status: Family<LocationLabel, Gauge>,
    pub restore_total: Gauge,
    pub restore_attempt: Counters,
    pub restore_success: Counters,
    pub restore_partial_failure: Counters,
    pub restore_failed: Counters,
    pub restore_validation_failed: Counters,
    pub schedule_expected_interval_seconds: FloatGauges,
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        let mut registry = Registry::with_prefix("velero");
        let mut m = Metrics {
            registry: Registry::default(),
            backup_total: Gauge::default(),
            backup_attempt: Counters::default(),
            backup_success: Counters::default(),
            backup_partial_failure: Counters::default(),
            backup_failure: Counters::default(),
            backup_validation_failure: Counters::default(),
            backup_duration_seconds: Family::new_with_constructor(duration_histogram),
            backup_tarball_size_bytes: Gauges::default(),
            backup_items_total: Gauges::default(),
            backup_items_errors: Gauges::default(),
            backup_warning: Counters::default(),
            backup_last_status: Gauges::default(),
            backup_last_successful_timestamp: FloatGauges::default(),
            backup_deletion_attempt: Counters::default(),
            backup_deletion_success: Counters::default(),
            backup_deletion_failure: Counters::default(),
            backup_location_status: Family::default(),
            restore_total: Gauge::default(),
            restore_attempt: Counters::default(),
            restore_success: Counters::default(),
            restore_partial_failure: Counters::default(),
            restore_failed: Counters::default(),
            restore_validation_failed: Counters::default(),
            schedule_expected_interval_seconds: FloatGauges::default(),
        };
        // Counters are registered without `_total`: the encoder appends it.
        let r = &mut registry;
        r.register(
            "backup_total",
            "Current number of existent backups",
            m.backup_total.clone(),
        );
        r.register(
            "backup_attempt",
            "Total number of attempted backups",
            m.backup_attempt.clone(),
        );
        r.register(
            "backup_success",
            "Total number of successful backups",
            m.backup_success.clone(),
        );
        r.register(
            "backup_partial_failure",
            "Total number of partially failed backups",
            m.backup_partial_failure.clone(),
        );
        r.register(
            "backup_failure",
            "Total number of failed backups",
            m.backup_failure.clone(),
        );
        r.register(
            "backup_validation_failure",
            "Total number of validation failed backups",
            m.backup_validation_failure.clone(),
        );
        r.register(
            "backup_duration_seconds",
            "Time taken to complete backup, in seconds",
            m.backup_duration_seconds.clone(),
        );
        r.register(
            "backup_tarball_size_bytes",
            "Size, in bytes, of a backup",
            m.backup_tarball_size_bytes.clone(),
        );
        r.register(
            "backup_items_total",
            "Total number of items backed up",
            m.backup_items_total.clone(),
        );
        r.register(
            "backup_items_errors",
            "Total number of errors encountered during backup",
            m.backup_items_errors.clone(),
        );
        r.register(
            "backup_warning",
            "Total number of warned backups",
            m.backup_warning.clone(),
        );
        r.register(
            "backup_last_status",
            "Last status of the backup. A value of 1 is success, 0 is failure",
            m.backup_last_status.clone(),
        );
        r.register(
            "backup_last_successful_timestamp",
            "Last time a backup ran successfully, Unix timestamp in seconds",
            m.backup_last_successful_timestamp.clone(),
        );
        r.register(
            "backup_deletion_attempt",
            "Total number of attempted backup deletions",
            m.backup_deletion_attempt.clone(),
        );
        r.register(
            "backup_deletion_success",
            "Total number of successful backup deletions",
            m.backup_deletion_success.clone(),
        );
        r.register(
            "backup_deletion_failure",
            "Total number of failed backup deletions",
            m.backup_deletion_failure.clone(),
        );
        r.register(
            "backup_location_status_gauge",
            "The status of backup location. A value of 1 is available, 0 is unavailable",
            m.backup_location_status.clone(),
        );
        r.register(
            "restore_total",
            "Current number of existent restores",
            m.restore_total.clone(),
        );
        r.register(
            "restore_attempt",
            "Total number of attempted restores",
            m.restore_attempt.clone(),
        );
        r.register(
            "restore_success",
            "Total number of successful restores",
            m.restore_success.clone(),
        );
        r.register(
            "restore_partial_failure",
            "Total number of partially failed restores",
            m.restore_partial_failure.clone(),
        );
        r.register(
            "restore_failed",
            "Total number of failed restores",
            m.restore_failed.clone(),
        );
        r.register(
            "restore_validation_failed",
            "Total number of failed restores failing validations",
            m.restore_validation_failed.clone(),
        );
        r.register(
            "schedule_expected_interval_seconds",
            "Expected interval between consecutive scheduled backups, in seconds",
            m.schedule_expected_interval_seconds.clone(),
        );
        m.registry = registry;
        Arc::new(m)
    }

    /// The text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }

    pub fn schedule(name: Option<&str>) -> ScheduleLabel {
        ScheduleLabel {
            schedule: name.unwrap_or_default().to_string(),
        }
    }

    /// Drops every series of a deleted schedule, as Velero's `RemoveSchedule` does, so dashboards
    /// and alerts stop seeing it.
    pub fn remove_schedule(&self, name: &str) {
        let label = Self::schedule(Some(name));
        for counters in [
            &self.backup_attempt,
            &self.backup_success,
            &self.backup_partial_failure,
            &self.backup_failure,
            &self.backup_validation_failure,
            &self.backup_warning,
            &self.backup_deletion_attempt,
            &self.backup_deletion_success,
            &self.backup_deletion_failure,
            &self.restore_attempt,
            &self.restore_success,
            &self.restore_partial_failure,
            &self.restore_failed,
            &self.restore_validation_failed,
        ] {
            counters.remove(&label);
        }
        for gauges in [
            &self.backup_tarball_size_bytes,
            &self.backup_items_total,
            &self.backup_items_errors,
            &self.backup_last_status,
        ] {
            gauges.remove(&label);
        }
        self.backup_last_successful_timestamp.remove(&label);
        self.schedule_expected_interval_seconds.remove(&label);
        self.backup_duration_seconds.remove(&label);
    }
}

/// Velero recomputes the backup and restore totals every minute from the objects in the cluster.
pub async fn run_totals(client: kube::Client, namespace: String, metrics: Arc<Metrics>) {
    use velero_api::v1::{Backup, Restore};
    let backups: kube::Api<Backup> = kube::Api::namespaced(client.clone(), &namespace);
    let restores: kube::Api<Restore> = kube::Api::namespaced(client, &namespace);
    loop {
        if let Ok(list) = backups.list_metadata(&Default::default()).await {
            metrics.backup_total.set(list.items.len() as i64);
        }
        if let Ok(list) = restores.list_metadata(&Default::default()).await {
            metrics.restore_total.set(list.items.len() as i64);
        }
        tokio::time::sleep(std::time::Duration::from_secs(60)).await;
    }
}

/// `/metrics` and `/healthz`.
pub fn routes(metrics: Arc<Metrics>) -> axum::Router {
    use axum::routing::get;
    axum::Router::new()
        .route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move {
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        metrics.encode(),
                    )
                }
            }),
        )
        .route("/healthz", get(|| async { "ok" }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_labels_are_velero_s() {
        let m = Metrics::new();
        m.backup_attempt
            .get_or_create(&Metrics::schedule(None))
            .inc();
        m.backup_attempt
            .get_or_create(&Metrics::schedule(Some("daily")))
            .inc_by(2);
        m.backup_total.set(3);
        m.backup_location_status
            .get_or_create(&LocationLabel {
                backup_location_name: "default".into(),
            })
            .set(1);
        m.backup_duration_seconds
            .get_or_create(&Metrics::schedule(None))
            .observe(90.0);
        let text = m.encode();
        assert!(
            text.contains("velero_backup_attempt_total{schedule=\"\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("velero_backup_attempt_total{schedule=\"daily\"} 2"),
            "{text}"
        );
        assert!(text.contains("velero_backup_total 3"), "{text}");
        assert!(
            text.contains(
                "velero_backup_location_status_gauge{backup_location_name=\"default\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("velero_backup_duration_seconds_bucket{le=\"300.0\",schedule=\"\"} 1"),
            "{text}"
        );
    }

    #[test]
    fn a_deleted_schedule_leaves_no_series() {
        let m = Metrics::new();
        for name in ["daily", "hourly"] {
            let label = Metrics::schedule(Some(name));
            m.backup_attempt.get_or_create(&label).inc();
            m.backup_last_status.get_or_create(&label).set(1);
            m.backup_duration_seconds.get_or_create(&label).observe(3.0);
            m.schedule_expected_interval_seconds
                .get_or_create(&label)
                .set(86400.0);
            m.restore_attempt.get_or_create(&label).inc();
        }
        m.remove_schedule("daily");
        let text = m.encode();
        assert!(!text.contains("schedule=\"daily\""), "{text}");
        for series in [
            "velero_backup_attempt_total{schedule=\"hourly\"} 1",
            "velero_backup_last_status{schedule=\"hourly\"} 1",
            "velero_restore_attempt_total{schedule=\"hourly\"} 1",
        ] {
            assert!(text.contains(series), "{series} missing:\n{text}");
        }
    }
}

//! Talking to the Kubernetes API server: JSON reads and writes that back off when the server
//! asks (HTTP 429 from API Priority and Fairness, 5xx while overloaded), and discovery of the
//! resource types it serves, exec in pods, and the adaptive window that paces a restore's writes
//! and a backup's hook execs. Used by the engines, the hooks and the controllers.

pub mod api;
pub mod discovery;
pub mod exec;
pub mod gojson;
pub mod window;
pub mod write;

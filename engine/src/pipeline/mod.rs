//! Stage 1, the agent loop: the sensors' ring buffers are read and each
//! record decoded into a `KernelEvent` ([`agent`]); the loop then hands it to
//! [`crate::enrich`], the enriched event to [`crate::detect`] (rules and
//! baselines) and [`crate::encode`] (ECS JSON), and the record to the outputs
//! (`vigil-outputs`); after enrichment the work can run on several
//! threads sharded by process ([`shard`]). Beside the loop: the agent's own Prometheus figures
//! ([`telemetry`]) and dropping privileges once everything is open
//! ([`privs`]); the systemd notification protocol ([`notify`]).

pub mod agent;
pub mod notify;
pub mod privs;
pub mod shard;
pub mod telemetry;

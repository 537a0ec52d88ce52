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

/// Warns on stderr, one line each, of the sensors in `status` that could
/// not attach: `vigil: sensor=NAME unavailable: REASON` (the last
/// mechanism's reason; `vigil probe` lists them all).
pub fn warn_unavailable(status: &[vigil_bpf::SensorStatus]) {
    for l in unavailable_lines(status) {
        log::warn!("{l}");
    }
}

/// The lines [`warn_unavailable`] prints, without the `vigil: ` prefix.
pub fn unavailable_lines(status: &[vigil_bpf::SensorStatus]) -> Vec<String> {
    status
        .iter()
        .filter_map(|s| match &s.state {
            vigil_bpf::SensorState::Unavailable(f) => Some(format!(
                "sensor={} unavailable: {}",
                s.name,
                f.last().map(|x| x.1.as_str()).unwrap_or("?")
            )),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use vigil_bpf::{SensorState, SensorStatus};

    #[test]
    fn unavailable_sensors_are_named_with_their_last_reason() {
        let st = [
            SensorStatus {
                name: "exec",
                state: SensorState::Live {
                    mechanism: "tp_btf".into(),
                    fell_back_from: vec![],
                },
            },
            SensorStatus {
                name: "kmem",
                state: SensorState::Unavailable(vec![
                    ("tp_btf".into(), "EPERM".into()),
                    ("raw_tp".into(), "no such tracepoint".into()),
                ]),
            },
            SensorStatus {
                name: "bpf",
                state: SensorState::Unavailable(vec![]),
            },
            SensorStatus {
                name: "dns",
                state: SensorState::Disabled,
            },
        ];
        assert_eq!(
            super::unavailable_lines(&st),
            [
                "sensor=kmem unavailable: no such tracepoint",
                "sensor=bpf unavailable: ?"
            ]
        );
    }
}

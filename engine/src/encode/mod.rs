//! Stage 4, encoding: an event or alert becomes a JSON record with Elastic
//! Common Schema field names ([`ecs`]; every field in `docs/events.md`). The
//! record goes next to the outputs (`vigil-outputs`: stdout, files, syslog).

pub mod ecs;

//! Learns a small nginx-like profile, promotes it, shows an anomaly, and
//! prints `list`, the YAML whitelist and the rules export:
//! `cargo run -p vigil-baselines --example demo` (in memory, no root).

use std::net::IpAddr;

use vigil_baselines::{
    Access, Baselines, Behaviour, Config, ExeIdentity, Mode, Observation, Subject, Transport,
    render_list,
};

fn main() {
    let mut b = Baselines::in_memory(Config::default());
    let nginx = Subject {
        executable: b"/usr/sbin/nginx",
        identity: ExeIdentity::Inode {
            dev: 2049,
            ino: 393_244,
            size: 1_203_984,
            mtime_ns: 1_700_000_000_000_000_000,
        },
        container: None,
    };
    let t0 = 1_764_000_000_000_000_000i64;
    let work = [
        Behaviour::Open {
            path: b"/etc/nginx/nginx.conf",
            access: Access::READ,
        },
        Behaviour::Open {
            path: b"/proc/4242/stat",
            access: Access::READ,
        },
        Behaviour::Open {
            path: b"/var/log/nginx/access.log",
            access: Access::WRITE,
        },
        Behaviour::Spawn {
            child: b"/usr/bin/logger",
        },
        Behaviour::Connect {
            ip: IpAddr::from([10, 0, 0, 5]),
            port: 8080,
            transport: Transport::Tcp,
        },
        Behaviour::Listen {
            port: 80,
            transport: Transport::Tcp,
        },
        Behaviour::Capability { cap: 10 },
        Behaviour::UidChange { from: 0, to: 33 },
    ];
    for (i, w) in work.iter().enumerate() {
        b.observe(&Observation {
            unix_ns: t0 + i as i64 * 1_000_000_000,
            subject: nginx,
            behaviour: *w,
        });
    }
    let key = b.list()[0].profile.clone();
    b.promote(&key, Mode::Monitoring, t0 + 3_600_000_000_000)
        .unwrap();
    let anomalies = b.observe(&Observation {
        unix_ns: t0 + 3_700_000_000_000,
        subject: nginx,
        behaviour: Behaviour::Spawn { child: b"/bin/sh" },
    });
    println!("## anomaly\n{anomalies:#?}\n");
    println!(
        "## list\n{}",
        render_list(&b.list(), t0 + 3_800_000_000_000)
    );
    println!(
        "## export --format yaml\n{}",
        b.export_yaml(&[&key]).unwrap()
    );
    println!(
        "## export --format rules\n{}",
        b.export_rules(&key).unwrap()
    );
}

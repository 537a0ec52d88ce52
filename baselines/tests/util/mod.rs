//! Helpers shared by the integration tests.
#![allow(dead_code)] // each test binary uses a subset

use std::net::IpAddr;
use std::time::Duration;

use vigil_baselines::{
    Access, Behaviour, Config, ContainerRef, ExeIdentity, Observation, Subject, Transport,
};

pub const S: i64 = 1_000_000_000;
pub const T0: i64 = 1_764_000_000 * S;

pub fn host(exe: &'static str) -> Subject<'static> {
    Subject {
        executable: exe.as_bytes(),
        identity: ExeIdentity::Inode {
            dev: 2049,
            ino: 1234,
            size: 4096,
            mtime_ns: 7,
        },
        container: None,
    }
}

pub fn in_ctr(exe: &'static str, image: &'static str) -> Subject<'static> {
    Subject {
        executable: exe.as_bytes(),
        identity: ExeIdentity::Unknown,
        container: Some(ContainerRef {
            id: Some("4f9c2a1b7e3d4c5b6a7980112233445566778899aabbccddeeff001122334455"),
            image: Some(image),
            cgroup_path: None,
        }),
    }
}

pub fn obs<'a>(s: Subject<'a>, t: i64, b: Behaviour<'a>) -> Observation<'a> {
    Observation {
        unix_ns: t,
        subject: s,
        behaviour: b,
    }
}

pub fn open(p: &'static str, a: Access) -> Behaviour<'static> {
    Behaviour::Open {
        path: p.as_bytes(),
        access: a,
    }
}

pub fn spawn(p: &'static str) -> Behaviour<'static> {
    Behaviour::Spawn {
        child: p.as_bytes(),
    }
}

pub fn connect(ip: &str, port: u16) -> Behaviour<'static> {
    Behaviour::Connect {
        ip: ip.parse::<IpAddr>().unwrap(),
        port,
        transport: Transport::Tcp,
    }
}

/// Settings for tests: 60 s quiet period, 10 observations.
pub fn cfg() -> Config {
    Config {
        quiet_period: Duration::from_secs(60),
        min_observations: 10,
        ..Config::default()
    }
}

pub const NGINX_KEY: &str = "exe:/usr/sbin/nginx@i2049:1234:4096:7";

//! sled storage: persistence, schema refusal, permissions, locking,
//! corruption.

mod util;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use util::*;
use vigil_baselines::{Access, Baselines, Error, Mode, SCHEMA_VERSION};

fn walk(dir: &Path, f: &mut dyn FnMut(&Path, &fs::Metadata)) {
    for e in fs::read_dir(dir).unwrap().flatten() {
        let m = e.metadata().unwrap();
        f(&e.path(), &m);
        if m.is_dir() {
            walk(&e.path(), f);
        }
    }
}

fn learn(b: &mut Baselines) {
    let s = host("/usr/sbin/nginx");
    for i in 0..20 {
        b.observe(&obs(
            s,
            T0 + i * S,
            open("/etc/nginx/nginx.conf", Access::READ),
        ));
        b.observe(&obs(s, T0 + i * S, spawn("/usr/bin/cat")));
    }
}

#[test]
fn learned_state_survives_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    {
        let mut b = Baselines::open(&dir, cfg()).unwrap();
        learn(&mut b);
        b.note_loss(T0 + 5 * S, 9);
        let st = b.flush().unwrap();
        assert_eq!(st.profiles, 1);
        assert_eq!(st.sets, 2);
        // Nothing changed: nothing written.
        assert_eq!(b.flush().unwrap().profiles, 0);
    }
    let want = {
        let mut b = Baselines::in_memory(cfg());
        learn(&mut b);
        b.note_loss(T0 + 5 * S, 9);
        b.show(NGINX_KEY).unwrap()
    };
    let mut b = Baselines::open(&dir, cfg()).unwrap();
    assert_eq!(b.show(NGINX_KEY).unwrap(), want);
    // The last loss is remembered: a profile created soon after inherits it.
    b.observe(&obs(host("/bin/new"), T0 + 10 * S, spawn("/bin/x")));
    let row = b
        .list()
        .into_iter()
        .find(|r| r.profile.starts_with("exe:/bin/new"))
        .unwrap();
    assert_eq!(row.lossy_since_ns, Some(T0 + 5 * S));
}

#[test]
fn operations_are_durable_without_flush() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    {
        let mut b = Baselines::open(&dir, cfg()).unwrap();
        learn(&mut b);
        b.promote(NGINX_KEY, Mode::Monitoring, T0 + 30 * S).unwrap();
        // Seen since promotion, flushed; then a reset of another profile.
        b.observe(&obs(host("/usr/sbin/nginx"), T0 + 31 * S, spawn("/bin/sh")));
        b.flush().unwrap();
        b.observe(&obs(host("/bin/other"), T0 + 31 * S, spawn("/bin/sh")));
        b.flush().unwrap();
        b.reset(&b.list()[0].profile.clone(), T0 + 32 * S).unwrap();
        // dropped without a final flush
    }
    let b = Baselines::open(&dir, cfg()).unwrap();
    let d = b.show(NGINX_KEY).unwrap();
    assert_eq!(d.mode, Mode::Monitoring);
    assert_eq!(d.promoted_ns, Some(T0 + 30 * S));
    assert_eq!(b.diff(NGINX_KEY).unwrap().spawn[0].item, "/bin/sh");
    let other = b
        .list()
        .into_iter()
        .find(|r| r.profile.starts_with("exe:/bin/other"))
        .unwrap();
    assert_eq!(other.counts, [0; 8], "reset removed the items on disk");
}

#[test]
fn creates_private_directory_and_files() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a/b/vigil");
    let mut b = Baselines::open(&dir, cfg()).unwrap();
    learn(&mut b);
    b.flush().unwrap();
    assert_eq!(
        fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
    let mut files = 0;
    walk(&dir, &mut |p, m| {
        let mode = m.permissions().mode() & 0o777;
        if m.is_dir() {
            assert_eq!(mode, 0o700, "{}", p.display());
        } else {
            files += 1;
            assert_eq!(mode, 0o600, "{}", p.display());
        }
    });
    assert!(files >= 2, "sled wrote its files");
}

#[test]
fn refuses_group_or_world_accessible_directory() {
    let tmp = tempfile::tempdir().unwrap();
    for mode in [0o750, 0o705, 0o777] {
        let dir = tmp.path().join(format!("d{mode:o}"));
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(mode)).unwrap();
        match Baselines::open(&dir, cfg()) {
            Err(Error::InsecureDir { mode: m, .. }) => assert_eq!(m, mode),
            other => panic!("mode {mode:o}: {other:?}"),
        }
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 0, "nothing created");
    }
    let file = tmp.path().join("f");
    fs::write(&file, b"x").unwrap();
    assert!(matches!(
        Baselines::open(&file, cfg()),
        Err(Error::Dir { .. })
    ));
}

#[test]
fn newer_schema_is_refused_and_left_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    {
        let mut b = Baselines::open(&dir, cfg()).unwrap();
        learn(&mut b);
        b.flush().unwrap();
    }
    {
        let db = sled::open(&dir).unwrap();
        db.open_tree("meta")
            .unwrap()
            .insert("schema", &(SCHEMA_VERSION + 1).to_le_bytes()[..])
            .unwrap();
        db.flush().unwrap();
    }
    let e = Baselines::open(&dir, cfg()).unwrap_err();
    match &e {
        Error::NewerSchema {
            found, supported, ..
        } => {
            assert_eq!((*found, *supported), (SCHEMA_VERSION + 1, SCHEMA_VERSION));
        }
        other => panic!("{other:?}"),
    }
    assert!(e.to_string().contains("was not modified"), "{e}");
    let db = sled::open(&dir).unwrap();
    let v = db
        .open_tree("meta")
        .unwrap()
        .get("schema")
        .unwrap()
        .unwrap();
    assert_eq!(v.as_ref(), &(SCHEMA_VERSION + 1).to_le_bytes()[..]);
    assert_eq!(db.open_tree("file").unwrap().len(), 1, "data kept");
}

#[test]
fn foreign_or_versionless_database_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    fs::create_dir(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
    {
        let db = sled::open(&dir).unwrap();
        db.insert("someone", "else's").unwrap();
        db.flush().unwrap();
    }
    assert!(matches!(
        Baselines::open(&dir, cfg()),
        Err(Error::UnknownSchema { .. })
    ));
    let db = sled::open(&dir).unwrap();
    assert_eq!(db.get("someone").unwrap().unwrap().as_ref(), b"else's");
    assert!(
        !db.tree_names().iter().any(|n| n.as_ref() == b"meta"),
        "no meta tree added"
    );
}

#[test]
fn corrupt_database_is_an_error_not_a_panic_and_is_not_rewritten() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    {
        let mut b = Baselines::open(&dir, cfg()).unwrap();
        learn(&mut b);
        b.flush().unwrap();
    }
    // A corrupt profile record.
    {
        let db = sled::open(&dir).unwrap();
        db.open_tree("profiles")
            .unwrap()
            .insert(NGINX_KEY, &b"{not json"[..])
            .unwrap();
        db.open_tree("file")
            .unwrap()
            .insert([0u8, 9, b'x'], &b"short"[..])
            .unwrap();
        db.flush().unwrap();
    }
    let e = Baselines::open(&dir, cfg()).unwrap_err();
    assert!(matches!(e, Error::CorruptRecord { .. }), "{e:?}");
    assert!(e.to_string().contains("profiles"), "{e}");
    // Garbage in sled's files.
    let db_file = dir.join("db");
    let mut bytes = fs::read(&db_file).unwrap();
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(31) ^ 0x5a;
    }
    fs::write(&db_file, &bytes).unwrap();
    let r = std::panic::catch_unwind(|| Baselines::open(&dir, cfg()).map(|_| ()));
    match r {
        Ok(Err(e)) => {
            assert!(matches!(e, Error::Corrupt { .. }), "{e:?}");
            assert!(e.to_string().contains("not modified"), "{e}");
        }
        Ok(Ok(())) => {
            // sled may treat an unreadable log as empty; then the schema
            // check must still refuse to reuse it silently.
            panic!("a garbage database opened as if valid");
        }
        Err(_) => panic!("opening a corrupt database panicked"),
    }
    assert_eq!(
        fs::read(&db_file).unwrap(),
        bytes,
        "corrupt file left as it was"
    );
}

#[test]
fn second_opener_gets_a_locked_error() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    let _a = Baselines::open(&dir, cfg()).unwrap();
    match Baselines::open(&dir, cfg()) {
        Err(Error::Locked { .. }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn counters_of_known_items_are_written_once_per_refresh_interval() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    let mut b = Baselines::open(&dir, cfg()).unwrap(); // refresh_interval 60 s
    let s = host("/usr/sbin/nginx");
    let see = |b: &mut Baselines, t: i64| {
        b.observe(&obs(s, t, open("/etc/nginx/nginx.conf", Access::READ)));
    };
    see(&mut b, T0);
    assert_eq!(
        b.flush().unwrap().sets,
        1,
        "a new item is written at the next flush"
    );
    see(&mut b, T0 + 30 * S);
    assert_eq!(b.flush().unwrap().profiles, 0, "a repeat 30 s later is not");
    see(&mut b, T0 + 61 * S);
    let st = b.flush().unwrap();
    assert_eq!(
        (st.profiles, st.sets),
        (1, 1),
        "61 s later the counters are"
    );
    b.observe(&obs(s, T0 + 62 * S, spawn("/bin/true")));
    assert_eq!(b.flush().unwrap().sets, 1, "only the set that changed");
    drop(b);
    let b = Baselines::open(&dir, cfg()).unwrap();
    let d = b.show(NGINX_KEY).unwrap();
    assert_eq!(d.file[0].count, 3);
    assert_eq!(d.file[0].last_seen_ns, T0 + 61 * S);
    assert_eq!(d.spawn[0].item, "/bin/true");
}

#[test]
fn leaves_other_files_in_a_shared_directory_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    fs::create_dir(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
    let other = dir.join("spool.fifo-like");
    fs::write(&other, b"x").unwrap();
    fs::set_permissions(&other, fs::Permissions::from_mode(0o644)).unwrap();
    let mut b = Baselines::open(&dir, cfg()).unwrap();
    learn(&mut b);
    b.flush().unwrap();
    assert_eq!(
        fs::metadata(&other).unwrap().permissions().mode() & 0o777,
        0o644
    );
    assert_eq!(
        fs::metadata(dir.join("db")).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn automatic_promotion_is_durable_without_flush() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    {
        let mut b = Baselines::open(&dir, cfg()).unwrap();
        learn(&mut b); // 40 observations, last new item at T0
        assert_eq!(b.tick(T0 + 3600 * S).unwrap(), vec![NGINX_KEY.to_string()]);
    }
    let b = Baselines::open(&dir, cfg()).unwrap();
    let d = b.show(NGINX_KEY).unwrap();
    assert_eq!(d.mode, Mode::Monitoring);
    assert_eq!(d.promoted_ns, Some(T0 + 3600 * S));
    assert_eq!(d.file.len(), 1);
    assert_eq!(d.spawn.len(), 1);
}

/// A schema 1 database (items generalised by the older rules, which kept
/// `pgsql_tmp14285.0` verbatim) still loads: its items are generalised
/// again, merged where two become one, and the schema is raised; a
/// read-only snapshot migrates in memory and writes nothing.
#[test]
fn schema_1_database_is_migrated_on_open() {
    const PG: &str = "exe:/usr/lib/postgresql/15/bin/postgres@i2049:1234:4096:7";
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    let pg = host("/usr/lib/postgresql/15/bin/postgres");
    {
        let mut b = Baselines::open(&dir, cfg()).unwrap();
        b.observe(&obs(pg, T0, open("/srv/pg/PG_VERSION", Access::READ)));
        b.promote(PG, Mode::Monitoring, T0 + S).unwrap();
    }
    // Rewrite it as a schema 1 database would hold it: two temp files of
    // two backends as two verbatim items.
    {
        let db = sled::open(&dir).unwrap();
        let file = db.open_tree("file").unwrap();
        let v = file.get(PG).unwrap().expect("file set");
        let entry = &v[2 + "/srv/pg/PG_VERSION".len()..];
        let mut set = Vec::new();
        for item in [
            "/srv/pg/PG_VERSION",
            "/srv/pg/base/pgsql_tmp/pgsql_tmp14285.0",
            "/srv/pg/base/pgsql_tmp/pgsql_tmp99999.3",
        ] {
            set.extend_from_slice(&(item.len() as u16).to_le_bytes());
            set.extend_from_slice(item.as_bytes());
            set.extend_from_slice(entry);
        }
        file.insert(PG, set).unwrap();
        db.open_tree("meta")
            .unwrap()
            .insert("schema", &1u32.to_le_bytes()[..])
            .unwrap();
        db.flush().unwrap();
    }
    let schema = |dir: &Path| {
        let db = sled::open(dir).unwrap();
        let v = db
            .open_tree("meta")
            .unwrap()
            .get("schema")
            .unwrap()
            .unwrap();
        u32::from_le_bytes(v.as_ref().try_into().unwrap())
    };
    let items = |b: &Baselines| {
        b.show(PG)
            .unwrap()
            .file
            .iter()
            .map(|i| (i.item.clone(), i.count))
            .collect::<Vec<_>>()
    };
    let want = vec![
        ("/srv/pg/PG_VERSION".to_string(), 1),
        ("/srv/pg/base/pgsql_tmp/pgsql_tmp*.*".to_string(), 2),
    ];
    {
        let b = Baselines::snapshot(&dir, cfg()).unwrap();
        assert_eq!(items(&b), want);
    }
    assert_eq!(schema(&dir), 1, "a snapshot writes nothing");
    {
        let mut b = Baselines::open(&dir, cfg()).unwrap();
        assert_eq!(items(&b), want);
        // A third backend's temp file is the learned pattern: no drift.
        let a = b.observe(&obs(
            pg,
            T0 + 2 * S,
            open("/srv/pg/base/pgsql_tmp/pgsql_tmp4242.7", Access::READ),
        ));
        assert!(a.is_empty(), "{a:?}");
    }
    assert_eq!(schema(&dir), SCHEMA_VERSION);
    let b = Baselines::open(&dir, cfg()).unwrap();
    assert_eq!(items(&b), want);
    assert_eq!(b.list()[0].mode, Mode::Monitoring);
}

/// Process names are stored with the profile.
#[test]
fn names_survive_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    {
        let mut b = Baselines::open(&dir, cfg()).unwrap();
        let r = b.resolve(&host("/usr/sbin/nginx"), T0).unwrap();
        b.note_name(r, b"nginx");
        b.flush().unwrap();
    }
    let b = Baselines::open(&dir, cfg()).unwrap();
    assert_eq!(b.list()[0].names, vec!["nginx".to_string()]);
}

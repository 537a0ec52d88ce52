//! Hostile input never panics: arbitrary bytes as paths, keys and items, and
//! arbitrary text as an import document.

mod util;

use proptest::prelude::*;
use util::*;
use vigil_baselines::{
    Access, Baselines, Behaviour, ContainerRef, ExeIdentity, Mode, Observation, Subject, escape,
    generalise_path, unescape,
};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn generalisation_is_total_and_idempotent(path in proptest::collection::vec(any::<u8>(), 0..300)) {
        let g = generalise_path(&path).into_owned();
        prop_assert_eq!(generalise_path(&g).into_owned(), g.clone());
        prop_assert_eq!(g.iter().filter(|&&b| b == b'/').count(), path.iter().filter(|&&b| b == b'/').count());
    }

    #[test]
    fn escaping_round_trips(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let e = escape(&bytes);
        prop_assert!(!e.chars().any(char::is_control));
        prop_assert_eq!(unescape(&e), Some(bytes));
    }

    #[test]
    fn arbitrary_observations_and_exports_do_not_panic(
        exe in proptest::collection::vec(any::<u8>(), 0..80),
        path in proptest::collection::vec(any::<u8>(), 0..200),
        id in "[ -~]{0,70}",
        cap in any::<u8>(),
        access in any::<u8>(),
    ) {
        let mut b = Baselines::in_memory(cfg());
        let subject = Subject {
            executable: &exe,
            identity: ExeIdentity::Unknown,
            container: (!id.is_empty()).then_some(ContainerRef { id: Some(&id), image: None, cgroup_path: Some(&path) }),
        };
        for (t, bh) in [
            Behaviour::Open { path: &path, access: Access(access) },
            Behaviour::Spawn { child: &path },
            Behaviour::Capability { cap },
        ].into_iter().enumerate() {
            b.observe(&Observation { unix_ns: T0 + t as i64, subject, behaviour: bh });
        }
        for row in b.list() {
            b.promote(&row.profile, Mode::Monitoring, T0 + 10).unwrap();
            let _ = b.export_rules(&row.profile).unwrap();
            let y = b.export_yaml(&[&row.profile]).unwrap();
            let mut c = Baselines::in_memory(cfg());
            c.import_yaml(&y, None, T0).unwrap();
            prop_assert_eq!(c.export_yaml(&[]).unwrap(), y);
        }
    }

    #[test]
    fn arbitrary_import_text_is_an_error_not_a_panic(text in "\\PC{0,400}") {
        let mut b = Baselines::in_memory(cfg());
        let _ = b.import_yaml(&text, None, T0);
    }
}

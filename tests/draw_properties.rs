//! The laws of the draw, stated as property tests (proptest) over random inputs.

use proptest::prelude::*;
use tirage::draw::bundle::DrawInputs;
use tirage::draw::commit::seed_commitment;
use tirage::draw::order::rank;
use tirage::draw::stream::Stream;
use tirage::draw::verify::{VerifyError, check_bundle, verify};
use tirage::draw::{Bundle, Entry, EntryId, Slot, run_draw, sha256};

fn entry_strategy() -> impl Strategy<Value = Entry> {
    (
        any::<[u8; 16]>(),
        prop_oneof![Just(1u32), Just(2), Just(4), Just(8), 1..=1_000_000u32],
    )
        .prop_map(|(id, weight)| Entry {
            id: EntryId::from_bytes(id),
            weight,
        })
}

fn slot_strategy() -> impl Strategy<Value = (u8, u8, u8)> {
    (0..3u8, 0..4u8, 0..2u8)
}

prop_compose! {
    fn inputs_strategy()(
        entries in prop::collection::vec(entry_strategy(), 0..40),
        slot_parts in prop::collection::vec(slot_strategy(), 0..20),
        secret in any::<[u8; 32]>(),
        beacon_value in prop::collection::vec(any::<u8>(), 0..40),
    ) -> DrawInputs {
        let mut entries = entries;
        entries.sort_by_key(|e| e.id);
        entries.dedup_by_key(|e| e.id);
        let slots = slot_parts
            .iter()
            .enumerate()
            .map(|(i, (day, hour, counter))| Slot {
                id: format!("S{i:03}"),
                starts_at: format!("2027-01-{:02}T{:02}:30:00Z", day + 4, hour + 8),
                counter: format!("G{counter}"),
            })
            .collect();
        DrawInputs {
            window_id: "34-renewal-2027-01".into(),
            beacon: "drand:quicknet:round=1".into(),
            beacon_value,
            seed_commitment: seed_commitment(&secret),
            secret,
            entries,
            slots,
        }
    }
}

/// The names of the checks that failed.
fn failed(bundle: Bundle) -> Vec<&'static str> {
    check_bundle(bundle)
        .expect("a tampered value still decodes")
        .checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| c.name)
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn every_entry_ranked_once_and_no_slot_given_twice(inputs in inputs_strategy()) {
        let n = inputs.entries.len();
        let n_slots = inputs.slots.len();
        let bundle = run_draw(inputs).unwrap();
        prop_assert_eq!(bundle.results.len(), n);
        let ranks: Vec<u64> = bundle.results.iter().map(|r| r.rank).collect();
        prop_assert_eq!(ranks, (1..=n as u64).collect::<Vec<_>>());
        let mut ids: Vec<_> = bundle.results.iter().map(|r| r.id).collect();
        ids.sort();
        let mut entry_ids: Vec<_> = bundle.entries.iter().map(|e| e.id).collect();
        entry_ids.sort();
        prop_assert_eq!(ids, entry_ids);
        let mut given: Vec<&str> = bundle.results.iter().filter_map(|r| r.slot.as_deref()).collect();
        prop_assert_eq!(given.len(), n.min(n_slots));
        given.sort();
        given.dedup();
        prop_assert_eq!(given.len(), n.min(n_slots));
        // the selected are exactly the best ranks
        for row in &bundle.results {
            prop_assert_eq!(row.slot.is_some(), row.rank as usize <= n_slots);
        }
    }

    #[test]
    fn result_does_not_depend_on_input_order(inputs in inputs_strategy(), shuffle_seed in any::<u64>()) {
        let mut shuffled = inputs.clone();
        let mut stream = Stream::new(&sha256(&shuffle_seed.to_le_bytes()));
        for i in (1..shuffled.entries.len()).rev() {
            let j = stream.uniform(i as u64 + 1) as usize;
            shuffled.entries.swap(i, j);
        }
        shuffled.slots.reverse();
        prop_assert_eq!(run_draw(inputs).unwrap(), run_draw(shuffled).unwrap());
    }

    #[test]
    fn a_bundle_verifies(inputs in inputs_strategy()) {
        let bundle = run_draw(inputs).unwrap();
        let json = serde_json::to_vec(&bundle).unwrap();
        let parsed: Bundle = serde_json::from_slice(&json).unwrap();
        let report = verify(parsed).unwrap();
        prop_assert!(report.checks.iter().all(|c| c.ok));
        prop_assert_eq!(report.checks.len(), 9);
    }

    #[test]
    fn a_changed_entry_id_or_weight_is_named(inputs in inputs_strategy(), pick in any::<prop::sample::Index>(), bump in 1u32..1000) {
        prop_assume!(!inputs.entries.is_empty());
        let bundle = run_draw(inputs).unwrap();
        let i = pick.index(bundle.entries.len());

        let mut tampered = bundle.clone();
        let mut id = *tampered.entries[i].id.as_bytes();
        id[15] ^= 1;
        tampered.entries[i].id = EntryId::from_bytes(id);
        let names = failed(tampered);
        prop_assert!(names.contains(&"entries_root"), "{:?}", names);

        let mut tampered = bundle.clone();
        let w = tampered.entries[i].weight;
        tampered.entries[i].weight = if w + bump <= 1_000_000 { w + bump } else { w - bump };
        let names = failed(tampered);
        prop_assert!(names.contains(&"entries_root"), "{:?}", names);
    }

    #[test]
    fn a_changed_secret_or_slot_time_is_named(inputs in inputs_strategy(), pick in any::<prop::sample::Index>()) {
        let bundle = run_draw(inputs).unwrap();

        let mut tampered = bundle.clone();
        tampered.secret = hex::encode(sha256(tampered.secret.as_bytes()));
        let names = failed(tampered);
        prop_assert!(names.contains(&"seed_commitment"), "{:?}", names);
        prop_assert!(names.contains(&"seed"), "{:?}", names);

        if !bundle.slots.is_empty() {
            let i = pick.index(bundle.slots.len());
            let mut tampered = bundle.clone();
            tampered.slots[i].starts_at = "2030-06-01T12:00:00Z".into();
            let names = failed(tampered);
            prop_assert!(names.contains(&"slots_hash"), "{:?}", names);
        }
    }

    #[test]
    fn a_changed_rank_or_slot_assignment_is_named_with_its_rank(inputs in inputs_strategy(), pick in any::<prop::sample::Index>()) {
        prop_assume!(inputs.entries.len() >= 2);
        let bundle = run_draw(inputs).unwrap();
        let i = pick.index(bundle.results.len());

        let mut tampered = bundle.clone();
        tampered.results[i].rank += 1;
        let error = verify(tampered).unwrap_err();
        prop_assert_eq!(error, VerifyError::ResultsMismatch { first_rank: i as u64 + 1 });

        let mut tampered = bundle.clone();
        tampered.results[i].slot = match &tampered.results[i].slot {
            Some(_) => None,
            None => Some("S999".into()),
        };
        let error = verify(tampered).unwrap_err();
        prop_assert_eq!(error, VerifyError::ResultsMismatch { first_rank: i as u64 + 1 });

        // swapping two lines is caught at the first of them
        let j = (i + 1) % bundle.results.len();
        let mut tampered = bundle.clone();
        let (a, b) = (tampered.results[i].id, tampered.results[j].id);
        tampered.results[i].id = b;
        tampered.results[j].id = a;
        let error = verify(tampered).unwrap_err();
        prop_assert_eq!(error, VerifyError::ResultsMismatch { first_rank: i.min(j) as u64 + 1 });
    }
}

/// Over many seeds, the entry ranked first is picked with probability proportional to
/// its weight. Pearson's chi-square over a fixed list of seeds keeps this deterministic.
#[test]
fn first_rank_frequencies_follow_the_weights() {
    let weights = [1u32, 2, 3, 4, 10];
    let total: u32 = weights.iter().sum();
    let draws = 20_000u32;
    let mut firsts = [0u32; 5];
    for i in 0..draws {
        let seed = sha256(format!("chi-square seed {i}").as_bytes());
        let order = rank(&weights, &mut Stream::new(&seed));
        firsts[order[0]] += 1;
    }
    let chi2: f64 = weights
        .iter()
        .zip(firsts)
        .map(|(&w, observed)| {
            let expected = f64::from(draws) * f64::from(w) / f64::from(total);
            (f64::from(observed) - expected).powi(2) / expected
        })
        .sum();
    // 4 degrees of freedom: P(chi2 > 18.47) = 0.001 for a fair draw.
    assert!(chi2 < 18.47, "chi-square {chi2:.2} with counts {firsts:?}");
    // and the heaviest entry really is first about 10/20 of the time
    assert!((9_500..10_500).contains(&firsts[4]), "{firsts:?}");
}

/// `run_draw` refuses inputs that have no well-defined draw: a repeated entry id, a
/// secret that is not the committed one, a repeated slot id.
#[test]
fn the_run_draw_refuses_what_it_cannot_draw() {
    let secret = [5u8; 32];
    let id = EntryId::from_bytes([1; 16]);
    let base = DrawInputs {
        window_id: "w".into(),
        beacon: "none".into(),
        beacon_value: vec![],
        seed_commitment: seed_commitment(&secret),
        secret,
        entries: vec![Entry { id, weight: 1 }, Entry { id, weight: 2 }],
        slots: vec![],
    };
    let error = run_draw(base.clone()).unwrap_err();
    assert_eq!(error.field, "entries");

    let mut wrong_commitment = base.clone();
    wrong_commitment.entries.truncate(1);
    wrong_commitment.seed_commitment = hex::encode([0u8; 32]);
    assert_eq!(
        run_draw(wrong_commitment).unwrap_err().field,
        "seed_commitment"
    );

    let mut value_without_beacon = base.clone();
    value_without_beacon.entries.truncate(1);
    value_without_beacon.beacon_value = vec![1];
    assert_eq!(
        run_draw(value_without_beacon).unwrap_err().field,
        "beacon_value"
    );

    let mut twice = base;
    twice.entries.truncate(1);
    let slot = Slot {
        id: "S1".into(),
        starts_at: "2027-01-04T08:30:00Z".into(),
        counter: "G1".into(),
    };
    twice.slots = vec![slot.clone(), slot];
    assert_eq!(run_draw(twice).unwrap_err().field, "slots");
}

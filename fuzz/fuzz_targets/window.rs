//! Window creation and editing take any JSON staff send and either refuse it naming
//! fields or return a window whose slots are in draw order, each written in the exact
//! form the draw hashes, and whose weighting policy gives every entry a weight the draw
//! accepts, whatever its permit date. (Fuzzing the API found an overflow in the policy
//! check; this target keeps looking there.)
#![no_main]

use chrono::NaiveDate;
use libfuzzer_sys::fuzz_target;
use tirage::domain::window::{WindowForm, WindowSpec, format_slot_time};

fuzz_target!(|data: &[u8]| {
    let Ok(form) = serde_json::from_slice::<WindowForm>(data) else {
        return;
    };
    let Ok(spec) = WindowSpec::from_form(&form) else {
        return;
    };
    for pair in spec.slots.windows(2) {
        let key = |s: &tirage::domain::window::SlotSpec| {
            (
                s.starts_at,
                s.counter.clone().into_bytes(),
                s.id.clone().into_bytes(),
            )
        };
        assert!(key(&pair[0]) <= key(&pair[1]), "slots out of draw order");
    }
    for slot in &spec.slots {
        assert_eq!(slot.starts_at_text().len(), 20);
        assert_eq!(slot.starts_at_text(), format_slot_time(slot.starts_at));
    }
    if let Some(first) = spec.first_slot_date() {
        for permit in [
            None,
            Some(NaiveDate::MIN),
            Some(first),
            Some(NaiveDate::MAX),
        ] {
            for draws in [0, 1, u32::MAX] {
                let weight = spec.policy.weight(permit, first, draws);
                assert!((1..=1_000_000).contains(&weight), "weight {weight}");
            }
        }
    }
    // Editing a draft with the same form gives the same window.
    if let Ok(again) = spec.patched(&form) {
        assert_eq!(again, spec);
    }
});

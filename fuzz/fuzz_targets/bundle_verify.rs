//! Whatever bytes an auditor is handed, `tirage verify` parses them and re-computes the
//! draw without panicking: a malformed bundle is an error, a tampered one a failed
//! check. Seeded with the published test vectors (scripts/fuzz.sh).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tirage::draw::Bundle;
use tirage::draw::verify::{check_bundle, verify};

fuzz_target!(|data: &[u8]| {
    let Ok(bundle) = serde_json::from_slice::<Bundle>(data) else {
        return;
    };
    // Both entry points of the verifier: the full report and the first failure.
    let report = check_bundle(bundle.clone());
    let first = verify(bundle);
    if let Ok(report) = report {
        // The two agree on whether the bundle is sound.
        assert_eq!(report.is_ok(), first.is_ok());
    }
});

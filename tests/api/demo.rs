//! `tirage demo` runs a whole window through the service and publishes a bundle that
//! verifies.

use tirage::demo::{DemoArgs, run};
use tirage::draw::Bundle;
use tirage::draw::verify::check_bundle;

#[tokio::test]
async fn the_demo_runs_a_window_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let args = DemoArgs {
        entries: 60,
        slots: 9,
        out: dir.path().join("demo"),
    };
    let outcome = run(&args).await.unwrap();

    let bundle: Bundle =
        serde_json::from_slice(&std::fs::read(&outcome.bundle_path).unwrap()).unwrap();
    assert_eq!(bundle.window_id, outcome.window_id);
    assert_eq!(bundle.entries.len(), 60);
    assert_eq!(bundle.slots.len(), 9);
    assert_eq!(
        bundle.results.iter().filter(|r| r.slot.is_some()).count(),
        9
    );
    // varied urgency: several weight tiers take part
    let mut weights: Vec<u32> = bundle.entries.iter().map(|e| e.weight).collect();
    weights.sort_unstable();
    weights.dedup();
    assert!(weights.len() >= 4, "{weights:?}");
    assert!(check_bundle(bundle).unwrap().is_ok());

    let summary = std::fs::read_to_string(&outcome.summary_path).unwrap();
    assert!(summary.contains("entries: 60"), "{summary}");
    assert!(summary.contains("re-computes exactly"), "{summary}");
    assert!(
        summary.lines().any(|l| l.trim_start().starts_with('8')),
        "a weight-8 tier line: {summary}"
    );

    // Running it again in the same folder starts afresh.
    let again = run(&args).await.unwrap();
    assert_ne!(again.window_id, outcome.window_id);
}

//! Every metric against the values scikit-learn and SciPy give on the same predictions and
//! labels (`tests/fixtures/glue_metrics.json`, written by `scripts/make_glue_metric_fixtures.py`).

use bert_finetune::metrics::{self, MetricError};
use serde_json::Value;

fn fixtures() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/glue_metrics.json"
    );
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn ints(v: &Value) -> Vec<u32> {
    v.as_array()
        .expect("an array")
        .iter()
        .map(|x| u32::try_from(x.as_u64().expect("a class")).expect("a small class"))
        .collect()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("an array")
        .iter()
        .map(|x| x.as_f64().expect("a number"))
        .collect()
}

fn assert_near(case: &str, metric: &str, ours: f64, reference: f64) {
    assert!(
        (ours - reference).abs() <= 1e-12,
        "{case}: {metric} {ours} where the reference says {reference}"
    );
}

#[test]
fn classification_metrics_match_scikit_learn() {
    let fixtures = fixtures();
    let cases = fixtures["classification"].as_array().expect("cases");
    assert!(cases.len() >= 10);
    let mut with_f1 = 0;
    for case in cases {
        let name = case["name"].as_str().expect("a name");
        let (pred, gold) = (ints(&case["pred"]), ints(&case["gold"]));
        let acc = metrics::accuracy(&pred, &gold).expect("accuracy");
        assert_near(
            name,
            "accuracy",
            acc,
            case["accuracy"].as_f64().expect("accuracy"),
        );
        let mcc = metrics::matthews(&pred, &gold).expect("Matthews correlation");
        assert_near(
            name,
            "Matthews correlation",
            mcc,
            case["matthews"].as_f64().expect("mcc"),
        );
        if let Some(f1) = case.get("f1").and_then(Value::as_f64) {
            assert_near(name, "F1", metrics::f1(&pred, &gold, 1).expect("F1"), f1);
            with_f1 += 1;
        }
    }
    assert!(with_f1 >= 8, "the binary cases carry F1");
}

#[test]
fn correlations_match_scipy_and_are_undefined_where_scipy_gives_nan() {
    let fixtures = fixtures();
    let cases = fixtures["regression"].as_array().expect("cases");
    let mut undefined = 0;
    for case in cases {
        let name = case["name"].as_str().expect("a name");
        let (pred, gold) = (floats(&case["pred"]), floats(&case["gold"]));
        for (metric, ours) in [
            ("pearson", metrics::pearson(&pred, &gold)),
            ("spearman", metrics::spearman(&pred, &gold)),
        ] {
            match (case[metric].as_f64(), ours) {
                (Some(reference), Ok(ours)) => assert_near(name, metric, ours, reference),
                (None, Err(MetricError::Undefined { .. })) => undefined += 1,
                (reference, ours) => {
                    panic!("{name}: {metric}: reference {reference:?}, ours {ours:?}")
                }
            }
        }
    }
    assert_eq!(
        undefined, 4,
        "a constant column and a single example, both metrics"
    );
}

//! The learning-rate schedule against the published rules (Google's `polynomial_decay` with
//! warm-up, NVIDIA's `PolyWarmUpScheduler`, HuggingFace's linear schedule), whose values
//! `scripts/make_schedule_fixture.py` computes from formulas written out independently.

use bert_train::{DecayOver, Schedule};

#[test]
fn rates_match_the_reference_schedules() {
    let text = include_str!("../fixtures/lr_schedules.json");
    let cases: serde_json::Value = serde_json::from_str(text).unwrap();
    let cases = cases.as_array().unwrap();
    assert_eq!(cases.len(), 3);
    for case in cases {
        let decay_over = match case["decay_over"].as_str().unwrap() {
            "run" => DecayOver::Run,
            _ => DecayOver::AfterWarmup,
        };
        let schedule = Schedule {
            peak_lr: case["peak_lr"].as_f64().unwrap(),
            warmup_steps: case["warmup_steps"].as_u64().unwrap(),
            total_steps: case["total_steps"].as_u64().unwrap(),
            power: case["power"].as_f64().unwrap(),
            decay_over,
        };
        let source = case["source"].as_str().unwrap();
        for pair in case["rates"].as_array().unwrap() {
            let step = pair[0].as_u64().unwrap();
            let want = pair[1].as_f64().unwrap();
            let got = schedule.lr(step);
            assert!(
                (got - want).abs() <= 1e-12 * schedule.peak_lr,
                "{source}, step {step}: {got} vs {want}"
            );
        }
    }
}

#[test]
fn the_two_rules_differ_by_the_warmup_share_at_the_end_of_warmup() {
    // The point: with the run-long decay, the LAMB recipe (warm-up 28.43%, power 0.5)
    // reaches only (1 - 0.2843)^0.5 = 0.846 of the peak; decaying after warm-up gives 1.0.
    let base = Schedule {
        peak_lr: 1.0,
        warmup_steps: 2843,
        total_steps: 10_000,
        power: 0.5,
        decay_over: DecayOver::Run,
    };
    let hf = Schedule {
        decay_over: DecayOver::AfterWarmup,
        ..base.clone()
    };
    assert!((base.lr(2842) - (1.0f64 - 0.2843).sqrt()).abs() < 1e-12);
    assert!((hf.lr(2842) - 1.0).abs() < 1e-12);
}

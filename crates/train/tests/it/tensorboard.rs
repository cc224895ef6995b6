//! TensorBoard event files of a run: every step's and evaluation's scalars, read back with
//! their record framing and CRCs checked, each step once across a resume.

use crate::resume::{config, resume};
use crate::support::{scratch, SERIAL};

use bert_train::{read_events, train, RunOptions, SyntheticData, EVENT_FILE, TB_DIR};

type B = burn::backend::Autodiff<burn::backend::Flex>;

/// The steps of `tag` in the run's event file, with the values' bits.
fn series(run: &std::path::Path, tag: &str) -> Vec<(i64, u32)> {
    read_events(&run.join(TB_DIR).join(EVENT_FILE))
        .unwrap()
        .into_iter()
        .flat_map(|e| {
            e.scalars
                .into_iter()
                .filter(|(t, _)| t == tag)
                .map(move |(_, v)| (e.step, v.to_bits()))
        })
        .collect()
}

#[test]
fn event_files_hold_every_step_once_across_a_resume() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let data = SyntheticData::new(50, 4, 16, 3);
    let device = Default::default();
    let dir = scratch("tb");
    // 6 steps, checkpoints at 4 and 6, evaluations at 3 and 6.
    train::<B>(&config(&dir, 6), &data, &device, &RunOptions::default()).unwrap();
    let events = read_events(&dir.join(TB_DIR).join(EVENT_FILE)).unwrap();
    assert_eq!(events[0].file_version.as_deref(), Some("brain.Event:2"));
    let loss = series(&dir, "train/loss");
    assert_eq!(
        loss.iter().map(|p| p.0).collect::<Vec<_>>(),
        (1..=6).collect::<Vec<_>>()
    );
    let eval = series(&dir, "eval/mlm_loss");
    assert_eq!(eval.iter().map(|p| p.0).collect::<Vec<_>>(), vec![3, 6]);
    for tag in [
        "train/learning_rate",
        "train/grad_norm",
        "train/sequences_per_s",
    ] {
        assert_eq!(series(&dir, tag).len(), 6, "{tag}");
    }
    // Like a run killed after step 6 was logged and before its checkpoint was complete: the
    // resume goes back to step 4 and trains 5 and 6 again.
    std::fs::remove_dir_all(dir.join("checkpoints/step-00000006")).unwrap();
    let summary = resume(&config(&dir, 6), &data);
    assert_eq!(summary.steps_this_run, 2);
    assert_eq!(
        series(&dir, "train/loss"),
        loss,
        "each step once, the same losses"
    );
    assert_eq!(series(&dir, "eval/mlm_loss"), eval);
    let again = read_events(&dir.join(TB_DIR).join(EVENT_FILE)).unwrap();
    assert_eq!(
        again.iter().filter(|e| e.file_version.is_some()).count(),
        1,
        "one version record"
    );
    // Off with a key.
    let off = scratch("tb-off");
    let mut c = config(&off, 3);
    c.train.tensorboard = false;
    train::<B>(&c, &data, &device, &RunOptions::default()).unwrap();
    assert!(!off.join(TB_DIR).exists());
}

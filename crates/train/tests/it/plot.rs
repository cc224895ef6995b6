//! `bert plot`'s renderer: valid PNGs of the right size, with the curves where they belong.

use crate::support;

use std::io::Write;

use bert_train::TrainError;
use bert_train::{plot_run, render_png, PlotOptions, TRAIN_COLOUR};
use bert_train::{EvalRecord, StepRecord};

const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];

fn step(step: u64, steps: u64) -> StepRecord {
    let t = step as f64 / steps as f64;
    let warmup = 30.0;
    let lr = if (step as f64) < warmup {
        1e-4 * step as f64 / warmup
    } else {
        1e-4 * (1.0 - (step as f64 - warmup) / (steps as f64 - warmup))
    };
    // A little deterministic wiggle so that smoothing has something to do.
    let noise = (step.wrapping_mul(2_654_435_761) % 1000) as f64 / 1000.0 - 0.5;
    let mlm_loss = 2.0 + 8.0 * (-4.0 * t).exp() + 0.2 * noise;
    let nsp_loss = 0.3 + 0.4 * (-3.0 * t).exp() + 0.05 * noise;
    StepRecord {
        kind: "train".into(),
        step,
        loss: mlm_loss + nsp_loss,
        mlm_loss,
        nsp_loss: Some(nsp_loss),
        mlm_accuracy: 0.6 * (1.0 - (-4.0 * t).exp()) + 0.02 * noise,
        nsp_accuracy: Some(0.5 + 0.4 * (1.0 - (-3.0 * t).exp()) + 0.05 * noise),
        sop_loss: None,
        sop_accuracy: None,
        fill_rate: None,
        lr,
        grad_norm: 1.0 + noise,
        seq_per_s: 100.0,
        tokens_per_s: 12_800.0,
        elapsed_s: step as f64,
        skipped: false,
        loss_scale: None,
        overflow: false,
        comm_s: None,
        flops_per_s: None,
        mfu: None,
    }
}

fn synthetic(steps: u64) -> (Vec<StepRecord>, Vec<EvalRecord>) {
    let train = (1..=steps).map(|s| step(s, steps)).collect();
    let evals = (1..=5)
        .map(|i| {
            let s = i * steps / 5;
            let t = s as f64 / steps as f64;
            EvalRecord {
                kind: "eval".into(),
                step: s,
                mlm_loss: 2.2 + 8.0 * (-4.0 * t).exp(),
                nsp_loss: Some(0.35 + 0.4 * (-3.0 * t).exp()),
                mlm_accuracy: 0.55 * (1.0 - (-4.0 * t).exp()),
                nsp_accuracy: Some(0.5 + 0.35 * (1.0 - (-3.0 * t).exp())),
                sop_loss: None,
                sop_accuracy: None,
                sequences: 256,
            }
        })
        .collect();
    (train, evals)
}

struct Image {
    width: u32,
    height: u32,
    rgb: Vec<u8>,
}

impl Image {
    fn pixel(&self, x: u32, y: u32) -> [u8; 3] {
        let i = ((y * self.width + x) * 3) as usize;
        [self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]]
    }

    fn count(
        &self,
        xs: std::ops::Range<u32>,
        ys: std::ops::Range<u32>,
        f: impl Fn([u8; 3]) -> bool,
    ) -> usize {
        ys.flat_map(|y| xs.clone().map(move |x| (x, y)))
            .filter(|&(x, y)| f(self.pixel(x, y)))
            .count()
    }
}

fn decode(bytes: &[u8]) -> Image {
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let mut reader = decoder.read_info().expect("a valid PNG header");
    let mut buf = vec![0; reader.output_buffer_size().expect("a sane size")];
    let info = reader.next_frame(&mut buf).expect("valid PNG data");
    assert_eq!(info.color_type, png::ColorType::Rgb);
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    buf.truncate(info.buffer_size());
    Image {
        width: info.width,
        height: info.height,
        rgb: buf,
    }
}

#[test]
fn renders_a_png_with_curves_in_their_panels() {
    let (steps, evals) = synthetic(300);
    let bytes = render_png(&steps, &evals, &PlotOptions::default()).expect("renders");
    assert_eq!(bytes[..8], PNG_SIGNATURE);
    let img = decode(&bytes);
    assert_eq!((img.width, img.height), (1200, 800));

    let not_white = img.count(0..img.width, 0..img.height, |p| p.iter().any(|&c| c < 250));
    let total = (img.width * img.height) as usize;
    assert!(
        not_white > total / 50,
        "only {not_white} of {total} pixels drawn"
    );
    assert!(
        not_white < total / 2,
        "{not_white} of {total} pixels drawn: a filled image?"
    );

    // The smoothed train loss: hundreds of pixels of its exact colour in the top-left panel,
    // far more than its legend swatch alone would give.
    let (half_w, half_h) = (img.width / 2, img.height / 2);
    let in_loss_panel = img.count(0..half_w, 0..half_h, |p| p == TRAIN_COLOUR);
    assert!(
        in_loss_panel > 300,
        "{in_loss_panel} train-loss pixels in the loss panel"
    );
    // And the learning-rate panel (bottom right) has its curve too.
    let in_lr_panel = img.count(half_w..img.width, half_h..img.height, |p| p == TRAIN_COLOUR);
    assert!(
        in_lr_panel > 300,
        "{in_lr_panel} pixels of the learning-rate curve"
    );

    if let Ok(path) = std::env::var("BERT_PLOT_SAMPLE") {
        std::fs::write(&path, &bytes).expect("writing the sample");
    }
}

#[test]
fn honours_the_requested_size_and_smoothing() {
    let (steps, evals) = synthetic(300);
    for (width, height, smoothing) in [(400, 300, 0), (800, 600, 1), (1600, 900, 25)] {
        let options = PlotOptions {
            width,
            height,
            smoothing,
        };
        let img = decode(&render_png(&steps, &evals, &options).expect("renders"));
        assert_eq!((img.width, img.height), (width, height));
    }
    // Automatic: steps / 50 in 1..=100, made odd to stay centred.
    assert_eq!(PlotOptions::default().smoothing_window(300), 7);
    assert_eq!(PlotOptions::default().smoothing_window(250), 5);
    assert_eq!(PlotOptions::default().smoothing_window(10), 1);
    assert_eq!(PlotOptions::default().smoothing_window(1_000_000), 101);
    let none = PlotOptions {
        smoothing: 0,
        ..PlotOptions::default()
    };
    assert_eq!(none.smoothing_window(300), 1);
}

#[test]
fn rejects_sizes_without_room_for_the_panels() {
    let (steps, evals) = synthetic(10);
    let options = PlotOptions {
        width: 100,
        height: 100,
        smoothing: 1,
    };
    assert!(matches!(
        render_png(&steps, &evals, &options),
        Err(TrainError::Plot(_))
    ));
}

#[test]
fn survives_degenerate_data() {
    let options = PlotOptions::default();
    // A single step, no evaluation.
    let one = vec![step(1, 1)];
    decode(&render_png(&one, &[], &options).expect("one point"));

    // Constant series (constant learning rate, loss and accuracies).
    let constant: Vec<StepRecord> = (1..=50)
        .map(|s| StepRecord {
            loss: 3.0,
            mlm_loss: 2.5,
            nsp_loss: Some(0.5),
            mlm_accuracy: 0.0,
            nsp_accuracy: Some(1.0),
            lr: 1e-4,
            ..step(s, 50)
        })
        .collect();
    decode(&render_png(&constant, &[], &options).expect("constant series"));

    // Non-finite values are skipped, including a whole non-finite evaluation.
    let (mut steps, mut evals) = synthetic(100);
    steps[10].loss = f64::NAN;
    steps[11].mlm_loss = f64::INFINITY;
    steps[12].nsp_accuracy = Some(f64::NEG_INFINITY);
    steps[40].skipped = true;
    steps[40].lr = f64::NAN;
    evals[2].mlm_loss = f64::NAN;
    evals[2].nsp_loss = Some(f64::NAN);
    evals[2].mlm_accuracy = f64::NAN;
    evals[2].nsp_accuracy = Some(f64::NAN);
    let img = decode(&render_png(&steps, &evals, &options).expect("non-finite values"));
    let (half_w, half_h) = (img.width / 2, img.height / 2);
    assert!(img.count(0..half_w, 0..half_h, |p| p == TRAIN_COLOUR) > 300);

    // Every value non-finite: empty axes rather than an error.
    let nothing: Vec<StepRecord> = (1..=5)
        .map(|s| StepRecord {
            loss: f64::NAN,
            mlm_loss: f64::NAN,
            nsp_loss: Some(f64::NAN),
            mlm_accuracy: f64::NAN,
            nsp_accuracy: Some(f64::NAN),
            lr: f64::NAN,
            ..step(s, 5)
        })
        .collect();
    decode(&render_png(&nothing, &[], &options).expect("all non-finite"));

    // Large step counts get compact tick labels and still render.
    let (many, evals) = synthetic(20_000);
    decode(&render_png(&many, &evals, &options).expect("20k steps"));
}

#[test]
fn plot_run_writes_the_png() {
    let dir = support::scratch_dir("run");
    let (steps, evals) = synthetic(120);
    let mut file = std::fs::File::create(dir.join("metrics.jsonl")).expect("metrics file");
    for (i, s) in steps.iter().enumerate() {
        writeln!(file, "{}", serde_json::to_string(s).expect("json")).expect("write");
        if let Some(e) = evals.iter().find(|e| e.step == s.step) {
            writeln!(file, "{}", serde_json::to_string(e).expect("json")).expect("write");
        }
        if i == 60 {
            // A torn line, as a killed run leaves, is skipped.
            writeln!(file, "{{\"kind\":\"train\",\"st").expect("write");
        }
    }
    drop(file);

    let out = dir.join("curves.png");
    let summary = plot_run(&dir, &out, &PlotOptions::default()).expect("plots");
    assert_eq!(summary.train_points, 120);
    assert_eq!(summary.eval_points, 5);
    let bytes = std::fs::read(&out).expect("the PNG was written");
    assert_eq!(bytes[..8], PNG_SIGNATURE);
    let img = decode(&bytes);
    assert_eq!((img.width, img.height), (1200, 800));
}

#[test]
fn empty_metrics_is_an_error_naming_the_file() {
    let dir = support::scratch_dir("empty");
    std::fs::write(dir.join("metrics.jsonl"), "").expect("empty metrics");
    let out = dir.join("curves.png");
    let err = plot_run(&dir, &out, &PlotOptions::default()).expect_err("nothing to plot");
    let message = err.to_string();
    assert!(message.contains("no training steps"), "{message}");
    assert!(
        message.contains(&dir.join("metrics.jsonl").display().to_string()),
        "{message}"
    );
    assert!(!out.exists());

    // No metrics file at all: an I/O error naming it.
    let missing = support::scratch_dir("missing");
    let err = plot_run(&missing, &out, &PlotOptions::default()).expect_err("no file");
    assert!(matches!(err, TrainError::Io { .. }), "{err}");
    assert!(err.to_string().contains("metrics.jsonl"), "{err}");
}

#[test]
fn mlm_and_sop_runs_draw_their_own_third_panel() {
    let options = PlotOptions::default();
    let (steps, evals) = synthetic(100);
    // An `mlm` run logs no pair metric but its fill rate, which takes the third panel.
    let mlm: Vec<StepRecord> = steps
        .iter()
        .map(|r| StepRecord {
            loss: r.mlm_loss,
            nsp_loss: None,
            nsp_accuracy: None,
            fill_rate: Some(0.8 + 0.1 * (r.step as f64 / 100.0)),
            ..r.clone()
        })
        .collect();
    let mlm_evals: Vec<EvalRecord> = evals
        .iter()
        .map(|e| EvalRecord {
            nsp_loss: None,
            nsp_accuracy: None,
            ..e.clone()
        })
        .collect();
    let img = decode(&render_png(&mlm, &mlm_evals, &options).expect("an mlm run"));
    let (half_w, half_h) = (img.width / 2, img.height / 2);
    let third = img.count(0..half_w, half_h..img.height, |p| p == TRAIN_COLOUR);
    assert!(third > 300, "fill-rate curve: {third} pixels");
    // An `mlm_sop` run draws its SOP accuracy there, from the train and validation records.
    let sop: Vec<StepRecord> = steps
        .iter()
        .map(|r| StepRecord {
            sop_loss: r.nsp_loss,
            sop_accuracy: r.nsp_accuracy,
            nsp_loss: None,
            nsp_accuracy: None,
            ..r.clone()
        })
        .collect();
    let sop_evals: Vec<EvalRecord> = evals
        .iter()
        .map(|e| EvalRecord {
            sop_loss: e.nsp_loss,
            sop_accuracy: e.nsp_accuracy,
            nsp_loss: None,
            nsp_accuracy: None,
            ..e.clone()
        })
        .collect();
    let img = decode(&render_png(&sop, &sop_evals, &options).expect("an mlm_sop run"));
    let third = img.count(0..half_w, half_h..img.height, |p| p == TRAIN_COLOUR);
    assert!(third > 300, "SOP accuracy curve: {third} pixels");
}

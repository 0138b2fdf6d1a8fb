//! The int8 export (`quant::export`): layer-by-layer and end-to-end
//! agreement with the float network within the export's own error bounds,
//! refusals with their reasons, calibration options, the file writer.

use flappy::FrameStack;
use policy_core::Policy;
use quant::float_model::{
    apply, input_tensor, synthetic_stacks, FloatLayer, FloatModel, LayerShape, Tensor3,
};
use quant::{export, export_to_file, Export, ExportOptions};

fn conv(in_c: usize, out_c: usize, k: usize, stride: usize, pad: usize) -> LayerShape {
    LayerShape {
        layer: netspec::Layer::conv(in_c, out_c, k, stride, pad),
        relu: true,
    }
}

fn pool(k: usize) -> LayerShape {
    LayerShape {
        layer: netspec::Layer::MaxPool { k },
        relu: false,
    }
}

fn dense(inp: usize, out: usize, relu: bool) -> LayerShape {
    LayerShape {
        layer: netspec::Layer::dense(inp, out),
        relu,
    }
}

fn opts_percentile(percentile: f64) -> ExportOptions {
    ExportOptions {
        percentile,
        ..Default::default()
    }
}

/// The error of an export with the default options, which must fail.
fn export_err(model: &FloatModel, calib: &[FrameStack]) -> anyhow::Error {
    export(model, calib, &ExportOptions::default()).unwrap_err()
}

/// Every calibration stack's integer Q-values against the float ones: each
/// error within `bound`; returns the largest error and the largest |q|.
fn q_errors(
    model: &FloatModel,
    ex: &Export,
    calib: &[FrameStack],
    bound: f64,
    what: &str,
) -> (f64, f64) {
    let mut policy = Policy::from_blob(&ex.blob).unwrap();
    let s = policy.output_scale() as f64;
    let (mut max_err, mut max_q) = (0f64, 0f64);
    for stack in calib {
        let qf = model.forward(stack);
        let qi = policy.q_values(stack);
        for a in 0..2 {
            let e = (qi[a] as f64 * s - qf[a] as f64).abs();
            assert!(e <= bound, "{what}err {e} > bound {bound}");
            max_err = max_err.max(e);
            max_q = max_q.max((qf[a] as f64).abs());
        }
    }
    (max_err, max_q)
}

fn dequant(st: &policy_core::StageTrace) -> Tensor3 {
    Tensor3 {
        c: st.shape.0,
        h: st.shape.1,
        w: st.shape.2,
        data: st
            .values
            .iter()
            .map(|&v| (v as f64 * st.scale as f64) as f32)
            .collect(),
    }
}

/// Each stage, fed the integer network's own (dequantized) input, matches
/// the float layer within its rounding bound: weight rounding
/// (`s_w / 2 * sum |x|`), bias rounding (`s_in * s_w / 2`), requantization
/// (one output step plus the multiplier's rounding), f32 slack.
#[test]
fn random_classic_export_matches_float_layer_by_layer() {
    let model = FloatModel::random(&LayerShape::of(&netspec::CLASSIC), 11);
    let stacks = synthetic_stacks(24, 5);
    let ex = export(&model, &stacks, &opts_percentile(100.0)).unwrap();
    let mut policy = Policy::from_blob(&ex.blob).unwrap();
    let stage_layers: Vec<&[FloatLayer]> = vec![
        &model.layers[0..2],
        &model.layers[2..3],
        &model.layers[3..4],
        &model.layers[4..5],
        &model.layers[5..6],
    ];
    let mut mean_err_lsb = [0f64; 5];
    for stack in &stacks {
        let tr = policy.q_values_trace(stack);
        assert_eq!(tr.stages.len(), 5);
        let mut x = input_tensor(stack);
        for (si, layers) in stage_layers.iter().enumerate() {
            let r = &ex.table[si];
            let mut y = x.clone();
            for l in *layers {
                y = apply(l, &y);
            }
            let got = &tr.stages[si];
            assert_eq!((got.shape.0, got.shape.1, got.shape.2), (y.c, y.h, y.w));
            let fan_in = layers[0].shape.layer.fan_in();
            let sum_x: f64 = x.data.iter().map(|v| v.abs() as f64).sum();
            let max_x = x.data.iter().fold(0f32, |m, v| m.max(v.abs())) as f64;
            let s_x = sum_x.min(fan_in as f64 * max_x);
            let last = si == 4;
            let requant = if last {
                0.0
            } else {
                r.out_scale * (1.0 + 1e-3)
            };
            let bound = r.w_scale_range.1 / 2.0 * s_x
                + r.in_scale * r.w_scale_range.1 / 2.0
                + requant
                + 1e-4 * (1.0 + max_x);
            let s = got.scale as f64;
            let mut sum_err = 0.0;
            for (i, (&q, &f)) in got.values.iter().zip(&y.data).enumerate() {
                let f = if last {
                    f as f64
                } else {
                    (f as f64).min(255.0 * r.out_scale)
                };
                let e = (q as f64 * s - f).abs();
                assert!(
                    e <= bound,
                    "stage {si} elem {i}: int {} float {f} err {e} > bound {bound}",
                    q as f64 * s
                );
                sum_err += e;
            }
            mean_err_lsb[si] += sum_err / got.values.len() as f64 / s / stacks.len() as f64;
            x = dequant(got);
        }
    }
    // Rounding errors are mostly well below one output step on average.
    for (si, m) in mean_err_lsb.iter().enumerate().take(4) {
        assert!(*m < 1.0, "stage {si}: mean error {m} steps");
    }
}

/// End to end: the integer Q-values track the float network's.
#[test]
fn random_classic_export_q_values_track_float() {
    let model = FloatModel::random(&LayerShape::of(&netspec::CLASSIC), 12);
    let calib = synthetic_stacks(48, 6);
    let ex = export(&model, &calib, &opts_percentile(100.0)).unwrap();
    let policy = Policy::from_blob(&ex.blob).unwrap();
    let s = policy.output_scale() as f64;
    assert_eq!(s, ex.table[4].out_scale as f32 as f64);
    // The propagated worst-case bound (loose, but a real bound).
    let (max_err, max_q) = q_errors(&model, &ex, &calib, ex.q_error_bound(), "");
    assert!(max_q > 0.0);
    assert!(
        max_err <= 0.05 * max_q,
        "max error {max_err} vs max |q| {max_q}"
    );
    let rms = ex.q_error_rms();
    eprintln!("classic: max err {max_err:.3e}, predicted rms {rms:.3e}");
    assert!(
        max_err <= 5.0 * rms,
        "max error {max_err} vs predicted rms {rms}"
    );
}

#[test]
fn refuses_models_that_can_overflow() {
    let calib = synthetic_stacks(4, 1);
    // conv1: bias so large (in units of s_in * s_w) that |bias| + sum|w| > i32::MAX.
    let mut model = FloatModel::random(&LayerShape::of(&netspec::CLASSIC), 14);
    let conv1 = &mut model.layers[0];
    let wmax = conv1.weight[..256].iter().fold(0f32, |m, v| m.max(v.abs())) as f64;
    conv1.bias[0] = ((i32::MAX as f64 - 1000.0) * wmax / 127.0) as f32;
    let err = export_err(&model, &calib).to_string();
    assert!(err.contains("accumulator"), "{err}");
    // fc1: a bias that does not even fit int32 at its scale.
    let mut model = FloatModel::random(&LayerShape::of(&netspec::CLASSIC), 15);
    let fc1 = &mut model.layers[4];
    fc1.weight[..1600].iter_mut().for_each(|w| *w = 1e-7);
    fc1.bias[0] = 1e3;
    let err = export_err(&model, &calib).to_string();
    assert!(err.contains("does not fit int32"), "{err}");
    let err = export_err(
        &FloatModel::random(&LayerShape::of(&netspec::CLASSIC), 15),
        &[],
    );
    assert!(err.to_string().contains("no calibration"), "{err}");
}

#[test]
fn percentile_calibration_clips_little() {
    let model = FloatModel::random(&LayerShape::of(&netspec::CLASSIC), 16);
    let calib = synthetic_stacks(32, 7);
    // The default (100) maps the largest calibration value to 255: no clipping.
    let ex100 = export(&model, &calib, &ExportOptions::default()).unwrap();
    assert!(ex100.table[..4].iter().all(|r| r.clip_rate == 0.0));
    // 99.9 clips at most the values above that percentile (0.1 %, plus
    // one value of rounding in the rank), and only ever narrows a scale.
    let ex = export(&model, &calib, &opts_percentile(99.9)).unwrap();
    for (r, r100) in ex.table[..4].iter().zip(&ex100.table) {
        assert!(
            r.clip_rate <= 1.0e-3 + 1e-6,
            "{}: clip {}",
            r.name,
            r.clip_rate
        );
        assert!(
            r.out_scale <= r100.out_scale,
            "{}: {} > {}",
            r.name,
            r.out_scale,
            r100.out_scale
        );
    }
    assert!(
        ex.table[..4]
            .iter()
            .zip(&ex100.table)
            .any(|(r, r100)| r.clip_rate > 0.0 && r.out_scale < r100.out_scale),
        "the percentile changed nothing"
    );
    assert_ne!(ex.blob, ex100.blob);
    let t = ex.render_table();
    assert!(t.contains("| 0: conv 8x8/4 p2 4->32 +pool2 |") && t.contains("fc 512->2"));
}

fn shapes_small() -> Vec<LayerShape> {
    vec![
        conv(4, 16, 8, 4, 2),
        pool(2),
        conv(16, 32, 4, 2, 1),
        dense(800, 128, true),
        dense(128, 2, false),
    ]
}

/// Random small networks of several shapes: the integer Q-values agree with
/// the float ones within the export's worst-case bound on every stack of
/// the calibration set (percentile 100, so nothing clips there), and within
/// a few predicted RMS errors.
#[test]
fn random_small_nets_agree_within_predicted_error() {
    let archs: Vec<Vec<LayerShape>> = vec![
        shapes_small(),
        vec![
            conv(4, 8, 8, 4, 0),
            dense(8 * 19 * 19, 32, true),
            dense(32, 2, false),
        ],
        vec![
            conv(4, 8, 4, 4, 0),
            pool(2),
            conv(8, 8, 3, 1, 1),
            conv(8, 12, 2, 2, 0),
            dense(12 * 5 * 5, 16, true),
            dense(16, 16, true),
            dense(16, 2, false),
        ],
    ];
    for (ai, arch) in archs.iter().enumerate() {
        for seed in 0..3u64 {
            let model = FloatModel::random(arch, 100 * ai as u64 + seed);
            let calib = synthetic_stacks(16, seed + 40);
            let ex = export(&model, &calib, &opts_percentile(100.0)).unwrap();
            let bound = ex.q_error_bound();
            assert!(bound.is_finite() && bound > 0.0);
            let what = format!("arch {ai} seed {seed}: ");
            let (max_err, max_q) = q_errors(&model, &ex, &calib, bound, &what);
            // The worst-case bound is loose; the actual error is small
            // against the Q-values' magnitude.
            let rms = ex.q_error_rms();
            eprintln!("arch {ai} seed {seed}: max err {max_err:.3e}, max |q| {max_q:.3e}, bound {bound:.3e}, predicted rms {rms:.3e}");
            // The RMS prediction is tight: the largest of the 32 errors is
            // within a few predicted standard deviations.
            assert!(
                max_err <= 5.0 * rms,
                "arch {ai} seed {seed}: err {max_err} vs predicted rms {rms}"
            );
            assert!(
                max_err <= 0.05 * max_q,
                "arch {ai} seed {seed}: err {max_err} vs |q| {max_q}"
            );
            assert!(ex
                .table
                .iter()
                .all(|r| r.clip_rate == 0.0 && r.acc_bound <= i32::MAX as i64));
            assert_eq!(
                ex.table.len(),
                arch.iter().filter(|l| l.has_params()).count()
            );
            assert!(max_err <= bound);
        }
    }
}

#[test]
fn bad_options_and_models_are_rejected() {
    let model = FloatModel::random(&shapes_small(), 1);
    let calib = synthetic_stacks(2, 1);
    for p in [0.0, -1.0, 100.5, f64::NAN, f64::INFINITY] {
        let e = export(&model, &calib, &opts_percentile(p))
            .unwrap_err()
            .to_string();
        assert!(e.contains("percentile"), "{p}: {e}");
    }
    assert!(export_err(&model, &[]).to_string().contains("calibration"));
    // Wrong parameter size.
    let mut bad = model.clone();
    bad.layers[3].weight.pop();
    assert!(format!("{:#}", export_err(&bad, &calib)).contains("weight"));
    // Non-finite parameter.
    let mut bad = model.clone();
    bad.layers[0].bias[3] = f32::NAN;
    assert!(format!("{:#}", export_err(&bad, &calib)).contains("non-finite"));
    // Shapes that do not chain, and a wrong number of outputs.
    for (i, layer, what) in [
        (3, dense(801, 128, true), "801"),
        (4, dense(128, 3, false), "per action"),
    ] {
        let mut arch = shapes_small();
        arch[i] = layer;
        let m = FloatModel::random(&arch, 2);
        assert!(format!("{:#}", export_err(&m, &calib)).contains(what));
    }
    // ReLU on the last layer; a pool that does not follow a conv.
    let mut arch = shapes_small();
    arch[4] = dense(128, 2, true);
    let e = format!("{:#}", export_err(&FloatModel::random(&arch, 2), &calib));
    assert!(e.contains("ReLU"), "{e}");
    let arch = vec![
        conv(4, 8, 4, 4, 0),
        pool(2),
        pool(2),
        dense(8 * 5 * 5, 2, false),
    ];
    let e = export_err(&FloatModel::random(&arch, 2), &calib);
    assert!(e.to_string().contains("MaxPool"), "{e}");
    // A conv after the capacity of policy-core's buffers is a clean error too.
    let arch = vec![conv(4, 8, 2, 1, 0), dense(8 * 79 * 79, 2, false)];
    let e = format!("{:#}", export_err(&FloatModel::random(&arch, 3), &calib));
    assert!(e.contains("working memory"), "{e}");
}

#[test]
fn export_to_file_writes_the_blob_atomically() {
    let dir = std::env::temp_dir().join(format!("quant-export-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = dir.join("sub").join("policy.bin");
    let model = FloatModel::random(&shapes_small(), 3);
    let calib = synthetic_stacks(4, 3);
    let ex = export_to_file(&model, &calib, &ExportOptions::default(), &out).unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), ex.blob);
    // Overwrites, and leaves no temporary file behind.
    let ex2 = export_to_file(
        &FloatModel::random(&shapes_small(), 4),
        &calib,
        &ExportOptions::default(),
        &out,
    )
    .unwrap();
    assert_ne!(ex.blob, ex2.blob);
    assert_eq!(std::fs::read(&out).unwrap(), ex2.blob);
    let names: Vec<_> = std::fs::read_dir(out.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("policy.bin")]);
    // A failed export writes nothing.
    let out2 = dir.join("none.bin");
    assert!(export_to_file(&model, &[], &ExportOptions::default(), &out2).is_err());
    assert!(!out2.exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The calibration's subsample and its thread count change nothing: the
/// same options give the same blob, a subsample of 10 the blob of those 10
/// stacks, and 1, 2, 3 or 7 threads (and all cores) the same blob.
#[test]
fn calibration_subsample_and_threads_are_deterministic() {
    let model = FloatModel::random(&shapes_small(), 5);
    let calib = synthetic_stacks(40, 5);
    let with = |calib: &[FrameStack], max_calib_stacks, threads| {
        let opts = ExportOptions {
            max_calib_stacks,
            threads,
            ..Default::default()
        };
        export(&model, calib, &opts).unwrap()
    };
    let a = with(&calib, 10, 0);
    let b = with(&calib, 10, 0);
    assert_eq!(a.blob, b.blob);
    let picked: Vec<_> = (0..10).map(|i| calib[i * 4]).collect();
    let c = with(&picked, 0, 0);
    assert_eq!(a.blob, c.blob);
    let all = with(&calib, 0, 1);
    for threads in [2, 3, 7, 0] {
        let t = with(&calib, 0, threads);
        assert_eq!(t.blob, all.blob, "{threads} threads");
        assert_eq!(t.table, all.table, "{threads} threads");
    }
    assert_ne!(all.blob, a.blob, "40 stacks calibrate as 10 do?");
}

/// Given activation steps replace the calibrated ones: the calibrated steps
/// handed back give the same blob; other steps are used as given (or raised
/// to the accumulator's step); a missing or bad step is refused.
#[test]
fn given_activation_steps_replace_the_calibration() {
    let model = FloatModel::random(&shapes_small(), 9);
    let calib = synthetic_stacks(40, 9);
    let plain = export(&model, &calib, &ExportOptions::default()).unwrap();
    let hidden = &plain.table[..plain.table.len() - 1];
    let mut steps = vec![0f64; model.layers.len()];
    for r in hidden {
        steps[r.layer] = r.out_scale;
    }
    let with = |steps: &[f64]| {
        let opts = ExportOptions {
            act_steps: Some(steps.to_vec()),
            ..ExportOptions::default()
        };
        export(&model, &calib, &opts)
    };
    let same = with(&steps).unwrap();
    assert_eq!(same.blob, plain.blob, "the calibrated steps handed back");
    let coarse: Vec<f64> = steps.iter().map(|s| s * 1.5).collect();
    let ex = with(&coarse).unwrap();
    for (r, p) in ex.table.iter().zip(hidden) {
        assert!(
            (r.out_scale / (p.out_scale * 1.5) - 1.0).abs() < 1e-12,
            "{}: {} is not the given step",
            r.name,
            r.out_scale
        );
    }
    assert_ne!(ex.blob, plain.blob);
    let tiny: Vec<f64> = steps.iter().map(|s| s * 1e-3).collect();
    let ex = with(&tiny).unwrap();
    let mut raised = 0;
    for r in &ex.table[..ex.table.len() - 1] {
        let given = tiny[r.layer];
        let s_acc = r.in_scale * r.w_scale_range.1;
        assert!(
            r.out_scale >= s_acc,
            "{}: step {} finer than the accumulator's {s_acc}",
            r.name,
            r.out_scale
        );
        raised += usize::from(r.out_scale > given);
    }
    assert!(raised > 0, "no step was finer than its accumulator's");
    let mut missing = steps.clone();
    missing[hidden[1].layer] = 0.0;
    let e = with(&missing).unwrap_err().to_string();
    assert!(e.contains("no activation step"), "{e}");
    assert!(with(&steps[..1]).is_err(), "too few steps");
    assert!(with(&[f64::NAN; 8]).is_err(), "a NaN step");
}

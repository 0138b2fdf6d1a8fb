//! The parity report: Markdown tables and a histogram of the Q errors.

use crate::{ClosedLoop, FrameParity, Verdict};
use anyhow::Result;
use plotters::prelude::*;
use std::fmt::Write;
use std::path::Path;

/// The Markdown report (the histogram is referenced as `hist_name` next to it).
pub fn markdown(
    f: &FrameParity,
    c: Option<&ClosedLoop>,
    v: &Verdict,
    hist_name: Option<&str>,
) -> String {
    let mut s = String::from("# Parity: int8 policy-core vs float network\n\n");
    writeln!(s, "**{}**\n", if v.pass() { "PASS" } else { "FAIL" }).unwrap();
    for fail in &v.failures {
        writeln!(s, "- {fail}").unwrap();
    }
    s.push_str("\n## Recorded frames\n\n| measure | value |\n|---|---:|\n");
    writeln!(s, "| frame stacks | {} |", f.frames).unwrap();
    writeln!(
        s,
        "| action agreement, all frames | {:.4}% |",
        100.0 * f.agreement
    )
    .unwrap();
    writeln!(s, "| agreement where float margin > {:.1} % of the range, not a near-tie ({} frames) | {:.4}% |",
        100.0 * crate::TIE_FRAC,
        f.frames_non_tie,
        100.0 * f.agreement_non_tie
    ).unwrap();
    writeln!(
        s,
        "| agreement where float margin > {:.4} ({} frames) | {:.4}% |",
        f.margin,
        f.frames_above_margin,
        100.0 * f.agreement_above_margin
    )
    .unwrap();
    writeln!(s, "| float Q range | {:.4} |", f.q_range).unwrap();
    writeln!(s, "| max abs Q error / range | {:.5} |", f.max_q_err_rel).unwrap();
    writeln!(s, "| mean abs Q error / range | {:.5} |", f.mean_q_err_rel).unwrap();
    s.push_str("\n## Layer by layer\n\n| stage | shape | cosine | max abs error | max abs float | int step |\n|---:|---|---:|---:|---:|---:|\n");
    for l in &f.layers {
        writeln!(
            s,
            "| {} | {}x{}x{} | {:.6} | {:.4} | {:.4} | {:.3e} |",
            l.stage,
            l.shape.0,
            l.shape.1,
            l.shape.2,
            l.cosine,
            l.max_abs_err,
            l.max_abs_float,
            l.scale
        )
        .unwrap();
    }
    if let Some(c) = c {
        writeln!(s, "\n## Closed loop\n\n{} episodes per policy, score cap {}.\n\n| policy | mean score | scores |\n|---|---:|---|",
            c.episodes, c.max_score
        ).unwrap();
        writeln!(
            s,
            "| float (tch) | {:.2} | {:?} |",
            c.float_mean_score, c.float_scores
        )
        .unwrap();
        writeln!(
            s,
            "| int8 (policy-core) | {:.2} | {:?} |",
            c.int_mean_score, c.int_scores
        )
        .unwrap();
        let p = c.paired();
        writeln!(s, "\nPaired over the {} seeds: mean difference int8 - float {:.2} pipes (sd {:.2}), one-sided 95 % upper bound {:.2} \
             (the check fails when that bound is below 0: int8 shown worse). These games detect a loss of {:.1} % of the float mean \
             with 80 % power (the full check asks for {:.0} % or less).",
            p.games,
            p.mean_diff,
            p.sd_diff,
            p.upper_95,
            100.0 * p.detectable_loss,
            100.0 * crate::Verdict::MAX_DETECTABLE_LOSS
        ).unwrap();
        match c.first_divergence {
            Some((e, st)) => {
                writeln!(s, "\nFirst differing action: episode {e}, step {st}.").unwrap()
            }
            None => s.push_str("\nThe two policies never chose differently.\n"),
        }
    }
    if let Some(h) = hist_name {
        writeln!(s, "\n## Q error histogram\n\n![Q errors]({h})").unwrap();
    }
    s
}

/// Draws a histogram of `Q_int - Q_float` to `path`.
pub fn histogram(f: &FrameParity, path: &Path) -> Result<()> {
    trainer::metrics::ensure_font()?;
    let err = |e: &dyn std::fmt::Display| anyhow::anyhow!("plotting {}: {e}", path.display());
    let m = f.q_errors.iter().map(|e| e.abs()).fold(1e-9, f64::max);
    const BINS: usize = 41;
    let mut counts = [0u32; BINS];
    for e in &f.q_errors {
        let b = (((e / m) + 1.0) / 2.0 * (BINS - 1) as f64).round() as usize;
        counts[b.min(BINS - 1)] += 1;
    }
    let top = counts.iter().copied().max().unwrap_or(1).max(1);
    let root = BitMapBackend::new(path, (800, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption("int8 - float Q-value error", ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(50)
        .build_cartesian_2d(-m * 1.05..m * 1.05, 0u32..top + top / 10 + 1)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("Q_int * scale - Q_float")
        .y_desc("count")
        .draw()
        .map_err(|e| err(&e))?;
    let w = 2.0 * m / (BINS - 1) as f64;
    chart
        .draw_series(counts.iter().enumerate().map(|(i, &c)| {
            let x = -m + i as f64 * w;
            Rectangle::new([(x - w / 2.0, 0), (x + w / 2.0, c)], BLUE.mix(0.6).filled())
        }))
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

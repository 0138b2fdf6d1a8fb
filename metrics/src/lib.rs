//! `metrics.csv` (one row per logging interval) and the learning curve
//! `curve.png` drawn from it with plotters. Both are rewritten atomically.

use anyhow::{bail, Context, Result};
use atomic::write_atomic;
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

/// The CSV header, in column order.
pub const HEADER: &str = "step,episodes,mean_score,eval_mean,eval_median,eval_min,eval_max,loss,epsilon,lr,env_steps_per_s,updates_per_s,minutes";
/// The header of the first format (no evaluation spread, no learning rate),
/// still read so that older runs resume.
const HEADER_V1: &str =
    "step,episodes,mean_score,eval_mean,loss,epsilon,env_steps_per_s,updates_per_s,minutes";

/// One greedy evaluation's spread, in pipes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EvalSpread {
    /// Mean score.
    pub mean: f64,
    /// Median score.
    pub median: f64,
    /// Lowest score.
    pub min: f64,
    /// Highest score.
    pub max: f64,
}

/// One logging interval, or one greedy evaluation.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricRow {
    /// Environment steps so far (all games together).
    pub step: u64,
    /// Episodes finished so far.
    pub episodes: u64,
    /// Mean score of the last 100 training episodes (with exploration).
    pub mean_score: f64,
    /// The greedy evaluation made at this step (only on evaluation rows).
    pub eval: Option<EvalSpread>,
    /// Latest Huber loss (NaN before learning starts).
    pub loss: f64,
    /// Exploration rate.
    pub epsilon: f64,
    /// Learning rate.
    pub lr: f64,
    /// Environment steps per second over the interval.
    pub env_steps_per_s: f64,
    /// Gradient updates per second over the interval.
    pub updates_per_s: f64,
    /// Training minutes so far.
    pub minutes: f64,
}

/// All rows of a run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Metrics {
    /// Rows in step order.
    pub rows: Vec<MetricRow>,
}

impl Metrics {
    /// The CSV text (evaluation columns are `NaN` on rows without one).
    pub fn to_csv(&self) -> String {
        let mut s = String::from(HEADER);
        s.push('\n');
        for r in &self.rows {
            let e = r.eval.unwrap_or(EvalSpread {
                mean: f64::NAN,
                median: f64::NAN,
                min: f64::NAN,
                max: f64::NAN,
            });
            s.push_str(&format!(
                "{},{},{:.3},{:.3},{:.1},{:.0},{:.0},{:.6},{:.4},{:.3e},{:.1},{:.2},{:.2}\n",
                r.step,
                r.episodes,
                r.mean_score,
                e.mean,
                e.median,
                e.min,
                e.max,
                r.loss,
                r.epsilon,
                r.lr,
                r.env_steps_per_s,
                r.updates_per_s,
                r.minutes
            ));
        }
        s
    }

    /// Parses CSV text written by [`Metrics::to_csv`] (or by the first format).
    pub fn from_csv(text: &str) -> Result<Metrics> {
        let mut lines = text.lines();
        let v1 = match lines.next() {
            Some(HEADER) => false,
            Some(HEADER_V1) => true,
            _ => bail!("not a metrics file (expected the header `{HEADER}`)"),
        };
        let fields = if v1 { 9 } else { 13 };
        let mut rows = Vec::new();
        for (i, line) in lines.enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let f: Vec<&str> = line.split(',').collect();
            if f.len() != fields {
                bail!(
                    "metrics line {}: expected {fields} fields, found {}",
                    i + 2,
                    f.len()
                );
            }
            let num = |k: usize| -> Result<f64> {
                f[k].parse::<f64>()
                    .with_context(|| format!("metrics line {}: bad number `{}`", i + 2, f[k]))
            };
            let spread = |k: usize| -> Result<Option<EvalSpread>> {
                let mean = num(k)?;
                Ok(mean.is_finite().then_some(EvalSpread {
                    mean,
                    median: num(k + 1)?,
                    min: num(k + 2)?,
                    max: num(k + 3)?,
                }))
            };
            rows.push(if v1 {
                let mean = num(3)?;
                MetricRow {
                    step: num(0)? as u64,
                    episodes: num(1)? as u64,
                    mean_score: num(2)?,
                    eval: mean.is_finite().then_some(EvalSpread {
                        mean,
                        median: f64::NAN,
                        min: f64::NAN,
                        max: f64::NAN,
                    }),
                    loss: num(4)?,
                    epsilon: num(5)?,
                    lr: f64::NAN,
                    env_steps_per_s: num(6)?,
                    updates_per_s: num(7)?,
                    minutes: num(8)?,
                }
            } else {
                MetricRow {
                    step: num(0)? as u64,
                    episodes: num(1)? as u64,
                    mean_score: num(2)?,
                    eval: spread(3)?,
                    loss: num(7)?,
                    epsilon: num(8)?,
                    lr: num(9)?,
                    env_steps_per_s: num(10)?,
                    updates_per_s: num(11)?,
                    minutes: num(12)?,
                }
            });
        }
        Ok(Metrics { rows })
    }

    /// The evaluation rows: `(minutes, spread)`.
    pub fn evals(&self) -> Vec<(f64, EvalSpread)> {
        self.eval_rows().map(|(r, e)| (r.minutes, e)).collect()
    }

    /// The evaluation rows with their spread (the row says the environment
    /// steps and minutes).
    pub fn eval_rows(&self) -> impl Iterator<Item = (&MetricRow, EvalSpread)> {
        self.rows.iter().filter_map(|r| r.eval.map(|e| (r, e)))
    }

    /// Reads `path`; a missing file is an empty history.
    pub fn load(path: &Path) -> Result<Metrics> {
        match std::fs::read_to_string(path) {
            Ok(t) => Metrics::from_csv(&t).with_context(|| format!("in {}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Metrics::default()),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Writes `metrics.csv` and `curve.png` into `run_dir`.
    pub fn save(&self, run_dir: &Path) -> Result<()> {
        write_atomic(&run_dir.join("metrics.csv"), self.to_csv().as_bytes())?;
        if self.rows.len() >= 2 {
            match atomic::write_atomic_with(&run_dir.join("curve.png"), |tmp| plot(self, tmp)) {
                Ok(()) => {}
                // A missing font must not stop a training run: say it once.
                Err(e) => {
                    static WARNED: std::sync::Once = std::sync::Once::new();
                    WARNED.call_once(|| eprintln!("warning: no curve.png: {e:#}"));
                }
            }
        }
        Ok(())
    }
}

/// Where the plots' font is looked for (Debian's `fonts-dejavu-core`, which
/// `make setup` installs).
pub const FONT_PATHS: [&str; 2] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
];

/// Registers the plot font with plotters once.
pub fn ensure_font() -> Result<()> {
    static FONT: std::sync::OnceLock<std::result::Result<(), String>> = std::sync::OnceLock::new();
    FONT.get_or_init(|| {
        let bytes = FONT_PATHS
            .iter()
            .find_map(|p| std::fs::read(p).ok())
            .ok_or_else(|| {
                format!("no plot font: install fonts-dejavu-core (looked in {FONT_PATHS:?})")
            })?;
        plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            Box::leak(bytes.into_boxed_slice()),
        )
        .map_err(|_| "the DejaVu font file is not a valid font".to_string())
    })
    .clone()
    .map_err(|e| anyhow::anyhow!(e))
}

/// A plot's error, naming the file.
type PlotErr<'e> = &'e dyn Fn(&dyn std::fmt::Display) -> anyhow::Error;

/// A chart of values against x (training minutes or environment steps).
type XyChart<'a, 'b> =
    ChartContext<'a, BitMapBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// The x axis of the plots against the training clock.
const MINUTES: &str = "training minutes";

/// A chart on `area` (with an optional `(caption, font size)`): `x_desc`
/// on x over `0..x_max` (training minutes, unless the caller says
/// otherwise), `y_desc` on y over `0..y_max`, mesh drawn.
fn xy_chart<'a, 'b>(
    area: &'a DrawingArea<BitMapBackend<'b>, Shift>,
    caption: Option<(&str, u32)>,
    y_label_size: u32,
    (x_max, y_max): (f64, f64),
    (x_desc, y_desc): (&str, &str),
    err: PlotErr,
) -> Result<XyChart<'a, 'b>> {
    let mut builder = ChartBuilder::on(area);
    if let Some((text, size)) = caption {
        builder.caption(text, ("sans-serif", size));
    }
    let mut chart = builder
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(y_label_size)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .draw()
        .map_err(|e| err(&e))?;
    Ok(chart)
}

/// The series labels at `at`, on white of opacity `opacity`.
fn draw_legend<'a, 'b: 'a>(
    chart: &mut XyChart<'a, 'b>,
    (at, opacity): (SeriesLabelPosition, f64),
    err: PlotErr,
) -> Result<()> {
    chart
        .configure_series_labels()
        .position(at)
        .background_style(WHITE.mix(opacity))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(&e))?;
    Ok(())
}

/// Draws the learning curve against training minutes: the training mean
/// score, and each greedy evaluation where it happened as its median (dot),
/// mean (cross) and min..max range (bar) (top); the loss (bottom).
pub fn plot(m: &Metrics, path: &Path) -> Result<()> {
    ensure_font()?;
    let root = BitMapBackend::new(path, (900, 640)).into_drawing_area();
    let err = |e: &dyn std::fmt::Display| anyhow::anyhow!("plotting {}: {e}", path.display());
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let (top, bottom) = root.split_vertically(440);
    let x_max = m.rows.iter().map(|r| r.minutes).fold(0.1, f64::max);
    let finite = |v: f64| v.is_finite();
    let evals = m.evals();
    let y_max = m
        .rows
        .iter()
        .map(|r| r.mean_score)
        .chain(evals.iter().flat_map(|(_, e)| [e.mean, e.max]))
        .filter(|v| finite(*v))
        .fold(1.0, f64::max)
        * 1.05;
    let caption = ("Flappy Bird DQN: score (pipes)", 22);
    let mut chart = xy_chart(
        &top,
        Some(caption),
        50,
        (x_max, y_max),
        (MINUTES, "score"),
        &err,
    )?;
    let train: Vec<(f64, f64)> = m.rows.iter().map(|r| (r.minutes, r.mean_score)).collect();
    chart
        .draw_series(LineSeries::new(train, BLUE.stroke_width(2)))
        .map_err(|e| err(&e))?
        .label("training episodes (last 100, with exploration)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE.stroke_width(2)));
    let spread: Vec<(f64, EvalSpread)> = evals
        .iter()
        .copied()
        .filter(|(_, e)| finite(e.min) && finite(e.max))
        .collect();
    chart
        .draw_series(spread.iter().map(|&(t, e)| {
            ErrorBar::new_vertical(t, e.min, e.median, e.max, RED.mix(0.6).stroke_width(2), 8)
        }))
        .map_err(|e| err(&e))?
        .label("greedy evaluation: min..max, median")
        .legend(|(x, y)| {
            PathElement::new(vec![(x + 10, y - 6), (x + 10, y + 6)], RED.stroke_width(2))
        });
    chart
        .draw_series(
            evals
                .iter()
                .filter(|(_, e)| finite(e.median))
                .map(|&(t, e)| Circle::new((t, e.median), 4, RED.filled())),
        )
        .map_err(|e| err(&e))?;
    chart
        .draw_series(
            evals
                .iter()
                .map(|&(t, e)| Cross::new((t, e.mean), 5, BLACK.stroke_width(2))),
        )
        .map_err(|e| err(&e))?
        .label("greedy evaluation mean")
        .legend(|(x, y)| Cross::new((x + 10, y), 5, BLACK.stroke_width(2)));
    draw_legend(&mut chart, (SeriesLabelPosition::UpperLeft, 0.8), &err)?;

    let losses: Vec<(f64, f64)> = m
        .rows
        .iter()
        .filter(|r| finite(r.loss))
        .map(|r| (r.minutes, r.loss))
        .collect();
    let l_max = losses.iter().map(|p| p.1).fold(1e-6, f64::max) * 1.05;
    let mut chart = xy_chart(
        &bottom,
        None,
        50,
        (x_max, l_max),
        (MINUTES, "Huber loss"),
        &err,
    )?;
    chart
        .draw_series(LineSeries::new(losses, GREEN.stroke_width(1)))
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

/// Time to score: for each `(name, metrics)`, the greedy evaluations'
/// median (line and dots) and min..max (bars) against training minutes.
pub fn plot_time_to_score(runs: &[(String, Metrics)], path: &Path) -> Result<()> {
    ensure_font()?;
    let root = BitMapBackend::new(path, (900, 480)).into_drawing_area();
    let err = |e: &dyn std::fmt::Display| anyhow::anyhow!("plotting {}: {e}", path.display());
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let all: Vec<(f64, EvalSpread)> = runs.iter().flat_map(|(_, m)| m.evals()).collect();
    let x_max = all.iter().map(|(t, _)| *t).fold(1.0, f64::max) * 1.02;
    let y_max = all
        .iter()
        .flat_map(|(_, e)| [e.max, e.median])
        .filter(|v| v.is_finite())
        .fold(1.0, f64::max)
        * 1.05;
    let caption = (
        "Time to score: greedy evaluation median (bars: min..max)",
        20,
    );
    let mut chart = xy_chart(
        &root,
        Some(caption),
        55,
        (x_max, y_max),
        (MINUTES, "pipes"),
        &err,
    )?;
    let palette = [RED, BLUE, GREEN, MAGENTA, CYAN, BLACK];
    for (k, (name, m)) in runs.iter().enumerate() {
        let color = palette[k % palette.len()];
        let evals = m.evals();
        let median: Vec<(f64, f64)> = evals
            .iter()
            .filter(|(_, e)| e.median.is_finite())
            .map(|(t, e)| (*t, e.median))
            .collect();
        chart
            .draw_series(LineSeries::new(median.clone(), color.stroke_width(2)))
            .map_err(|e| err(&e))?
            .label(name.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart
            .draw_series(median.iter().map(|&p| Circle::new(p, 3, color.filled())))
            .map_err(|e| err(&e))?;
        chart
            .draw_series(
                evals
                    .iter()
                    .filter(|(_, e)| e.min.is_finite() && e.max.is_finite())
                    .map(|&(t, e)| {
                        ErrorBar::new_vertical(t, e.min, e.median, e.max, color.mix(0.4), 6)
                    }),
            )
            .map_err(|e| err(&e))?;
    }
    draw_legend(&mut chart, (SeriesLabelPosition::UpperLeft, 0.8), &err)?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

/// One curve of [`plot_seed_spread`]: a name and `(x, value)` points in
/// order of `x` (training minutes, or environment steps).
pub type Curve = (String, Vec<(f64, f64)>);

/// The value of `curve` at `t` by linear interpolation (None outside it).
pub fn interpolate(curve: &[(f64, f64)], t: f64) -> Option<f64> {
    let first = curve.first()?;
    if t < first.0 {
        return None;
    }
    for w in curve.windows(2) {
        let ((t0, v0), (t1, v1)) = (w[0], w[1]);
        if t >= t0 && t <= t1 {
            let f = if t1 > t0 { (t - t0) / (t1 - t0) } else { 1.0 };
            return Some(v0 + f * (v1 - v0));
        }
    }
    curve.last().filter(|l| (l.0 - t).abs() < 1e-9).map(|l| l.1)
}

/// One point of the spread across runs: `x`, and the lowest, median and
/// highest of the runs' values there.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SpreadPoint {
    /// Where (training minutes, or environment steps).
    pub x: f64,
    /// The lowest run's value.
    pub lo: f64,
    /// The median of the runs' values.
    pub median: f64,
    /// The highest run's value.
    pub hi: f64,
}

/// The spread of `curves` on `points` evenly spaced x values from 0 to
/// `x_max`, only where **every** curve has a point on both sides (at least
/// two curves): past the end of the shortest run a median of the runs left
/// would be another statistic (a study whose runs shared the CPU unevenly
/// has curves of unequal length in minutes).
///
/// ```
/// use metrics::seed_spread;
/// let a = ("a".to_string(), vec![(0.0, 0.0), (10.0, 100.0)]);
/// let b = ("b".to_string(), vec![(0.0, 50.0), (20.0, 50.0)]);
/// let s = seed_spread(&[a, b], 20.0, 4);
/// assert_eq!(s.len(), 3); // x = 0, 5, 10: past 10 only one run is left
/// assert_eq!((s[1].lo, s[1].median, s[1].hi), (50.0, 50.0, 50.0));
/// assert_eq!((s[2].lo, s[2].hi), (50.0, 100.0));
/// ```
pub fn seed_spread(curves: &[Curve], x_max: f64, points: usize) -> Vec<SpreadPoint> {
    if curves.len() < 2 || points == 0 {
        return Vec::new();
    }
    (0..=points)
        .filter_map(|k| {
            let x = x_max * k as f64 / points as f64;
            let mut vals = curves
                .iter()
                .map(|(_, c)| interpolate(c, x))
                .collect::<Option<Vec<f64>>>()?;
            vals.sort_by(f64::total_cmp);
            let n = vals.len();
            let median = if n % 2 == 1 {
                vals[n / 2]
            } else {
                (vals[n / 2 - 1] + vals[n / 2]) / 2.0
            };
            Some(SpreadPoint {
                x,
                lo: vals[0],
                median,
                hi: vals[n - 1],
            })
        })
        .collect()
}

/// Several runs of one recipe (one per seed): each run's curve as a thin
/// line, and the median across runs (bold) and their min..max (shaded)
/// where every run has a point ([`seed_spread`]). `x_desc` names the x
/// axis; `cap` draws a dashed line (the score cap), when above 0.
pub fn plot_seed_spread(
    curves: &[Curve],
    title: &str,
    (x_desc, y_desc): (&str, &str),
    cap: f64,
    path: &Path,
) -> Result<()> {
    ensure_font()?;
    let root = BitMapBackend::new(path, (900, 480)).into_drawing_area();
    let err = |e: &dyn std::fmt::Display| anyhow::anyhow!("plotting {}: {e}", path.display());
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let x_max = curves
        .iter()
        .flat_map(|(_, c)| c.iter().map(|p| p.0))
        .fold(f64::MIN_POSITIVE, f64::max)
        * 1.02;
    let y_max = curves
        .iter()
        .flat_map(|(_, c)| c.iter().map(|p| p.1))
        .chain([cap])
        .filter(|v| v.is_finite())
        .fold(1.0, f64::max)
        * 1.08;
    let mut chart = xy_chart(
        &root,
        Some((title, 20)),
        55,
        (x_max, y_max),
        (x_desc, y_desc),
        &err,
    )?;
    let spread = seed_spread(curves, x_max, 400);
    if !spread.is_empty() {
        let polygon: Vec<(f64, f64)> = spread
            .iter()
            .map(|p| (p.x, p.hi))
            .chain(spread.iter().rev().map(|p| (p.x, p.lo)))
            .collect();
        chart
            .draw_series(std::iter::once(Polygon::new(polygon, BLUE.mix(0.12))))
            .map_err(|e| err(&e))?
            .label("min..max across seeds")
            .legend(|(x, y)| {
                Rectangle::new([(x, y - 5), (x + 20, y + 5)], BLUE.mix(0.12).filled())
            });
        chart
            .draw_series(LineSeries::new(
                spread.iter().map(|p| (p.x, p.median)),
                BLACK.stroke_width(3),
            ))
            .map_err(|e| err(&e))?
            .label("median across seeds")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.stroke_width(3)));
    }
    let palette = [
        RED,
        BLUE,
        GREEN,
        MAGENTA,
        CYAN,
        RGBColor(230, 140, 0),
        RGBColor(120, 70, 20),
    ];
    for (k, (name, c)) in curves.iter().enumerate() {
        let color = palette[k % palette.len()];
        chart
            .draw_series(LineSeries::new(c.clone(), color.mix(0.8).stroke_width(1)))
            .map_err(|e| err(&e))?
            .label(name.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(1))
            });
    }
    if cap > 0.0 {
        chart
            .draw_series(DashedLineSeries::new(
                vec![(0.0, cap), (x_max, cap)],
                6,
                4,
                BLACK.mix(0.5).stroke_width(1),
            ))
            .map_err(|e| err(&e))?;
    }
    draw_legend(&mut chart, (SeriesLabelPosition::LowerRight, 0.85), &err)?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(step: u64) -> MetricRow {
        MetricRow {
            step,
            episodes: step / 10,
            mean_score: step as f64 / 1000.0,
            eval: step.is_multiple_of(10_000).then_some(EvalSpread {
                mean: 7.5,
                median: 6.0,
                min: 1.0,
                max: 20.0,
            }),
            loss: 0.01,
            epsilon: 0.1,
            lr: 1e-4,
            env_steps_per_s: 1000.0,
            updates_per_s: 50.0,
            minutes: step as f64 / 5e3,
        }
    }

    #[test]
    fn csv_round_trip_and_plot() {
        let m = Metrics {
            rows: vec![row(5000), row(10000), row(15000)],
        };
        let back = Metrics::from_csv(&m.to_csv()).unwrap();
        assert_eq!(back.rows.len(), 3);
        assert_eq!(back.rows[2].step, 15000);
        assert_eq!(back, m, "every field survives the CSV");
        assert_eq!(back.rows[0].eval, None);
        assert_eq!(back.evals().len(), 1);
        let dir = std::env::temp_dir().join(format!("metrics-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        m.save(&dir).unwrap();
        let png = std::fs::read(dir.join("curve.png")).unwrap();
        assert_eq!(&png[1..4], b"PNG");
        let tts = dir.join("tts.png");
        plot_time_to_score(&[("a".into(), m.clone()), ("b".into(), back)], &tts).unwrap();
        assert_eq!(&std::fs::read(&tts).unwrap()[1..4], b"PNG");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn curves_interpolate_and_the_spread_plots() {
        let a = vec![(0.0, 0.0), (10.0, 100.0), (20.0, 50.0)];
        assert_eq!(interpolate(&a, 5.0), Some(50.0));
        assert_eq!(interpolate(&a, 15.0), Some(75.0));
        assert_eq!(interpolate(&a, 20.0), Some(50.0));
        assert_eq!(interpolate(&a, 21.0), None);
        assert_eq!(interpolate(&a, -1.0), None);
        assert_eq!(interpolate(&[], 1.0), None);
        let dir = std::env::temp_dir().join(format!("metrics-spread-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("spread.png");
        let b = vec![(1.0, 10.0), (12.0, 1000.0)];
        let curves = [("1".to_string(), a), ("2".to_string(), b)];
        // Only where both runs have points: x from 1 to 12.
        let spread = seed_spread(&curves, 20.0, 20);
        let xs: Vec<f64> = spread.iter().map(|p| p.x).collect();
        assert_eq!(xs, (1..=12).map(f64::from).collect::<Vec<_>>());
        let at5 = spread[4];
        assert_eq!((at5.x, at5.lo, at5.hi), (5.0, 50.0, 370.0));
        assert_eq!(at5.median, 210.0);
        assert!(seed_spread(&curves[..1], 20.0, 20).is_empty());
        plot_seed_spread(&curves, "t", ("training minutes", "pipes"), 1000.0, &p).unwrap();
        assert_eq!(&std::fs::read(&p).unwrap()[1..4], b"PNG");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_metrics_files_are_errors() {
        assert!(Metrics::from_csv("a,b\n1,2").is_err());
        let e = Metrics::from_csv(&format!("{HEADER}\n1,2,3"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("expected 13 fields"), "{e}");
        let e = Metrics::from_csv(&format!("{HEADER}\n1,2,x,4,5,6,7,8,9,10,11,12,13"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("bad number"), "{e}");
    }

    #[test]
    fn first_format_files_still_load() {
        let text = format!("{HEADER_V1}\n5000,50,1.500,NaN,0.1,0.1,100.0,20.00,1.00\n10000,90,2.000,3.500,0.1,0.1,100.0,20.00,2.00\n");
        let m = Metrics::from_csv(&text).unwrap();
        assert_eq!(m.rows.len(), 2);
        assert_eq!(m.rows[0].eval, None);
        assert_eq!(m.rows[1].eval.map(|e| e.mean), Some(3.5));
    }
}

//! `metrics.csv` (one row per logging interval) and the learning curve
//! `curve.png` drawn from it with plotters. Both are rewritten atomically.

use crate::checkpoint::write_atomic;
use anyhow::{bail, Context, Result};
use plotters::prelude::*;
use std::path::Path;

/// The CSV header, in column order.
pub const HEADER: &str =
    "step,episodes,mean_score,eval_mean,loss,epsilon,env_steps_per_s,updates_per_s,minutes";

/// One logging interval.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricRow {
    /// Environment steps so far (all games together).
    pub step: u64,
    /// Episodes finished so far.
    pub episodes: u64,
    /// Mean score of the last 100 training episodes (with exploration).
    pub mean_score: f64,
    /// Mean score of the latest greedy evaluation (NaN before the first).
    pub eval_mean: f64,
    /// Latest Huber loss (NaN before learning starts).
    pub loss: f64,
    /// Exploration rate.
    pub epsilon: f64,
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
    /// The CSV text.
    pub fn to_csv(&self) -> String {
        let mut s = String::from(HEADER);
        s.push('\n');
        for r in &self.rows {
            s.push_str(&format!(
                "{},{},{:.3},{:.3},{:.6},{:.4},{:.1},{:.2},{:.2}\n",
                r.step,
                r.episodes,
                r.mean_score,
                r.eval_mean,
                r.loss,
                r.epsilon,
                r.env_steps_per_s,
                r.updates_per_s,
                r.minutes
            ));
        }
        s
    }

    /// Parses CSV text written by [`Metrics::to_csv`].
    pub fn from_csv(text: &str) -> Result<Metrics> {
        let mut lines = text.lines();
        if lines.next() != Some(HEADER) {
            bail!("not a metrics file (expected the header `{HEADER}`)");
        }
        let mut rows = Vec::new();
        for (i, line) in lines.enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let f: Vec<&str> = line.split(',').collect();
            if f.len() != 9 {
                bail!(
                    "metrics line {}: expected 9 fields, found {}",
                    i + 2,
                    f.len()
                );
            }
            let num = |k: usize| -> Result<f64> {
                f[k].parse::<f64>()
                    .with_context(|| format!("metrics line {}: bad number `{}`", i + 2, f[k]))
            };
            rows.push(MetricRow {
                step: num(0)? as u64,
                episodes: num(1)? as u64,
                mean_score: num(2)?,
                eval_mean: num(3)?,
                loss: num(4)?,
                epsilon: num(5)?,
                env_steps_per_s: num(6)?,
                updates_per_s: num(7)?,
                minutes: num(8)?,
            });
        }
        Ok(Metrics { rows })
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
            let tmp = run_dir.join("curve.tmp.png");
            match plot(self, &tmp) {
                Ok(()) => std::fs::rename(&tmp, run_dir.join("curve.png"))?,
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

/// Draws the learning curve: training mean score and greedy evaluation mean
/// against training minutes (top), loss (bottom).
pub fn plot(m: &Metrics, path: &Path) -> Result<()> {
    ensure_font()?;
    let root = BitMapBackend::new(path, (900, 640)).into_drawing_area();
    let err = |e: &dyn std::fmt::Display| anyhow::anyhow!("plotting {}: {e}", path.display());
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let (top, bottom) = root.split_vertically(440);
    let x_max = m.rows.iter().map(|r| r.minutes).fold(0.1, f64::max);
    let finite = |v: f64| v.is_finite();
    let y_max = m
        .rows
        .iter()
        .flat_map(|r| [r.mean_score, r.eval_mean])
        .filter(|v| finite(*v))
        .fold(1.0, f64::max)
        * 1.05;
    let mut chart = ChartBuilder::on(&top)
        .caption("Flappy Bird DQN: score (pipes)", ("sans-serif", 22))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("training minutes")
        .y_desc("score")
        .draw()
        .map_err(|e| err(&e))?;
    let train: Vec<(f64, f64)> = m.rows.iter().map(|r| (r.minutes, r.mean_score)).collect();
    chart
        .draw_series(LineSeries::new(train, BLUE.stroke_width(2)))
        .map_err(|e| err(&e))?
        .label("training episodes (last 100, with exploration)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE.stroke_width(2)));
    let eval: Vec<(f64, f64)> = m
        .rows
        .iter()
        .filter(|r| finite(r.eval_mean))
        .map(|r| (r.minutes, r.eval_mean))
        .collect();
    chart
        .draw_series(LineSeries::new(eval.clone(), RED.stroke_width(2)))
        .map_err(|e| err(&e))?
        .label("greedy evaluation mean")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED.stroke_width(2)));
    chart
        .draw_series(eval.iter().map(|&p| Circle::new(p, 3, RED.filled())))
        .map_err(|e| err(&e))?;
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(&e))?;

    let losses: Vec<(f64, f64)> = m
        .rows
        .iter()
        .filter(|r| finite(r.loss))
        .map(|r| (r.minutes, r.loss))
        .collect();
    let l_max = losses.iter().map(|p| p.1).fold(1e-6, f64::max) * 1.05;
    let mut chart = ChartBuilder::on(&bottom)
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..x_max, 0.0..l_max)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("training minutes")
        .y_desc("Huber loss")
        .draw()
        .map_err(|e| err(&e))?;
    chart
        .draw_series(LineSeries::new(losses, GREEN.stroke_width(1)))
        .map_err(|e| err(&e))?;
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
            eval_mean: f64::NAN,
            loss: 0.01,
            epsilon: 0.1,
            env_steps_per_s: 1000.0,
            updates_per_s: 50.0,
            minutes: step as f64 / 6e4,
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
        assert!(back.rows[0].eval_mean.is_nan());
        let dir = std::env::temp_dir().join(format!("metrics-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        m.save(&dir).unwrap();
        let png = std::fs::read(dir.join("curve.png")).unwrap();
        assert_eq!(&png[1..4], b"PNG");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_metrics_files_are_errors() {
        assert!(Metrics::from_csv("a,b\n1,2").is_err());
        let e = Metrics::from_csv(&format!("{HEADER}\n1,2,3"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("expected 9 fields"), "{e}");
        let e = Metrics::from_csv(&format!("{HEADER}\n1,2,x,4,5,6,7,8,9"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("bad number"), "{e}");
    }
}

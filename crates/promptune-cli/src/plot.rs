//! Training curves as SVG: the training loss and the dev metric against the step, read from
//! the JSONL metrics log the trainer writes ([`promptune::train::metrics::MetricsLog`]). The
//! library does not draw: plotting is the command line's business.
//!
//! Text is written as SVG `<text>` elements and laid out with plotters' built-in size
//! estimate, so no system fonts are needed.

use std::ops::Range;
use std::path::Path;

use plotters::prelude::*;
use serde_json::Value;

use promptune::{Error, Result};

const WIDTH: u32 = 900;
const HEIGHT: u32 = 700;
const LOSS_COLOR: RGBColor = RGBColor(31, 119, 180);
const METRIC_COLOR: RGBColor = RGBColor(214, 39, 40);

/// `(step, value)` for every record with a numeric `step` and a numeric `key`.
fn series(records: &[Value], key: &str) -> Vec<(f64, f64)> {
    records
        .iter()
        .filter_map(|r| {
            let step = r.get("step")?.as_f64()?;
            let value = r.get(key)?.as_f64()?;
            (step.is_finite() && value.is_finite()).then_some((step, value))
        })
        .collect()
}

/// `min..max` of `values`, widened when empty or degenerate, padded by `pad` of its width.
fn range(values: impl Iterator<Item = f64>, pad: f64) -> Range<f64> {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if lo > hi {
        return 0.0..1.0;
    }
    if hi - lo < 1e-12 {
        let half = if lo.abs() > 1e-12 {
            lo.abs() * 0.05
        } else {
            0.5
        };
        return (lo - half)..(hi + half);
    }
    let margin = (hi - lo) * pad;
    (lo - margin)..(hi + margin)
}

/// A step tick label: integral steps without a fractional part.
fn step_label(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    }
}

/// Turns a plotters drawing error into ours.
fn draw_error(out: &Path, e: impl std::fmt::Display) -> Error {
    Error::InvalidInput(format!("drawing {}: {e}", out.display()))
}

/// One titled panel: `points` as a line against the step (with markers when `markers`), or a
/// "no records" note when there are none.
fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    y_desc: &str,
    points: &[(f64, f64)],
    x_range: Range<f64>,
    color: RGBColor,
    markers: bool,
) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let y_range = range(points.iter().map(|p| p.1), 0.05);
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(x_range.clone(), y_range.clone())?;
    chart
        .configure_mesh()
        .x_desc("step")
        .y_desc(y_desc)
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 16))
        .x_label_formatter(&|x| step_label(*x))
        .draw()?;
    if points.is_empty() {
        let at = (
            (x_range.start + x_range.end) / 2.0,
            (y_range.start + y_range.end) / 2.0,
        );
        chart.draw_series(std::iter::once(Text::new(
            "no records",
            at,
            ("sans-serif", 18).into_font().color(&BLACK.mix(0.6)),
        )))?;
        return Ok(());
    }
    let line = LineSeries::new(points.iter().copied(), color.stroke_width(2));
    chart.draw_series(if markers { line.point_size(3) } else { line })?;
    Ok(())
}

/// Draws the training loss (records with `step` and `loss`) and the dev metric (records with
/// `step` and `dev_metric`, named by the first `metric_name` string found) against the step,
/// as two stacked panels of one SVG written to `out`. Other records and fields are ignored.
///
/// Errors when no record has a plottable loss or dev metric, or `out` cannot be written.
pub fn plot_curves(records: &[Value], out: &Path) -> Result<()> {
    let loss = series(records, "loss");
    let metric = series(records, "dev_metric");
    if loss.is_empty() && metric.is_empty() {
        return Err(Error::InvalidInput(format!(
            "nothing to plot into {}: no record has a numeric `step` with a `loss` or \
             `dev_metric` ({} records)",
            out.display(),
            records.len()
        )));
    }
    let metric_name = records
        .iter()
        .find_map(|r| r.get("metric_name").and_then(Value::as_str))
        .unwrap_or("dev metric");
    let x_range = range(loss.iter().chain(&metric).map(|p| p.0), 0.02);

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| draw_error(out, e))?;
        let (top, bottom) = root.split_vertically(HEIGHT / 2);
        draw_panel(
            &top,
            "Training loss",
            "loss",
            &loss,
            x_range.clone(),
            LOSS_COLOR,
            false,
        )
        .map_err(|e| draw_error(out, e))?;
        let title = format!("Dev {metric_name}");
        draw_panel(
            &bottom,
            &title,
            metric_name,
            &metric,
            x_range,
            METRIC_COLOR,
            true,
        )
        .map_err(|e| draw_error(out, e))?;
        root.present().map_err(|e| draw_error(out, e))?;
    }
    std::fs::write(out, svg).map_err(|e| Error::io(out, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn records() -> Vec<Value> {
        let mut r = Vec::new();
        for step in 1..=40 {
            r.push(json!({"step": step, "loss": 1.0 / step as f64, "lr": 1e-3}));
            if step % 10 == 0 {
                r.push(
                    json!({"step": step, "dev_metric": 0.5 + step as f64 / 100.0,
                              "metric_name": "accuracy"}),
                );
            }
        }
        r
    }

    #[test]
    fn plots_both_series() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("curves.svg");
        plot_curves(&records(), &out).unwrap();
        let svg = std::fs::read_to_string(&out).unwrap();
        assert!(svg.contains("<svg"));
        // one polyline per series, in its colour, through all its points
        for (color, points) in [("#1F77B4", 40), ("#D62728", 4)] {
            let lines: Vec<&str> = svg
                .split("<polyline")
                .skip(1)
                .map(|p| p.split('>').next().unwrap())
                .filter(|p| p.contains(&format!("stroke=\"{color}\"")))
                .collect();
            assert_eq!(lines.len(), 1, "{color}");
            let coords = lines[0]
                .split("points=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap();
            assert_eq!(coords.split_whitespace().count(), points, "{color}");
        }
        assert!(svg.contains("Training loss") && svg.contains("Dev accuracy"));
        assert!(svg.contains("<circle"), "dev points are marked");
    }

    #[test]
    fn plots_a_single_series_and_degenerate_ranges() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("loss.svg");
        plot_curves(&[json!({"step": 0, "loss": 2.0})], &out).unwrap();
        let svg = std::fs::read_to_string(&out).unwrap();
        assert!(
            svg.contains("<svg") && svg.contains("no records") && svg.contains("Dev dev metric")
        );
        plot_curves(
            &[json!({"step": 5, "dev_metric": 0.0, "metric_name": "<f1>"})],
            &out,
        )
        .unwrap();
        let svg = std::fs::read_to_string(&out).unwrap();
        assert!(svg.contains("&lt;f1&gt;"));
    }

    #[test]
    fn nothing_to_plot_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("x.svg");
        assert!(plot_curves(&[], &out).is_err());
        let err = plot_curves(&[json!({"step": 1}), json!({"loss": 1.0})], &out).unwrap_err();
        assert!(err.to_string().contains("nothing to plot"), "{err}");
        assert!(!out.exists());
        let bad = dir.path().join("no/such/dir/x.svg");
        assert!(matches!(
            plot_curves(&records(), &bad),
            Err(Error::Io { .. })
        ));
    }
}

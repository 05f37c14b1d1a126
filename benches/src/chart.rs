//! The results as an SVG chart: per workload, one horizontal bar per implementation for
//! its time as a ratio to kernel overlayfs, on a log axis (bars grow from 1.0x: left is
//! faster than the kernel, right slower), with a vertical line at 1.0x.

use std::path::Path;

use anyhow::{Context, Result, anyhow};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// One workload in the chart: its label and, per series, the ratio to the reference
/// (`None` where the cell failed or does not apply; such bars are left out).
pub struct ChartRow {
    /// Workload label (the table's row name).
    pub label: String,
    /// Ratio to kernel overlayfs, one per series, in series order.
    pub ratios: Vec<Option<f64>>,
}

/// Colours of the series, in order (cycled if there are more).
const COLOURS: [RGBColor; 6] = [
    RGBColor(150, 150, 150),
    RGBColor(230, 140, 30),
    RGBColor(200, 50, 50),
    RGBColor(40, 110, 200),
    RGBColor(150, 60, 170),
    RGBColor(60, 160, 80),
];

/// Pixels per bar, and between workloads.
const BAR: u32 = 9;
const GAP: u32 = 10;
/// Room for the workload names left of the plot.
const LABELS: u32 = 270;
const WIDTH: u32 = 1100;

/// The axis: log scale between these, widened to the data but clipped to [1/50, 50] so a
/// few outliers cannot squash the rest (clipped bars end at the edge, their value shown).
const CLIP: (f64, f64) = (1.0 / 50.0, 50.0);

fn axis_range(rows: &[ChartRow]) -> (f64, f64) {
    let (mut lo, mut hi) = (0.5f64, 2.0f64);
    for r in rows.iter().flat_map(|r| r.ratios.iter().flatten()) {
        lo = lo.min(*r / 1.3);
        hi = hi.max(*r * 1.3);
    }
    (lo.max(CLIP.0), hi.min(CLIP.1))
}

fn ratio_label(v: f64) -> String {
    if v >= 10.0 {
        format!("{v:.0}x")
    } else if v >= 1.0 {
        format!("{v:.1}x")
    } else if v >= 0.1 {
        format!("{v:.2}x")
    } else {
        format!("{v:.3}x")
    }
}

fn tick_label(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s}x")
}

/// Writes the chart to `path`: `title` on top, `subtitle` below it, one group of bars per
/// row, one bar per series (named in `series`, shown in the legend).
pub fn write_svg(
    path: &Path,
    title: &str,
    subtitle: &str,
    series: &[&str],
    rows: &[ChartRow],
) -> Result<()> {
    let group = BAR * series.len().max(1) as u32 + GAP;
    let height = 140 + group * rows.len().max(1) as u32 + 90;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        draw(&root, title, subtitle, series, rows).map_err(|e| anyhow!("{e}"))?;
        root.present().map_err(|e| anyhow!("{e}"))?;
    }
    std::fs::write(path, svg).with_context(|| format!("write {}", path.display()))
}

type DrawResult = std::result::Result<(), DrawingAreaErrorKind<std::io::Error>>;

fn draw(
    root: &DrawingArea<SVGBackend<'_>, Shift>,
    title: &str,
    subtitle: &str,
    series: &[&str],
    rows: &[ChartRow],
) -> DrawResult {
    root.fill(&WHITE)?;
    let area = root.titled(title, ("sans-serif", 20))?;
    let area = area.titled(
        subtitle,
        ("sans-serif", 13).into_font().color(&BLACK.mix(0.7)),
    )?;
    let (lo, hi) = axis_range(rows);
    let n = rows.len().max(1) as f64;
    let mut chart = ChartBuilder::on(&area)
        .margin(12)
        .margin_left(LABELS)
        .x_label_area_size(48)
        .margin_bottom(44)
        .build_cartesian_2d((lo..hi).log_scale().base(2.0), 0.0..n)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .disable_y_axis()
        .x_desc("time / kernel overlayfs time (log scale; left of 1x is faster)")
        .x_label_formatter(&|v| tick_label(*v))
        .x_labels(12)
        .light_line_style(WHITE.mix(0.0))
        .bold_line_style(BLACK.mix(0.12))
        .draw()?;

    let bar = 1.0 / (series.len() as f64 + GAP as f64 / BAR as f64);
    let value_font = ("sans-serif", 10).into_font();
    for s in 0..series.len() {
        let colour = COLOURS[s % COLOURS.len()];
        let mut bars = Vec::new();
        let mut values = Vec::new();
        for (i, row) in rows.iter().enumerate() {
            let Some(Some(r)) = row.ratios.get(s).copied() else {
                continue;
            };
            if !(r > 0.0 && r.is_finite()) {
                continue;
            }
            // Row 0 at the top: y grows upwards in the chart.
            let top = n - i as f64 - bar * (GAP as f64 / BAR as f64 / 2.0) - bar * s as f64;
            let end = r.clamp(lo, hi);
            bars.push(Rectangle::new(
                [(1.0f64.min(end), top - bar), (1.0f64.max(end), top)],
                colour.filled(),
            ));
            let anchor = if r >= 1.0 { HPos::Left } else { HPos::Right };
            let x = if r >= 1.0 { end * 1.02 } else { end / 1.02 };
            values.push(Text::new(
                ratio_label(r),
                (x, top - bar / 2.0),
                value_font
                    .clone()
                    .color(&BLACK)
                    .pos(Pos::new(anchor, VPos::Center)),
            ));
        }
        chart.draw_series(bars)?;
        chart.draw_series(values)?;
    }
    chart
        .draw_series(std::iter::once(PathElement::new(
            vec![(1.0, 0.0), (1.0, n)],
            BLACK.stroke_width(2),
        )))?
        .label("kernel overlayfs (1x)")
        .legend(|(x, y)| {
            PathElement::new(vec![(x + 6, y - 6), (x + 6, y + 6)], BLACK.stroke_width(2))
        });

    let label_font = ("sans-serif", 12)
        .into_font()
        .color(&BLACK)
        .pos(Pos::new(HPos::Right, VPos::Center));
    for (i, row) in rows.iter().enumerate() {
        let (x, y) = chart.backend_coord(&(lo, n - i as f64 - 0.5));
        root.draw(&Text::new(
            row.label.as_str(),
            (x - 8, y),
            label_font.clone(),
        ))?;
    }
    // The legend, in one line under the axis.
    let (_, height) = root.dim_in_pixel();
    let y = height as i32 - 18;
    let mut x = LABELS as i32;
    let legend_font = ("sans-serif", 12)
        .into_font()
        .color(&BLACK)
        .pos(Pos::new(HPos::Left, VPos::Center));
    for (s, name) in series.iter().enumerate() {
        let colour = COLOURS[s % COLOURS.len()];
        root.draw(&Rectangle::new(
            [(x, y - 6), (x + 14, y + 6)],
            colour.filled(),
        ))?;
        root.draw(&Text::new(*name, (x + 20, y), legend_font.clone()))?;
        x += 20 + 7 * name.len() as i32 + 28;
    }
    root.draw(&PathElement::new(
        vec![(x + 7, y - 8), (x + 7, y + 8)],
        BLACK.stroke_width(2),
    ))?;
    root.draw(&Text::new(
        "kernel overlayfs (1x)",
        (x + 20, y),
        legend_font,
    ))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_an_svg_with_every_label_and_skips_missing_bars() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("c.svg");
        let rows = vec![
            ChartRow {
                label: "fast one".into(),
                ratios: vec![Some(0.5), Some(1.5), None],
            },
            ChartRow {
                label: "outlier".into(),
                ratios: vec![Some(200.0), Some(0.001), Some(1.0)],
            },
        ];
        write_svg(&path, "title", "sub", &["a", "b", "c"], &rows)?;
        let svg = std::fs::read_to_string(&path)?;
        for text in [
            "title", "sub", "fast one", "outlier", "200x", "0.001x", "1.5x",
        ] {
            assert!(svg.contains(text), "{text} missing from the chart");
        }
        Ok(())
    }

    #[test]
    fn axis_is_clipped() {
        let rows = [ChartRow {
            label: "x".into(),
            ratios: vec![Some(1000.0), Some(0.0001)],
        }];
        assert_eq!(axis_range(&rows), CLIP);
    }
}

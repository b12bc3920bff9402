//! The chart of an evaluation: PSNR and LPIPS (SSIM when LPIPS was not measured) per stage,
//! one bar per method with its ± std, drawn with plotters as an SVG (its text needs no font
//! files, so the chart draws the same on any machine).

use anyhow::{anyhow, Result};
use iterinv::eval::stats::Stat;
use iterinv::eval::summary::{Row, Summary};
use plotters::prelude::*;

/// The chart's file in the output folder.
pub const CHART_FILE: &str = "chart.svg";

const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// The SVG text of the chart of `summary`.
pub fn draw(summary: &Summary) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 380)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let panels = root.split_evenly((1, 2));
        let has_lpips = summary.rows.iter().any(|r| r.lpips.is_some());
        panel(&panels[0], summary, "PSNR (dB), higher is better", |r| {
            r.psnr
        })?;
        if has_lpips {
            panel(&panels[1], summary, "LPIPS, lower is better", |r| r.lpips)?;
        } else {
            panel(&panels[1], summary, "SSIM, higher is better", |r| r.ssim)?;
        }
        root.present().map_err(plot_err)?;
    }
    Ok(svg)
}

fn plot_err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("drawing the chart: {e}")
}

/// One score's grouped bars: stages along x, a bar per method.
fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    summary: &Summary,
    title: &str,
    score: fn(&Row) -> Option<Stat>,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let mut stages: Vec<String> = Vec::new();
    for r in &summary.rows {
        if !stages.contains(&r.stage) {
            stages.push(r.stage.clone());
        }
    }
    let methods = &summary.methods;
    // Only finite means can be drawn (an infinite PSNR or a diverged NaN has no bar).
    let bar = |r: &Row| score(r).filter(|s| s.mean.is_finite());
    let top = summary
        .rows
        .iter()
        .filter_map(bar)
        .map(|s| s.mean + s.std.filter(|v| v.is_finite()).unwrap_or(0.0))
        .fold(0.0f64, f64::max);
    // Headroom above the tallest bar for the legend.
    let top = if top > 0.0 { top * 1.4 } else { 1.0 };
    let n = stages.len().max(1);
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(50)
        .build_cartesian_2d(-0.5..n as f64 - 0.5, 0.0..top)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        // At most one label a stage: the key points fall on the stages' integer positions,
        // which the formatter names (any other point gets no text).
        .x_labels(n)
        .x_label_formatter(&|x| {
            let i = x.round();
            if (x - i).abs() < 1e-6 && i >= 0.0 {
                stages.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_label_formatter(&|y| {
            if top > 10.0 {
                format!("{y:.0}")
            } else {
                format!("{y:.2}")
            }
        })
        .draw()
        .map_err(plot_err)?;
    let width = 0.8 / methods.len().max(1) as f64;
    for (m, method) in methods.iter().enumerate() {
        let color = COLORS[m % COLORS.len()];
        let bars: Vec<(f64, Stat)> = summary
            .rows
            .iter()
            .filter(|r| &r.method == method)
            .filter_map(|r| {
                let x = stages.iter().position(|s| *s == r.stage)? as f64;
                Some((x - 0.4 + width * m as f64, bar(r)?))
            })
            .collect();
        chart
            .draw_series(bars.iter().map(|&(x, s)| {
                Rectangle::new([(x, 0.0), (x + width * 0.9, s.mean)], color.filled())
            }))
            .map_err(plot_err)?
            .label(method.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
        chart
            .draw_series(bars.iter().filter_map(|&(x, s)| {
                let sd = s.std.filter(|v| v.is_finite())?;
                let mid = x + width * 0.45;
                Some(ErrorBar::new_vertical(
                    mid,
                    (s.mean - sd).max(0.0),
                    s.mean,
                    s.mean + sd,
                    BLACK.stroke_width(1),
                    6,
                ))
            }))
            .map_err(plot_err)?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(plot_err)?;
    Ok(())
}

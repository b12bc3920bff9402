//! An image's contact sheet: one row per stage — the photo as the stage sees it, then for each
//! method its reconstruction and the absolute difference amplified [`AMPLIFY`] times — every
//! cell scaled to one size (nearest neighbour when enlarging, so that single pixels stay
//! visible; a triangle filter when shrinking), on a white grid.

use iterinv_models::{Error, Result};

use crate::image_io::Rgb;

/// How much a difference is brightened: 0.1 of error, a clearly wrong pixel, shows at full
/// brightness, and a 40 dB reconstruction (0.01 of error) still shows as a faint grey.
pub const AMPLIFY: f32 = 10.0;
/// White space around every cell.
pub const GAP: u32 = 4;

/// One stage: the input, and each method's reconstruction of it (same size, [0, 1]).
pub struct SheetRow<'a> {
    pub input: &'a Rgb,
    pub reconstructions: Vec<&'a Rgb>,
}

/// The side of the cells for a cascade whose largest stage is `largest` pixels: the largest
/// stage at its size, within 128..=256 pixels (tiny stages enlarged, huge ones shrunk).
pub fn cell_size(largest: usize) -> u32 {
    largest.clamp(128, 256) as u32
}

/// The sheet of `rows` with `cell`-pixel cells.
pub fn contact_sheet(rows: &[SheetRow], cell: u32) -> Result<image::RgbImage> {
    let methods = rows.first().map_or(0, |r| r.reconstructions.len());
    let bad = |detail: String| Error::Input {
        what: "contact sheet".into(),
        detail,
    };
    if rows.is_empty() || cell == 0 {
        return Err(bad("needs at least one stage and a cell size".into()));
    }
    let cols = 1 + 2 * methods as u32;
    let width = cols * cell + (cols + 1) * GAP;
    let height = rows.len() as u32 * cell + (rows.len() as u32 + 1) * GAP;
    let mut sheet = image::RgbImage::from_pixel(width, height, image::Rgb([255, 255, 255]));
    for (y, row) in rows.iter().enumerate() {
        if row.reconstructions.len() != methods {
            return Err(bad(format!(
                "stage {} has {} reconstructions, stage 1 has {methods}",
                y + 1,
                row.reconstructions.len()
            )));
        }
        let mut cells = vec![to_image(row.input)];
        for rec in &row.reconstructions {
            if (rec.height, rec.width) != (row.input.height, row.input.width) {
                return Err(bad(format!(
                    "stage {}: a reconstruction is {}×{}, the input {}×{}",
                    y + 1,
                    rec.width,
                    rec.height,
                    row.input.width,
                    row.input.height
                )));
            }
            cells.push(to_image(rec));
            let diff = Rgb {
                height: rec.height,
                width: rec.width,
                data: rec
                    .data
                    .iter()
                    .zip(&row.input.data)
                    .map(|(a, b)| (a - b).abs() * AMPLIFY)
                    .collect(),
            };
            cells.push(to_image(&diff));
        }
        for (x, img) in cells.iter().enumerate() {
            let filter = if img.width() < cell {
                image::imageops::FilterType::Nearest
            } else {
                image::imageops::FilterType::Triangle
            };
            let scaled = image::imageops::resize(img, cell, cell, filter);
            let (left, top) = (GAP + x as u32 * (cell + GAP), GAP + y as u32 * (cell + GAP));
            image::imageops::replace(&mut sheet, &scaled, left.into(), top.into());
        }
    }
    Ok(sheet)
}

/// The sheet as PNG bytes (to be written atomically by the caller).
pub fn encode_png(sheet: &image::RgbImage) -> Result<Vec<u8>> {
    let mut png = Vec::new();
    sheet
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| Error::Input {
            what: "contact sheet".into(),
            detail: format!("cannot be encoded as PNG: {e}"),
        })?;
    Ok(png)
}

/// Planar [0, 1] to 8-bit interleaved, rounding as `save_png` does (NaN shows as black).
fn to_image(img: &Rgb) -> image::RgbImage {
    let plane = img.height * img.width;
    image::RgbImage::from_fn(img.width as u32, img.height as u32, |x, y| {
        let i = y as usize * img.width + x as usize;
        image::Rgb(std::array::from_fn(|c| {
            let v = img.data[c * plane + i];
            (v.clamp(0.0, 1.0) * 255.0).round() as u8
        }))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat(side: usize, v: [f32; 3]) -> Rgb {
        Rgb {
            height: side,
            width: side,
            data: v.iter().flat_map(|&c| vec![c; side * side]).collect(),
        }
    }

    #[test]
    fn cells_hold_input_reconstruction_and_amplified_difference() {
        let (in1, rec1) = (flat(16, [0.5, 0.5, 0.5]), flat(16, [0.52, 0.5, 0.4]));
        let (in2, rec2) = (flat(32, [0.2, 0.3, 0.4]), flat(32, [0.2, 0.3, 0.4]));
        let rows = [
            SheetRow {
                input: &in1,
                reconstructions: vec![&rec1],
            },
            SheetRow {
                input: &in2,
                reconstructions: vec![&rec2],
            },
        ];
        let sheet = contact_sheet(&rows, 64).unwrap();
        assert_eq!(sheet.dimensions(), (3 * 64 + 4 * GAP, 2 * 64 + 3 * GAP));
        let at = |col: u32, row: u32| {
            sheet
                .get_pixel(GAP + col * (64 + GAP) + 30, GAP + row * (64 + GAP) + 30)
                .0
        };
        assert_eq!(at(0, 0), [128, 128, 128]);
        assert_eq!(at(1, 0), [133, 128, 102]);
        // |0.52 − 0.5|·10 = 0.2 → 51; |0.4 − 0.5|·10 = 1 → 255.
        assert_eq!(at(2, 0), [51, 0, 255]);
        assert_eq!(at(2, 1), [0, 0, 0]);
        assert_eq!(*sheet.get_pixel(1, 1), image::Rgb([255, 255, 255]));
    }

    #[test]
    fn mismatched_rows_are_errors() {
        let (a, b) = (flat(8, [0.0; 3]), flat(16, [0.0; 3]));
        let rows = [SheetRow {
            input: &a,
            reconstructions: vec![&b],
        }];
        assert!(contact_sheet(&rows, 32).is_err());
        assert!(contact_sheet(&[], 32).is_err());
        assert_eq!(
            (cell_size(32), cell_size(200), cell_size(1024)),
            (128, 200, 256)
        );
    }
}

//! PNG encoding of RGBA tiles through the `png` crate.
//!
//! Fast deflate (fdeflate) by default: the compression level is the largest fixed cost per tile
//! that we control. A tile with at most 256 distinct colours is written as indexed colour (with a
//! tRNS chunk for alpha, at 1, 2, 4 or 8 bits per pixel), which is smaller and faster to encode;
//! otherwise as 8-bit RGBA. Fully transparent pixels are all the same colour, whatever their RGB.

use crate::error::{CoreError, CoreResult};

/// A straight-alpha RGBA8 image, rows top to bottom.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RgbaImage {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// `width * height * 4` bytes: R, G, B, A per pixel, row-major.
    pub data: Vec<u8>,
}

impl RgbaImage {
    /// A fully transparent image.
    pub fn transparent(width: u32, height: u32) -> RgbaImage {
        RgbaImage {
            width,
            height,
            data: vec![0; width as usize * height as usize * 4],
        }
    }

    /// RGBA of pixel (x, y); panics outside the image.
    pub fn pixel(&self, x: u32, y: u32) -> [u8; 4] {
        let i = (y as usize * self.width as usize + x as usize) * 4;
        [
            self.data[i],
            self.data[i + 1],
            self.data[i + 2],
            self.data[i + 3],
        ]
    }

    /// Number of pixels with non-zero alpha.
    pub fn opaque_count(&self) -> usize {
        self.data.chunks_exact(4).filter(|p| p[3] != 0).count()
    }
}

/// How hard deflate works. `Fast` is the default for tiles served on request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effort {
    /// Fast deflate (fdeflate): cheapest to encode.
    Fast,
    /// High compression: smaller files at more CPU per tile.
    Small,
}

/// Encode an image as PNG, indexed when it has at most 256 colours.
pub fn encode(image: &RgbaImage, effort: Effort) -> CoreResult<Vec<u8>> {
    let compression = compression_of(effort);
    match Palette::of(image) {
        Some(p) => encode_indexed(image.width, image.height, &p.indices, &p.colors, effort),
        None => {
            let mut out = Vec::with_capacity(1024);
            write_rgba(image, compression, &mut out).map_err(encoding_failed)?;
            Ok(out)
        }
    }
}

/// Encode palette indices (one byte per pixel, each below `palette.len()`, at most 256 entries)
/// as an indexed PNG at the smallest bit depth that holds them.
pub fn encode_indexed(
    width: u32,
    height: u32,
    indices: &[u8],
    palette: &[[u8; 4]],
    effort: Effort,
) -> CoreResult<Vec<u8>> {
    let mut out = Vec::with_capacity(1024);
    write_indexed(
        width,
        height,
        indices,
        palette,
        compression_of(effort),
        &mut out,
    )
    .map_err(encoding_failed)?;
    Ok(out)
}

fn compression_of(effort: Effort) -> png::Compression {
    match effort {
        Effort::Fast => png::Compression::Fast,
        Effort::Small => png::Compression::High,
    }
}

fn encoding_failed(e: png::EncodingError) -> CoreError {
    CoreError::TooLarge {
        detail: format!("PNG encoding failed: {e}"),
    }
}

/// Colours of an image with at most 256 of them, and each pixel's index.
struct Palette {
    /// RGBA entries, the non-opaque ones first so that tRNS is short.
    colors: Vec<[u8; 4]>,
    indices: Vec<u8>,
}

impl Palette {
    /// `None` when the image has more than 256 colours.
    fn of(image: &RgbaImage) -> Option<Palette> {
        // Open addressing over 1024 slots keyed by the packed pixel: a few ns per pixel, and
        // runs of equal pixels (most of a tile) skip the table altogether.
        const SLOTS: usize = 1024;
        let mut keys = [0u32; SLOTS];
        let mut vals = [u16::MAX; SLOTS];
        let mut colors: Vec<u32> = Vec::with_capacity(256);
        let mut indices = Vec::with_capacity(image.data.len() / 4);
        let mut last: Option<(u32, u8)> = None;
        for p in image.data.chunks_exact(4) {
            let c = if p[3] == 0 {
                0
            } else {
                u32::from_le_bytes([p[0], p[1], p[2], p[3]])
            };
            if let Some((lc, li)) = last {
                if lc == c {
                    indices.push(li);
                    continue;
                }
            }
            let mut slot = (c.wrapping_mul(0x9E37_79B1) >> 22) as usize;
            let index = loop {
                if vals[slot] == u16::MAX {
                    if colors.len() == 256 {
                        return None;
                    }
                    keys[slot] = c;
                    vals[slot] = colors.len() as u16;
                    colors.push(c);
                    break vals[slot] as u8;
                }
                if keys[slot] == c {
                    break vals[slot] as u8;
                }
                slot = (slot + 1) % SLOTS;
            };
            indices.push(index);
            last = Some((c, index));
        }
        // Reorder: translucent entries first (tRNS only needs to run up to the last of them).
        let mut order: Vec<usize> = (0..colors.len()).collect();
        order.sort_by_key(|&i| (colors[i] >> 24) == 255);
        let mut remap = [0u8; 256];
        for (new, &old) in order.iter().enumerate() {
            remap[old] = new as u8;
        }
        for i in indices.iter_mut() {
            *i = remap[*i as usize];
        }
        let colors = order.iter().map(|&i| colors[i].to_le_bytes()).collect();
        Some(Palette { colors, indices })
    }
}

fn write_indexed(
    width: u32,
    height: u32,
    indices: &[u8],
    palette: &[[u8; 4]],
    compression: png::Compression,
    out: &mut Vec<u8>,
) -> Result<(), png::EncodingError> {
    let (depth, bits) = match palette.len() {
        0..=2 => (png::BitDepth::One, 1),
        3..=4 => (png::BitDepth::Two, 2),
        5..=16 => (png::BitDepth::Four, 4),
        _ => (png::BitDepth::Eight, 8),
    };
    let mut encoder = png::Encoder::new(&mut *out, width, height);
    encoder.set_color(png::ColorType::Indexed);
    encoder.set_depth(depth);
    encoder.set_compression(compression);
    // Filters do not help palette indices; skipping them is also faster.
    encoder.set_filter(png::Filter::NoFilter);
    let plte: Vec<u8> = palette.iter().flat_map(|c| [c[0], c[1], c[2]]).collect();
    encoder.set_palette(plte);
    // tRNS runs up to the last entry that is not opaque; the rest are opaque by default.
    if let Some(last) = palette.iter().rposition(|c| c[3] != 255) {
        encoder.set_trns(palette[..=last].iter().map(|c| c[3]).collect::<Vec<u8>>());
    }
    let mut writer = encoder.write_header()?;
    if bits == 8 {
        writer.write_image_data(indices)?;
    } else {
        writer.write_image_data(&pack_rows(indices, width as usize, bits))?;
    }
    writer.finish()
}

/// Pack 8-bit indices into rows of `bits`-bit samples, most significant first, rows byte-aligned.
fn pack_rows(indices: &[u8], width: usize, bits: u32) -> Vec<u8> {
    match bits {
        1 => pack_rows_as::<1>(indices, width),
        2 => pack_rows_as::<2>(indices, width),
        _ => pack_rows_as::<4>(indices, width),
    }
}

fn pack_rows_as<const BITS: usize>(indices: &[u8], width: usize) -> Vec<u8> {
    let per_byte = 8 / BITS;
    let row_bytes = width.div_ceil(per_byte);
    let mut packed = vec![0u8; row_bytes * (indices.len() / width.max(1))];
    for (row, out_row) in indices
        .chunks_exact(width)
        .zip(packed.chunks_exact_mut(row_bytes))
    {
        for (samples, out) in row.chunks(per_byte).zip(out_row.iter_mut()) {
            let mut byte = 0u8;
            for (i, &v) in samples.iter().enumerate() {
                byte |= v << (8 - BITS * (i + 1));
            }
            *out = byte;
        }
    }
    packed
}

fn write_rgba(
    image: &RgbaImage,
    compression: png::Compression,
    out: &mut Vec<u8>,
) -> Result<(), png::EncodingError> {
    let mut encoder = png::Encoder::new(&mut *out, image.width, image.height);
    encoder.set_color(png::ColorType::Rgba);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_compression(compression);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(&image.data)?;
    writer.finish()
}

/// Decode a PNG to straight RGBA8, whatever its colour type and depth. Used by tests and by the
/// SQL helpers that inspect tiles.
pub fn decode(bytes: &[u8]) -> CoreResult<RgbaImage> {
    let bad = |e: png::DecodingError| CoreError::out_of_range("PNG", format!("is invalid: {e}"));
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::ALPHA);
    let mut reader = decoder.read_info().map_err(bad)?;
    let (width, height) = (reader.info().width, reader.info().height);
    if width as u64 * height as u64 > 4096 * 4096 {
        return Err(CoreError::TooLarge {
            detail: format!("PNG of {width}x{height} pixels is larger than 4096x4096"),
        });
    }
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| CoreError::TooLarge {
            detail: "PNG too large".into(),
        })?;
    let mut buf = vec![0; size];
    let frame = reader.next_frame(&mut buf).map_err(bad)?;
    buf.truncate(frame.buffer_size());
    let data = match (frame.color_type, frame.bit_depth) {
        (png::ColorType::Rgba, png::BitDepth::Eight) => buf,
        (png::ColorType::GrayscaleAlpha, png::BitDepth::Eight) => buf
            .chunks_exact(2)
            .flat_map(|p| [p[0], p[0], p[0], p[1]])
            .collect(),
        (ct, bd) => {
            return Err(CoreError::out_of_range(
                "PNG",
                format!("has an unsupported layout {ct:?} at {bd:?}"),
            ))
        }
    };
    Ok(RgbaImage {
        width,
        height,
        data,
    })
}

/// Number of pixels that differ between two images of one size. Fully transparent pixels are
/// equal whatever their RGB, since they look the same.
pub fn pixel_diff(a: &RgbaImage, b: &RgbaImage) -> CoreResult<usize> {
    if (a.width, a.height) != (b.width, b.height) {
        return Err(CoreError::out_of_range(
            "PNG size",
            format!(
                "must match to compare: {}x{} vs {}x{}",
                a.width, a.height, b.width, b.height
            ),
        ));
    }
    Ok(a.data
        .chunks_exact(4)
        .zip(b.data.chunks_exact(4))
        .filter(|(p, q)| p != q && (p[3] != 0 || q[3] != 0))
        .count())
}

/// Header facts of a PNG without decoding its pixels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PngInfo {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// `"grayscale"`, `"rgb"`, `"indexed"`, `"grayscale_alpha"` or `"rgba"`.
    pub color_type: &'static str,
    /// Bits per sample (per palette index for indexed): 1, 2, 4, 8 or 16.
    pub bit_depth: u8,
}

/// Read a PNG's header; errors when `bytes` are not a valid PNG up to its first image data.
pub fn info(bytes: &[u8]) -> CoreResult<PngInfo> {
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let reader = decoder
        .read_info()
        .map_err(|e| CoreError::out_of_range("PNG", format!("is invalid: {e}")))?;
    let info = reader.info();
    let color_type = match info.color_type {
        png::ColorType::Grayscale => "grayscale",
        png::ColorType::Rgb => "rgb",
        png::ColorType::Indexed => "indexed",
        png::ColorType::GrayscaleAlpha => "grayscale_alpha",
        png::ColorType::Rgba => "rgba",
    };
    Ok(PngInfo {
        width: info.width,
        height: info.height,
        color_type,
        bit_depth: info.bit_depth as u8,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient(width: u32, height: u32, colours: u32) -> RgbaImage {
        let mut img = RgbaImage::transparent(width, height);
        for (i, p) in img.data.chunks_exact_mut(4).enumerate() {
            let c = (i as u32 * 7919) % colours;
            p.copy_from_slice(&[
                (c & 255) as u8,
                (c >> 8) as u8,
                77,
                if c.is_multiple_of(3) { 255 } else { 128 },
            ]);
        }
        img
    }

    #[test]
    fn round_trips_at_every_palette_size() {
        for colours in [1, 2, 3, 4, 5, 16, 17, 255, 256, 257, 5000] {
            for width in [256, 255, 1, 7] {
                let img = gradient(width, 33, colours);
                let bytes = encode(&img, Effort::Fast).unwrap();
                let back = decode(&bytes).unwrap();
                assert_eq!(back, img, "{colours} colours, width {width}");
                let info = info(&bytes).unwrap();
                let distinct: std::collections::HashSet<&[u8]> = img.data.chunks_exact(4).collect();
                let expected = if distinct.len() <= 256 {
                    "indexed"
                } else {
                    "rgba"
                };
                assert_eq!(
                    info.color_type, expected,
                    "{colours} colours, width {width}"
                );
            }
        }
    }

    #[test]
    fn small_palettes_use_few_bits() {
        assert_eq!(
            info(&encode(&gradient(64, 64, 2), Effort::Fast).unwrap())
                .unwrap()
                .bit_depth,
            1
        );
        assert_eq!(
            info(&encode(&gradient(64, 64, 4), Effort::Fast).unwrap())
                .unwrap()
                .bit_depth,
            2
        );
        assert_eq!(
            info(&encode(&gradient(64, 64, 9), Effort::Fast).unwrap())
                .unwrap()
                .bit_depth,
            4
        );
        assert_eq!(
            info(&encode(&gradient(64, 64, 99), Effort::Small).unwrap())
                .unwrap()
                .bit_depth,
            8
        );
    }

    #[test]
    fn transparent_pixels_share_one_entry() {
        let mut img = RgbaImage::transparent(16, 16);
        for (i, p) in img.data.chunks_exact_mut(4).enumerate() {
            p.copy_from_slice(&[i as u8, 3, 9, 0]);
        }
        let bytes = encode(&img, Effort::Fast).unwrap();
        let info = info(&bytes).unwrap();
        assert_eq!((info.color_type, info.bit_depth), ("indexed", 1));
        assert_eq!(decode(&bytes).unwrap().opaque_count(), 0);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode(b"not a png").is_err());
        assert!(info(&[0x89, b'P', b'N', b'G']).is_err());
    }
}

//! Text previews of tiles for psql: a tile drawn with Unicode shade blocks in a frame.

/// Draw per-pixel levels (0 = nothing, 1..=255) of a square tile `side` pixels wide as text
/// `cols` characters wide and `cols / 2` lines tall (terminal cells are about twice as tall as
/// wide). Each character shows the mean level of its block (empty pixels count as 0), and any
/// block with heat shows at least the lightest shade, so lone pixels stay visible.
pub fn shade_blocks(levels: &[u8], side: u32, cols: u32) -> String {
    const SHADES: [char; 5] = [' ', '░', '▒', '▓', '█'];
    let cols = cols.clamp(8, side);
    let rows = (cols / 2).max(4);
    let mut out = String::with_capacity(((cols + 3) * (rows + 2) * 3) as usize);
    let border = "─".repeat(cols as usize);
    out.push('┌');
    out.push_str(&border);
    out.push_str("┐\n");
    for r in 0..rows {
        out.push('│');
        let (y0, y1) = (
            r * side / rows,
            ((r + 1) * side / rows).max(r * side / rows + 1),
        );
        for c in 0..cols {
            let (x0, x1) = (
                c * side / cols,
                ((c + 1) * side / cols).max(c * side / cols + 1),
            );
            let mut sum = 0u64;
            for y in y0..y1 {
                let row = &levels[(y * side) as usize..((y + 1) * side) as usize];
                sum += row[x0 as usize..x1 as usize]
                    .iter()
                    .map(|&l| l as u64)
                    .sum::<u64>();
            }
            let mean = sum / ((y1 - y0) * (x1 - x0)) as u64;
            let shade = match (sum, mean) {
                (0, _) => 0,
                (_, m) => 1 + (m as usize * 4 / 256).min(3),
            };
            out.push(SHADES[shade]);
        }
        out.push_str("│\n");
    }
    out.push('└');
    out.push_str(&border);
    out.push('┘');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_show_the_strongest_pixel_of_each_cell() {
        let mut levels = vec![0u8; 256 * 256];
        // The top-left cell (16 x 32 pixels) full of the hottest level; one faint pixel at the
        // bottom right.
        for y in 0..32 {
            levels[y * 256..y * 256 + 16].fill(255);
        }
        levels[255 * 256 + 255] = 1;
        let text = shade_blocks(&levels, 256, 16);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 8 + 2);
        assert!(lines[1].starts_with("│█"));
        assert!(lines[8].ends_with("░│"));
        assert_eq!(lines[4], format!("│{}│", " ".repeat(16)));
        assert!(lines.iter().all(|l| l.chars().count() == 18));
    }
}

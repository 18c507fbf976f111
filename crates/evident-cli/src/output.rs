//! Output for people and for scripts: aligned tables on a terminal, JSON lines otherwise (or with
//! `--json`).

use std::io::{IsTerminal as _, Write as _};

/// Whether to print JSON: asked for, or stdout is not a terminal.
pub fn json_wanted(asked: bool) -> bool {
    asked || !std::io::stdout().is_terminal()
}

/// Prints rows as a table with a header, columns padded to their widest cell (cells are cut at
/// `MAX_CELL` characters).
pub fn table(header: &[&str], rows: &[Vec<String>]) {
    const MAX_CELL: usize = 60;
    let cut = |cell: &str| -> String {
        let clean: String = cell.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
        if clean.chars().count() > MAX_CELL {
            let mut short: String = clean.chars().take(MAX_CELL - 1).collect();
            short.push('…');
            short
        } else {
            clean
        }
    };
    let rows: Vec<Vec<String>> = rows.iter().map(|row| row.iter().map(|c| cut(c)).collect()).collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
    }
    let mut out = std::io::stdout().lock();
    let line = |cells: Vec<&str>| {
        cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    let _ = writeln!(out, "{}", line(header.to_vec()));
    for row in &rows {
        let _ = writeln!(out, "{}", line(row.iter().map(String::as_str).collect()));
    }
}

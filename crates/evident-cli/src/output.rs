//! Output for people and for scripts: aligned tables on a terminal, JSON lines otherwise (or with
//! `--json`); and what happens when the reader goes away (`evident ... --json | head`): every line
//! goes through [`line`] (the `outln!` macro), which ends the process quietly with success on a
//! closed pipe instead of panicking as `println!` does.

use std::io::{IsTerminal as _, Write as _};

/// `println!` for command output: a closed stdout ends the process with success (see [`line`]).
#[macro_export]
macro_rules! outln {
    () => { $crate::output::line(format_args!("")) };
    ($($arg:tt)*) => { $crate::output::line(format_args!($($arg)*)) };
}

/// Writes one line to stdout. When the reader has gone away (a closed pipe), there is no one left
/// to tell: the process ends with success, as `head` expects; any other write error ends it with
/// failure and a message on stderr.
pub fn line(text: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    let written = out.write_fmt(text).and_then(|()| out.write_all(b"\n"));
    if let Err(err) = written {
        if err.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("evident: cannot write to stdout: {err}");
        std::process::exit(1);
    }
}

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
    let format = |cells: Vec<&str>| {
        cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    line(format_args!("{}", format(header.to_vec())));
    for row in &rows {
        line(format_args!("{}", format(row.iter().map(String::as_str).collect())));
    }
}

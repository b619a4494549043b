//! Aligned columns for people (`noncectl jobs`, `workers`), in the manner of `kubectl get`:
//! a header in capitals, columns three spaces apart, numbers right-aligned.

/// How a column's cells line up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// A table being filled row by row.
#[derive(Debug)]
pub struct Table {
    columns: Vec<(&'static str, Align)>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(columns: &[(&'static str, Align)]) -> Self {
        Table { columns: columns.to_vec(), rows: Vec::new() }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.columns.len());
        self.rows.push(cells);
    }

    /// The table as lines (no trailing spaces), header first.
    pub fn render(&self) -> String {
        let width = |i: usize| {
            let cells = self.rows.iter().map(|r| r.get(i).map_or(0, |c| c.chars().count()));
            cells.chain([self.columns[i].0.len()]).max().unwrap_or(0)
        };
        let widths: Vec<usize> = (0..self.columns.len()).map(width).collect();
        let header: Vec<String> = self.columns.iter().map(|(h, _)| h.to_string()).collect();
        let mut out = String::new();
        for cells in std::iter::once(&header).chain(&self.rows) {
            let mut line = String::new();
            for (i, cell) in cells.iter().enumerate() {
                let pad = widths[i].saturating_sub(cell.chars().count());
                if i > 0 {
                    line.push_str("   ");
                }
                match self.columns[i].1 {
                    Align::Left => {
                        line.push_str(cell);
                        line.push_str(&" ".repeat(pad));
                    }
                    Align::Right => {
                        line.push_str(&" ".repeat(pad));
                        line.push_str(cell);
                    }
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out.pop();
        out
    }
}

/// A count in short form: 56950784 -> "57.0M", 4294967296 -> "4.29G".
pub fn count(n: u128) -> String {
    let f = n as f64;
    match n {
        n if n >= 1_000_000_000_000_000_000 => format!("{:.2}E", f / 1e18),
        n if n >= 1_000_000_000_000_000 => format!("{:.2}P", f / 1e15),
        n if n >= 1_000_000_000_000 => format!("{:.2}T", f / 1e12),
        n if n >= 1_000_000_000 => format!("{:.2}G", f / 1e9),
        n if n >= 1_000_000 => format!("{:.1}M", f / 1e6),
        n if n >= 10_000 => format!("{:.0}k", f / 1e3),
        n => n.to_string(),
    }
}

/// Seconds as a short duration: 5 -> "5s", 92 -> "1m32s", 7300 -> "2h1m", 90000 -> "1d1h".
pub fn duration(seconds: f64) -> String {
    if !seconds.is_finite() || seconds < 0.0 {
        return "-".into();
    }
    if seconds < 10.0 {
        return format!("{seconds:.1}s");
    }
    let s = seconds.round() as u64;
    match s {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{}s", s / 60, s % 60),
        s if s < 86_400 => format!("{}h{}m", s / 3600, s % 3600 / 60),
        s => format!("{}d{}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// The share done, for people: never "100%" before the end, never "0%" once started.
pub fn percent(done: u128, total: u128) -> String {
    if total == 0 {
        return "-".into();
    }
    let p = done as f64 / total as f64 * 100.0;
    match p {
        _ if done >= total => "100%".into(),
        p if p >= 99.95 => "99.9%".into(),
        p if p > 0.0 && p < 0.05 => "<0.1%".into(),
        p => format!("{p:.1}%"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up_and_numbers_sit_right() {
        let mut t = Table::new(&[("JOB", Align::Left), ("RATE", Align::Right)]);
        t.row(vec!["a".into(), "1".into()]);
        t.row(vec!["bbbbb".into(), "1000".into()]);
        assert_eq!(t.render(), "JOB     RATE\na          1\nbbbbb   1000");
    }

    #[test]
    fn short_forms() {
        assert_eq!(count(56_950_784), "57.0M");
        assert_eq!(count(1 << 64), "18.45E");
        assert_eq!(duration(92.0), "1m32s");
        assert_eq!(duration(3.25), "3.2s");
        assert_eq!(percent(1, 1 << 64), "<0.1%");
        assert_eq!(percent(999_999, 1_000_000), "99.9%");
        assert_eq!(percent(0, 10), "0.0%");
    }
}

//! Markdown tables padded to line up, so the same text reads well on a terminal and can be
//! pasted into the README as is.

pub struct Table {
    headers: Vec<String>,
    /// Right-aligned columns (numbers).
    right: Vec<bool>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// Columns whose header starts with '>' are right-aligned (the '>' is not shown).
    pub fn new(headers: &[&str]) -> Table {
        Table {
            headers: headers
                .iter()
                .map(|h| h.trim_start_matches('>').to_string())
                .collect(),
            right: headers.iter().map(|h| h.starts_with('>')).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let columns = self.headers.len();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let line = |cells: &[String]| {
            let padded: Vec<String> = (0..columns)
                .map(|i| {
                    let cell = cells.get(i).map(String::as_str).unwrap_or("");
                    let width = widths[i].max(3);
                    if self.right[i] {
                        format!("{cell:>width$}")
                    } else {
                        format!("{cell:<width$}")
                    }
                })
                .collect();
            format!("| {} |\n", padded.join(" | "))
        };
        let rule: Vec<String> = (0..columns)
            .map(|i| {
                let width = widths[i].max(3);
                if self.right[i] {
                    format!("{}:", "-".repeat(width - 1))
                } else {
                    "-".repeat(width)
                }
            })
            .collect();
        let mut out = line(&self.headers);
        out += &format!("| {} |\n", rule.join(" | "));
        for row in &self.rows {
            out += &line(row);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::Table;

    #[test]
    fn columns_line_up_and_numbers_align_right() {
        let mut table = Table::new(&["tool", ">MB/s"]);
        table.row(vec!["ferry inspect".into(), "412.5".into()]);
        table.row(vec!["rdb".into(), "98.1".into()]);
        assert_eq!(
            table.render(),
            "| tool          |  MB/s |\n\
             | ------------- | ----: |\n\
             | ferry inspect | 412.5 |\n\
             | rdb           |  98.1 |\n"
        );
    }
}

//! The benchmark's output: one markdown table per section.

/// One section of the report.
pub struct Section {
    pub title: String,
    /// What was measured and how, in a sentence or two.
    pub note: String,
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Section {
    pub fn new(title: &str, note: &str, header: &[&str]) -> Self {
        Self {
            title: title.to_owned(),
            note: note.to_owned(),
            header: header.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        assert_eq!(cells.len(), self.header.len(), "a row per column");
        self.rows.push(cells);
    }

    /// The section as markdown: a heading, the note, and the table with its
    /// columns padded so it also reads well in a terminal.
    pub fn markdown(&self) -> String {
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let line = |cells: &[String]| {
            let padded: Vec<String> = cells
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect();
            format!("| {} |\n", padded.join(" | "))
        };
        let mut out = format!("### {}\n\n{}\n\n", self.title, self.note);
        out += &line(&self.header);
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        out += &line(&rule);
        for row in &self.rows {
            out += &line(row);
        }
        out
    }
}

/// `value` with `decimals` digits after the point.
pub fn fixed(value: f64, decimals: usize) -> String {
    format!("{value:.decimals$}")
}

/// `ours / reference` as `0.87×`.
pub fn ratio(ours: f64, reference: f64) -> String {
    if reference == 0.0 {
        "–".to_owned()
    } else {
        format!("{:.2}×", ours / reference)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_section_renders_as_an_aligned_markdown_table() {
        let mut s = Section::new("T", "note", &["a", "long header"]);
        s.row(vec!["wide cell".into(), "1".into()]);
        assert_eq!(
            s.markdown(),
            "### T\n\nnote\n\n| a         | long header |\n| --------- | ----------- |\n| wide cell | 1           |\n"
        );
        assert_eq!(ratio(1.0, 2.0), "0.50×");
        assert_eq!(fixed(2.345, 1), "2.3");
    }
}

//! Statistics reports as CSV and Excel (R7): Japanese headers, minutes with
//! one decimal, one row per bucket and dimension (the office, each section,
//! each queue, each procedure tag).

use madoguchi_core::config::Config;
use madoguchi_core::stats::{Cell, Dim, Granularity};
use rust_xlsxwriter::{Format, FormatAlign, Workbook, XlsxError};

/// The columns of every report, in order.
pub const HEADERS: [&str; 18] = [
    "期間",
    "区分",
    "名称",
    "発券数・受付数",
    "呼出数",
    "平均待ち時間（分）",
    "最小待ち時間（分）",
    "最大待ち時間（分）",
    "対応件数",
    "平均対応時間（分）",
    "不在",
    "回付",
    "取消",
    "未対応",
    "受付終了で発券せず",
    "予想待ち時間の平均誤差（分）",
    "予想の偏り（%）",
    "予想範囲内の割合（%）",
];

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("cannot write the workbook: {0}")]
    Xlsx(#[from] XlsxError),
    #[error("{0:?} cannot be written in Shift_JIS; use UTF-8")]
    NotShiftJis(String),
}

/// CSV text encodings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// UTF-8 with a byte-order mark, so Japanese Excel opens it correctly.
    Utf8Bom,
    ShiftJis,
}

/// A report row ready to write.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub period: String,
    pub kind: &'static str,
    pub name: String,
    pub cell: Cell,
}

fn minutes(secs: Option<f64>) -> Option<f64> {
    secs.map(|s| (s / 60.0 * 10.0).round() / 10.0)
}

impl Row {
    pub fn mean_wait_min(&self) -> Option<f64> {
        minutes(self.cell.mean_wait_s())
    }
    pub fn min_wait_min(&self) -> Option<f64> {
        minutes((self.cell.waits > 0).then_some(f64::from(self.cell.wait_min_s)))
    }
    pub fn max_wait_min(&self) -> Option<f64> {
        minutes((self.cell.waits > 0).then_some(f64::from(self.cell.wait_max_s)))
    }
    pub fn mean_service_min(&self) -> Option<f64> {
        minutes(self.cell.mean_service_s())
    }

    /// The estimate's mean absolute error, in minutes (issue 19).
    pub fn est_mae_min(&self) -> Option<f64> {
        minutes(self.cell.est_mae_s())
    }
    /// The estimate's lean, in percent of the mean actual wait (+ = long).
    pub fn est_bias_pct(&self) -> Option<f64> {
        self.cell
            .est_bias_share()
            .map(|x| (x * 1000.0).round() / 10.0)
    }
    /// The share of waits inside the range shown, in percent.
    pub fn est_coverage_pct(&self) -> Option<f64> {
        self.cell
            .est_coverage()
            .map(|x| (x * 1000.0).round() / 10.0)
    }

    /// The row's fields as CSV text.
    pub fn fields(&self) -> [String; 18] {
        let m = |v: Option<f64>| v.map(|x| format!("{x:.1}")).unwrap_or_default();
        let c = &self.cell;
        [
            self.period.clone(),
            self.kind.to_string(),
            self.name.clone(),
            c.issued.to_string(),
            c.waits.to_string(),
            m(self.mean_wait_min()),
            m(self.min_wait_min()),
            m(self.max_wait_min()),
            c.served.to_string(),
            m(self.mean_service_min()),
            c.absent.to_string(),
            c.transferred.to_string(),
            c.cancelled.to_string(),
            c.unserved.to_string(),
            c.turned_away.to_string(),
            m(self.est_mae_min()),
            m(self.est_bias_pct()),
            m(self.est_coverage_pct()),
        ]
    }
}

/// Names the dimensions of report cells.
pub fn rows(config: &Config, cells: &[(String, Dim, Cell)]) -> Vec<Row> {
    cells
        .iter()
        .map(|(bucket, dim, cell)| {
            let (kind, name) = match dim {
                Dim::All => ("全体", config.office.name.ja.clone()),
                Dim::Section(s) => (
                    "係",
                    config
                        .sections
                        .iter()
                        .find(|x| &x.id == s)
                        .map_or(s.clone(), |x| x.name.ja.clone()),
                ),
                Dim::Queue(q) => (
                    "業種（受付区分）",
                    config.queue(q).map_or(q.clone(), |x| x.name.ja.clone()),
                ),
                Dim::Tag(t) => (
                    "業種（手続）",
                    config.tag(t).map_or(t.clone(), |x| x.name.ja.clone()),
                ),
            };
            Row {
                period: bucket.clone(),
                kind,
                name,
                cell: *cell,
            }
        })
        .collect()
}

/// A cell a spreadsheet would read as a formula (`=`, `+`, `-`, `@`, tab,
/// carriage return first) gets a leading `'`, as OWASP's CSV injection
/// guidance recommends: names come from the settings, and a name such as
/// `=HYPERLINK(…)` must stay text (issue 23). Numbers are left as they are.
fn neutralised(s: &str) -> std::borrow::Cow<'_, str> {
    let risky = s.starts_with(['=', '+', '-', '@', '\t', '\r']);
    if risky && s.parse::<f64>().is_err() {
        std::borrow::Cow::Owned(format!("'{s}"))
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}

fn csv_field(s: &str) -> String {
    let s = &*neutralised(s);
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The report as CSV bytes (CRLF line ends, as Excel writes them).
pub fn csv(rows: &[Row], encoding: Encoding) -> Result<Vec<u8>, ExportError> {
    let mut text = String::new();
    text.push_str(&HEADERS.map(csv_field).join(","));
    text.push_str("\r\n");
    for r in rows {
        text.push_str(&r.fields().map(|f| csv_field(&f)).join(","));
        text.push_str("\r\n");
    }
    match encoding {
        Encoding::Utf8Bom => {
            let mut out = vec![0xef, 0xbb, 0xbf];
            out.extend_from_slice(text.as_bytes());
            Ok(out)
        }
        Encoding::ShiftJis => {
            let (bytes, _, bad) = encoding_rs::SHIFT_JIS.encode(&text);
            if bad {
                let culprit = text
                    .chars()
                    .find(|c| encoding_rs::SHIFT_JIS.encode(&c.to_string()).2)
                    .map(String::from)
                    .unwrap_or_default();
                return Err(ExportError::NotShiftJis(culprit));
            }
            Ok(bytes.into_owned())
        }
    }
}

/// Sheet name of a granularity.
pub fn sheet_name(g: Granularity) -> &'static str {
    match g {
        Granularity::Hour => "時間別",
        Granularity::Day => "日別",
        Granularity::Month => "月別",
    }
}

/// Display width of text in Excel's character units (full-width counts 2).
fn width(s: &str) -> f64 {
    s.chars()
        .map(|c| if c.is_ascii() { 1.0 } else { 2.0 })
        .sum()
}

/// A workbook with one sheet per granularity: header row frozen, minutes as
/// numbers with one decimal, columns as wide as their contents.
pub fn xlsx(sheets: &[(Granularity, Vec<Row>)]) -> Result<Vec<u8>, ExportError> {
    let mut wb = Workbook::new();
    let header = Format::new()
        .set_bold()
        .set_align(FormatAlign::Center)
        .set_text_wrap();
    let minutes_fmt = Format::new().set_num_format("0.0");
    for (g, rows) in sheets {
        let ws = wb.add_worksheet();
        ws.set_name(sheet_name(*g))?;
        let mut widths: Vec<f64> = HEADERS.iter().map(|h| width(h).min(14.0)).collect();
        for (c, h) in HEADERS.iter().enumerate() {
            ws.write_string_with_format(0, c as u16, *h, &header)?;
        }
        for (i, r) in rows.iter().enumerate() {
            let row = i as u32 + 1;
            ws.write_string(row, 0, &r.period)?;
            ws.write_string(row, 1, r.kind)?;
            ws.write_string(row, 2, &r.name)?;
            let c = &r.cell;
            let counts = [
                (3, c.issued),
                (4, c.waits),
                (8, c.served),
                (10, c.absent),
                (11, c.transferred),
                (12, c.cancelled),
                (13, c.unserved),
                (14, c.turned_away),
            ];
            for (col, v) in counts {
                ws.write_number(row, col, v as f64)?;
            }
            let mins = [
                (5, r.mean_wait_min()),
                (6, r.min_wait_min()),
                (7, r.max_wait_min()),
                (9, r.mean_service_min()),
                (15, r.est_mae_min()),
                (16, r.est_bias_pct()),
                (17, r.est_coverage_pct()),
            ];
            for (col, v) in mins {
                if let Some(v) = v {
                    ws.write_number_with_format(row, col, v, &minutes_fmt)?;
                }
            }
            for (col, text) in [(0, &r.period), (2, &r.name)] {
                widths[col] = widths[col].max(width(text));
            }
            widths[1] = widths[1].max(width(r.kind));
        }
        for (c, w) in widths.iter().enumerate() {
            ws.set_column_width(c as u16, w + 2.0)?;
        }
        ws.set_freeze_panes(1, 0)?;
        ws.set_row_height(0, 32)?;
    }
    Ok(wb.save_to_buffer()?)
}

#[cfg(test)]
mod csv_tests {
    use super::*;

    #[test]
    fn formula_cells_stay_text() {
        for (cell, want) in [
            (
                "=HYPERLINK(\"http://x\",\"y\")",
                "\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\"",
            ),
            ("+1+cmd", "'+1+cmd"),
            ("-2+3", "'-2+3"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\t=1", "'\t=1"),
            ("\r=1", "\"'\r=1\""),
            ("住民異動", "住民異動"),
            ("12.5", "12.5"),
            ("-1.5", "-1.5"),
        ] {
            assert_eq!(csv_field(cell), want, "{cell:?}");
        }
    }
}

//! Statistics exports checked against an independent recomputation: a plain
//! loop over the exported event log, following docs/statistics.md, compared
//! with every cell of the CSV; the Excel workbook is read back with calamine
//! and compared with the CSV.

use std::collections::BTreeMap;

use calamine::{Data, Reader, Xlsx};
use chrono::{DateTime, FixedOffset};
use madoguchi_core::config::Config;
use serde_json::Value;

use crate::util::ok;

#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct Acc {
    issued: u64,
    waits: u64,
    wait_sum: u64,
    wait_min: u64,
    wait_max: u64,
    served: u64,
    service_sum: u64,
    absent: u64,
    transferred: u64,
    cancelled: u64,
    unserved: u64,
}

#[derive(Debug, Clone)]
struct T {
    queue: String,
    leg_start: i64,
    called: bool,
    service_start: i64,
}

fn secs(a: i64, b: i64) -> u64 {
    ((a - b).max(0) / 1000) as u64
}

struct Recompute {
    cfg: Config,
    tz: FixedOffset,
    by: BTreeMap<(String, String, String), Acc>,
    gran: &'static str,
}

impl Recompute {
    fn bucket(&self, ms: i64) -> String {
        let t = DateTime::from_timestamp_millis(ms)
            .expect("time")
            .with_timezone(&self.tz);
        match self.gran {
            "hour" => t.format("%Y-%m-%d %H:00").to_string(),
            "day" => t.format("%Y-%m-%d").to_string(),
            _ => t.format("%Y-%m").to_string(),
        }
    }

    fn dim(&self, d: &str) -> (String, String) {
        let (kind, id) = d.split_once(':').unwrap_or(("all", ""));
        match kind {
            "section" => (
                "係".into(),
                self.cfg
                    .sections
                    .iter()
                    .find(|s| s.id == id)
                    .expect("section")
                    .name
                    .ja
                    .clone(),
            ),
            "queue" => (
                "業種（受付区分）".into(),
                self.cfg.queue(id).expect("queue").name.ja.clone(),
            ),
            "tag" => (
                "業種（手続）".into(),
                self.cfg.tag(id).expect("tag").name.ja.clone(),
            ),
            _ => ("全体".into(), self.cfg.office.name.ja.clone()),
        }
    }

    fn add(&mut self, at: i64, dims: &[String], f: impl Fn(&mut Acc)) {
        for d in dims {
            let (kind, name) = self.dim(d);
            let key = (self.bucket(at), kind, name);
            f(self.by.entry(key).or_default());
        }
    }

    fn wait(a: &mut Acc, w: u64) {
        a.wait_min = if a.waits == 0 { w } else { a.wait_min.min(w) };
        a.wait_max = a.wait_max.max(w);
        a.waits += 1;
        a.wait_sum += w;
    }

    fn run(&mut self, records: &[Value]) {
        let mut tickets: BTreeMap<u64, T> = BTreeMap::new();
        let cfg = self.cfg.clone();
        for r in records {
            let at = r["at_ms"].as_i64().expect("at");
            for e in r["events"].as_array().expect("events") {
                let n = e["number"].as_u64().unwrap_or(0);
                let section = |c: &Value| {
                    format!(
                        "section:{}",
                        cfg.counter(c.as_u64().expect("counter") as u16)
                            .expect("c")
                            .section
                    )
                };
                match e["type"].as_str().expect("type") {
                    "day_opened" => tickets.clear(),
                    "ticket_issued" => {
                        let q = e["category"].as_str().expect("category").to_string();
                        self.add(at, &["all".into(), format!("queue:{q}")], |a| a.issued += 1);
                        tickets.insert(
                            n,
                            T {
                                queue: q,
                                leg_start: at,
                                called: false,
                                service_start: at,
                            },
                        );
                    }
                    "called" => {
                        let t = tickets.get_mut(&n).expect("ticket");
                        t.service_start = at;
                        if !t.called {
                            t.called = true;
                            let (start, w, q) =
                                (t.leg_start, secs(at, t.leg_start), t.queue.clone());
                            self.add(start, &["all".into(), format!("queue:{q}")], |a| {
                                Self::wait(a, w)
                            });
                            let s = section(&e["counter"]);
                            self.add(start, &[s], |a| {
                                Self::wait(a, w);
                                a.issued += 1;
                            });
                        }
                    }
                    "resumed" => tickets.get_mut(&n).expect("ticket").service_start = at,
                    "started" => tickets.get_mut(&n).expect("ticket").service_start = at,
                    "completed" | "transferred" => {
                        let moved = e["type"] == "transferred";
                        let t = tickets.get(&n).expect("ticket").clone();
                        let tags: Vec<String> = e["tags"]
                            .as_array()
                            .map(|a| {
                                a.iter()
                                    .filter_map(|x| x.as_str())
                                    .map(|x| format!("tag:{x}"))
                                    .collect()
                            })
                            .unwrap_or_default();
                        if e.get("counter").is_some() {
                            let svc = secs(at, t.service_start);
                            let dims = [
                                "all".into(),
                                format!("queue:{}", t.queue),
                                section(&e["counter"]),
                            ];
                            self.add(t.service_start, &dims, |a| {
                                a.served += 1;
                                a.service_sum += svc;
                            });
                            if moved {
                                // 回付 belongs to the moment of the transfer.
                                self.add(at, &dims, |a| a.transferred += 1);
                            }
                            self.add(t.service_start, &tags, |a| {
                                a.issued += 1;
                                a.served += 1;
                                a.service_sum += svc;
                            });
                        } else {
                            self.add(at, &["all".into(), format!("queue:{}", t.queue)], |a| {
                                a.transferred += 1
                            });
                        }
                        if moved {
                            let to = e["to"].as_str().expect("to").to_string();
                            self.add(at, &[format!("queue:{to}")], |a| a.issued += 1);
                            let t = tickets.get_mut(&n).expect("ticket");
                            t.queue = to;
                            t.leg_start = at;
                            t.called = false;
                        }
                    }
                    "absent" => {
                        let q = tickets.get(&n).expect("ticket").queue.clone();
                        let s = section(&e["counter"]);
                        self.add(at, &["all".into(), format!("queue:{q}"), s], |a| {
                            a.absent += 1
                        });
                    }
                    "cancelled" => {
                        let q = tickets.get(&n).expect("ticket").queue.clone();
                        self.add(at, &["all".into(), format!("queue:{q}")], |a| {
                            a.cancelled += 1
                        });
                    }
                    "unserved" => {
                        let q = tickets.get(&n).expect("ticket").queue.clone();
                        self.add(at, &["all".into(), format!("queue:{q}")], |a| {
                            a.unserved += 1
                        });
                    }
                    _ => {}
                }
            }
        }
    }

    fn expected_rows(&self) -> BTreeMap<(String, String, String), Vec<String>> {
        let m = |sum: u64, n: u64| {
            if n == 0 {
                String::new()
            } else {
                format!(
                    "{:.1}",
                    ((sum as f64 / n as f64) / 60.0 * 10.0).round() / 10.0
                )
            }
        };
        let one = |s: u64, n: u64| {
            if n == 0 {
                String::new()
            } else {
                format!("{:.1}", (s as f64 / 60.0 * 10.0).round() / 10.0)
            }
        };
        self.by
            .iter()
            .map(|(k, a)| {
                (
                    k.clone(),
                    vec![
                        a.issued.to_string(),
                        a.waits.to_string(),
                        m(a.wait_sum, a.waits),
                        one(a.wait_min, a.waits),
                        one(a.wait_max, a.waits),
                        a.served.to_string(),
                        m(a.service_sum, a.served),
                        a.absent.to_string(),
                        a.transferred.to_string(),
                        a.cancelled.to_string(),
                        a.unserved.to_string(),
                        // 受付終了: the simulated days close only by the day.
                        "0".to_string(),
                    ],
                )
            })
            .collect()
    }
}

fn parse_csv(bytes: &[u8]) -> BTreeMap<(String, String, String), Vec<String>> {
    let text =
        std::str::from_utf8(bytes.strip_prefix(&[0xef, 0xbb, 0xbf]).expect("BOM")).expect("utf-8");
    let mut lines = text.split("\r\n").filter(|l| !l.is_empty());
    let header = lines.next().expect("header");
    assert!(
        header.starts_with("期間,区分,名称,発券数・受付数"),
        "{header}"
    );
    lines
        .map(|l| {
            let f: Vec<String> = l.split(',').map(String::from).collect();
            assert_eq!(f.len(), 18, "{l}");
            // The estimate's accuracy (the last three columns) is checked
            // by hand in core's statistics tests.
            (
                (f[0].clone(), f[1].clone(), f[2].clone()),
                f[3..15].to_vec(),
            )
        })
        .collect()
}

#[test]
fn exported_statistics_match_an_independent_recomputation() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    let p = |name: &str| dir.path().join(name).display().to_string();
    ok(
        &data,
        &[
            "simulate",
            "--days",
            "23",
            "--start",
            "2026-11-01",
            "--seed",
            "77",
            "--volume",
            "0.5",
            "--out",
            &p("month.jsonl"),
        ],
    );
    ok(&data, &["import", &p("month.jsonl")]);
    let records: Vec<Value> = ok(&data, &["export"])
        .lines()
        .map(|l| serde_json::from_str(l).expect("record"))
        .collect();
    let cfg_text = records[0]["events"][0]["source"].as_str().expect("config");
    let cfg = Config::parse(cfg_text, "export").expect("config");
    let tz = cfg.office.utc_offset;
    let mut xlsx_sheets = BTreeMap::new();
    for (gran, sheet) in [("hour", "時間別"), ("day", "日別"), ("month", "月別")] {
        let out = p(&format!("{gran}.csv"));
        ok(
            &data,
            &[
                "stats",
                "--from",
                "2026-11-01",
                "--to",
                "2026-12-31",
                "--by",
                gran,
                "--out",
                &out,
            ],
        );
        let got = parse_csv(&std::fs::read(&out).expect("csv"));
        let mut r = Recompute {
            cfg: cfg.clone(),
            tz,
            by: BTreeMap::new(),
            gran,
        };
        r.run(&records);
        let want = r.expected_rows();
        assert_eq!(got.len(), want.len(), "{gran}: rows");
        for (k, v) in &want {
            assert_eq!(got.get(k), Some(v), "{gran} {k:?}");
        }
        xlsx_sheets.insert(sheet, got);
    }
    // The workbook, read back by a real xlsx reader, says the same.
    ok(
        &data,
        &[
            "stats",
            "--from",
            "2026-11-01",
            "--to",
            "2026-12-31",
            "--format",
            "xlsx",
            "--out",
            &p("all.xlsx"),
        ],
    );
    let mut wb: Xlsx<_> = calamine::open_workbook(p("all.xlsx")).expect("open xlsx");
    assert_eq!(wb.sheet_names(), ["時間別", "日別", "月別"]);
    for (sheet, csv) in &xlsx_sheets {
        let range = wb.worksheet_range(sheet).expect("sheet");
        let mut rows = range.rows();
        let header: Vec<String> = rows
            .next()
            .expect("header")
            .iter()
            .map(|c| c.to_string())
            .collect();
        assert_eq!(header[5], "平均待ち時間（分）");
        for row in rows {
            let text = |i: usize, c: &Data| match c {
                Data::Empty => String::new(),
                Data::Float(f) if [5, 6, 7, 9].contains(&i) => format!("{f:.1}"),
                other => other.to_string(),
            };
            let cells: Vec<String> = row.iter().enumerate().map(|(i, c)| text(i, c)).collect();
            let key = (cells[0].clone(), cells[1].clone(), cells[2].clone());
            assert_eq!(
                csv.get(&key),
                Some(&cells[3..15].to_vec()),
                "{sheet} {key:?}"
            );
        }
        assert_eq!(range.height() - 1, csv.len(), "{sheet}: rows");
    }
    // Shift_JIS on request.
    ok(
        &data,
        &[
            "stats",
            "--from",
            "2026-11-01",
            "--to",
            "2026-12-31",
            "--by",
            "month",
            "--encoding",
            "sjis",
            "--out",
            &p("sjis.csv"),
        ],
    );
    let sjis = std::fs::read(p("sjis.csv")).expect("sjis");
    let (text, _, bad) = encoding_rs::SHIFT_JIS.decode(&sjis);
    assert!(!bad && text.starts_with("期間,区分,名称"), "{text}");
}

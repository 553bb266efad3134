//! The audit page through the real server (R11, issue 18): pages of 50
//! records, newest first, with links both ways; each page shows the
//! hash-chain check of its own records, which finds a record changed on
//! disk (CRC rewritten to match) on the page that shows it; the index is
//! read back after a restart; the one-day export has that day only.

use reqwest::blocking::Client;
use reqwest::StatusCode;
use serde_json::json;

use crate::server::{cmd, open_today, Server};
use crate::util::today;

fn page(c: &Client, s: &Server, q: &str) -> String {
    let r = c.get(s.url(&format!("/audit?{q}"))).send().expect("page");
    assert_eq!(r.status(), StatusCode::OK);
    r.text().expect("html")
}

fn rows(html: &str) -> Vec<u64> {
    html.split("<tr data-kinds=")
        .skip(1)
        .map(|r| {
            let cell = r.split("<td>").nth(1).unwrap_or("");
            cell.split('<').next().unwrap_or("").parse().expect("seq")
        })
        .collect()
}

/// CRC-32 (IEEE), as the log frames records.
fn crc32(parts: &[&[u8]]) -> u32 {
    let mut crc = !0u32;
    for b in parts.iter().flat_map(|p| p.iter()) {
        crc ^= u32::from(*b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Changes a digit in record `seq`'s payload in the first segment and
/// rewrites its CRC: only the hash chain can tell.
fn tamper(data: &std::path::Path, seq: u64) {
    let file = data.join("log").join(format!("{:020}.mlog", 1));
    let mut bytes = std::fs::read(&file).expect("segment");
    let mut at = 8;
    loop {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("len")) as usize;
        let s = u64::from_le_bytes(bytes[at + 8..at + 16].try_into().expect("seq"));
        if s == seq {
            let payload = at + 48;
            let digit = (payload..payload + len)
                .find(|&i| bytes[i].is_ascii_digit())
                .expect("a digit");
            bytes[digit] = if bytes[digit] == b'9' {
                b'8'
            } else {
                bytes[digit] + 1
            };
            let crc = crc32(&[&bytes[at + 8..at + 48], &bytes[payload..payload + len]]);
            bytes[at + 4..at + 8].copy_from_slice(&crc.to_le_bytes());
            break;
        }
        at += 48 + len;
    }
    std::fs::write(&file, bytes).expect("write");
}

#[test]
fn the_audit_page_pages_newest_first_and_checks_each_page() {
    let mut s = Server::start();
    let (c, csrf) = s.admin();
    open_today(&c, &s, &csrf, &[10]);
    for _ in 0..70 {
        let (st, _) = cmd(
            &c,
            &s,
            &csrf,
            json!({"command": "issue_ticket", "category": "idou"}),
        );
        assert_eq!(st, StatusCode::OK);
    }
    let first = page(&c, &s, "");
    let newest = rows(&first);
    assert_eq!(newest.len(), 50, "a page of 50");
    assert!(
        newest.windows(2).all(|w| w[0] == w[1] + 1),
        "newest first, in a run: {newest:?}"
    );
    let total: u64 = first
        .split("<p role=\"status\">")
        .nth(1)
        .and_then(|t| t.split(' ').next())
        .and_then(|t| t.parse().ok())
        .expect("total");
    assert_eq!(newest[0], total, "every record is counted (none filtered)");
    assert!(first.contains("この頁の改ざん検査: OK"), "{first}");
    assert!(first.contains("1 / 2 頁"));
    assert!(
        first.contains("audit?date=&amp;counter=&amp;staff=&amp;ticket=&amp;page=2\" rel=\"next\""),
        "a link to the older records: {first}"
    );
    let second = page(&c, &s, "page=2");
    let older = rows(&second);
    assert_eq!(
        older.first(),
        Some(&(newest[49] - 1)),
        "the next page goes on"
    );
    assert_eq!(older.last(), Some(&1), "down to the first record");
    assert!(second.contains("rel=\"prev\"") && !second.contains("rel=\"next\""));
    assert!(second.contains("この頁の改ざん検査: OK"));
    // Past the end: the last page.
    assert_eq!(rows(&page(&c, &s, "page=99")), older);
    // A filter pages too, and keeps itself in the links.
    let mine = page(&c, &s, "staff=admin");
    assert!(
        mine.contains("staff=admin&amp;ticket=&amp;page=2"),
        "{mine}"
    );
    assert_eq!(rows(&mine).len(), 50);
    let bad = c.get(s.url("/audit?page=x")).send().expect("page");
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);

    // After a restart the index is read back from its sidecar.
    assert!(s.data_dir().join("data/audit.idx").exists());
    s.restart();
    let (c, _) = s.admin();
    let again = page(&c, &s, "");
    assert!(again.contains("この頁の改ざん検査: OK"));
    assert_eq!(
        rows(&again)[1..],
        newest[..49],
        "the same records, the new sign-in on top"
    );

    // The export of today has today's records only, oldest first.
    let day = c
        .get(s.url(&format!("/api/audit/export?date={}", today())))
        .send()
        .expect("export")
        .text()
        .expect("text");
    let seqs: Vec<u64> = day
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).expect("json")["seq"]
                .as_u64()
                .expect("seq")
        })
        .collect();
    assert!(
        seqs.len() > 70 && seqs.windows(2).all(|w| w[0] < w[1]),
        "{seqs:?}"
    );
    let none = c
        .get(s.url("/api/audit/export?date=2001-01-01"))
        .send()
        .expect("export")
        .text()
        .expect("text");
    assert!(none.is_empty());

    // A record of the second page changed on disk: that page says so; the
    // first page does not show it and stays OK.
    // (last: the server would refuse to start on a broken chain)
    tamper(&s.data_dir().join("data"), 5);
    let second = page(&c, &s, "page=2");
    assert!(
        second.contains("この頁の改ざん検査: 不一致 — 記録 6 が"),
        "{second}"
    );
    assert!(page(&c, &s, "").contains("この頁の改ざん検査: OK"));
}

//! ふりがな that keeps words whole (issue 18, R12): on the kiosk in
//! やさしい日本語 and on the mobile ticket page (its labels carry ふりがな
//! in plain Japanese too), every ruby word's characters sit side by side on
//! one line — a reading wider than its word (しょうめい over 証明) no longer
//! spreads the word apart as 「証 明」 (without the fix: 証明 laid out
//! 95.9 px wide for 76.8 px of text). Measured in Chromium: each ruby
//! word's laid-out width against the same text set plainly.

use serde_json::{json, Value};

use crate::server::{cmd, Server};
use crate::util::today;
use crate::webdriver::Session;

/// Every visible ruby whose base characters are not adjacent on one line:
/// "word: gap px".
const SPLIT_WORDS: &str = r#"
const bad = [];
let seen = 0;
for (const r of document.querySelectorAll('ruby')) {
  if (r.offsetParent === null) continue;
  const base = Array.from(r.childNodes).find(n => n.nodeType === 3 && n.textContent.trim().length > 0);
  if (!base) continue;
  seen += 1;
  const text = base.textContent;
  const range = document.createRange();
  range.selectNodeContents(base);
  const lines = range.getClientRects().length;
  const laid = range.getBoundingClientRect().width;
  // The same word set plainly in the same font: its natural width.
  const plain = document.createElement('span');
  plain.style.font = getComputedStyle(r).font;
  plain.style.whiteSpace = 'nowrap';
  plain.textContent = text;
  document.body.appendChild(plain);
  const natural = plain.getBoundingClientRect().width;
  plain.remove();
  if (lines > 1 || laid - natural > 1) bad.push(`${text}: ${laid.toFixed(1)} px laid out, ${natural.toFixed(1)} px natural, ${lines} line(s)`);
}
return {seen, bad};
"#;

fn check(b: &Session<'_>, page: &str) {
    let v: Value = b.eval(SPLIT_WORDS, json!([]));
    assert!(
        v["seen"].as_u64().unwrap_or(0) > 0,
        "{page}: no ruby shown: {v}"
    );
    assert_eq!(v["bad"], json!([]), "{page}: words split apart");
}

#[test]
fn ruby_words_stay_whole_on_the_kiosk_and_the_ticket_page() {
    let s = Server::start();
    let (c, csrf) = s.admin();
    cmd(
        &c,
        &s,
        &csrf,
        json!({"command": "open_day", "date": today()}),
    );
    let (_, issued) = cmd(
        &c,
        &s,
        &csrf,
        json!({"command": "issue_ticket", "category": "koseki"}),
    );
    let number = issued["ticket"].as_u64().expect("number");
    let driver = crate::webdriver::Driver::start();
    let k = driver.session();
    k.enrol(&s.kiosk_enrol);
    k.wait_text("h1", "番号札をお取りください");
    k.click("button[data-set-lang=easy]");
    k.wait_text("#categories", "しょうめい");
    check(&k, "kiosk (やさしい日本語)");
    let v = k.axe();
    assert!(v.is_empty(), "kiosk in やさしい日本語: {v:#?}");
    if let Some(dir) = std::env::var_os("MADOGUCHI_SCREENSHOTS")
        .map(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/docs/screenshots"))
    {
        std::fs::write(format!("{dir}/kiosk-easy-ruby.png"), k.screenshot()).expect("shot");
    }

    let m = driver.session();
    m.goto(&s.url(&format!("/m#{}/{number}", today())));
    m.wait_text("#mine", &number.to_string());
    m.click("button[data-set-lang=ja]");
    check(&m, "ticket page (日本語)");
    let labels = m.text(".mine-detail");
    assert!(
        labels.contains("うけつけ"),
        "ふりがな on the labels: {labels}"
    );
    m.click("button[data-set-lang=easy]");
    check(&m, "ticket page (やさしい日本語)");
}

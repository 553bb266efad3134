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

/// Each word of kana (two or more, between spaces) in the text of
/// `arguments[0]` that lies on more than one line while `arguments[1]`
/// is set from 240 to 640 px wide: "word at width".
const SPLIT_SPACED: &str = r#"
const el = document.querySelector(arguments[0]);
const box = document.querySelector(arguments[1]);
const bad = [];
for (let width = 240; width <= 640; width += 6) {
  box.style.width = width + 'px';
  const walk = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
  for (let node = walk.nextNode(); node; node = walk.nextNode()) {
    if (node.parentElement.closest('rt')) continue;
    const text = node.textContent;
    let at = 0;
    for (const word of text.split(/[ 　・、。]/)) {
      const start = text.indexOf(word, at);
      at = start + word.length;
      if (!/^[ぁ-ん0-9]{2,}$/.test(word)) continue;
      const r = document.createRange();
      r.setStart(node, start);
      r.setEnd(node, start + word.length);
      const tops = new Set(Array.from(r.getClientRects()).map(x => Math.round(x.top)));
      if (tops.size > 1) bad.push(`${word} at ${width}px`);
    }
  }
}
box.style.width = '';
return bad;
"#;

/// Each ruby word followed by its okurigana (待って) in `arguments[0]`
/// whose okurigana starts on a line below the kanji while the element is
/// set from 240 to 640 px wide: "word at width" (pages-rt10 N5).
const SPLIT_OKURIGANA: &str = r#"
const el = document.querySelector(arguments[0]);
const bad = [];
for (let width = 240; width <= 640; width += 6) {
  el.style.width = width + 'px';
  for (const r of el.querySelectorAll('ruby')) {
    if (r.offsetParent === null) continue;
    const next = r.nextSibling;
    if (!next || next.nodeType !== 3 || !/^[ぁ-ん]/.test(next.textContent)) continue;
    const c = document.createRange();
    c.setStart(next, 0);
    c.setEnd(next, 1);
    const kana = c.getBoundingClientRect();
    const kanji = r.getBoundingClientRect();
    if (kana.top >= kanji.bottom - 1) bad.push(`${r.firstChild.textContent}${next.textContent.split(' ')[0]} at ${width}px`);
  }
}
el.style.width = '';
return bad;
"#;

/// Outside tester pages-rt9 F4 (the rest): a ticket taken in やさしい
/// にほんご opened the phone page in the phone's own language, and there
/// the category had no ふりがな although the kiosk gave it some; the
/// kiosk's dialog broke 「ふん」 across lines (「30 ふ / ん」). Now the QR
/// code carries the language chosen, the phone page opens in it with the
/// category in ruby, and no spaced word of the dialog is split at any
/// width.
#[test]
fn a_ticket_taken_in_easy_japanese_opens_the_phone_page_in_it() {
    let s = Server::start();
    let (c, csrf) = s.admin();
    cmd(
        &c,
        &s,
        &csrf,
        json!({"command": "open_day", "date": today()}),
    );
    let driver = crate::webdriver::Driver::start();
    let k = driver.session();
    k.enrol(&s.kiosk_enrol);
    k.wait_text("h1", "番号札をお取りください");
    k.click("button[data-set-lang=easy]");
    k.wait_text("#categories", "しょうめい");
    // No print dialog in the test; the answer kept to read the QR's URL.
    k.eval(
        "window.print = () => {}; const p = window.Madoguchi.post; window.Madoguchi.post = async (...a) => { const r = await p(...a); window.lastAnswer = r.body; return r; }; return true;",
        json!([]),
    );
    k.click("button[data-category=koseki]");
    k.wait_text("#issued-detail", "にん");
    let url = k
        .eval("return window.lastAnswer.issued.mobile_url", json!([]))
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(url.ends_with("/easy"), "the QR code's address: {url}");

    // Each spaced word of the dialog (「30 ふん」「6 にん」) stays on one
    // line at any width from 240 px (narrower than one word plus its
    // neighbours, a word may still wrap rather than overflow).
    let split: Value = k.eval(SPLIT_SPACED, json!(["#issued-detail", "#issued-detail"]));
    assert_eq!(split, json!([]), "words split across lines");
    // 「待って」 stays whole (pages-rt10 N5; old code: 「待 / って」 at
    // some widths).
    let split: Value = k.eval(SPLIT_OKURIGANA, json!(["#issued-detail + p"]));
    assert_eq!(split, json!([]), "ruby word split from its okurigana");
    if let Some(dir) = std::env::var_os("MADOGUCHI_SCREENSHOTS")
        .map(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/docs/screenshots"))
    {
        std::fs::write(format!("{dir}/kiosk-easy-issued-words.png"), k.screenshot()).expect("shot");
    }

    // The phone opens the QR code's address: やさしい にほんご, the
    // category with ふりがな.
    let fragment = url.split_once("/m#").map(|x| x.1).expect("a /m# address");
    let m = driver.session();
    m.goto(&s.url(&format!("/m#{fragment}")));
    m.wait_text("#mine-state", "まって ください");
    assert_eq!(
        m.eval(
            "return document.querySelector('.t[data-lang=easy]').hidden",
            json!([])
        ),
        json!(false),
        "the page is in やさしい にほんご"
    );
    let rt = m.text("#mine-queue rt");
    assert!(
        rt.contains("こせき"),
        "ふりがな on the category: {:?}",
        m.text("#mine-queue")
    );
    check(&m, "ticket page from the QR (やさしい日本語)");
    let split: Value = m.eval(SPLIT_SPACED, json!(["#mine-state", ".ticket-page"]));
    assert_eq!(split, json!([]), "phone page words split across lines");
    let v = m.axe();
    assert!(v.is_empty(), "phone page in やさしい日本語: {v:#?}");
    if let Some(dir) = std::env::var_os("MADOGUCHI_SCREENSHOTS")
        .map(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/docs/screenshots"))
    {
        std::fs::write(format!("{dir}/phone-easy-from-qr.png"), m.screenshot()).expect("shot");
    }
}

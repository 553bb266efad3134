//! Kiosk tickets on a network thermal printer. No real printer is reachable
//! here, so a loopback server speaks the printer's side of the protocol the
//! office uses (DLE EOT status queries answered in real time, everything
//! else taken as print data), with the status a test sets.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::server::{cmd, Server};

/// A printer answering `status` (the DLE EOT 1, 2 and 4 bytes: printer,
/// offline cause, paper); returns its address and everything it received.
fn printer(status: [u8; 3]) -> (String, Arc<Mutex<Vec<u8>>>) {
    let (addr, got, _) = printer_with(status);
    (addr, got)
}

/// The status bytes a running fake printer answers with.
pub type Status = Arc<Mutex<[u8; 3]>>;

/// Like [`printer`], with its status changeable while it runs (paper runs
/// out, the cover is opened).
pub fn printer_with(status: [u8; 3]) -> (String, Arc<Mutex<Vec<u8>>>, Status) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let got = Arc::new(Mutex::new(Vec::new()));
    let now = Arc::new(Mutex::new(status));
    let (sink, state) = (got.clone(), now.clone());
    std::thread::spawn(move || {
        // Bounded: a kiosk asks at most every few seconds during a test.
        for conn in listener.incoming().take(400) {
            let Ok(mut conn) = conn else { continue };
            let mut buf = [0u8; 4096];
            let mut pending: Vec<u8> = Vec::new();
            while let Ok(n) = conn.read(&mut buf) {
                if n == 0 {
                    break;
                }
                pending.extend_from_slice(&buf[..n]);
                // Answer DLE EOT n as it arrives.
                let mut i = 0;
                while i + 2 < pending.len() {
                    if pending[i] == 0x10 && pending[i + 1] == 0x04 {
                        let s = *state.lock().expect("lock");
                        let answer = match pending[i + 2] {
                            0x02 => s[1],
                            0x04 => s[2],
                            _ => s[0],
                        };
                        let _ = conn.write_all(&[answer]);
                        pending.drain(i..i + 3);
                    } else {
                        i += 1;
                    }
                }
                sink.lock().expect("lock").extend_from_slice(&pending);
                pending.clear();
            }
        }
    });
    (addr, got, now)
}

pub fn office_with_printer(addr: &str) -> String {
    format!(
        "{}\n[[printers]]\nkiosk = \"kiosk-1\"\naddress = \"{addr}\"\n",
        madoguchi_core::config::DEFAULT_OFFICE_TOML
    )
}

fn kiosk_issue(s: &Server) -> (StatusCode, Value) {
    let kiosk = Server::client();
    kiosk.post(&s.kiosk_enrol).send().expect("enrol");
    let html = kiosk
        .get(s.url("/kiosk"))
        .send()
        .expect("page")
        .text()
        .expect("html");
    let csrf = html
        .split("name=\"csrf-token\" content=\"")
        .nth(1)
        .and_then(|x| x.split('"').next())
        .expect("csrf")
        .to_string();
    cmd(
        &kiosk,
        s,
        &csrf,
        json!({"command": "issue_ticket", "category": "idou", "request_id": "r-1"}),
    )
}

fn open_day(s: &Server) -> (reqwest::blocking::Client, String) {
    let (c, csrf) = s.admin();
    let today = crate::util::today();
    cmd(&c, s, &csrf, json!({"command": "open_day", "date": today}));
    (c, csrf)
}

#[test]
fn a_ticket_prints_in_shift_jis_with_its_qr_code() {
    let (addr, got) = printer([0x12, 0x12, 0x12]);
    let s = Server::start_with(Some(&office_with_printer(&addr)));
    open_day(&s);
    let (st, v) = kiosk_issue(&s);
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["printed"], "network");
    std::thread::sleep(std::time::Duration::from_millis(200));
    let bytes = got.lock().expect("lock").clone();
    let category = encoding_rs::SHIFT_JIS
        .encode("住民異動の受付")
        .0
        .into_owned();
    assert!(
        bytes
            .windows(category.len())
            .any(|w| w == category.as_slice()),
        "category in Shift_JIS"
    );
    let url = v["issued"]["mobile_url"]
        .as_str()
        .expect("url")
        .as_bytes()
        .to_vec();
    assert!(
        bytes.windows(url.len()).any(|w| w == url.as_slice()),
        "QR data"
    );
    assert!(
        bytes.windows(3).any(|w| w == [0x31, 0x51, 0x30]),
        "QR print command"
    );
    // The wait as recorded, in words: a new office has no history, so the
    // ticket says plainly that there is no estimate yet (issue 19).
    assert_eq!(v["issued"]["wait_words"]["kind"], "none", "{v}");
    let wait = encoding_rs::SHIFT_JIS
        .encode("待ち時間の目安はまだお出しできません")
        .0
        .into_owned();
    assert!(
        bytes.windows(wait.len()).any(|w| w == wait.as_slice()),
        "the wait line in Shift_JIS"
    );
}

#[test]
fn a_failed_print_voids_the_ticket_and_tells_the_visitor() {
    for status in [[0x1a, 0x12, 0x12], [0x12, 0x12, 0x72], [0x1a, 0x16, 0x12]] {
        // offline; paper end; cover open
        let (addr, got) = printer(status);
        let s = Server::start_with(Some(&office_with_printer(&addr)));
        let (c, _) = open_day(&s);
        let (st, v) = kiosk_issue(&s);
        assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{v}");
        assert_eq!(v["error"]["code"], "print_failed");
        assert!(v["error"]["message_ja"]
            .as_str()
            .is_some_and(|m| m.contains("職員に声をおかけください")));
        assert!(got.lock().expect("lock").is_empty(), "nothing printed");
        let status = crate::server::status(&c, &s);
        assert_eq!(status["queues"][1]["waiting"], 0, "no phantom number waits");
        let t: Value = c
            .get(s.url("/api/tickets/1001"))
            .send()
            .expect("t")
            .json()
            .expect("json");
        assert_eq!(t["status"]["status"], "cancelled");
        let admin = c
            .get(s.url("/admin"))
            .send()
            .expect("admin")
            .text()
            .expect("html");
        assert!(
            admin.contains("not printed and voided"),
            "a printer fault is recorded: {admin}"
        );
        assert!(
            admin.contains("発券機 kiosk-1 のプリンター: プリンター"),
            "the printer's state in words: {admin}"
        );
    }
    // A printer that is not there at all.
    let unused = TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .to_string();
    let s = Server::start_with(Some(&office_with_printer(&unused)));
    open_day(&s);
    let (st, v) = kiosk_issue(&s);
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{v}");
}

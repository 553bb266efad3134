//! Runs every example of docs/api.md, in order, against a fresh server.

use reqwest::StatusCode;
use serde_json::Value;

use crate::server::Server;

/// `want` is contained in `got`: every field of an object (recursively),
/// every element of an array at the same index, equal scalars.
fn contains(got: &Value, want: &Value) -> bool {
    match (got, want) {
        (Value::Object(g), Value::Object(w)) => w
            .iter()
            .all(|(k, v)| g.get(k).is_some_and(|x| contains(x, v))),
        (Value::Array(g), Value::Array(w)) => {
            w.len() <= g.len() && w.iter().zip(g).all(|(w, g)| contains(g, w))
        }
        _ => got == want,
    }
}

#[test]
fn every_api_doc_example_runs() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/api.md"))
        .expect("api.md");
    let s = Server::start();
    let c = Server::client();
    let mut csrf = String::new();
    let blocks: Vec<(&str, &str)> = doc
        .split("```")
        .skip(1)
        .step_by(2)
        .filter_map(|b| b.split_once('\n'))
        .collect();
    let mut ran = 0;
    let mut i = 0;
    while i < blocks.len() {
        let (lang, body) = blocks[i];
        if lang != "http" {
            i += 1;
            continue;
        }
        let (request_line, payload) = body.split_once('\n').unwrap_or((body, ""));
        let (method, path) = request_line.split_once(' ').expect("METHOD PATH");
        let payload = payload
            .trim()
            .replace("<admin password>", &s.admin_password);
        let (_, expected) = blocks
            .get(i + 1)
            .copied()
            .expect("an answer block follows each request");
        let (status_line, expected_json) = expected
            .trim()
            .split_once('\n')
            .unwrap_or((expected.trim(), "{}"));
        let want_status: u16 = status_line.trim().parse().expect("status line");
        let want: Value = serde_json::from_str(expected_json).expect("expected JSON");
        let req = match method {
            "GET" => c.get(s.url(path)),
            "POST" => c
                .post(s.url(path))
                .header("X-CSRF-Token", &csrf)
                .header("Content-Type", "application/json")
                .body(if payload.is_empty() {
                    "{}".to_string()
                } else {
                    payload.clone()
                }),
            other => panic!("method {other}"),
        };
        let r = req.send().expect("request");
        let status = r.status();
        let got: Value = r.json().expect("a JSON answer");
        assert_eq!(
            status,
            StatusCode::from_u16(want_status).expect("status"),
            "{request_line}: {got}"
        );
        assert!(
            contains(&got, &want),
            "{request_line} {payload}\nwanted {want}\ngot {got}"
        );
        if let Some(t) = got["csrf_token"].as_str() {
            csrf = t.to_string();
        }
        ran += 1;
        i += 2;
    }
    assert!(ran >= 20, "only {ran} examples ran");
}

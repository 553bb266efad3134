//! The office against an insider on the LAN (issue 23, R11): a stolen
//! display or a staff account reaches nothing outside the generated site.

use reqwest::StatusCode;

use crate::server::Server;

/// A client holding the display device cookie from the enrolment link.
fn display_client(s: &Server) -> reqwest::blocking::Client {
    let c = Server::client();
    let r = c.get(&s.display_enrol).send().expect("enrol");
    assert!(r.status().is_success() || r.status().is_redirection());
    c
}

#[test]
fn the_display_route_serves_only_files_the_renderer_built() {
    let s = Server::start();
    let data = s.data_dir().join("data");
    assert!(
        data.join("accounts.json").exists(),
        "the accounts file exists"
    );
    let display = display_client(&s);
    let (admin, _) = s.admin();
    // Sanity: a rendered surface is served to both.
    for c in [&display, &admin] {
        let r = c.get(s.url("/displays/board.json")).send().expect("board");
        assert_eq!(r.status(), StatusCode::OK);
    }
    // The finding used a data folder whose absolute path passes the topic
    // check (lower-case letters, digits, `/`, `-`, `_`): name the data
    // folder through such a path.
    let alias = std::env::temp_dir().join(format!("mdg-insider-{}", std::process::id()));
    let _ = std::fs::remove_file(&alias);
    std::os::unix::fs::symlink(&data, &alias).expect("alias");
    let abs = alias.display().to_string();
    let abs = abs.trim_start_matches('/').to_string();
    let attempts = [
        format!("/displays//{abs}/accounts.json"),
        format!("/displays/{abs}/accounts.json"),
        format!("/displays/%2F{abs}/accounts.json"),
        format!("/displays/%2f{}/accounts.json", abs.replace('/', "%2f")),
        "/displays/../accounts.json".to_string(),
        "/displays/%2e%2e/accounts.json".to_string(),
        "/displays/..%2faccounts.json".to_string(),
        "/displays/counter/../../accounts.json".to_string(),
        "/displays/accounts.json".to_string(),
        "/displays/board/.json".to_string(),
        "/displays/status/.html".to_string(),
    ];
    for path in &attempts {
        for c in [&display, &admin] {
            let r = c.get(s.url(path)).send().expect("get");
            let status = r.status();
            let body = r.text().unwrap_or_default();
            assert!(
                !body.contains("argon2") && !body.contains("token_sha256"),
                "{path} leaked the accounts file"
            );
            assert!(
                status == StatusCode::NOT_FOUND || status == StatusCode::BAD_REQUEST,
                "{path}: {status}"
            );
        }
    }
    // A symlink planted in the output folder is not served either.
    let out = data.join("displays");
    if out.is_dir() {
        let link = out.join("evil.json");
        #[cfg(unix)]
        std::os::unix::fs::symlink(data.join("accounts.json"), &link).expect("symlink");
        let r = admin.get(s.url("/displays/evil.json")).send().expect("get");
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
    }
    let _ = std::fs::remove_file(&alias);
}

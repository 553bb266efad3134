//! Settings (R1, R17, R18): the admin edits the office configuration —
//! categories, counters and the queues they serve, number ranges, display
//! message and timings, opening days — in the browser. A change is
//! validated (errors name the field in Japanese and English), checked against the office as it is
//! (no removing an open counter or a queue with people in it), recorded in
//! the event log, and in force at once, without a restart.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use madoguchi_core::config::Config;
use madoguchi_core::engine::EngineError;
use madoguchi_renderer::context;
use serde::Deserialize;
use serde_json::{json, Value};

use super::api::parse_body;
use super::auth::Role;
use super::error::ApiError;
use super::settings_errors;
use super::settings_form::{self, SettingsForm};
use super::App;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    toml: String,
    /// The configuration the page showed ([`version`]); API clients may
    /// leave it out.
    #[serde(default)]
    based_on: Option<String>,
}

/// A short fingerprint of configuration text: what a settings page was
/// drawn from. Two tabs (or two administrators) each save what they saw;
/// the second save is refused when the configuration moved under it
/// (outside tester: the second tab silently undid the first one's change).
pub fn version(source: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(source.as_bytes())
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Refuses a save from a page drawn from another configuration.
fn still_current(current: &str, based_on: Option<&str>) -> Result<(), ApiError> {
    match based_on {
        Some(v) if v != version(current) => Err(ApiError::Plain {
            status: StatusCode::CONFLICT,
            code: "settings_changed",
            ja: "この画面を開いた後に、別の画面（または別の管理者）が設定を変更しました。変更は保存していません。再読み込みして最新の設定を確かめてから、もう一度変更してください".into(),
            en: "the settings were changed elsewhere after this page was opened; nothing was saved. Reload the page, check the settings in force, and make the change again".into(),
        }),
        _ => Ok(()),
    }
}

const ADMIN: &[Role] = &[Role::Admin];

/// A configuration that does not validate: the field and what is wrong,
/// in Japanese and English (`settings_errors.rs`).
fn invalid(source: &str, e: &madoguchi_core::config::ConfigError) -> Response {
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        Json(json!({"error": settings_errors::explain(source, e)})),
    )
        .into_response()
}

async fn current(app: &App) -> Result<String, ApiError> {
    let handle = app.engine.clone();
    tokio::task::spawn_blocking(move || handle.read(|e| e.config().source.clone()))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(ApiError::from)
}

/// `GET /api/settings`: the configuration in force, as TOML.
pub async fn get(
    State(app): State<Arc<App>>,
    method: Method,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    app.auth.require(&method, &headers, ADMIN)?;
    Ok(Json(json!({"toml": current(&app).await?})))
}

/// `POST /api/settings/validate`: checks a configuration without applying it.
pub async fn validate(
    State(app): State<Arc<App>>,
    method: Method,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    app.auth.require(&method, &headers, ADMIN)?;
    let s: Settings = parse_body(body)?;
    Ok(match Config::parse(&s.toml, "settings") {
        Ok(_) => Json(json!({"ok": true})).into_response(),
        Err(e) => invalid(&s.toml, &e),
    })
}

/// `POST /api/settings`: validates and applies a configuration.
pub async fn apply(
    State(app): State<Arc<App>>,
    method: Method,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let caller = app.auth.require(&method, &headers, ADMIN)?;
    let s: Settings = parse_body(body)?;
    still_current(&current(&app).await?, s.based_on.as_deref())?;
    apply_toml(&app, &s.toml, caller.name).await
}

/// `POST /api/settings/form`: the settings form's values, written into the
/// configuration in force, then validated and applied like the TOML.
pub async fn apply_form(
    State(app): State<Arc<App>>,
    method: Method,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let caller = app.auth.require(&method, &headers, ADMIN)?;
    let form: SettingsForm = parse_body(body)?;
    let now = current(&app).await?;
    still_current(&now, form.based_on.as_deref())?;
    // A 臨時開庁日 added in the past opens nothing: refused, named
    // (issue 18, outside tester pages-rt10 N3: 2025-01-04 was applied
    // without a word). Days already in the settings are left as they are.
    let today = app.status().await?.today.to_string();
    let had: Vec<String> = app
        .engine
        .read(|e| {
            SettingsForm::of(e.config())
                .extra_days
                .into_iter()
                .map(|d| d.date)
                .collect()
        })
        .map_err(ApiError::from)?;
    if let Some(d) = form
        .extra_days
        .iter()
        .find(|d| d.date.as_str() < today.as_str() && !had.contains(&d.date))
    {
        return Ok((
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({"error": {
                "code": "config_invalid",
                "message_ja": format!("臨時開庁日 {}: 過ぎた日です（今日は {today}）。今日以降の日付を書いてください", d.date),
                "message_en": format!("extra opening day {}: the date has passed (today is {today}); choose today or later", d.date),
            }})),
        )
            .into_response());
    }
    let toml = match settings_form::apply(&now, &form) {
        Ok(t) => t,
        Err(why) => {
            return Ok((
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(json!({"error": settings_errors::form_error(&why)})),
            )
                .into_response())
        }
    };
    apply_toml(&app, &toml, caller.name).await
}

/// Validates and applies configuration text; the audit record names `by`.
async fn apply_toml(app: &App, toml: &str, by: String) -> Result<Response, ApiError> {
    if app.is_standby() {
        return Err(ApiError::Standby);
    }
    let config = match Config::parse(toml, "settings") {
        Ok(c) => c,
        Err(e) => return Ok(invalid(toml, &e)),
    };
    let handle = app.engine.clone();
    let result = tokio::task::spawn_blocking(move || {
        handle.write(move |e| e.apply_config_by(config, Some(by)))
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?
    .map_err(ApiError::from)?;
    match result {
        Ok(seq) => {
            Ok(Json(json!({"ok": true, "seq": seq, "based_on": version(toml)})).into_response())
        }
        Err(EngineError::ConfigConflict(why)) => Ok((
            StatusCode::CONFLICT,
            Json(json!({"error": settings_errors::conflict(&why)})),
        )
            .into_response()),
        Err(e) => Err(ApiError::Internal(e.to_string())),
    }
}

/// `GET /settings`: the settings page.
pub async fn page(
    State(app): State<Arc<App>>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let caller = match super::gate::person(&app, &method, &headers, ADMIN, "/settings") {
        Ok(c) => c,
        Err(r) => return Ok(*r),
    };
    let office = app.office_name().await?;
    let toml = current(&app).await?;
    let (form, sections) = app
        .engine
        .read(|e| {
            let c = e.config();
            let sections: Vec<(String, String)> = c
                .sections
                .iter()
                .map(|x| (x.id.clone(), x.name.ja.clone()))
                .collect();
            (SettingsForm::of(c), sections)
        })
        .map_err(ApiError::from)?;
    let queue_names: Vec<(String, String)> = form
        .queues
        .iter()
        .map(|q| (q.id.clone(), q.name_ja.clone()))
        .collect();
    let html: Html<String> = app.pages.render(
        "settings.html",
        context! { office, based_on => version(&toml), toml, form, sections, queue_names, user => caller.name, csrf => caller.csrf(), menu => super::gate::menu(Some(&caller), "/settings") },
    )?;
    Ok(html.into_response())
}

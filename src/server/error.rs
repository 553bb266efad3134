//! Errors as the server's clients see them: JSON with a stable code and a
//! Japanese and English message; never a stack trace, a version or a path
//! (R11). Internal details go to the server's own log only.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use madoguchi_core::engine::ExecError;
use madoguchi_core::refusal::Refusal;
use serde_json::json;

#[derive(Debug)]
pub enum ApiError {
    /// The state machine refused the command (409).
    Refused(Refusal),
    BadRequest(String),
    TooLarge,
    Unauthenticated,
    Forbidden,
    CsrfMissing,
    NotFound,
    TooManyAttempts,
    /// The kiosk's printer failed; the ticket was voided.
    PrintFailed,
    /// This server is a standby: commands go to the primary.
    Standby,
    /// The standby's log differs from ours at this record.
    Diverged(u64),
    /// The command could not be recorded: the disk is full. Nothing
    /// changed; the same request may be sent again once there is space.
    DiskFull,
    /// Something failed inside; details are logged, not shown.
    Internal(String),
}

/// Whether an error (or anything it was caused by) is "no space left on
/// the device".
pub fn is_disk_full(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::StorageFull || io.raw_os_error() == Some(28) {
                return true;
            }
        }
        cur = err.source();
    }
    false
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str, String, String) {
        match self {
            ApiError::Refused(r) => (
                StatusCode::CONFLICT,
                r.code(),
                r.message_ja(),
                r.to_string(),
            ),
            ApiError::BadRequest(why) => (
                StatusCode::BAD_REQUEST,
                "bad_request",
                "リクエストの形式が正しくありません".into(),
                format!("the request is not valid: {why}"),
            ),
            ApiError::TooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                "リクエストが大きすぎます".into(),
                "the request is too large".into(),
            ),
            ApiError::Unauthenticated => (
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "ログインしてください".into(),
                "please log in".into(),
            ),
            ApiError::Forbidden => (
                StatusCode::FORBIDDEN,
                "forbidden",
                "この操作の権限がありません".into(),
                "you may not do this".into(),
            ),
            ApiError::CsrfMissing => (
                StatusCode::FORBIDDEN,
                "csrf",
                "画面を再読み込みしてからやり直してください".into(),
                "the request lacks a valid CSRF token; reload the page and try again".into(),
            ),
            ApiError::NotFound => (
                StatusCode::NOT_FOUND,
                "not_found",
                "見つかりません".into(),
                "not found".into(),
            ),
            ApiError::TooManyAttempts => (
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_attempts",
                "ログインの失敗が続いたため、しばらく待ってからやり直してください".into(),
                "too many failed logins; wait a moment and try again".into(),
            ),
            ApiError::Diverged(seq) => (
                StatusCode::CONFLICT,
                "diverged",
                format!("記録 {seq} が一致しません"),
                format!("the logs differ at record {seq}"),
            ),
            ApiError::Standby => (
                StatusCode::SERVICE_UNAVAILABLE,
                "standby",
                "この機械は予備機です。主機で操作するか、予備機を昇格してください".into(),
                "this is the standby server: use the primary, or promote the standby".into(),
            ),
            ApiError::PrintFailed => (
                StatusCode::SERVICE_UNAVAILABLE,
                "print_failed",
                "番号札を印刷できませんでした。職員に声をおかけください".into(),
                "your ticket could not be printed; please ask a member of staff".into(),
            ),
            ApiError::DiskFull => (
                StatusCode::INSUFFICIENT_STORAGE,
                "disk_full",
                "記録用のディスクに空きがないため、受け付けられませんでした。何も変更されていません。職員に声をおかけください".into(),
                "the command could not be recorded because the disk is full; nothing was changed. Please ask a member of staff".into(),
            ),
            ApiError::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "システムで問題が起きました。職員に声をおかけください".into(),
                "something went wrong in the system; please ask a member of staff".into(),
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(detail) = &self {
            tracing::error!(%detail, "internal error");
        }
        let (status, code, ja, en) = self.parts();
        (
            status,
            Json(json!({"error": {"code": code, "message_ja": ja, "message_en": en}})),
        )
            .into_response()
    }
}

impl From<ExecError> for ApiError {
    fn from(e: ExecError) -> Self {
        match e {
            ExecError::Refused(r) => ApiError::Refused(r),
            ExecError::Engine(inner) if is_disk_full(inner.as_ref()) => ApiError::DiskFull,
            other => ApiError::Internal(other.to_string()),
        }
    }
}

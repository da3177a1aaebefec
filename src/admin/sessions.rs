//! The session admin API, on the admin listener, off unless `admin.sessions_api_token` is set:
//!
//! ```text
//! GET    /admin/users/{sub}/sessions        list (fingerprint, created, expiry; never tokens)
//! DELETE /admin/users/{sub}/sessions        revoke every session of the user
//! DELETE /admin/users/{sub}/sessions/{fp}   revoke one
//! ```
//!
//! Callers present `Authorization: Bearer <token>`. Sessions are named by a fingerprint of
//! their id, never the id itself: the id is the user's credential. Every revocation is an
//! audit log line (`target: audit`) and counted in `portcullis_sessions_revoked_total`.

use std::sync::Arc;

use http::{HeaderMap, Method, StatusCode};
use serde_json::json;

use crate::session::id::same_secret;
use crate::session::sessions::unix_now;
use crate::session::{Sessions, StoreKey};

const PREFIX: &str = "/admin/users/";

pub struct SessionsApi {
    pub sessions: Arc<Sessions>,
    pub token: String,
    pub revoked: prometheus::IntCounterVec,
}

pub struct ApiReply {
    pub status: StatusCode,
    pub body: Vec<u8>,
}

fn reply(status: StatusCode, body: serde_json::Value) -> ApiReply {
    ApiReply {
        status,
        body: body.to_string().into_bytes(),
    }
}

fn problem(status: StatusCode, detail: &str) -> ApiReply {
    reply(
        status,
        json!({ "status": status.as_u16(), "detail": detail }),
    )
}

impl SessionsApi {
    pub fn handles(path: &str) -> bool {
        path.starts_with(PREFIX)
    }

    pub async fn handle(&self, method: &Method, path: &str, headers: &HeaderMap) -> ApiReply {
        let presented = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !same_secret(presented.as_bytes(), self.token.as_bytes()) {
            tracing::warn!(target: "audit", event = "admin_refused", path, "admin API call without a valid token");
            return problem(
                StatusCode::UNAUTHORIZED,
                "send Authorization: Bearer <admin.sessions_api_token>",
            );
        }
        let rest = &path[PREFIX.len()..];
        let mut parts = rest.splitn(3, '/');
        let (Some(raw_sub), Some("sessions"), one) = (parts.next(), parts.next(), parts.next())
        else {
            return problem(
                StatusCode::NOT_FOUND,
                "use /admin/users/{sub}/sessions[/{id}]",
            );
        };
        let sub: String = percent_decode(raw_sub);
        if sub.is_empty() {
            return problem(StatusCode::NOT_FOUND, "the user's sub is missing");
        }
        let ids = match self.sessions.of_sub(&sub).await {
            Ok(ids) => ids,
            Err(e) => return problem(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
        };
        match (method, one.filter(|s| !s.is_empty())) {
            (&Method::GET, None) => self.list(&sub, &ids).await,
            (&Method::DELETE, None) => self.revoke(&sub, &ids).await,
            (&Method::DELETE, Some(fp)) => {
                let chosen: Vec<StoreKey> = ids
                    .into_iter()
                    .filter(|id| id.fingerprint("admin") == fp)
                    .collect();
                if chosen.is_empty() {
                    return problem(StatusCode::NOT_FOUND, "no such session for this user");
                }
                self.revoke(&sub, &chosen).await
            }
            _ => problem(StatusCode::METHOD_NOT_ALLOWED, "GET or DELETE"),
        }
    }

    async fn list(&self, sub: &str, ids: &[StoreKey]) -> ApiReply {
        let now = unix_now();
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let Ok(Some((record, ttl))) = self.sessions.describe(id).await else {
                continue;
            };
            out.push(json!({
                "id": id.fingerprint("admin"),
                "sid": record.sid,
                "created_at": record.created_at,
                "expires_at": record.expires_at,
                "idle_expires_in": ttl.map(|t| t.as_secs()),
                "age_seconds": now.saturating_sub(record.created_at),
            }));
        }
        reply(StatusCode::OK, json!({ "sub": sub, "sessions": out }))
    }

    async fn revoke(&self, sub: &str, ids: &[StoreKey]) -> ApiReply {
        let mut revoked = 0u64;
        for id in ids {
            match self.sessions.delete_key(id).await {
                Ok(true) => {
                    revoked += 1;
                    crate::audit::record(
                        crate::audit::Event::new("session_revoked", "succeeded")
                            .subject(sub)
                            .session(&id.fingerprint("admin"))
                            .reason("admin_api"),
                        &crate::audit::Who {
                            route: "admin:sessions",
                            ..Default::default()
                        },
                    );
                }
                Ok(false) => {}
                Err(e) => return problem(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
            }
        }
        self.revoked.with_label_values(&["admin"]).inc_by(revoked);
        reply(StatusCode::OK, json!({ "sub": sub, "revoked": revoked }))
    }
}

fn percent_decode(s: &str) -> String {
    form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

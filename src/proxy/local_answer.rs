//! The gateway's own answers, and the one place their bodies are written: errors as
//! problem+json for scripts or a readable page for browser navigations, and the BFF endpoints'
//! replies.
//!
//! Pingora does not run `response_filter` for locally written responses, so the headers every
//! response needs are set here as well.

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::proxy::Session as HttpSession;
use pingora::Result;

use crate::bff::Reply;
use crate::error::GatewayError;

use super::context::RequestCtx;
use super::upstream_response::SecurityHeaders;

/// Sends `body` as `content_type` on `resp` (which may carry its own `Set-Cookie`,
/// `Location`, `Retry-After`), with the headers every local answer needs, and ends it.
async fn send_with(
    session: &mut HttpSession,
    ctx: &RequestCtx,
    security: &SecurityHeaders,
    mut resp: ResponseHeader,
    content_type: &str,
    body: Bytes,
) -> Result<()> {
    if !content_type.is_empty() {
        resp.insert_header("Content-Type", content_type)?;
    }
    resp.insert_header("Content-Length", body.len())?;
    resp.insert_header("Cache-Control", "no-store")?;
    resp.insert_header("X-Content-Type-Options", "nosniff")?;
    security.apply(&mut resp)?;
    resp.insert_header("X-Request-Id", ctx.request_id.as_str())?;
    // Keeps the connection when the rest of the body is small and quick; else it closes.
    super::body::settle(session).await;
    session
        .write_response_header(Box::new(resp), body.is_empty())
        .await?;
    if !body.is_empty() {
        session.write_response_body(Some(body), true).await?;
    }
    Ok(())
}

/// Writes what a BFF endpoint answered.
pub async fn reply(
    session: &mut HttpSession,
    ctx: &RequestCtx,
    security: &SecurityHeaders,
    reply: Reply,
) -> Result<()> {
    match reply {
        Reply::Redirect { location, cookies } => {
            let mut resp = ResponseHeader::build(302, Some(8))?;
            resp.insert_header("Location", location)?;
            for c in cookies {
                resp.append_header("Set-Cookie", c)?;
            }
            send_with(session, ctx, security, resp, "", Bytes::new()).await
        }
        Reply::Json { body } => {
            let resp = ResponseHeader::build(200, Some(6))?;
            send_with(session, ctx, security, resp, "application/json", body).await
        }
        Reply::Error { error, cookies } => {
            let mut resp = error_head(&error)?;
            for c in cookies {
                resp.append_header("Set-Cookie", c)?;
            }
            let (content_type, body) = render(session, ctx, &error);
            send_with(session, ctx, security, resp, content_type, body).await
        }
    }
}

fn render(session: &HttpSession, ctx: &RequestCtx, err: &GatewayError) -> (&'static str, Bytes) {
    if wants_html(session) {
        (
            "text/html; charset=utf-8",
            html_page(err, &ctx.request_id, ctx.trace_id()),
        )
    } else {
        (
            "application/problem+json",
            problem_json(err, &ctx.request_id, ctx.trace_id()),
        )
    }
}

/// Whether the caller is a browser navigating (show a page) rather than script (send JSON).
pub fn wants_html(session: &HttpSession) -> bool {
    let header = |name| {
        session
            .req_header()
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
    };
    match header("sec-fetch-mode") {
        Some(mode) => mode == "navigate",
        None => header("accept").is_some_and(|a| a.contains("text/html")),
    }
}

/// Renders `err` for this caller and sends it.
pub async fn error(
    session: &mut HttpSession,
    ctx: &RequestCtx,
    security: &SecurityHeaders,
    err: &GatewayError,
) -> Result<()> {
    let (content_type, body) = render(session, ctx, err);
    send_with(session, ctx, security, error_head(err)?, content_type, body).await
}

/// The status line of an error, and when to come back for one that passes by itself.
fn error_head(err: &GatewayError) -> Result<ResponseHeader> {
    let mut resp = ResponseHeader::build(err.status(), Some(8))?;
    if let Some(secs) = err.retry_after() {
        resp.insert_header("Retry-After", secs)?;
    }
    Ok(resp)
}

/// RFC 9457 problem details; `trace_id` leads from a user's error report to the trace.
pub fn problem_json(err: &GatewayError, request_id: &str, trace_id: Option<&str>) -> Bytes {
    let mut body = serde_json::json!({
        "type": format!("urn:portcullis:problem:{}", err.slug()),
        "title": err.title(),
        "status": err.status(),
        "detail": err.detail(),
        "request_id": request_id,
    });
    if let Some(trace_id) = trace_id {
        body["trace_id"] = trace_id.into();
    }
    if let Some(url) = err.login_url() {
        body["login_url"] = url.into();
    }
    Bytes::from(body.to_string())
}

fn html_page(err: &GatewayError, request_id: &str, trace_id: Option<&str>) -> Bytes {
    let page = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{status} {title}</title>\
         <meta name=\"viewport\" content=\"width=device-width\"></head>\
         <body style=\"font-family:system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem\">\
         <h1>{title}</h1><p>{detail}</p><p>{retry}<a href=\"/\">Back to the start page</a></p>\
         <p style=\"color:#666;font-size:small\">Request id: {rid}{trace}</p></body></html>",
        status = err.status(),
        title = escape(err.title()),
        detail = escape(&err.detail()),
        rid = escape(request_id),
        trace = trace_id.map_or_else(String::new, |t| format!(" · Trace id: {}", escape(t))),
        retry = match (err.login_url(), err.retry_link()) {
            (Some(url), _) => format!("<a href=\"{}\">Sign in again</a> · ", escape(url)),
            (None, Some((href, label))) => format!("<a href=\"{href}\">{label}</a> · "),
            (None, None) => String::new(),
        },
    );
    Bytes::from(page)
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problem_json_names_type_status_and_request_id() {
        let err = GatewayError::NoHealthyUpstream {
            cluster: "api".into(),
        };
        let v: serde_json::Value =
            serde_json::from_slice(&problem_json(&err, "rid-1", None)).unwrap();
        assert_eq!(v["type"], "urn:portcullis:problem:no-healthy-upstream");
        assert_eq!(v["status"], 503);
        assert_eq!(v["request_id"], "rid-1");
        assert!(v["detail"].as_str().unwrap().contains("'api'"));
        assert!(v.get("trace_id").is_none());
        let traced: serde_json::Value =
            serde_json::from_slice(&problem_json(&err, "rid-1", Some("4bf9"))).unwrap();
        assert_eq!(traced["trace_id"], "4bf9");
    }

    #[test]
    fn html_escapes_everything_it_echoes() {
        let page = html_page(&GatewayError::NoRoute, "<script>", None);
        let text = std::str::from_utf8(&page).unwrap();
        assert!(text.contains("&lt;script&gt;"));
        assert!(!text.contains("<script>"));
    }
}

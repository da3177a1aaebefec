//! A scripted browser for HTTP-level login tests: one cookie jar for everything on 127.0.0.1
//! (browsers do not separate cookies by port), redirects followed by hand so tests can stop
//! at any hop, and the test OP's dev login and consent forms answered as a user would.

use std::collections::BTreeMap;

use super::client;

/// One response, fully read.
#[derive(Debug)]
pub struct Page {
    pub url: String,
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Page {
    pub fn location(&self) -> Option<&str> {
        self.headers.get("location").and_then(|v| v.to_str().ok())
    }

    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok().map(String::from))
            .collect()
    }
}

#[derive(Default)]
pub struct UserAgent {
    pub jar: BTreeMap<String, String>,
}

impl UserAgent {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.jar.get(name).map(String::as_str)
    }

    fn cookie_header(&self) -> String {
        self.jar
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn absorb(&mut self, headers: &reqwest::header::HeaderMap) {
        for c in headers.get_all("set-cookie") {
            let text = c.to_str().unwrap();
            let pair = text.split(';').next().unwrap();
            let Some((k, v)) = pair.split_once('=') else {
                continue;
            };
            let expired = text
                .split(';')
                .any(|a| a.trim().eq_ignore_ascii_case("max-age=0"));
            if expired || v.is_empty() {
                self.jar.remove(k.trim());
            } else {
                self.jar.insert(k.trim().to_string(), v.to_string());
            }
        }
    }

    /// One request, no redirect followed. `extra` headers are added (e.g. `X-CSRF`).
    pub async fn request(
        &mut self,
        method: reqwest::Method,
        url: &str,
        extra: &[(&str, &str)],
        form: Option<&[(&str, String)]>,
    ) -> Page {
        let mut req = client().request(method, url);
        if !self.jar.is_empty() {
            req = req.header("cookie", self.cookie_header());
        }
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        if let Some(form) = form {
            req = req.form(form);
        }
        let resp = req.send().await.unwrap();
        self.absorb(resp.headers());
        Page {
            url: url.to_string(),
            status: resp.status().as_u16(),
            headers: resp.headers().clone(),
            body: resp.text().await.unwrap(),
        }
    }

    pub async fn get(&mut self, url: &str, extra: &[(&str, &str)]) -> Page {
        self.request(reqwest::Method::GET, url, extra, None).await
    }

    /// Navigates to `url` like a browser: follows redirects and, on the test OP's pages, signs
    /// in as `user` and consents. Stops before requesting a URL for which `stop` is true (and
    /// returns the redirect pointing there), or at the first page that is not a redirect.
    pub async fn navigate(&mut self, url: &str, user: &str, stop: impl Fn(&str) -> bool) -> Page {
        let mut next = url.to_string();
        let mut form: Option<(String, Vec<(&str, String)>)> = None;
        for _ in 0..16 {
            let page = match form.take() {
                Some((action, fields)) => {
                    self.request(reqwest::Method::POST, &action, &[], Some(&fields))
                        .await
                }
                None => {
                    self.get(
                        &next,
                        &[("accept", "text/html"), ("sec-fetch-mode", "navigate")],
                    )
                    .await
                }
            };
            if (300..400).contains(&page.status) {
                let location = absolute(
                    &page.url,
                    page.location().expect("redirect without Location"),
                );
                if stop(&location) {
                    return page;
                }
                next = location;
                continue;
            }
            // The OP's logout confirmation: "Yes, sign me out".
            if let Some(xsrf) = page
                .body
                .split("name=\"xsrf\" value=\"")
                .nth(1)
                .and_then(|s| s.split('"').next())
            {
                let action = page
                    .body
                    .split("id=\"op.logoutForm\" method=\"post\" action=\"")
                    .nth(1)
                    .and_then(|s| s.split('"').next())
                    .expect("the logout form's action");
                form = Some((
                    absolute(&page.url, action),
                    vec![("xsrf", xsrf.to_string()), ("logout", "yes".to_string())],
                ));
                continue;
            }
            // The OP's dev interaction pages post back to themselves with the prompt they ask.
            let op_form = page.status == 200
                && page.body.contains("<form")
                && (page.body.contains("name=\"prompt\"") || page.body.contains("name=\"login\""));
            if !op_form {
                return page;
            }
            let action = page
                .body
                .split("action=\"")
                .nth(1)
                .and_then(|s| s.split('"').next())
                .expect("a form action")
                .to_string();
            let fields = if page.body.contains("name=\"login\"") {
                vec![
                    ("prompt", "login".to_string()),
                    ("login", user.to_string()),
                    ("password", "any".to_string()),
                ]
            } else {
                vec![("prompt", "consent".to_string())]
            };
            form = Some((absolute(&page.url, &action), fields));
        }
        panic!("too many redirects or forms starting at {url}");
    }
}

/// Resolves `location` against the URL it came from (origin-relative or absolute).
pub fn absolute(base: &str, location: &str) -> String {
    if location.starts_with("http://") || location.starts_with("https://") {
        return location.to_string();
    }
    let origin_end = base[8..].find('/').map_or(base.len(), |i| i + 8);
    format!("{}{location}", &base[..origin_end])
}

/// Decoded query parameters of a URL.
pub fn query(url: &str) -> BTreeMap<String, String> {
    let q = url.split_once('?').map_or("", |(_, q)| q);
    let q = q.split('#').next().unwrap_or("");
    url_decode_pairs(q)
}

fn url_decode_pairs(q: &str) -> BTreeMap<String, String> {
    q.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

fn decode(s: &str) -> String {
    let bytes = s.replace('+', " ").into_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(
                std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"),
                16,
            ) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

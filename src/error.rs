//! The request-path error: every way a request can fail, with its HTTP status.
//!
//! Each variant says whether the client is at fault (4xx) or the gateway/upstream is (5xx);
//! `proxy::local_answer` renders them as problem+json for API callers or a short page for
//! browsers.

/// Why `/signin-oidc` refused to finish a login; each one tells the user what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginFailure {
    /// No `state` parameter: not a response to a login we started.
    MissingState,
    /// `state` unknown: forged, already used (replayed), or expired.
    UnknownState,
    /// The login was started in another browser (its binding cookie is missing or different).
    OtherBrowser,
    /// The IdP answered with an error (`access_denied`, `login_required`, ...).
    IdentityProvider { code: String },
    /// Neither `code` nor `error`.
    MissingCode,
    /// The IdP refused to exchange the code (expired or already used).
    CodeRejected,
    /// A step-up login came back without one of the `acr` values it asked for.
    StepUpNotDone,
}

/// Why a request was not proxied, as the client will be told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayError {
    /// No route matches the request's host and path.
    NoRoute,
    /// The path carries dot-segments or other forms that could make routing and the upstream
    /// disagree about which resource is meant.
    AmbiguousPath,
    /// The upstream path after prefix rewriting is not a valid URI.
    BadRewrite,
    /// Every destination of the cluster is down (or none resolved).
    NoHealthyUpstream { cluster: String },
    /// Connecting to the upstream failed (refused, reset, TLS).
    UpstreamUnreachable { cluster: String },
    /// The upstream did not answer in time.
    UpstreamTimeout { cluster: String },
    /// The upstream answered with something that is not valid HTTP, or closed mid-response.
    UpstreamBroken { cluster: String },
    /// A protected route was called without the anti-forgery header (or with a wrong value).
    AntiForgeryMissing { header: String },
    /// The browser reported the call as coming from another site (`Sec-Fetch-Site`).
    CrossSiteRequest,
    /// The calling page's `Origin` is neither the gateway's nor an allowed one.
    ForeignOrigin,
    /// The client sent a request Pingora could not parse or finish.
    BadRequest,
    /// A gateway endpoint was called with a method it does not serve.
    MethodNotAllowed,
    /// A parameter of a gateway endpoint is not acceptable (`returnUrl`, `prompt`).
    InvalidParameter { detail: String },
    /// The sign-in could not be completed because of what the browser brought back.
    LoginFailed(LoginFailure),
    /// The call needs a signed-in user and there is no (live) session.
    Unauthenticated,
    /// Discovery has not succeeded yet: logins cannot start.
    IdentityProviderUnavailable,
    /// The IdP failed us during a login (unreachable, or an invalid ID token).
    IdentityProviderFailed,
    /// The session store cannot be reached; the session (if any) is kept.
    SessionStoreUnavailable,
    /// The IdP refused a token for this route's API (its resource or scopes) to this session.
    TokenNotGranted,
    /// The signed-in user does not satisfy one of the route's `require` rules (named by claim
    /// and condition kind, never the user's values).
    InsufficientClaims { rule: String },
    /// The route needs a stronger sign-in (`acr_values`); `login_url` starts it.
    StepUpRequired { login_url: String },
    /// `[authorization] require` refused this user at login; no session was made.
    LoginRefused { rule: String },
    /// This client sent more of these requests than `rate_limits` allows; try after the window.
    RateLimited { retry_after: u32 },
    /// The `Host` is neither `server.public_origin`'s nor a route's: the request was meant for
    /// another server (RFC 9110 §15.5.20).
    MisdirectedRequest,
    /// The request body is larger than the route's `max_body` (or a gateway endpoint's cap).
    PayloadTooLarge { limit: u64 },
    /// The client did not send its request body in time.
    RequestTimeout,
    /// A bug or resource problem inside the gateway.
    Internal,
}

impl GatewayError {
    pub fn status(&self) -> u16 {
        match self {
            GatewayError::NoRoute => 404,
            GatewayError::AntiForgeryMissing { .. } | GatewayError::Unauthenticated => 401,
            GatewayError::MethodNotAllowed => 405,
            GatewayError::InvalidParameter { .. } | GatewayError::LoginFailed(_) => 400,
            GatewayError::IdentityProviderUnavailable | GatewayError::SessionStoreUnavailable => {
                503
            }
            GatewayError::IdentityProviderFailed => 502,
            GatewayError::TokenNotGranted => 403,
            GatewayError::CrossSiteRequest | GatewayError::ForeignOrigin => 403,
            GatewayError::AmbiguousPath | GatewayError::BadRewrite | GatewayError::BadRequest => {
                400
            }
            GatewayError::NoHealthyUpstream { .. } => 503,
            GatewayError::UpstreamUnreachable { .. } | GatewayError::UpstreamBroken { .. } => 502,
            GatewayError::UpstreamTimeout { .. } => 504,
            GatewayError::RateLimited { .. } => 429,
            GatewayError::MisdirectedRequest => 421,
            GatewayError::InsufficientClaims { .. } | GatewayError::LoginRefused { .. } => 403,
            GatewayError::StepUpRequired { .. } => 401,
            GatewayError::PayloadTooLarge { .. } => 413,
            GatewayError::RequestTimeout => 408,
            GatewayError::Internal => 500,
        }
    }

    /// Seconds after which trying again is worth it (`Retry-After`, RFC 9110 §10.2.3), for
    /// outages the gateway expects to recover from by itself.
    pub fn retry_after(&self) -> Option<u32> {
        match self {
            GatewayError::SessionStoreUnavailable => Some(2),
            GatewayError::RateLimited { retry_after } => Some(*retry_after),
            GatewayError::IdentityProviderUnavailable => Some(5),
            _ => None,
        }
    }

    /// A stable identifier for the problem type (RFC 9457 `type`, as a URN).
    pub fn slug(&self) -> &'static str {
        match self {
            GatewayError::NoRoute => "no-route",
            GatewayError::AntiForgeryMissing { .. } => "anti-forgery-header-missing",
            GatewayError::CrossSiteRequest => "cross-site-request",
            GatewayError::ForeignOrigin => "origin-not-allowed",
            GatewayError::AmbiguousPath => "ambiguous-path",
            GatewayError::BadRewrite => "bad-rewrite",
            GatewayError::NoHealthyUpstream { .. } => "no-healthy-upstream",
            GatewayError::UpstreamUnreachable { .. } => "upstream-unreachable",
            GatewayError::UpstreamTimeout { .. } => "upstream-timeout",
            GatewayError::UpstreamBroken { .. } => "upstream-broken",
            GatewayError::BadRequest => "bad-request",
            GatewayError::MethodNotAllowed => "method-not-allowed",
            GatewayError::InvalidParameter { .. } => "invalid-parameter",
            GatewayError::LoginFailed(_) => "login-failed",
            GatewayError::Unauthenticated => "unauthenticated",
            GatewayError::IdentityProviderUnavailable => "identity-provider-unavailable",
            GatewayError::IdentityProviderFailed => "identity-provider-error",
            GatewayError::SessionStoreUnavailable => "session-store-unavailable",
            GatewayError::TokenNotGranted => "token-not-granted",
            GatewayError::RateLimited { .. } => "rate-limited",
            GatewayError::MisdirectedRequest => "misdirected-request",
            GatewayError::InsufficientClaims { .. } => "insufficient-claims",
            GatewayError::StepUpRequired { .. } => "step-up-required",
            GatewayError::LoginRefused { .. } => "login-refused",
            GatewayError::PayloadTooLarge { .. } => "payload-too-large",
            GatewayError::RequestTimeout => "request-timeout",
            GatewayError::Internal => "internal",
        }
    }

    pub fn title(&self) -> &'static str {
        match self {
            GatewayError::NoRoute => "Not found",
            GatewayError::AntiForgeryMissing { .. } => "Anti-forgery header missing",
            GatewayError::CrossSiteRequest | GatewayError::ForeignOrigin => {
                "Cross-site request refused"
            }
            GatewayError::AmbiguousPath => "Ambiguous path",
            GatewayError::BadRewrite => "Bad request path",
            GatewayError::NoHealthyUpstream { .. } => "Service unavailable",
            GatewayError::UpstreamUnreachable { .. } | GatewayError::UpstreamBroken { .. } => {
                "Bad gateway"
            }
            GatewayError::UpstreamTimeout { .. } => "Gateway timeout",
            GatewayError::BadRequest => "Bad request",
            GatewayError::MethodNotAllowed => "Method not allowed",
            GatewayError::InvalidParameter { .. } => "Invalid parameter",
            GatewayError::LoginFailed(_) => "Sign-in failed",
            GatewayError::Unauthenticated => "Not signed in",
            GatewayError::IdentityProviderUnavailable | GatewayError::IdentityProviderFailed => {
                "Sign-in unavailable"
            }
            GatewayError::SessionStoreUnavailable => "Sessions unavailable",
            GatewayError::TokenNotGranted => "Access not granted",
            GatewayError::RateLimited { .. } => "Too many requests",
            GatewayError::MisdirectedRequest => "Misdirected request",
            GatewayError::InsufficientClaims { .. } => "Access denied",
            GatewayError::StepUpRequired { .. } => "Stronger sign-in required",
            GatewayError::LoginRefused { .. } => "Sign-in not allowed",
            GatewayError::PayloadTooLarge { .. } => "Request body too large",
            GatewayError::RequestTimeout => "Request timeout",
            GatewayError::Internal => "Internal error",
        }
    }

    /// Where to sign in to get past this error, for problem bodies (`login_url`).
    pub fn login_url(&self) -> Option<&str> {
        match self {
            GatewayError::StepUpRequired { login_url } => Some(login_url),
            _ => None,
        }
    }

    /// Where a browser can go to try again, for pages that should offer it.
    pub fn retry_link(&self) -> Option<(&'static str, &'static str)> {
        match self {
            GatewayError::LoginFailed(_)
            | GatewayError::IdentityProviderFailed
            | GatewayError::IdentityProviderUnavailable => Some(("/bff/login", "Sign in again")),
            _ => None,
        }
    }

    /// One sentence for the client. Names configured clusters, never addresses or secrets.
    pub fn detail(&self) -> String {
        match self {
            GatewayError::NoRoute => "No route matches this path.".into(),
            GatewayError::AntiForgeryMissing { header } => {
                format!("This API requires the {header} header that the application sends with every call.")
            }
            GatewayError::CrossSiteRequest => {
                "The browser reported this call as coming from another site.".into()
            }
            GatewayError::ForeignOrigin => "Calls from this origin are not allowed.".into(),
            GatewayError::AmbiguousPath => {
                "The path contains dot-segments or encoded separators; send the normalised path."
                    .into()
            }
            GatewayError::BadRewrite => "The path cannot be forwarded after rewriting.".into(),
            GatewayError::NoHealthyUpstream { cluster } => {
                format!("No healthy destination in cluster '{cluster}'. Try again shortly.")
            }
            GatewayError::UpstreamUnreachable { cluster } => {
                format!("Could not connect to cluster '{cluster}'.")
            }
            GatewayError::UpstreamTimeout { cluster } => {
                format!("Cluster '{cluster}' did not answer in time.")
            }
            GatewayError::UpstreamBroken { cluster } => {
                format!("Cluster '{cluster}' sent an invalid or incomplete response.")
            }
            GatewayError::BadRequest => "The request could not be read.".into(),
            GatewayError::MethodNotAllowed => "This endpoint does not accept this method.".into(),
            GatewayError::InvalidParameter { detail } => detail.clone(),
            GatewayError::LoginFailed(why) => match why {
                LoginFailure::MissingState | LoginFailure::UnknownState => {
                    "This sign-in link has expired or was already used. Start the sign-in again."
                        .into()
                }
                LoginFailure::OtherBrowser => {
                    "This sign-in was started in another browser or tab profile. Start the sign-in again here."
                        .into()
                }
                LoginFailure::IdentityProvider { code } => {
                    format!("The identity provider did not sign you in ({code}).")
                }
                LoginFailure::MissingCode => {
                    "The identity provider's answer is incomplete. Start the sign-in again.".into()
                }
                LoginFailure::CodeRejected => {
                    "The identity provider refused to complete this sign-in. Start the sign-in again."
                        .into()
                }
                LoginFailure::StepUpNotDone => {
                    "The identity provider did not confirm the stronger sign-in this page needs."
                        .into()
                }
            },
            GatewayError::Unauthenticated => {
                "Sign in first (GET /bff/login), then repeat the call.".into()
            }
            GatewayError::IdentityProviderUnavailable => {
                "The identity provider cannot be reached yet. Try again shortly.".into()
            }
            GatewayError::IdentityProviderFailed => {
                "The identity provider did not complete the sign-in correctly. Try again shortly."
                    .into()
            }
            GatewayError::SessionStoreUnavailable => {
                "The session store cannot be reached. Try again shortly; nothing was lost.".into()
            }
            GatewayError::TokenNotGranted => {
                "The identity provider does not grant access to this API for your session.".into()
            }
            GatewayError::RateLimited { retry_after } => {
                format!("Too many of these requests from your address. Try again in {retry_after} seconds.")
            }
            GatewayError::MisdirectedRequest => {
                "This server does not serve the host named in the request.".into()
            }
            GatewayError::InsufficientClaims { rule } => {
                format!("Your account does not meet this API's requirement on the claim {rule}.")
            }
            GatewayError::StepUpRequired { .. } => {
                "This API needs a stronger sign-in. Sign in again through login_url.".into()
            }
            GatewayError::LoginRefused { rule } => format!(
                "Your account may not sign in to this application (requirement on the claim {rule})."
            ),
            GatewayError::PayloadTooLarge { limit } => {
                format!("The request body is larger than {limit} bytes.")
            }
            GatewayError::RequestTimeout => "The request body did not arrive in time.".into(),
            GatewayError::Internal => "The gateway failed to handle this request.".into(),
        }
    }
}

impl std::fmt::Display for GatewayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status(), self.slug(), self.detail())
    }
}

impl std::error::Error for GatewayError {}

/// A store that fails answers 503 and keeps the session (the browser keeps its cookie): a
/// network blip must not log anyone out. The cause is logged here, once for every caller.
impl From<crate::session::StoreError> for GatewayError {
    fn from(e: crate::session::StoreError) -> GatewayError {
        tracing::warn!(error = %e, "the session store failed; answering 503");
        GatewayError::SessionStoreUnavailable
    }
}

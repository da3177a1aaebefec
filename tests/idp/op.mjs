// The test OpenID Provider: the certified `oidc-provider` package, configured for Portcullis.
// Started by tests/it/harness/idp.rs on 127.0.0.1 (port 0 = any); prints one JSON line with its
// issuer once it listens. Settings come from the environment:
//   OP_CLIENT_ID, OP_CLIENT_SECRET       the gateway's confidential client
//   OP_REDIRECT_URIS, OP_POST_LOGOUT_URIS comma-separated
//   OP_BACKCHANNEL_URI                    back-channel logout endpoint of the gateway (optional)
//   OP_ACCESS_TOKEN_TTL                   seconds (short, so refresh can be tested)
//   OP_CLIENT_AUTH                        token endpoint auth method (default client_secret_basic)
//   OP_CLIENT_PUBLIC_KEY_FILE             PEM public key of the client, for private_key_jwt
//   OP_SIGNING_KEY_FILE                   PEM RSA private key the OP signs with (kid
//                                         OP_SIGNING_KEY_ID, default "op-key"), so tests can
//                                         forge tokens with the right key or rotate keys
//   OP_IGNORE_ACR                         "1": never confirm requested acr_values (an IdP
//                                         without step-up)
//   OP_USERINFO_ONLY                      "1": profile and email claims only at the userinfo
//                                         endpoint (conformIdTokenClaims), and access tokens
//                                         without a default resource, which userinfo accepts
// Test controls: GET /test/grants (counters), /test/rename?sub=&name= (profile change),
// /test/claims?sub=&json= (extra ID token claims for a user, e.g. groups or nested roles).
// Step-up: a login whose acr_values the OP session does not satisfy prompts a new sign-in, which
// then carries the first requested value as `acr` (as an IdP does after MFA).
// Traps handled here (see shared notes): PKCE forced for confidential clients, refresh tokens
// issued and rotated, JWT access tokens for the API resource, consent auto-granted, OP cookies
// renamed so they never collide with the gateway's on 127.0.0.1, loopback back-channel allowed.
import http from "node:http";
import { createPrivateKey, createPublicKey } from "node:crypto";
import { readFileSync } from "node:fs";
import Provider, { interactionPolicy } from "oidc-provider";

const env = (k, d) => process.env[k] ?? d;
const list = (k) => env(k, "").split(",").map((s) => s.trim()).filter(Boolean);
const clientId = env("OP_CLIENT_ID", "portcullis");
const accessTtl = Number(env("OP_ACCESS_TOKEN_TTL", "300"));
const API = "urn:portcullis:api";
const API_SCOPES = "api:read api:write";
// A second API with its own audience, for routes with `resource` (RFC 8707).
const PARTNER = "urn:portcullis:partner";

const server = http.createServer();
// OP_BIND: where to listen (the issuer stays 127.0.0.1); the Compose demo reaches it from the host.
await new Promise((ok) => server.listen(Number(env("OP_PORT", "0")), env("OP_BIND", "127.0.0.1"), ok));
const issuer = `http://127.0.0.1:${server.address().port}`;

const client = {
  client_id: clientId,
  client_secret: env("OP_CLIENT_SECRET", "portcullis-test-secret"),
  redirect_uris: list("OP_REDIRECT_URIS"),
  post_logout_redirect_uris: list("OP_POST_LOGOUT_URIS"),
  grant_types: ["authorization_code", "refresh_token", "client_credentials"],
  response_types: ["code"],
  token_endpoint_auth_method: env("OP_CLIENT_AUTH", "client_secret_basic"),
  backchannel_logout_session_required: true,
};
if (env("OP_BACKCHANNEL_URI", "")) client.backchannel_logout_uri = env("OP_BACKCHANNEL_URI", "");
if (env("OP_CLIENT_PUBLIC_KEY_FILE", "")) {
  const jwk = createPublicKey(readFileSync(env("OP_CLIENT_PUBLIC_KEY_FILE", ""))).export({ format: "jwk" });
  client.jwks = { keys: [{ ...jwk, kid: "portcullis-test", alg: "RS256", use: "sig" }] };
  delete client.client_secret;
}

const signing = env("OP_SIGNING_KEY_FILE", "")
  ? { keys: [{ ...createPrivateKey(readFileSync(env("OP_SIGNING_KEY_FILE", ""))).export({ format: "jwk" }), kid: env("OP_SIGNING_KEY_ID", "op-key"), alg: "RS256", use: "sig" }] }
  : undefined;

// Display names changed by tests (GET /test/rename?sub=..&name=..), as a user edits a profile.
const names = new Map();
// Extra claims per user (GET /test/claims?sub=..&json=..): groups, roles, nested objects.
const extraClaims = new Map();
const EXTRA_CLAIMS = ["groups", "realm_access", "level", "https://example.test/roles"];
const ignoreAcr = env("OP_IGNORE_ACR", "") === "1";
// Step-up as IdPs do it: acr_values the session does not satisfy mean signing in again.
const policy = interactionPolicy.base();
if (!ignoreAcr) policy.get("login").checks.add(new interactionPolicy.Check(
  "acr_step_up",
  "the requested acr is not satisfied",
  (ctx) => {
    const wanted = ctx.oidc.params.acr_values?.split(" ") ?? [];
    return wanted.length && !wanted.includes(ctx.oidc.session?.acr)
      ? interactionPolicy.Check.REQUEST_PROMPT
      : interactionPolicy.Check.NO_NEED_TO_PROMPT;
  },
));
const provider = new Provider(issuer, {
  clients: [client],
  ...(signing ? { jwks: signing } : {}),
  pkce: { required: () => true },
  cookies: {
    names: { session: "op_session", interaction: "op_interaction", resume: "op_resume" },
    keys: ["portcullis-test-op-cookie-key"],
  },
  interactions: { policy },
  acrValues: ["urn:mfa", "urn:pwd"],
  claims: {
    openid: ["sub", ...EXTRA_CLAIMS],
    profile: ["name", "preferred_username"],
    email: ["email", "email_verified"],
  },
  conformIdTokenClaims: env("OP_USERINFO_ONLY", "") === "1",
  // Any login is accepted by the dev interactions; the login name becomes `sub`.
  async findAccount(_ctx, sub) {
    return {
      accountId: sub,
      async claims() {
        return { ...extraClaims.get(sub), sub, name: names.get(sub) ?? `Test ${sub}`, preferred_username: sub, email: `${sub}@example.test`, email_verified: true };
      },
    };
  },
  // Consent is granted automatically, including the API resource's scopes.
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    const grant = grantId
      ? await ctx.oidc.provider.Grant.find(grantId)
      : new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
    grant.addOIDCScope("openid profile email offline_access");
    grant.addResourceScope(API, API_SCOPES);
    grant.addResourceScope(PARTNER, "partner:read");
    await grant.save();
    return grant;
  },
  issueRefreshToken: async (_ctx, c) => c.grantTypeAllowed("refresh_token"),
  rotateRefreshToken: () => true,
  ttl: { AccessToken: accessTtl, ClientCredentials: accessTtl, IdToken: 3600, RefreshToken: 86400, Session: 86400, Grant: 86400 },
  features: {
    devInteractions: { enabled: true },
    revocation: { enabled: true },
    clientCredentials: { enabled: true },
    rpInitiatedLogout: { enabled: true },
    backchannelLogout: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => (env("OP_USERINFO_ONLY", "") === "1" ? undefined : API),
      useGrantedResource: () => true,
      getResourceServerInfo: (_ctx, resource) => ({
        scope: resource === PARTNER ? "partner:read" : API_SCOPES,
        audience: resource === PARTNER ? "partner" : "api",
        accessTokenTTL: accessTtl,
        accessTokenFormat: "jwt",
      }),
    },
  },
  // Back-channel logout goes to the gateway on loopback, which the SSRF guard would refuse.
  fetch: (url, options) => {
    delete options.dispatcher;
    return globalThis.fetch(url, options);
  },
});
provider.proxy = false;
// The dev interactions finish a login without an acr; a step-up login gets the first value it
// asked for, like an IdP after the second factor.
const finished = provider.interactionFinished.bind(provider);
provider.interactionFinished = async (req, res, result, options) => {
  if (result?.login && !ignoreAcr) {
    const details = await provider.interactionDetails(req, res);
    const wanted = details.params.acr_values?.split(" ")[0];
    if (wanted) result.login.acr = wanted;
  }
  return finished(req, res, result, options);
};
// Failures inside the OP would otherwise only show as "server_error" to the test.
provider.on("server_error", (_ctx, err) => console.error("op server_error:", err));

// What tests count: grants issued and refused, by grant type / error (GET /test/grants).
const grants = { issued: {}, refused: {}, refresh_tokens_destroyed: 0 };
provider.on("refresh_token.destroyed", () => { grants.refresh_tokens_destroyed += 1; });
provider.on("grant.success", (ctx) => {
  const type = ctx.oidc.params.grant_type;
  grants.issued[type] = (grants.issued[type] ?? 0) + 1;
  // The JOSE header of the last private_key_jwt client assertion (kid, x5t, x5t#S256).
  const assertion = ctx.oidc.params.client_assertion;
  if (assertion) grants.last_assertion_header = JSON.parse(Buffer.from(assertion.split(".")[0], "base64url"));
});
provider.on("grant.error", (ctx, err) => {
  const key = `${ctx.oidc.params?.grant_type}:${err.error}`;
  grants.refused[key] = (grants.refused[key] ?? 0) + 1;
});
const callback = provider.callback();
server.on("request", (req, res) => {
  if (req.url.startsWith("/test/claims?")) {
    const q = new URL(req.url, issuer).searchParams;
    extraClaims.set(q.get("sub"), JSON.parse(q.get("json")));
    res.writeHead(204);
    return res.end();
  }
  if (req.url.startsWith("/test/rename?")) {
    const q = new URL(req.url, issuer).searchParams;
    names.set(q.get("sub"), q.get("name"));
    res.writeHead(204);
    return res.end();
  }
  if (req.url === "/test/grants") {
    res.writeHead(200, { "content-type": "application/json" });
    return res.end(JSON.stringify(grants));
  }
  return callback(req, res);
});
console.log(JSON.stringify({ issuer }));
for (const sig of ["SIGTERM", "SIGINT"]) process.on(sig, () => server.close(() => process.exit(0)));

// The demo SPA (127.0.0.1:3000) and API (127.0.0.1:3001) that Portcullis fronts in the
// quickstart. Plain Node, no dependencies. Ports can be moved with SPA_PORT / API_PORT.
import http from "node:http";

const spaPort = Number(process.env.SPA_PORT ?? 3000);
const apiPort = Number(process.env.API_PORT ?? 3001);

const page = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Portcullis demo</title>
<meta name="viewport" content="width=device-width">
<style>body{font-family:system-ui,sans-serif;max-width:44rem;margin:3rem auto;padding:0 1rem}
pre{background:#f4f4f4;padding:1rem;overflow:auto}</style></head>
<body>
<h1>Portcullis demo SPA</h1>
<p id="who">Checking your session…</p>
<p id="actions"></p>
<p>This page was served by the SPA cluster through Portcullis. The button calls
<code>/api/hello</code>, which Portcullis routes to the API cluster with your access token
(401 until you log in). The page never sees the token; the API shows whose it is.</p>
<button id="call">Call the API</button>
<pre id="out">(no call yet)</pre>
<script>
// The SPA never sees a token: it asks Portcullis who is signed in (/bff/user, with the
// anti-forgery header) and sends the browser to /bff/login or the logout URL it was given.
(async () => {
  const r = await fetch("/bff/user", { headers: { "X-CSRF": "1" } });
  const who = document.getElementById("who");
  const actions = document.getElementById("actions");
  if (r.status === 200) {
    const claims = await r.json();
    const get = (t) => (claims.find((c) => c.type === t) || {}).value;
    who.textContent = "Signed in as " + (get("name") || get("sub")) + " (session ends in " + get("bff:session_expires_in") + " s unless used).";
    actions.innerHTML = '<a id="logout" href="' + get("bff:logout_url") + '&returnUrl=/">Log out</a>';
  } else {
    who.textContent = "Not signed in.";
    actions.innerHTML = '<a id="login" href="/bff/login?returnUrl=/">Log in</a> (any user name and password work on the demo OP)';
  }
})();
document.getElementById("call").onclick = async () => {
  const r = await fetch("/api/hello", { headers: { "X-CSRF": "1" } });
  document.getElementById("out").textContent = r.status + "\\n" + JSON.stringify(await r.json(), null, 2);
};
</script>
</body></html>`;

http
  .createServer((req, res) => {
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
    res.end(page);
  })
  .listen(spaPort, "127.0.0.1", () => console.log(`demo SPA on http://127.0.0.1:${spaPort}`));

http
  .createServer((req, res) => {
    if (req.url === "/health") {
      res.writeHead(200, { "content-type": "text/plain" });
      return res.end("ok");
    }
    const seen = {};
    for (const h of ["host", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-request-id"]) {
      if (req.headers[h]) seen[h] = req.headers[h];
    }
    // Portcullis put the user's access token here. A real API verifies it; the demo only shows
    // who it is for, and never sends the token itself back to the browser.
    let token = null;
    const bearer = (req.headers.authorization ?? "").match(/^Bearer (.+)$/);
    if (bearer) {
      try {
        const claims = JSON.parse(Buffer.from(bearer[1].split(".")[1], "base64url").toString());
        token = { sub: claims.sub, aud: claims.aud, scope: claims.scope, expires_in: claims.exp - Math.floor(Date.now() / 1000) };
      } catch {
        token = "not a JWT";
      }
    }
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ message: "hello from the demo API", path: req.url, access_token_claims: token, headers: seen }));
  })
  .listen(apiPort, "127.0.0.1", () => console.log(`demo API on http://127.0.0.1:${apiPort}`));

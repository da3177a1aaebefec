// What a page on another site can do against the gateway's API with the user's browser: the
// same two attempts for every browser test that plays the attacker.
//   { withHeader: status | "blocked", simple: "opaque" | "error" }
export async function crossSiteAttempts(page, foreign, gateway) {
  await page.goto(`${foreign}/evil`);
  return page.evaluate(async (target) => {
    const out = {};
    try {
      // Carrying the anti-forgery header needs a CORS preflight, which the gateway never approves.
      const r = await fetch(`${target}/api/orders`, {
        method: "POST",
        credentials: "include",
        headers: { "X-CSRF": "1", "Content-Type": "application/json" },
        body: "{}",
      });
      out.withHeader = r.status;
    } catch {
      out.withHeader = "blocked";
    }
    try {
      // A "simple" request needs no preflight: it is sent, but cannot carry the header.
      const r = await fetch(`${target}/api/orders`, { method: "POST", credentials: "include", mode: "no-cors", body: "x" });
      out.simple = r.type;
    } catch {
      out.simple = "error";
    }
    return out;
  }, gateway);
}

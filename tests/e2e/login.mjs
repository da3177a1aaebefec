// A real browser (Debian chromium via playwright-core) logs in through the gateway.
//   node tests/e2e/login.mjs <gateway origin> <user> [<foreign origin>]
// Prints one JSON object: where the browser ended up, what /bff/user said to the page, what
// the page's script could see of the cookies, and (with a foreign origin) what another site's
// page could do with the signed-in user's session.
import { chromium } from "playwright-core";
import { crossSiteAttempts } from "./attacker.mjs";

const [gateway, user, foreign] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic", "--no-first-run"],
});
const results = {};
try {
  const context = await browser.newContext();
  // The OP's dev pages reference external fonts; nothing but loopback is reachable here.
  await context.route(/^https?:\/\/(?!127\.0\.0\.1|localhost)/, (route) => route.abort());
  const page = await context.newPage();

  await page.goto(`${gateway}/bff/login?returnUrl=/app/home`);
  // The OP's login page, then its consent page (dev interactions).
  await page.fill('input[name="login"]', user);
  await page.fill('input[name="password"]', "any");
  await Promise.all([page.waitForNavigation(), page.click('button[type="submit"]')]);
  if (!page.url().startsWith(gateway)) {
    await Promise.all([page.waitForURL(`${gateway}/**`), page.click('button[type="submit"]')]);
  }
  results.landedOn = new URL(page.url()).pathname;
  results.user = await page.evaluate(async () => {
    const r = await fetch("/bff/user", { headers: { "X-CSRF": "1" } });
    return { status: r.status, claims: await r.json() };
  });
  results.scriptCookies = await page.evaluate(() => document.cookie);
  if (foreign) {
    // The user is signed in; a page on another site tries to use that session on the API.
    results.crossOrigin = await crossSiteAttempts(page, foreign, gateway);
  }
  results.cookies = (await context.cookies(gateway)).map((c) => ({
    name: c.name,
    httpOnly: c.httpOnly,
    secure: c.secure,
    sameSite: c.sameSite,
    path: c.path,
  }));

  // Log out the way the SPA's button does: the logout URL /bff/user handed out, then the IdP's
  // confirmation page, then back on the site.
  await page.goto(`${gateway}/`);
  const logoutUrl = results.user.claims.find((c) => c.type === "bff:logout_url").value;
  await page.goto(`${gateway}${logoutUrl}&returnUrl=/bye`);
  results.logoutPage = new URL(page.url()).origin === new URL(gateway).origin ? "gateway" : "idp";
  await Promise.all([page.waitForURL(`${gateway}/bye`), page.click('button[name="logout"]')]);
  results.afterLogout = {
    landedOn: new URL(page.url()).pathname,
    user: await page.evaluate(async () => (await fetch("/bff/user", { headers: { "X-CSRF": "1" } })).status),
    sessionCookie: (await context.cookies(gateway)).some((c) => c.name === "__Host-portcullis"),
  };
} finally {
  await browser.close();
}
console.log(JSON.stringify(results));

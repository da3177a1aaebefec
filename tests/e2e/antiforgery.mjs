// A real browser (Debian chromium via playwright-core) plays the SPA and an attacker's page.
//   node tests/e2e/antiforgery.mjs <gateway origin> <foreign origin>
// Prints one JSON object with what each page could do; the Rust test asserts on it and on what
// reached the API.
import { chromium } from "playwright-core";
import { crossSiteAttempts } from "./attacker.mjs";

const [gateway, foreign] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic", "--no-first-run"],
});
const results = {};
try {
  const page = await browser.newPage();

  // The SPA's own page, served through the gateway: its calls carry X-CSRF and pass.
  await page.goto(`${gateway}/app`);
  results.sameOrigin = await page.evaluate(async () => {
    const withHeader = await fetch("/api/orders", { method: "POST", headers: { "X-CSRF": "1" }, body: "{}" });
    const without = await fetch("/api/orders", { method: "POST", body: "{}" });
    return { withHeader: withHeader.status, withoutHeader: without.status };
  });

  // Another site's page tries the same calls with the user's cookies.
  results.crossOrigin = await crossSiteAttempts(page, foreign, gateway);
} finally {
  await browser.close();
}
console.log(JSON.stringify(results));

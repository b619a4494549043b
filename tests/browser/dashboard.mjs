// Drives the dashboard in a real headless chromium (playwright-core + Debian's chromium):
// the job appears, its map fills, a worker process is stopped (SIGSTOP) and is seen stale
// while its range goes to the others, and the job ends with the expected nonce. Saves a
// screenshot. Usage:
//   node dashboard.mjs --url URL --token T --stop-pid PID --nonce N --screenshot FILE
// Exits 0 when everything was seen, 1 with the reason otherwise.
import { createRequire } from "node:module";
import path from "node:path";

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith("--") ? [...acc, [a.slice(2), all[i + 1]]] : acc), []),
);
const require = createRequire(path.join(process.env.NONCE_PLAYWRIGHT_DIR || ".", "node_modules", "x.js"));
const { chromium } = require("playwright-core");
const executablePath = process.env.NONCE_CHROMIUM || "/usr/bin/chromium";
const step = (msg) => console.log(`[${new Date().toISOString().slice(11, 23)}] ${msg}`);

const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
});
let failed = null;
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(`${args.url}/#token=${args.token}`);
  if (new URL(page.url()).hash) throw new Error("the token stayed in the URL");

  await page.waitForSelector("#jobs tbody tr[data-state=running]", { timeout: 20000 });
  step("the running job is listed");
  await page.waitForFunction(() => document.querySelector("#map")?.dataset.holders?.split(" ").filter(Boolean).length >= 2, null, { timeout: 20000 });
  const first = Number(await page.$eval("#map", (c) => c.dataset.done));
  await page.waitForFunction((d) => Number(document.querySelector("#map").dataset.done) > d, first, { timeout: 20000 });
  step(`the map fills (${first} -> ${await page.$eval("#map", (c) => c.dataset.done)})`);

  const before = (await page.$eval("#map", (c) => c.dataset.holders)).split(" ");
  process.kill(Number(args["stop-pid"]), "SIGSTOP");
  step(`SIGSTOP ${args["stop-pid"]}; holders were ${before.join(" ")}`);
  await page.waitForSelector("#workers tr.stale", { timeout: 30000 });
  const stale = await page.$eval("#workers tr.stale", (tr) => tr.dataset.worker);
  step(`worker ${stale} is shown stale`);
  await page.waitForSelector("#events li[data-kind=reshard]", { timeout: 30000 });
  await page.waitForFunction(
    (w) => {
      const holders = (document.querySelector("#map").dataset.holders || "").split(" ");
      return !holders.includes(w) && document.querySelector("#workers tr.stale");
    },
    stale,
    { timeout: 30000 },
  );
  step(`its range was re-assigned: holders now ${await page.$eval("#map", (c) => c.dataset.holders)}`);
  await page.screenshot({ path: args.screenshot, fullPage: true });
  step(`screenshot ${args.screenshot}`);

  await page.waitForSelector("#detail[data-outcome=found]", { timeout: 90000 });
  const nonce = await page.$eval("#detail", (d) => d.dataset.nonce);
  if (nonce !== String(args.nonce)) throw new Error(`the page shows nonce ${nonce}, expected ${args.nonce}`);
  await page.waitForSelector(`#jobs tbody tr[data-state=finished]`, { timeout: 10000 });
  step(`the job ended with nonce ${nonce}`);
  if (errors.length) throw new Error(`errors in the page: ${errors.join("; ")}`);
} catch (e) {
  failed = e;
} finally {
  await browser.close();
}
if (failed) {
  console.error(`dashboard test failed: ${failed.message}`);
  process.exit(1);
}

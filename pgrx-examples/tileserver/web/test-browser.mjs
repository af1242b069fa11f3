// Headless Chromium (Debian's `chromium`) drives the demo map: for each layer it opens the page,
// waits until MapLibre has drawn every tile it asked for, checks that each tile arrived as
// 200 image/png, switches the colormap on heat layers and checks the restyled tiles, and saves
// a screenshot. Usage: node test-browser.mjs BASE_URL OUT_DIR LAYER...
import puppeteer from "puppeteer-core";

const [base, outDir, ...layers] = process.argv.slice(2);
if (!base || !outDir || layers.length === 0) {
  console.error("usage: node test-browser.mjs BASE_URL OUT_DIR LAYER...");
  process.exit(2);
}

const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--window-size=1000,700"],
  defaultViewport: { width: 1000, height: 700 },
});
let failures = 0;
const fail = (msg) => { failures += 1; console.error(`FAIL ${msg}`); };

async function waitForTiles(page, layer, tiles, what) {
  await page.waitForFunction(() => window.vasttileIdle === true, { timeout: 90_000 });
  const mine = tiles.filter((t) => t.url.includes(`/${layer}/`));
  if (mine.length === 0) fail(`${layer} ${what}: no tile requests`);
  const bad = mine.filter((t) => t.status !== 200 || t.type !== "image/png");
  for (const t of bad.slice(0, 5)) fail(`${layer} ${what}: ${t.url} -> ${t.status} ${t.type}`);
  console.log(`${layer} ${what}: ${mine.length} tiles, ${mine.length - bad.length} as 200 image/png`);
  return mine;
}

for (const layer of layers) {
  const page = await browser.newPage();
  const tiles = [];
  page.on("response", (r) => {
    if (/\/\d+\/\d+\/\d+(@2x)?\.png/.test(r.url())) {
      tiles.push({ url: r.url(), status: r.status(), type: r.headers()["content-type"] });
    }
  });
  page.on("pageerror", (e) => fail(`${layer}: page error ${e.message}`));
  await page.goto(`${base}/map/?layer=${layer}`, { waitUntil: "load" });
  await waitForTiles(page, layer, tiles, "default style");
  const legend = await page.$eval("#legend", (img) => img.complete && img.naturalWidth > 0);
  if (!legend) fail(`${layer}: the legend did not load`);
  const restylable = await page.$eval("#colormap", (s) => !s.disabled);
  if (restylable) {
    tiles.length = 0;
    await page.select("#colormap", "viridis");
    const again = await waitForTiles(page, layer, tiles, "colormap=viridis");
    if (!again.every((t) => t.url.includes("colormap=viridis"))) fail(`${layer}: restyled tiles lack the colormap`);
  }
  await page.screenshot({ path: `${outDir}/map-${layer}.png` });
  console.log(`${layer}: screenshot ${outDir}/map-${layer}.png`);
  await page.close();
}
await browser.close();
if (failures > 0) {
  console.error(`${failures} failures`);
  process.exit(1);
}
console.log("browser test passed");

// The RabbitMQ management UI as an operator uses it, in Debian's Chromium
// driven by playwright-core: log in, open Queues -> patients, publish
// {"patient_id": ...} once with a content type and once without, publish a
// bad payload the same way, then find it in docket.parked with its reason
// under "Get messages". Screenshots of every step go to SHOTS.
//
//   node browser.js CONFIG_JSON
//   CONFIG: {url, user, password, vhost, with_type, without_type, bad, shots}
// Prints one JSON line per step; exits 1 on the first step that fails.

const path = require('path');
const fs = require('fs');
const os = require('os');
const { chromium } = require(path.join(__dirname, '../../var/browser/node_modules/playwright-core'));

const cfg = JSON.parse(process.argv[2]);
let shot = 0;

async function snap(page, name) {
  shot += 1;
  const file = path.join(cfg.shots, `${String(shot).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

function step(name, extra = {}) {
  console.log(JSON.stringify({ step: name, ...extra }));
}

async function openQueue(page, queue) {
  await page.goto(`${cfg.url}/#/queues/${encodeURIComponent(cfg.vhost)}/${encodeURIComponent(queue)}`);
  await page.waitForSelector(`h1:has-text("${queue}")`, { timeout: 15000 });
}

// The UI remembers which sections were open: open one only if it is closed.
async function openSection(page, title, inside) {
  await page.waitForSelector(`h2:has-text("${title}")`);
  if (!(await page.locator(inside).isVisible())) await page.click(`h2:has-text("${title}")`);
  await page.locator(inside).waitFor({ state: 'visible', timeout: 5000 });
}

async function publish(page, payload, contentType) {
  await openQueue(page, 'patients');
  await openSection(page, 'Publish message', 'input[type=submit][value="Publish message"]');
  const form = page.locator('form[action="#/exchanges/publish"]');
  if (contentType) {
    await form.locator('#props_1_mfkey').fill('content_type');
    await form.locator('#props_1_mfvalue').fill(contentType);
  }
  await form.locator('textarea[name=payload]').fill(payload);
  await form.locator('input[type=submit][value="Publish message"]').click();
  // The UI confirms in a popup; the broker refusing would say so there instead.
  const popup = page.locator('.form-popup-info, .form-popup-warn').last();
  await popup.waitFor({ state: 'visible', timeout: 10000 });
  const text = (await popup.innerText()).trim();
  const file = await snap(page, `published-${payload.startsWith('{') ? (contentType ? 'with' : 'without') + '-type' : 'bad-payload'}`);
  // "Message published, but not routed." (a warning) would mean no queue took it.
  if (!/^Message published\./.test(text)) throw new Error(`publishing ${payload} said: ${text}`);
  await popup.locator('span:has-text("Close")').click().catch(() => {});
  return file;
}

(async () => {
  fs.mkdirSync(cfg.shots, { recursive: true });
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'docket-chromium-'));
  // The machine's network is closed: nothing that phones home.
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
           '--disable-sync', '--no-first-run'],
    viewport: { width: 1280, height: 1000 },
  });
  const page = ctx.pages()[0] || (await ctx.newPage());
  try {
    await page.goto(cfg.url);
    await page.fill('input[name=username]', cfg.user);
    await page.fill('input[name=password]', cfg.password);
    await page.click('input[type=submit]');
    await page.waitForSelector('#logout', { timeout: 15000 });
    step('logged in', { screenshot: await snap(page, 'logged-in') });

    await page.click('a[href="#/queues"]');
    await page.waitForSelector('a:has-text("patients")', { timeout: 15000 });
    step('queues listed', { screenshot: await snap(page, 'queues') });

    const a = await publish(page, JSON.stringify({ patient_id: cfg.with_type }), 'application/json');
    step('published with a content type', { patient_id: cfg.with_type, screenshot: a });
    const b = await publish(page, JSON.stringify({ patient_id: cfg.without_type }), null);
    step('published without a content type', { patient_id: cfg.without_type, screenshot: b });
    const c = await publish(page, cfg.bad, null);
    step('published a bad payload', { payload: cfg.bad, screenshot: c });

    // The bad payload ends in docket.parked; its reason is a header.
    const deadline = Date.now() + 60000;
    let text = '';
    while (Date.now() < deadline) {
      await openQueue(page, 'docket.parked');
      await openSection(page, 'Get messages', 'input[type=submit][value="Get Message(s)"]');
      await page.locator('input[type=submit][value="Get Message(s)"]').click();
      await page.waitForTimeout(1000);
      text = await page.locator('#msg-wrapper').innerText().catch(() => '');
      if (text.includes('x-docket-reason') && text.includes(cfg.bad)) break;
      await page.waitForTimeout(1000);
    }
    const file = await snap(page, 'parked-reason');
    const reason = (text.match(/x-docket-reason:\s*(.*)/) || [])[1] || '';
    if (!reason) throw new Error(`docket.parked shows no message with x-docket-reason for ${cfg.bad}:\n${text}`);
    step('parked with its reason', { reason: reason.trim(), screenshot: file });
  } catch (e) {
    const file = await snap(page, 'failed').catch(() => null);
    step('FAILED', { error: String(e.message || e), screenshot: file });
    process.exitCode = 1;
  } finally {
    await ctx.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
})();

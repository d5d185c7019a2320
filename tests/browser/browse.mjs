// browse.mjs — a small headless-Chromium driver for the Python integration tests.
//
//   node tests/browser/browse.mjs '<json script>'
//
// The script is a list of steps, or {"steps": [...], "timeout": ms}. Steps:
//   {"javascript": false}           context option; before the first goto (later: new page)
//   {"viewport": [w, h]}            set the viewport (also kept as a context option)
//   {"mobile": true}                isMobile + hasTouch + deviceScaleFactor 2 (context
//                                   option; after the first goto: a new page, goto again)
//   {"goto": url}                   navigate; its status goes to "navigations"
//   {"fill": [selector, text]}
//   {"click": selector}             waits for the navigation it starts ("navigation": false
//                                   when the click navigates nowhere)
//   {"text": selector}              innerText of the first match, into "texts"
//   {"html": true}                  the page's HTML, into "html"
//   {"count": selector}             number of matches, into "counts"
//   {"screenshot": path, "fullPage": true}
//   {"wait": ms}
// It prints one JSON object: ok, navigations [{method, url, status, headers}], headers (of
// the first navigation), status (of the last), title, steps [{step, url, title, text}],
// texts, counts, html, dialogs, console, pageerrors, requests (every URL the page asked
// for), errors. Exit status: 0 when every step ran, 1 when a step failed (the JSON still
// says which), 2 when the driver itself could not run (bad script, no browser).
// It never downloads a browser: Debian's /usr/bin/chromium is used, or $CHROMIUM.
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { chromium } from 'playwright-core';

const EXECUTABLE = process.env.CHROMIUM || '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--disable-dev-shm-usage'];

const out = {
  ok: false, navigations: [], headers: null, status: null, title: null, steps: [],
  texts: [], counts: [], html: null, dialogs: [], console: [], pageerrors: [], requests: [],
  errors: [],
};
let printed = false;
function finish(code) {
  if (!printed) {
    printed = true;
    process.stdout.write(JSON.stringify(out) + '\n');
  }
  process.exitCode = code;
}

let script;
try {
  script = JSON.parse(process.argv[2] || '');
  if (Array.isArray(script)) script = { steps: script };
  if (!script || !Array.isArray(script.steps)) throw new Error('want a list of steps');
} catch (e) {
  out.errors.push('bad script: ' + e.message);
  finish(2);
  process.exit(2);
}

const stepTimeout = script.stepTimeout || 15000;
const totalTimeout = script.timeout || 60000;

let browser = null;
const pending = [];
const watchdog = setTimeout(async () => {
  out.errors.push(`driver timed out after ${totalTimeout} ms`);
  finish(2);
  try { if (browser) await browser.close(); } catch { /* closing anyway */ }
  process.exit(2);
}, totalTimeout);

async function main() {
  try {
    browser = await chromium.launch({ executablePath: EXECUTABLE, args: ARGS, headless: true,
      timeout: 30000 });
  } catch (e) {
    out.errors.push('cannot launch ' + EXECUTABLE + ': ' + e.message);
    return 2;
  }
  const ctxOpts = {};
  let context = null;
  let page = null;

  async function newPage() {
    if (context) await context.close();
    context = await browser.newContext(ctxOpts);
    page = await context.newPage();
    page.setDefaultTimeout(stepTimeout);
    page.setDefaultNavigationTimeout(stepTimeout);
    page.on('dialog', async (d) => {
      out.dialogs.push({ type: d.type(), message: d.message() });
      try { await d.dismiss(); } catch { /* page gone */ }
    });
    page.on('console', (m) => out.console.push({ type: m.type(), text: m.text() }));
    page.on('pageerror', (err) => out.pageerrors.push(String(err && err.message || err)));
    page.on('request', (r) => out.requests.push({ method: r.method(), url: r.url() }));
    page.on('response', (r) => {
      const req = r.request();
      if (!req.isNavigationRequest() || r.frame() !== page.mainFrame()) return;
      const nav = { method: req.method(), url: r.url(), status: r.status(), headers: r.headers() };
      out.navigations.push(nav);
      if (out.headers === null) out.headers = nav.headers;
      out.status = nav.status;
      // allHeaders() also has what headers() leaves out; collected before the browser closes
      pending.push(r.allHeaders().then((h) => {
        nav.headers = h;
        if (out.navigations[0] === nav) out.headers = h;
      }).catch(() => {}));
    });
  }

  async function ensurePage() {
    if (!page) await newPage();
    return page;
  }

  function waitMainNavigation() {
    return page.waitForResponse((r) => r.request().isNavigationRequest() &&
      r.frame() === page.mainFrame(), { timeout: stepTimeout });
  }

  async function record(step) {
    const entry = { step, url: page ? page.url() : null, title: null, text: null };
    if (page) {
      try {
        entry.title = await page.title();
        entry.text = await page.locator('body').innerText({ timeout: 2000 });
      } catch (e) { entry.text = null; }
      out.title = entry.title;
    }
    out.steps.push(entry);
  }

  for (const step of script.steps) {
    try {
      if ('javascript' in step) {
        ctxOpts.javaScriptEnabled = !!step.javascript;
        if (page) await newPage();
      } else if ('mobile' in step) {
        ctxOpts.isMobile = !!step.mobile;
        ctxOpts.hasTouch = !!step.mobile;
        ctxOpts.deviceScaleFactor = step.mobile ? 2 : 1;
        if (page) await newPage();
      } else if ('viewport' in step) {
        const [width, height] = step.viewport;
        ctxOpts.viewport = { width, height };        // for a later {"mobile"} context too
        if (page) await page.setViewportSize({ width, height });
      } else if ('goto' in step) {
        await ensurePage();
        // A refusal page (4xx) is still a page: goto resolves with its response.
        await page.goto(step.goto, { waitUntil: 'load' });
      } else if ('fill' in step) {
        await (await ensurePage()).fill(step.fill[0], step.fill[1]);
      } else if ('click' in step) {
        await ensurePage();
        if (step.navigation === false) {
          await page.click(step.click);
        } else {
          const nav = waitMainNavigation();
          await page.click(step.click);
          await nav;
          await page.waitForLoadState('load');
        }
      } else if ('text' in step) {
        await ensurePage();
        out.texts.push(await page.locator(step.text).first().innerText());
      } else if ('count' in step) {
        await ensurePage();
        out.counts.push(await page.locator(step.count).count());
      } else if ('html' in step) {
        await ensurePage();
        out.html = await page.content();
      } else if ('screenshot' in step) {
        await ensurePage();
        mkdirSync(dirname(step.screenshot), { recursive: true });
        await page.screenshot({ path: step.screenshot, fullPage: !!step.fullPage });
      } else if ('wait' in step) {
        await new Promise((r) => setTimeout(r, step.wait));
      } else {
        throw new Error('unknown step');
      }
      await record(step);
    } catch (e) {
      out.errors.push(`step ${JSON.stringify(step)}: ${e.message.split('\n')[0]}`);
      await record(step).catch(() => {});
      return 1;
    }
  }
  return 0;
}

let code = 2;
try {
  code = await main();
} catch (e) {
  out.errors.push('driver: ' + (e && e.message || e));
  code = 2;
} finally {
  await Promise.all(pending);
  try { if (browser) await browser.close(); } catch (e) { out.errors.push('close: ' + e.message); }
  clearTimeout(watchdog);
}
out.ok = code === 0;
finish(code);

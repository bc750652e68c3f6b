// console_test.js - drives hook-api's web console in Debian's headless chromium (puppeteer-core,
// no browser download) as a customer would: open a portal link, add a webhook with Bearer auth
// through the form, publish an event through the API, open its delivery on the details page
// (request body, masked Authorization), press Redeliver and see the attempts grow, delete it.
// Run by tests/integration/test_console.py, which starts the daemons, hook-api and a receiver
// and checks afterwards what the receiver got. Prints "RESULT {json}" last; exits 1 on failure.
//
// env: HOOKLINE_API (http://HOST:PORT), HOOKLINE_TOKEN (a project token), HOOKLINE_PROJECT,
//      HOOKLINE_RECEIVER (the URL the webhook is given), CHROMIUM (default /usr/bin/chromium),
//      BROWSER=firefox with FIREFOX (default /usr/bin/firefox-esr) to drive Firefox instead,
//      SCREENSHOT_DIR (optional: console-list.png, console-form.png, console-details.png),
//      HOOKLINE_ADMIN_TOKEN and HOOKLINE_OTHER_PROJECT (optional: the sign-in form and the
//      project picker with an admin token).
'use strict';

const path = require('path');
const puppeteer = require('puppeteer-core');

const env = (k, d) => {
  const v = process.env[k] || d;
  if (!v) throw new Error(`console_test: ${k} is not set`);
  return v;
};
const API = env('HOOKLINE_API');
const TOKEN = env('HOOKLINE_TOKEN');
const PROJECT = env('HOOKLINE_PROJECT');
const RECEIVER = env('HOOKLINE_RECEIVER');
const BROWSER = process.env.BROWSER || 'chrome'; // or firefox (Debian's firefox-esr, WebDriver BiDi)
const EXE = env(BROWSER === 'firefox' ? 'FIREFOX' : 'CHROMIUM',
  BROWSER === 'firefox' ? '/usr/bin/firefox-esr' : '/usr/bin/chromium');
const SHOTS = process.env.SCREENSHOT_DIR || '';
const ADMIN = process.env.HOOKLINE_ADMIN_TOKEN || ''; // with HOOKLINE_OTHER_PROJECT: sign-in flow
const OTHER = process.env.HOOKLINE_OTHER_PROJECT || '';
const BEARER = 'brw-' + Math.random().toString(36).slice(2) + '-secret-bearer';
const WAIT = 30000;

function check(cond, what) {
  if (!cond) throw new Error('check failed: ' + what);
  console.log('ok - ' + what);
}

async function api(method, p, body) {
  const res = await fetch(API + p, {
    method,
    headers: {Authorization: 'Bearer ' + TOKEN, 'Content-Type': 'application/json'},
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return {status: res.status, body: text ? JSON.parse(text) : null};
}

async function shot(page, name) {
  if (!SHOTS) return;
  const file = path.join(SHOTS, `console-${name}.png`);
  await page.$eval('#status', (e) => { e.textContent = ''; }); // no passing notice in the picture
  await page.screenshot({path: file, fullPage: true});
  console.log('screenshot ' + file);
}

// firstLoad: navigation start to the list drawn (the page's performance mark), in ms.
async function firstLoad(page) {
  await page.waitForFunction(() => performance.getEntriesByName('hookline:list').length > 0,
    {timeout: WAIT});
  return page.evaluate(() => performance.getEntriesByName('hookline:list')[0].startTime);
}

// loadParts: where the first load went (document answered, scripts ran), in ms.
async function loadParts(page) {
  return page.evaluate(() => {
    const n = performance.getEntriesByType('navigation')[0];
    return {doc: Math.round(n.responseEnd), dcl: Math.round(n.domContentLoadedEventEnd)};
  });
}

// adminFlow: an admin token typed into the sign-in form (a wrong one first), then the project
// picker, another project's list, sign out. A fresh context: its own sessionStorage.
async function adminFlow(browser, foreign, consoleErrors) {
  const ctx = await browser.createBrowserContext();
  const page = await ctx.newPage();
  await page.setViewport({width: 1280, height: 860});
  page.on('pageerror', (e) => consoleErrors.push(String(e)));
  page.on('request', (r) => {
    if (!r.url().startsWith(API + '/') && !r.url().startsWith('data:')) foreign.push(r.url());
  });
  await page.goto(API + '/', {waitUntil: 'load'});
  await page.waitForSelector('#signin-token', {timeout: WAIT});
  check(await page.evaluate(() => document.activeElement.id === 'signin-token'),
    'the sign-in form has the focus');
  await page.type('#signin-token', 'hlt_not_a_real_token');
  await page.keyboard.press('Enter');
  await page.waitForSelector('#error:not([hidden])', {timeout: WAIT});
  const msg = await page.$eval('#error', (e) => e.textContent.replace(/^Error:\s*/, ''));
  check(msg.length > 0 && !/^HTTP /.test(msg), `a wrong token gets the API's message: "${msg}"`);
  await page.$eval('#signin-token', (e) => { e.value = ''; });
  await page.type('#signin-token', ADMIN);
  await page.keyboard.press('Enter');
  await page.waitForSelector('ul.projects', {timeout: WAIT});
  const names = await page.$$eval('ul.projects a', (as) => as.map((a) => a.textContent));
  check(names.length >= 2, `the admin token's project picker lists the projects (${names.join(', ')})`);
  await page.click(`ul.projects a[href="#/projects/${encodeURIComponent(OTHER)}/webhooks"]`);
  await page.waitForFunction(() => document.querySelector('h1') &&
    document.querySelector('h1').textContent === 'Webhooks' && document.querySelector('p.empty'),
  {timeout: WAIT});
  check(await page.$eval('#project-name', (e, id) => e.textContent.includes(id), OTHER),
    'another project opens with an admin token');
  check(await page.$eval('#switch-project', (e) => !e.hidden), 'an admin may switch projects');
  await page.click('#sign-out');
  await page.waitForSelector('#signin-token', {timeout: WAIT});
  check(await page.evaluate(() => sessionStorage.getItem('hookline.token') === null),
    'signing out forgets the token');
  await ctx.close();
}

async function main() {
  const portal = await api('POST', `/v1/projects/${encodeURIComponent(PROJECT)}/portal`, {});
  check(portal.status === 201, `POST portal gives 201 (got ${portal.status})`);
  const link = portal.body.url;
  check(typeof link === 'string' && link.includes('#') && link.includes('token='),
    'the portal link carries its token in the fragment');

  const browser = await puppeteer.launch(BROWSER === 'firefox'
    ? {browser: 'firefox', executablePath: EXE, headless: true}
    : {executablePath: EXE, headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-extensions',
        '--disable-background-networking', '--disable-component-update']});
  const result = {bearer: BEARER, browser: await browser.version()};
  console.log('browser ' + result.browser);
  try {
    const page = await browser.newPage();
    await page.setViewport({width: 1280, height: 860});
    const consoleErrors = [];
    const foreign = [];
    page.on('pageerror', (e) => consoleErrors.push(String(e)));
    page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
    page.on('request', (r) => {
      if (!r.url().startsWith(API + '/') && !r.url().startsWith('data:')) foreign.push(r.url());
    });
    page.on('dialog', (d) => d.dismiss());

    // --- open the portal link: cold first load, token out of the address bar ---
    await page.goto(link, {waitUntil: 'load'});
    const cold = await firstLoad(page);
    const parts = await loadParts(page);
    result.first_load_ms = Math.round(cold * 10) / 10;
    check(!page.url().includes('token='), `the token left the address bar (${page.url()})`);
    check(await page.evaluate(() => !!sessionStorage.getItem('hookline.token')),
      'the token is kept in sessionStorage');
    const warm = [];
    for (let i = 0; i < 5; i++) {
      await page.reload({waitUntil: 'load'});
      warm.push(await firstLoad(page));
    }
    warm.sort((a, b) => a - b);
    result.warm_load_ms = Math.round(warm[2] * 10) / 10;
    console.log(`console first load: ${result.first_load_ms} ms cold (document in ${parts.doc} ms, ` +
      `DOMContentLoaded ${parts.dcl} ms), ${result.warm_load_ms} ms warm (median of 5 reloads), ` +
      'navigation start to the webhooks list rendered');
    check((await page.$eval('h1', (e) => e.textContent)) === 'Webhooks', 'the list screen opens');

    // --- "+ Webhook": the form, Bearer auth, a signing secret made in the browser ---
    await page.click('a.button.primary');
    await page.waitForSelector('#webhook-form', {timeout: WAIT});
    for (const t of ['opportunity.created', 'opportunity.transitioned', 'opportunity.won',
      'opportunity.lost']) {
      check(await page.$(`input[type=checkbox][value="${t}"]`), `a checkbox for ${t}`);
    }
    const unlabeled = await page.$$eval('#webhook-form input, #webhook-form select', (els) =>
      els.filter((e) => !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))
        .map((e) => e.id || e.name));
    check(unlabeled.length === 0, `every input of the form has a label (${unlabeled.join(', ')})`);
    await page.type('#f-url', RECEIVER);
    await page.type('#f-name', 'CRM won deals (browser test)');
    await page.click('input[value="opportunity.created"]');
    await page.click('input[value="opportunity.won"]');
    await page.select('#f-auth', 'bearer');
    await page.waitForSelector('#f-auth-token');
    await page.type('#f-auth-token', BEARER);
    check(await page.$eval('#f-auth-token', (e) => e.type === 'password'), 'the token field is masked');
    check(await page.$eval('#f-secret-generate', (e) => e.checked),
      'a signing secret is generated by default');
    await shot(page, 'form');
    // keyboard: submit with Enter from the name field
    await page.focus('#f-name');
    await page.keyboard.press('Enter');
    await page.waitForSelector('#new-secret', {timeout: WAIT});
    const secret = await page.$eval('#new-secret', (e) => e.textContent.trim());
    check(/^whsec_[A-Za-z0-9+/]{43}=$/.test(secret), 'the new signing secret is shown once');
    result.secret = secret;
    const wid = await page.evaluate(() => decodeURIComponent(location.hash.split('/')[4]));
    result.webhook_id = wid;
    const stored = await api('GET', `/v1/projects/${encodeURIComponent(PROJECT)}/webhooks/${encodeURIComponent(wid)}`);
    check(stored.status === 200 && stored.body.auth.type === 'bearer' && stored.body.auth.token === '***' &&
      stored.body.secret === '***' && stored.body.url === RECEIVER,
    'the API holds the webhook with bearer auth, token and secret masked');
    check(JSON.stringify(stored.body.events.sort()) === '["opportunity.created","opportunity.won"]',
      'the events checked are the webhook\'s events');

    // the secret is not shown again
    await page.reload({waitUntil: 'load'});
    await page.waitForSelector('#deliveries', {timeout: WAIT});
    check(!(await page.$('#new-secret')), 'the signing secret is gone after a reload');
    check(!(await page.content()).includes(secret.slice(6)), 'the page no longer holds the secret');

    // --- editing: a new name; the stored token and secret are kept without being shown ---
    await page.click('a.button[href$="/edit"]');
    await page.waitForSelector('#webhook-form', {timeout: WAIT});
    check(await page.$eval('#f-auth-token', (e) => e.value === '' && !e.required),
      'edit: the stored token is not shown, and may be left as it is');
    check(await page.$eval('#f-secret-keep', (e) => e.checked), 'edit: the secret is kept by default');
    await page.$eval('#f-name', (e) => { e.value = ''; });
    await page.type('#f-name', 'CRM won deals (edited)');
    await page.click('#webhook-form button[type=submit]');
    await page.waitForFunction(() => document.querySelector('#deliveries') &&
      document.querySelector('h1').textContent.includes('(edited)'), {timeout: WAIT});
    check(!(await page.$('#new-secret')), 'a kept secret is not shown');
    const edited = await api('GET', `/v1/projects/${encodeURIComponent(PROJECT)}/webhooks/${encodeURIComponent(wid)}`);
    check(edited.body.name === 'CRM won deals (edited)' && edited.body.auth.type === 'bearer' &&
      edited.body.auth.token === '***' && edited.body.secret === '***', 'the edit is stored');

    // --- publish an event through the API; it appears on the details page ---
    const ev = await api('POST', `/v1/projects/${encodeURIComponent(PROJECT)}/events`, {
      type: 'opportunity.created', id: 'brw-evt-1',
      opportunity: {id: 'opp_browser_1', title: 'Browser deal', value: 1234.5},
    });
    check(ev.status === 202, `POST events gives 202 (got ${ev.status} ${JSON.stringify(ev.body)})`);
    await page.waitForSelector('#deliveries tbody tr .s-succeeded', {timeout: WAIT});
    check(await page.$eval('#deliveries tbody tr time', (t) => !!t.getAttribute('title') &&
      !!t.getAttribute('datetime') && /ago|just now/.test(t.textContent)),
    'the delivery shows a relative time with the exact time on hover');
    await page.click('#deliveries tbody tr a');
    await page.waitForSelector('#delivery', {timeout: WAIT});
    const body = await page.$eval('#delivery article:first-of-type pre.body', (e) => e.textContent);
    const sent = JSON.parse(body);
    check(sent.type === 'opportunity.created' && sent.id === 'brw-evt-1' &&
      sent.data.opportunity.id === 'opp_browser_1', 'the request body shown is the event sent');
    const headers = await page.$$eval('#delivery article:first-of-type table.headers tr', (rows) =>
      Object.fromEntries(rows.map((r) => [r.cells[0] ? r.querySelector('th').textContent : '',
        r.querySelector('td').textContent])));
    const authz = Object.entries(headers).find(([k]) => k.toLowerCase() === 'authorization');
    check(authz && /^(Bearer )?\*\*\*$/.test(authz[1]), `the Authorization header is masked (${authz && authz[1]})`);
    check(!(await page.content()).includes(BEARER), 'the bearer token appears nowhere in the page');
    const respText = await page.$eval('#delivery article:last-of-type', (e) => e.textContent);
    check(/Status\s*200/.test(respText), 'the response pane shows status 200');
    const sideBySide = await page.$$eval('#delivery .side > article', (a) =>
      a.length === 2 && Math.abs(a[0].getBoundingClientRect().top - a[1].getBoundingClientRect().top) < 2 &&
      a[0].getBoundingClientRect().right <= a[1].getBoundingClientRect().left);
    check(sideBySide, 'request and response are side by side');
    await shot(page, 'details');

    // --- Redeliver: the attempt count changes ---
    const before = Number(await page.$eval('#delivery .attempts', (e) => e.textContent));
    result.invocation_id = await page.$eval('#delivery', (e) => e.dataset.id);
    await page.focus('#redeliver');
    await page.keyboard.press('Enter');
    await page.waitForFunction((n) => {
      const a = document.querySelector('#delivery .attempts');
      return a && Number(a.textContent) > n && document.querySelector('#delivery .s-succeeded');
    }, {timeout: WAIT}, before);
    const after = Number(await page.$eval('#delivery .attempts', (e) => e.textContent));
    check(after === before + 1, `redeliver: attempts ${before} -> ${after}`);
    check(await page.evaluate(() => document.activeElement.id === 'redeliver'),
      'the Redeliver button keeps the keyboard focus');
    result.attempts = after;

    // --- "Recover failed since": a webhook whose endpoint fails, its invocation failed ---
    const failing = await api('POST', `/v1/projects/${encodeURIComponent(PROJECT)}/webhooks`, {
      name: 'Legacy ERP (failing)', url: RECEIVER.replace(/\/ok\/[^/]*$/, '/fail/console'),
      events: ['opportunity.transitioned'], auth: {type: 'none'},
    });
    check(failing.status === 201, `POST webhooks (failing endpoint) gives 201 (got ${failing.status})`);
    const fid = failing.body.id;
    result.failing_webhook_id = fid;
    const tev = await api('POST', `/v1/projects/${encodeURIComponent(PROJECT)}/events`, {
      type: 'opportunity.transitioned', id: 'brw-evt-2', from_stage_id: 'stg_new',
      to_stage_id: 'stg_new', opportunity: {id: 'opp_browser_2', funnel_id: 'fun_1'},
    });
    check(tev.status === 202, `POST events (transition) gives 202 (got ${tev.status})`);
    await page.evaluate((h) => { location.hash = h; },
      `#/projects/${encodeURIComponent(PROJECT)}/webhooks/${encodeURIComponent(fid)}`);
    await page.waitForSelector('#deliveries tbody tr .s-failed', {timeout: WAIT});
    check(/6/.test(await page.$eval('#deliveries tbody tr .attempts', (e) => e.textContent)),
      'the failed delivery shows its 6 attempts');
    await page.$eval('#recover-since', (e) => {
      const t = new Date(Date.now() - 3600e3 - new Date().getTimezoneOffset() * 60000);
      e.value = t.toISOString().slice(0, 19);
    });
    await page.click('form.recover button[type=submit]');
    await page.waitForFunction(() => /1 failed delivery/.test(
      document.getElementById('recover-result').textContent), {timeout: WAIT});
    check(true, 'recover failed since an hour ago: 1 failed delivery sent again');

    // --- the list (two more webhooks made through the API), then disable with the keyboard,
    // then delete with confirmation ---
    const more = [
      {name: 'Slack Notifications for Won Deals', url: RECEIVER.replace(/\/[^/]*$/, '/slack'),
        events: ['opportunity.won'], auth: {type: 'api_key', key: 'k-' + BEARER}},
      {name: 'Lost deals to the warehouse', url: RECEIVER.replace(/\/[^/]*$/, '/warehouse'),
        events: ['opportunity.lost', 'opportunity.transitioned'], enabled: false,
        auth: {type: 'basic', username: 'crm', password: 'p-' + BEARER}},
    ];
    for (const w of more) {
      const c = await api('POST', `/v1/projects/${encodeURIComponent(PROJECT)}/webhooks`, w);
      check(c.status === 201, `POST webhooks "${w.name}" gives 201 (got ${c.status})`);
      w.id = c.body.id;
    }
    await page.click('nav.crumbs a[href$="/webhooks"]');
    await page.waitForSelector(`#webhooks tbody tr[data-id="${more[1].id}"]`, {timeout: WAIT});
    const rowSel = `#webhooks tbody tr[data-id="${wid}"]`;
    const row = await page.$eval(rowSel, (r) => r.textContent);
    check(row.includes('CRM won deals') && row.includes('Bearer Token') && row.includes(RECEIVER) &&
      row.includes('opportunity.won'), `the list shows name, URL, events and auth type (${row})`);
    const others = await page.$$eval('#webhooks tbody tr', (rs) => rs.map((r) => [r.dataset.id,
      r.cells[3].textContent, r.querySelector('input[role=switch]').checked]));
    check(JSON.stringify(others.filter((o) => o[0] !== wid).map((o) => o.slice(1))) ===
      JSON.stringify([['Unauthenticated', true], ['API Key', true], ['Basic Auth', false]]),
    `the list shows each auth type and enabled state (${JSON.stringify(others)})`);
    check(!(await page.content()).includes(BEARER), 'no credential appears in the list');
    await shot(page, 'list');
    await page.focus(`${rowSel} input[role=switch]`);
    await page.keyboard.press(' ');
    await page.waitForFunction((sel) => !document.querySelector(sel).disabled &&
      !document.querySelector(sel).checked, {timeout: WAIT}, `${rowSel} input[role=switch]`);
    const dis = await api('GET', `/v1/projects/${encodeURIComponent(PROJECT)}/webhooks/${encodeURIComponent(wid)}`);
    check(dis.body.enabled === false, 'the switch disabled the webhook');
    await page.click(`${rowSel} button.danger`);
    await page.waitForSelector('dialog[open]', {timeout: WAIT});
    check(await page.evaluate(() => document.activeElement.closest('dialog') !== null),
      'the confirmation dialog takes the focus');
    await page.keyboard.press('Escape');
    await page.waitForFunction(() => !document.querySelector('dialog[open]'));
    const kept = await api('GET', `/v1/projects/${encodeURIComponent(PROJECT)}/webhooks/${encodeURIComponent(wid)}`);
    check(kept.status === 200, 'Escape cancels the deletion');
    await page.click(`${rowSel} button.danger`);
    await page.waitForSelector('dialog[open]');
    await page.click('#confirm-ok');
    await page.waitForFunction((sel) => !document.querySelector(sel) &&
      document.querySelectorAll('#webhooks tbody tr').length === 3, {timeout: WAIT}, rowSel);
    const gone = await api('GET', `/v1/projects/${encodeURIComponent(PROJECT)}/webhooks/${encodeURIComponent(wid)}`);
    check(gone.status === 404, `the webhook is deleted (GET gives ${gone.status})`);

    // --- an API error reaches the user with the API's message ---
    await page.click('a.button.primary');
    await page.waitForSelector('#webhook-form');
    await page.type('#f-url', 'ftp://example.com/x');
    await page.type('#f-name', 'bad scheme');
    await page.click('input[value="opportunity.created"]');
    await page.click('#webhook-form button[type=submit]');
    await page.waitForSelector('#error:not([hidden])', {timeout: WAIT});
    const apiMsg = await page.$eval('#error', (e) => e.textContent);
    check(/url/i.test(apiMsg), `the API's error is shown: "${apiMsg}"`);

    // a portal session stays on its project
    await page.evaluate(() => { location.hash = '#/projects/prj_other/webhooks'; });
    await page.waitForFunction((p) => location.hash === `#/projects/${p}/webhooks`, {timeout: WAIT},
      encodeURIComponent(PROJECT));
    check(true, 'a portal session cannot open another project');

    if (ADMIN) await adminFlow(browser, foreign, consoleErrors);
    result.admin_flow = !!ADMIN;

    check(foreign.length === 0, `nothing fetched from elsewhere (${foreign.join(', ')})`);
    check(consoleErrors.filter((e) => !/status of 4\d\d/.test(e)).length === 0,
      `no script errors (${consoleErrors.join(' | ')})`);
  } finally {
    await browser.close();
  }
  console.log('RESULT ' + JSON.stringify(result));
}

main().catch((e) => {
  console.error('console_test: ' + (e && e.stack ? e.stack : e));
  process.exit(1);
});

/* app.js - hookline's web console: Settings > Integrations > Webhooks over hook-api's /v1/ API
 * (CONTRACT.md "Web console"). Plain JS, no framework, nothing fetched but this server's API.
 * Routes live in the URL fragment (#/projects/P/webhooks/...). A portal link's fragment
 * "#project=P&token=T" is read once: the token goes to sessionStorage and leaves the address
 * bar. Every DOM node is built with h() from text, never from HTML strings. */
'use strict';

(function () {
  const EVENT_TYPES = [
    ['opportunity.created', 'Opportunity created', 'An opportunity is created.'],
    ['opportunity.transitioned', 'Opportunity transitioned',
      'An opportunity moves from one stage to another.'],
    ['opportunity.won', 'Opportunity won',
      'An opportunity moves to the funnel\u2019s won stage (a transition is sent as well).'],
    ['opportunity.lost', 'Opportunity lost',
      'An opportunity moves to the funnel\u2019s lost stage (a transition is sent as well).'],
  ];
  const AUTH_TYPES = [
    ['none', 'Unauthenticated'],
    ['basic', 'Basic Auth'],
    ['api_key', 'API Key'],
    ['bearer', 'Bearer Token'],
  ];
  /* The fields each auth type carries: [key, label, input type, hint]. */
  const AUTH_FIELDS = {
    none: [],
    basic: [['username', 'Username', 'text', ''],
      ['password', 'Password', 'password', 'Sent as Authorization: Basic <base64(user:password)>.']],
    api_key: [['key', 'API key', 'password', 'Sent as the header X-API-KEY.']],
    bearer: [['token', 'Token', 'password', 'Sent as Authorization: Bearer <token>.']],
  };
  const AUTH_HINT = {
    none: 'No authentication header is added. Useful for testing or internal, non-critical services.',
    basic: 'For endpoints protected with HTTP Basic Authentication.',
    api_key: 'A secret key in the X-API-KEY header of each request. Recommended.',
    bearer: 'A token in the Authorization header of each request.',
  };
  const MASK = '***'; /* the API's mask: as a value written back it means "keep the stored one" */
  const KEY_TOKEN = 'hookline.token';
  const KEY_SCOPE = 'hookline.project'; /* a portal link's one project, "" for a typed token */
  const PAGE = 25;
  const POLL_MS = 3000;

  const main = document.getElementById('main');
  const statusEl = document.getElementById('status');
  const errorEl = document.getElementById('error');
  let gen = 0; /* bumped on every route: an answer for an older screen is dropped */
  let timers = [];
  let flash = null; /* {webhook, secret}: a signing secret to show once on the details page */
  const projectNames = new Map();

  /* h builds an element: attrs (on* are listeners, null/false skipped), children text or nodes. */
  function h(tag, attrs, ...kids) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else if (k === 'class') el.className = v;
      else if (k in el && typeof v !== 'string') el[k] = v;
      else el.setAttribute(k, v === true ? '' : v);
    }
    for (const kid of kids.flat(Infinity)) {
      if (kid === null || kid === undefined || kid === false) continue;
      el.append(kid instanceof Node ? kid : String(kid));
    }
    return el;
  }

  const enc = encodeURIComponent;
  const token = () => sessionStorage.getItem(KEY_TOKEN);
  const scope = () => sessionStorage.getItem(KEY_SCOPE) || '';
  const hrefList = (p) => `#/projects/${enc(p)}/webhooks`;
  const hrefHook = (p, w) => `${hrefList(p)}/${enc(w)}`;
  const apiProject = (p) => `/v1/projects/${enc(p)}`;

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  /* api calls hook-api with the session's token; resolves to the parsed JSON (null for an empty
   * body), rejects with an ApiError carrying the API's own message. A 401 ends the session. */
  async function api(method, path, body, tok) {
    const headers = {Authorization: 'Bearer ' + (tok || token()), Accept: 'application/json'};
    const opt = {method, headers, cache: 'no-store'};
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      opt.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(path, opt);
    } catch (e) {
      throw new ApiError(0, 'Cannot reach hook-api (' + e.message + ').');
    }
    const text = await res.text();
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch (e) {
        data = null;
      }
    }
    if (!res.ok) {
      const msg = data && typeof data.error === 'string' ? data.error
        : `HTTP ${res.status} ${res.statusText}`.trim();
      const err = new ApiError(res.status, msg);
      if (res.status === 401 && !tok) {
        endSession(scope() ? 'This link has expired or was revoked (' + msg + '). Ask for a new one.'
          : 'Signed out: ' + msg);
        err.ended = true;
      }
      throw err;
    }
    return data;
  }

  function say(text) {
    statusEl.textContent = '';
    /* a fresh node, so screen readers announce the same text twice */
    statusEl.append(h('span', {}, text));
    clearTimeout(say.t);
    say.t = setTimeout(() => { statusEl.textContent = ''; }, 6000);
  }

  function showError(e) {
    if (e && e.ended) return; /* endSession has said it */
    const msg = e instanceof Error ? e.message : String(e);
    errorEl.textContent = '';
    errorEl.append(h('strong', {}, 'Error: '), msg);
    errorEl.hidden = false;
    errorEl.scrollIntoView({block: 'nearest'});
  }

  function clearError() {
    errorEl.hidden = true;
    errorEl.textContent = '';
  }

  function endSession(message) {
    sessionStorage.removeItem(KEY_TOKEN);
    sessionStorage.removeItem(KEY_SCOPE);
    projectNames.clear();
    renderSignIn(message);
  }

  /* --- time --- */

  function relTime(iso) {
    const t = Date.parse(iso);
    if (Number.isNaN(t)) return iso;
    const s = (Date.now() - t) / 1000;
    const a = Math.abs(s);
    let v;
    if (a < 45) return s >= 0 ? 'just now' : 'in a few seconds';
    if (a < 90) v = '1 min';
    else if (a < 3600) v = Math.round(a / 60) + ' min';
    else if (a < 5400) v = '1 hour';
    else if (a < 86400) v = Math.round(a / 3600) + ' hours';
    else if (a < 172800) v = '1 day';
    else v = Math.round(a / 86400) + ' days';
    return s >= 0 ? v + ' ago' : 'in ' + v;
  }

  function exactTime(iso) {
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return iso;
    return d.toLocaleString(undefined, {dateStyle: 'medium', timeStyle: 'medium'}) + ' (' + iso + ')';
  }

  /* timeEl: "3 min ago", the exact time on hover and in datetime. */
  function timeEl(iso) {
    if (!iso) return h('span', {class: 'muted'}, '\u2014');
    return h('time', {datetime: iso, title: exactTime(iso), 'data-rel': ''}, relTime(iso));
  }

  setInterval(() => {
    for (const t of document.querySelectorAll('time[data-rel]')) {
      t.textContent = relTime(t.getAttribute('datetime'));
    }
  }, 15000);

  /* --- small pieces --- */

  function authLabel(type) {
    const a = AUTH_TYPES.find((x) => x[0] === type);
    return a ? a[1] : type || 'Unauthenticated';
  }

  function eventChips(events) {
    return h('ul', {class: 'chips'}, (events || []).map((e) => h('li', {}, h('code', {}, e))));
  }

  function statusBadge(status) {
    return h('span', {class: 'badge s-' + status}, status);
  }

  function breadcrumb(p, ...tail) {
    const items = [h('li', {}, 'Settings'), h('li', {}, 'Integrations')];
    items.push(h('li', {}, tail.length ? h('a', {href: hrefList(p)}, 'Webhooks')
      : h('span', {'aria-current': 'page'}, 'Webhooks')));
    tail.forEach((t, i) => items.push(h('li', {}, i === tail.length - 1
      ? h('span', {'aria-current': 'page'}, t.text) : h('a', {href: t.href}, t.text))));
    return h('nav', {class: 'crumbs', 'aria-label': 'Breadcrumb'}, h('ol', {}, items));
  }

  /* screen replaces main's content and moves focus to its heading (route changes are announced). */
  function screen(title, ...nodes) {
    document.title = title + ' \u00b7 hookline';
    main.textContent = '';
    main.append(...nodes.flat().filter(Boolean));
    const h1 = main.querySelector('h1');
    if (h1) {
      h1.tabIndex = -1;
      h1.focus({preventScroll: true});
    }
    window.scrollTo(0, 0);
  }

  function every(ms, fn) {
    const id = setInterval(() => {
      if (document.visibilityState === 'visible') fn();
    }, ms);
    timers.push(id);
  }

  function confirmDialog(title, text, okLabel) {
    const dlg = document.getElementById('confirm');
    document.getElementById('confirm-title').textContent = title;
    document.getElementById('confirm-text').textContent = text;
    document.getElementById('confirm-ok').textContent = okLabel;
    const back = document.activeElement;
    return new Promise((resolve) => {
      dlg.addEventListener('close', () => {
        if (back && back.isConnected) back.focus();
        resolve(dlg.returnValue === 'ok');
      }, {once: true});
      dlg.returnValue = 'cancel';
      dlg.showModal();
    });
  }

  async function projectName(p) {
    if (projectNames.has(p)) return projectNames.get(p);
    const pr = await api('GET', apiProject(p));
    const name = (pr && pr.name) || p;
    projectNames.set(p, name);
    return name;
  }

  function setHeader(p) {
    const nameEl = document.getElementById('project-name');
    document.getElementById('account').hidden = !token();
    document.getElementById('switch-project').hidden = !token() || !!scope() || !p;
    nameEl.textContent = '';
    if (!p) return;
    nameEl.textContent = p;
    projectName(p).then((n) => {
      nameEl.textContent = n === p ? p : `${n} (${p})`;
    }).catch(() => {});
  }

  /* --- screens --- */

  function renderSignIn(message) {
    gen++;
    stopTimers();
    setHeader(null);
    const input = h('input', {id: 'signin-token', type: 'password', name: 'token', required: true,
      autocomplete: 'off', spellcheck: 'false', 'aria-describedby': 'signin-hint'});
    const form = h('form', {class: 'card narrow', onsubmit: async (ev) => {
      ev.preventDefault();
      clearError();
      const t = input.value.trim();
      try {
        await api('GET', '/v1/projects', undefined, t);
      } catch (e) {
        showError(e);
        input.focus();
        return;
      }
      sessionStorage.setItem(KEY_TOKEN, t);
      sessionStorage.setItem(KEY_SCOPE, '');
      route();
    }},
    h('div', {class: 'field'}, h('label', {for: 'signin-token'}, 'API token'), input,
      h('p', {id: 'signin-hint', class: 'hint'},
        'An admin token (hookctl token create --name NAME) opens any project. ' +
        'A portal link from your CRM signs you in by itself.')),
    h('div', {class: 'actions'}, h('button', {type: 'submit', class: 'primary'}, 'Sign in')));
    screen('Sign in', h('h1', {}, 'Sign in to webhooks'), form);
    if (message) showError(message);
    input.focus();
  }

  async function renderProjects() {
    const my = gen;
    setHeader(null);
    const data = await api('GET', '/v1/projects');
    if (my !== gen) return;
    const list = (data && data.data) || [];
    for (const pr of list) projectNames.set(pr.id, pr.name || pr.id);
    if (list.length === 1) {
      location.replace(hrefList(list[0].id));
      return;
    }
    screen('Projects', h('h1', {}, 'Choose a project'),
      list.length ? h('ul', {class: 'projects'}, list.map((pr) => h('li', {},
        h('a', {href: hrefList(pr.id)}, pr.name || pr.id), ' ', h('code', {class: 'muted'}, pr.id))))
        : h('p', {class: 'empty'}, 'No projects yet. Create one with PUT /v1/projects/{id} or hookctl import.'));
  }

  async function renderList(p) {
    const my = gen;
    setHeader(p);
    const data = await api('GET', `${apiProject(p)}/webhooks`);
    if (my !== gen) return;
    const hooks = (data && data.data) || [];
    const rows = hooks.map((w) => {
      const sw = h('input', {type: 'checkbox', role: 'switch', checked: !!w.enabled,
        'aria-label': `Enabled: ${w.name || w.id}`, onchange: async () => {
          sw.disabled = true;
          try {
            const nw = await api('PATCH', `${apiProject(p)}/webhooks/${enc(w.id)}`, {enabled: sw.checked});
            w.enabled = nw.enabled;
            say(`${w.name || w.id} ${w.enabled ? 'enabled' : 'disabled'}.`);
          } catch (e) {
            sw.checked = !sw.checked;
            showError(e);
          }
          sw.checked = !!w.enabled;
          sw.disabled = false;
        }});
      return h('tr', {'data-id': w.id},
        h('th', {scope: 'row'}, h('a', {href: hrefHook(p, w.id)}, w.name || w.id)),
        h('td', {class: 'url'}, h('code', {title: w.url}, w.url)),
        h('td', {}, eventChips(w.events)),
        h('td', {}, authLabel(w.auth && w.auth.type)),
        h('td', {}, h('label', {class: 'switch'}, sw, h('span', {'aria-hidden': 'true'},
          w.enabled ? 'On' : 'Off'))),
        h('td', {class: 'row-actions'},
          h('a', {href: `${hrefHook(p, w.id)}/edit`, 'aria-label': `Edit ${w.name || w.id}`}, 'Edit'),
          h('button', {type: 'button', class: 'link danger', 'aria-label': `Delete ${w.name || w.id}`,
            onclick: () => deleteHook(p, w, () => route())}, 'Delete')));
    });
    const table = hooks.length ? h('table', {class: 'list', id: 'webhooks'},
      h('caption', {class: 'sr-only'}, 'Webhooks of this project'),
      h('thead', {}, h('tr', {}, ['Name', 'URL', 'Events', 'Authentication', 'Enabled', ''].map(
        (c) => h('th', {scope: 'col'}, c ? c : h('span', {class: 'sr-only'}, 'Actions'))))),
      h('tbody', {}, rows))
      : h('p', {class: 'empty'}, 'No webhooks yet. Add one with \u201c+ Webhook\u201d: we will POST each event you choose to your URL.');
    screen('Webhooks', breadcrumb(p),
      h('div', {class: 'head'}, h('h1', {}, 'Webhooks'),
        h('a', {class: 'button primary', href: `${hrefList(p)}/new`}, '+ Webhook')),
      h('p', {class: 'lead'}, 'Webhooks send real-time data to your other applications whenever an event happens in this project: a POST with the event as JSON to the URL you provide.'),
      table);
    /* first load: the browser test reads this mark (navigation start to the list drawn) */
    if (!performance.getEntriesByName('hookline:list').length) performance.mark('hookline:list');
    /* the switches' On/Off text follows them */
    for (const sw of main.querySelectorAll('input[role=switch]')) {
      sw.addEventListener('change', () => { sw.nextElementSibling.textContent = sw.checked ? 'On' : 'Off'; });
    }
  }

  async function deleteHook(p, w, after) {
    const ok = await confirmDialog('Delete this webhook?',
      `\u201c${w.name || w.id}\u201d (${w.url}) stops receiving events at once. This cannot be undone.`,
      'Delete webhook');
    if (!ok) return;
    try {
      await api('DELETE', `${apiProject(p)}/webhooks/${enc(w.id)}`);
    } catch (e) {
      showError(e);
      return;
    }
    say(`Webhook \u201c${w.name || w.id}\u201d deleted.`);
    after();
  }

  function newSecret() {
    const b = crypto.getRandomValues(new Uint8Array(32));
    return 'whsec_' + btoa(String.fromCharCode(...b));
  }

  async function renderForm(p, wid) {
    const my = gen;
    setHeader(p);
    const w = wid ? await api('GET', `${apiProject(p)}/webhooks/${enc(wid)}`) : null;
    if (my !== gen) return;
    const storedAuth = (w && w.auth) || {type: 'none'};
    const field = (id, label, input, hint) => h('div', {class: 'field'},
      h('label', {for: id}, label), input, hint ? h('p', {class: 'hint', id: id + '-hint'}, hint) : null);

    const url = h('input', {id: 'f-url', name: 'url', type: 'url', required: true, value: w ? w.url : '',
      placeholder: 'https://example.com/webhooks', 'aria-describedby': 'f-url-hint', autocomplete: 'url'});
    const name = h('input', {id: 'f-name', name: 'name', type: 'text', required: true, maxlength: '200',
      value: w ? w.name : '', 'aria-describedby': 'f-name-hint', autocomplete: 'off'});
    const checks = EVENT_TYPES.map(([type, label, desc]) => {
      const id = 'f-ev-' + type.replace('.', '-');
      return h('div', {class: 'check'},
        h('input', {type: 'checkbox', id, name: 'events', value: type,
          checked: w ? (w.events || []).includes(type) : false, 'aria-describedby': id + '-d'}),
        h('label', {for: id}, label, ' ', h('code', {}, type)),
        h('p', {class: 'hint', id: id + '-d'}, desc));
    });
    const authSel = h('select', {id: 'f-auth', name: 'auth', 'aria-describedby': 'f-auth-hint'},
      AUTH_TYPES.map(([v, l]) => h('option', {value: v, selected: v === storedAuth.type}, l)));
    const authHint = h('p', {class: 'hint', id: 'f-auth-hint'});
    const authBox = h('div', {class: 'auth-fields'});
    const authInputs = {};
    const drawAuth = () => {
      const type = authSel.value;
      authHint.textContent = AUTH_HINT[type];
      authBox.textContent = '';
      for (const k of Object.keys(authInputs)) delete authInputs[k];
      for (const [key, label, itype, hint] of AUTH_FIELDS[type]) {
        const id = 'f-auth-' + key;
        const kept = type === storedAuth.type && storedAuth[key] !== undefined;
        const masked = kept && storedAuth[key] === MASK;
        const inp = h('input', {id, name: key, type: itype, autocomplete: 'off', spellcheck: 'false',
          required: !masked, value: kept && !masked ? storedAuth[key] : '',
          placeholder: masked ? 'stored \u2014 leave empty to keep it' : '',
          'aria-describedby': hint || masked ? id + '-hint' : null});
        authInputs[key] = {inp, masked};
        authBox.append(field(id, label, inp, [hint, masked ? 'A value is stored; it is never shown.' : '']
          .filter(Boolean).join(' ')));
      }
    };
    authSel.addEventListener('change', drawAuth);
    drawAuth();

    const hasSecret = !!(w && w.secret);
    const secretChoices = w ? (hasSecret
      ? [['keep', 'Keep the current signing secret'], ['generate', 'Generate a new signing secret'],
        ['remove', 'Remove it: send unsigned requests']]
      : [['none', 'No signature'], ['generate', 'Generate a signing secret']])
      : [['generate', 'Generate a signing secret in this browser (recommended)'], ['none', 'No signature']];
    const secretBox = h('fieldset', {},
      h('legend', {}, 'Signing secret'),
      h('p', {class: 'hint', id: 'f-secret-hint'},
        'Signed requests carry a webhook-signature header (Standard Webhooks, HMAC-SHA256) that your server checks with the secret. A new secret is shown once, after you save.'),
      secretChoices.map(([v, l], i) => h('div', {class: 'check'},
        h('input', {type: 'radio', name: 'secret', id: 'f-secret-' + v, value: v, checked: i === 0,
          'aria-describedby': 'f-secret-hint'}),
        h('label', {for: 'f-secret-' + v}, l))));
    const enabled = h('input', {type: 'checkbox', id: 'f-enabled', name: 'enabled',
      checked: w ? !!w.enabled : true});
    const submit = h('button', {type: 'submit', class: 'primary'}, w ? 'Save changes' : 'Create webhook');

    const form = h('form', {class: 'card', id: 'webhook-form', onsubmit: async (ev) => {
      ev.preventDefault();
      clearError();
      const events = checks.map((c) => c.querySelector('input')).filter((c) => c.checked).map((c) => c.value);
      const first = checks[0].querySelector('input');
      first.setCustomValidity(events.length ? '' : 'Choose at least one event.');
      if (!form.reportValidity()) return;
      const auth = {type: authSel.value};
      for (const [key, {inp, masked}] of Object.entries(authInputs)) {
        auth[key] = masked && inp.value === '' ? MASK : inp.value;
      }
      const body = {url: url.value.trim(), name: name.value.trim(), events, auth, enabled: enabled.checked};
      const choice = form.querySelector('input[name=secret]:checked').value;
      let secret = null;
      if (choice === 'generate') body.secret = secret = newSecret();
      else if (choice === 'remove') body.secret = null;
      else if (choice === 'keep') body.secret = MASK;
      submit.disabled = true;
      let saved;
      try {
        saved = w ? await api('PATCH', `${apiProject(p)}/webhooks/${enc(w.id)}`, body)
          : await api('POST', `${apiProject(p)}/webhooks`, body);
      } catch (e) {
        submit.disabled = false;
        showError(e);
        return;
      }
      if (secret) flash = {webhook: saved.id, secret};
      say(w ? 'Changes saved.' : `Webhook \u201c${saved.name}\u201d created.`);
      location.hash = hrefHook(p, saved.id);
    }},
    h('fieldset', {}, h('legend', {}, 'Endpoint'),
      field('f-url', 'Endpoint URL', url, 'The URL of your application where you want to receive the webhook data.'),
      field('f-name', 'Name', name, 'A friendly name to help you remember what this webhook is for, e.g. \u201cSlack Notifications for Won Deals\u201d.'),
      h('div', {class: 'check'}, enabled, h('label', {for: 'f-enabled'}, 'Enabled: send events to this URL'))),
    h('fieldset', {}, h('legend', {}, 'Events'),
      h('p', {class: 'hint'}, 'Check the events you want to be notified about. Opportunity and contact carry all and only the fields configured in your project.'),
      checks),
    h('fieldset', {}, h('legend', {}, 'Authentication'),
      field('f-auth', 'Type', authSel, null), authHint, authBox),
    secretBox,
    h('div', {class: 'actions'}, submit,
      h('a', {class: 'button', href: w ? hrefHook(p, w.id) : hrefList(p)}, 'Cancel')));
    const title = w ? `Edit ${w.name || w.id}` : 'New webhook';
    screen(title, breadcrumb(p, ...(w ? [{href: hrefHook(p, w.id), text: w.name || w.id}] : []),
      {text: w ? 'Edit' : '+ Webhook'}), h('h1', {}, w ? 'Edit webhook' : 'New webhook'), form);
  }

  function headersTable(headers, caption) {
    const entries = Object.entries(headers || {});
    if (!entries.length) return h('p', {class: 'muted'}, 'No headers.');
    return h('table', {class: 'headers'}, h('caption', {class: 'sr-only'}, caption),
      h('tbody', {}, entries.map(([k, v]) => h('tr', {},
        h('th', {scope: 'row'}, k), h('td', {}, h('code', {}, String(v)))))));
  }

  function bodyBlock(body, label) {
    if (body === null || body === undefined || body === '') return h('p', {class: 'muted'}, 'Empty body.');
    let text = String(body);
    try {
      text = JSON.stringify(JSON.parse(text), null, 2);
    } catch (e) { /* not JSON: shown as sent */ }
    return h('pre', {class: 'body', tabindex: '0', 'aria-label': label}, text);
  }

  function deliveryPanel(p, d, onRedeliver) {
    const req = d.request || {};
    const res = d.response;
    const dl = (pairs) => h('dl', {class: 'facts'}, pairs.filter(Boolean).map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
    const redeliver = h('button', {type: 'button', class: 'primary', id: 'redeliver', onclick: () => onRedeliver(redeliver)},
      'Redeliver');
    return h('section', {class: 'card delivery', id: 'delivery', 'aria-labelledby': 'delivery-h', 'data-id': d.invocation_id},
      h('div', {class: 'head'}, h('h2', {id: 'delivery-h', tabindex: '-1'}, 'Delivery ', h('code', {}, d.invocation_id)),
        redeliver),
      dl([['Status', statusBadge(d.status)],
        ['Attempts', h('span', {class: 'attempts'}, String(d.attempts))],
        ['Event', [h('code', {}, d.event_type), ' ', h('span', {class: 'muted'}, d.event_id)]],
        ['Created', timeEl(d.created_at)],
        ['Last update', timeEl(d.updated_at)],
        d.next_attempt_at ? ['Next attempt', timeEl(d.next_attempt_at)] : null,
        d.duration_ms !== null && d.duration_ms !== undefined ? ['Duration', d.duration_ms + ' ms'] : null,
        d.error ? ['Error', h('span', {class: 'err-text'}, d.error)] : null]),
      h('p', {class: 'hint'}, 'The most recent request and response of this invocation. Credentials are masked.'),
      h('div', {class: 'side'},
        h('article', {class: 'pane', 'aria-labelledby': 'req-h'},
          h('h3', {id: 'req-h'}, 'Request'),
          h('p', {class: 'reqline'}, h('code', {}, (req.method || 'POST') + ' ' + (req.url || ''))),
          h('h4', {}, 'Headers'), headersTable(req.headers, 'Request headers'),
          h('h4', {}, 'Body'), bodyBlock(req.body, 'Request body')),
        h('article', {class: 'pane', 'aria-labelledby': 'res-h'},
          h('h3', {id: 'res-h'}, 'Response'),
          res ? [h('p', {class: 'reqline'}, 'Status ', h('code', {class: res.status >= 200 && res.status < 300 ? 'ok' : 'bad'}, String(res.status))),
            h('h4', {}, 'Headers'), headersTable(res.headers, 'Response headers'),
            h('h4', {}, 'Body'), bodyBlock(res.body, 'Response body'),
            res.truncated ? h('p', {class: 'hint'}, 'Body truncated to 64 KiB.') : null]
            : h('p', {class: 'muted'}, d.error ? 'No response: ' + d.error : 'No response yet.'))));
  }

  async function renderDetails(p, wid, did) {
    const my = gen;
    setHeader(p);
    const wpath = `${apiProject(p)}/webhooks/${enc(wid)}`;
    const [w, d] = await Promise.all([api('GET', wpath),
      did ? api('GET', `${apiProject(p)}/deliveries/${enc(did)}`) : null]);
    if (my !== gen) return;
    const shownSecret = flash && flash.webhook === w.id ? flash.secret : null;
    flash = null;

    let filter = '';
    let cursor = null;
    let shownKey = null;
    let older = false; /* pages past the first are shown: auto-refresh would drop them */
    const tbody = h('tbody');
    const more = h('button', {type: 'button', hidden: true, onclick: () => loadDeliveries(true)}, 'Load older deliveries');
    const empty = h('p', {class: 'empty', hidden: true}, 'No deliveries yet. Events matching this webhook appear here as they are sent.');
    const row = (x) => h('tr', {'data-id': x.invocation_id, class: x.invocation_id === did ? 'current' : null},
      h('td', {}, statusBadge(x.status)),
      h('td', {}, h('a', {href: `${hrefHook(p, w.id)}/deliveries/${enc(x.invocation_id)}`,
        'aria-current': x.invocation_id === did ? 'true' : null}, h('code', {}, x.event_type)),
      h('div', {class: 'muted small'}, x.event_id)),
      h('td', {class: 'num attempts'}, String(x.attempts)),
      h('td', {}, x.response ? h('code', {}, String(x.response.status)) : h('span', {class: 'muted'}, x.error || '\u2014')),
      h('td', {}, timeEl(x.created_at)),
      h('td', {}, x.status === 'retrying' && x.next_attempt_at ? ['retry ', timeEl(x.next_attempt_at)] : timeEl(x.updated_at)));

    async function loadDeliveries(append) {
      const q = new URLSearchParams({webhook_id: w.id, limit: String(PAGE)});
      if (filter) q.set('status', filter);
      if (append && cursor) q.set('cursor', cursor);
      let data;
      try {
        data = await api('GET', `${apiProject(p)}/deliveries?${q}`);
      } catch (e) {
        showError(e);
        return;
      }
      if (my !== gen) return;
      const list = data.data || [];
      if (!append) {
        /* a poll that changed nothing redraws nothing (focus and selection stay put) */
        const key = JSON.stringify(list.map((x) => [x.invocation_id, x.status, x.attempts, x.updated_at]));
        if (key === shownKey && !more.hidden === !!data.next_cursor) return;
        shownKey = key;
        const focused = tbody.contains(document.activeElement)
          ? document.activeElement.closest('tr').dataset.id : null;
        tbody.textContent = '';
        tbody.append(...list.map(row));
        if (focused) {
          const a = tbody.querySelector(`tr[data-id="${CSS.escape(focused)}"] a`);
          if (a) a.focus();
        }
      } else {
        older = true;
        tbody.append(...list.map(row));
      }
      cursor = data.next_cursor || null;
      more.hidden = !cursor;
      empty.hidden = tbody.childElementCount > 0;
    }

    const filterSel = h('select', {id: 'd-filter', onchange: () => { filter = filterSel.value; older = false; shownKey = null; loadDeliveries(false); }},
      [['', 'All'], ['pending', 'Pending'], ['retrying', 'Retrying'], ['succeeded', 'Succeeded'], ['failed', 'Failed']]
        .map(([v, l]) => h('option', {value: v}, l)));

    let panel = null;
    const showPanel = (x) => {
      const np = deliveryPanel(p, x, (btn) => redeliver(x, btn));
      const focused = panel && panel.contains(document.activeElement) ? document.activeElement.id : '';
      if (panel) panel.replaceWith(np);
      panel = np;
      if (focused && document.getElementById(focused)) document.getElementById(focused).focus();
      return np;
    };
    async function redeliver(x, btn) {
      clearError();
      btn.disabled = true;
      try {
        await api('POST', `${apiProject(p)}/deliveries/${enc(x.invocation_id)}/redeliver`);
      } catch (e) {
        btn.disabled = false;
        showError(e);
        return;
      }
      say('Redelivery queued.');
      /* follow it until the new attempt is logged (attempts or updated_at move) */
      const before = {attempts: x.attempts, updated: x.updated_at};
      const deadline = Date.now() + 30000;
      while (my === gen && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 500));
        let nx;
        try {
          nx = await api('GET', `${apiProject(p)}/deliveries/${enc(x.invocation_id)}`);
        } catch (e) {
          showError(e);
          break;
        }
        if (my !== gen) return;
        if (nx.attempts !== before.attempts || nx.updated_at !== before.updated) {
          showPanel(nx).querySelector('#redeliver').focus();
          loadDeliveries(false);
          say(`Redelivered: ${nx.status}, ${nx.attempts} attempts.`);
          return;
        }
      }
      if (panel) {
        const b = panel.querySelector('#redeliver');
        if (b) b.disabled = false;
      }
    }

    const since = h('input', {type: 'datetime-local', id: 'recover-since', required: true, step: '1',
      'aria-describedby': 'recover-hint'});
    const dayAgo = new Date(Date.now() - 86400000 - new Date().getTimezoneOffset() * 60000);
    since.value = dayAgo.toISOString().slice(0, 19);
    const recoverBtn = h('button', {type: 'submit'}, 'Recover');
    const recover = h('form', {class: 'card recover', 'aria-labelledby': 'recover-h', onsubmit: async (ev) => {
      ev.preventDefault();
      clearError();
      if (!recover.reportValidity()) return;
      const t = new Date(since.value); /* local time, as typed */
      if (Number.isNaN(t.getTime())) {
        showError('Recover failed since: not a valid date and time.');
        return;
      }
      recoverBtn.disabled = true;
      try {
        const r = await api('POST', `${wpath}/recover`, {since: t.toISOString().replace(/\.\d{3}Z$/, 'Z')});
        say(`${r.count} failed ${r.count === 1 ? 'delivery' : 'deliveries'} sent again.`);
        document.getElementById('recover-result').textContent =
          `${r.count} failed ${r.count === 1 ? 'delivery' : 'deliveries'} since ${t.toLocaleString()} sent again.`;
        loadDeliveries(false);
      } catch (e) {
        showError(e);
      }
      recoverBtn.disabled = false;
    }},
    h('h2', {id: 'recover-h'}, 'Recover failed since'),
    h('p', {class: 'hint', id: 'recover-hint'}, 'Sends again every delivery of this webhook that ended failed at or after this time (your local time), with the same webhook-id.'),
    h('div', {class: 'inline'}, h('label', {for: 'recover-since'}, 'Failed since'), since, recoverBtn),
    h('output', {id: 'recover-result', for: 'recover-since'}));

    const toggle = h('button', {type: 'button', onclick: async () => {
      toggle.disabled = true;
      try {
        const nw = await api('PATCH', wpath, {enabled: !w.enabled});
        say(`Webhook ${nw.enabled ? 'enabled' : 'disabled'}.`);
        route();
      } catch (e) {
        toggle.disabled = false;
        showError(e);
      }
    }}, w.enabled ? 'Disable' : 'Enable');

    screen(w.name || w.id, breadcrumb(p, {text: w.name || w.id}),
      h('div', {class: 'head'}, h('h1', {}, w.name || w.id, ' ',
        h('span', {class: 'badge ' + (w.enabled ? 's-succeeded' : 's-off')}, w.enabled ? 'Enabled' : 'Disabled')),
      h('div', {class: 'buttons'}, h('a', {class: 'button', href: `${hrefHook(p, w.id)}/edit`}, 'Edit'), toggle,
        h('button', {type: 'button', class: 'danger', onclick: () => deleteHook(p, w, () => { location.hash = hrefList(p); })}, 'Delete'))),
      shownSecret ? h('section', {class: 'card once', 'aria-labelledby': 'once-h'},
        h('h2', {id: 'once-h'}, 'Your signing secret'),
        h('p', {}, 'Copy it now and keep it on your server: it is not shown again (the API keeps it and shows ***).'),
        h('div', {class: 'inline'}, h('output', {id: 'new-secret'}, h('code', {}, shownSecret)),
          h('button', {type: 'button', onclick: async (ev) => {
            try {
              await navigator.clipboard.writeText(shownSecret);
              say('Signing secret copied.');
            } catch (e) {
              getSelection().selectAllChildren(document.getElementById('new-secret'));
              say('Press Ctrl+C to copy the selected secret.');
            }
            ev.target.focus();
          }}, 'Copy'))) : null,
      h('dl', {class: 'facts card'},
        h('dt', {}, 'Endpoint URL'), h('dd', {}, h('code', {class: 'url'}, w.url)),
        h('dt', {}, 'Events'), h('dd', {}, eventChips(w.events)),
        h('dt', {}, 'Authentication'), h('dd', {}, authLabel(w.auth && w.auth.type),
          w.auth && w.auth.type !== 'none' ? h('span', {class: 'muted'}, ' (credentials ***)') : null),
        h('dt', {}, 'Signing secret'), h('dd', {}, w.secret ? h('code', {}, w.secret) : h('span', {class: 'muted'}, 'none: requests are not signed')),
        h('dt', {}, 'Webhook ID'), h('dd', {}, h('code', {}, w.id))),
      h('section', {'aria-labelledby': 'deliveries-h', class: 'deliveries'},
        h('div', {class: 'head'}, h('h2', {id: 'deliveries-h'}, 'Recent deliveries'),
          h('div', {class: 'inline'}, h('label', {for: 'd-filter'}, 'Status'), filterSel,
            h('button', {type: 'button', onclick: () => { older = false; loadDeliveries(false); }}, 'Refresh'))),
        h('table', {class: 'list', id: 'deliveries'},
          h('caption', {class: 'sr-only'}, 'Recent deliveries, newest first'),
          h('thead', {}, h('tr', {}, ['Status', 'Event', 'Attempts', 'Response', 'Created', 'Last attempt']
            .map((c) => h('th', {scope: 'col'}, c)))), tbody),
        empty, more),
      d ? showPanel(d) : null,
      recover);
    if (d) {
      const dh = document.getElementById('delivery-h');
      dh.focus({preventScroll: true});
      dh.scrollIntoView({block: 'start'});
    }
    await loadDeliveries(false);
    every(POLL_MS, async () => {
      if (!older) loadDeliveries(false);
      if (panel && (panel.querySelector('.s-pending, .s-retrying'))) {
        try {
          const nx = await api('GET', `${apiProject(p)}/deliveries/${enc(panel.dataset.id)}`);
          if (my === gen) showPanel(nx);
        } catch (e) { /* shown by the next user action */ }
      }
    });
  }

  function stopTimers() {
    for (const t of timers) clearInterval(t);
    timers = [];
  }

  /* route reads the fragment and draws the screen it names. */
  function route() {
    gen++;
    stopTimers();
    clearError();
    if (!token()) {
      renderSignIn(null);
      return;
    }
    const parts = location.hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
    const sc = scope();
    let job;
    if (parts[0] !== 'projects' || parts.length < 2) {
      if (sc) {
        location.replace(hrefList(sc));
        return;
      }
      job = renderProjects();
    } else {
      const p = parts[1];
      if (sc && p !== sc) {
        location.replace(hrefList(sc));
        return;
      }
      if (parts.length === 2 || (parts[2] === 'webhooks' && parts.length === 3)) job = renderList(p);
      else if (parts[2] === 'webhooks' && parts[3] === 'new' && parts.length === 4) job = renderForm(p, null);
      else if (parts[2] === 'webhooks' && parts[4] === 'edit' && parts.length === 5) job = renderForm(p, parts[3]);
      else if (parts[2] === 'webhooks' && parts.length === 4) job = renderDetails(p, parts[3], null);
      else if (parts[2] === 'webhooks' && parts[4] === 'deliveries' && parts.length === 6) job = renderDetails(p, parts[3], parts[5]);
      else {
        screen('Not found', h('h1', {}, 'Nothing here'), h('p', {}, h('a', {href: hrefList(p)}, 'Back to webhooks')));
        return;
      }
    }
    const my = gen;
    job.catch((e) => {
      if (my !== gen) return;
      if (e.ended) return;
      screen('Error', h('h1', {}, 'Could not load this page'),
        h('p', {}, h('a', {href: '#/'}, 'Start over')));
      showError(e);
    });
  }

  function boot() {
    /* a portal link: #project=P&token=T (the token never stays in the address bar or history) */
    const frag = new URLSearchParams(location.hash.slice(1));
    if (frag.has('token')) {
      const p = frag.get('project') || '';
      sessionStorage.setItem(KEY_TOKEN, frag.get('token'));
      sessionStorage.setItem(KEY_SCOPE, p);
      history.replaceState(null, '', location.pathname + location.search + (p ? hrefList(p) : '#/'));
    }
    document.getElementById('sign-out').addEventListener('click', () => {
      const portal = !!scope();
      endSession(portal ? 'Signed out. Open your portal link again to come back.' : null);
      if (!portal) clearError();
      history.replaceState(null, '', location.pathname + '#/');
    });
    document.getElementById('switch-project').addEventListener('click', () => { location.hash = '#/'; });
    window.addEventListener('hashchange', route);
    route();
  }

  boot();
}());

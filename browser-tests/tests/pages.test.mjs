// The web pages in a real browser: Debian's Chromium, driven by playwright-core (no
// browser download), against the real `tirage serve` on a temporary database, with
// mails written to a directory. Each main page is checked with axe-core (any serious
// or critical violation fails) and photographed at 360 px wide into output/.
//
// Environment: TIRAGE_BIN (default ../target/debug/tirage), CHROMIUM (default
// /usr/bin/chromium), BROWSER_TEST_OUTPUT (default ./output).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, readdirSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..');
const require = createRequire(import.meta.url);
const AXE = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
const BIN = process.env.TIRAGE_BIN ?? path.join(root, 'target', 'debug', 'tirage');
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const OUT = process.env.BROWSER_TEST_OUTPUT ?? path.join(here, '..', 'output');
const ADMIN = 'tirage_browser_test_admin_token_' + 'x'.repeat(16);

let server, base, work, mailDir, browser;

function startServer() {
  return new Promise((resolve, reject) => {
    const child = spawn(BIN, ['serve', '--listen', '127.0.0.1:0',
      '--database', `sqlite://${path.join(work, 'tirage.db')}?mode=rwc`,
      '--mail', `file:${mailDir}`, '--admin-token', ADMIN], {
      env: { ...process.env, RUST_LOG: 'info', TIRAGE_LOG_FORMAT: 'text' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let log = '';
    const timer = setTimeout(() => reject(new Error(`no "listening" line:\n${log}`)), 30000);
    child.stderr.on('data', (chunk) => {
      log += chunk;
      const m = log.match(/listening address=([0-9.]+:\d+)/);
      if (m && !base) {
        clearTimeout(timer);
        base = `http://${m[1]}`;
        resolve(child);
      }
    });
    child.on('exit', (code) => reject(new Error(`tirage serve exited (${code}):\n${log}`)));
  });
}

before(async () => {
  assert.ok(existsSync(BIN), `${BIN} not found: build it with cargo build --all-features`);
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} not found: apt-get install chromium`);
  work = mkdtempSync(path.join(tmpdir(), 'tirage-browser-'));
  mailDir = path.join(work, 'mail');
  mkdirSync(mailDir);
  mkdirSync(OUT, { recursive: true });
  server = await startServer();
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    // playwright-core gives every launch a fresh, temporary user data directory.
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  await browser?.close();
  server?.kill('SIGTERM');
  if (work) rmSync(work, { recursive: true, force: true });
});

// --- helpers -------------------------------------------------------------------------

async function newPage() {
  // bypassCSP lets the test inject axe-core; the pages themselves allow no script.
  const context = await browser.newContext({ viewport: { width: 360, height: 780 }, locale: 'fr-FR', bypassCSP: true });
  const page = await context.newPage();
  return page;
}

/** Runs axe-core on the page; fails on any serious or critical violation. */
async function checkAccessibility(page, name) {
  await page.addScriptTag({ content: AXE });
  const result = await page.evaluate(async () => await window.axe.run(document, {
    resultTypes: ['violations'],
  }));
  const bad = result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  const report = bad.map((v) => `${v.impact} ${v.id}: ${v.help}\n  ` +
    v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join('\n  ')).join('\n');
  assert.equal(bad.length, 0, `axe on ${name}:\n${report}`);
}

async function shoot(page, name) {
  await page.screenshot({ path: path.join(OUT, `${name}.png`), fullPage: true });
}

/** Every main page: accessible, and photographed at 360 px. */
async function mainPage(page, name) {
  await checkAccessibility(page, name);
  await shoot(page, name);
  // Nothing is wider than a 360 px screen (tables scroll inside their own box).
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(overflow <= 362, `${name} is ${overflow}px wide at 360px`);
}

async function api(method, url, body) {
  const res = await fetch(base + url, {
    method,
    headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  assert.ok(res.ok, `${method} ${url}: ${res.status} ${text}`);
  return JSON.parse(text);
}

const iso = (ms) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
const day = (offsetDays) => new Date(Date.now() + offsetDays * 86400000).toISOString().slice(0, 10);

/** An open window for site `site`, created through the API. */
async function openWindow(site) {
  const now = Date.now();
  const window = await api('POST', '/api/v1/windows', {
    site, procedure: 'renewal',
    registration_opens_at: iso(now - 60000),
    registration_closes_at: iso(now + 7 * 86400000),
    draw_at: iso(now + 8 * 86400000),
    beacon: 'none',
    slot_template: {
      first_day: day(20), last_day: day(30), weekdays: ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'],
      opening_hours: [{ from: '08:30', to: '12:00' }], counters: ['G1', 'G2'], minutes_per_appointment: 30,
    },
  });
  await api('POST', `/api/v1/windows/${window.id}/open`);
  return window.id;
}

/** The six-digit code of the last mail sent to `email`. */
async function mailedCode(email) {
  for (let i = 0; i < 50; i++) {
    for (const file of readdirSync(mailDir).sort().reverse()) {
      const text = readFileSync(path.join(mailDir, file), 'utf8');
      if (text.includes(email)) {
        const m = text.match(/^ +(\d{6})\s*$/m);
        if (m) return m[1];
      }
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no mail with a code for ${email}`);
}

async function fillRegistration(page, person) {
  await page.fill('#f-family_name', person.family);
  await page.fill('#f-given_names', person.given);
  await page.fill('#f-birth_date', person.birth);
  await page.fill('#f-nationality', person.nationality);
  await page.check(`input[name=document_kind][value=${person.kind}]`);
  await page.fill('#f-document_number', person.number);
  await page.fill('#f-document_country', person.country);
  if (person.email !== undefined) await page.fill('#f-email', person.email);
  await page.fill('#f-phone', person.phone ?? '');
  await page.fill('#f-permit_expires_on', person.permit ?? '');
}

// --- applicants ----------------------------------------------------------------------

test('register, verify with the mailed code, then see the status page', async () => {
  const windowId = await openWindow('34');
  const page = await newPage();
  await page.goto(`${base}/windows?site=34`);
  assert.equal(await page.getAttribute('html', 'lang'), 'fr');
  await mainPage(page, 'home');
  await page.click(`a[href="/windows/${windowId}/register"]`);
  await mainPage(page, 'register');
  await fillRegistration(page, {
    family: 'El Amrani', given: 'Fatima Zahra', birth: '1990-05-17', nationality: 'MAR',
    kind: 'foreigner_number', number: '7501234567', country: 'FRA',
    email: 'fz.elamrani@example.org', phone: '06 12 34 56 78', permit: day(40),
  });
  await page.click('button[type=submit].primary');
  const entryId = (await page.textContent('#receipt-entry-id')).trim();
  const access = (await page.textContent('#receipt-access-code')).trim();
  assert.match(entryId, /^[0-9a-f]{32}$/);
  assert.match(access, /^[0-9A-Z]{4}(-[0-9A-Z]{4}){5}$/);
  assert.equal((await page.textContent('#entry-status')).trim(), 'En attente de confirmation');
  await mainPage(page, 'receipt');

  // A wrong code first: the message sits next to the code field.
  const code = await mailedCode('fz.elamrani@example.org');
  await page.fill('#f-code', code === '000000' ? '111111' : '000000');
  await page.click('form[action="/entry/verify"] button');
  assert.match(await page.textContent('#f-code-error'), /Essais restants : 4/);
  await page.fill('#f-code', code);
  await page.click('form[action="/entry/verify"] button');
  await page.waitForSelector('#entry-done');
  assert.equal((await page.textContent('#entry-status')).trim(), 'Inscription confirmée');

  // Later, from another browser: the status page with the receipt's id and code.
  const other = await newPage();
  await other.goto(`${base}/entry`);
  await mainPage(other, 'lookup');
  await other.fill('#f-entry_id', entryId);
  await other.fill('#f-access_code', access);
  await other.click('button.primary');
  assert.equal((await other.textContent('#entry-status')).trim(), 'Inscription confirmée');
  assert.match(await other.textContent('#entry-weight'), /^\d+$/);
  await mainPage(other, 'status');
  await page.context().close();
  await other.context().close();
});

test('a validation error is shown next to its field, and the form keeps what was typed', async () => {
  const windowId = await openWindow('13');
  const page = await newPage();
  await page.goto(`${base}/windows/${windowId}/register`);
  await fillRegistration(page, {
    family: 'Diallo', given: 'Aminata', birth: '1985-02-03', nationality: 'SEN',
    kind: 'passport', number: 'A1234567', country: 'SEN', email: 'not-an-email', phone: '',
  });
  await page.click('button[type=submit].primary');
  const error = page.locator('#f-email-error');
  assert.match(await error.textContent(), /adresse e-mail/);
  assert.equal(await page.getAttribute('#f-email', 'aria-invalid'), 'true');
  assert.match(await page.getAttribute('#f-email', 'aria-describedby'), /f-email-error/);
  // The error is inside the e-mail field's block, right above its input.
  assert.equal(await page.locator('.field.invalid #f-email-error').count(), 1);
  assert.equal(await page.inputValue('#f-family_name'), 'Diallo');
  assert.equal(await page.inputValue('#f-document_number'), 'A1234567');
  assert.equal(await page.isChecked('input[name=document_kind][value=passport]'), true);
  assert.equal(await page.locator('.field-error').count(), 1);
  await mainPage(page, 'register-error');
  await page.context().close();
});

test('switching to English and to Arabic (right to left) is remembered', async () => {
  const windowId = await openWindow('69');
  const page = await newPage();
  await page.goto(`${base}/windows/${windowId}/register`);
  await page.click('a[hreflang=en]');
  assert.equal(await page.getAttribute('html', 'lang'), 'en');
  assert.equal(await page.getAttribute('html', 'dir'), 'ltr');
  assert.equal((await page.textContent('h1')).trim(), 'Register for the lottery');
  await page.goto(`${base}/`);
  assert.equal(await page.getAttribute('html', 'lang'), 'en', 'the choice is remembered');
  await mainPage(page, 'home-en');

  await page.goto(`${base}/windows/${windowId}/register`);
  await page.click('a[hreflang=ar]');
  assert.equal(await page.getAttribute('html', 'lang'), 'ar');
  assert.equal(await page.getAttribute('html', 'dir'), 'rtl');
  assert.equal((await page.textContent('h1')).trim(), 'التسجيل في القرعة');
  await mainPage(page, 'register-ar');
  // Mails follow the page's language: no separate choice to make.
  assert.equal(await page.locator('#f-language').count(), 0, 'no mail language to choose');
  await fillRegistration(page, {
    family: 'Haddad', given: 'Karim', birth: '1979-11-30', nationality: 'DZA',
    kind: 'passport', number: 'B9876543', country: 'DZA', email: 'k.haddad@example.org',
  });
  await page.click('button[type=submit].primary');
  await page.waitForSelector('#receipt-entry-id');
  const code = await mailedCode('k.haddad@example.org');
  assert.match(code, /^\d{6}$/);
  const mail = readdirSync(mailDir).map((f) => readFileSync(path.join(mailDir, f), 'utf8'))
    .find((t) => t.includes('k.haddad@example.org'));
  const subject = mail.match(/^Subject: =\?utf-8\?b\?([^?]+)\?=/m);
  assert.ok(subject, 'the subject is encoded UTF-8');
  assert.equal(Buffer.from(subject[1], 'base64').toString('utf8'), 'رمز التأكيد الخاص بك',
    'the mail follows the language of the page');
  await mainPage(page, 'receipt-ar');
  await page.context().close();
});

test('a form without its CSRF token, or with another one, is refused', async () => {
  const windowId = await openWindow('75');
  const form = new URLSearchParams({ family_name: 'X', csrf: 'a'.repeat(64) });
  const noCookie = await fetch(`${base}/windows/${windowId}/register`, {
    method: 'POST', body: form, headers: { 'content-type': 'application/x-www-form-urlencoded' },
  });
  assert.equal(noCookie.status, 403);
  const wrongCookie = await fetch(`${base}/windows/${windowId}/register`, {
    method: 'POST', body: form, redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: `tirage_csrf=${'b'.repeat(64)}` },
  });
  assert.equal(wrongCookie.status, 403);
  const signIn = await fetch(`${base}/staff/sign-in`, {
    method: 'POST', body: new URLSearchParams({ token: ADMIN }), redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
  });
  assert.equal(signIn.status, 403, 'even the sign-in form needs its token');
  assert.ok(!(signIn.headers.get('set-cookie') ?? '').includes('tirage_staff='));
});

// --- staff and auditors --------------------------------------------------------------

test('staff sign in, create, open, register at the counter, close and draw; the public page shows the results', async () => {
  const page = await newPage();
  await page.goto(`${base}/staff`);
  assert.match(page.url(), /\/staff\/sign-in/);
  await mainPage(page, 'staff-sign-in');
  await page.fill('#f-token', 'tirage_wrong');
  await page.click('#sign-in-token');
  await page.waitForSelector('#signin-problem');
  await page.fill('#f-token', ADMIN);
  await page.click('#sign-in-token');
  await page.waitForURL(/\/staff$/);
  const cookies = await page.context().cookies();
  const session = cookies.find((c) => c.name === 'tirage_staff');
  assert.ok(session?.httpOnly && session.sameSite === 'Strict', 'an HttpOnly, SameSite=Strict session');
  await mainPage(page, 'staff-dashboard');

  // The admin creates an account for an agent, who then signs in with a password.
  await page.click('a[href="/staff/accounts"]');
  await page.fill('#f-username', 'agent.martin');
  await page.fill('#f-name', 'Guichet 2 - M. Martin');
  await page.selectOption('#f-role', 'staff');
  await page.fill('#f-password', 'court');
  await page.click('button.primary');
  assert.match(await page.textContent('#f-password-error'), /12 caractères au moins/);
  assert.equal(await page.inputValue('#f-username'), 'agent.martin');
  await page.fill('#f-password', 'un mot de passe assez long');
  await page.click('button.primary');
  await page.waitForSelector('#account-created');
  await mainPage(page, 'staff-accounts');
  await page.click('.main-nav button.link');
  await page.goto(`${base}/staff`);
  assert.match(page.url(), /\/staff\/sign-in/);
  await page.fill('#f-username', 'agent.martin');
  await page.fill('#f-password', 'un mot de passe faux');
  await page.click('#sign-in-account');
  await page.waitForSelector('#signin-problem');
  await page.fill('#f-username', 'agent.martin');
  await page.fill('#f-password', 'un mot de passe assez long');
  await page.click('#sign-in-account');
  await page.waitForURL(/\/staff$/);
  assert.match(await page.textContent('.main-nav'), /Guichet 2 - M\. Martin/);

  // A window whose registration closes in 25 seconds; the draw follows at once.
  const t = (ms) => new Date(ms).toISOString().slice(0, 19);
  const closes = Date.now() + 25000;
  await page.click('a[href="/staff/windows/new"]');
  await page.fill('#f-site', '31');
  await page.fill('#f-procedure', 'first_permit');
  await page.selectOption('#f-time_zone', 'UTC');
  await page.fill('#f-registration_opens_at', t(Date.now() - 60000));
  await page.fill('#f-registration_closes_at', t(closes));
  await page.fill('#f-draw_at', t(closes));
  await page.fill('#f-first_day', day(2));
  await page.fill('#f-last_day', day(4));
  for (const d of ['sat', 'sun']) await page.check(`input[name=wd_${d}]`);
  await page.fill('#f-opening_hours', '09:00-10:00');
  await page.fill('#f-counters', 'G1');
  await page.fill('#f-minutes_per_appointment', '30');
  await page.click('button[value=preview]');
  assert.match(await page.textContent('#preview-summary'), /^6 rendez-vous sur 3 jour/);
  await mainPage(page, 'staff-window-preview');
  await page.click('button[value=save]');
  await page.waitForURL(/\/staff\/windows\/[0-9a-f]{16}$/);
  const windowId = page.url().split('/').pop();
  assert.equal((await page.textContent('#window-state')).trim(), 'Brouillon');
  await page.click('#open-window');
  await page.waitForSelector('.state-open');
  await mainPage(page, 'staff-window');

  // Two people registered at the counter: eligible at once.
  const people = [
    { family: 'Nguyen', given: 'Van An', birth: '1970-01-01', nationality: 'VNM', kind: 'passport', number: 'C1112223', country: 'VNM', permit: day(10) },
    { family: 'Okafor', given: 'Chioma', birth: '1995-06-15', nationality: 'NGA', kind: 'passport', number: 'A0099887', country: 'NGA', phone: '+33 7 11 22 33 44' },
  ];
  const entries = [];
  const codes = [];
  for (const person of people) {
    await page.goto(`${base}/staff/windows/${windowId}/counter`);
    await fillRegistration(page, person);
    await page.click('button[type=submit].primary');
    entries.push((await page.textContent('#receipt-entry-id')).trim());
    codes.push((await page.textContent('#receipt-access-code')).trim());
  }
  await mainPage(page, 'staff-counter-receipt');
  await page.goto(`${base}/staff/windows/${windowId}`);
  assert.match(await page.textContent('#counts'), /Inscription confirmée\s*2/);
  await page.goto(`${base}/staff/windows/${windowId}/events`);
  assert.ok(await page.locator('table.events tbody tr').count() >= 4);
  await mainPage(page, 'staff-events');

  // After the close time: close, then draw (the scheduler may already have done either).
  await new Promise((r) => setTimeout(r, Math.max(0, closes - Date.now()) + 1500));
  await page.goto(`${base}/staff/windows/${windowId}`);
  if (await page.locator('#close-window').count()) {
    await page.click('#close-window');
    await page.waitForLoadState();
  }
  await page.goto(`${base}/staff/windows/${windowId}`);
  if (await page.locator('#draw-window').count()) {
    await page.click('#draw-window');
    await page.waitForLoadState();
  }
  await page.goto(`${base}/staff/windows/${windowId}`);
  assert.equal((await page.textContent('#window-state')).trim(), 'Tirage effectué');

  // The auditor's page, seen by anyone.
  const auditor = await newPage();
  await auditor.goto(`${base}/windows/${windowId}`);
  assert.equal((await auditor.textContent('#window-state')).trim(), 'Tirage effectué');
  assert.equal(await auditor.locator('#results-table tbody tr').count(), 2);
  const ids = await auditor.locator('#results-table tbody code').allTextContents();
  assert.deepEqual([...ids].sort(), [...entries].sort());
  assert.equal(await auditor.locator('#results-table tr.selected').count(), 2, 'six slots for two people');
  assert.equal(await auditor.locator('svg.chart rect').count(), 4, 'two weights, two bars each');
  assert.match(await auditor.textContent('#stats-summary'), /2 inscriptions/);
  const bundle = await fetch(base + await auditor.getAttribute('#bundle-link', 'href'));
  assert.equal(bundle.status, 200);
  assert.equal((await bundle.json()).results.length, 2);
  assert.match(await auditor.textContent('#audit-title + p + ol'), /tirage verify bundle\.json/);
  await auditor.fill('#f-entry', entries[0]);
  await auditor.click('form[role=search] button');
  assert.match(await auditor.textContent('#check-result'), /Rang [12] : rendez-vous le/);
  await mainPage(auditor, 'auditor');
  await auditor.context().close();

  // The first person sees the appointment, the checked proof, and prints the convocation.
  const applicant = await newPage();
  await applicant.goto(`${base}/entry`);
  await applicant.fill('#f-entry_id', entries[0]);
  await applicant.fill('#f-access_code', codes[0]);
  await applicant.click('button.primary');
  assert.equal((await applicant.textContent('#entry-status')).trim(), 'Rendez-vous attribué');
  assert.match(await applicant.textContent('#entry-slot'), /guichet G1/);
  assert.match(await applicant.textContent('#entry-rank'), /sur 2/);
  assert.equal(await applicant.getAttribute('#proof-result', 'class'), 'notice done');
  await mainPage(applicant, 'status-drawn');
  const [letter] = await Promise.all([
    applicant.waitForEvent('popup'),
    applicant.click('#convocation-button'),
  ]);
  await letter.waitForLoadState();
  const letterText = await letter.textContent('body');
  assert.match(letterText, /NGUYEN|Nguyen/);
  const checkCode = (await letter.textContent('.code strong')).trim();
  assert.match(checkCode, /^[0-9A-Z]{5}-[0-9A-Z]{5}$/, 'the convocation carries a check code');
  await shoot(letter, 'convocation');
  // ... and the signed attestation of participation, to keep as evidence.
  const [certificate] = await Promise.all([
    applicant.waitForEvent('popup'),
    applicant.click('#attestation-button'),
  ]);
  await certificate.waitForLoadState();
  const certificateText = await certificate.textContent('body');
  assert.match(certificateText, /Attestation de participation/);
  assert.ok(certificateText.includes(entries[0]), 'the attestation names the entry');
  await shoot(certificate, 'attestation');
  await applicant.context().close();

  // At the counter, the code is known; the appointment is not today, so it is refused.
  await page.goto(`${base}/staff/checkin`);
  await mainPage(page, 'staff-checkin');
  await page.fill('#f-check_code', 'ZZZZZ-ZZZZZ');
  await page.click('button.primary');
  assert.ok(await page.locator('#f-check_code-error, #checkin-problem').count() >= 1);
  await page.fill('#f-check_code', checkCode);
  await page.click('button.primary');
  assert.match(await page.textContent('#checkin-problem'), /today|aujourd/i);
  await page.context().close();
});

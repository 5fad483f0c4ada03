// The vault's only script. Everything secret happens here, in the browser: the private key
// (kept in IndexedDB as a non-extractable CryptoKey), passphrases and plaintexts are never
// sent to the server, which sees public keys, fingerprints, names and envelopes only.
//
// Formats: docs/key-format.md (zkkey v1 key backup, envelope v1). recoverctl's Python
// reader of the same formats is src/recoverctl/core/keyfile.py; the checks and messages
// below follow it, and the e2e tests prove each side opens what the other writes.

const subtle = globalThis.crypto && globalThis.crypto.subtle;
const encoder = new TextEncoder();

const RSA = { name: "RSA-OAEP", hash: "SHA-256" };
const MODULUS_BITS = 3072; // what this page generates; 2048 is still read
const MODULUS_LENGTHS = [2048, 3072];
const ITERATIONS = 600000;
const MIN_ITERATIONS = 100000;
// A damaged digit could ask for billions of rounds and hang the tab; recoverctl refuses too.
const MAX_ITERATIONS = 10000000;
const SALT_BYTES = 16;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const AES_KEY_BYTES = 32;
const MIN_PASSPHRASE = 12;
// A key backup is about 3 KB; anything far larger is not one, and reading it would only hang.
const MAX_FILE_BYTES = 1024 * 1024;
const ENVELOPE_ALG = "RSA-OAEP-256+A256GCM";
const ENVELOPE_FIELDS = ["v", "alg", "kid", "ek", "iv", "ct"];
const FINGERPRINT_RE = /^sha256:[0-9a-f]{64}$/;
// Standard alphabet with padding, what btoa() writes; looser input hides damage.
const BASE64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const NOTHING_CHANGED = "Nothing was changed, in this browser or on the server.";

/** An error whose message is safe and meant to be shown: never key material or a secret. */
class Problem extends Error {}

// --- bytes ----------------------------------------------------------------------------

function toBase64(buffer) {
  const bytes = new Uint8Array(buffer);
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(text);
}

function fromBase64(text) {
  const raw = atob(text);
  const bytes = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
  return bytes;
}

function randomBytes(count) {
  return globalThis.crypto.getRandomValues(new Uint8Array(count));
}

function sameBytes(a, b) {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

async function fingerprintOf(spki) {
  const digest = new Uint8Array(await subtle.digest("SHA-256", spki));
  return "sha256:" + Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

// --- checking JSON the way recoverctl does ---------------------------------------------

function isObject(value) {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** A short rendering of a metadata value; never used on key, salt or ciphertext fields. */
function show(value) {
  if (Array.isArray(value)) return "a list";
  if (isObject(value)) return "an object";
  const text = JSON.stringify(value);
  return text.length <= 40 ? text : text.slice(0, 37) + "...";
}

function expect(obj, key, path, expected, problems) {
  if (!(key in obj)) problems.push(`${path} is missing`);
  else if (obj[key] !== expected) problems.push(`${path} is ${show(obj[key])}, expected ${show(expected)}`);
}

function expectHash(obj, path, problems) {
  let value = obj.hash;
  // WebCrypto's own algorithm objects say {"name": "SHA-256"}: accepted, as recoverctl does.
  if (isObject(value) && Object.keys(value).length === 1 && "name" in value) value = value.name;
  if (!("hash" in obj)) problems.push(`${path} is missing`);
  else if (value !== "SHA-256") problems.push(`${path} is ${show(value)}, expected "SHA-256"`);
}

function section(data, key, problems) {
  if (!(key in data)) {
    problems.push(`${key} is missing`);
    return null;
  }
  if (!isObject(data[key])) {
    problems.push(`${key} is ${show(data[key])}, expected an object`);
    return null;
  }
  return data[key];
}

/** Decoded bytes, or null with a problem recorded. Never echoes the value. */
function base64Field(obj, key, path, problems, { size = null, minSize = 0 } = {}) {
  if (!(key in obj)) {
    problems.push(`${path} is missing`);
    return null;
  }
  const value = obj[key];
  if (typeof value !== "string" || !value) {
    problems.push(`${path} is not a base64 string`);
    return null;
  }
  if (!BASE64_RE.test(value)) {
    problems.push(`${path} is not valid base64`);
    return null;
  }
  const bytes = fromBase64(value);
  if (size !== null && bytes.length !== size) {
    problems.push(`${path} is ${bytes.length} bytes, expected ${size}`);
    return null;
  }
  if (bytes.length < minSize) {
    problems.push(`${path} is ${bytes.length} bytes, expected at least ${minSize}`);
    return null;
  }
  return bytes;
}

function invalidFile(problems) {
  return new Problem("This is not a valid key backup file:\n" + problems.map((p) => `- ${p}`).join("\n"));
}

// --- the key backup file (zkkey v1) ----------------------------------------------------

/** Checks every field of a zkkey v1 file; throws a Problem listing all that is wrong. */
async function parseKeyFile(text) {
  if (!text.trim()) throw invalidFile(["the file is empty"]);
  let data;
  try {
    data = JSON.parse(text);
  } catch {
    // Not the parser's message: it quotes the input.
    throw invalidFile(["not JSON (the file is cut short, or is not a key backup)"]);
  }
  if (!isObject(data)) throw invalidFile(["the file holds JSON, but not an object"]);

  const problems = [];
  expect(data, "format", "format", "zkkey", problems);
  if (!("version" in data)) problems.push("version is missing");
  else if (Number.isInteger(data.version) && data.version !== 1) {
    problems.push(`version ${show(data.version)} is not supported (this page reads version 1)`);
  } else if (!Number.isInteger(data.version)) problems.push(`version is ${show(data.version)}, expected 1`);
  const created = checkCreated(data, problems);

  let declaredBits = 0;
  const algorithm = section(data, "algorithm", problems);
  if (algorithm) {
    expect(algorithm, "name", "algorithm.name", "RSA-OAEP", problems);
    expectHash(algorithm, "algorithm.hash", problems);
    const bits = algorithm.modulusLength;
    if (!("modulusLength" in algorithm)) problems.push("algorithm.modulusLength is missing");
    else if (!MODULUS_LENGTHS.includes(bits)) {
      problems.push(`algorithm.modulusLength is ${show(bits)}, expected 2048 or 3072`);
    }
    if (Number.isInteger(bits)) declaredBits = bits;
  }

  const spki = base64Field(data, "publicKey", "publicKey", problems, { minSize: 1 });
  let publicKey = null;
  let keyBits = 0;
  if (spki) {
    try {
      publicKey = await subtle.importKey("spki", spki, RSA, true, ["encrypt"]);
      keyBits = publicKey.algorithm.modulusLength;
    } catch {
      problems.push("publicKey is not a DER SubjectPublicKeyInfo RSA public key");
    }
  }
  if (keyBits && declaredBits && keyBits !== declaredBits) {
    problems.push(`publicKey is an RSA-${keyBits} key, but algorithm.modulusLength says ${declaredBits}`);
  } else if (keyBits && !declaredBits && !MODULUS_LENGTHS.includes(keyBits)) {
    problems.push(`publicKey is an RSA-${keyBits} key, expected 2048 or 3072`);
  }

  const fingerprint = data.fingerprint;
  if (!("fingerprint" in data)) problems.push("fingerprint is missing");
  else if (typeof fingerprint !== "string" || !FINGERPRINT_RE.test(fingerprint)) {
    problems.push('fingerprint is not "sha256:" followed by 64 lowercase hex digits');
  } else if (keyBits) {
    const actual = await fingerprintOf(spki);
    if (actual !== fingerprint) {
      problems.push(`fingerprint ${fingerprint} does not match publicKey, whose fingerprint is ${actual}`);
    }
  }

  let iterations = 0;
  let salt = null;
  const kdf = section(data, "kdf", problems);
  if (kdf) {
    expect(kdf, "name", "kdf.name", "PBKDF2", problems);
    expectHash(kdf, "kdf.hash", problems);
    iterations = checkIterations(kdf, problems);
    salt = base64Field(kdf, "salt", "kdf.salt", problems, { size: SALT_BYTES });
  }

  let iv = null;
  const wrap = section(data, "wrap", problems);
  if (wrap) {
    expect(wrap, "name", "wrap.name", "AES-GCM", problems);
    iv = base64Field(wrap, "iv", "wrap.iv", problems, { size: IV_BYTES });
  }

  const wrappedKey = base64Field(data, "wrappedKey", "wrappedKey", problems, { minSize: TAG_BYTES });

  if (problems.length || !created) throw invalidFile(problems);
  return { text, fingerprint, modulusLength: keyBits, created, iterations, spki, publicKey, salt, iv, wrappedKey };
}

function checkCreated(data, problems) {
  if (!("created" in data)) {
    problems.push("created is missing");
    return null;
  }
  const value = data.created;
  const match =
    typeof value === "string" &&
    /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?(Z|[+-]\d{2}:?\d{2})$/.exec(value);
  if (!match || Number.isNaN(Date.parse(value.replace(/([+-]\d{2})(\d{2})$/, "$1:$2")))) {
    problems.push(`created is ${show(value)}, expected an ISO 8601 UTC timestamp`);
    return null;
  }
  if (!/^(Z|[+-]00:?00)$/.test(match[1])) {
    problems.push(`created is ${show(value)}, not in UTC (expected a Z suffix)`);
    return null;
  }
  return value;
}

function checkIterations(kdf, problems) {
  const value = kdf.iterations;
  if (!("iterations" in kdf)) problems.push("kdf.iterations is missing");
  else if (!Number.isInteger(value)) problems.push(`kdf.iterations is ${show(value)}, expected a whole number`);
  else if (value < MIN_ITERATIONS) {
    problems.push(`kdf.iterations is ${value}, below the minimum of ${MIN_ITERATIONS}`);
  } else if (value > MAX_ITERATIONS) {
    problems.push(`kdf.iterations is ${value}, above the maximum of ${MAX_ITERATIONS} (the file is probably damaged)`);
  } else return value;
  return 0;
}

/** AES-256 key from the passphrase exactly as typed (no trimming, no normalization). */
async function deriveWrappingKey(passphrase, salt, iterations) {
  const base = await subtle.importKey("raw", encoder.encode(passphrase), "PBKDF2", false, ["deriveKey"]);
  return subtle.deriveKey(
    { name: "PBKDF2", hash: "SHA-256", salt, iterations },
    base,
    { name: "AES-GCM", length: 256 },
    false,
    ["wrapKey", "unwrapKey"],
  );
}

/** The private key of a parsed file; non-extractable unless re-wrapping needs it for a moment. */
async function unwrapPrivateKey(keyFile, passphrase, extractable = false) {
  const wrappingKey = await deriveWrappingKey(passphrase, keyFile.salt, keyFile.iterations);
  let privateKey;
  try {
    privateKey = await subtle.unwrapKey(
      "pkcs8",
      keyFile.wrappedKey,
      wrappingKey,
      { name: "AES-GCM", iv: keyFile.iv },
      RSA,
      extractable,
      ["decrypt"],
    );
  } catch (error) {
    // GCM cannot tell a wrong key from damaged bytes; neither can we.
    if (error.name === "OperationError") throw new Problem("Wrong passphrase or damaged key file.");
    throw new Problem("Damaged key file: wrappedKey decrypts, but not to a PKCS#8 RSA private key.");
  }
  await provePair(keyFile.publicKey, privateKey);
  return privateKey;
}

/** Proves the private key is publicKey's other half (the file could be spliced from two). */
async function provePair(publicKey, privateKey) {
  const probe = randomBytes(AES_KEY_BYTES);
  const sealed = await subtle.encrypt({ name: "RSA-OAEP" }, publicKey, probe);
  let opened = null;
  try {
    opened = new Uint8Array(await subtle.decrypt({ name: "RSA-OAEP" }, privateKey, sealed));
  } catch {
    // falls through: a failure and a wrong answer mean the same thing
  }
  if (!opened || !sameBytes(opened, probe)) {
    throw new Problem("Inconsistent key file: the private key does not match its public key.");
  }
}

/** A zkkey v1 file (text) for an extractable private key. */
async function writeKeyFile(privateKey, spki, fingerprint, modulusLength, passphrase) {
  const salt = randomBytes(SALT_BYTES);
  const iv = randomBytes(IV_BYTES);
  const wrappingKey = await deriveWrappingKey(passphrase, salt, ITERATIONS);
  // AES-GCM wrapKey returns ciphertext || tag, as the format says.
  const wrapped = await subtle.wrapKey("pkcs8", privateKey, wrappingKey, { name: "AES-GCM", iv });
  const file = {
    format: "zkkey",
    version: 1,
    created: new Date().toISOString(),
    algorithm: { name: "RSA-OAEP", modulusLength, hash: "SHA-256" },
    publicKey: toBase64(spki),
    fingerprint,
    kdf: { name: "PBKDF2", hash: "SHA-256", iterations: ITERATIONS, salt: toBase64(salt) },
    wrap: { name: "AES-GCM", iv: toBase64(iv) },
    wrappedKey: toBase64(wrapped),
  };
  return JSON.stringify(file, null, 2) + "\n";
}

// --- envelopes -----------------------------------------------------------------------

async function sealSecret(key, plaintext) {
  const aesKey = await subtle.generateKey({ name: "AES-GCM", length: 256 }, true, ["encrypt"]);
  const rawKey = await subtle.exportKey("raw", aesKey);
  const iv = randomBytes(IV_BYTES);
  const ek = await subtle.encrypt({ name: "RSA-OAEP" }, key.publicKey, rawKey);
  const ct = await subtle.encrypt({ name: "AES-GCM", iv }, aesKey, encoder.encode(plaintext));
  return { v: 1, alg: ENVELOPE_ALG, kid: key.fingerprint, ek: toBase64(ek), iv: toBase64(iv), ct: toBase64(ct) };
}

async function openSecret(key, envelope) {
  const damaged = "The stored secret is damaged; it can only be restored from an older backup.";
  if (!isObject(envelope)) throw new Problem(`Not a valid secret envelope. ${damaged}`);
  const problems = [];
  const unknown = Object.keys(envelope).filter((k) => !ENVELOPE_FIELDS.includes(k));
  if (unknown.length) problems.push(`unknown fields: ${unknown.sort().join(", ")}`);
  if (!("v" in envelope)) problems.push("v is missing");
  else if (envelope.v !== 1) problems.push(`v is ${show(envelope.v)}, expected 1`);
  expect(envelope, "alg", "alg", ENVELOPE_ALG, problems);
  if (!("kid" in envelope)) problems.push("kid is missing");
  else if (typeof envelope.kid !== "string" || !FINGERPRINT_RE.test(envelope.kid)) {
    problems.push('kid is not "sha256:" followed by 64 lowercase hex digits');
  }
  const ek = base64Field(envelope, "ek", "ek", problems, { minSize: 1 });
  const iv = base64Field(envelope, "iv", "iv", problems, { size: IV_BYTES });
  const ct = base64Field(envelope, "ct", "ct", problems, { minSize: TAG_BYTES });
  if (problems.length) {
    throw new Problem(`Not a valid secret envelope:\n${problems.map((p) => `- ${p}`).join("\n")}\n${damaged}`);
  }
  if (envelope.kid !== key.fingerprint) {
    throw new Problem(
      `This secret was sealed for key ${envelope.kid}, not for the key in this browser (${key.fingerprint}). ` +
        `Import the key backup whose fingerprint is ${envelope.kid}.`,
    );
  }
  const bits = key.privateKey.algorithm.modulusLength;
  if (ek.length !== bits / 8) {
    throw new Problem(`Damaged envelope: ek is ${ek.length} bytes, an RSA-${bits} key produces ${bits / 8}. ${damaged}`);
  }
  let rawKey;
  try {
    rawKey = await subtle.decrypt({ name: "RSA-OAEP" }, key.privateKey, ek);
  } catch {
    throw new Problem(`Damaged envelope: its AES key (ek) does not decrypt with this private key. ${damaged}`);
  }
  if (rawKey.byteLength !== AES_KEY_BYTES) {
    throw new Problem(`Damaged envelope: its AES key is ${rawKey.byteLength} bytes, expected ${AES_KEY_BYTES}. ${damaged}`);
  }
  const aesKey = await subtle.importKey("raw", rawKey, "AES-GCM", false, ["decrypt"]);
  try {
    const plain = await subtle.decrypt({ name: "AES-GCM", iv }, aesKey, ct);
    return new TextDecoder("utf-8", { fatal: true }).decode(plain);
  } catch {
    throw new Problem(`Damaged envelope: the ciphertext fails its integrity check (ct or iv was altered). ${damaged}`);
  }
}

// --- this browser's key store (IndexedDB) ----------------------------------------------

// One record per vault user: {user, fingerprint, publicKey, privateKey (non-extractable),
// backup (the zkkey text it came from, passphrase-protected), saved}.
function openStore() {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open("vault-keys", 1);
    request.onupgradeneeded = () => request.result.createObjectStore("keys", { keyPath: "user" });
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(new Problem(`This browser cannot open its key store (${request.error})`));
  });
}

async function loadKey(user) {
  const db = await openStore();
  try {
    return await new Promise((resolve, reject) => {
      const request = db.transaction("keys").objectStore("keys").get(user);
      request.onsuccess = () => resolve(request.result || null);
      request.onerror = () => reject(request.error);
    });
  } finally {
    db.close();
  }
}

async function saveKey(record) {
  const db = await openStore();
  try {
    await new Promise((resolve, reject) => {
      const tx = db.transaction("keys", "readwrite");
      tx.objectStore("keys").put(record);
      tx.oncomplete = () => resolve();
      tx.onerror = () => reject(new Problem(`This browser could not store the key (${tx.error})`));
      tx.onabort = () => reject(new Problem(`This browser could not store the key (${tx.error})`));
    });
  } finally {
    db.close();
  }
}

// --- the server ----------------------------------------------------------------------

function csrfToken() {
  const cookie = document.cookie.split("; ").find((c) => c.startsWith("csrftoken="));
  return cookie ? decodeURIComponent(cookie.slice("csrftoken=".length)) : document.body.dataset.csrf;
}

async function api(method, path, body) {
  const init = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.headers["X-CSRFToken"] = csrfToken();
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new Problem("The vault does not answer: check the connection and try again.");
  }
  let data = null;
  try {
    data = await response.json();
  } catch {
    // an error page rather than JSON; the status says enough
  }
  if (response.status === 401) throw new Problem("Your session has ended: log in again.");
  return { status: response.status, data: data || {} };
}

async function registeredFingerprint() {
  const { status, data } = await api("GET", "/api/key-check");
  if (status === 404) return null;
  if (status !== 200) throw new Problem(`The vault could not say which key is registered (HTTP ${status}).`);
  return data.fingerprint;
}

async function registerKey(spki, fingerprint, modulusLength) {
  const { status, data } = await api("POST", "/api/key", {
    publicKey: toBase64(spki),
    fingerprint,
    algorithm: { name: "RSA-OAEP", modulusLength, hash: "SHA-256" },
  });
  if (status !== 200 && status !== 201) {
    throw new Problem(`The vault refused the key (HTTP ${status}): ${data.error || "no reason given"}`);
  }
}

// --- the page ------------------------------------------------------------------------

const $ = (id) => document.getElementById(id);
const user = () => document.body.dataset.user;

function say(element, text, kind = "") {
  if (!element) return;
  element.textContent = text;
  element.className = element.className.replace(/\b(ok|error)\b/g, "").trim() + (kind ? ` ${kind}` : "");
}

function messageOf(error) {
  if (error instanceof Problem) return error.message;
  return `Unexpected error (${error && error.name}: ${error && error.message}).`;
}

/** Runs work for a form's submit, one at a time; the form never submits to the server. */
function onSubmit(form, message, work) {
  if (!form) return;
  let busy = false;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (busy) return;
    busy = true;
    form.setAttribute("aria-busy", "true");
    say(message, "Working…");
    try {
      await work();
    } catch (error) {
      say(message, messageOf(error), "error");
    } finally {
      busy = false;
      form.removeAttribute("aria-busy");
    }
  });
}

function download(text, filename) {
  const url = URL.createObjectURL(new Blob([text], { type: "application/json" }));
  const link = document.createElement("a");
  link.href = url;
  link.download = filename;
  link.hidden = true;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}

function backupName(fingerprint) {
  const who = user().replace(/[^A-Za-z0-9._-]/g, "_");
  return `vault-${who}-${fingerprint.slice(7, 19)}.zkkey.json`;
}

function checkNewPassphrase(first, second) {
  if (first.length < MIN_PASSPHRASE) {
    throw new Problem(`The passphrase must be at least ${MIN_PASSPHRASE} characters long.`);
  }
  if (first !== second) throw new Problem("The two passphrases differ: type the same one twice.");
}

/** What the page knows: the registered fingerprint and the key this browser holds. */
async function keyState() {
  const registered = document.body.dataset.registered || null;
  const local = await loadKey(user());
  return { registered, local, matches: Boolean(local && registered && local.fingerprint === registered) };
}

function describeLocal(state) {
  if (!state.registered) return "No key is registered for you yet: generate or import one on the Key backup page.";
  if (!state.local) return "This browser holds no key: import your key backup on the Key backup page (Key backup → Import).";
  if (!state.matches) {
    return `The key in this browser (${state.local.fingerprint}) is not the one registered for you (${state.registered}): import the key backup whose fingerprint is ${state.registered}.`;
  }
  return "";
}

async function usableKey() {
  const state = await keyState();
  const problem = describeLocal(state);
  if (problem) throw new Problem(problem);
  return state.local;
}

// Secrets: list, reveal (decrypted here, shown on demand, hidden again), add (sealed here).
async function secretsPage() {
  const status = $("key-status");
  const state = await keyState();
  say(status, describeLocal(state), describeLocal(state) ? "error" : "");
  const list = $("secret-list");

  list.addEventListener("click", async (event) => {
    const button = event.target.closest("button.reveal");
    if (!button) return;
    const item = button.closest("li");
    const output = $(button.getAttribute("aria-controls"));
    if (button.getAttribute("aria-expanded") === "true") {
      // Hidden means gone from the page, not just out of sight.
      output.textContent = "";
      output.hidden = true;
      button.setAttribute("aria-expanded", "false");
      button.textContent = "Reveal";
      return;
    }
    try {
      const key = await usableKey();
      const { status: code, data } = await api("GET", `/api/secrets/${encodeURIComponent(item.dataset.id)}`);
      if (code !== 200) throw new Problem(`The vault could not send this secret (HTTP ${code}): ${data.error || ""}`);
      output.textContent = await openSecret(key, data.envelope);
      output.hidden = false;
      button.setAttribute("aria-expanded", "true");
      button.textContent = "Hide";
      say($("reveal-msg"), "");
    } catch (error) {
      say($("reveal-msg"), `Cannot reveal “${item.querySelector(".name").textContent}”: ${messageOf(error)}`, "error");
    }
  });

  onSubmit($("add-form"), $("add-msg"), async () => {
    const name = $("add-name").value;
    const valueInput = $("add-value");
    if (!name.trim()) throw new Problem("Give the secret a name.");
    const key = await usableKey();
    const envelope = await sealSecret(key, valueInput.value);
    const { status: code, data } = await api("POST", "/api/secrets", { name, envelope });
    if (code !== 201) throw new Problem(`The vault refused the secret (HTTP ${code}): ${data.error || "no reason given"}`);
    valueInput.value = "";
    $("add-name").value = "";
    addListItem(list, data.id, data.name);
    $("empty-list").hidden = true;
    document.body.dataset.secretCount = String(Number(document.body.dataset.secretCount || 0) + 1);
    say($("add-msg"), `Added “${data.name}”, encrypted in this browser.`, "ok");
    $("add-name").focus();
  });
}

function addListItem(list, id, name) {
  const item = document.createElement("li");
  item.dataset.id = String(id);
  const label = document.createElement("span");
  label.className = "name";
  label.id = `name-${id}`;
  label.textContent = name;
  const button = document.createElement("button");
  button.type = "button";
  button.className = "reveal";
  button.textContent = "Reveal";
  button.setAttribute("aria-expanded", "false");
  button.setAttribute("aria-controls", `value-${id}`);
  button.setAttribute("aria-describedby", `name-${id}`);
  const output = document.createElement("output");
  output.id = `value-${id}`;
  output.className = "value";
  output.setAttribute("aria-live", "polite");
  output.hidden = true;
  item.append(label, " ", button, " ", output);
  list.append(item);
}

// Key backup: import, export, and (first use only) generate.
async function keyBackupPage() {
  const refresh = async () => {
    const state = await keyState();
    $("browser-fp").textContent = state.local ? state.local.fingerprint : "none";
    $("registered-fp").textContent = state.registered || "none";
    say($("key-status"), state.matches ? "This browser holds your registered key." : describeLocal(state), state.matches ? "ok" : "");
    $("export-section").hidden = !state.matches;
    const generate = $("generate-section");
    if (generate && state.matches) generate.hidden = true;
    return state;
  };
  await refresh();

  onSubmit($("import-form"), $("imp-msg"), async () => {
    const passInput = $("imp-pass");
    const passphrase = passInput.value;
    passInput.value = "";
    try {
      const file = $("imp-file").files[0];
      if (!file) throw new Problem("Choose your key backup file (*.zkkey.json).");
      if (!passphrase) throw new Problem("Type the key backup's passphrase.");
      if (file.size > MAX_FILE_BYTES) throw invalidFile([`the file is ${file.size} bytes; a key backup is a few KB`]);
      const keyFile = await parseKeyFile(await file.text());
      const registered = await registeredFingerprint();
      if (registered && keyFile.fingerprint !== registered) {
        throw new Problem(
          `This key file's fingerprint is ${keyFile.fingerprint}, but the key registered for you (${user()}) is ` +
            `${registered}: the file belongs to another user or another key. ` +
            `Import the key backup whose fingerprint is ${registered}.`,
        );
      }
      const privateKey = await unwrapPrivateKey(keyFile, passphrase);
      if (!registered) await registerKey(keyFile.spki, keyFile.fingerprint, keyFile.modulusLength);
      await saveKey({
        user: user(),
        fingerprint: keyFile.fingerprint,
        publicKey: keyFile.publicKey,
        privateKey,
        backup: keyFile.text,
        saved: new Date().toISOString(),
      });
      document.body.dataset.registered = keyFile.fingerprint;
      $("imp-file").value = "";
      await refresh();
      say(
        $("imp-msg"),
        `Key imported: ${keyFile.fingerprint}${registered ? "" : " (registered as your key)"}. Open Key check to prove it opens your secrets.`,
        "ok",
      );
    } catch (error) {
      throw new Problem(`Import failed: ${messageOf(error)}\n${NOTHING_CHANGED}`);
    }
  });

  onSubmit($("export-form"), $("exp-msg"), async () => {
    const current = $("exp-current").value;
    const first = $("exp-pass").value;
    const second = $("exp-pass2").value;
    for (const id of ["exp-current", "exp-pass", "exp-pass2"]) $(id).value = "";
    checkNewPassphrase(first, second);
    const state = await keyState();
    if (!state.matches) throw new Problem(describeLocal(state));
    const keyFile = await parseKeyFile(state.local.backup);
    let privateKey;
    try {
      // Extractable for this moment only, to be wrapped again; never stored.
      privateKey = await unwrapPrivateKey(keyFile, current, true);
    } catch (error) {
      if (error instanceof Problem && /^Wrong passphrase/.test(error.message)) {
        throw new Problem("Wrong current passphrase: type the passphrase of the key backup this browser was given (generated or imported). Nothing was exported.");
      }
      throw error;
    }
    const text = await writeKeyFile(privateKey, keyFile.spki, keyFile.fingerprint, keyFile.modulusLength, first);
    await saveKey({ ...state.local, backup: text, saved: new Date().toISOString() });
    download(text, backupName(keyFile.fingerprint));
    say($("exp-msg"), `Exported ${backupName(keyFile.fingerprint)}, protected by the new passphrase. Keep both somewhere safe, never in git.`, "ok");
  });

  $("download-again").addEventListener("click", async () => {
    try {
      const state = await keyState();
      if (!state.matches) throw new Problem(describeLocal(state));
      download(state.local.backup, backupName(state.local.fingerprint));
      say($("exp-msg"), `Downloaded ${backupName(state.local.fingerprint)} (the passphrase is the one it was made with).`, "ok");
    } catch (error) {
      say($("exp-msg"), messageOf(error), "error");
    }
  });

  onSubmit($("generate-form"), $("gen-msg"), async () => {
    const first = $("gen-pass").value;
    const second = $("gen-pass2").value;
    $("gen-pass").value = "";
    $("gen-pass2").value = "";
    checkNewPassphrase(first, second);
    const pair = await subtle.generateKey(
      { ...RSA, modulusLength: MODULUS_BITS, publicExponent: new Uint8Array([1, 0, 1]) },
      true,
      ["encrypt", "decrypt"],
    );
    const spki = new Uint8Array(await subtle.exportKey("spki", pair.publicKey));
    const fingerprint = await fingerprintOf(spki);
    const text = await writeKeyFile(pair.privateKey, spki, fingerprint, MODULUS_BITS, first);
    // What is kept is unwrapped from the file just written: non-extractable, and proof the file opens.
    const keyFile = await parseKeyFile(text);
    const privateKey = await unwrapPrivateKey(keyFile, first);
    await registerKey(spki, fingerprint, MODULUS_BITS);
    // The file first: if the browser's store fails, the key still exists somewhere.
    download(text, backupName(fingerprint));
    await saveKey({ user: user(), fingerprint, publicKey: keyFile.publicKey, privateKey, backup: text, saved: new Date().toISOString() });
    document.body.dataset.registered = fingerprint;
    await refresh();
    $("generate-section").hidden = true;
    say(
      $("key-status"),
      `Key generated and registered: ${fingerprint}. Its backup was downloaded as ${backupName(fingerprint)}: keep it and its passphrase somewhere safe, never in git.`,
      "ok",
    );
  });
}

// Key check: the loaded key against the registered fingerprint, proven by opening one secret.
async function keyCheckPage() {
  const result = $("check-result");
  const run = async () => {
    say(result, "Checking…");
    try {
      const registered = await registeredFingerprint();
      $("registered-fp").textContent = registered || "none";
      const local = await loadKey(user());
      $("browser-fp").textContent = local ? local.fingerprint : "none";
      const problem = describeLocal({ registered, local, matches: Boolean(local && local.fingerprint === registered) });
      if (problem) throw new Problem(problem);
      const { status, data } = await api("GET", "/api/secrets");
      if (status !== 200) throw new Problem(`The vault could not list your secrets (HTTP ${status}).`);
      const secrets = data.secrets || [];
      let proof;
      if (secrets.length) {
        const sample = secrets[0];
        try {
          await openSecret(local, sample.envelope);
        } catch (error) {
          throw new Problem(`The key matches the registered fingerprint but cannot open “${sample.name}”: ${messageOf(error)}`);
        }
        proof = `Opened “${sample.name}” (1 of your ${secrets.length} secret${secrets.length === 1 ? "" : "s"}) in this browser.`;
      } else {
        await provePair(local.publicKey, local.privateKey);
        proof = "No secret is stored yet; a test encryption to the key opened in this browser.";
      }
      say(result, `Key OK\nFingerprint: ${local.fingerprint}\n${proof}`, "ok");
    } catch (error) {
      say(result, `Key not OK: ${messageOf(error)}`, "error");
    }
  };
  $("check-again").addEventListener("click", run);
  await run();
}

async function main() {
  const page = document.body.dataset.page;
  if (!page || page === "login") return;
  if (!subtle || !globalThis.indexedDB) {
    $("no-crypto").hidden = false;
    return;
  }
  const pages = { secrets: secretsPage, "key-backup": keyBackupPage, "key-check": keyCheckPage };
  try {
    await (pages[page] || (async () => {}))();
  } catch (error) {
    const status = $("key-status") || $("check-result");
    say(status, messageOf(error), "error");
  }
  // Tests and people alike can tell the page is ready, not half-wired.
  document.body.dataset.ready = "true";
}

main();

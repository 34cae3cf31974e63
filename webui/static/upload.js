// The upload manager (webui/templates/_upload.html, endpoints in webui/uploads.py).
//
// - Files and whole folders: two pickers (the folder one with `webkitdirectory`) and drops
//   of files or folders anywhere on the page (folders read recursively through
//   DataTransferItem.webkitGetAsEntry); relative paths become key suffixes under the prefix.
// - A queue: FILES_AT_ONCE files at a time, REQUESTS_AT_ONCE requests over all of them, a
//   progress bar per file and one for everything, cancel and retry.
// - A file below one part goes in one request; a larger one as a multipart upload in the
//   server's part size, every part with its Content-MD5 (checked by the server before it
//   is stored) and its answered ETag checked here. A part that fails is retried (backoff;
//   a 429 waits for its Retry-After) before its file is marked failed; Retry resumes.
// - Resume: the upload id, key, size, lastModified and part size are kept in localStorage
//   until the upload completes. After a reload, choosing the same file (or folder) again
//   lists the parts the server has and sends only the others; files of a folder finished
//   before the reload are not sent again.
// - Refusals (quota, full disk, session, rate limits) are shown in the file's row and
//   announced; cancel aborts the multipart upload on the server.

import { Md5, toBase64, toHex } from "./md5.js";

const FILES_AT_ONCE = 3;
const REQUESTS_AT_ONCE = 4; // Chromium opens 6 connections per host: leave some to the page
const PARTS_PER_FILE = 3;
const SINGLE_LIMIT = 8 * 1024 * 1024; // the server's part size: smaller files go in one request
const MAX_ATTEMPTS = 5; // per part, for network errors and 5xx
const MAX_RATE_WAITS = 60; // per part, for 429 / 503 with Retry-After
const STORAGE_KEY = "folio.uploads.v1";
const RECORD_DAYS = 7; // unfinished uploads are aborted by the server after 7 days

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function formatBytes(n) {
  const units = ["bytes", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return i === 0 ? `${n} bytes` : `${n.toFixed(n < 10 ? 1 : 0)} ${units[i]}`;
}

/** A refusal or failure of one request; `retryable` ones are tried again. */
class UploadError extends Error {
  constructor(message, { status = 0, code = "", retryable = false, retryAfter = 0 } = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryable = retryable;
    this.retryAfter = retryAfter;
  }
}

class Canceled extends Error {}

function errorFromResponse(status, text, retryAfterHeader) {
  let code = "";
  let message = "";
  try {
    const body = JSON.parse(text);
    code = body.error?.code || "";
    message = body.error?.message || "";
  } catch {
    message = "";
  }
  const retryAfter = Math.max(1, Number.parseInt(retryAfterHeader || "1", 10) || 1);
  if (status === 429 || status === 503) {
    return new UploadError(message || "Too many requests.", { status, code, retryable: true, retryAfter });
  }
  if (status === 0 || status === 408 || status >= 500) {
    if (status === 507) {
      return new UploadError(`The server's storage is full: ${message || "try again later."}`, { status, code });
    }
    return new UploadError(message || `The connection failed (${status || "network error"}).`, {
      status,
      code,
      retryable: true,
    });
  }
  if (status === 403 && code === "QuotaExceeded") {
    return new UploadError(`Quota exceeded: ${message}`, { status, code });
  }
  if (status === 401) {
    return new UploadError("Your session has ended: log in again, then choose the file again to resume.", {
      status,
      code,
    });
  }
  return new UploadError(message || `Refused (${status}${code ? " " + code : ""}).`, { status, code });
}

/** A counting semaphore: at most `n` holders at once. */
class Slots {
  constructor(n) {
    this.free = n;
    this.waiting = [];
  }
  async take() {
    if (this.free > 0) {
      this.free--;
      return;
    }
    await new Promise((resolve) => this.waiting.push(resolve));
  }
  give() {
    const next = this.waiting.shift();
    if (next) next();
    else this.free++;
  }
}

/** What survives a reload: unfinished multipart uploads, and the files of unfinished batches. */
class Records {
  constructor() {
    this.state = { uploads: {}, batches: {} };
    try {
      const saved = JSON.parse(localStorage.getItem(STORAGE_KEY) || "null");
      if (saved && typeof saved === "object") this.state = { uploads: saved.uploads || {}, batches: saved.batches || {} };
    } catch {
      // unreadable: start afresh
    }
    const oldest = Date.now() - RECORD_DAYS * 86400 * 1000;
    for (const kind of ["uploads", "batches"]) {
      for (const [id, record] of Object.entries(this.state[kind])) {
        if (!(record.savedAt > oldest)) delete this.state[kind][id];
      }
    }
    this.save();
  }
  save() {
    try {
      localStorage.setItem(STORAGE_KEY, JSON.stringify(this.state));
    } catch {
      // storage full or disabled: uploads still work, they just cannot resume
    }
  }
  static uploadId(bucket, key) {
    return `${bucket}\n${key}`;
  }
  upload(bucket, key) {
    return this.state.uploads[Records.uploadId(bucket, key)] || null;
  }
  putUpload(record) {
    this.state.uploads[Records.uploadId(record.bucket, record.key)] = { ...record, savedAt: Date.now() };
    this.save();
  }
  dropUpload(bucket, key) {
    delete this.state.uploads[Records.uploadId(bucket, key)];
    this.save();
  }
  uploadsIn(bucket) {
    return Object.values(this.state.uploads).filter((r) => r.bucket === bucket);
  }
  /** A file this bucket's unfinished batches already uploaded (same key, size and date). */
  alreadyUploaded(bucket, key, fingerprint) {
    return Object.values(this.state.batches).some((b) => b.bucket === bucket && b.done[key] === fingerprint);
  }
  putBatch(id, batch) {
    this.state.batches[id] = { ...batch, savedAt: Date.now() };
    this.save();
  }
  batchesIn(bucket) {
    return Object.entries(this.state.batches).filter(([, b]) => b.bucket === bucket);
  }
  dropBatch(id) {
    delete this.state.batches[id];
    this.save();
  }
}

const fingerprint = (file) => `${file.size}:${file.lastModified}`;

/** One file in the queue, with its row. */
class Item {
  constructor(manager, file, relativePath, batch) {
    this.manager = manager;
    this.file = file;
    this.relativePath = relativePath;
    this.key = manager.prefix + relativePath;
    this.batch = batch;
    this.state = "queued";
    this.doneBytes = 0; // parts stored
    this.inflight = new Map(); // part number -> bytes sent so far
    this.requests = new Set(); // XMLHttpRequests and AbortControllers in flight
    this.uploadId = null;
    this.render();
  }

  get loaded() {
    if (this.state === "done") return this.file.size;
    let sum = this.doneBytes;
    for (const sent of this.inflight.values()) sum += sent;
    return Math.min(sum, this.file.size);
  }

  render() {
    const li = (this.row = document.createElement("li"));
    li.className = "upload-item";
    const name = document.createElement("div");
    name.className = "upload-name";
    const key = document.createElement("span");
    key.className = "upload-key";
    key.textContent = this.key;
    const size = document.createElement("span");
    size.className = "hint";
    size.textContent = formatBytes(this.file.size);
    name.append(key, " ", size);
    this.progress = document.createElement("progress");
    this.progress.max = 100;
    this.progress.value = 0;
    this.progress.setAttribute("aria-label", `Upload of ${this.key}`);
    this.status = document.createElement("p");
    this.status.className = "upload-status hint";
    const actions = document.createElement("div");
    actions.className = "upload-actions";
    this.cancelButton = document.createElement("button");
    this.cancelButton.type = "button";
    this.cancelButton.textContent = "Cancel";
    this.cancelButton.setAttribute("aria-label", `Cancel upload of ${this.key}`);
    this.cancelButton.addEventListener("click", () => this.manager.cancel(this));
    this.retryButton = document.createElement("button");
    this.retryButton.type = "button";
    this.retryButton.textContent = "Retry";
    this.retryButton.hidden = true;
    this.retryButton.setAttribute("aria-label", `Retry upload of ${this.key}`);
    this.retryButton.addEventListener("click", () => this.manager.retry(this));
    actions.append(this.cancelButton, this.retryButton);
    li.append(name, this.progress, this.status, actions);
    this.setState("queued", "Queued");
  }

  setState(state, text, isError = false) {
    this.state = state;
    this.row.dataset.state = state;
    this.status.textContent = text;
    this.status.classList.toggle("error", isError);
    const finished = state === "done" || state === "canceled" || state === "skipped";
    this.cancelButton.hidden = finished;
    this.retryButton.hidden = state !== "failed";
  }

  showProgress() {
    const size = this.file.size;
    this.progress.value = size ? Math.floor((this.loaded / size) * 100) : this.state === "done" ? 100 : 0;
  }

  stopRequests() {
    for (const request of this.requests) request.abort();
    this.requests.clear();
    this.inflight.clear();
  }
}

class UploadManager {
  constructor(root) {
    this.root = root;
    this.bucket = root.dataset.bucket;
    this.prefix = root.dataset.prefix || "";
    this.api = root.dataset.api;
    this.csrf = root.dataset.csrf || this.csrfFromBody();
    this.list = root.querySelector("[data-list]");
    this.messages = root.querySelector("[data-messages]");
    this.summary = root.querySelector("[data-summary]");
    this.overall = root.querySelector("[data-overall]");
    this.overallText = root.querySelector("[data-overall-text]");
    this.zone = root.querySelector("[data-dropzone]");
    this.records = new Records();
    this.items = [];
    this.queue = [];
    this.active = 0;
    this.slots = new Slots(REQUESTS_AT_ONCE);
    this.drawScheduled = false;
    this.batchCounter = 0;
  }

  csrfFromBody() {
    try {
      return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["x-csrf-token"] || "";
    } catch {
      return "";
    }
  }

  start() {
    const files = this.root.querySelector("#upload-files");
    const folder = this.root.querySelector("#upload-folder");
    files.addEventListener("change", () => {
      this.add(Array.from(files.files, (f) => ({ file: f, path: f.name })), "files");
      files.value = "";
    });
    folder.addEventListener("change", () => {
      this.add(Array.from(folder.files, (f) => ({ file: f, path: f.webkitRelativePath || f.name })), "folder");
      folder.value = "";
    });
    this.root.querySelector("[data-cancel-all]").addEventListener("click", () => {
      for (const item of this.items) if (!["done", "canceled", "skipped"].includes(item.state)) this.cancel(item);
    });
    this.root.querySelector("[data-clear-done]").addEventListener("click", () => this.clearFinished());
    this.listenForDrops();
    this.showResumable();
    this.root.dataset.ready = "true";
  }

  // ---------------------------------------------------------------- choosing files

  listenForDrops() {
    const carriesFiles = (event) => Array.from(event.dataTransfer?.types || []).includes("Files");
    document.addEventListener("dragover", (event) => {
      if (!carriesFiles(event)) return;
      event.preventDefault(); // accept the drop (and never let the browser open the file)
      event.dataTransfer.dropEffect = "copy";
      this.zone.classList.add("dragging");
    });
    document.addEventListener("dragleave", (event) => {
      if (event.relatedTarget === null) this.zone.classList.remove("dragging");
    });
    document.addEventListener("drop", (event) => {
      if (!carriesFiles(event)) return;
      event.preventDefault();
      this.zone.classList.remove("dragging");
      // Entries must be taken now: the DataTransfer is emptied once the handler returns.
      const items = Array.from(event.dataTransfer.items || []).filter((i) => i.kind === "file");
      const entries = items.map((i) => (i.webkitGetAsEntry ? i.webkitGetAsEntry() : null));
      const files = Array.from(event.dataTransfer.files || []);
      this.readDrop(entries, files);
    });
  }

  async readDrop(entries, files) {
    let found = [];
    if (entries.length && entries.every((e) => e)) {
      try {
        for (const entry of entries) found.push(...(await readEntry(entry)));
      } catch (error) {
        this.announce(`Could not read the dropped folder: ${error.message || error}`, true);
        return;
      }
    } else {
      found = files.map((f) => ({ file: f, path: f.name }));
    }
    this.add(found, entries.some((e) => e?.isDirectory) ? "folder" : "files");
  }

  add(found, kind) {
    if (!found.length) return;
    const batch = { id: `${Date.now()}-${this.batchCounter++}`, items: [], label: "" };
    const roots = new Set(found.map((f) => f.path.split("/")[0]));
    batch.label = kind === "folder" && roots.size === 1 ? `folder ${[...roots][0]}` : `${found.length} files`;
    let skipped = 0;
    let resumed = 0;
    for (const { file, path } of found) {
      const item = new Item(this, file, path.replace(/^\/+/, ""), batch);
      batch.items.push(item);
      this.items.push(item);
      this.list.append(item.row);
      if (this.records.alreadyUploaded(this.bucket, item.key, fingerprint(file))) {
        item.setState("skipped", "Already uploaded before the page was reloaded");
        skipped++;
        continue;
      }
      const record = this.records.upload(this.bucket, item.key);
      if (record && record.size === file.size && record.lastModified === file.lastModified) {
        item.resumeFrom = record;
        item.setState("queued", "Queued: resumes the interrupted upload");
        resumed++;
      }
      this.queue.push(item);
    }
    this.saveBatch(batch);
    this.summary.hidden = false;
    const notes = [];
    if (resumed) notes.push(`${resumed} resume${resumed === 1 ? "s" : ""} an interrupted upload`);
    if (skipped) notes.push(`${skipped} already uploaded`);
    this.announce(`Added ${found.length} file${found.length === 1 ? "" : "s"}${notes.length ? ` (${notes.join(", ")})` : ""}.`);
    this.showResumable();
    this.draw();
    this.pump();
  }

  // ---------------------------------------------------------------- the queue

  pump() {
    while (this.active < FILES_AT_ONCE && this.queue.length) {
      const item = this.queue.shift();
      if (item.state !== "queued") continue;
      this.active++;
      this.run(item).finally(() => {
        this.active--;
        this.draw();
        this.pump();
      });
    }
  }

  async run(item) {
    item.canceled = false;
    item.failing = false;
    try {
      item.setState("uploading", "Starting");
      if (item.file.size < SINGLE_LIMIT) await this.uploadWhole(item);
      else await this.uploadInParts(item);
      item.setState("done", "Uploaded");
      this.fileDone(item);
    } catch (error) {
      if (error instanceof Canceled || item.canceled) return;
      item.stopRequests();
      item.setState("failed", error.message || String(error), true);
      this.announce(`${item.key}: ${error.message || error}`, true);
    } finally {
      item.showProgress();
    }
  }

  fileDone(item) {
    this.root.dispatchEvent(
      new CustomEvent("folio:uploaded", { bubbles: true, detail: { bucket: this.bucket, key: item.key } }),
    );
    this.saveBatch(item.batch);
    const open = this.items.some((i) => ["queued", "uploading"].includes(i.state));
    if (!open) {
      // Something to refresh (the object browser's listing): hx-trigger="folio:uploads-finished from:body".
      document.body.dispatchEvent(new CustomEvent("folio:uploads-finished", { detail: { bucket: this.bucket } }));
    }
  }

  /** Remember which files of a batch are done, until all of them are. */
  saveBatch(batch) {
    const open = batch.items.filter((i) => !["done", "canceled", "skipped"].includes(i.state));
    if (!open.length) {
      this.records.dropBatch(batch.id);
      // Batches before a reload that this one finished are finished too.
      const keys = new Set(batch.items.map((i) => i.key));
      for (const [id, old] of this.records.batchesIn(this.bucket)) {
        if (Object.keys(old.done).every((k) => keys.has(k))) this.records.dropBatch(id);
      }
      this.showResumable();
      return;
    }
    const done = {};
    for (const i of batch.items) if (i.state === "done") done[i.key] = fingerprint(i.file);
    this.records.putBatch(batch.id, { bucket: this.bucket, label: batch.label, total: batch.items.length, done });
  }

  cancel(item) {
    const wasQueued = item.state === "queued";
    item.canceled = true;
    item.stopRequests();
    item.setState("canceled", "Canceled");
    this.saveBatch(item.batch);
    if (!wasQueued || item.uploadId || item.resumeFrom) this.abortOnServer(item);
    this.draw();
  }

  async abortOnServer(item) {
    const record = this.records.upload(this.bucket, item.key);
    const uploadId = item.uploadId || record?.uploadId;
    if (!uploadId) return;
    this.records.dropUpload(this.bucket, item.key);
    try {
      await this.withRetries(null, () => this.json("DELETE", this.multipartUrl(uploadId, item.key)));
    } catch (error) {
      if (error.status !== 404) this.announce(`${item.key}: the server kept the canceled parts (${error.message}).`, true);
    }
  }

  retry(item) {
    if (item.state !== "failed") return;
    item.setState("queued", "Queued: resumes from the parts already sent");
    item.resumeFrom = this.records.upload(this.bucket, item.key);
    this.queue.push(item);
    this.draw();
    this.pump();
  }

  clearFinished() {
    this.items = this.items.filter((item) => {
      const finished = ["done", "canceled", "skipped"].includes(item.state);
      if (finished) item.row.remove();
      return !finished;
    });
    if (!this.items.length) this.summary.hidden = true;
    this.draw();
  }

  // ---------------------------------------------------------------- requests

  headers(extra = {}) {
    return { "x-csrf-token": this.csrf, ...extra };
  }

  objectUrl(key) {
    const query = new URLSearchParams({ bucket: this.bucket, key });
    return `${this.api}/object?${query}`;
  }

  multipartUrl(uploadId, key, suffix = "") {
    const query = new URLSearchParams({ key });
    return `${this.api}/multipart${uploadId ? "/" + encodeURIComponent(uploadId) : ""}${suffix}?${query}`;
  }

  /** A JSON request (fetch); the parsed answer, or an UploadError. */
  async json(method, url, body, item) {
    const controller = new AbortController();
    item?.requests.add(controller);
    let response;
    try {
      response = await fetch(url, {
        method,
        headers: this.headers(body === undefined ? {} : { "content-type": "application/json" }),
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: "same-origin",
        signal: controller.signal,
      });
    } catch (error) {
      if (controller.signal.aborted) throw new Canceled();
      throw errorFromResponse(0, "", null);
    } finally {
      item?.requests.delete(controller);
    }
    const text = await response.text();
    if (!response.ok) throw errorFromResponse(response.status, text, response.headers.get("retry-after"));
    return text ? JSON.parse(text) : {};
  }

  /** A request with a body (XMLHttpRequest, for upload progress). */
  sendBody(item, method, url, body, headers, onProgress) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open(method, url);
      for (const [name, value] of Object.entries(this.headers(headers))) xhr.setRequestHeader(name, value);
      xhr.upload.addEventListener("progress", (event) => onProgress(event.loaded));
      xhr.addEventListener("load", () => {
        item.requests.delete(xhr);
        if (xhr.status >= 200 && xhr.status < 300) {
          try {
            resolve(JSON.parse(xhr.responseText || "{}"));
          } catch {
            reject(new UploadError("The server's answer was not JSON.", { status: xhr.status, retryable: true }));
          }
        } else {
          reject(errorFromResponse(xhr.status, xhr.responseText, xhr.getResponseHeader("retry-after")));
        }
      });
      xhr.addEventListener("error", () => {
        item.requests.delete(xhr);
        reject(errorFromResponse(0, "", null));
      });
      xhr.addEventListener("abort", () => {
        item.requests.delete(xhr);
        reject(new Canceled());
      });
      item.requests.add(xhr);
      xhr.send(body);
    });
  }

  /** Run `attempt` until it succeeds: network errors and 5xx with backoff (MAX_ATTEMPTS),
   * rate limits after their Retry-After (MAX_RATE_WAITS); anything else fails at once. */
  async withRetries(item, attempt, what = "") {
    let failures = 0;
    let rateWaits = 0;
    for (;;) {
      if (item?.canceled) throw new Canceled();
      try {
        return await attempt();
      } catch (error) {
        if (!(error instanceof UploadError) || !error.retryable || item?.canceled) throw error;
        let wait;
        if (error.status === 429 || error.status === 503) {
          if (++rateWaits > MAX_RATE_WAITS) throw error;
          wait = error.retryAfter;
          const text = `Rate limit reached: retrying${what} in ${wait} s`;
          if (item) item.status.textContent = text;
          if (rateWaits === 1) this.announce(`${item ? item.key + ": " : ""}${text}.`);
        } else {
          if (++failures >= MAX_ATTEMPTS) throw error;
          wait = 2 ** (failures - 1);
          if (item) item.status.textContent = `${error.message} Retrying${what} in ${wait} s (attempt ${failures + 1} of ${MAX_ATTEMPTS})`;
        }
        await sleep(wait * 1000);
      }
    }
  }

  // ---------------------------------------------------------------- one request

  async uploadWhole(item) {
    const file = item.file;
    const digest = new Md5().update(await file.arrayBuffer()).digest();
    const type = file.type && !file.type.toLowerCase().startsWith("multipart/") ? file.type : "application/octet-stream";
    item.setState("uploading", "Uploading");
    await this.slots.take();
    let answer;
    try {
      answer = await this.withRetries(item, () =>
        this.sendBody(item, "POST", this.objectUrl(item.key), file, { "content-type": type }, (sent) => {
          item.inflight.set(1, sent);
          this.draw();
        }),
      );
    } finally {
      this.slots.give();
      item.inflight.clear();
    }
    if (answer.etag !== toHex(digest)) {
      throw new UploadError("The stored file differs from the one sent (MD5 mismatch): retry.", { retryable: false });
    }
    item.doneBytes = file.size;
  }

  // ---------------------------------------------------------------- in parts

  async uploadInParts(item) {
    const file = item.file;
    const stored = new Map(); // part number -> ETag
    let record = item.resumeFrom || null;
    item.resumeFrom = null;
    if (record) {
      item.setState("uploading", "Looking up the parts already sent");
      try {
        const listed = await this.withRetries(item, () =>
          this.json("GET", this.multipartUrl(record.uploadId, item.key), undefined, item),
        );
        for (const part of listed.parts) {
          if (part.size === partLength(file.size, record.partSize, part.partNumber)) stored.set(part.partNumber, part.etag);
        }
      } catch (error) {
        if (error.status !== 404) throw error;
        this.records.dropUpload(this.bucket, item.key); // expired or aborted: start over
        record = null;
      }
    }
    if (!record) {
      item.setState("uploading", "Starting the upload");
      const created = await this.withRetries(item, () =>
        this.json(
          "POST",
          this.multipartUrl(null, item.key),
          { size: file.size, contentType: file.type || "application/octet-stream" },
          item,
        ),
      );
      record = {
        bucket: this.bucket,
        key: item.key,
        uploadId: created.uploadId,
        partSize: created.partSize,
        size: file.size,
        lastModified: file.lastModified,
        name: file.name,
      };
      this.records.putUpload(record);
      item.uploadId = record.uploadId;
      if (item.canceled) {
        this.abortOnServer(item); // canceled while it was being created
        throw new Canceled();
      }
    }
    item.uploadId = record.uploadId;
    const partSize = record.partSize;
    const count = Math.max(1, Math.ceil(file.size / partSize));
    item.doneBytes = 0;
    for (const number of stored.keys()) item.doneBytes += partLength(file.size, partSize, number);
    const todo = [];
    for (let n = 1; n <= count; n++) if (!stored.has(n)) todo.push(n);
    item.setState(
      "uploading",
      stored.size ? `Resuming: ${stored.size} of ${count} parts were already sent` : `Uploading ${count} parts`,
    );
    this.draw();

    let failure = null;
    const worker = async () => {
      while (todo.length && !failure && !item.canceled) {
        const number = todo.shift();
        try {
          stored.set(number, await this.sendPart(item, record, number));
          item.doneBytes += partLength(file.size, partSize, number);
          this.records.putUpload(record); // keeps it fresh
          if (stored.size < count) item.status.textContent = `Uploading: ${stored.size} of ${count} parts sent`;
          this.draw();
        } catch (error) {
          failure = failure || error;
          item.failing = true;
          item.stopRequests(); // the other parts stop too; Retry resumes them all
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(PARTS_PER_FILE, todo.length) }, worker));
    if (item.canceled) throw new Canceled();
    if (failure) {
      if (failure.status === 404) this.records.dropUpload(this.bucket, item.key); // upload gone: Retry starts over
      throw failure;
    }
    item.setState("uploading", "Completing");
    const parts = [...stored.entries()].sort((a, b) => a[0] - b[0]).map(([partNumber, etag]) => ({ partNumber, etag }));
    await this.withRetries(item, () =>
      this.json("POST", this.multipartUrl(record.uploadId, item.key, "/complete"), { parts }, item),
    );
    this.records.dropUpload(this.bucket, item.key);
  }

  async sendPart(item, record, number) {
    const start = (number - 1) * record.partSize;
    const end = Math.min(item.file.size, start + record.partSize);
    await this.slots.take();
    try {
      if (item.canceled || item.failing) throw new Canceled();
      // Hash the part, then send it as a slice of the file: the browser streams it from
      // disk (the bytes read for the hash are let go), and the server refuses it if the
      // file changed in between (Content-MD5).
      const slice = item.file.slice(start, end);
      const digest = new Md5().update(await slice.arrayBuffer()).digest();
      const url = this.multipartUrl(record.uploadId, item.key, `/${number}`);
      const answer = await this.withRetries(
        item,
        () =>
          this.sendBody(item, "PUT", url, slice, { "content-md5": toBase64(digest) }, (sent) => {
            item.inflight.set(number, sent);
            this.draw();
          }),
        ` part ${number}`,
      );
      if (answer.etag !== toHex(digest)) {
        throw new UploadError(`Part ${number} was stored with another MD5 than it was sent with.`);
      }
      return answer.etag;
    } finally {
      item.inflight.delete(number);
      this.slots.give();
    }
  }

  // ---------------------------------------------------------------- showing it

  draw() {
    if (this.drawScheduled) return;
    this.drawScheduled = true;
    requestAnimationFrame(() => {
      this.drawScheduled = false;
      let total = 0;
      let loaded = 0;
      let done = 0;
      let counted = 0;
      for (const item of this.items) {
        item.showProgress();
        if (item.state === "canceled" || item.state === "skipped") continue;
        counted++;
        total += item.file.size;
        loaded += item.loaded;
        if (item.state === "done") done++;
      }
      const allDone = counted > 0 && done === counted;
      this.overall.value = total ? Math.floor((loaded / total) * 100) : allDone ? 100 : 0;
      this.overallText.textContent = `${done} of ${counted} files, ${formatBytes(loaded)} of ${formatBytes(total)}`;
      this.root.dataset.busy = String(this.items.some((i) => ["queued", "uploading"].includes(i.state)));
    });
  }

  announce(text, isError = false) {
    const p = document.createElement("p");
    p.textContent = text;
    if (isError) p.className = "error";
    this.messages.append(p);
    while (this.messages.children.length > 5) this.messages.firstElementChild.remove();
  }

  /** Unfinished uploads and folders from before a reload, with a way to discard them. */
  showResumable() {
    const box = this.root.querySelector("[data-resumable]");
    const list = this.root.querySelector("[data-resumable-list]");
    list.replaceChildren();
    const queued = new Set(this.items.filter((i) => i.state !== "canceled").map((i) => i.key));
    for (const record of this.records.uploadsIn(this.bucket)) {
      if (queued.has(record.key)) continue;
      const li = document.createElement("li");
      li.append(`${record.key} (${formatBytes(record.size)}) `);
      const discard = document.createElement("button");
      discard.type = "button";
      discard.className = "link danger";
      discard.textContent = "Discard";
      discard.setAttribute("aria-label", `Discard the unfinished upload of ${record.key}`);
      discard.addEventListener("click", async () => {
        this.records.dropUpload(this.bucket, record.key);
        li.remove();
        try {
          await this.json("DELETE", this.multipartUrl(record.uploadId, record.key));
        } catch (error) {
          if (error.status !== 404) this.announce(`${record.key}: ${error.message}`, true);
        }
        this.showResumable();
      });
      li.append(discard);
      list.append(li);
    }
    for (const [id, batch] of this.records.batchesIn(this.bucket)) {
      if (this.items.some((i) => i.batch.id === id)) continue;
      const li = document.createElement("li");
      li.append(`${batch.label}: ${Object.keys(batch.done).length} of ${batch.total} files uploaded `);
      const forget = document.createElement("button");
      forget.type = "button";
      forget.className = "link";
      forget.textContent = "Forget";
      forget.setAttribute("aria-label", `Forget the unfinished ${batch.label}`);
      forget.addEventListener("click", () => {
        this.records.dropBatch(id);
        this.showResumable();
      });
      li.append(forget);
      list.append(li);
    }
    box.hidden = !list.children.length;
  }
}

/** The length of part `number` (from 1) of a file of `size` bytes in parts of `partSize`. */
function partLength(size, partSize, number) {
  return Math.max(0, Math.min(partSize, size - (number - 1) * partSize));
}

function readEntries(reader) {
  return new Promise((resolve, reject) => reader.readEntries(resolve, reject));
}

/** Every file under a dropped entry, with its path from the drop ("folder/sub/file"). */
async function readEntry(entry) {
  if (entry.isFile) {
    const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
    return [{ file, path: entry.fullPath.replace(/^\/+/, "") }];
  }
  const reader = entry.createReader();
  const found = [];
  // readEntries answers in batches (100 in Chromium) until it answers none.
  for (let batch = await readEntries(reader); batch.length; batch = await readEntries(reader)) {
    for (const child of batch) found.push(...(await readEntry(child)));
  }
  return found;
}

const root = document.getElementById("uploader");
if (root) new UploadManager(root).start();

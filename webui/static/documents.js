// The template editor's "copy as curl" and "copy as JavaScript fetch": the request that
// renders the template and data in the editor now through POST /v1/template/pdf.
const form = document.getElementById("editor-form");
const snippet = document.getElementById("request-snippet");
const status = document.getElementById("copy-status");

function base64(text) {
  // btoa takes Latin-1 only: encode as UTF-8 first, in chunks (no argument-count limit).
  const bytes = new TextEncoder().encode(text);
  let binary = "";
  for (let i = 0; i < bytes.length; i += 8192) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 8192));
  }
  return btoa(binary);
}

function requestBody() {
  let data;
  try {
    data = JSON.parse(form.elements.data.value || "{}");
  } catch {
    return null;
  }
  const body = { template: base64(form.elements.template.value), data };
  const engine = form.elements.engine.value;
  if (engine !== "auto") body.engine = engine;
  return body;
}

function shellQuote(text) {
  return "'" + text.replaceAll("'", "'\\''") + "'";
}

function curlText() {
  const body = requestBody();
  if (body === null) return null;
  return [
    `curl -sS -X POST ${shellQuote(form.dataset.base + "/v1/template/pdf")}`,
    `  -H 'X-API-Key: YOUR_API_KEY'`,
    `  -H 'Content-Type: application/json'`,
    `  --data-raw ${shellQuote(JSON.stringify(body))}`,
    `  -o document.pdf`,
  ].join(" \\\n");
}

function fetchText() {
  const body = requestBody();
  if (body === null) return null;
  return [
    `const response = await fetch(${JSON.stringify(form.dataset.base + "/v1/template/pdf")}, {`,
    `  method: "POST",`,
    `  headers: { "X-API-Key": "YOUR_API_KEY", "Content-Type": "application/json" },`,
    `  body: JSON.stringify(${JSON.stringify(body)}),`,
    `});`,
    `const pdf = await response.blob();`,
  ].join("\n");
}

async function copy(make, what) {
  const text = make();
  if (text === null) {
    status.textContent = "The sample data is not valid JSON.";
    return;
  }
  snippet.value = text;
  try {
    await navigator.clipboard.writeText(text);
    status.textContent = `Copied as ${what}.`;
  } catch {
    snippet.select();
    status.textContent = "Selected below: press Ctrl+C.";
  }
}

document.getElementById("copy-curl").addEventListener("click", () => copy(curlText, "curl"));
document.getElementById("copy-fetch").addEventListener("click", () => copy(fetchText, "JavaScript fetch"));

// A preview refused by the per-minute document limit says when to retry: count the
// seconds down, then render the preview again by itself (a change, as an edit makes).
setInterval(() => {
  const notice = document.querySelector("#preview [data-retry-in]");
  if (!notice || notice.dataset.retried) return;
  if (!notice.dataset.deadline) {
    notice.dataset.deadline = String(Date.now() + Number(notice.dataset.retryIn) * 1000);
  }
  const left = Math.max(0, Math.ceil((Number(notice.dataset.deadline) - Date.now()) / 1000));
  notice.querySelector(".retry-seconds").textContent = String(left);
  if (left === 0) {
    notice.dataset.retried = "yes";
    htmx.trigger(form, "change");
  }
}, 1000);
